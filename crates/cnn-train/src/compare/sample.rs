//! Random search (`cnn compare --sample KEY=DIST --trials N`): a
//! [`SampleSpec`] is a configuration key and the [`Distribution`] its
//! values are drawn from; [`draw`] draws `trials` sets of values from a
//! seed, and [`trials_file`] turns them into a [`RunsFile`] of one
//! `[[run]]` per trial, so that a random search is planned, validated,
//! crossed with `--vary`, run and resumed exactly as a runs file is.
//!
//! Draws come from ChaCha8 (`rand_chacha`, the generator the data
//! pipeline's shuffles use) seeded with the search seed; trial `t` takes
//! one draw per spec, in the order the specs are given. Real values are
//! rounded to 4 significant digits (and kept within their bounds), so
//! that the value a run trains with is the one its label, `config.toml`,
//! summary and report show.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::compare::manifest::Manifest;
use crate::compare::outputs::RunResult;
use crate::compare::variants::{RunsFile, VarySpec, apply_value};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// Where a sampled value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// `loguniform(a,b)`: `exp(U(ln a, ln b))`, `0 < a <= b`.
    LogUniform(f64, f64),
    /// `uniform(a,b)`: `U(a, b)`, `a <= b`.
    Uniform(f64, f64),
    /// `int(a,b)`: an integer from `a` to `b`, both included.
    Int(i64, i64),
    /// `choice(x,y,...)`: one of the values, each equally likely.
    Choice(Vec<String>),
}

/// A drawn value: a number, or a choice's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Drawn {
    Float(f64),
    Int(i64),
    Text(String),
}

impl Drawn {
    /// The value as TOML (a choice's text read as a command line gives it).
    fn to_toml(&self) -> toml::Value {
        match self {
            Drawn::Float(f) => toml::Value::Float(*f),
            Drawn::Int(i) => toml::Value::Integer(*i),
            Drawn::Text(t) => crate::compare::variants::text_value(t),
        }
    }
}

impl fmt::Display for Drawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drawn::Float(v) => write!(f, "{v}"),
            Drawn::Int(v) => write!(f, "{v}"),
            Drawn::Text(t) => f.write_str(t),
        }
    }
}

/// `x` rounded to 4 significant digits.
fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.3e}").parse().unwrap_or(x)
}

impl Distribution {
    /// One draw.
    pub fn draw(&self, rng: &mut impl Rng) -> Drawn {
        match self {
            Distribution::LogUniform(a, b) => {
                let u: f64 = rng.random();
                let v = (a.ln() + (b.ln() - a.ln()) * u).exp();
                Drawn::Float(round4(v).clamp(*a, *b))
            }
            Distribution::Uniform(a, b) => {
                let u: f64 = rng.random();
                Drawn::Float(round4(a + (b - a) * u).clamp(*a, *b))
            }
            Distribution::Int(a, b) => Drawn::Int(rng.random_range(*a..=*b)),
            Distribution::Choice(values) => {
                Drawn::Text(values[rng.random_range(0..values.len())].clone())
            }
        }
    }

    /// The values a check of the key tries: the bounds, or every choice.
    fn extremes(&self) -> Vec<Drawn> {
        match self {
            Distribution::LogUniform(a, b) | Distribution::Uniform(a, b) => {
                vec![Drawn::Float(*a), Drawn::Float(*b)]
            }
            Distribution::Int(a, b) => vec![Drawn::Int(*a), Drawn::Int(*b)],
            Distribution::Choice(v) => v.iter().cloned().map(Drawn::Text).collect(),
        }
    }
}

/// One `--sample KEY=DIST`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    pub key: String,
    pub dist: Distribution,
    /// As given, for messages and the manifest.
    pub text: String,
}

const EXPECTED: &str =
    "expected loguniform(A,B), uniform(A,B), int(A,B) (A and B included) or choice(X,Y,...)";

