//! `optimizer_params` (`--optimizer-param`) of a configuration: they reach
//! the optimizer over the other settings and the run's record; a key the
//! optimizer lacks, a wrong type or a bad value is a `TrainError::Config`
//! naming it; `--vary optimizer=...` takes every optimizer.

use cnn_train::{TrainConfig, TrainError};

fn config(text: &str) -> TrainConfig {
    TrainConfig::from_toml(text, std::path::Path::new("run.toml")).unwrap()
}

#[test]
fn params_from_a_config_file_reach_the_optimizer_over_the_flags() {
    let c = config(
        "optimizer = \"adam\"\nmomentum = 0.8\n\
         optimizer_params = { betas = [0.7, 0.99], eps = 1e-6 }\n",
    );
    let opt = c.checked_optimizer().unwrap();
    let json = serde_json::to_value(&opt).unwrap();
    assert_eq!(json["betas"], serde_json::json!([0.7, 0.99]));
    assert_eq!(json["eps"], serde_json::json!(1e-6));
    // The record of a run keeps them.
    let record = c.with_optimizer_defaults(&opt).to_toml();
    assert!(record.contains("[optimizer_params]"), "{record}");
    assert!(record.contains("eps = 0.000001"), "{record}");
    assert_eq!(config(&record).optimizer_config().unwrap(), opt);
}

#[test]
fn a_bad_key_or_value_is_a_config_error_naming_it() {
    for (text, want) in [
        (
            "optimizer = \"adam\"\noptimizer_params = { momentum = 0.9 }",
            "optimizer_params for `adam`: invalid optimizer config: adam has no parameter \
             `momentum` (it is a parameter of sgd, rmsprop",
        ),
        (
            "optimizer_params = { nesterov = \"yes\" }",
            "optimizer_params for `sgd`: invalid optimizer config: sgd: invalid type",
        ),
        (
            "optimizer = \"adamw\"\noptimizer_params = { weight_decay = -1 }",
            "optimizer_params for `adamw`: invalid value for `weight_decay` = -1",
        ),
        (
            "optimizer = \"rprop\"\nweight_decay = 0.1",
            "rprop has no weight decay",
        ),
        (
            "optimizer = \"muon\"\noptimizer_params = { adjust_lr_fn = \"fast\" }",
            "optimizer_params for `muon`: invalid value for `adjust_lr_fn` = fast",
        ),
    ] {
        // Parsed without the file's checks (which report the same
        // error against the file).
        let c: TrainConfig = toml::from_str(text).unwrap();
        match c.checked_optimizer() {
            Err(TrainError::Config(m)) => assert!(m.starts_with(want), "{m}\nwant: {want}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn compare_varies_every_new_optimizer() {
    use cnn_train::compare::{VarySpec, expand};
    let spec: VarySpec = "optimizer=adamw,lion,muon,adafactor,asgd,rprop,lamb,lars"
        .parse()
        .unwrap();
    let variants = expand(&TrainConfig::default(), None, &[spec]).unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v.config.optimizer_config().unwrap().name())
        .collect();
    assert_eq!(
        names,
        [
            "adamw",
            "lion",
            "muon",
            "adafactor",
            "asgd",
            "rprop",
            "lamb",
            "lars"
        ]
    );
}
