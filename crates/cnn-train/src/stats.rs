//! Statistics over runs and how the tables print them: the mean and
//! standard deviation of repeats ([`mean_std`]), and the number formats of
//! the summary tables, CSV files and reports ([`pct`], [`num`], [`fixed`]).

/// Mean and population standard deviation of the finite values; NaN when
/// there are none.
pub fn mean_std(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A fraction as a percentage with two decimals (`87.50%`); `—` when it is
/// not a number.
pub fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", v * 100.0)
    } else {
        "—".into()
    }
}

/// A number as a CSV cell: the shortest text that reads back to it, empty
/// when it is not a number.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

/// A number with four decimals (a loss); `—` when it is not a number.
pub fn fixed(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "—".into()
    }
}
