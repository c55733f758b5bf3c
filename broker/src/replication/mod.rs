//! Replication of partitions between brokers (issue 5, in progress): the leader's view of its
//! followers, the ISR and the high watermark (`leader`). Follower fetching and the wiring into
//! the replica manager come with the controller quorum.

pub mod leader;

pub use leader::{IsrProposal, IsrState, LeaderUpdate, Leadership, PartitionLeader};
