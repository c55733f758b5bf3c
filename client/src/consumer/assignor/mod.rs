//! Partition assignors: the group leader's function from members' subscriptions to who reads
//! which partition; range and round-robin are Kafka's exact algorithms, for mixed groups.

mod range;
mod round_robin;
mod sticky;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::AssignmentStrategy;
use super::TopicPartition;

pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use sticky::CooperativeStickyAssignor;

/// What one member told the group about itself in JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    pub topics: Vec<String>,
    /// Partitions the member holds while it rejoins (cooperative members only).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation `owned_partitions` are from; -1 when unknown.
    pub generation: i32,
    pub group_instance_id: Option<String>,
    pub rack: Option<String>,
    pub user_data: Option<Bytes>,
}

/// Member id -> its assigned partitions.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// How a group leader shares partitions out. Range and round-robin follow Kafka's algorithms
/// exactly, so a group mixing this client with Java or librdkafka gets the same answer whichever
/// member leads.
pub trait PartitionAssignor: Send + Sync {
    /// The protocol name in JoinGroup.
    fn name(&self) -> &'static str;

    /// Whether members may keep consuming through a rebalance, giving up only the partitions
    /// that move (KIP-429), instead of revoking everything before they rejoin.
    fn supports_cooperative(&self) -> bool {
        false
    }

    /// The assignor's own bytes in this member's subscription.
    fn user_data(&self, _generation: i32) -> Option<Bytes> {
        None
    }

    /// Assigns the partitions of `partitions_per_topic` (topic -> partition count; a topic
    /// missing there has no partitions to give) to `members` (member id -> subscription).
    /// Every member appears in the result, possibly with nothing.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment;
}

pub(crate) fn for_strategy(s: AssignmentStrategy) -> Box<dyn PartitionAssignor> {
    match s {
        AssignmentStrategy::Range => Box::new(RangeAssignor),
        AssignmentStrategy::RoundRobin => Box::new(RoundRobinAssignor),
        AssignmentStrategy::CooperativeSticky => Box::new(CooperativeStickyAssignor),
    }
}

/// Kafka's member order for range and round-robin: static members first, by instance id, then
/// dynamic ones by member id. Static members keep their place across restarts (their member
/// id changes, their instance id does not), and so keep their partitions.
pub(crate) fn member_order(
    a: (&String, &MemberSubscription),
    b: (&String, &MemberSubscription),
) -> Ordering {
    match (&a.1.group_instance_id, &b.1.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.0.cmp(b.0)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.0.cmp(b.0),
    }
}

/// Member ids in [`member_order`].
pub(crate) fn sorted_members(members: &BTreeMap<String, MemberSubscription>) -> Vec<&String> {
    let mut ids: Vec<(&String, &MemberSubscription)> = members.iter().collect();
    ids.sort_by(|a, b| member_order(*a, *b));
    ids.into_iter().map(|(id, _)| id).collect()
}

fn empty_assignment(members: &BTreeMap<String, MemberSubscription>) -> GroupAssignment {
    members.keys().map(|m| (m.clone(), Vec::new())).collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn member(topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            generation: -1,
            ..Default::default()
        }
    }

    pub fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// "t0p1"-style names, in assignment order.
    pub fn names(tps: &[TopicPartition]) -> Vec<String> {
        tps.iter()
            .map(|tp| format!("{}p{}", tp.topic, tp.partition))
            .collect()
    }
}
