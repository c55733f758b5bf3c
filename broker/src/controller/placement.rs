//! Where the replicas of new partitions go: Kafka's rack-unaware assignment, which spreads first
//! replicas (the preferred leaders) round-robin and shifts the followers so load stays even.

use super::records::NodeId;
use crate::error::{BrokerError, Result};

/// Where the round-robin begins. Kafka picks both at random for a new topic so that small topics
/// do not all start on the lowest broker; fixed values continue an existing layout
/// (CreatePartitions) or make a test exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementStart {
    /// Index (into the sorted broker list) of partition 0's first replica.
    pub start_index: usize,
    /// How far the second replica sits from the first, before the per-round advance.
    pub replica_shift: usize,
}

/// Assigns replicas for partitions `first_partition .. first_partition + count` over `brokers`
/// (the eligible, unfenced brokers; sorted here so the result does not depend on their order).
///
/// Partition p's first replica is broker `(start_index + p) mod n`; replica j + 1 sits
/// `1 + (shift + j) mod (n - 1)` places after it, so it never lands on the first replica; and the
/// shift grows by one each time p reaches a multiple of n, so each round of n partitions pairs
/// leaders with different followers.
pub fn assign_replicas(
    brokers: &[NodeId],
    count: i32,
    replication_factor: i16,
    first_partition: i32,
    start: PlacementStart,
) -> Result<Vec<Vec<NodeId>>> {
    if replication_factor < 1 {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, got {replication_factor}"
        )));
    }
    if count < 0 || first_partition < 0 {
        return Err(BrokerError::InvalidPartitions(format!(
            "cannot place {count} partitions from partition {first_partition}"
        )));
    }
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let n = sorted.len();
    let rf = replication_factor as usize;
    if rf > n {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "replication factor {replication_factor} is larger than the {n} available broker(s)"
        )));
    }
    let start_index = start.start_index % n;
    let mut shift = start.replica_shift % n;
    let mut out = Vec::with_capacity(count as usize);
    for p in first_partition as usize..first_partition as usize + count as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start_index) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(sorted[first]);
        for j in 0..rf - 1 {
            let distance = 1 + (shift + j) % (n - 1);
            replicas.push(sorted[(first + distance) % n]);
        }
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: PlacementStart = PlacementStart {
        start_index: 0,
        replica_shift: 0,
    };

    #[test]
    fn five_brokers_ten_partitions_three_replicas() {
        // Worked by hand: partitions 0-4 use shift 0 (followers at +1, +2), partitions 5-9
        // shift 1 (followers at +2, +3).
        let got = assign_replicas(&[1, 2, 3, 4, 5], 10, 3, 0, ZERO).unwrap();
        let expected: Vec<Vec<NodeId>> = vec![
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 5],
            vec![4, 5, 1],
            vec![5, 1, 2],
            vec![1, 3, 4],
            vec![2, 4, 5],
            vec![3, 5, 1],
            vec![4, 1, 2],
            vec![5, 2, 3],
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn start_index_and_shift_move_the_layout() {
        // n = 3: p0 starts at index 2 (30), follower 1 + (1 % 2) = 2 places on (20); p3 is
        // the start of round two, so the shift becomes 2 and the follower sits 1 place on.
        let start = PlacementStart {
            start_index: 2,
            replica_shift: 1,
        };
        let got = assign_replicas(&[30, 10, 20], 4, 2, 0, start).unwrap();
        assert_eq!(
            got,
            vec![vec![30, 20], vec![10, 30], vec![20, 10], vec![30, 10]]
        );
    }

    #[test]
    fn added_partitions_continue_the_numbering() {
        // Partitions 3 and 4 of a 3-broker topic: p3 opens a new round (shift 1).
        let got = assign_replicas(&[1, 2, 3], 2, 2, 3, ZERO).unwrap();
        assert_eq!(got, vec![vec![1, 3], vec![2, 1]]);
    }

    #[test]
    fn a_single_broker_takes_every_replica_of_factor_one() {
        let got = assign_replicas(&[7], 3, 1, 0, ZERO).unwrap();
        assert_eq!(got, vec![vec![7], vec![7], vec![7]]);
    }

    #[test]
    fn too_few_brokers_is_an_invalid_replication_factor() {
        for (brokers, rf) in [(&[1, 2][..], 3), (&[][..], 1), (&[1, 2, 3][..], 0)] {
            let err = assign_replicas(brokers, 1, rf, 0, ZERO).unwrap_err();
            assert!(
                matches!(err, BrokerError::InvalidReplicationFactor(_)),
                "{brokers:?} rf {rf}: {err:?}"
            );
        }
        // A broker listed twice is still one broker.
        assert!(assign_replicas(&[1, 1], 1, 2, 0, ZERO).is_err());
    }

    #[test]
    fn replicas_are_distinct_and_leadership_is_even() {
        for n in 1..=6usize {
            let brokers: Vec<NodeId> = (0..n as i32).map(|b| b * 3 + 1).collect();
            for rf in 1..=n as i16 {
                for start_index in 0..n {
                    let start = PlacementStart {
                        start_index,
                        replica_shift: (start_index * 7) % n,
                    };
                    let layout = assign_replicas(&brokers, 2 * n as i32, rf, 0, start).unwrap();
                    let mut leads = vec![0; n];
                    for replicas in &layout {
                        let mut unique = replicas.clone();
                        unique.sort_unstable();
                        unique.dedup();
                        assert_eq!(unique.len(), rf as usize, "{replicas:?}");
                        let i = brokers.iter().position(|b| *b == replicas[0]).unwrap();
                        leads[i] += 1;
                    }
                    assert!(leads.iter().all(|l| *l == 2), "n {n} rf {rf}: {leads:?}");
                }
            }
        }
    }
}
