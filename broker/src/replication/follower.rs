//! What a follower decides from its leader's fetch answers: where to fetch next, when and how
//! far to truncate a divergent tail, and its own high watermark. Pure: the fetcher does the
//! I/O and hands the local log's answers in through a lookup.

use sluice_protocol::ErrorCode;

/// The leader's answer that the follower's log diverges (Fetch v12+ `DivergingEpoch`): the
/// largest epoch the two share, and where the leader's log ends in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    pub epoch: i32,
    pub end_offset: i64,
}

/// Where to cut the local log. `complete` is false when the follower does not hold the
/// leader's epoch at all: it cuts to its own end of the nearest earlier epoch and asks again,
/// as Kafka does, until both sides name the same epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    pub complete: bool,
}

/// Kafka's rule for cutting a divergent tail. `local_end_for(epoch)` is the local leader epoch
/// cache's answer: the largest local epoch at or below `epoch` and where it ends, `None` when
/// the local log has no epoch that old.
pub fn truncation_for(
    diverging: DivergingEpoch,
    local_end_for: impl Fn(i32) -> Option<(i32, i64)>,
    local_log_end: i64,
    high_watermark: i64,
) -> Truncation {
    match local_end_for(diverging.epoch) {
        // Nothing in common that the cache can name: only what was committed is safe.
        None => Truncation {
            offset: high_watermark.min(local_log_end),
            complete: true,
        },
        Some((epoch, end)) if epoch == diverging.epoch => Truncation {
            offset: diverging.end_offset.min(end).min(local_log_end),
            complete: true,
        },
        Some((_, end)) => Truncation {
            offset: diverging.end_offset.min(end).min(local_log_end),
            complete: false,
        },
    }
}

/// One partition this broker follows.
#[derive(Debug, Clone)]
pub struct PartitionFollower {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The next offset to fetch: the local log end.
    pub fetch_offset: i64,
    /// The epoch of the last batch in the local log, sent so the leader can spot divergence.
    pub last_fetched_epoch: Option<i32>,
    pub high_watermark: i64,
}

/// What the fetcher should do with one partition's part of a fetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerStep {
    /// Append what came (possibly nothing) and move the high watermark.
    Append { high_watermark: i64 },
    /// Cut the local log first; fetch again from the new end.
    Truncate(Truncation),
    /// The partition's leadership moved on (or this broker is no longer a replica): stop
    /// fetching it until metadata says who leads now.
    AwaitMetadata,
    /// Retry the same fetch after a back-off.
    Retry,
}

impl PartitionFollower {
    pub fn new(
        leader_id: i32,
        leader_epoch: i32,
        log_end: i64,
        last_epoch: Option<i32>,
        hw: i64,
    ) -> Self {
        PartitionFollower {
            leader_id,
            leader_epoch,
            fetch_offset: log_end,
            last_fetched_epoch: last_epoch,
            high_watermark: hw.min(log_end),
        }
    }

    /// Decides from the leader's error code, its high watermark and any diverging epoch.
    pub fn on_fetch_answer(
        &self,
        error: ErrorCode,
        leader_high_watermark: i64,
        diverging: Option<DivergingEpoch>,
        local_end_for: impl Fn(i32) -> Option<(i32, i64)>,
    ) -> FollowerStep {
        match error {
            ErrorCode::None => {}
            ErrorCode::NotLeaderOrFollower
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::UnknownTopicId => return FollowerStep::AwaitMetadata,
            // The leader knows a newer epoch than ours: our metadata is behind.
            ErrorCode::UnknownLeaderEpoch => return FollowerStep::AwaitMetadata,
            // Our fetch offset is outside the leader's log: below its start after retention
            // (Kafka then truncates fully and starts at the leader's start; the fetcher does
            // that with a ListOffsets), or above its end (a leader that lost data; truncating
            // to the high watermark is what is known safe).
            ErrorCode::OffsetOutOfRange => {
                return FollowerStep::Truncate(Truncation {
                    offset: self.high_watermark.min(self.fetch_offset),
                    complete: true,
                })
            }
            _ => return FollowerStep::Retry,
        }
        if let Some(d) = diverging {
            return FollowerStep::Truncate(truncation_for(
                d,
                local_end_for,
                self.fetch_offset,
                self.high_watermark,
            ));
        }
        FollowerStep::Append {
            high_watermark: leader_high_watermark,
        }
    }

    /// After appending: the local end moved, and the follower's high watermark is the leader's
    /// capped by what it holds itself.
    pub fn appended(
        &mut self,
        new_log_end: i64,
        last_epoch: Option<i32>,
        leader_high_watermark: i64,
    ) {
        self.fetch_offset = new_log_end;
        if last_epoch.is_some() {
            self.last_fetched_epoch = last_epoch;
        }
        self.high_watermark = self
            .high_watermark
            .max(leader_high_watermark.min(new_log_end));
    }

