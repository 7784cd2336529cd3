//! Progress bars with live loss and accuracy (indicatif), shown only when
//! asked for and stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// One epoch's progress bar, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for `steps` batches of epoch `epoch` of `epochs`.
    pub fn new(show: bool, epoch: usize, epochs: usize, steps: u64) -> Self {
        if !show || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(steps);
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        Progress { bar: Some(bar) }
    }

    /// Start from batch `pos` (when resuming mid-epoch).
    pub fn set_position(&mut self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    /// One more batch, with the latest loss and the running accuracy.
    pub fn step(&mut self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4} acc {:.2}%", accuracy * 100.0));
        }
    }

    /// Remove the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
