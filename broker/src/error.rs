//! The broker's error type and its mapping to Kafka error codes at the protocol edge.
//! Handlers return these; only the response encoders turn them into numbers.

use sluice_protocol::{ErrorCode, ProtocolError};
use thiserror::Error;

use crate::log::LogError;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("storage: {0}")]
    Log(#[from] LogError),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("metadata store: {0}")]
    Metadata(String),
    /// Talking to another broker failed (connect, timeout, a malformed answer).
    #[error("peer broker {0}")]
    Peer(String),
    #[error("this node is not the active controller{}", .leader.map_or(String::new(), |l| format!("; the leader is node {l}")))]
    NotController { leader: Option<i32> },
    /// The quorum could not take a write: the node is shutting down or lost its log storage.
    #[error("controller quorum: {0}")]
    Quorum(String),
    #[error("stale broker epoch: {0}")]
    StaleBrokerEpoch(String),
    #[error("broker not registered: {0}")]
    BrokerIdNotRegistered(String),
    #[error("duplicate broker registration: {0}")]
    DuplicateBrokerRegistration(String),
    #[error("fenced leader epoch: {0}")]
    FencedLeaderEpoch(String),
    #[error("invalid update version: {0}")]
    InvalidUpdateVersion(String),
    #[error("ineligible replica: {0}")]
    IneligibleReplica(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(String),
    #[error("not the leader: {0}")]
    NotLeaderOrFollower(String),
    #[error("preferred leader not available: {0}")]
    PreferredLeaderNotAvailable(String),
}

impl BrokerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::Log(e) => e.code(),
            BrokerError::Protocol(ProtocolError::CorruptBatch(_)) => ErrorCode::CorruptMessage,
            BrokerError::Protocol(ProtocolError::InvalidRecord(_)) => ErrorCode::InvalidRecord,
            BrokerError::Protocol(ProtocolError::UnsupportedCompression(_)) => {
                ErrorCode::UnsupportedCompressionType
            }
            BrokerError::Protocol(_) => ErrorCode::CorruptMessage,
            BrokerError::Io(_) | BrokerError::Metadata(_) => ErrorCode::KafkaStorageError,
            BrokerError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
            BrokerError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
            BrokerError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            BrokerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            BrokerError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
            BrokerError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            BrokerError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            BrokerError::Peer(_) => ErrorCode::NetworkException,
            // Either way the caller's remedy is the same: find the active controller again.
            BrokerError::NotController { .. } | BrokerError::Quorum(_) => ErrorCode::NotController,
            BrokerError::StaleBrokerEpoch(_) => ErrorCode::StaleBrokerEpoch,
            BrokerError::BrokerIdNotRegistered(_) => ErrorCode::BrokerIdNotRegistered,
            BrokerError::DuplicateBrokerRegistration(_) => ErrorCode::DuplicateBrokerRegistration,
            BrokerError::FencedLeaderEpoch(_) => ErrorCode::FencedLeaderEpoch,
            BrokerError::InvalidUpdateVersion(_) => ErrorCode::InvalidUpdateVersion,
            BrokerError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
            BrokerError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            BrokerError::UnknownTopicId(_) => ErrorCode::UnknownTopicId,
            BrokerError::PreferredLeaderNotAvailable(_) => ErrorCode::PreferredLeaderNotAvailable,
            BrokerError::NotLeaderOrFollower(_) => ErrorCode::NotLeaderOrFollower,
        }
    }
}

pub type Result<T> = std::result::Result<T, BrokerError>;

impl LogError {
    /// The Kafka error code a client gets for a storage failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            LogError::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
            // The appending replica is no longer the leader of the newest epoch.
            LogError::StaleLeaderEpoch { .. } => ErrorCode::NotLeaderOrFollower,
            LogError::InvalidBatch(_) => ErrorCode::CorruptMessage,
            LogError::BatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
            // A deleted partition's log: the client refreshes metadata and finds it gone.
            LogError::Closed => ErrorCode::UnknownTopicOrPartition,
            LogError::Io(_) | LogError::Corrupt(_) => ErrorCode::KafkaStorageError,
        }
    }
}
