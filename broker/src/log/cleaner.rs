//! Log compaction's file work, done without holding any partition lock: the `OffsetMap` of each
//! key's latest offset, the rule for which records survive, and writing cleaned segments.
//!
//! What a pass keeps, record by record, in the segments it rewrites:
//! - a record whose key has a later offset in the `OffsetMap` is dropped (superseded);
//! - a record without a key is dropped: Kafka refuses them at produce time for compacted topics,
//!   so one can only be there from before the topic became compacted, and there is nothing to
//!   keep it by (Kafka's cleaner drops them too);
//! - a tombstone (null value) is dropped once its batch's max timestamp is more than
//!   `delete.retention.ms` before `now`: the [tombstone rule](tombstone_expired). It is only
//!   dropped in a pass that also drops every older record of its key, because a pass always
//!   rewrites from the first segment of the log up to the end of what its map covers;
//! - records at or past the map's end were not looked at for keys and are kept as they are.
//!
//! Batches keep their base offset and last offset delta whatever is removed from them, as Kafka
//! does: kept records keep their offsets, and `base_sequence + last_offset_delta` stays the
//! producer's last sequence, so idempotent retries still match after a clean. An emptied batch
//! is dropped (Kafka would keep an empty one to retain producer state; here producer state lives
//! in snapshots taken at rolls, which is what a reopen loads). Control and transactional batches,
//! and batches the cleaner cannot decode within its limit, are copied unchanged. The latter also
//! add no keys to the map, so their records supersede nothing, and a record of theirs can outlive
//! a later tombstone of its key; they only occur when a topic's batches decompress beyond
//! `CleanerConfig::max_batch_uncompressed_bytes`, which produce-time limits make unusual.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::records::{BatchHeader, RecordBatch};

use super::index::{OFFSET_INDEX_ENTRY_SIZE, TIME_INDEX_ENTRY_SIZE};
use super::scan::{BatchScanner, Scanned};
use super::segment::{AppendedBatch, LogSegment};
use super::{LogConfig, LogError};

/// Kafka's default `log.cleaner.dedupe.buffer.size`.
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 << 20;
/// Kafka's default `log.cleaner.backoff.ms`: the pause between passes over all logs.
pub const DEFAULT_BACKOFF_MS: u64 = 15_000;
/// Suffix of a cleaned segment still being written; deleted if found on open.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a finished cleaned segment waiting to replace the segments it was made from; on
/// open it is put in their place (see `Log::open`).
pub(crate) const SWAP_SUFFIX: &str = ".swap";
const READ_CHUNK: usize = 1 << 20;

/// Settings shared by every log the cleaner visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: the most memory one pass's `OffsetMap` may take. When
    /// the dirty part of a log does not fit, the pass cleans up to where the map ends and the
    /// next pass continues from there.
    pub dedupe_buffer_bytes: usize,
    /// A batch whose records would decompress to more than this is kept unchanged. Produce
    /// accepts at least 64 MiB per batch, so the default covers what default settings let in.
    pub max_batch_uncompressed_bytes: usize,
    /// How much cleaned output is gathered before each write.
    pub write_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> CleanerConfig {
        CleanerConfig {
            dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
            max_batch_uncompressed_bytes: 64 << 20,
            write_buffer_bytes: 1 << 20,
        }
    }
}

/// What a call to `Log::clean` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanOutcome {
    /// Segments were rewritten.
    #[default]
    Cleaned,
    /// cleanup.policy does not include compact.
    NotCompacted,
    /// No closed segment holds data the last pass did not see, and no kept tombstone is due.
    NothingToClean,
    /// Too little of the log is dirty for min.cleanable.dirty.ratio.
    BelowDirtyRatio,
    /// Another pass over this log is running.
    Busy,
    /// The log was truncated, lost segments to retention or was closed while cleaning; the
    /// cleaned output was thrown away (the segments swapped in before that stay).
    Abandoned,
}

/// Counts for one pass, over the segments it rewrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanStats {
    pub outcome: CleanOutcome,
    pub segments_before: usize,
    pub segments_after: usize,
    pub records_before: u64,
    pub records_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    /// Batches copied unchanged because they could not be decoded within the limit.
    pub undecodable_batches: u64,
    /// The cleaner checkpoint after the pass: offsets below it have been deduplicated.
    pub first_dirty_offset: i64,
}

impl CleanStats {
    pub(crate) fn skipped(outcome: CleanOutcome, first_dirty_offset: i64) -> CleanStats {
        CleanStats {
            outcome,
            first_dirty_offset,
            ..CleanStats::default()
        }
    }
}

