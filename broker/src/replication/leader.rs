//! What a partition's leader knows of its followers: each one's log end offset and when it last
//! caught up, the ISR, and the high watermark derived from them. Pure: fetches, appends and time
//! go in; high-watermark moves and ISR change proposals for the controller come out.

use std::collections::{BTreeMap, BTreeSet};

use sluice_protocol::ErrorCode;

/// The ISR as the controller last confirmed it, and a change the leader proposed and is waiting
/// on. While a change is out no other is proposed (the controller answers one at a time, by
/// partition epoch), and the high watermark counts the union of both sets: an acks=all write is
/// acknowledged only once every replica that might be in the ISR has it (Kafka's "maximal ISR",
/// KIP-497), so a replica being added cannot become leader without a write it was counted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    pub committed: BTreeSet<i32>,
    pub pending: Option<BTreeSet<i32>>,
}

impl IsrState {
    pub fn maximal(&self) -> BTreeSet<i32> {
        match &self.pending {
            Some(p) => self.committed.union(p).copied().collect(),
            None => self.committed.clone(),
        }
    }
}

/// An ISR change for the controller (sent as AlterPartition), made against the leader and
/// partition epochs it was decided under so a stale proposal is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub isr: BTreeSet<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// What a call changed, for the replica manager to act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderUpdate {
    /// The new high watermark, when it moved (waiting acks=all writes and fetches may complete).
    pub high_watermark: Option<i64>,
    /// An ISR change to send to the controller.
    pub propose: Option<IsrProposal>,
}

#[derive(Debug, Clone)]
struct Follower {
    /// `None` until the follower fetches from this leader: its log end is unknown until then,
    /// and guessing would let the high watermark pass records it may not have.
    log_end_offset: Option<i64>,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end when this follower last fetched.
    leader_end_at_last_fetch: i64,
}

/// The leader's view of one partition's replication.
#[derive(Debug, Clone)]
pub struct PartitionLeader {
    local_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: IsrState,
    followers: BTreeMap<i32, Follower>,
    /// Where this leader's epoch began. A follower joins the ISR only once it has reached it:
    /// before that its tail may still hold records of an older epoch that it must truncate.
    epoch_start_offset: i64,
    high_watermark: i64,
    max_lag_ms: i64,
}

/// How a partition starts being led, as the controller's metadata says.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub local_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: BTreeSet<i32>,
    /// The local log's end when leadership starts: the first offset of the new epoch.
    pub log_end_offset: i64,
    /// The local log's high watermark (carried over from when it was a follower).
    pub high_watermark: i64,
    /// replica.lag.time.max.ms
    pub max_lag_ms: i64,
}

