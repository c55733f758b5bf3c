//! What the replica manager is told about a replicated partition (`PartitionState`, the
//! controller's partition record reduced to what a broker acts on) and how a leader sends an ISR
//! change to whoever commits it (`IsrChannel`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use crate::error::Result;
use crate::log::TopicPartition;
use crate::replication::IsrProposal;

/// One partition's replica assignment and leadership, as the controller committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when no replica leads.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The topic's config overrides, as committed: a replica created from this state takes
    /// them (cleanup.policy, segment.bytes, min.insync.replicas...).
    pub configs: BTreeMap<String, String>,
}

impl PartitionState {
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

pub type IsrFuture<'a> = Pin<Box<dyn Future<Output = Result<(BTreeSet<i32>, i32)>> + Send + 'a>>;

/// Where a leader's ISR proposals go (AlterPartition to the active controller, in a cluster).
/// The answer is the ISR and partition epoch that were committed; an error means the proposal
/// was refused or could not be delivered, and the leader proposes again from its current state.
pub trait IsrChannel: Send + Sync {
    fn alter_partition(&self, partition: TopicPartition, proposal: IsrProposal) -> IsrFuture<'_>;
}
