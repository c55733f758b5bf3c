//! Deadlines of the group coordinator (member sessions, rebalance and sync timeouts), kept as
//! plain data so the state machine stays free of clocks and tasks: the caller asks what is due.

use std::collections::{BTreeSet, HashMap};

/// What a deadline is for. One deadline per key: scheduling a key again replaces its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's session: it expires unless a heartbeat (or join/sync) comes first.
    Session { group: String, member: String },
    /// A member id handed out with MEMBER_ID_REQUIRED that has not joined with it yet.
    PendingMember { group: String, member: String },
    /// The end of a PreparingRebalance phase (the initial delay or the rebalance timeout).
    Join { group: String },
    /// The end of the wait for SyncGroup after a join completed.
    Sync { group: String, generation: i32 },
    /// The next sweep for expired committed offsets.
    OffsetExpiry,
}

#[derive(Debug, Default)]
pub struct Timers {
    by_deadline: BTreeSet<(i64, TimerKey)>,
    deadlines: HashMap<TimerKey, i64>,
}

impl Timers {
    pub fn schedule(&mut self, key: TimerKey, deadline_ms: i64) {
        if let Some(old) = self.deadlines.insert(key.clone(), deadline_ms) {
            self.by_deadline.remove(&(old, key.clone()));
        }
        self.by_deadline.insert((deadline_ms, key));
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(old) = self.deadlines.remove(key) {
            self.by_deadline.remove(&(old, key.clone()));
        }
    }

    pub fn deadline(&self, key: &TimerKey) -> Option<i64> {
        self.deadlines.get(key).copied()
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    /// Removes and returns the earliest key due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<TimerKey> {
        let (deadline, _) = self.by_deadline.first()?;
        if *deadline > now_ms {
            return None;
        }
        let (_, key) = self.by_deadline.pop_first()?;
        self.deadlines.remove(&key);
        Some(key)
    }

    /// Drops every timer of one group (the group was unloaded or deleted).
    pub fn cancel_group(&mut self, group_id: &str) {
        let keys: Vec<TimerKey> = self
            .deadlines
            .keys()
            .filter(|k| match k {
                TimerKey::Session { group, .. }
                | TimerKey::PendingMember { group, .. }
                | TimerKey::Join { group }
                | TimerKey::Sync { group, .. } => group == group_id,
                TimerKey::OffsetExpiry => false,
            })
            .cloned()
            .collect();
        for key in keys {
            self.cancel(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(m: &str) -> TimerKey {
        TimerKey::Session {
            group: "g".into(),
            member: m.into(),
        }
    }

    #[test]
    fn rescheduling_replaces_the_deadline() {
        let mut t = Timers::default();
        t.schedule(session("a"), 100);
        t.schedule(session("b"), 50);
        t.schedule(session("b"), 200);
        assert_eq!(t.next_deadline(), Some(100));
        assert_eq!(t.pop_due(99), None);
        assert_eq!(t.pop_due(150), Some(session("a")));
        assert_eq!(t.pop_due(150), None);
        assert_eq!(t.pop_due(200), Some(session("b")));
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn cancel_group_leaves_other_groups() {
        let mut t = Timers::default();
        t.schedule(session("a"), 10);
        t.schedule(TimerKey::Join { group: "g".into() }, 10);
        t.schedule(
            TimerKey::Join {
                group: "other".into(),
            },
            20,
        );
        t.schedule(TimerKey::OffsetExpiry, 30);
        t.cancel_group("g");
        assert_eq!(t.deadline(&session("a")), None);
        assert_eq!(t.next_deadline(), Some(20));
        assert_eq!(
            t.pop_due(100),
            Some(TimerKey::Join {
                group: "other".into()
            })
        );
        assert_eq!(t.pop_due(100), Some(TimerKey::OffsetExpiry));
    }
}
