//! The variants of a comparison and its runs: [`VarySpec`]
//! (`--vary optimizer=sgd,adam`) and [`RunsFile`] (a TOML list of runs)
//! describe them; [`expand`] turns a base [`TrainConfig`] plus those into
//! [`Variant`]s (the grid of every `--vary`, each configuration checked),
//! and [`plan`] into [`PlannedRun`]s, `repeats` per variant with seeds
//! `seed`, `seed + 1`, ...

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::wrapper_keys;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// One `--vary key=v1,v2,...`: a `TrainConfig` field and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct VarySpec {
    pub key: String,
    pub values: Vec<String>,
}

impl FromStr for VarySpec {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: &str| TrainError::Config(format!("--vary `{s}`: {m}"));
        let (key, values) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE[,VALUE...], e.g. optimizer=sgd,adam"))?;
        let key = key.trim().replace('-', "_");
        if key.is_empty() {
            return Err(bad("the key is empty"));
        }
        if values.trim().is_empty() {
            return Err(bad("no values"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if let Some(i) = values.iter().position(String::is_empty) {
            return Err(bad(&format!(
                "value {} of {} is empty (a stray comma?)",
                i + 1,
                values.len()
            )));
        }
        let read: Vec<toml::Value> = values.iter().map(|v| comparable(v)).collect();
        for (i, v) in values.iter().enumerate() {
            if let Some(first) = (0..i).find(|&j| read[j] == read[i]).map(|j| &values[j]) {
                let also = if first == v {
                    String::new()
                } else {
                    format!(" (as {first})")
                };
                return Err(bad(&format!("{v} is given twice{also}")));
            }
        }
        Ok(VarySpec { key, values })
    }
}

/// A value as a command line gives it, read as TOML (a number, boolean,
/// array or quoted string), else as a bare string.
pub(super) fn text_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// A `--vary` value in a form where equal means the same setting: `0.1`
/// and `1e-1`, `1` and `1.0`, `on` and `true` are equal.
fn comparable(text: &str) -> toml::Value {
    match text_value(text) {
        toml::Value::Integer(i) => toml::Value::Float(i as f64),
        toml::Value::String(s) => match parse_on_off(&s) {
            Some(b) => toml::Value::Boolean(b),
            None => toml::Value::String(s),
        },
        v => v,
    }
}

/// The most runs one comparison or learning curve plans, confirmed or not:
/// its manifest and the directories of that many runs are what a disk and
/// a report can hold.
pub const MAX_RUNS: u64 = 100_000;

/// Runs above which a comparison or learning curve asks for `--yes`: a
/// grid this large is more often a typo than a plan.
pub const CONFIRM_RUNS: u64 = 256;

/// How many runs a comparison plans: `entries` variants (a runs file's
/// `[[run]]` tables, 1 without one) crossed with every `--vary`, `repeats`
/// times; `None` when the count overflows. Counted before any variant is
/// made, so a huge grid is refused at once.
pub fn run_count(entries: usize, vary: &[VarySpec], repeats: usize) -> Option<u64> {
    vary.iter()
        .try_fold(entries.max(1) as u64, |n, v| {
            n.checked_mul(v.values.len() as u64)
        })
        .and_then(|n| n.checked_mul(repeats.max(1) as u64))
}

/// Refuse a plan of `count` runs (`None`: past counting) above
/// [`MAX_RUNS`], or above [`CONFIRM_RUNS`] unless `confirmed` (`--yes`).
/// `what` names the runs (`runs`, `fits`) and `how` the product that made
/// them, for the message.
pub fn check_plan_size(count: Option<u64>, confirmed: bool, what: &str, how: &str) -> Result<()> {
    let shown = count.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
    match count {
        Some(n) if n <= CONFIRM_RUNS || (confirmed && n <= MAX_RUNS) => Ok(()),
        Some(n) if n <= MAX_RUNS => Err(TrainError::Config(format!(
            "{how} make {shown} {what}; pass --yes to start that many (at most {MAX_RUNS})"
        ))),
        _ => Err(TrainError::Config(format!(
            "{how} make {shown} {what}, more than the {MAX_RUNS} one study may hold"
        ))),
    }
}

/// A TOML file listing runs: `[base]` overrides the command's base
/// configuration, each `[[run]]` holds a variant's overrides and an optional
/// `label`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsFile {
    #[serde(default)]
    pub base: toml::Table,
    #[serde(default)]
    pub run: Vec<toml::Table>,
}

impl RunsFile {
    /// Read and parse a runs file; errors name it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let file: RunsFile = toml::from_str(&text)
            .map_err(|e| TrainError::bad_file(path, crate::config::toml_message(&e)))?;
        if file.run.is_empty() {
            return Err(TrainError::bad_file(
                path,
                "no [[run]] entries (each lists the keys it changes)",
            ));
        }
        Ok(file)
    }
}