/// Each key's latest offset in the part of the log a pass deduplicates. Keys are stored whole
/// rather than as digests, so two keys can never be taken for one (Kafka keys by MD5 and accepts
/// the odds); the price is that long keys use more of the budget, which is charged per entry as
/// the key's length plus a fixed overhead for the table slot, the allocation and spare capacity.
#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    limit: usize,
}

/// Estimated cost of an entry beyond its key bytes: a 24-byte slot, doubled for the table's spare
/// capacity after growth, plus the key allocation's own overhead.
const ENTRY_OVERHEAD: usize = 64;

impl OffsetMap {
    pub fn new(limit_bytes: usize) -> OffsetMap {
        OffsetMap {
            entries: HashMap::new(),
            bytes: 0,
            limit: limit_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Estimated memory in use.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(key).copied()
    }

    /// What adding `keys` would cost, counting keys already present as free. A key repeated
    /// within `keys` is counted each time, which only errs on the safe side.
    fn cost<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> usize {
        keys.filter(|k| !self.entries.contains_key(*k))
            .map(|k| k.len() + ENTRY_OVERHEAD)
            .sum()
    }

    /// Notes `offset` as the latest for `key`; offsets arrive in log order, so later wins.
    fn put(&mut self, key: &[u8], offset: i64) {
        match self.entries.get_mut(key) {
            Some(o) => *o = offset,
            None => {
                self.bytes += key.len() + ENTRY_OVERHEAD;
                self.entries.insert(key.into(), offset);
            }
        }
    }
}

/// A closed segment as the cleaner saw it under the lock. Closed segments are never written
/// again, so reading `file` without the lock is safe; truncation is the one thing that could
/// change them, and the swap notices it.
#[derive(Debug, Clone)]
pub(crate) struct SourceSegment {
    pub base: i64,
    /// The next segment's base: no offset of this segment reaches it.
    pub end: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub index_entries: (usize, usize),
}

/// The tombstone rule: a tombstone may go once its batch's max timestamp is more than
/// `delete.retention.ms` in the past. Consumers reading the log from the start then see every
/// delete if they reach it within `delete.retention.ms` of it being produced (given producer
/// clocks that roughly agree with the broker's).
pub(crate) fn tombstone_expired(max_timestamp: i64, now_ms: i64, delete_retention_ms: i64) -> bool {
    now_ms.saturating_sub(max_timestamp) > delete_retention_ms
}

/// Calls `f` with every batch of `segment`, CRC-checked, in order.
fn for_each_batch(
    segment: &SourceSegment,
    abort: &AtomicBool,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool, LogError>,
) -> Result<bool, LogError> {
    let mut scanner = BatchScanner::new(&segment.file, 0, segment.size, true, READ_CHUNK);
    loop {
        if abort.load(Ordering::Acquire) {
            return Ok(false);
        }
        match scanner.next_batch()? {
            Scanned::End => return Ok(true),
            Scanned::Invalid { position, reason } => {
                return Err(LogError::Corrupt(format!(
                    "closed segment {} has an invalid batch at {position}: {reason}",
                    segment.base
                )))
            }
            Scanned::Batch { header, .. } => {
                let bytes = scanner.last_batch_bytes(header.total_size());
                if !f(&header, bytes)? {
                    return Ok(false);
                }
            }
        }
    }
}

/// Whether the cleaner looks inside this batch at all.
fn is_plain(h: &BatchHeader) -> bool {
    !h.is_control() && !h.is_transactional()
}

/// What filling the map achieved.
pub(crate) enum MapFill {
    /// Every record below this offset (from the starting offset on) is in the map.
    Covered(i64),
    /// Cancelled by `abort`.
    Aborted,
}

/// Loads the keys of every record at or past `from` in `segments` into `map`, in log order,
/// stopping before the first batch that would take the map over its budget (unless the map is
/// empty, so that every pass makes progress).
pub(crate) fn fill_offset_map(
    segments: &[SourceSegment],
    from: i64,
    map: &mut OffsetMap,
    config: &CleanerConfig,
    abort: &AtomicBool,
) -> Result<MapFill, LogError> {
    let mut stopped_at = None;
    for seg in segments.iter().filter(|s| s.end > from) {
        let completed = for_each_batch(seg, abort, |h, bytes| {
            if h.last_offset() < from || !is_plain(h) {
                return Ok(true);
            }
            let Ok(batch) = RecordBatch::decode(bytes, config.max_batch_uncompressed_bytes) else {
                // Kept unchanged when cleaning too; its keys only make older records survive.
                return Ok(true);
            };
            let keys = || {
                batch
                    .records
                    .iter()
                    .filter(|r| r.offset >= from)
                    .filter_map(|r| r.key.as_deref())
            };
            if !map.is_empty() && map.bytes() + map.cost(keys()) > map.limit {
                stopped_at = Some(h.base_offset.max(from));
                return Ok(false);
            }
            for r in batch.records.iter().filter(|r| r.offset >= from) {
                if let Some(key) = &r.key {
                    map.put(key, r.offset);
                }
            }
            Ok(true)
        })?;
        if let Some(end) = stopped_at {
            return Ok(MapFill::Covered(end));
        }
        if !completed {
            return Ok(MapFill::Aborted);
        }
    }
    Ok(MapFill::Covered(
        segments.last().map_or(from, |s| s.end.max(from)),
    ))
}

/// What the cleaner does with one batch.
enum Verdict {
    Keep,
    Drop,
    Rewrite(Bytes),
}

/// Decides the fate of the records of one pass, and counts it.
pub(crate) struct Compactor<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not loaded into the map and are kept.
    pub map_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub config: &'a CleanerConfig,
    pub stats: CleanStats,
    /// The earliest time a tombstone kept by this pass may go; a later pass is due then even if
    /// nothing new was written.
    pub next_tombstone_expiry: Option<i64>,
}

