//! Hyperparameters given by name over an optimizer's values
//! (`--optimizer-param betas=[0.9,0.99]`, a config file's
//! `optimizer_params`): [`OptimizerConfig::with_params`].
//!
//! The keys are the reference implementation's argument names (the fields
//! of the rule's config struct); a key the optimizer does not have is an
//! error that says which optimizers have it and lists the ones it has.

use serde_json::Value;

use crate::config::OptimizerConfig;
use crate::error::{OptimError, Result};

fn config_error(message: String) -> OptimError {
    OptimError::Config {
        what: "optimizer",
        message,
    }
}

/// The config's fields as a JSON object (`kind` included).
fn fields(config: &OptimizerConfig) -> Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(config) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(config_error(format!("not an object: {other}"))),
        Err(e) => Err(config_error(e.to_string())),
    }
}

/// The optimizers (by name) that have a parameter `key`.
fn owners_of(key: &str) -> Vec<&'static str> {
    OptimizerConfig::NAMES
        .iter()
        .copied()
        .filter(|name| {
            OptimizerConfig::from_name(name)
                .and_then(|c| fields(&c))
                .is_ok_and(|obj| obj.contains_key(key))
        })
        .collect()
}

impl OptimizerConfig {
    /// This config with each `(key, value)` set, keys by the reference's
    /// argument names (`betas`, `weight_decay`), values as JSON (a number,
    /// boolean, string or array; integers are taken where floats are
    /// expected). The result is validated. A key this optimizer does not
    /// have, `kind`, a value of the wrong type or out of its domain is an
    /// error naming the key.
    pub fn with_params<'a>(
        self,
        params: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Self> {
        let name = self.name();
        let mut obj = fields(&self)?;
        for (key, value) in params {
            if key == "kind" {
                return Err(config_error(
                    "`kind` is set by the optimizer's name, not as a parameter".into(),
                ));
            }
            if !obj.contains_key(key) {
                let owners = owners_of(key);
                let hint = if owners.is_empty() {
                    String::new()
                } else {
                    format!(" (it is a parameter of {})", owners.join(", "))
                };
                let known: Vec<&str> = obj
                    .keys()
                    .map(String::as_str)
                    .filter(|k| *k != "kind")
                    .collect();
                return Err(config_error(format!(
                    "{name} has no parameter `{key}`{hint}; its parameters are: {}",
                    known.join(", ")
                )));
            }
            obj.insert(key.to_string(), value);
        }
        let config: Self = serde_json::from_value(Value::Object(obj))
            .map_err(|e| config_error(format!("{name}: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_set_fields_by_the_reference_names() {
        let c = OptimizerConfig::from_name("adam")
            .unwrap()
            .with_params([("betas", json!([0.8, 0.99])), ("amsgrad", json!(true))])
            .unwrap();
        match c {
            OptimizerConfig::Adam(a) => {
                assert_eq!(a.betas, (0.8, 0.99));
                assert!(a.amsgrad);
                assert_eq!(a.lr, 1e-3);
            }
            other => panic!("{other:?}"),
        }
        // An integer where a float is expected.
        let c = OptimizerConfig::from_name("sgd")
            .unwrap()
            .with_params([("lr", json!(1))])
            .unwrap();
        assert_eq!(c.lr(), 1.0);
    }

    #[test]
    fn unknown_other_and_bad_keys_are_errors_naming_the_key() {
        let adam = OptimizerConfig::from_name("adam").unwrap();
        let err = adam
            .clone()
            .with_params([("momentum", json!(0.9))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("adam has no parameter `momentum`"), "{err}");
        assert!(err.contains("(it is a parameter of sgd, rmsprop"), "{err}");
        assert!(err.contains("its parameters are: "), "{err}");
        let err = adam
            .clone()
            .with_params([("momentun", json!(0.9))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no parameter `momentun`;") && !err.contains("it is a parameter"),
            "{err}"
        );
        let err = adam
            .clone()
            .with_params([("betas", json!("fast"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("adam: invalid type"), "{err}");
        let err = adam
            .clone()
            .with_params([("eps", json!(-1.0))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`eps` = -1"), "{err}");
        let err = adam
            .with_params([("kind", json!("sgd"))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`kind` is set by the optimizer's name"),
            "{err}"
        );
    }
}
