//! A task's buffered input, one queue per input partition, and which record it processes
//! next: the lowest timestamp among the queues' heads, as Kafka's PartitionGroup picks.
//!
//! A task reading several partitions (the two sides of a join, merged streams) would otherwise
//! see records in fetch order, and a stream record could be joined before the older table
//! update that was fetched after it. So while a partition's queue is empty and the broker still
//! has records for it (known lag), the task waits; an empty partition that is caught up is waited
//! for only `max.task.idle.ms` (0 by default: not at all), and -1 never waits, as in Kafka.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sluice_client::{ConsumerRecord, TopicPartition};

/// The longest a task waits for records its consumer knows are on the broker: their fetch is
/// normally one round trip away, and a task must not stall on a partition that never delivers.
const FETCH_WAIT: Duration = Duration::from_secs(2);

/// Kafka's `max.task.idle.ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskIdle {
    /// -1: process whatever is buffered, in timestamp order, without ever waiting.
    Never,
    /// Wait up to this long for a caught-up empty partition to get records (0: only for
    /// records already on the broker).
    Up(Duration),
}

struct Queue {
    partition: TopicPartition,
    records: VecDeque<ConsumerRecord>,
    /// Offset after the last record taken for processing: what a commit stores.
    next_offset: Option<i64>,
}

pub(crate) struct PartitionGroup {
    queues: Vec<Queue>,
    /// Since when the task has held records back for an empty partition.
    waiting_since: Option<Instant>,
}

impl PartitionGroup {
    pub fn new(partitions: impl IntoIterator<Item = TopicPartition>) -> PartitionGroup {
        PartitionGroup {
            queues: partitions
                .into_iter()
                .map(|partition| Queue {
                    partition,
                    records: VecDeque::new(),
                    next_offset: None,
                })
                .collect(),
            waiting_since: None,
        }
    }

    /// Buffers a fetched record; false (the record dropped) when the task does not read its
    /// partition.
    pub fn push(&mut self, record: ConsumerRecord) -> bool {
        let queue = self.queues.iter_mut().find(|q| {
            q.partition.partition == record.partition && q.partition.topic == record.topic
        });
        match queue {
            Some(q) => {
                q.records.push_back(record);
                true
            }
            None => false,
        }
    }

    /// Each partition with its buffered record count.
    pub fn buffered(&self) -> impl Iterator<Item = (&TopicPartition, usize)> {
        self.queues.iter().map(|q| (&q.partition, q.records.len()))
    }

    /// Drops what is buffered (partitions revoked: their next owner fetches from the commit).
    pub fn clear(&mut self) {
        for q in &mut self.queues {
            q.records.clear();
        }
        self.waiting_since = None;
    }

    /// The offsets to commit: after the last record taken from each partition.
    pub fn consumed(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.queues
            .iter()
            .filter_map(|q| Some((&q.partition, q.next_offset?)))
    }

    /// The next record to process with its queue's index, or `None` when nothing is buffered
    /// or the task must wait for an empty partition. `lag` is a partition's known lag on the
    /// broker (`None`: not known yet, taken as records to come). Taking a record does not move
    /// the offset to commit: `processed` does, once the record went through.
    pub fn next(
        &mut self,
        now: Instant,
        idle: TaskIdle,
        lag: impl Fn(&TopicPartition) -> Option<i64>,
    ) -> Option<(usize, ConsumerRecord)> {
        let mut first: Option<(usize, i64)> = None;
        let (mut fetchable_empty, mut caught_up_empty) = (false, false);
        for (i, q) in self.queues.iter().enumerate() {
            match q.records.front() {
                Some(r) if first.map_or(true, |(_, ts)| r.timestamp < ts) => {
                    first = Some((i, r.timestamp))
                }
                Some(_) => {}
                None if lag(&q.partition) == Some(0) => caught_up_empty = true,
                None => fetchable_empty = true,
            }
        }
        let (i, _) = first?;
        if let TaskIdle::Up(max_idle) = idle {
            if fetchable_empty || caught_up_empty {
                let waited = now - *self.waiting_since.get_or_insert(now);
                let limit = match fetchable_empty {
                    true => FETCH_WAIT.max(max_idle),
                    false => max_idle,
                };
                if waited < limit {
                    return None;
                }
            }
        }
        self.waiting_since = None;
        Some((i, self.queues[i].records.pop_front()?))
    }

