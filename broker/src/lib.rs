//! The Sluice broker: a Kafka-protocol server over a partitioned, segmented log on disk.
//! `server` wires the pieces; `request` routes frames to `handlers`; `replica_manager` owns the
//! partitions; `log` is the storage; `metadata` keeps the topics of a standalone cluster;
//! `controller` is the quorum that keeps the metadata of a multi-broker cluster.

pub mod cluster;
pub mod config;
pub mod controller;
pub mod error;
pub mod group;
pub mod handlers;
pub mod log;
pub mod metadata;
pub mod network;
pub mod replica_manager;
pub mod replication;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod topic_config;

pub use config::{
    BrokerConfig, ControllerConfig, CoordinatorConfig, Endpoint, OffsetsTopicConfig, QuorumVoter,
};
pub use error::BrokerError;
pub use server::Broker;
