//! `CooperativeStickyAssignor` ("cooperative-sticky"): a balanced assignment that leaves each
//! partition with the member that owns it wherever balance allows, under KIP-429's rule.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
};
use crate::consumer::TopicPartition;

/// KIP-429's rule: a partition moving from one member to another is not given to its new owner
/// in this generation. Its old owner sees it missing from its assignment, revokes it and rejoins
/// at once, and the next rebalance, where nobody claims it any more, hands it over. No partition
/// is ever read by two members at the same time, and the partitions that stay put are never
/// interrupted.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl PartitionAssignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn supports_cooperative(&self) -> bool {
        true
    }

    /// The generation as a big-endian int32, as Java's cooperative-sticky assignor writes it:
    /// leaders from before subscription v2 read the owned partitions' generation from here.
    fn user_data(&self, generation: i32) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&generation.to_be_bytes()))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        let claims = Claims::new(partitions_per_topic, members);
        let mut assignment = balanced_sticky(partitions_per_topic, members, &claims);
        // KIP-429: what changes hands waits for the next generation.
        for (member, partitions) in assignment.iter_mut() {
            partitions.retain(|tp| !claims.claimed_by_other(tp, member));
        }
        assignment
    }
}

/// The generation a member's owned partitions belong to: the subscription's field (v2+), else
/// the assignor's user data (older Java clients), else unknown.
fn claim_generation(m: &MemberSubscription) -> i32 {
    if m.generation >= 0 {
        return m.generation;
    }
    match m.user_data.as_deref() {
        Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
        _ => -1,
    }
}

/// Who owns what going into this rebalance. A partition two members claim belongs to the claim
/// of the newest generation: the other member missed a rebalance and lost it since.
struct Claims<'a> {
    /// Partition -> the members claiming it in its newest claimed generation.
    claimants: HashMap<TopicPartition, Vec<&'a String>>,
}

impl<'a> Claims<'a> {
    fn new(
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &'a BTreeMap<String, MemberSubscription>,
    ) -> Claims<'a> {
        let mut newest: HashMap<TopicPartition, (i32, Vec<&'a String>)> = HashMap::new();
        for (id, m) in members {
            let generation = claim_generation(m);
            for tp in &m.owned_partitions {
                let exists = partitions_per_topic
                    .get(&tp.topic)
                    .is_some_and(|&n| (0..n).contains(&tp.partition));
                if !exists {
                    continue;
                }
                let entry = newest.entry(tp.clone()).or_insert((generation, Vec::new()));
                if generation > entry.0 {
                    *entry = (generation, vec![id]);
                } else if generation == entry.0 && !entry.1.contains(&id) {
                    entry.1.push(id);
                }
            }
        }
        Claims {
            claimants: newest.into_iter().map(|(tp, (_, ids))| (tp, ids)).collect(),
        }
    }

    /// The member that keeps `tp` if balance allows: its only claimant. A partition claimed
    /// twice in one generation has no clear owner and is placed afresh.
    fn owner(&self, tp: &TopicPartition) -> Option<&'a String> {
        match self.claimants.get(tp).map(Vec::as_slice) {
            Some([only]) => Some(only),
            _ => None,
        }
    }

    fn claimed_by_other(&self, tp: &TopicPartition, member: &str) -> bool {
        self.claimants
            .get(tp)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() != member))
    }
}

/// Of `candidates`, the member holding the fewest partitions (the first in member order on a tie).
fn least_loaded<'m>(
    owned: &BTreeMap<&String, BTreeSet<TopicPartition>>,
    rank: &HashMap<&String, usize>,
    candidates: &[&'m String],
) -> Option<&'m String> {
    candidates
        .iter()
        .copied()
        .min_by_key(|m| (owned[*m].len(), rank[*m]))
}

