//! `SubscriptionState`: what the consumer reads (topics, a pattern or a manual assignment), its
//! assigned partitions, and each partition's position, pause flag and fetch bookkeeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use regex::Regex;

use super::config::OffsetReset;
use super::{OffsetAndMetadata, TopicPartition};

#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    None,
    Topics(BTreeSet<String>),
    /// The pattern and the topics it matched at the last metadata check.
    Pattern(Regex, BTreeSet<String>),
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub offset: i64,
    /// Epoch of the last record returned before this position, for commits.
    pub leader_epoch: Option<i32>,
}

/// A partition's position is the next offset handed to the application, and the offset a commit
/// stores; its fetch offset runs ahead of it by whatever is buffered. A seek or reset bumps the
/// partition's epoch, which voids any fetch issued before it.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub position: Option<Position>,
    /// A pending reset: `seek_to_beginning/end` or an out-of-range position.
    pub reset: Option<OffsetReset>,
    /// Next offset to fetch; >= position.
    pub fetch_offset: i64,
    pub epoch: u64,
    pub paused: bool,
    /// A fetch including this partition is on the wire.
    pub in_flight: bool,
    /// Fetched chunks not yet fully handed to the application.
    pub buffered: usize,
    /// Not to be fetched before this (after a leadership error).
    pub backoff_until: Option<Instant>,
    /// The last answer held only part of a batch (too big for the size limits).
    pub starved: bool,
    pub high_watermark: i64,
}

impl PartitionState {
    fn new(epoch: u64) -> PartitionState {
        PartitionState {
            position: None,
            reset: None,
            fetch_offset: 0,
            epoch,
            paused: false,
            in_flight: false,
            buffered: 0,
            backoff_until: None,
            starved: false,
            high_watermark: -1,
        }
    }

    /// Can a new fetch include this partition? At most one chunk may wait behind the one being
    /// drained: the pipelining depth, and the bound on memory per partition.
    pub fn fetchable(&self, now: Instant) -> bool {
        self.position.is_some()
            && self.reset.is_none()
            && !self.paused
            && !self.in_flight
            && self.buffered < 2
            && self.backoff_until.map_or(true, |t| t <= now)
    }
}

pub(crate) struct SubscriptionState {
    pub subscription: Subscription,
    pub assignment: BTreeMap<TopicPartition, PartitionState>,
    /// Epochs are unique across partitions and re-assignments, so a fetch can never be
    /// mistaken for one issued for a later incarnation of its partition.
    next_epoch: u64,
}

impl SubscriptionState {
    pub fn new() -> SubscriptionState {
        SubscriptionState {
            subscription: Subscription::None,
            assignment: BTreeMap::new(),
            next_epoch: 1,
        }
    }

    /// Subscribed by topics or pattern: partitions come from the group.
    pub fn is_group_managed(&self) -> bool {
        matches!(
            self.subscription,
            Subscription::Topics(_) | Subscription::Pattern(..)
        )
    }

    /// The topics to ask the group for.
    pub fn topics(&self) -> BTreeSet<String> {
        match &self.subscription {
            Subscription::Topics(t) | Subscription::Pattern(_, t) => t.clone(),
            Subscription::Manual | Subscription::None => {
                self.assignment.keys().map(|tp| tp.topic.clone()).collect()
            }
        }
    }

    pub fn assigned(&self) -> BTreeSet<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    pub fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionState> {
        self.assignment.get_mut(tp)
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Replaces the assignment, keeping the state (position, pause) of partitions that stay.
    pub fn set_assignment(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = match self.assignment.remove(&tp) {
                Some(s) => s,
                None => PartitionState::new(self.epoch()),
            };
            next.insert(tp, state);
        }
        self.assignment = next;
    }

    pub fn add(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if !self.assignment.contains_key(tp) {
                let state = PartitionState::new(self.epoch());
                self.assignment.insert(tp.clone(), state);
            }
        }
    }

    pub fn remove(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.assignment.remove(tp);
        }
    }

    /// Moves a partition to `offset`, dropping whatever was fetched for it.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64, leader_epoch: Option<i32>) {
        let epoch = self.epoch();
        if let Some(s) = self.assignment.get_mut(tp) {
            s.position = Some(Position {
                offset,
                leader_epoch,
            });
            s.reset = None;
            s.fetch_offset = offset;
            s.epoch = epoch;
            s.in_flight = false;
            s.buffered = 0;
            s.backoff_until = None;
        }
    }

    /// Asks for a reset to the log's start or end, done by the next position update.
    pub fn request_reset(&mut self, tp: &TopicPartition, reset: OffsetReset) {
        let epoch = self.epoch();
        if let Some(s) = self.assignment.get_mut(tp) {
            s.reset = Some(reset);
            s.epoch = epoch;
            s.in_flight = false;
            s.buffered = 0;
        }
    }

    /// Partitions with neither a position nor a pending reset: they start from a committed
    /// offset, if there is one.
    pub fn needing_committed(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.position.is_none() && s.reset.is_none())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    pub fn needing_reset(&self, now: Instant) -> Vec<(TopicPartition, OffsetReset)> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.backoff_until.map_or(true, |t| t <= now))
            .filter_map(|(tp, s)| s.reset.map(|r| (tp.clone(), r)))
            .collect()
    }

    /// The positions to commit: every assigned partition with one (optionally only `only`).
    pub fn consumed(
        &self,
        only: Option<&[TopicPartition]>,
    ) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.assignment
            .iter()
            .filter(|(tp, _)| only.map_or(true, |o| o.contains(tp)))
            .filter_map(|(tp, s)| {
                s.position.map(|p| {
                    (
                        tp.clone(),
                        OffsetAndMetadata {
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata: String::new(),
                        },
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignment_keeps_positions_of_partitions_that_stay() {
        let mut s = SubscriptionState::new();
        let (a, b, c) = (
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1),
            TopicPartition::new("t", 2),
        );
        s.set_assignment([a.clone(), b.clone()]);
        s.seek(&a, 10, Some(3));
        s.get_mut(&a).unwrap().paused = true;
        let old_epoch_b = s.assignment[&b].epoch;
        s.set_assignment([a.clone(), c.clone()]);
        assert_eq!(s.assignment[&a].position.unwrap().offset, 10);
        assert!(s.assignment[&a].paused);
        assert!(s.assignment[&c].position.is_none());
        assert_ne!(s.assignment[&c].epoch, old_epoch_b);
        assert_eq!(s.needing_committed(), std::slice::from_ref(&c));
        let consumed = s.consumed(None);
        assert_eq!(consumed.len(), 1);
        assert_eq!(consumed[&a].leader_epoch, Some(3));
    }

    #[test]
    fn seeks_void_what_was_fetched() {
        let mut s = SubscriptionState::new();
        let tp = TopicPartition::new("t", 0);
        s.set_assignment([tp.clone()]);
        s.seek(&tp, 5, None);
        let now = Instant::now();
        assert!(s.assignment[&tp].fetchable(now));
        let st = s.get_mut(&tp).unwrap();
        st.in_flight = true;
        st.buffered = 1;
        st.fetch_offset = 50;
        let before = st.epoch;
        s.request_reset(&tp, OffsetReset::Earliest);
        let st = &s.assignment[&tp];
        assert_ne!(st.epoch, before);
        assert_eq!((st.in_flight, st.buffered), (false, 0));
        assert!(!st.fetchable(now), "waits for its reset");
        assert_eq!(s.needing_reset(now), [(tp, OffsetReset::Earliest)]);
    }
}
