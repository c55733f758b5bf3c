//! The log's side of compaction: deciding under the lock whether and what to clean, swapping
//! cleaned segments in, and finishing a swap that a crash interrupted.
//!
//! The lock is held only to snapshot the closed segments and, per cleaned group, for the swap:
//! renames, unlinks and two directory syncs. Reading and writing segment data happens without it,
//! so produce and fetch carry on during a pass; a fetch already reading a replaced segment keeps
//! its open handle to the unlinked file.
//!
//! Crash safety of a swap, in the order the steps happen:
//! 1. the cleaned segment is written and synced as `B.log.cleaned` (+ `.index`/`.timeindex`);
//! 2. under the lock, having checked that the source segments are still there untouched, the
//!    index files and then the log file are renamed to `.swap`, and the directory synced. The log
//!    file's rename is the commit point: from here on `Log::open` completes the swap;
//! 3. the replaced segments' files are removed (for `B` itself only its indexes), dir synced;
//! 4. `B.log.swap` is renamed over `B.log`, then the indexes into place.
//!
//! On open, `.cleaned` files are deleted (old segments intact), `.swap` index files are deleted
//! (the segment's index is rebuilt), and a `B.log.swap` removes every segment whose base lies
//! within its offsets before taking the name `B.log`. Every record of the removed segments that
//! compaction keeps is in the swap file, which was synced before step 2, so nothing is lost.
//! Step 2 is under the lock because truncation must not run between a swap file existing and the
//! swap completing: a crash there would bring truncated records back.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};

use super::{remove_if_exists, remove_segment_files, Log};
use crate::log::cleaner::{
    fill_offset_map, CleanOutcome, CleanStats, CleanerConfig, Compactor, MapFill, OffsetMap,
    SourceSegment, SWAP_SUFFIX,
};
use crate::log::scan::{BatchScanner, Scanned};
use crate::log::segment::{segment_paths, LogSegment};
use crate::log::{fsync_dir, offset_file_name, LogConfig, LogError, TopicPartition, LOG_SUFFIX};

/// What the lock-holding part of a pass hands to the lock-free part.
struct Plan {
    config: LogConfig,
    sources: Vec<SourceSegment>,
    first_dirty: i64,
    truncations: u64,
}

impl Log {
    /// One cleaning pass with the default [`CleanerConfig`], if one is due: see
    /// [`clean_with`](Self::clean_with).
    pub fn clean(&self, now_ms: i64) -> Result<CleanStats, LogError> {
        self.clean_with(now_ms, &CleanerConfig::default())
    }

