//! The optimizer wrappers as keys of `--vary` and of a runs file's
//! `[[run]]` tables: `sam` and `lookahead` switch a wrapper off or on
//! (`--vary sam=off,on`, `--vary lookahead=off,on`), a number for `sam` is
//! its `rho` (`--vary sam=0,0.05,0.1`, where 0 is no SAM: SAM with
//! `rho = 0` takes the same steps at twice the cost), and a dotted key
//! sets one parameter of a wrapper, switching it on with the reference's
//! defaults for the others (`--vary sam.rho=0.05,0.1`, `sam.adaptive=false,true`,
//! `lookahead.k=5,10`, `lookahead.alpha=0.5,0.8`). A table value (a runs
//! file's `sam = { rho = 0.1 }`) replaces the wrapper's settings, as any
//! table key does.

use crate::error::{Result, TrainError};

/// The configuration keys that hold an optional wrapper table.
const WRAPPERS: [&str; 2] = ["sam", "lookahead"];

/// Set a wrapper key of `table` (a [`TrainConfig`](crate::TrainConfig) as
/// TOML) to `value`. Returns `Ok(false)` when `key` is not a wrapper key,
/// leaving `table` alone; a value the key cannot take is an error naming
/// the forms it takes.
pub(super) fn apply(table: &mut toml::Table, key: &str, value: &toml::Value) -> Result<bool> {
    if let Some((wrapper, field)) = key.split_once('.') {
        if !WRAPPERS.contains(&wrapper) {
            return Ok(false);
        }
        if field.is_empty() || field.contains('.') {
            return Err(TrainError::Config(format!(
                "`{key}`: expected {wrapper}.PARAMETER, e.g. {}",
                example(wrapper)
            )));
        }
        let value = match value {
            toml::Value::String(s) => on_off(s).map_or_else(|| value.clone(), toml::Value::Boolean),
            v => v.clone(),
        };
        let settings = wrapper_table(table, wrapper);
        settings.insert(field.to_string(), value);
        return Ok(true);
    }
    if !WRAPPERS.contains(&key) {
        return Ok(false);
    }
    let switch = match value {
        toml::Value::Boolean(b) => Some(*b),
        toml::Value::String(s) => on_off(s),
        _ => None,
    };
    let number = match value {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    match (switch, number, value) {
        (Some(false), _, _) => {
            table.remove(key);
        }
        (Some(true), _, _) => {
            wrapper_table(table, key);
        }
        (None, _, toml::Value::Table(_)) => {
            table.insert(key.to_string(), value.clone());
        }
        (None, Some(rho), _) if key == "sam" => {
            if rho == 0.0 {
                table.remove(key);
            } else {
                wrapper_table(table, key).insert("rho".into(), toml::Value::Float(rho));
            }
        }
        _ => {
            let numbers = if key == "sam" {
                ", a number (its rho; 0 is off)"
            } else {
                ""
            };
            return Err(TrainError::Config(format!(
                "`{key}` takes off, on{numbers} or a table; got `{value}` \
                 (or vary one parameter, e.g. {})",
                example(key)
            )));
        }
    }
    Ok(true)
}

/// The wrapper's table in `table`, made empty (the defaults) when absent.
fn wrapper_table<'a>(table: &'a mut toml::Table, wrapper: &str) -> &'a mut toml::Table {
    let entry = table
        .entry(wrapper.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    entry.as_table_mut().expect("made a table above")
}

fn example(wrapper: &str) -> &'static str {
    if wrapper == "sam" {
        "sam.rho=0.05,0.1"
    } else {
        "lookahead.k=5,10"
    }
}

/// `on`/`off` and their synonyms, as `--vary` reads booleans.
fn on_off(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" | "none" => Some(false),
        _ => None,
    }
}