/// One configuration of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// What it changes, e.g. `optimizer=adam, dropout=0.5` (or `base`).
    pub label: String,
    /// File-name form of the label.
    pub slug: String,
    /// The changed keys and their values as given.
    pub overrides: Vec<(String, String)>,
    pub config: TrainConfig,
}

/// Set `key` of `config` to a TOML value; integers become floats where the
/// field is a float, and `on`/`off` strings booleans where it is a bool.
pub fn apply_value(config: &TrainConfig, key: &str, value: toml::Value) -> Result<TrainConfig> {
    let key = key.replace('-', "_");
    let mut table = toml::Table::try_from(config)
        .map_err(|e| TrainError::Config(format!("cannot represent the configuration: {e}")))?;
    if wrapper_keys::apply(&mut table, &key, &value)? {
        return from_table(table, &key, &value.to_string());
    }
    let value = match (table.get(&key), value) {
        (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (Some(toml::Value::Boolean(_)), toml::Value::String(s)) => match parse_on_off(&s) {
            Some(b) => toml::Value::Boolean(b),
            None => toml::Value::String(s),
        },
        (Some(toml::Value::String(_)), v @ (toml::Value::Integer(_) | toml::Value::Float(_))) => {
            toml::Value::String(v.to_string())
        }
        (_, v) => v,
    };
    let shown = value.to_string();
    table.insert(key.clone(), value);
    from_table(table, &key, &shown)
}

/// The configuration `table` holds after `key = shown` was set, checked.
fn from_table(table: toml::Table, key: &str, shown: &str) -> Result<TrainConfig> {
    let out: TrainConfig = table.try_into().map_err(|e: toml::de::Error| {
        TrainError::Config(format!("{key} = {shown}: {}", e.message()))
    })?;
    out.validate()?;
    Ok(out)
}

/// Set `key` of `config` to the text `value` as a command line gives it.
pub fn apply_text(config: &TrainConfig, key: &str, value: &str) -> Result<TrainConfig> {
    apply_value(config, key, text_value(value))
}

fn parse_on_off(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A label as a file name: letters, digits, `.`, `-`, `_`.
pub fn slug(label: &str) -> String {
    let mut s = String::new();
    for c in label.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' => s.push(c),
            '=' => s.push('-'),
            _ if !s.ends_with('_') => s.push('_'),
            _ => {}
        }
    }
    let s = s.trim_matches('_').to_string();
    if s.is_empty() { "run".into() } else { s }
}