/// Owned partitions stay where they are, unowned ones go to the least loaded member that may
/// take them, then partitions move one at a time from a member to one holding at least two
/// fewer until no such move is left. Each move strictly lowers the sum of squared loads, so
/// this ends, and it makes only moves balance asks for: that is the stickiness.
fn balanced_sticky(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &BTreeMap<String, MemberSubscription>,
    claims: &Claims<'_>,
) -> GroupAssignment {
    let order = sorted_members(members);
    let rank: HashMap<&String, usize> = order.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    // Topic -> the members that may take its partitions, in member order.
    let mut eligible: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for &m in &order {
        for topic in &members[m].topics {
            if partitions_per_topic.get(topic).is_some_and(|&n| n > 0) {
                let list = eligible.entry(topic).or_default();
                if !list.contains(&m) {
                    list.push(m);
                }
            }
        }
    }
    let mut owned: BTreeMap<&String, BTreeSet<TopicPartition>> =
        order.iter().map(|m| (*m, BTreeSet::new())).collect();
    let mut unowned = Vec::new();
    for (topic, subscribers) in &eligible {
        for p in 0..partitions_per_topic[*topic] {
            let tp = TopicPartition::new((*topic).clone(), p);
            match claims.owner(&tp) {
                Some(o) if subscribers.contains(&o) => {
                    owned.get_mut(o).expect("claimant is a member").insert(tp);
                }
                _ => unowned.push((subscribers.len(), tp)),
            }
        }
    }
    // The partitions with the fewest candidates first, while everyone still has room for them.
    unowned.sort();
    for (_, tp) in unowned {
        let target = least_loaded(&owned, &rank, &eligible[&tp.topic])
            .expect("a topic with partitions has a subscriber");
        owned.get_mut(target).expect("member").insert(tp);
    }
    loop {
        let mut by_load: Vec<&String> = order.clone();
        by_load.sort_by_key(|m| (std::cmp::Reverse(owned[*m].len()), rank[*m]));
        let mut chosen = None;
        'search: for &from in &by_load {
            // Later partitions move first, so a member keeps the front of what it had.
            for tp in owned[from].iter().rev() {
                let Some(to) = least_loaded(&owned, &rank, &eligible[&tp.topic]) else {
                    continue;
                };
                if owned[from].len() >= owned[to].len() + 2 {
                    chosen = Some((from, to, tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = chosen else { break };
        owned.get_mut(from).expect("member").remove(&tp);
        owned.get_mut(to).expect("member").insert(tp);
    }
    let mut assignment = empty_assignment(members);
    for (m, tps) in owned {
        assignment.insert(m.clone(), tps.into_iter().collect());
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn owning(topics: &[&str], owned: &[(&str, i32)], generation: i32) -> MemberSubscription {
        MemberSubscription {
            owned_partitions: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
            generation,
            ..member(topics)
        }
    }

    fn loads(a: &GroupAssignment) -> Vec<usize> {
        a.values().map(Vec::len).collect()
    }

    fn all(a: &GroupAssignment) -> BTreeSet<TopicPartition> {
        a.values().flatten().cloned().collect()
    }

    #[test]
    fn a_fresh_group_is_balanced_and_complete() {
        let members: BTreeMap<String, MemberSubscription> = (0..3)
            .map(|i| (format!("m{i}"), member(&["a", "b"])))
            .collect();
        let a = CooperativeStickyAssignor.assign(&counts(&[("a", 5), ("b", 3)]), &members);
        let mut l = loads(&a);
        l.sort();
        assert_eq!(l, [2, 3, 3]);
        assert_eq!(all(&a).len(), 8);
    }

    #[test]
    fn a_new_member_takes_only_what_balance_asks_and_only_next_generation() {
        let six: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        let members = BTreeMap::from([
            ("old".to_string(), owning(&["t"], &six, 4)),
            ("new".to_string(), member(&["t"])),
        ]);
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 6)]), &members);
        // The old member keeps three; the three leaving it are held back from the new one.
        assert_eq!(names(&a["old"]), ["tp0", "tp1", "tp2"]);
        assert!(a["new"].is_empty());
        // Next generation: the old member revoked them and no longer claims them.
        let members = BTreeMap::from([
            ("old".to_string(), owning(&["t"], &six[..3], 5)),
            ("new".to_string(), owning(&["t"], &[], 5)),
        ]);
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 6)]), &members);
        assert_eq!(names(&a["old"]), ["tp0", "tp1", "tp2"]);
        assert_eq!(names(&a["new"]), ["tp3", "tp4", "tp5"]);
    }

    #[test]
    fn a_leaving_members_partitions_are_spread_and_nothing_else_moves() {
        let members = BTreeMap::from([
            ("a".to_string(), owning(&["t"], &[("t", 0), ("t", 1)], 7)),
            ("b".to_string(), owning(&["t"], &[("t", 2), ("t", 3)], 7)),
        ]);
        // "c" owned 4 and 5 and is gone.
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 6)]), &members);
        assert_eq!(names(&a["a"]), ["tp0", "tp1", "tp4"]);
        assert_eq!(names(&a["b"]), ["tp2", "tp3", "tp5"]);
    }

    #[test]
    fn balance_wins_over_stickiness_by_the_fewest_moves() {
        // Skewed ownership: 5 / 1 / 0 over 6 partitions must become 2 / 2 / 2 with 3 moves.
        let members = BTreeMap::from([
            (
                "a".to_string(),
                owning(
                    &["t"],
                    &[("t", 0), ("t", 1), ("t", 2), ("t", 3), ("t", 4)],
                    3,
                ),
            ),
            ("b".to_string(), owning(&["t"], &[("t", 5)], 3)),
            ("c".to_string(), owning(&["t"], &[], 3)),
        ]);
        let claims = Claims::new(&counts(&[("t", 6)]), &members);
        let balanced = balanced_sticky(&counts(&[("t", 6)]), &members, &claims);
        assert_eq!(loads(&balanced), [2, 2, 2]);
        assert_eq!(names(&balanced["a"]), ["tp0", "tp1"]);
        assert!(balanced["b"].contains(&TopicPartition::new("t", 5)));
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 6)]), &members);
        // Moves out of "a" wait a generation; "b" and "c" only get what was nobody's.
        assert_eq!(names(&a["a"]), ["tp0", "tp1"]);
        assert_eq!(names(&a["b"]), ["tp5"]);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn the_newest_generation_wins_a_disputed_partition() {
        let members = BTreeMap::from([
            (
                "stale".to_string(),
                owning(&["t"], &[("t", 0), ("t", 1)], 2),
            ),
            ("fresh".to_string(), owning(&["t"], &[("t", 0)], 3)),
        ]);
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 2)]), &members);
        assert_eq!(names(&a["fresh"]), ["tp0"]);
        assert_eq!(names(&a["stale"]), ["tp1"]);
    }

    #[test]
    fn user_data_generation_for_old_leaders_and_members() {
        let mut old_java = owning(&["t"], &[("t", 0)], -1);
        old_java.user_data = CooperativeStickyAssignor.user_data(9);
        assert_eq!(claim_generation(&old_java), 9);
        let members = BTreeMap::from([
            ("j".to_string(), old_java),
            ("r".to_string(), owning(&["t"], &[("t", 0)], 8)),
        ]);
        let a = CooperativeStickyAssignor.assign(&counts(&[("t", 2)]), &members);
        assert_eq!(names(&a["j"]), ["tp0"]);
        assert_eq!(names(&a["r"]), ["tp1"]);
    }

    #[test]
    fn unequal_subscriptions_respect_eligibility() {
        let members = BTreeMap::from([
            ("x".to_string(), member(&["only-x"])),
            ("y".to_string(), member(&["shared"])),
            ("z".to_string(), member(&["shared", "only-x"])),
        ]);
        let a =
            CooperativeStickyAssignor.assign(&counts(&[("only-x", 4), ("shared", 4)]), &members);
        assert!(a["x"].iter().all(|tp| tp.topic == "only-x"));
        assert!(a["y"].iter().all(|tp| tp.topic == "shared"));
        assert_eq!(all(&a).len(), 8);
        let mut l = loads(&a);
        l.sort();
        assert!(l[2] - l[0] <= 1, "{l:?}");
    }

    #[test]
    fn property_balanced_complete_and_sticky() {
        // A seeded walk of joins and leaves: after each step the assignment (once the held-back
        // partitions settle) is complete, balanced within one, and moves no more partitions
        // than balance requires.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let topics = counts(&[("a", 7), ("b", 5), ("c", 11)]);
        let total = 23usize;
        let mut current: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        let mut next_id = 0;
        let mut generation = 0;
        for _ in 0..60 {
            if current.len() < 2 || (current.len() < 8 && rand(2) == 0) {
                current.insert(format!("m{next_id:02}"), Vec::new());
                next_id += 1;
            } else {
                let victim = current
                    .keys()
                    .nth(rand(current.len() as u64) as usize)
                    .unwrap()
                    .clone();
                current.remove(&victim);
            }
            generation += 1;
            // Rebalance until nothing is held back, as the members' rejoins would.
            for round in 0.. {
                assert!(round < 3, "held-back partitions settle in one extra round");
                let members: BTreeMap<String, MemberSubscription> = current
                    .iter()
                    .map(|(id, owned)| {
                        let mut m = member(&["a", "b", "c"]);
                        m.owned_partitions = owned.clone();
                        m.generation = generation;
                        (id.clone(), m)
                    })
                    .collect();
                let a = CooperativeStickyAssignor.assign(&topics, &members);
                let kept: usize = a
                    .iter()
                    .map(|(m, tps)| tps.iter().filter(|tp| current[m].contains(tp)).count())
                    .sum();
                let owned_before: usize = current.values().map(Vec::len).sum();
                let n = current.len();
                let (floor, extra) = (total / n, total % n);
                // The most a member can keep is its fair share; anything beyond that moves.
                let keepable: usize = {
                    let mut loads: Vec<usize> = current.values().map(Vec::len).collect();
                    loads.sort_by(|a, b| b.cmp(a));
                    loads
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (*l).min(floor + usize::from(i < extra)))
                        .sum()
                };
                assert!(
                    kept >= keepable.min(owned_before),
                    "kept {kept} of {keepable}"
                );
                let changed = a.iter().any(|(m, tps)| *tps != current[m]);
                generation += 1;
                current = a;
                if !changed {
                    break;
                }
            }
            assert_eq!(all(&current).len(), total, "every partition assigned");
            let l = loads(&current);
            assert!(
                l.iter().max().unwrap() - l.iter().min().unwrap() <= 1,
                "{l:?}"
            );
        }
    }
}