    /// Marks the record `next` took from queue `queue` as processed: offset + 1 is committed.
    pub fn processed(&mut self, queue: usize, offset: i64) {
        self.queues[queue].next_offset = Some(offset + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, offset: i64, timestamp: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: topic.to_string(),
            partition: 0,
            offset,
            timestamp,
            timestamp_type: sluice_client::consumer::TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Vec::new(),
            leader_epoch: None,
        }
    }

    fn group() -> PartitionGroup {
        PartitionGroup::new([
            TopicPartition::new("table", 0),
            TopicPartition::new("stream", 0),
        ])
    }

    fn order(g: &mut PartitionGroup, idle: TaskIdle) -> Vec<(String, i64)> {
        let now = Instant::now();
        std::iter::from_fn(|| g.next(now, idle, |_| Some(0)))
            .map(|(_, r)| (r.topic, r.timestamp))
            .collect()
    }

    #[test]
    fn the_lowest_timestamp_goes_first_across_partitions() {
        let mut g = group();
        for (o, ts) in [(0, 5), (1, 20), (2, 30)] {
            assert!(g.push(rec("stream", o, ts)));
        }
        for (o, ts) in [(0, 1), (1, 25)] {
            assert!(g.push(rec("table", o, ts)));
        }
        let got = order(&mut g, TaskIdle::Up(Duration::ZERO));
        let want = [
            ("table", 1),
            ("stream", 5),
            ("stream", 20),
            ("table", 25),
            ("stream", 30),
        ];
        assert_eq!(got, want.map(|(t, ts)| (t.to_string(), ts)));
        assert!(!g.push(rec("other", 0, 1)));
    }

    #[test]
    fn an_empty_partition_with_records_on_the_broker_holds_the_others_back() {
        let mut g = group();
        assert!(g.push(rec("stream", 0, 5)));
        let t0 = Instant::now();
        let table_lag = |lag: Option<i64>| {
            move |tp: &TopicPartition| if tp.topic == "table" { lag } else { Some(0) }
        };
        let idle = TaskIdle::Up(Duration::ZERO);
        assert!(
            g.next(t0, idle, table_lag(Some(3))).is_none(),
            "records to fetch"
        );
        assert!(g.next(t0, idle, table_lag(None)).is_none(), "lag unknown");
        // Caught up: nothing to wait for with max.task.idle.ms = 0.
        assert_eq!(g.next(t0, idle, table_lag(Some(0))).unwrap().1.offset, 0);
        // A partition that never delivers stalls the task only so long.
        assert!(g.push(rec("stream", 1, 6)));
        assert!(g.next(t0, idle, table_lag(Some(3))).is_none());
        let later = t0 + FETCH_WAIT;
        assert_eq!(g.next(later, idle, table_lag(Some(3))).unwrap().1.offset, 1);
        // -1: never waits.
        assert!(g.push(rec("stream", 2, 7)));
        assert!(g.next(t0, TaskIdle::Never, table_lag(None)).is_some());
    }

    #[test]
    fn max_task_idle_waits_for_a_caught_up_partition_that_long() {
        let mut g = group();
        assert!(g.push(rec("stream", 0, 5)));
        let t0 = Instant::now();
        let idle = TaskIdle::Up(Duration::from_millis(100));
        assert!(g.next(t0, idle, |_| Some(0)).is_none());
        assert!(g
            .next(t0 + Duration::from_millis(50), idle, |_| Some(0))
            .is_none());
        assert!(g
            .next(t0 + Duration::from_millis(100), idle, |_| Some(0))
            .is_some());
    }

    #[test]
    fn commits_cover_processed_records_only_and_a_clear_keeps_them() {
        let mut g = group();
        assert!(g.push(rec("stream", 7, 5)));
        assert!(g.push(rec("stream", 8, 6)));
        assert_eq!(g.consumed().count(), 0);
        let (i, r) = g
            .next(Instant::now(), TaskIdle::Never, |_| Some(0))
            .unwrap();
        assert_eq!(g.consumed().count(), 0, "taken, not yet processed");
        g.processed(i, r.offset);
        let consumed: Vec<(String, i64)> =
            g.consumed().map(|(tp, o)| (tp.topic.clone(), o)).collect();
        assert_eq!(consumed, vec![("stream".to_string(), 8)]);
        g.clear();
        assert!(g.buffered().all(|(_, n)| n == 0));
        assert_eq!(g.consumed().count(), 1);
    }
}
