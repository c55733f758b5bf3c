//! The consumer: reads records from assigned partitions, alone (`assign`) or as a member of a
//! classic consumer group (`subscribe`) that shares a topic's partitions among its members.

pub mod assignor;
mod config;
mod coordinator;
mod fetcher;
mod kafka_consumer;
mod subscription;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use sluice_protocol::records::RecordHeader;

pub use assignor::{
    CooperativeStickyAssignor, MemberSubscription, PartitionAssignor, RangeAssignor,
    RoundRobinAssignor,
};
pub use config::{AssignmentStrategy, ConsumerConfig, IsolationLevel, OffsetReset, CONSUMER_KEYS};
pub use coordinator::CommitFuture;
pub use kafka_consumer::{Consumer, ConsumerGroupMetadata};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Whether a record's timestamp was set by its producer or by the broker on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// One record as `poll` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
    /// The leader epoch the record was written in, when the broker stamped one.
    pub leader_epoch: Option<i32>,
}

impl ConsumerRecord {
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// What `RebalanceListener::commit_before_revoke` hands the consumer: a future of the offsets to
/// commit, or of why none can be.
pub type RevokeCommit = Pin<
    Box<
        dyn Future<
                Output = std::result::Result<BTreeMap<TopicPartition, OffsetAndMetadata>, String>,
            > + Send,
    >,
>;

/// A committed position: the offset of the next record to read, as Kafka commits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// Told about partitions coming and going in a group rebalance. The calls are made from `poll`
/// (or `close`/`unsubscribe`) on the caller's task, so they may touch the caller's state freely
/// but must not block for long: the group waits for this member meanwhile.
///
/// With `enable.auto.commit`, the consumed positions of revoked partitions are committed just
/// before `on_partitions_revoked`; with manual commits, whatever was consumed but not committed
/// is read again by the partition's next owner.
pub trait RebalanceListener: Send {
    /// With manual commits: called first when `partitions` are about to be revoked in an
    /// orderly rebalance (or on close), while this member still owns them. The future it returns
    /// (awaited inside `poll`) yields the offsets to commit for them; the consumer commits them
    /// before revoking. How an application that produces for its input (a stream processor)
    /// hands over exactly the progress whose outputs are acknowledged. `None`: nothing to commit.
    fn commit_before_revoke(&mut self, _partitions: &[TopicPartition]) -> Option<RevokeCommit> {
        None
    }

    /// Partitions taken away in an orderly rebalance: their new owner starts from the
    /// committed positions.
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}

    /// Partitions given to this member. With a cooperative assignor only the new ones are
    /// named; with an eager one, the whole assignment.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}

    /// Partitions this member lost without a rebalance telling it first (its session expired or
    /// it was fenced): another member may own them already, so committing them is pointless.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions)
    }
}
