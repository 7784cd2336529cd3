//! The validation curve of a comparison (scikit-learn's
//! `validation_curve`): when every variant changes the same one setting
//! and that setting is a number (`--vary lr=...`, `--vary
//! batch_size=...`, a runs file whose entries each set one numeric key, a
//! random search sampling one key), [`validation_curve`] gives the final
//! and best training and validation accuracy and loss against its value,
//! mean ± std over the runs of each value, from the runs' histories (the
//! same records `summary.csv` is computed from). Pruned and failed runs
//! are left out: a pruned run's last epoch is not its final one.

use crate::compare::manifest::Manifest;
use crate::history::EpochRecord;
use crate::plot::{Band, ValidationCurve};
use crate::run::{RunStatus, RunSummary};
use crate::stats::mean_std;

/// The one key every variant overrides, and each variant's value of it as
/// its configuration holds it, when that value is a finite number; `None`
/// otherwise (several keys, a variant without one, a text or boolean
/// setting).
pub fn numeric_key(manifest: &Manifest) -> Option<(String, Vec<f64>)> {
    let first = manifest.variants.first()?;
    let [(key, _)] = first.overrides.as_slice() else {
        return None;
    };
    let mut values = Vec::with_capacity(manifest.variants.len());
    for v in &manifest.variants {
        match v.overrides.as_slice() {
            [(k, _)] if k == key => {}
            _ => return None,
        }
        let table = toml::Table::try_from(&v.config).ok()?;
        let x = match table.get(key.as_str())? {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            _ => return None,
        };
        if !x.is_finite() {
            return None;
        }
        values.push(x);
    }
    Some((key.clone(), values))
}

/// One run's eight scores: final and best accuracy and loss, training and
/// validation (NaN where its history has none).
fn scores(epochs: &[EpochRecord]) -> [f64; 8] {
    let last = epochs.last();
    let val_acc = || {
        epochs
            .iter()
            .filter_map(|e| e.val.as_ref().map(|v| v.accuracy))
    };
    let val_loss = || epochs.iter().filter_map(|e| e.val.as_ref().map(|v| v.loss));
    [
        last.map_or(f64::NAN, |e| e.train.accuracy),
        last.and_then(|e| e.val.as_ref())
            .map_or(f64::NAN, |v| v.accuracy),
        epochs
            .iter()
            .map(|e| e.train.accuracy)
            .fold(f64::NAN, f64::max),
        val_acc().fold(f64::NAN, f64::max),
        last.map_or(f64::NAN, |e| e.train.loss),
        last.and_then(|e| e.val.as_ref())
            .map_or(f64::NAN, |v| v.loss),
        epochs.iter().map(|e| e.train.loss).fold(f64::NAN, f64::min),
        val_loss().fold(f64::NAN, f64::min),
    ]
}

/// The comparison's validation curve (see the module docs) from its
/// finished runs, each with its variant's index (the runs that wrote a
/// `summary.json`), values in ascending order, variants of equal value
/// pooled; `None` when the comparison does not vary one numeric setting.
pub fn validation_curve<'a>(
    manifest: &Manifest,
    finished: impl IntoIterator<Item = (usize, &'a RunSummary)>,
) -> Option<ValidationCurve> {
    let finished: Vec<(usize, &RunSummary)> = finished.into_iter().collect();
    let (key, per_variant) = numeric_key(manifest)?;
    let mut values: Vec<f64> = per_variant.clone();
    values.sort_by(f64::total_cmp);
    values.dedup();
    let mut bands: [Band; 8] = Default::default();
    let mut runs = Vec::with_capacity(values.len());
    for &x in &values {
        let mine: Vec<[f64; 8]> = finished
            .iter()
            .filter(|(v, _)| per_variant.get(*v) == Some(&x))
            .map(|(_, s)| *s)
            .filter(|s| !matches!(s.status, RunStatus::Pruned(_)))
            .map(|s| scores(&s.history.epochs))
            .collect();
        runs.push(mine.len());
        for (i, band) in bands.iter_mut().enumerate() {
            let (m, sd) = mean_std(mine.iter().map(|s| s[i]));
            band.mean.push(m);
            band.std.push(if sd.is_finite() { sd } else { 0.0 });
        }
    }
    let [fta, fva, bta, bva, ftl, fvl, btl, bvl] = bands;
    Some(ValidationCurve {
        title: format!(
            "Validation curve over {key}: {} on {}, mean ± std over runs",
            manifest.base.model, manifest.base.data
        ),
        log_x: ValidationCurve::wants_log_x(&values),
        key,
        values,
        runs,
        final_train_accuracy: fta,
        final_val_accuracy: fva,
        best_train_accuracy: bta,
        best_val_accuracy: bva,
        final_train_loss: ftl,
        final_val_loss: fvl,
        best_train_loss: btl,
        best_val_loss: bvl,
    })
}
