//! Chart text: the embedded font, registered with plotters once, and
//! text styles in it.

use std::sync::Once;

use plotters::prelude::*;

/// DejaVu Sans (see `assets/LICENSE-DejaVu.txt`).
pub(super) const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub(super) const FONT: &str = "sans-serif";

pub(super) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is known to parse; were it not, text would be
        // missing and drawing would report an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// A text style in the embedded font.
pub(super) fn text_style(size: f64, color: &RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FONT, size).into_font());
    style.color = color.to_backend_color();
    style
}
