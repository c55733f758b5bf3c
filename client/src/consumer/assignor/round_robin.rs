//! `RoundRobinAssignor` ("roundrobin"): every subscribed partition, sorted by topic and
//! partition, is dealt in turn to the next member (in Kafka's member order) that subscribes to it.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
};
use crate::consumer::TopicPartition;

#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl PartitionAssignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        let mut assignment = empty_assignment(members);
        let order = sorted_members(members);
        if order.is_empty() {
            return assignment;
        }
        let topics: BTreeSet<&String> = members.values().flat_map(|m| &m.topics).collect();
        // The dealer's position survives from one partition to the next, across topics: that is
        // what spreads several topics' partitions evenly.
        let mut next = 0usize;
        for topic in topics {
            let Some(&count) = partitions_per_topic.get(topic) else {
                continue;
            };
            for partition in 0..count {
                // Some member subscribes to `topic` (it came from a subscription), so this ends.
                while !members[order[next % order.len()]].topics.contains(topic) {
                    next += 1;
                }
                let member = order[next % order.len()];
                next += 1;
                assignment
                    .get_mut(member)
                    .expect("every member has an entry")
                    .push(TopicPartition::new(topic.clone(), partition));
            }
        }
        assignment
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn kafkas_documented_example_same_subscriptions() {
        let members = BTreeMap::from([
            ("C0".to_string(), member(&["t0", "t1"])),
            ("C1".to_string(), member(&["t0", "t1"])),
        ]);
        let a = RoundRobinAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(names(&a["C0"]), ["t0p0", "t0p2", "t1p1"]);
        assert_eq!(names(&a["C1"]), ["t0p1", "t1p0", "t1p2"]);
    }

    #[test]
    fn kafkas_documented_example_different_subscriptions() {
        // C0 reads t0; C1 t0 and t1; C2 t0, t1 and t2; with 1, 2 and 3 partitions.
        let members = BTreeMap::from([
            ("C0".to_string(), member(&["t0"])),
            ("C1".to_string(), member(&["t0", "t1"])),
            ("C2".to_string(), member(&["t0", "t1", "t2"])),
        ]);
        let a = RoundRobinAssignor.assign(&counts(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members);
        assert_eq!(names(&a["C0"]), ["t0p0"]);
        assert_eq!(names(&a["C1"]), ["t1p0"]);
        assert_eq!(names(&a["C2"]), ["t1p1", "t2p0", "t2p1", "t2p2"]);
    }

    #[test]
    fn nothing_to_assign() {
        let members = BTreeMap::from([("m".to_string(), member(&["gone"]))]);
        let a = RoundRobinAssignor.assign(&counts(&[]), &members);
        assert!(a["m"].is_empty());
        assert!(RoundRobinAssignor
            .assign(&counts(&[("t", 3)]), &BTreeMap::new())
            .is_empty());
    }
}