    /// Compacts the closed segments of a log whose cleanup policy includes compact, keeping the
    /// latest record per key (see `cleaner` for the full rule). A pass is due when closed
    /// segments past the cleaner checkpoint make up at least `min.cleanable.dirty.ratio` of the
    /// closed segments' bytes, or when a tombstone kept by the last pass has expired since.
    /// Segments with records newer than `min.compaction.lag.ms` are left for later, and so is
    /// everything after them. Offsets, the log start and the log end never change.
    pub fn clean_with(&self, now_ms: i64, config: &CleanerConfig) -> Result<CleanStats, LogError> {
        let _pass = match self.clean_lock.try_lock() {
            Ok(guard) => guard,
            // A pass that panicked left nothing to protect: its output is only ever swapped in
            // whole, and leftovers are `.cleaned` files.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Ok(CleanStats::skipped(
                    CleanOutcome::Busy,
                    self.cleaner_checkpoint().unwrap_or(-1),
                ))
            }
        };
        let plan = match self.plan_clean(now_ms)? {
            Ok(plan) => plan,
            Err(skipped) => return Ok(skipped),
        };
        let mut map = OffsetMap::new(config.dedupe_buffer_bytes);
        let map_end = match self.guard(
            plan.truncations,
            fill_offset_map(
                &plan.sources,
                plan.first_dirty,
                &mut map,
                config,
                &self.closing,
            ),
        )? {
            Some(MapFill::Covered(end)) => end,
            Some(MapFill::Aborted) | None => {
                return Ok(CleanStats::skipped(
                    CleanOutcome::Abandoned,
                    plan.first_dirty,
                ))
            }
        };
        let to_clean: Vec<SourceSegment> = plan
            .sources
            .into_iter()
            .take_while(|s| s.base < map_end)
            .collect();
        let mut compactor = Compactor {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: plan.config.delete_retention_ms,
            config,
            stats: CleanStats::default(),
            next_tombstone_expiry: None,
        };
        let mut next = 0;
        while next < to_clean.len() {
            let rest = &to_clean[next..];
            let written = compactor.write_group(&self.dir, rest, &plan.config, &self.closing);
            let swapped = match self.guard(plan.truncations, written)? {
                Some(Some((cleaned, n))) => {
                    next += n;
                    self.swap_in(&rest[..n], cleaned, plan.truncations)?
                }
                Some(None) | None => false,
            };
            if !swapped {
                let mut stats = compactor.stats;
                stats.outcome = CleanOutcome::Abandoned;
                stats.first_dirty_offset = plan.first_dirty;
                return Ok(stats);
            }
        }
        let mut stats = compactor.stats;
        let mut inner = self.lock();
        // A truncation after the last swap may have cut below the map's end.
        let first_dirty = map_end.min(inner.next_offset);
        inner.first_dirty = Some(first_dirty);
        inner.next_tombstone_expiry = compactor.next_tombstone_expiry;
        stats.first_dirty_offset = first_dirty;
        drop(inner);
        tracing::debug!(
            tp = %self.tp, records_before = stats.records_before, records_after = stats.records_after,
            bytes_before = stats.bytes_before, bytes_after = stats.bytes_after,
            "cleaned log"
        );
        Ok(stats)
    }

    /// Offsets below this have been deduplicated by a cleaning pass (Kafka's cleaner offset
    /// checkpoint); `None` if no pass has run.
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        self.lock().first_dirty
    }

    /// Restores the cleaner checkpoint from the `cleaner-offset-checkpoint` file. A value past
    /// the log end (the log lost its tail since) is ignored: all of the log counts as dirty.
    pub fn set_cleaner_checkpoint(&self, offset: i64) {
        let mut inner = self.lock();
        inner.first_dirty = (offset <= inner.next_offset).then_some(offset.max(inner.log_start));
    }

    /// Under the lock: the closed segments to work on, or why no pass is due.
    fn plan_clean(&self, now_ms: i64) -> Result<Result<Plan, CleanStats>, LogError> {
        let inner = self.lock();
        let first_dirty = inner
            .first_dirty
            .unwrap_or(inner.log_start)
            .max(inner.log_start);
        let skip = |outcome| Ok(Err(CleanStats::skipped(outcome, first_dirty)));
        if inner.closed || self.closing.load(Ordering::Acquire) {
            return skip(CleanOutcome::Abandoned);
        }
        if !inner.config.cleanup_policy.compacts() {
            return skip(CleanOutcome::NotCompacted);
        }
        let lag = inner.config.min_compaction_lag_ms;
        let bases: Vec<i64> = inner.segments.keys().copied().collect();
        let mut sources = Vec::new();
        for pair in bases.windows(2) {
            let seg = &inner.segments[&pair[0]];
            // Kafka's first uncleanable offset: nothing from a too-recent segment on is touched.
            if lag > 0 && seg.max_timestamp() > now_ms.saturating_sub(lag) {
                break;
            }
            sources.push(SourceSegment {
                base: pair[0],
                end: pair[1],
                size: seg.size(),
                file: seg.file(),
                index_entries: seg.index_entries(),
            });
        }
        let total: u64 = sources.iter().map(|s| s.size).sum();
        let dirty: u64 = sources
            .iter()
            .filter(|s| s.end > first_dirty)
            .map(|s| s.size)
            .sum();
        let tombstones_due = inner.next_tombstone_expiry.is_some_and(|t| t <= now_ms);
        if total == 0 || (dirty == 0 && !tombstones_due) {
            return skip(CleanOutcome::NothingToClean);
        }
        if !tombstones_due && (dirty as f64) < inner.config.min_cleanable_dirty_ratio * total as f64
        {
            return skip(CleanOutcome::BelowDirtyRatio);
        }
        Ok(Ok(Plan {
            config: inner.config.clone(),
            sources,
            first_dirty,
            truncations: inner.truncations,
        }))
    }

    /// A pass's file work may fail because truncation or retention pulled the segments out from
    /// under it; that is no error, just a reason to give up (`None`).
    fn guard<T>(
        &self,
        truncations: u64,
        result: Result<T, LogError>,
    ) -> Result<Option<T>, LogError> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let inner = self.lock();
                if inner.closed || inner.truncations != truncations {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Puts `cleaned` in place of `group` if those segments are all still there as they were;
    /// otherwise deletes it. See the module comment for the order of steps.
    fn swap_in(
        &self,
        group: &[SourceSegment],
        mut cleaned: LogSegment,
        truncations: u64,
    ) -> Result<bool, LogError> {
        let mut inner = self.lock();
        let active = inner.active().base_offset();
        let unchanged = !inner.closed
            && inner.truncations == truncations
            && group.iter().all(|s| {
                s.base < active
                    && inner.segments.get(&s.base).is_some_and(|seg| {
                        Arc::ptr_eq(&seg.file(), &s.file) && seg.size() == s.size
                    })
            });
        if !unchanged {
            drop(inner);
            cleaned.delete_files()?;
            return Ok(false);
        }
        let dir = self.dir.as_path();
        let base = group[0].base;
        let (log_swap, index_swap, time_swap) = segment_paths(dir, base, SWAP_SUFFIX);
        cleaned.rename_indexes(index_swap, time_swap)?;
        cleaned.rename_log(log_swap)?;
        if let Err(e) = fsync_dir(dir) {
            // Nothing old is touched yet: withdraw the swap rather than leave one that a later
            // truncation could make wrong. Past this point a failure leaves the swap for the next
            // open to finish, with the old segments still serving reads until then.
            let _ = cleaned.delete_files();
            return Err(e.into());
        }
        let (log, index, time_index) = segment_paths(dir, base, "");
        for s in group {
            if s.base == base {
                remove_if_exists(&index)?;
                remove_if_exists(&time_index)?;
            } else {
                remove_segment_files(dir, s.base)?;
            }
        }
        fsync_dir(dir)?;
        cleaned.rename_log(log)?;
        cleaned.rename_indexes(index, time_index)?;
        inner.dir_dirty = true;
        for s in group {
            // Dropping the old segment closes nothing a reader still holds: reads clone the Arc.
            inner.segments.remove(&s.base);
        }
        inner.segments.insert(base, cleaned);
        self.publish(&inner);
        Ok(true)
    }
}

