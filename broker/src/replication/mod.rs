//! Replication of partitions between brokers: the leader's view of its followers, the ISR and
//! the high watermark (`leader`); a follower's fetch position, divergent tail truncation and
//! high watermark (`follower`); the fetcher tasks that drive followers (`fetcher`); and the
//! partition states and ISR channel the replica manager is driven through (`state`).

pub mod channel;
pub mod fetcher;
pub mod follower;
pub mod leader;
pub mod state;

pub use channel::BrokerChannel;
pub use fetcher::ReplicaFetcherManager;
pub use follower::{DivergingEpoch, FollowerStep, PartitionFollower, Truncation};
pub use leader::{IsrProposal, IsrState, LeaderUpdate, Leadership, PartitionLeader};
pub use state::{IsrChannel, IsrFuture, PartitionState};
