//! `StreamsError`: what can stop a task or a topology build, as values the runtime can act on
//! (a serde failure names its topic and whether the key or the value was at fault).

use crate::serdes::SerdeError;
use crate::state::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error("cannot {op} the {part} of a record on topic {topic}: {source}")]
    Serde {
        op: &'static str,
        part: &'static str,
        topic: String,
        source: SerdeError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("record type mismatch: expected {expected}, found {found}")]
    TypeMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid timestamp {timestamp} for a record on {topic} at offset {offset}")]
    InvalidTimestamp {
        topic: String,
        offset: i64,
        timestamp: i64,
    },
    #[error("topology: {0}")]
    Topology(String),
    #[error("{0}")]
    Processor(String),
    #[error("config: {0}")]
    Config(String),
    /// The runtime's dealings with the cluster (topics, clients, state directory).
    #[error("{0}")]
    Runtime(String),
}

impl StreamsError {
    pub(crate) fn serde(
        op: &'static str,
        part: &'static str,
        topic: &str,
        source: SerdeError,
    ) -> StreamsError {
        StreamsError::Serde {
            op,
            part,
            topic: topic.to_string(),
            source,
        }
    }
}
