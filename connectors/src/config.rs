//! Small readers for the string-typed settings connectors receive.
//! Every failure is a `ConnectError::Config` that names the offending key.

use sluice_connect::connector::Props;
use sluice_connect::{ConnectError, Result};

/// A setting that may be absent; an empty or blank value counts as absent, because
/// properties files and REST bodies often carry `file=` to mean "not set".
pub(crate) fn optional(props: &Props, key: &str) -> Option<String> {
    props
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

pub(crate) fn required(props: &Props, key: &str) -> Result<String> {
    optional(props, key)
        .ok_or_else(|| ConnectError::Config(format!("missing required configuration \"{key}\"")))
}

/// A strictly positive count, `default` when unset.
pub(crate) fn positive(props: &Props, key: &str, default: usize) -> Result<usize> {
    match optional(props, key) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConnectError::Config(format!(
                "invalid value {v:?} for configuration \"{key}\": expected a positive integer"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn blank_counts_as_unset() {
        assert_eq!(optional(&props(&[("file", "  ")]), "file"), None);
        assert_eq!(
            optional(&props(&[("file", "a.txt")]), "file").as_deref(),
            Some("a.txt")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = required(&Props::new(), "topic").unwrap_err();
        assert!(err.to_string().contains("\"topic\""), "{err}");
        let err = positive(&props(&[("batch.size", "0")]), "batch.size", 5).unwrap_err();
        assert!(err.to_string().contains("\"batch.size\""), "{err}");
        assert!(positive(&props(&[("batch.size", "x")]), "batch.size", 5).is_err());
        assert_eq!(positive(&Props::new(), "batch.size", 5).unwrap(), 5);
        assert_eq!(
            positive(&props(&[("batch.size", "7")]), "batch.size", 5).unwrap(),
            7
        );
    }
}
