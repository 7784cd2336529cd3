//! The optimizer wrappers as varied keys (`--vary sam=0,0.05`,
//! `sam.rho=...`, `sam.adaptive=...`, `lookahead=off,on`,
//! `lookahead.k=...`) and in a runs file's `[[run]]` tables: each value
//! gives the configuration it names, bad ones are configuration errors
//! that say which forms the key takes.

use cnn_optim::{LookaheadConfig, SamConfig};
use cnn_train::compare::{self, VarySpec, apply_text, apply_value};
use cnn_train::{TrainConfig, TrainError};

fn sam(rho: f64, adaptive: bool) -> Option<SamConfig> {
    Some(SamConfig { rho, adaptive })
}

fn message(e: TrainError) -> String {
    match e {
        TrainError::Config(m) => m,
        other => panic!("not a configuration error: {other}"),
    }
}

#[test]
fn sam_takes_off_on_a_rho_or_one_parameter() {
    let base = TrainConfig::default();
    assert_eq!(
        apply_text(&base, "sam", "0.05").unwrap().sam,
        sam(0.05, false)
    );
    assert_eq!(apply_text(&base, "sam", "1").unwrap().sam, sam(1.0, false));
    // 0 is no SAM (rho = 0 takes the inner optimizer's steps).
    assert_eq!(apply_text(&base, "sam", "0").unwrap().sam, None);
    assert_eq!(
        apply_text(&base, "sam", "on").unwrap().sam,
        sam(0.05, false)
    );
    let with = apply_text(&base, "sam", "0.2").unwrap();
    assert_eq!(apply_text(&with, "sam", "off").unwrap().sam, None);
    // `on` keeps the base's settings; a rho keeps its other parameters.
    let asam = apply_text(&base, "sam.adaptive", "true").unwrap();
    assert_eq!(asam.sam, sam(0.05, true));
    assert_eq!(apply_text(&asam, "sam", "on").unwrap().sam, sam(0.05, true));
    assert_eq!(apply_text(&asam, "sam", "2").unwrap().sam, sam(2.0, true));
    assert_eq!(
        apply_text(&base, "sam.rho", "0.1").unwrap().sam,
        sam(0.1, false)
    );
    assert_eq!(
        apply_text(&base, "sam.adaptive", "off").unwrap().sam,
        sam(0.05, false)
    );
    // The rest of the configuration is untouched.
    let mut expected = apply_text(&base, "sam", "0.05").unwrap();
    expected.sam = None;
    assert_eq!(expected, base);
}

#[test]
fn lookahead_takes_off_on_or_one_parameter() {
    let base = TrainConfig::default();
    let la = |k, alpha| Some(LookaheadConfig { k, alpha });
    assert_eq!(
        apply_text(&base, "lookahead", "on").unwrap().lookahead,
        la(5, 0.5)
    );
    assert_eq!(
        apply_text(&base, "lookahead", "off").unwrap().lookahead,
        None
    );
    assert_eq!(
        apply_text(&base, "lookahead.k", "10").unwrap().lookahead,
        la(10, 0.5)
    );
    let a = apply_text(&base, "lookahead.alpha", "0.8").unwrap();
    assert_eq!(a.lookahead, la(5, 0.8));
    assert_eq!(
        apply_text(&a, "lookahead.k", "3").unwrap().lookahead,
        la(3, 0.8)
    );
}

#[test]
fn runs_file_tables_and_values_set_the_wrappers() {
    let base = TrainConfig::default();
    let table: toml::Table = toml::from_str("rho = 0.3\nadaptive = true").unwrap();
    let c = apply_value(&base, "sam", toml::Value::Table(table)).unwrap();
    assert_eq!(c.sam, sam(0.3, true));
    assert_eq!(
        apply_value(&c, "sam", toml::Value::Boolean(false))
            .unwrap()
            .sam,
        None
    );
    assert_eq!(
        apply_value(&base, "sam", toml::Value::Float(0.1))
            .unwrap()
            .sam,
        sam(0.1, false)
    );
    assert_eq!(
        apply_value(&base, "lookahead", toml::Value::Boolean(true))
            .unwrap()
            .lookahead,
        Some(LookaheadConfig::default())
    );
}

#[test]
fn bad_wrapper_values_name_the_forms_the_key_takes() {
    let base = TrainConfig::default();
    for (key, value, needle) in [
        ("lookahead", "3", "takes off, on or a table"),
        ("sam", "maybe", "a number (its rho; 0 is off)"),
        ("sam.radius", "1", "unknown field `radius`"),
        ("sam.rho", "-1", "rho"),
        ("lookahead.alpha", "2", "alpha"),
        ("lookahead.k", "0", "`k`"),
        ("sam.", "1", "expected sam.PARAMETER"),
        ("sam.adaptive", "maybe", "adaptive"),
    ] {
        let spec: VarySpec = format!("{key}={value}").parse().unwrap();
        let e = message(compare::expand(&base, None, &[spec]).unwrap_err());
        assert!(e.contains(needle), "{key}={value}: {e}");
        assert!(!e.contains('\n'), "{key}={value}: {e}");
    }
    // A wrapper around schedule-free SGD that cannot be: still refused.
    let sf = apply_text(&base, "optimizer", "schedule_free_sgd").unwrap();
    let spec: VarySpec = "lookahead=off,on".parse().unwrap();
    let e = message(compare::expand(&sf, None, &[spec]).unwrap_err());
    assert!(e.contains("lookahead cannot wrap"), "{e}");
}

#[test]
fn a_grid_over_sam_and_lookahead_expands_to_four_variants() {
    let base = TrainConfig::default();
    let vary: Vec<VarySpec> = ["sam=0,0.05", "lookahead=off,on"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let variants = compare::expand(&base, None, &vary).unwrap();
    let got: Vec<(String, bool, bool)> = variants
        .iter()
        .map(|v| {
            (
                v.label.clone(),
                v.config.sam.is_some(),
                v.config.lookahead.is_some(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("sam=0, lookahead=off".to_string(), false, false),
            ("sam=0, lookahead=on".to_string(), false, true),
            ("sam=0.05, lookahead=off".to_string(), true, false),
            ("sam=0.05, lookahead=on".to_string(), true, true),
        ]
    );
}
