//! The broker's error type and its mapping to Kafka error codes at the protocol edge.
//! Handlers return these; only the response encoders turn them into numbers.

use serde::{Deserialize, Serialize};
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

/// A `BrokerError` as it crosses the controller network in a forwarded submission's reply. The
/// kinds a controller decision produces keep their kind (and so their Kafka code); local storage
/// and transport failures on the leader arrive as their nearest equivalent with the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    UnknownTopicOrPartition(String),
    InvalidTopic(String),
    TopicAlreadyExists(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidReplicaAssignment(String),
    InvalidConfig(String),
    /// Storage on the leader (its `Log`, `Io` and `Metadata` errors), all KAFKA_STORAGE_ERROR.
    Storage(String),
    Peer(String),
    NotController {
        leader: Option<i32>,
    },
    Quorum(String),
    StaleBrokerEpoch(String),
    BrokerIdNotRegistered(String),
    DuplicateBrokerRegistration(String),
    FencedLeaderEpoch(String),
    InvalidUpdateVersion(String),
    IneligibleReplica(String),
    InvalidRequest(String),
    UnknownTopicId(String),
    NotLeaderOrFollower(String),
    PreferredLeaderNotAvailable(String),
}

impl From<&BrokerError> for WireError {
    fn from(e: &BrokerError) -> Self {
        use BrokerError as B;
        match e {
            B::Log(_) | B::Io(_) | B::Metadata(_) => WireError::Storage(e.to_string()),
            // A controller never decodes records; should one fail to, the request was bad.
            B::Protocol(p) => WireError::InvalidRequest(p.to_string()),
            B::UnknownTopicOrPartition(m) => WireError::UnknownTopicOrPartition(m.clone()),
            B::InvalidTopic(m) => WireError::InvalidTopic(m.clone()),
            B::TopicAlreadyExists(m) => WireError::TopicAlreadyExists(m.clone()),
            B::InvalidPartitions(m) => WireError::InvalidPartitions(m.clone()),
            B::InvalidReplicationFactor(m) => WireError::InvalidReplicationFactor(m.clone()),
            B::InvalidReplicaAssignment(m) => WireError::InvalidReplicaAssignment(m.clone()),
            B::InvalidConfig(m) => WireError::InvalidConfig(m.clone()),
            B::Peer(m) => WireError::Peer(m.clone()),
            B::NotController { leader } => WireError::NotController { leader: *leader },
            B::Quorum(m) => WireError::Quorum(m.clone()),
            B::StaleBrokerEpoch(m) => WireError::StaleBrokerEpoch(m.clone()),
            B::BrokerIdNotRegistered(m) => WireError::BrokerIdNotRegistered(m.clone()),
            B::DuplicateBrokerRegistration(m) => WireError::DuplicateBrokerRegistration(m.clone()),
            B::FencedLeaderEpoch(m) => WireError::FencedLeaderEpoch(m.clone()),
            B::InvalidUpdateVersion(m) => WireError::InvalidUpdateVersion(m.clone()),
            B::IneligibleReplica(m) => WireError::IneligibleReplica(m.clone()),
            B::InvalidRequest(m) => WireError::InvalidRequest(m.clone()),
            B::UnknownTopicId(m) => WireError::UnknownTopicId(m.clone()),
            B::NotLeaderOrFollower(m) => WireError::NotLeaderOrFollower(m.clone()),
            B::PreferredLeaderNotAvailable(m) => WireError::PreferredLeaderNotAvailable(m.clone()),
        }
    }
}

impl From<WireError> for BrokerError {
    fn from(e: WireError) -> Self {
        use WireError as W;
        match e {
            W::UnknownTopicOrPartition(m) => BrokerError::UnknownTopicOrPartition(m),
            W::InvalidTopic(m) => BrokerError::InvalidTopic(m),
            W::TopicAlreadyExists(m) => BrokerError::TopicAlreadyExists(m),
            W::InvalidPartitions(m) => BrokerError::InvalidPartitions(m),
            W::InvalidReplicationFactor(m) => BrokerError::InvalidReplicationFactor(m),
            W::InvalidReplicaAssignment(m) => BrokerError::InvalidReplicaAssignment(m),
            W::InvalidConfig(m) => BrokerError::InvalidConfig(m),
            W::Storage(m) => BrokerError::Metadata(m),
            W::Peer(m) => BrokerError::Peer(m),
            W::NotController { leader } => BrokerError::NotController { leader },
            W::Quorum(m) => BrokerError::Quorum(m),
            W::StaleBrokerEpoch(m) => BrokerError::StaleBrokerEpoch(m),
            W::BrokerIdNotRegistered(m) => BrokerError::BrokerIdNotRegistered(m),
            W::DuplicateBrokerRegistration(m) => BrokerError::DuplicateBrokerRegistration(m),
            W::FencedLeaderEpoch(m) => BrokerError::FencedLeaderEpoch(m),
            W::InvalidUpdateVersion(m) => BrokerError::InvalidUpdateVersion(m),
            W::IneligibleReplica(m) => BrokerError::IneligibleReplica(m),
            W::InvalidRequest(m) => BrokerError::InvalidRequest(m),
            W::UnknownTopicId(m) => BrokerError::UnknownTopicId(m),
            W::NotLeaderOrFollower(m) => BrokerError::NotLeaderOrFollower(m),
            W::PreferredLeaderNotAvailable(m) => BrokerError::PreferredLeaderNotAvailable(m),
        }
    }
}

/// serde `with` for per-topic and per-partition results inside a forwarded reply.
pub(crate) mod wire_result {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Result, WireError};

    pub fn serialize<S: Serializer, T: Serialize>(
        r: &Result<T>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        r.as_ref().map_err(WireError::from).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> std::result::Result<Result<T>, D::Error> {
        let wire = std::result::Result::<T, WireError>::deserialize(d)?;
        Ok(wire.map_err(Into::into))
    }
}

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