impl PartitionLeader {
    pub fn new(l: Leadership, now_ms: i64) -> Self {
        // Followers in the ISR start as caught up now, as Kafka does on a leader change: the
        // new leader has no history of them, and dropping them at once would shrink the ISR
        // for no reason. One that never fetches is dropped after max_lag_ms all the same.
        let followers = l
            .replicas
            .iter()
            .filter(|&&r| r != l.local_id)
            .map(|&r| {
                let in_isr = l.isr.contains(&r);
                let follower = Follower {
                    log_end_offset: None,
                    last_caught_up_ms: if in_isr { now_ms } else { i64::MIN / 2 },
                    last_fetch_ms: i64::MIN / 2,
                    leader_end_at_last_fetch: l.log_end_offset,
                };
                (r, follower)
            })
            .collect();
        PartitionLeader {
            local_id: l.local_id,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            isr: IsrState {
                committed: l.isr,
                pending: None,
            },
            followers,
            epoch_start_offset: l.log_end_offset,
            high_watermark: l.high_watermark.min(l.log_end_offset),
            max_lag_ms: l.max_lag_ms,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &IsrState {
        &self.isr
    }

    /// A follower's log end as last reported, if it has fetched from this leader.
    pub fn follower_log_end(&self, replica: i32) -> Option<i64> {
        self.followers.get(&replica).and_then(|f| f.log_end_offset)
    }

    /// A follower fetched at `fetch_offset`, which is its log end. Kafka's rule for "caught
    /// up": the fetch reached the leader's end now, or reached the end the leader had at the
    /// follower's previous fetch (then it was caught up as of that fetch).
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) -> LeaderUpdate {
        let Some(f) = self.followers.get_mut(&replica) else {
            return LeaderUpdate::default();
        };
        if fetch_offset >= leader_log_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = Some(fetch_offset);
        f.last_fetch_ms = now_ms;
        f.leader_end_at_last_fetch = leader_log_end;

        let mut update = LeaderUpdate {
            high_watermark: self.advance_high_watermark(leader_log_end),
            propose: None,
        };
        let joinable =
            fetch_offset >= self.high_watermark && fetch_offset >= self.epoch_start_offset;
        if self.isr.pending.is_none() && !self.isr.committed.contains(&replica) && joinable {
            let mut isr = self.isr.committed.clone();
            isr.insert(replica);
            update.propose = Some(self.propose(isr));
        }
        update
    }

    /// The leader appended; with an ISR of the leader alone the high watermark follows it.
    pub fn on_leader_append(&mut self, leader_log_end: i64) -> LeaderUpdate {
        LeaderUpdate {
            high_watermark: self.advance_high_watermark(leader_log_end),
            propose: None,
        }
    }

    /// Followers in the ISR that have not caught up within max_lag_ms are proposed for
    /// removal (the periodic check Kafka runs every half lag time).
    pub fn check_lagging(&mut self, now_ms: i64) -> LeaderUpdate {
        if self.isr.pending.is_some() {
            return LeaderUpdate::default();
        }
        let lagging: Vec<i32> = self
            .isr
            .committed
            .iter()
            .filter(|&&r| r != self.local_id)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| now_ms - f.last_caught_up_ms > self.max_lag_ms)
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return LeaderUpdate::default();
        }
        let mut isr = self.isr.committed.clone();
        for r in &lagging {
            isr.remove(r);
        }
        LeaderUpdate {
            high_watermark: None,
            propose: Some(self.propose(isr)),
        }
    }

    fn propose(&mut self, isr: BTreeSet<i32>) -> IsrProposal {
        self.isr.pending = Some(isr.clone());
        IsrProposal {
            isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }

    /// The controller accepted a change (or metadata brought a newer partition state under
    /// the same leader epoch). A smaller ISR may let the high watermark move.
    pub fn on_isr_committed(
        &mut self,
        isr: BTreeSet<i32>,
        partition_epoch: i32,
        leader_log_end: i64,
    ) -> LeaderUpdate {
        if partition_epoch < self.partition_epoch {
            return LeaderUpdate::default();
        }
        self.partition_epoch = partition_epoch;
        self.isr = IsrState {
            committed: isr,
            pending: None,
        };
        LeaderUpdate {
            high_watermark: self.advance_high_watermark(leader_log_end),
            propose: None,
        }
    }

    /// The controller refused the change (stale epochs, or the replica was fenced): forget it;
    /// the next fetch or lag check proposes again from the current state.
    pub fn on_isr_rejected(&mut self) {
        self.isr.pending = None;
    }

    /// Whether an acks=all write may be appended now: Kafka refuses it up front when the
    /// confirmed ISR is smaller than min.insync.replicas, so nothing is written that could not
    /// be acknowledged.
    pub fn check_min_isr(&self, min_insync_replicas: usize) -> Result<(), ErrorCode> {
        if self.isr.committed.len() < min_insync_replicas {
            return Err(ErrorCode::NotEnoughReplicas);
        }
        Ok(())
    }

    /// The answer to an acks=all write whose last record is at `required_offset - 1`: `None`
    /// while the high watermark has not passed it; then done, or NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// when the ISR shrank below min.insync.replicas meanwhile (the write is stored, but not
    /// with the redundancy the producer asked for).
    pub fn acks_all_outcome(
        &self,
        required_offset: i64,
        min_insync_replicas: usize,
    ) -> Option<Result<(), ErrorCode>> {
        if self.high_watermark < required_offset {
            return None;
        }
        if self.isr.committed.len() < min_insync_replicas {
            return Some(Err(ErrorCode::NotEnoughReplicasAfterAppend));
        }
        Some(Ok(()))
    }

    /// The high watermark is the smallest log end in the maximal ISR. It never moves back,
    /// and a member whose log end is unknown holds it where it is.
    fn advance_high_watermark(&mut self, leader_log_end: i64) -> Option<i64> {
        let mut low = leader_log_end;
        for r in self.isr.maximal() {
            if r == self.local_id {
                continue;
            }
            match self.followers.get(&r).and_then(|f| f.log_end_offset) {
                Some(end) => low = low.min(end),
                None => return None,
            }
        }
        if low > self.high_watermark {
            self.high_watermark = low;
            Some(low)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn set(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    fn leader(isr: &[i32], log_end: i64, hw: i64) -> PartitionLeader {
        PartitionLeader::new(
            Leadership {
                local_id: 1,
                leader_epoch: 5,
                partition_epoch: 9,
                replicas: vec![1, 2, 3],
                isr: set(isr),
                log_end_offset: log_end,
                high_watermark: hw,
                max_lag_ms: LAG,
            },
            0,
        )
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        assert_eq!(
            l.on_leader_append(20).high_watermark,
            None,
            "followers unknown"
        );
        assert_eq!(l.on_follower_fetch(2, 20, 20, 1).high_watermark, None);
        assert_eq!(l.on_follower_fetch(3, 15, 20, 1).high_watermark, Some(15));
        assert_eq!(l.on_follower_fetch(3, 20, 20, 2).high_watermark, Some(20));
        // A follower re-fetching an older offset (after a restart) does not move it back.
        assert_eq!(l.on_follower_fetch(3, 12, 20, 3).high_watermark, None);
        assert_eq!(l.high_watermark(), 20);
    }

    #[test]
    fn a_leader_alone_in_the_isr_commits_on_append() {
        let mut l = leader(&[1], 0, 0);
        assert_eq!(l.on_leader_append(7).high_watermark, Some(7));
        assert_eq!(l.check_min_isr(1), Ok(()));
        assert_eq!(l.check_min_isr(2), Err(ErrorCode::NotEnoughReplicas));
    }

    #[test]
    fn a_follower_that_stops_fetching_is_proposed_for_removal() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        l.on_follower_fetch(2, 10, 10, 1_000);
        l.on_follower_fetch(3, 10, 10, 1_000);
        // Replica 3 dies; 2 keeps fetching and stays caught up.
        for t in (2_000..=40_000).step_by(1_000) {
            l.on_follower_fetch(2, 10, 10, t);
        }
        assert_eq!(l.check_lagging(20_000).propose, None, "within the lag time");
        let update = l.check_lagging(31_001);
        assert_eq!(
            update.propose,
            Some(IsrProposal {
                isr: set(&[1, 2]),
                leader_epoch: 5,
                partition_epoch: 9
            })
        );
        // One change at a time.
        assert_eq!(l.check_lagging(50_000).propose, None);
        // Until confirmed, the high watermark still waits for 3 (maximal ISR).
        assert_eq!(l.on_leader_append(15).high_watermark, None);
        l.on_follower_fetch(2, 15, 15, 41_000);
        assert_eq!(l.high_watermark(), 10);
        let update = l.on_isr_committed(set(&[1, 2]), 10, 15);
        assert_eq!(update.high_watermark, Some(15));
        assert_eq!(l.isr().committed, set(&[1, 2]));
    }

    #[test]
    fn a_slow_follower_counts_as_caught_up_as_of_its_previous_fetch() {
        let mut l = leader(&[1, 2], 100, 100);
        l.on_follower_fetch(2, 100, 100, 1_000);
        // The leader keeps appending; each fetch reaches where the leader was at the last one.
        let mut leader_end = 100;
        for t in (2_000..=60_000).step_by(1_000) {
            let fetched_to = leader_end;
            leader_end += 50;
            l.on_leader_append(leader_end);
            l.on_follower_fetch(2, fetched_to, leader_end, t);
        }
        assert_eq!(l.check_lagging(60_500).propose, None);
        // It stops keeping up: fetches return less than the previous leader end.
        for t in (61_000..=100_000).step_by(1_000) {
            leader_end += 50;
            l.on_follower_fetch(2, 3_000, leader_end, t);
        }
        assert!(l.check_lagging(100_000).propose.is_some());
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let mut l = leader(&[1, 2], 50, 40);
        l.on_follower_fetch(2, 50, 50, 1);
        assert_eq!(l.high_watermark(), 50);
        // 3 is behind the epoch start: not yet.
        assert_eq!(l.on_follower_fetch(3, 45, 50, 2).propose, None);
        let update = l.on_follower_fetch(3, 50, 50, 3);
        assert_eq!(update.propose.map(|p| p.isr), Some(set(&[1, 2, 3])));
        // Rejected (say the controller had a newer partition epoch): proposed again later.
        l.on_isr_rejected();
        assert!(l.on_follower_fetch(3, 50, 50, 4).propose.is_some());
        l.on_isr_committed(set(&[1, 2, 3]), 10, 50);
        assert_eq!(l.on_follower_fetch(3, 50, 50, 5).propose, None);
    }

    #[test]
    fn acks_all_completes_at_the_high_watermark_and_reports_a_shrunk_isr() {
        let mut l = leader(&[1, 2, 3], 0, 0);
        l.on_leader_append(10);
        l.on_follower_fetch(2, 10, 10, 1);
        assert_eq!(l.acks_all_outcome(10, 2), None);
        l.on_follower_fetch(3, 10, 10, 1);
        assert_eq!(l.acks_all_outcome(10, 2), Some(Ok(())));
        l.on_isr_committed(set(&[1]), 10, 10);
        assert_eq!(
            l.acks_all_outcome(10, 2),
            Some(Err(ErrorCode::NotEnoughReplicasAfterAppend))
        );
        // A stale confirmation is ignored.
        l.on_isr_committed(set(&[1, 2, 3]), 3, 10);
        assert_eq!(l.isr().committed, set(&[1]));
    }
}