/// The variants: each run of `runs` (or the base alone) crossed with every
/// combination of the `vary` values, in order. Every configuration is
/// validated here, before anything runs.
pub fn expand(
    base: &TrainConfig,
    runs: Option<&RunsFile>,
    vary: &[VarySpec],
) -> Result<Vec<Variant>> {
    for (i, spec) in vary.iter().enumerate() {
        if vary[..i].iter().any(|v| v.key == spec.key) {
            return Err(TrainError::Config(format!(
                "--vary {} is given twice; list every value in one --vary {}=V1,V2,...",
                spec.key, spec.key
            )));
        }
    }
    let mut seeds: Vec<Variant> = Vec::new();
    let base = match runs {
        Some(file) => file.base.iter().try_fold(base.clone(), |c, (k, v)| {
            apply_value(&c, k, v.clone())
                .map_err(|e| TrainError::Config(format!("[base] {k}: {e}")))
        })?,
        None => base.clone(),
    };
    match runs {
        Some(file) => {
            for (i, run) in file.run.iter().enumerate() {
                let mut config = base.clone();
                let mut overrides = Vec::new();
                let mut label = None;
                for (k, v) in run {
                    if k == "label" {
                        label = Some(v.as_str().map_or_else(|| v.to_string(), str::to_string));
                        continue;
                    }
                    config = apply_value(&config, k, v.clone())
                        .map_err(|e| TrainError::Config(format!("run {} ({k}): {e}", i + 1)))?;
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    overrides.push((k.clone(), text));
                }
                let label = label.unwrap_or_else(|| label_of(&overrides));
                if slug(&label).chars().all(|c| c == '.') {
                    return Err(TrainError::Config(format!(
                        "run {}: the label `{label}` cannot name its run directory; \
                         a label needs a letter, digit, `-` or `_`",
                        i + 1
                    )));
                }
                seeds.push(Variant {
                    slug: slug(&label),
                    label,
                    overrides,
                    config,
                });
            }
        }
        None => seeds.push(Variant {
            label: "base".into(),
            slug: "base".into(),
            overrides: Vec::new(),
            config: base.clone(),
        }),
    }
    let mut variants = seeds;
    for spec in vary {
        let mut next = Vec::with_capacity(variants.len() * spec.values.len());
        for v in &variants {
            for value in &spec.values {
                let config = apply_text(&v.config, &spec.key, value).map_err(|e| {
                    let e = match e {
                        TrainError::Config(m) => m,
                        other => other.to_string(),
                    };
                    TrainError::Config(format!("--vary {}={value}: {e}", spec.key))
                })?;
                let mut overrides = v.overrides.clone();
                overrides.push((spec.key.clone(), value.clone()));
                let label = if runs.is_none() {
                    label_of(&overrides)
                } else {
                    format!("{}, {}={value}", v.label, spec.key)
                };
                next.push(Variant {
                    slug: slug(&label),
                    label,
                    overrides,
                    config,
                });
            }
        }
        variants = next;
    }
    // The first check of each run's plan, here with the variant's label.
    for v in &variants {
        v.config
            .checked_optimizer()
            .map_err(|e| TrainError::Config(format!("{}: {e}", v.label)))?;
    }
    // Distinct directory names.
    let mut seen = std::collections::HashSet::new();
    for v in &mut variants {
        let stem = v.slug.clone();
        let mut k = 2;
        while !seen.insert(v.slug.clone()) {
            v.slug = format!("{stem}-{k}");
            k += 1;
        }
    }
    Ok(variants)
}

fn label_of(overrides: &[(String, String)]) -> String {
    if overrides.is_empty() {
        return "base".into();
    }
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One run of a comparison: a variant with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Index into the manifest's variants.
    pub variant: usize,
    pub repeat: usize,
    pub seed: u64,
    /// The run's directory, relative to the comparison directory.
    pub dir: String,
    /// `pending`, `completed`, `early_stopped`, `diverged` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `repeats` runs per variant (at least one), seeds `seed + r`.
pub fn plan(variants: &[Variant], repeats: usize) -> Vec<PlannedRun> {
    let repeats = repeats.max(1);
    let mut out = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        for r in 0..repeats {
            let seed = v.config.seed.wrapping_add(r as u64);
            let dir = if repeats == 1 {
                v.slug.clone()
            } else {
                format!("{}-seed{seed}", v.slug)
            };
            out.push(PlannedRun {
                variant: i,
                repeat: r,
                seed,
                dir,
                status: "pending".into(),
                error: None,
            });
        }
    }
    out
}

