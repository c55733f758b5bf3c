//! The single error type for everything this crate reads: files, overrides and values.
//! Every variant names where the problem came from so a one-line message is actionable.

use std::io;

/// A configuration problem. Its `Display` is always a single line, because the
/// server prints it as its last words before exiting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },

    #[error("{}: {message}", location(file, *line))]
    Parse {
        file: String,
        line: Option<usize>,
        message: String,
    },

    #[error("invalid value {value:?} for {key} in {file}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        file: String,
        expected: String,
    },

    #[error("missing required config {key} in {file}")]
    Missing { key: String, file: String },
}

fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    }
}