/// Finishes swaps a crash interrupted (see the module comment): each `B.log.swap` replaces the
/// segments whose base offsets fall within its own offsets. `bases` is updated to match.
pub(super) fn complete_swaps(
    dir: &Path,
    tp: &TopicPartition,
    swaps: &mut [i64],
    bases: &mut Vec<i64>,
) -> Result<(), LogError> {
    swaps.sort_unstable();
    for &base in swaps.iter() {
        let (log, _, _) = segment_paths(dir, base, "");
        let swap = dir.join(format!(
            "{}{SWAP_SUFFIX}",
            offset_file_name(base, LOG_SUFFIX)
        ));
        let last = last_offset(&swap)?.unwrap_or(base);
        let replaced: Vec<i64> = bases
            .iter()
            .copied()
            .filter(|b| (base..=last).contains(b))
            .collect();
        tracing::info!(%tp, segment = base, ?replaced, "completing an interrupted segment swap");
        for &b in &replaced {
            remove_segment_files(dir, b)?;
        }
        fsync_dir(dir)?;
        std::fs::rename(&swap, &log)?;
        fsync_dir(dir)?;
        bases.retain(|b| !replaced.contains(b));
        bases.push(base);
    }
    Ok(())
}

/// The last offset of the last whole batch in a segment file, if it has any.
fn last_offset(path: &Path) -> Result<Option<i64>, LogError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut scanner = BatchScanner::new(&file, 0, size, false, 1 << 20);
    let mut last = None;
    loop {
        match scanner.next_batch()? {
            Scanned::Batch { header, .. } => last = Some(header.last_offset()),
            Scanned::End | Scanned::Invalid { .. } => return Ok(last),
        }
    }
}

#[cfg(test)]
mod tests;
