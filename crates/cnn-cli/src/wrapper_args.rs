//! `--lookahead [k=K,alpha=A]` and `--sam [rho=R,adaptive=B]`: the optimizer
//! wrappers' flags, each usable alone (the reference's defaults) or with
//! comma-separated `KEY=VALUE` parameters by the reference's names,
//! checked here so that a bad one is one line naming it.

use cnn::optim::{LookaheadConfig, SamConfig};
use serde::de::DeserializeOwned;

/// `k=6,alpha=0.6` (or nothing) into the wrapper's config over its
/// defaults: unknown keys, bad numbers and values out of range are errors.
fn parse_params<T: DeserializeOwned>(flag: &str, keys: &str, s: &str) -> Result<T, String> {
    let mut table = toml::Table::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("{flag}: expected KEY=VALUE ({keys}), got `{pair}`"))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| {
                format!("{flag}: `{key}` needs a number or true/false, got `{value}`")
            })?;
        if table.insert(key.to_string(), value).is_some() {
            return Err(format!("{flag}: `{key}` given twice"));
        }
    }
    let whole = toml::Value::Table(table.clone()).try_into::<T>();
    whole.map_err(|e| {
        // serde's message names the type, not the key: find the key whose
        // value alone is refused, when there is one.
        let culprit = table.iter().find(|(k, v)| {
            let one = toml::Table::from_iter([(k.to_string(), (*v).clone())]);
            toml::Value::Table(one).try_into::<T>().is_err()
        });
        match culprit {
            Some((k, _)) if !e.message().contains(&format!("`{k}`")) => {
                format!("{flag}: `{k}`: {}", e.message().trim())
            }
            _ => format!("{flag}: {}", e.message().trim()),
        }
    })
}

/// `--lookahead`'s value.
pub(crate) fn parse_lookahead(s: &str) -> Result<LookaheadConfig, String> {
    let c: LookaheadConfig = parse_params("--lookahead", "k, alpha", s)?;
    c.validate().map_err(|e| format!("--lookahead: {e}"))?;
    Ok(c)
}

/// `--sam`'s value.
pub(crate) fn parse_sam(s: &str) -> Result<SamConfig, String> {
    let c: SamConfig = parse_params("--sam", "rho, adaptive", s)?;
    c.validate().map_err(|e| format!("--sam: {e}"))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_gives_the_reference_defaults_and_parameters_override_them() {
        assert_eq!(
            parse_lookahead("").unwrap(),
            LookaheadConfig { k: 5, alpha: 0.5 }
        );
        assert_eq!(
            parse_lookahead("k=6, alpha=0.6").unwrap(),
            LookaheadConfig { k: 6, alpha: 0.6 }
        );
        let sam = |rho, adaptive| SamConfig { rho, adaptive };
        assert_eq!(parse_sam("").unwrap(), sam(0.05, false));
        assert_eq!(parse_sam("rho=0.1").unwrap(), sam(0.1, false));
        assert_eq!(parse_sam("adaptive=true").unwrap(), sam(0.05, true));
        assert_eq!(parse_sam("adaptive=true,rho=2").unwrap(), sam(2.0, true));
    }

    #[test]
    fn bad_parameters_name_what_is_wrong() {
        let e = parse_lookahead("kk=3").unwrap_err();
        assert!(e.contains("unknown field `kk`"), "{e}");
        let e = parse_lookahead("alpha=1.5").unwrap_err();
        assert!(e.contains("alpha") && e.contains("[0, 1]"), "{e}");
        let e = parse_lookahead("k=0").unwrap_err();
        assert!(e.contains("`k`"), "{e}");
        let e = parse_sam("rho=-1").unwrap_err();
        assert!(e.contains("rho"), "{e}");
        let e = parse_sam("rho").unwrap_err();
        assert!(e.contains("KEY=VALUE"), "{e}");
        let e = parse_sam("rho=abc").unwrap_err();
        assert!(e.contains("number"), "{e}");
        let e = parse_sam("adaptive=1").unwrap_err();
        assert!(e.contains("adaptive") && e.contains("bool"), "{e}");
        assert!(!e.contains('\n'));
    }
}
