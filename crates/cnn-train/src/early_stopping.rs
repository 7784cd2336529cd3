//! Early stopping on the validation loss (Keras's `EarlyStopping`).

use serde::{Deserialize, Serialize};

/// Tracks the best validation loss; says when `patience` epochs passed
/// without an improvement larger than `min_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
    pub best: Option<f64>,
    pub best_epoch: usize,
    pub bad_epochs: usize,
}

impl EarlyStopping {
    /// Stop after `patience` epochs without improvement (0 = never stop).
    pub fn new(patience: usize, min_delta: f64) -> Self {
        EarlyStopping {
            patience,
            min_delta,
            best: None,
            best_epoch: 0,
            bad_epochs: 0,
        }
    }

    /// Record epoch `epoch`'s validation loss. Returns whether it is the
    /// best so far.
    pub fn observe(&mut self, epoch: usize, loss: f64) -> bool {
        let improved = match self.best {
            None => loss.is_finite(),
            Some(best) => loss < best - self.min_delta,
        };
        if improved {
            self.best = Some(loss);
            self.best_epoch = epoch;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        improved
    }

    /// Whether training should stop now.
    pub fn should_stop(&self) -> bool {
        self.patience > 0 && self.bad_epochs >= self.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut es = EarlyStopping::new(2, 0.01);
        assert!(es.observe(1, 1.0));
        assert!(es.observe(2, 0.9));
        assert!(!es.observe(3, 0.895)); // within min_delta: not an improvement
        assert!(!es.should_stop());
        assert!(!es.observe(4, 0.95));
        assert!(es.should_stop());
        assert_eq!(es.best_epoch, 2);
        assert_eq!(es.best, Some(0.9));
    }

    #[test]
    fn zero_patience_never_stops() {
        let mut es = EarlyStopping::new(0, 0.0);
        es.observe(1, 1.0);
        for e in 2..10 {
            es.observe(e, 2.0);
        }
        assert!(!es.should_stop());
    }
}
