//! `RangeAssignor` ("range"): for each topic on its own, the members subscribed to it (in
//! Kafka's member order) get contiguous ranges of partitions, the first ones one extra.

use std::collections::BTreeMap;

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
};
use crate::consumer::TopicPartition;

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl PartitionAssignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        let mut assignment = empty_assignment(members);
        let order = sorted_members(members);
        for (topic, &count) in partitions_per_topic {
            let subscribers: Vec<&String> = order
                .iter()
                .copied()
                .filter(|m| members[*m].topics.contains(topic))
                .collect();
            if subscribers.is_empty() || count <= 0 {
                continue;
            }
            let n = subscribers.len() as i32;
            let (per_member, extra) = (count / n, count % n);
            for (i, member) in subscribers.into_iter().enumerate() {
                let i = i as i32;
                let start = per_member * i + i.min(extra);
                let len = per_member + i32::from(i < extra);
                let owned = assignment
                    .get_mut(member)
                    .expect("every member has an entry");
                owned.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
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
    fn kafkas_documented_example() {
        // Two members, two topics of three partitions each (RangeAssignor's Javadoc).
        let members = BTreeMap::from([
            ("C0".to_string(), member(&["t0", "t1"])),
            ("C1".to_string(), member(&["t0", "t1"])),
        ]);
        let a = RangeAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(names(&a["C0"]), ["t0p0", "t0p1", "t1p0", "t1p1"]);
        assert_eq!(names(&a["C1"]), ["t0p2", "t1p2"]);
    }

    #[test]
    fn ranges_per_topic_among_its_subscribers_only() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["x"])),
            ("b".to_string(), member(&["x", "y"])),
            ("c".to_string(), member(&["x", "y"])),
        ]);
        let a = RangeAssignor.assign(&counts(&[("x", 7), ("y", 3), ("z", 4)]), &members);
        assert_eq!(names(&a["a"]), ["xp0", "xp1", "xp2"]);
        assert_eq!(names(&a["b"]), ["xp3", "xp4", "yp0", "yp1"]);
        assert_eq!(names(&a["c"]), ["xp5", "xp6", "yp2"]);
    }

    #[test]
    fn static_members_sort_first_by_instance_id() {
        let mut s1 = member(&["t"]);
        s1.group_instance_id = Some("i-2".into());
        let mut s2 = member(&["t"]);
        s2.group_instance_id = Some("i-1".into());
        let members = BTreeMap::from([
            ("a-dynamic".to_string(), member(&["t"])),
            ("z".to_string(), s1),
            ("y".to_string(), s2),
        ]);
        let a = RangeAssignor.assign(&counts(&[("t", 3)]), &members);
        assert_eq!(names(&a["y"]), ["tp0"]);
        assert_eq!(names(&a["z"]), ["tp1"]);
        assert_eq!(names(&a["a-dynamic"]), ["tp2"]);
    }

    #[test]
    fn more_members_than_partitions_and_unknown_topics() {
        let members = BTreeMap::from([
            ("m1".to_string(), member(&["t", "missing"])),
            ("m2".to_string(), member(&["t"])),
            ("m3".to_string(), member(&["t"])),
        ]);
        let a = RangeAssignor.assign(&counts(&[("t", 2)]), &members);
        assert_eq!(names(&a["m1"]), ["tp0"]);
        assert_eq!(names(&a["m2"]), ["tp1"]);
        assert!(a["m3"].is_empty());
    }
}
