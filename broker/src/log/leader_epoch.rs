//! `LeaderEpochFileCache`: for one partition, the first offset written under each leader epoch,
//! which answers OffsetForLeaderEpoch, kept in Kafka's `leader-epoch-checkpoint` file.
//!
//! The file is Kafka's text checkpoint: version line `0`, the entry count, then one
//! `epoch startOffset` line per epoch, oldest first. Every change is written through atomically
//! before the caller goes on, so the file never lacks an epoch whose batches may already be on
//! disk; entries it holds past the log end (a crash before the batches were synced) are dropped
//! when the log is opened.

use std::path::{Path, PathBuf};

use super::checkpoint::{format_checkpoint, read_checkpoint_lines, write_atomically};
use super::LogError;

/// The file's name inside the partition directory, as Kafka names it.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// No epoch: what OffsetForLeaderEpoch answers when the log cannot place the requested epoch.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// A leader epoch and the offset of its first batch in this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochFileCache {
    path: PathBuf,
    /// Strictly increasing in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochFileCache {
    /// An empty cache for the partition directory `dir`; nothing is written until it changes.
    pub fn empty(dir: &Path) -> LeaderEpochFileCache {
        LeaderEpochFileCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    /// Reads the checkpoint in `dir`: `Ok(None)` when there is none, an error when it is damaged
    /// (both leave the caller to rebuild the cache from the log's batches).
    pub fn load(dir: &Path) -> Result<Option<LeaderEpochFileCache>, LogError> {
        let mut cache = LeaderEpochFileCache::empty(dir);
        let Some(lines) = read_checkpoint_lines(&cache.path)? else {
            return Ok(None);
        };
        let path = cache.path.clone();
        let corrupt = |line: &str| {
            LogError::Corrupt(format!(
                "leader epoch checkpoint {}: bad line {line:?}",
                path.display()
            ))
        };
        for line in &lines {
            let mut parts = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(line));
            };
            let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
                return Err(corrupt(line));
            };
            if epoch < 0 || start_offset < 0 {
                return Err(corrupt(line));
            }
            // The same rule as for appends: an entry that breaks monotonicity removes the
            // entries it conflicts with, so a hand-edited file cannot leave the cache unordered.
            cache.insert(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Some(cache))
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    pub fn earliest(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// Records that `epoch` starts at `start_offset`, writing the file if that changed anything.
    /// Nothing changes for the latest epoch at or after its known start (the common case: every
    /// append of the current leader), nor for a negative epoch or offset (a batch written without
    /// one). As in Kafka, an entry that is not above all the others first removes every entry
    /// whose epoch or start offset is at or above its own. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        if epoch < 0 || start_offset < 0 {
            return Ok(false);
        }
        let changed = self.insert(EpochEntry {
            epoch,
            start_offset,
        });
        if changed {
            self.write()?;
        }
        Ok(changed)
    }

    /// Assigns each `(epoch, start offset)` in order, as [`assign`](Self::assign) would, with one
    /// write at the end: for rebuilding the cache from a scan of the log's batches.
    pub fn assign_all(
        &mut self,
        entries: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<bool, LogError> {
        let mut changed = false;
        for (epoch, start_offset) in entries {
            if epoch >= 0 && start_offset >= 0 {
                changed |= self.insert(EpochEntry {
                    epoch,
                    start_offset,
                });
            }
        }
        if changed {
            self.write()?;
        }
        Ok(changed)
    }

    fn insert(&mut self, entry: EpochEntry) -> bool {
        if let Some(latest) = self.latest() {
            if latest.epoch == entry.epoch && latest.start_offset <= entry.start_offset {
                return false;
            }
        }
        let removed =
            self.truncate_while(|e| e.epoch >= entry.epoch || e.start_offset >= entry.start_offset);
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|r| r.start_offset != entry.start_offset)
        {
            // One entry at the same start is an epoch that never got data; anything more means
            // the log's epochs went backwards, which a correct leader never causes.
            tracing::warn!(
                path = %self.path.display(), ?entry, ?removed,
                "new leader epoch entry replaced conflicting entries"
            );
        }
        self.entries.push(entry);
        true
    }

    /// Pops entries from the end while `conflicts` holds; returns them.
    fn truncate_while(&mut self, conflicts: impl Fn(&EpochEntry) -> bool) -> Vec<EpochEntry> {
        let keep = self
            .entries
            .iter()
            .rposition(|e| !conflicts(e))
            .map_or(0, |i| i + 1);
        self.entries.split_off(keep)
    }

    /// Kafka's answer to OffsetForLeaderEpoch for `requested`: the largest epoch at or below it
    /// that this log has, and where that epoch ends, which is the start of the next higher epoch,
    /// or `log_end` if `requested` is the latest epoch. Below the earliest epoch the log still
    /// has (older ones were removed by retention) the answer is the requested epoch itself,
    /// ending where the earliest begins, so a follower truncates to the start of what is left.
    /// An undefined or unknown-future epoch, or an empty cache, gives `(-1, -1)`.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end);
        }
        // The first entry above `requested`, and the one before it, if any.
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// Drops every epoch that starts at or after `end_offset`, after the log lost its tail
    /// there. Returns whether the cache changed (and the file was rewritten).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<bool, LogError> {
        if end_offset < 0 {
            return Ok(false);
        }
        let removed = self.truncate_while(|e| e.start_offset >= end_offset);
        if removed.is_empty() {
            return Ok(false);
        }
        self.write()?;
        Ok(true)
    }

    /// Forgets epochs wholly below a new log start: the epoch in force at `start_offset` is kept
    /// and now starts there, so the earliest entry never points below the log. An entry already
    /// starting at `start_offset` stays as it is. Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<bool, LogError> {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if below == 0 || (below == 1 && self.entries[0].start_offset == start_offset) {
            return Ok(false);
        }
        let in_force = self.entries[below - 1].epoch;
        self.entries.drain(..below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: in_force,
                start_offset,
            },
        );
        self.write()?;
        Ok(true)
    }

    fn write(&self) -> Result<(), LogError> {
        let lines = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset));
        write_atomically(&self.path, &format_checkpoint(self.entries.len(), lines))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(cache: &LeaderEpochFileCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Epochs 1 at 0, 3 at 10 and 5 at 20, read back from the file each time.
    fn cache_1_3_5(dir: &Path) -> LeaderEpochFileCache {
        let mut c = LeaderEpochFileCache::empty(dir);
        for (epoch, start) in [(1, 0), (3, 10), (5, 20)] {
            assert!(c.assign(epoch, start).unwrap());
        }
        LeaderEpochFileCache::load(dir).unwrap().unwrap()
    }

    #[test]
    fn assign_records_only_new_epochs_and_writes_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochFileCache::empty(dir.path());
        assert!(LeaderEpochFileCache::load(dir.path()).unwrap().is_none());
        assert!(c.assign(0, 0).unwrap());
        // Later batches of the same epoch change nothing, and nothing is rewritten.
        assert!(!c.assign(0, 5).unwrap());
        assert!(c.assign(2, 7).unwrap());
        assert!(!c.assign(2, 9).unwrap());
        // No epoch on the batch: nothing to record.
        assert!(!c.assign(-1, 10).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
            "0\n2\n0 0\n2 7\n"
        );
        let back = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&back), vec![(0, 0), (2, 7)]);
        assert_eq!(back.latest_epoch(), Some(2));
        assert_eq!(back.earliest().map(|e| e.start_offset), Some(0));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "the temporary file is renamed away");
    }

    #[test]
    fn assign_below_the_latest_replaces_conflicting_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache_1_3_5(dir.path());
        // The latest epoch starting earlier than known moves its start back.
        assert!(c.assign(5, 15).unwrap());
        assert_eq!(entries(&c), vec![(1, 0), (3, 10), (5, 15)]);
        // An older epoch at a later offset removes the epochs at or above it.
        assert!(c.assign(4, 30).unwrap());
        assert_eq!(entries(&c), vec![(1, 0), (3, 10), (4, 30)]);
        // A higher epoch at an earlier offset removes the entries that start at or after it.
        assert!(c.assign(6, 10).unwrap());
        assert_eq!(entries(&c), vec![(1, 0), (6, 10)]);
        let back = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&back), entries(&c));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache_1_3_5(dir.path());
        let log_end = 42;
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(5, log_end), (5, 42));
        // A known older epoch ends where the next one starts.
        assert_eq!(c.end_offset_for(1, log_end), (1, 10));
        assert_eq!(c.end_offset_for(3, log_end), (3, 20));
        // An epoch the log never had: the largest one below it, ending where the next begins.
        assert_eq!(c.end_offset_for(2, log_end), (1, 10));
        assert_eq!(c.end_offset_for(4, log_end), (3, 20));
        // Below every epoch left: the requested epoch, ending where the earliest starts.
        assert_eq!(c.end_offset_for(0, log_end), (0, 0));
        // Undefined, or newer than anything this log has seen.
        assert_eq!(c.end_offset_for(-1, log_end), (-1, -1));
        assert_eq!(c.end_offset_for(6, log_end), (-1, -1));
        let empty = LeaderEpochFileCache::empty(dir.path());
        assert_eq!(empty.end_offset_for(0, log_end), (-1, -1));
    }

    #[test]
    fn truncate_from_end_drops_epochs_starting_at_or_after_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache_1_3_5(dir.path());
        assert!(!c.truncate_from_end(21).unwrap());
        assert!(c.truncate_from_end(20).unwrap());
        assert_eq!(entries(&c), vec![(1, 0), (3, 10)]);
        // Epoch 3 is now the latest, so it ends at the (new) log end.
        assert_eq!(c.end_offset_for(3, 20), (3, 20));
        assert!(c.truncate_from_end(5).unwrap());
        assert_eq!(entries(&c), vec![(1, 0)]);
        assert!(c.truncate_from_end(0).unwrap());
        assert!(entries(&c).is_empty());
        assert!(!c.truncate_from_end(0).unwrap());
        let back = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert!(back.entries().is_empty());
    }

    #[test]
    fn truncate_from_start_keeps_the_epoch_in_force_at_the_new_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache_1_3_5(dir.path());
        // At the earliest entry's own start: nothing to forget.
        assert!(!c.truncate_from_start(0).unwrap());
        assert!(c.truncate_from_start(12).unwrap());
        assert_eq!(entries(&c), vec![(3, 12), (5, 20)]);
        assert!(!c.truncate_from_start(12).unwrap());
        // Exactly at a later epoch's start: the epochs before it go.
        assert!(c.truncate_from_start(20).unwrap());
        assert_eq!(entries(&c), vec![(5, 20)]);
        // Past every start: the latest epoch stays, starting at the new log start.
        assert!(c.truncate_from_start(30).unwrap());
        assert_eq!(entries(&c), vec![(5, 30)]);
        let back = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&back), vec![(5, 30)]);
        let mut empty = LeaderEpochFileCache::empty(dir.path());
        assert!(!empty.truncate_from_start(7).unwrap());
    }

    #[test]
    fn assign_all_writes_once_what_a_scan_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochFileCache::empty(dir.path());
        let scanned = [(0, 0), (0, 3), (-1, 4), (2, 5), (2, 9), (4, 12)];
        assert!(c.assign_all(scanned).unwrap());
        assert_eq!(entries(&c), vec![(0, 0), (2, 5), (4, 12)]);
        assert!(!c.assign_all([(4, 13)]).unwrap());
        let back = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&back), entries(&c));
    }

    #[test]
    fn damaged_checkpoints_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0\n",
            "0\n1\nx 0\n",
            "0\n1\n0 0 0\n",
            "0\n1\n-1 0\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    LeaderEpochFileCache::load(dir.path()),
                    Err(LogError::Corrupt(_))
                ),
                "{bad:?} must be rejected"
            );
        }
        // Kafka separates the two numbers by whitespace of any kind.
        std::fs::write(&path, "0\n2\n0 0\n3\t9\n").unwrap();
        let c = LeaderEpochFileCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(entries(&c), vec![(0, 0), (3, 9)]);
    }
}