    /// After truncating to `offset` (whose last remaining epoch is `last_epoch`).
    pub fn truncated(&mut self, offset: i64, last_epoch: Option<i32>) {
        self.fetch_offset = offset;
        self.last_fetched_epoch = last_epoch;
        self.high_watermark = self.high_watermark.min(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local epoch cache: (epoch, start offset) pairs, and the local log end.
    fn cache(epochs: &'static [(i32, i64)], log_end: i64) -> impl Fn(i32) -> Option<(i32, i64)> {
        move |requested| {
            let at = epochs.iter().rposition(|(e, _)| *e <= requested)?;
            let end = epochs.get(at + 1).map_or(log_end, |(_, start)| *start);
            Some((epochs[at].0, end))
        }
    }

    #[test]
    fn a_shared_epoch_cuts_at_the_shorter_end() {
        // Local: epoch 1 from 0, epoch 2 from 50, log end 80. The leader's epoch 2 ends at 60.
        let t = truncation_for(
            DivergingEpoch {
                epoch: 2,
                end_offset: 60,
            },
            cache(&[(1, 0), (2, 50)], 80),
            80,
            40,
        );
        assert_eq!(
            t,
            Truncation {
                offset: 60,
                complete: true
            }
        );
        // The leader's epoch 1 ends at 45, before our epoch 2 began: cut to 45.
        let t = truncation_for(
            DivergingEpoch {
                epoch: 1,
                end_offset: 45,
            },
            cache(&[(1, 0), (2, 50)], 80),
            80,
            40,
        );
        assert_eq!(
            t,
            Truncation {
                offset: 45,
                complete: true
            }
        );
    }

    #[test]
    fn a_missing_epoch_cuts_to_the_earlier_one_and_asks_again() {
        // The leader names epoch 3, which this replica never had; its nearest is 2, ending at 80.
        let t = truncation_for(
            DivergingEpoch {
                epoch: 3,
                end_offset: 70,
            },
            cache(&[(1, 0), (2, 50)], 80),
            80,
            40,
        );
        assert_eq!(
            t,
            Truncation {
                offset: 70,
                complete: false
            }
        );
        // No epoch that old at all: fall back to the high watermark.
        let t = truncation_for(
            DivergingEpoch {
                epoch: 0,
                end_offset: 10,
            },
            cache(&[(1, 0), (2, 50)], 80),
            80,
            40,
        );
        assert_eq!(
            t,
            Truncation {
                offset: 40,
                complete: true
            }
        );
    }

    #[test]
    fn fetch_answers_drive_the_next_step() {
        let f = PartitionFollower::new(2, 7, 100, Some(6), 90);
        let none = |_e: i32| None;
        assert_eq!(
            f.on_fetch_answer(ErrorCode::None, 95, None, none),
            FollowerStep::Append { high_watermark: 95 }
        );
        assert_eq!(
            f.on_fetch_answer(ErrorCode::FencedLeaderEpoch, -1, None, none),
            FollowerStep::AwaitMetadata
        );
        assert_eq!(
            f.on_fetch_answer(ErrorCode::NotLeaderOrFollower, -1, None, none),
            FollowerStep::AwaitMetadata
        );
        assert_eq!(
            f.on_fetch_answer(ErrorCode::OffsetOutOfRange, -1, None, none),
            FollowerStep::Truncate(Truncation {
                offset: 90,
                complete: true
            })
        );
        assert_eq!(
            f.on_fetch_answer(ErrorCode::RequestTimedOut, -1, None, none),
            FollowerStep::Retry
        );
        let d = DivergingEpoch {
            epoch: 6,
            end_offset: 97,
        };
        assert_eq!(
            f.on_fetch_answer(ErrorCode::None, 95, Some(d), cache(&[(6, 0)], 100)),
            FollowerStep::Truncate(Truncation {
                offset: 97,
                complete: true
            })
        );
    }

    #[test]
    fn the_follower_high_watermark_never_passes_its_own_log() {
        let mut f = PartitionFollower::new(2, 7, 100, Some(6), 90);
        f.appended(120, Some(7), 150);
        assert_eq!((f.fetch_offset, f.high_watermark), (120, 120));
        f.appended(130, None, 110);
        assert_eq!((f.high_watermark, f.last_fetched_epoch), (120, Some(7)));
        f.truncated(105, Some(6));
        assert_eq!(
            (f.fetch_offset, f.high_watermark, f.last_fetched_epoch),
            (105, 105, Some(6))
        );
    }
}
