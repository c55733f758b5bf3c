//! Replication of partitions between brokers (issue 5, in progress): the leader's view of its
//! followers, the ISR and the high watermark (`leader`); a follower's fetch position, divergent
//! tail truncation and high watermark (`follower`). Fetcher tasks and the wiring into the
//! replica manager come with the controller quorum.

pub mod channel;
pub mod follower;
pub mod leader;

pub use channel::BrokerChannel;
pub use follower::{DivergingEpoch, FollowerStep, PartitionFollower, Truncation};
pub use leader::{IsrProposal, IsrState, LeaderUpdate, Leadership, PartitionLeader};