impl FromStr for SampleSpec {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: &str| TrainError::Config(format!("--sample `{s}`: {m}"));
        let (key, dist) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=DIST, e.g. lr=loguniform(1e-4,1e-1)"))?;
        let key = key.trim().replace('-', "_");
        if key.is_empty() {
            return Err(bad("the key is empty"));
        }
        let dist = dist.trim();
        let (name, args) = dist
            .strip_suffix(')')
            .and_then(|d| d.split_once('('))
            .ok_or_else(|| bad(EXPECTED))?;
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        if args.iter().any(|a| a.is_empty()) {
            return Err(bad("an argument is empty (a stray comma?)"));
        }
        let two = || -> Result<(&str, &str)> {
            match args.as_slice() {
                [a, b] => Ok((a, b)),
                _ => Err(bad(&format!("{name} takes two bounds, A and B"))),
            }
        };
        let real = |t: &str| -> Result<f64> {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(&format!("`{t}` is not a finite number")))
        };
        let ordered = |a: f64, b: f64| -> Result<()> {
            if a > b {
                Err(bad(&format!(
                    "the lower bound {a} is above the upper bound {b}"
                )))
            } else {
                Ok(())
            }
        };
        let dist = match name.trim().to_ascii_lowercase().as_str() {
            "loguniform" => {
                let (a, b) = two()?;
                let (a, b) = (real(a)?, real(b)?);
                if a <= 0.0 {
                    return Err(bad(&format!(
                        "loguniform needs a positive lower bound, not {a}"
                    )));
                }
                ordered(a, b)?;
                Distribution::LogUniform(a, b)
            }
            "uniform" => {
                let (a, b) = two()?;
                let (a, b) = (real(a)?, real(b)?);
                ordered(a, b)?;
                Distribution::Uniform(a, b)
            }
            "int" => {
                let (a, b) = two()?;
                let int = |t: &str| {
                    t.parse::<i64>()
                        .map_err(|_| bad(&format!("`{t}` is not an integer")))
                };
                let (a, b) = (int(a)?, int(b)?);
                ordered(a as f64, b as f64)?;
                Distribution::Int(a, b)
            }
            "choice" => {
                // The same rules as --vary's values: none twice.
                let spec: VarySpec = format!("{key}={}", args.join(","))
                    .parse()
                    .map_err(|e: TrainError| bad(&e.to_string()))?;
                Distribution::Choice(spec.values)
            }
            _ => return Err(bad(EXPECTED)),
        };
        Ok(SampleSpec {
            key,
            dist,
            text: s.to_string(),
        })
    }
}

/// Check the specs against a base configuration and the `--vary` keys: a
/// key sampled twice, sampled and varied, unknown, or whose bounds (every
/// choice) it cannot take is an error naming the spec.
pub fn check(specs: &[SampleSpec], base: &TrainConfig, vary: &[VarySpec]) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.key == spec.key) {
            return Err(TrainError::Config(format!(
                "--sample {} is given twice",
                spec.key
            )));
        }
        if vary.iter().any(|v| v.key == spec.key) {
            return Err(TrainError::Config(format!(
                "{} is both varied (--vary) and sampled (--sample); give it one of them",
                spec.key
            )));
        }
        let integer = toml::Table::try_from(base)
            .ok()
            .is_some_and(|t| matches!(t.get(&spec.key), Some(toml::Value::Integer(_))));
        if integer
            && matches!(
                spec.dist,
                Distribution::Uniform(..) | Distribution::LogUniform(..)
            )
        {
            return Err(TrainError::Config(format!(
                "--sample {}: {} is a whole number; draw it with int(A,B)",
                spec.text, spec.key
            )));
        }
        for v in spec.dist.extremes() {
            let with = |c: TrainConfig| c.checked_optimizer().map(|_| ());
            apply_value(base, &spec.key, v.to_toml())
                .and_then(with)
                .map_err(|e| {
                    let e = match e {
                        TrainError::Config(m) => m,
                        other => other.to_string(),
                    };
                    TrainError::Config(format!("--sample {}: {e}", spec.text))
                })?;
        }
    }
    Ok(())
}

/// `trials` draws of every spec from `seed`: trial `t`'s values, in spec
/// order. The same specs, trials and seed give the same values.
pub fn draw(specs: &[SampleSpec], trials: usize, seed: u64) -> Vec<Vec<(String, Drawn)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..trials)
        .map(|_| {
            specs
                .iter()
                .map(|s| (s.key.clone(), s.dist.draw(&mut rng)))
                .collect()
        })
        .collect()
}

/// The trials as a runs file: one `[[run]]` per trial, labelled
/// `trial 01: lr=0.001234, dropout=0.3` (numbered from 1, zero-padded).
pub fn trials_file(trials: &[Vec<(String, Drawn)>]) -> RunsFile {
    let width = trials.len().to_string().len();
    let run = trials
        .iter()
        .enumerate()
        .map(|(t, values)| {
            let mut table = toml::Table::new();
            let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            table.insert(
                "label".into(),
                toml::Value::String(format!("trial {:0width$}: {}", t + 1, shown.join(", "))),
            );
            for (k, v) in values {
                table.insert(k.clone(), v.to_toml());
            }
            table
        })
        .collect();
    RunsFile {
        base: toml::Table::new(),
        run,
    }
}

