//! The one error type of the Connect runtime.
//! Data, configuration and plugin-lookup failures all surface as `ConnectError`.

use thiserror::Error;

/// Everything that can go wrong in the Connect runtime.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConnectError {
    /// A value does not fit its schema, or bytes cannot be turned into Connect data
    /// (Kafka's `DataException`).
    #[error("data error: {0}")]
    Data(String),
    /// A connector, task or converter was given a configuration it cannot use.
    #[error("config error: {0}")]
    Config(String),
    /// No plugin is registered under the requested class name.
    #[error("unknown {kind} class: {class}")]
    UnknownClass { kind: &'static str, class: String },
    /// A connector or task failed while running.
    #[error("connector error: {0}")]
    Connector(String),
    /// The named connector does not exist (the REST API's 404).
    #[error("{0}")]
    NotFound(String),
}

impl ConnectError {
    pub fn data(msg: impl Into<String>) -> Self {
        ConnectError::Data(msg.into())
    }
}

pub type Result<T, E = ConnectError> = std::result::Result<T, E>;