impl PlannedRun {
    /// The run's configuration: its variant's with its seed.
    pub fn config(&self, variants: &[Variant]) -> TrainConfig {
        TrainConfig {
            seed: self.seed,
            ..variants[self.variant].config.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_specs_make_a_grid_of_labelled_validated_variants() {
        let base = TrainConfig::default();
        let vary: Vec<VarySpec> = ["optimizer=sgd,adam", "dropout=0,0.5", "batch-norm=off,on"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let v = expand(&base, None, &vary).unwrap();
        assert_eq!(v.len(), 8);
        assert_eq!(v[0].label, "optimizer=sgd, dropout=0, batch_norm=off");
        assert_eq!(v[7].label, "optimizer=adam, dropout=0.5, batch_norm=on");
        assert_eq!(v[7].slug, "optimizer-adam_dropout-0.5_batch_norm-on");
        assert_eq!(v[7].config.optimizer, "adam");
        assert_eq!(v[7].config.dropout, 0.5);
        assert!(v[7].config.batch_norm && !v[0].config.batch_norm);
        let v = expand(
            &base,
            None,
            &["l2=0,1e-4".parse().unwrap(), "lr=0.1".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(v[1].config.l2, 1e-4);
        assert_eq!(v[1].config.lr, Some(0.1));
        let runs = plan(&v, 3);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[4].seed, base.seed + 1);
        assert_eq!(runs[4].dir, "l2-1e-4_lr-0.1-seed1");
    }

    #[test]
    fn bad_vary_specs_are_config_errors() {
        let base = TrainConfig::default();
        for (spec, needle) in [
            ("optimizer", "KEY=VALUE"),
            ("=1", "empty"),
            ("dropout=", "no values"),
        ] {
            let err = spec.parse::<VarySpec>().unwrap_err();
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
        for (spec, needle) in [
            ("optimizer=sgd,lbfgs", "lbfgs"),
            ("dropout=1.5", "dropout 1.5"),
            ("learning_rate=0.1", "learning_rate"),
            ("activation=swishy", "swishy"),
            ("epochs=many", "epochs"),
        ] {
            let err = expand(&base, None, &[spec.parse().unwrap()]).unwrap_err();
            assert!(matches!(err, TrainError::Config(_)), "{err:?}");
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn a_key_or_value_given_twice_or_empty_is_an_error() {
        for (spec, needle) in [
            ("lr=0.1,0.1", "0.1 is given twice"),
            ("lr=0.1,1e-1", "1e-1 is given twice (as 0.1)"),
            ("epochs=1,1.0", "1.0 is given twice (as 1)"),
            ("batch_norm=on,true", "true is given twice (as on)"),
            ("lr=0.1,,0.2", "value 2 of 3 is empty"),
            ("lr=0.1,", "value 2 of 2 is empty"),
            ("lr= , ", "value 1 of 2 is empty"),
        ] {
            let err = spec.parse::<VarySpec>().unwrap_err();
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
        let vary: Vec<VarySpec> = ["lr=0.1,0.2", "dropout=0", "lr=0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let err = expand(&TrainConfig::default(), None, &vary).unwrap_err();
        assert!(
            err.to_string().contains("--vary lr is given twice"),
            "{err}"
        );
        let vary: Vec<VarySpec> = ["batch-norm=on", "batch_norm=off"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(expand(&TrainConfig::default(), None, &vary).is_err());
    }

    #[test]
    fn plans_are_sized_before_they_are_made() {
        let vary: Vec<VarySpec> = ["lr=0.1,0.2,0.3", "dropout=0,0.5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(run_count(1, &vary, 4), Some(24));
        assert_eq!(run_count(5, &vary, 1), Some(30));
        assert_eq!(run_count(1, &vary, usize::MAX), None);
        assert!(check_plan_size(Some(CONFIRM_RUNS), false, "runs", "x").is_ok());
        let err = check_plan_size(Some(CONFIRM_RUNS + 1), false, "runs", "x").unwrap_err();
        assert!(err.to_string().contains("--yes"), "{err}");
        assert!(check_plan_size(Some(MAX_RUNS), true, "runs", "x").is_ok());
        for n in [Some(MAX_RUNS + 1), None] {
            let err = check_plan_size(n, true, "fits", "3 sizes").unwrap_err();
            assert!(err.to_string().contains("fits, more than"), "{err}");
        }
    }

    #[test]
    fn a_runs_file_lists_variants_crossed_with_vary() {
        let file: RunsFile = toml::from_str(
            "[base]\nepochs = 2\n[[run]]\nlabel = \"plain SGD\"\noptimizer = \"sgd\"\nmomentum = 0\n\
             [[run]]\noptimizer = \"adam\"\nl2 = 0\n",
        )
        .unwrap();
        let v = expand(
            &TrainConfig::default(),
            Some(&file),
            &["seed=1,2".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].label, "plain SGD, seed=1");
        assert_eq!(v[0].config.momentum, Some(0.0));
        assert_eq!(v[0].config.epochs, 2);
        assert_eq!(
            v[2].label, "l2=0, optimizer=adam, seed=1",
            "keys in table order"
        );
        assert_eq!(v[3].config.seed, 2);
    }

    #[test]
    fn a_label_that_cannot_name_a_directory_is_an_error() {
        for label in [".", "..", "...", " . "] {
            let file: RunsFile =
                toml::from_str(&format!("[[run]]\nlabel = \"{label}\"\nlr = 0.1\n")).unwrap();
            let err = expand(&TrainConfig::default(), Some(&file), &[]).unwrap_err();
            assert!(
                err.to_string().contains("cannot name its run directory"),
                "{label}: {err}"
            );
        }
        let file: RunsFile = toml::from_str("[[run]]\nlabel = \".a\"\nlr = 0.1\n").unwrap();
        assert_eq!(
            expand(&TrainConfig::default(), Some(&file), &[]).unwrap()[0].slug,
            ".a"
        );
    }
}