/// What a report says of a comparison's random search and pruning, one
/// paragraph each (none for a plain comparison).
pub fn search_lines(manifest: &Manifest, results: &[RunResult]) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(search) = &manifest.search {
        lines.push(format!(
            "Random search: {} trials drawn with seed {} from {}; each trial's values are in its label and its config.toml.",
            search.trials,
            search.seed,
            search.samples.join(", ")
        ));
    }
    if let Some(rule) = &manifest.prune {
        let pruned = results
            .iter()
            .filter(|r| matches!(r.planned.status.as_str(), "pruned"))
            .count();
        lines.push(format!(
            "Pruning (median rule, Optuna's MedianPruner): after a warm-up of {} epochs and once {} trials had completed, \
             a trial whose best validation loss so far was above the median of the completed trials' at the same epoch \
             was stopped; {pruned} of {} runs were pruned.",
            rule.warmup,
            rule.startup,
            results.len()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<SampleSpec> {
        s.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_values_within_bounds() {
        let s = specs(&[
            "lr=loguniform(1e-4,1e-1)",
            "dropout=uniform(0,0.5)",
            "batch-size=int(16,64)",
            "optimizer=choice(sgd,adam,adamw)",
        ]);
        let a = draw(&s, 50, 7);
        assert_eq!(a, draw(&s, 50, 7));
        assert_ne!(a, draw(&s, 50, 8));
        let mut ints = std::collections::BTreeSet::new();
        for trial in &a {
            let [(k0, lr), (_, dropout), (k2, bs), (_, opt)] = trial.as_slice() else {
                panic!("{trial:?}")
            };
            assert_eq!((k0.as_str(), k2.as_str()), ("lr", "batch_size"));
            let Drawn::Float(lr) = lr else { panic!() };
            assert!((1e-4..=1e-1).contains(lr), "{lr}");
            let Drawn::Float(d) = dropout else { panic!() };
            assert!((0.0..=0.5).contains(d), "{d}");
            let Drawn::Int(b) = bs else { panic!() };
            assert!((16..=64).contains(b), "{b}");
            ints.insert(*b);
            let Drawn::Text(o) = opt else { panic!() };
            assert!(["sgd", "adam", "adamw"].contains(&o.as_str()));
            // Four significant digits: the text reads back to the value.
            assert_eq!(lr.to_string().parse::<f64>().unwrap(), *lr);
            assert_eq!(format!("{lr:.3e}").parse::<f64>().unwrap(), *lr);
        }
        assert!(ints.len() > 20, "50 draws of 49 integers: {ints:?}");
        // Both ends of an integer range are drawn.
        let ends = draw(&specs(&["epochs=int(1,2)"]), 40, 1);
        for v in [1, 2] {
            assert!(ends.iter().any(|t| t[0].1 == Drawn::Int(v)), "{v}");
        }
        let one = draw(&specs(&["lr=uniform(0.3,0.3)"]), 3, 1);
        assert!(one.iter().all(|t| t[0].1 == Drawn::Float(0.3)));
    }

    /// log10 of loguniform(1e-5, 1e-1) draws is uniform on [-5, -1]: the
    /// Kolmogorov-Smirnov distance of 2000 draws (seed 11) from that
    /// uniform is below 0.0364, its 1% critical value (1.63 / sqrt(2000));
    /// rounding to 4 digits moves log10 by at most 2.2e-4.
    #[test]
    fn loguniform_is_uniform_in_the_log() {
        let draws = draw(&specs(&["lr=loguniform(1e-5,1e-1)"]), 2000, 11);
        let mut u: Vec<f64> = draws
            .iter()
            .map(|t| match t[0].1 {
                Drawn::Float(v) => (v.log10() + 5.0) / 4.0,
                _ => panic!(),
            })
            .collect();
        u.sort_by(f64::total_cmp);
        let n = u.len() as f64;
        let ks = u
            .iter()
            .enumerate()
            .map(|(i, &x)| (x - i as f64 / n).max((i + 1) as f64 / n - x))
            .fold(0.0, f64::max);
        assert!(ks < 1.63 / n.sqrt(), "KS distance {ks}");
        // The same draws of a plain uniform over the same range are far
        // from log-uniform: most fall in the top decade.
        let plain = draw(&specs(&["lr=uniform(1e-5,1e-1)"]), 2000, 11);
        let top = plain
            .iter()
            .filter(|t| matches!(t[0].1, Drawn::Float(v) if v > 1e-2))
            .count();
        assert!(top > 1700, "{top}");
    }

    #[test]
    fn bad_specs_are_one_line_config_errors() {
        for (s, needle) in [
            ("lr", "KEY=DIST"),
            ("=uniform(0,1)", "key is empty"),
            ("lr=normal(0,1)", "expected loguniform"),
            ("lr=uniform(0,1", "expected loguniform"),
            ("lr=uniform(0)", "two bounds"),
            ("lr=uniform(0,1,2)", "two bounds"),
            ("lr=uniform(a,1)", "`a` is not a finite number"),
            ("lr=uniform(0,inf)", "not a finite number"),
            (
                "lr=uniform(1,0.5)",
                "lower bound 1 is above the upper bound 0.5",
            ),
            ("lr=loguniform(0,1)", "positive lower bound, not 0"),
            ("lr=loguniform(-1,1)", "positive lower bound"),
            ("lr=loguniform(1e-2,1e-3)", "above the upper bound"),
            ("epochs=int(1.5,3)", "`1.5` is not an integer"),
            ("epochs=int(5,3)", "above the upper bound"),
            ("optimizer=choice(sgd,,adam)", "empty"),
            ("optimizer=choice(sgd,sgd)", "sgd is given twice"),
        ] {
            let err = s.parse::<SampleSpec>().unwrap_err();
            assert!(matches!(err, TrainError::Config(_)), "{s}: {err:?}");
            let text = err.to_string();
            assert!(text.contains(needle), "{s}: {text}");
            assert!(!text.contains('\n'), "{s}: {text}");
        }
        let base = TrainConfig::default();
        let vary: Vec<VarySpec> = vec!["lr=0.1,0.01".parse().unwrap()];
        for (s, needle) in [
            (vec!["learning_rate=uniform(0,1)"], "learning_rate"),
            (
                vec!["lr=uniform(0,1)"],
                "lr is both varied (--vary) and sampled",
            ),
            (
                vec!["dropout=uniform(0,0.5)", "dropout=uniform(0,0.2)"],
                "given twice",
            ),
            (vec!["dropout=uniform(0,1.5)"], "dropout"),
            (vec!["optimizer=choice(sgd,lbfgs)"], "lbfgs"),
            (
                vec!["epochs=uniform(1,5)"],
                "epochs is a whole number; draw it with int(A,B)",
            ),
            (vec!["batch_size=loguniform(16,256)"], "int(A,B)"),
        ] {
            let Err(err) = check(&specs(&s), &base, &vary) else {
                panic!("{s:?} passed the check")
            };
            assert!(err.to_string().contains(needle), "{s:?}: {err}");
        }
        check(
            &specs(&[
                "dropout=uniform(0,0.5)",
                "epochs=int(1,3)",
                "momentum=choice(0,0.9)",
            ]),
            &base,
            &vary,
        )
        .unwrap();
    }

    #[test]
    fn trials_become_a_runs_file_whose_variants_hold_the_values() {
        let s = specs(&["lr=loguniform(1e-3,1e-1)", "epochs=int(1,3)"]);
        let trials = draw(&s, 12, 3);
        let file = trials_file(&trials);
        let variants = crate::compare::expand(&TrainConfig::default(), Some(&file), &[]).unwrap();
        assert_eq!(variants.len(), 12);
        for (v, t) in variants.iter().zip(&trials) {
            let (Drawn::Float(lr), Drawn::Int(epochs)) = (&t[0].1, &t[1].1) else {
                panic!()
            };
            assert_eq!(v.config.lr, Some(*lr));
            assert_eq!(v.config.epochs as i64, *epochs);
            assert!(v.label.starts_with("trial "), "{}", v.label);
            assert!(v.label.contains(&format!("lr={lr}")), "{}", v.label);
            assert_eq!(
                v.overrides,
                vec![
                    ("epochs".to_string(), epochs.to_string()),
                    ("lr".to_string(), lr.to_string())
                ]
            );
        }
        assert!(variants[0].label.starts_with("trial 01: "));
    }
}
