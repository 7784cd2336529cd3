//! Rendering a figure: the [`Figure`] trait every figure implements, its
//! drawing errors as text, and PNG and SVG output written atomically (a
//! panic inside plotters becomes an error).

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::io::write_atomic;
use crate::plot::text::{Typeset, ensure_font};

pub(super) type DrawResult<T = ()> = std::result::Result<T, String>;

/// Drawing errors as text (backend error types differ).
pub(super) trait Ctx<T> {
    fn ctx(self) -> DrawResult<T>;
}

impl<T, E: Display> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self) -> DrawResult<T> {
        self.map_err(|e| e.to_string())
    }
}

/// A figure drawable on any backend.
pub(super) trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

pub(super) fn plot_error(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Plot {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Run `f`, turning a panic into an error message.
fn guarded<T>(f: impl FnOnce() -> DrawResult<T>) -> DrawResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("plotting panicked: {msg}"))
        }
    }
}

pub(super) fn save_png(fig: &impl Figure, path: &Path) -> Result<()> {
    ensure_font();
    let (w, h) = fig.size();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    guarded(|| {
        let root = Typeset::new(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
        root.fill(&WHITE).ctx()?;
        fig.draw(&root)?;
        root.present().ctx()
    })
    .map_err(|m| plot_error(path, m))?;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| plot_error(path, format!("PNG encoding: {e}")))?;
    write_atomic(path, &bytes)
}

pub(super) fn save_svg(fig: &impl Figure, path: &Path) -> Result<()> {
    ensure_font();
    let mut text = String::new();
    guarded(|| {
        let root = SVGBackend::with_string(&mut text, fig.size()).into_drawing_area();
        root.fill(&WHITE).ctx()?;
        fig.draw(&root)?;
        root.present().ctx()
    })
    .map_err(|m| plot_error(path, m))?;
    write_atomic(path, text.as_bytes())
}
