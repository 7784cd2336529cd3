//! Chart text: the embedded font, and [`Typeset`], a drawing backend that
//! lays out a bitmap's text glyph by glyph so that letters keep their
//! spacing.
//!
//! plotters 0.3.7 rasterizes text with `ab_glyph` (`FontDataInternal::draw`
//! in its `style/font/ab_glyph.rs`), but it places each glyph's coverage at
//! the pen position truncated to a whole pixel, and without the glyph's
//! left side bearing: `OutlinedGlyph::draw` reports pixels relative to the
//! glyph's pixel bounds, and plotters adds back their top
//! (`px_bounds().min.y`) but not their left (`min.x`). A glyph with a wide
//! bearing thus crowds the one before it and leaves a gap after it: at
//! 14-15 px "class0" reads "dass0" and "epoch" reads "ep och". The widths
//! plotters measures (`estimate_layout`: advances plus kerning) are right,
//! so charts are laid out right; only the glyphs land wrong.
//! plotters-backend's default `DrawingBackend::draw_text`, which the bitmap
//! backend uses, anchors and rotates those misplaced pixels.
//!
//! [`Typeset`] wraps a backend, forwards everything but `draw_text`, and
//! draws text in the embedded font itself: each glyph is outlined at its
//! fractional pen position (advance and kerning from `ab_glyph`), so its
//! bearing and sub-pixel offset are kept, then anchored and rotated exactly
//! as plotters-backend does (same layout box, same baseline, same
//! rotations), so only the horizontal placement of glyphs changes. SVG
//! needs no wrapper: plotters writes `<text>` elements (size, anchor and
//! rotation as attributes), which the viewer lays out itself.

use std::sync::{Once, OnceLock};

use ab_glyph::{Font as _, FontRef, ScaleFont as _, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// DejaVu Sans (see `assets/LICENSE-DejaVu.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family name the embedded font is registered under.
pub(crate) const FONT: &str = "sans-serif";

/// Register the embedded font with plotters (once), which measures text
/// with it and draws the SVG backend's and any unwrapped backend's text.
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is known to parse; were it not, text would be
        // missing and drawing would report an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// The embedded font as `ab_glyph` reads it (`None` were it not to parse).
pub(super) fn font() -> Option<&'static FontRef<'static>> {
    static FONT_REF: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// A text style in the embedded font.
pub(crate) fn text_style(size: f64, color: &RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FONT, size).into_font());
    style.color = color.to_backend_color();
    style
}

/// A drawing backend that draws text in the embedded font glyph by glyph
/// (see the module docs) and forwards everything else to `inner`. Text in
/// another family goes to `inner` too.
pub(crate) struct Typeset<DB> {
    inner: DB,
}

impl<DB: DrawingBackend> Typeset<DB> {
    pub(crate) fn new(inner: DB) -> Self {
        Typeset { inner }
    }

    /// plotters-backend's `draw_text` with the glyphs at their own pen
    /// positions and bearings.
    fn typeset<S: BackendTextStyle>(
        &mut self,
        font: &FontRef<'static>,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        // The box plotters measures (and lays charts out with), anchored
        // as plotters-backend anchors it.
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.inner.get_size();
        let size = style.size() as f32;
        let scaled = font.as_scaled(size);
        let mut pen = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(prev) = prev {
                pen += scaled.kern(prev, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, point(pen, 0.0));
            pen += scaled.h_advance(id);
            let Some(outline) = scaled.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            // Horizontally the glyph's own pixel bounds (pen + bearing);
            // vertically plotters' baseline, half the size below the top.
            let left = bounds.min.x as i32;
            let top = (size / 2.0 + bounds.min.y) as i32;
            let mut result = Ok(());
            outline.draw(|x, y, coverage| {
                if result.is_err() {
                    return;
                }
                let (x, y) =
                    trans.transform(left + x as i32 + dx - min_x, top + y as i32 + dy - min_y);
                let (x, y) = (pos.0 + x, pos.1 + y);
                if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                    let ink = BackendColor {
                        alpha: color.alpha * f64::from(coverage),
                        rgb: color.rgb,
                    };
                    result = self.inner.draw_pixel((x, y), ink);
                }
            });
            result?;
        }
        Ok(())
    }
}

impl<DB: DrawingBackend> DrawingBackend for Typeset<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        match font() {
            Some(font) if style.family().as_str() == FONT => self.typeset(font, text, style, pos),
            _ => self.inner.draw_text(text, style, pos),
        }
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.inner.estimate_text_size(text, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }
}
