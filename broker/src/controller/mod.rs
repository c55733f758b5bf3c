//! The KRaft-style controller: cluster metadata (brokers, topics, partitions, configs) as a log
//! of `MetadataRecord`s, the active controller's decisions over it, and the quorum replicating it.

pub mod image;
pub mod placement;
pub mod quorum_controller;
pub mod raft;
pub mod records;

pub use image::{BrokerRegistration, ClusterImage, PartitionRef, PartitionState, TopicImage};
pub use placement::{assign_replicas, PlacementStart};
pub use quorum_controller::{
    BrokerHeartbeatRequest, BrokerRegistrationRequest, ControllerReply, ControllerRequest,
    ControllerSettings, CreatedTopic, ElectedLeader, HeartbeatReply, IsrUpdate, NewPartitions,
    NewTopic, Outcome, PartitionResult, QuorumController, TopicResult, PRODUCER_ID_BLOCK_SIZE,
};
pub use raft::log_store::DIR_NAME as METADATA_DIR_NAME;
pub use raft::{ControllerHandle, ControllerNode, MetadataBatch};
pub use records::{
    BrokerEndpoint, ConfigRecord, ConfigResourceType, MetadataRecord, NodeId,
    PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, NO_LEADER,
};