impl Compactor<'_> {
    fn judge(&mut self, h: &BatchHeader, bytes: &[u8]) -> Verdict {
        if !is_plain(h) || h.base_offset >= self.map_end {
            return Verdict::Keep;
        }
        let mut batch = match RecordBatch::decode(bytes, self.config.max_batch_uncompressed_bytes) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    base_offset = h.base_offset, error = %e,
                    "cleaner keeps a batch it cannot decode"
                );
                self.stats.undecodable_batches += 1;
                return Verdict::Keep;
            }
        };
        let expired = tombstone_expired(h.max_timestamp, self.now_ms, self.delete_retention_ms);
        let before = batch.records.len();
        let mut kept_tombstone = false;
        let (mut keyless, mut tombstones) = (0, 0);
        batch.records.retain(|r| {
            if r.offset >= self.map_end {
                return true;
            }
            let Some(key) = &r.key else {
                keyless += 1;
                return false;
            };
            if self.map.get(key).is_some_and(|latest| latest > r.offset) {
                return false;
            }
            if r.value.is_none() {
                if expired {
                    tombstones += 1;
                    return false;
                }
                kept_tombstone = true;
            }
            true
        });
        self.stats.keyless_removed += keyless;
        self.stats.tombstones_removed += tombstones;
        if kept_tombstone {
            let due = h
                .max_timestamp
                .saturating_add(self.delete_retention_ms)
                .saturating_add(1);
            self.next_tombstone_expiry =
                Some(self.next_tombstone_expiry.map_or(due, |t| t.min(due)));
        }
        if batch.records.len() == before {
            return Verdict::Keep;
        }
        if batch.records.is_empty() {
            return Verdict::Drop;
        }
        if !batch.log_append_time {
            batch.max_timestamp = batch
                .records
                .iter()
                .map(|r| r.timestamp)
                .max()
                .unwrap_or(-1);
        }
        // Base offset and last offset delta stay: see the module comment.
        match batch.encode() {
            Ok(b) => Verdict::Rewrite(b),
            Err(e) => {
                tracing::warn!(base_offset = h.base_offset, error = %e, "cleaner keeps a batch it cannot re-encode");
                Verdict::Keep
            }
        }
    }

    /// Writes the cleaned content of the first of `sources` and as many after it as fit as one
    /// new segment, named after the first base offset with the `.cleaned` suffix, indexed and
    /// synced. Returns it with the number of sources it replaces, or `None` if aborted.
    ///
    /// A source joins while the output so far plus the source's whole size stays within
    /// `segment.bytes` and its offsets and index entries fit one segment, so a run of segments
    /// that cleaning shrank becomes one segment rather than many small ones. (Kafka groups by
    /// the sizes before cleaning, which merges only on the next pass.)
    pub(crate) fn write_group(
        &mut self,
        dir: &std::path::Path,
        sources: &[SourceSegment],
        log_config: &LogConfig,
        abort: &AtomicBool,
    ) -> Result<Option<(LogSegment, usize)>, LogError> {
        let first = sources.first().expect("something to clean");
        let mut out = LogSegment::create_with_suffix(dir, first.base, log_config, CLEANED_SUFFIX)?;
        match self.fill_group(&mut out, sources, log_config, abort) {
            Ok(Some(n)) => {
                out.on_become_inactive()?;
                out.set_next_offset(sources[n - 1].end);
                for handle in out.sync_handles() {
                    handle.sync_data()?;
                }
                Ok(Some((out, n)))
            }
            Ok(None) => {
                out.delete_files()?;
                Ok(None)
            }
            Err(e) => {
                let _ = out.delete_files();
                Err(e)
            }
        }
    }

    fn fill_group(
        &mut self,
        out: &mut LogSegment,
        sources: &[SourceSegment],
        log_config: &LogConfig,
        abort: &AtomicBool,
    ) -> Result<Option<usize>, LogError> {
        let base = sources[0].base;
        let max_bytes = log_config.segment_bytes.min(i32::MAX as u64);
        let max_offset_entries = log_config.max_index_bytes / OFFSET_INDEX_ENTRY_SIZE;
        let max_time_entries = log_config.max_index_bytes / TIME_INDEX_ENTRY_SIZE;
        let mut pending: Vec<u8> = Vec::with_capacity(self.config.write_buffer_bytes);
        let mut batches: Vec<AppendedBatch> = Vec::new();
        let now_ms = self.now_ms;
        let write =
            |out: &mut LogSegment, pending: &mut Vec<u8>, batches: &mut Vec<AppendedBatch>| {
                if !pending.is_empty() {
                    // The time only matters if truncation ever makes this the active segment.
                    out.append(pending, batches, now_ms)?;
                    pending.clear();
                    batches.clear();
                }
                Ok::<(), LogError>(())
            };
        let mut taken = 0;
        for seg in sources {
            if taken > 0 {
                write(out, &mut pending, &mut batches)?;
                let (offsets, times) = out.index_entries();
                let fits = out.size() + seg.size <= max_bytes
                    && seg.end - 1 - base <= i32::MAX as i64
                    && offsets + seg.index_entries.0 <= max_offset_entries
                    && times + seg.index_entries.1 <= max_time_entries;
                if !fits {
                    break;
                }
            }
            self.stats.segments_before += 1;
            self.stats.bytes_before += seg.size;
            let completed = for_each_batch(seg, abort, |h, bytes| {
                self.stats.records_before += h.records_count.max(0) as u64;
                let (header, data): (BatchHeader, &[u8]);
                let rewritten;
                match self.judge(h, bytes) {
                    Verdict::Drop => return Ok(true),
                    Verdict::Keep => (header, data) = (*h, bytes),
                    Verdict::Rewrite(b) => {
                        rewritten = b;
                        header = BatchHeader::parse(&rewritten)
                            .map_err(|e| LogError::Corrupt(e.to_string()))?;
                        data = &rewritten;
                    }
                }
                self.stats.records_after += header.records_count.max(0) as u64;
                batches.push(AppendedBatch {
                    position: pending.len(),
                    size: data.len(),
                    last_offset: header.last_offset(),
                    max_timestamp: header.max_timestamp,
                });
                pending.extend_from_slice(data);
                if pending.len() >= self.config.write_buffer_bytes {
                    write(out, &mut pending, &mut batches)?;
                }
                Ok(true)
            })?;
            if !completed {
                return Ok(None);
            }
            taken += 1;
        }
        write(out, &mut pending, &mut batches)?;
        self.stats.segments_after += 1;
        self.stats.bytes_after += out.size();
        Ok(Some(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_map_keeps_the_latest_offset_and_charges_its_budget() {
        let mut map = OffsetMap::new(1000);
        map.put(b"a", 1);
        map.put(b"bb", 2);
        map.put(b"a", 7);
        assert_eq!(map.get(b"a"), Some(7));
        assert_eq!(map.get(b"bb"), Some(2));
        assert_eq!(map.get(b"c"), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.bytes(), 3 + 2 * ENTRY_OVERHEAD);
        let keys: [&[u8]; 3] = [b"a", b"new", b"bb"];
        assert_eq!(map.cost(keys.into_iter()), 3 + ENTRY_OVERHEAD);
    }

    #[test]
    fn tombstones_expire_strictly_after_the_retention() {
        assert!(!tombstone_expired(1_000, 2_000, 1_000));
        assert!(tombstone_expired(1_000, 2_001, 1_000));
        assert!(tombstone_expired(i64::MIN, 0, 1));
    }
}
