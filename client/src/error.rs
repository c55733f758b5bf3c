//! `ClientError`: everything a client call can fail with, and which failures are worth a retry.

use sluice_protocol::{ErrorCode, ProtocolError};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with a Kafka error code.
    #[error("{context}: {code:?} ({}){}", code.code(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        code: ErrorCode,
        message: Option<String>,
        context: String,
    },
    #[error("{key} = {value:?} in {source_name}: {reason}")]
    Config {
        key: String,
        value: String,
        source_name: String,
        reason: String,
    },
    /// The file could not be read or parsed; the message names it.
    #[error("{0}")]
    ConfigFile(String),
    #[error("connection to {addr}: {error}")]
    Io { addr: String, error: std::io::Error },
    #[error("unreadable response from {addr}: {error}")]
    Protocol { addr: String, error: ProtocolError },
    #[error("{0} timed out")]
    Timeout(String),
    #[error("no broker reachable (tried {0})")]
    NoBrokers(String),
    #[error("the connection to {0} was closed")]
    Disconnected(String),
    #[error("the broker does not support {api} at any version this client speaks")]
    UnsupportedVersion { api: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    pub fn broker(code: ErrorCode, message: Option<String>, context: impl Into<String>) -> Self {
        ClientError::Broker {
            code,
            message,
            context: context.into(),
        }
    }

    /// Whether trying again (after refreshing metadata or reconnecting) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => is_retriable_code(*code),
            ClientError::Io { .. }
            | ClientError::Timeout(_)
            | ClientError::Disconnected(_)
            | ClientError::NoBrokers(_) => true,
            _ => false,
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Kafka's retriable errors, the ones a client recovers from by waiting, refreshing metadata or
/// finding the coordinator again.
pub fn is_retriable_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::CorruptMessage
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::NotLeaderOrFollower
            | ErrorCode::RequestTimedOut
            | ErrorCode::NetworkException
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::NotCoordinator
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::NotEnoughReplicasAfterAppend
            | ErrorCode::KafkaStorageError
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::OffsetNotAvailable
            | ErrorCode::PreferredLeaderNotAvailable
    )
}

/// Whether the error means our picture of partition leadership is stale.
pub fn needs_metadata_refresh(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UnknownTopicOrPartition
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::NotLeaderOrFollower
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::KafkaStorageError
    )
}
