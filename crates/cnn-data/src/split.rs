//! Train / validation / test splits.
//!
//! Keras's `validation_split` convention: the validation set is the *last*
//! `fraction` of the training data, taken before any shuffling
//! (`split_at = floor(n * (1 - fraction))`). A fraction of 0 validates on
//! the test split. [`Splits::limit_train`] then keeps the first `n` of the
//! remaining training images, so the validation set stays the same
//! whatever training-set size a learning-curve study uses.

use crate::dataset::{Dataset, Subset};
use crate::error::{DataError, Result};

/// The three subsets a training run uses.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images (the first part of the dataset's train split).
    pub train: Subset,
    /// Validation images (the tail of the train split, or the test split).
    pub val: Subset,
    /// Test images.
    pub test: Subset,
    /// Whether `val` is the test split (fraction 0).
    pub val_is_test: bool,
}

/// Split `dataset` with validation fraction `val_fraction` in `[0, 1)`.
pub fn split(dataset: &Dataset, val_fraction: f64) -> Result<Splits> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DataError::value(
            "val_fraction",
            format!("{val_fraction} is not in [0, 1)"),
        ));
    }
    let all = Subset::full(dataset.train.clone());
    let test = Subset::full(dataset.test.clone());
    let n = all.len();
    if val_fraction == 0.0 {
        return Ok(Splits {
            train: all,
            val: test.clone(),
            test,
            val_is_test: true,
        });
    }
    let split_at = ((n as f64) * (1.0 - val_fraction)).floor() as usize;
    Ok(Splits {
        train: all.range(0..split_at),
        val: all.range(split_at..n),
        test,
        val_is_test: false,
    })
}

impl Splits {
    /// Split `dataset` (see [`split`]).
    pub fn new(dataset: &Dataset, val_fraction: f64) -> Result<Self> {
        split(dataset, val_fraction)
    }

    /// Keep only the first `n` training images (all of them if there are
    /// fewer than `n`). Validation and test are unchanged.
    pub fn limit_train(mut self, n: usize) -> Self {
        self.train = self.train.range(0..n);
        self
    }
}
