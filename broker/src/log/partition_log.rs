//! `Log`: one partition's ordered segments with offset assignment, reads, recovery on open,
//! retention, rolling, flushing, truncation, idempotent-producer checks and its leader epochs.
//! Compaction's side of the log (what to clean, swapping cleaned segments in) is in
//! `partition_log/compaction.rs`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sluice_protocol::records::{
    set_base_offset, set_partition_leader_epoch, verify_crc, BatchHeader, Batches,
    BATCH_HEADER_SIZE,
};

use super::cleaner::{CLEANED_SUFFIX, SWAP_SUFFIX};
use super::leader_epoch::{EpochEntry, LeaderEpochFileCache};
use super::producer_state::{ProducerStateManager, ProducerValidation};
use super::segment::{AppendedBatch, LogSegment};
use super::{
    offset_file_name, AppendInfo, LogConfig, LogError, ReadResult, TopicPartition, INDEX_SUFFIX,
    LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Leftovers of interrupted file operations, never worth keeping. A `.swap` log file is the one
/// exception among the cleaner's files: it is complete and takes the place of what it replaces
/// (see `compaction::complete_swaps`); `.swap` index files are only dropped and rebuilt.
const TRANSIENT_SUFFIXES: [&str; 3] = [".tmp", ".deleted", CLEANED_SUFFIX];

pub struct Log {
    dir: PathBuf,
    tp: TopicPartition,
    inner: Mutex<Inner>,
    // Mirrors of `Inner` for lock-free getters; written only while holding the lock.
    log_start: AtomicI64,
    log_end: AtomicI64,
    recovery_point: AtomicI64,
    size: AtomicU64,
    high_watermark: AtomicI64,
    /// Single-node mode: every append is committed at once. Cleared by the first
    /// `set_high_watermark`, after which replication owns the high watermark.
    hw_follows_log_end: AtomicBool,
    /// Held for a whole cleaning pass (never by produce or fetch), so passes do not overlap and
    /// `close` can wait for one to stop.
    clean_lock: Mutex<()>,
    /// Set by `close`; a cleaning pass checks it between batches and gives up.
    closing: AtomicBool,
}

struct Inner {
    config: LogConfig,
    /// Never empty; the last one is the active segment.
    segments: BTreeMap<i64, LogSegment>,
    next_offset: i64,
    log_start: i64,
    recovery_point: i64,
    producers: ProducerStateManager,
    /// Where each leader epoch begins; kept in step with every append, truncation and move of
    /// the log start.
    epochs: LeaderEpochFileCache,
    unflushed_messages: u64,
    last_flush_ms: Option<i64>,
    /// A segment file was created or removed since the directory was last synced.
    dir_dirty: bool,
    /// Bumped by every truncation, so a flush that raced one does not claim the new tail, and a
    /// cleaning pass does not swap in segments made from data that is gone.
    truncations: u64,
    closed: bool,
    /// The cleaner checkpoint: offsets below it have been deduplicated by a pass. `None` until
    /// the first pass (or a loaded checkpoint), meaning all of the log is dirty.
    first_dirty: Option<i64>,
    /// When a tombstone kept by the last pass may be removed, which makes a pass due.
    next_tombstone_expiry: Option<i64>,
}

impl Inner {
    fn active(&self) -> &LogSegment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    fn total_size(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    fn should_roll(&mut self, append_size: u64, last_offset: i64, now_ms: i64) -> bool {
        let segment_bytes = self.config.segment_bytes;
        let segment_ms = self.config.segment_ms;
        let seg = self.active_mut();
        if seg.is_empty() {
            return false;
        }
        seg.note_time(now_ms);
        let size_after = seg.size() + append_size;
        size_after > segment_bytes
            // Index entries hold 32-bit positions and relative offsets.
            || size_after > i32::MAX as u64
            || last_offset - seg.base_offset() > i32::MAX as i64
            || seg.indexes_full()
            || match (segment_ms, seg.rolling_base_ms()) {
                (Some(ms), Some(base)) => now_ms.saturating_sub(base) >= ms as i64,
                _ => false,
            }
    }

    fn roll(&mut self, dir: &Path) -> Result<(), LogError> {
        self.roll_at(dir, self.next_offset)
    }

    /// Starts a new active segment at `base`, which is past the log end only when a follower
    /// appends after a gap: starting at the first fetched batch keeps index entries' relative
    /// offsets small however wide the gap.
    fn roll_at(&mut self, dir: &Path, base: i64) -> Result<(), LogError> {
        if self.active().base_offset() == base {
            return Ok(());
        }
        self.active_mut().on_become_inactive()?;
        let seg = LogSegment::create(dir, base, &self.config)?;
        self.segments.insert(base, seg);
        self.dir_dirty = true;
        // Bounds the tail to replay after a crash; losing it only costs a longer replay.
        if let Err(e) = self.producers.take_snapshot(base, false) {
            tracing::warn!(dir = %dir.display(), error = %e, "producer state snapshot failed");
        }
        Ok(())
    }

    /// Re-learns the leader epochs of the batches from `from` on by reading their headers, for a
    /// cache that lost them (no checkpoint file, or segments rewritten by recovery). The scan
    /// starts at the segment holding `from`, so the epoch of a batch straddling it is seen too.
    fn rescan_epochs_from(&mut self, from: i64) -> Result<(), LogError> {
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(b, _)| *b);
        let mut found: Vec<(i32, i64)> = Vec::new();
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            seg.for_each_batch_from(first, |h| {
                if found.last().map(|(e, _)| *e) != Some(h.partition_leader_epoch) {
                    found.push((h.partition_leader_epoch, h.base_offset));
                }
            })?;
        }
        self.epochs.assign_all(found)?;
        Ok(())
    }

    /// Loads the leader epoch checkpoint and fits it to the log as opened: epochs past the log
    /// end (written before a crash lost their batches) go, the earliest one moves up to the log
    /// start, and whatever the file cannot vouch for is re-read from the batches: everything
    /// when the file is missing or damaged, else the segments recovery re-read.
    fn load_epochs(
        &mut self,
        dir: &Path,
        tp: &TopicPartition,
        first_recovered: Option<i64>,
    ) -> Result<(), LogError> {
        let rescan_from = match LeaderEpochFileCache::load(dir) {
            Ok(Some(cache)) => {
                self.epochs = cache;
                first_recovered
            }
            Ok(None) => Some(self.log_start),
            Err(e) => {
                tracing::warn!(%tp, error = %e, "rebuilding the leader epoch cache from the log");
                Some(self.log_start)
            }
        };
        let next_offset = self.next_offset;
        self.epochs
            .truncate_from_end(rescan_from.map_or(next_offset, |r| r.min(next_offset)))?;
        // A rebuild that finds no epoch writes no file: a new, empty log costs no extra syncs,
        // and rescanning it at the next open costs nothing either.
        if let Some(from) = rescan_from {
            self.rescan_epochs_from(from)?;
        }
        let log_start = self.log_start;
        self.epochs.truncate_from_start(log_start)?;
        Ok(())
    }

    /// Rebuilds producer state from the newest usable snapshot plus the batches after it.
    fn reload_producer_state(&mut self) -> Result<(), LogError> {
        let mut start = None;
        for offset in self.producers.snapshot_offsets()?.into_iter().rev() {
            if offset <= self.next_offset && self.producers.load_snapshot(offset)? {
                start = Some(offset);
                break;
            }
            self.producers.delete_snapshot(offset)?;
        }
        if start.is_none() {
            self.producers.clear();
        }
        let from = start.unwrap_or(self.log_start).max(self.log_start);
        if from >= self.next_offset {
            return Ok(());
        }
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(b, _)| *b);
        let producers = &mut self.producers;
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            seg.for_each_batch_from(from, |h| producers.replay(h))?;
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(&dir.join(offset_file_name(base, suffix)))?;
    }
    Ok(())
}

fn read_exact(file: &File, position: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, position)?;
    Ok(Bytes::from(buf))
}

impl Log {
    /// Opens (or creates) the log in `dir`. After an unclean shutdown every segment holding
    /// offsets at or past `recovery_point` is re-checked batch by batch and cut at the first
    /// damaged batch, dropping later segments; indexes that are missing or damaged are rebuilt.
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        clean_shutdown: bool,
    ) -> Result<Log, LogError> {
        Log::open_with_log_start(dir, tp, config, recovery_point, None, clean_shutdown)
    }

    /// As [`open`](Self::open), with the log start offset from a checkpoint.
    pub fn open_with_log_start(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_checkpoint: Option<i64>,
        clean_shutdown: bool,
    ) -> Result<Log, LogError> {
        fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let mut swaps = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if TRANSIENT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                remove_if_exists(&entry.path())?;
                continue;
            }
            if let Some(live) = name.strip_suffix(SWAP_SUFFIX) {
                match super::parse_offset_file_name(Path::new(live), LOG_SUFFIX) {
                    Some(base) => swaps.push(base),
                    None => remove_if_exists(&entry.path())?,
                }
                continue;
            }
            let Some((stem, ext)) = name.split_once('.') else {
                continue;
            };
            let Ok(offset) = stem.parse::<i64>() else {
                continue;
            };
            match ext {
                LOG_SUFFIX => bases.push(offset),
                INDEX_SUFFIX | TIME_INDEX_SUFFIX => index_files.push((offset, entry.path())),
                _ => {}
            }
        }
        compaction::complete_swaps(dir, &tp, &mut swaps, &mut bases)?;
        bases.sort_unstable();
        for (offset, path) in index_files {
            if bases.binary_search(&offset).is_err() {
                remove_if_exists(&path)?;
            }
        }

        let mut segments = BTreeMap::new();
        let mut recovered = false;
        // The first segment whose batches recovery re-read (and may have cut): epochs learnt
        // from it on are re-learnt from what survived.
        let mut first_recovered: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let (mut seg, broken_index) = LogSegment::open(dir, base, &config)?;
            let unflushed =
                !clean_shutdown && !matches!(next_base, Some(nb) if nb <= recovery_point);
            let mut cut = 0;
            if unflushed || broken_index {
                recovered = true;
                first_recovered.get_or_insert(base);
                cut = seg.recover()?;
            } else if let Some(nb) = next_base {
                seg.set_next_offset(nb);
            } else {
                cut = seg.load_tail()?;
            }
            if let Some(nb) = next_base {
                if seg.next_offset() > nb {
                    return Err(LogError::Corrupt(format!(
                        "segment {base} of {tp} reaches offset {} past the next segment {nb}",
                        seg.next_offset()
                    )));
                }
            }
            segments.insert(base, seg);
            if cut > 0 {
                // Everything after a torn batch was written after it, so cannot be trusted.
                for &later in &bases[i + 1..] {
                    tracing::warn!(%tp, segment = later, "deleting segment after a torn batch");
                    remove_segment_files(dir, later)?;
                }
                break;
            }
        }
        if segments.is_empty() {
            let base = log_start_checkpoint.unwrap_or(0).max(0);
            segments.insert(base, LogSegment::create(dir, base, &config)?);
        }

        let first_base = *segments.keys().next().expect("at least one segment");
        let next_offset = segments
            .values()
            .next_back()
            .expect("segment")
            .next_offset();
        let log_start = log_start_checkpoint
            .map_or(first_base, |c| c.max(first_base))
            .min(next_offset);
        let recovery_point = if clean_shutdown {
            next_offset
        } else {
            recovery_point.clamp(log_start, next_offset)
        };
        let mut inner = Inner {
            config,
            segments,
            next_offset,
            log_start,
            recovery_point,
            producers: ProducerStateManager::new(dir),
            epochs: LeaderEpochFileCache::empty(dir),
            unflushed_messages: 0,
            last_flush_ms: None,
            dir_dirty: recovered,
            truncations: 0,
            closed: false,
            first_dirty: None,
            next_tombstone_expiry: None,
        };
        inner.reload_producer_state()?;
        inner.load_epochs(dir, &tp, first_recovered)?;
        let log = Log {
            dir: dir.to_path_buf(),
            tp,
            log_start: AtomicI64::new(0),
            log_end: AtomicI64::new(0),
            recovery_point: AtomicI64::new(0),
            size: AtomicU64::new(0),
            high_watermark: AtomicI64::new(0),
            hw_follows_log_end: AtomicBool::new(true),
            clean_lock: Mutex::new(()),
            closing: AtomicBool::new(false),
            inner: Mutex::new(inner),
        };
        {
            let inner = log.lock();
            log.publish(&inner);
        }
        if recovered {
            // Recovered data and rebuilt indexes become the new durable baseline.
            log.flush()?;
        }
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &Inner) {
        self.log_start.store(inner.log_start, Ordering::Release);
        self.log_end.store(inner.next_offset, Ordering::Release);
        self.recovery_point
            .store(inner.recovery_point, Ordering::Release);
        self.size.store(inner.total_size(), Ordering::Release);
        self.publish_high_watermark(inner);
    }

    fn publish_high_watermark(&self, inner: &Inner) {
        let hw = if self.hw_follows_log_end.load(Ordering::Acquire) {
            inner.next_offset
        } else {
            self.high_watermark
                .load(Ordering::Acquire)
                .clamp(inner.log_start, inner.next_offset)
        };
        self.high_watermark.store(hw, Ordering::Release);
    }

    fn closed_error(&self) -> LogError {
        LogError::Closed
    }

    /// Appends one or more CRC-checked v2 batches from a producer. Offsets are assigned densely
    /// from the log end, the leader epoch stamped, producer sequences checked; all batches of the
    /// call land in one write, or none do. A retried batch (same producer, epoch and sequences as
    /// one of the last five) is not written again: the original offsets come back with
    /// `duplicate` set, and any other batches of that call are dropped with it, as in Kafka.
    pub fn append(
        &self,
        batches: Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut parsed: Vec<(BatchHeader, usize)> = Vec::new();
        let mut position = 0;
        let mut records = 0u64;
        let mut iter = Batches::new(batches.clone());
        for item in iter.by_ref() {
            let (h, _) = item.map_err(|e| LogError::InvalidBatch(e.to_string()))?;
            if h.records_count < 1 || h.last_offset_delta != h.records_count - 1 {
                return Err(LogError::InvalidBatch(format!(
                    "batch declares {} records but a last offset delta of {}",
                    h.records_count, h.last_offset_delta
                )));
            }
            records += h.records_count as u64;
            parsed.push((h, position));
            position += h.total_size();
        }
        if iter.remainder() != 0 {
            return Err(LogError::InvalidBatch(format!(
                "{} trailing bytes are not a whole batch",
                iter.remainder()
            )));
        }
        if parsed.is_empty() {
            return Err(LogError::InvalidBatch("no record batches".into()));
        }
        // Copied outside the lock; only 16 header bytes per batch are patched under it.
        let mut buf = batches.to_vec();

        let (info, flush) = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(self.closed_error());
            }
            let max = inner.config.segment_bytes;
            if let Some((h, _)) = parsed.iter().find(|(h, _)| h.total_size() as u64 > max) {
                return Err(LogError::BatchTooLarge {
                    size: h.total_size(),
                    max,
                });
            }
            // A leader whose epoch is older than one already in its log has been replaced; its
            // batches would make the epochs go backwards and confuse every follower's truncation.
            if let Some(latest) = inner.epochs.latest_epoch() {
                if leader_epoch >= 0 && leader_epoch < latest {
                    return Err(LogError::StaleLeaderEpoch {
                        epoch: leader_epoch,
                        latest,
                    });
                }
            }
            let mut offsets = Vec::with_capacity(parsed.len());
            let mut next = inner.next_offset;
            for (h, _) in &parsed {
                offsets.push(next);
                next += h.last_offset_delta as i64 + 1;
            }
            let validation = inner
                .producers
                .validate(parsed.iter().zip(&offsets).map(|((h, _), &o)| (h, o)))?;
            let producer_updates = match validation {
                ProducerValidation::Duplicate(d) => {
                    return Ok(AppendInfo {
                        base_offset: d.first_offset,
                        last_offset: d.last_offset,
                        log_append_time_ms: -1,
                        log_start_offset: inner.log_start,
                        duplicate: true,
                    });
                }
                ProducerValidation::Accepted(updates) => updates,
            };
            let mut appended = Vec::with_capacity(parsed.len());
            for ((h, pos), &offset) in parsed.iter().zip(&offsets) {
                set_base_offset(&mut buf[*pos..], offset);
                set_partition_leader_epoch(&mut buf[*pos..], leader_epoch);
                appended.push(AppendedBatch {
                    position: *pos,
                    size: h.total_size(),
                    last_offset: offset + h.last_offset_delta as i64,
                    max_timestamp: h.max_timestamp,
                });
            }
            // Recorded (and synced) before the batches are written, so the checkpoint never lacks
            // an epoch whose batches reached the disk.
            inner.epochs.assign(leader_epoch, offsets[0])?;
            let roll_base = inner.next_offset;
            let flush =
                self.write_batches(&mut inner, &buf, &appended, roll_base, records, now_ms)?;
            inner.producers.commit(producer_updates);
            let info = AppendInfo {
                base_offset: offsets[0],
                last_offset: next - 1,
                log_append_time_ms: -1,
                log_start_offset: inner.log_start,
                duplicate: false,
            };
            (info, flush)
        };
        if flush {
            self.flush()?;
        }
        Ok(info)
    }

    /// Writes `buf`, whole batches with their final offsets, at the end of the log in one write,
    /// rolling first (to a segment based at `roll_base`) if one is due, and moves the log end
    /// past them. Returns whether flush.messages now asks for a flush.
    fn write_batches(
        &self,
        inner: &mut Inner,
        buf: &[u8],
        appended: &[AppendedBatch],
        roll_base: i64,
        records: u64,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        let last_offset = appended.last().expect("at least one batch").last_offset;
        if inner.should_roll(buf.len() as u64, last_offset, now_ms) {
            inner.roll_at(&self.dir, roll_base)?;
        }
        inner.active_mut().append(buf, appended, now_ms)?;
        let next = last_offset + 1;
        inner.next_offset = next;
        inner.unflushed_messages += records;
        self.log_end.store(next, Ordering::Release);
        self.size.fetch_add(buf.len() as u64, Ordering::AcqRel);
        self.publish_high_watermark(inner);
        Ok(inner
            .config
            .flush_interval_messages
            .is_some_and(|n| inner.unflushed_messages >= n))
    }

    /// Appends batches a follower fetched from its leader, as they are: their offsets and leader
    /// epochs are the leader's and stay. Each batch's CRC is checked (these bytes crossed the
    /// network and go to disk untouched); offsets must increase from batch to batch and start
    /// at or after the log end, where a gap is allowed because compaction on the leader may have
    /// removed whole batches; epochs must never go backwards, within the call or against the
    /// epochs this log already has. The epoch cache learns every new epoch and producer state is
    /// replayed without sequence checks: the leader already made them. A partial batch at the
    /// end, which a fetch response may carry, is left for the next fetch. Nothing is written
    /// unless every batch passes.
    pub fn append_as_follower(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let invalid = |why: String| Err(LogError::InvalidBatch(why));
        let mut parsed: Vec<BatchHeader> = Vec::new();
        let mut records = 0u64;
        let mut whole = 0usize;
        for item in Batches::new(batches.clone()) {
            let (h, bytes) = item.map_err(|e| LogError::InvalidBatch(e.to_string()))?;
            verify_crc(&bytes).map_err(|e| LogError::InvalidBatch(e.to_string()))?;
            if h.last_offset_delta < 0 || h.records_count < 0 {
                return invalid(format!(
                    "batch at offset {} declares {} records and a last offset delta of {}",
                    h.base_offset, h.records_count, h.last_offset_delta
                ));
            }
            if let Some(prev) = parsed.last() {
                if h.base_offset <= prev.last_offset() {
                    return invalid(format!(
                        "batch at offset {} overlaps the one before it, which ends at {}",
                        h.base_offset,
                        prev.last_offset()
                    ));
                }
                if h.partition_leader_epoch < prev.partition_leader_epoch {
                    return invalid(format!(
                        "leader epoch goes back from {} to {} at offset {}",
                        prev.partition_leader_epoch, h.partition_leader_epoch, h.base_offset
                    ));
                }
            }
            records += h.records_count as u64;
            whole += h.total_size();
            parsed.push(h);
        }
        let (Some(first), Some(last)) = (parsed.first().copied(), parsed.last().copied()) else {
            return invalid("no whole record batch".into());
        };
        let buf = batches.slice(..whole);

        let (info, flush) = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(self.closed_error());
            }
            if first.base_offset < inner.next_offset {
                return invalid(format!(
                    "fetched batches start at offset {}, before the log end {}",
                    first.base_offset, inner.next_offset
                ));
            }
            if let Some(latest) = inner.epochs.latest_epoch() {
                if first.partition_leader_epoch >= 0 && first.partition_leader_epoch < latest {
                    return invalid(format!(
                        "fetched leader epoch {} is older than this log's latest epoch {latest}",
                        first.partition_leader_epoch
                    ));
                }
            }
            let max = inner.config.segment_bytes;
            if let Some(h) = parsed.iter().find(|h| h.total_size() as u64 > max) {
                return Err(LogError::BatchTooLarge {
                    size: h.total_size(),
                    max,
                });
            }
            let mut appended = Vec::with_capacity(parsed.len());
            let mut position = 0;
            for h in &parsed {
                appended.push(AppendedBatch {
                    position,
                    size: h.total_size(),
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                });
                position += h.total_size();
            }
            inner.epochs.assign_all(
                parsed
                    .iter()
                    .map(|h| (h.partition_leader_epoch, h.base_offset)),
            )?;
            // After a gap, a new segment starts at the first fetched batch, not at the old log
            // end, so relative offsets in its index stay small however wide the gap.
            let flush = self.write_batches(
                &mut inner,
                &buf,
                &appended,
                first.base_offset,
                records,
                now_ms,
            )?;
            for h in &parsed {
                inner.producers.replay(h);
            }
            let info = AppendInfo {
                base_offset: first.base_offset,
                last_offset: last.last_offset(),
                log_append_time_ms: -1,
                log_start_offset: inner.log_start,
                duplicate: false,
            };
            (info, flush)
        };
        if flush {
            self.flush()?;
        }
        Ok(info)
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes` (but the
    /// first batch whole if `min_one`, Kafka's KIP-74 rule) and only batches starting below
    /// `max_offset`. `offset` at the log end gives no records; outside
    /// `[log start, log end]` it is `OffsetOutOfRange`. File I/O happens outside the lock.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        let mut target = offset;
        loop {
            let (file, start, end, next_base, empty) = {
                let inner = self.lock();
                if inner.closed {
                    return Err(self.closed_error());
                }
                if target == offset && (offset < inner.log_start || offset > inner.next_offset) {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: inner.log_start,
                        log_end: inner.next_offset,
                    });
                }
                let empty = ReadResult {
                    records: Bytes::new(),
                    high_watermark: self.high_watermark(),
                    log_start_offset: inner.log_start,
                    log_end_offset: inner.next_offset,
                };
                if target >= inner.next_offset || target >= max_offset {
                    return Ok(empty);
                }
                let Some((_, seg)) = inner.segments.range(..=target).next_back() else {
                    return Ok(empty);
                };
                let (_, position) = seg.offset_index().lookup(target);
                let next_base = inner.segments.range(target + 1..).next().map(|(b, _)| *b);
                (seg.file(), position as u64, seg.size(), next_base, empty)
            };
            let Some((position, header)) = LogSegment::find_batch(&file, start, end, target)?
            else {
                // Nothing at or past the target here (a gap): continue in the next segment.
                match next_base {
                    Some(b) => {
                        target = b;
                        continue;
                    }
                    None => return Ok(empty),
                }
            };
            if header.base_offset >= max_offset {
                return Ok(empty);
            }
            let first_size = header.total_size();
            let records = if first_size > max_bytes {
                if min_one {
                    read_exact(&file, position, first_size)?
                } else {
                    Bytes::new()
                }
            } else {
                let len = (max_bytes as u64).min(end - position) as usize;
                let mut data = read_exact(&file, position, len)?;
                let mut cut = 0;
                while data.len() - cut >= BATCH_HEADER_SIZE {
                    let Ok(h) = BatchHeader::parse(&data[cut..]) else {
                        break;
                    };
                    if h.base_offset >= max_offset || cut + h.total_size() > data.len() {
                        break;
                    }
                    cut += h.total_size();
                }
                data.truncate(cut);
                data
            };
            return Ok(ReadResult { records, ..empty });
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Until `set_high_watermark` is first called this is the log end: without replication
    /// every appended batch is committed.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// The high watermark replication set, for Kafka's `replication-offset-checkpoint`; `None`
    /// while it follows the log end (a standalone log, whose every batch is committed).
    pub fn replicated_high_watermark(&self) -> Option<i64> {
        (!self.hw_follows_log_end.load(Ordering::Acquire)).then(|| self.high_watermark())
    }

    /// Back to following the log end: the partition is standalone (again).
    pub fn follow_log_end(&self) {
        let inner = self.lock();
        self.hw_follows_log_end.store(true, Ordering::Release);
        self.publish_high_watermark(&inner);
    }

    /// Hands the high watermark to the caller (replication); clamped to the log's bounds.
    pub fn set_high_watermark(&self, hw: i64) {
        let inner = self.lock();
        self.hw_follows_log_end.store(false, Ordering::Release);
        self.high_watermark.store(hw, Ordering::Release);
        self.publish_high_watermark(&inner);
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// OffsetForLeaderEpoch's answer from this log: the largest epoch at or below `requested`
    /// and the offset where it ends (the log end for the latest epoch); `(-1, -1)` when the log
    /// cannot place the epoch. See [`LeaderEpochFileCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let inner = self.lock();
        inner.epochs.end_offset_for(requested, inner.next_offset)
    }

    /// The newest leader epoch with batches in this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().epochs.latest_epoch()
    }

    /// Every leader epoch this log holds and where it starts, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.lock().epochs.entries().to_vec()
    }

    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.lock().segments.keys().copied().collect()
    }

    /// First batch whose max timestamp is >= `ts`: (its first offset, its max timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let inner = self.lock();
        for seg in inner.segments.values() {
            if let Some((offset, found_ts)) = seg.find_timestamp(ts)? {
                return Ok(Some((offset.max(inner.log_start), found_ts)));
            }
        }
        Ok(None)
    }

    /// Syncs everything past the recovery point to disk and advances it to the log end as of
    /// the call. Appends continue while the sync runs.
    pub fn flush(&self) -> Result<(), LogError> {
        let (handles, target, dir_dirty, truncations) = {
            let mut inner = self.lock();
            let rp = inner.recovery_point;
            let last = inner.active().base_offset();
            let handles: Vec<Arc<File>> = inner
                .segments
                .values()
                .filter(|s| s.next_offset() > rp || s.base_offset() == last)
                .flat_map(|s| s.sync_handles())
                .collect();
            inner.unflushed_messages = 0;
            let dir_dirty = std::mem::take(&mut inner.dir_dirty);
            (handles, inner.next_offset, dir_dirty, inner.truncations)
        };
        let synced = (|| -> io::Result<()> {
            for h in &handles {
                h.sync_data()?;
            }
            if dir_dirty {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        let mut inner = self.lock();
        if let Err(e) = synced {
            inner.dir_dirty |= dir_dirty;
            return Err(e.into());
        }
        if inner.truncations == truncations {
            inner.recovery_point = inner.recovery_point.max(target.min(inner.next_offset));
            self.publish(&inner);
        }
        Ok(())
    }

    /// Flushes if `flush_interval_ms` has passed since the last timed flush.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let due = {
            let mut inner = self.lock();
            match (inner.config.flush_interval_ms, inner.last_flush_ms) {
                (None, _) => false,
                (Some(_), None) => {
                    inner.last_flush_ms = Some(now_ms);
                    false
                }
                (Some(ms), Some(last)) => {
                    now_ms.saturating_sub(last) >= ms as i64
                        && inner.recovery_point < inner.next_offset
                }
            }
        };
        if due {
            self.flush()?;
            self.lock().last_flush_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Deletes the oldest non-active segments that are wholly below the log start and, when the
    /// cleanup policy includes `delete`, those older than `retention_ms` by their largest
    /// timestamp or in excess of `retention_bytes`. A compact-only log keeps its history: the
    /// cleaner, not retention, bounds it.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let removed: Vec<LogSegment> = {
            let mut inner = self.lock();
            if inner.closed {
                return Ok(0);
            }
            let bases: Vec<i64> = inner.segments.keys().copied().collect();
            let candidates = bases.len() - 1;
            let mut n = 0;
            while n < candidates && bases[n + 1] <= inner.log_start {
                n += 1;
            }
            let deletes = inner.config.cleanup_policy.deletes();
            if let Some(ms) = inner.config.retention_ms.filter(|ms| deletes && *ms >= 0) {
                while n < candidates
                    && now_ms.saturating_sub(inner.segments[&bases[n]].largest_timestamp()) > ms
                {
                    n += 1;
                }
            }
            if let Some(limit) = inner.config.retention_bytes.filter(|_| deletes) {
                let kept: u64 = bases[n..].iter().map(|b| inner.segments[b].size()).sum();
                let mut excess = kept.saturating_sub(limit);
                while n < candidates && inner.segments[&bases[n]].size() <= excess {
                    excess -= inner.segments[&bases[n]].size();
                    n += 1;
                }
            }
            if n == 0 {
                return Ok(0);
            }
            let removed = bases[..n]
                .iter()
                .map(|b| inner.segments.remove(b).expect("listed segment"))
                .collect();
            let first = *inner.segments.keys().next().expect("active segment kept");
            inner.log_start = inner.log_start.max(first);
            let log_start = inner.log_start;
            inner.producers.truncate_head(log_start);
            // Only the file can fail here, and entries it keeps below the log start are
            // dropped again when the log is next opened.
            if let Err(e) = inner.epochs.truncate_from_start(log_start) {
                tracing::warn!(tp = %self.tp, error = %e, "leader epoch checkpoint not updated");
            }
            inner.recovery_point = inner.recovery_point.max(inner.log_start);
            inner.dir_dirty = true;
            self.publish(&inner);
            removed
        };
        // Readers holding a segment's file keep reading it after the unlink.
        for seg in &removed {
            seg.delete_files()?;
        }
        tracing::debug!(tp = %self.tp, deleted = removed.len(), "retention deleted segments");
        Ok(removed.len())
    }

    /// Rolls a non-empty active segment once it is `segment_ms` old, even without appends, so
    /// that time-based retention can reach idle partitions.
    pub fn roll_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if inner.closed {
            return Ok(());
        }
        let segment_ms = inner.config.segment_ms;
        let seg = inner.active_mut();
        seg.note_time(now_ms);
        let due = match (segment_ms, seg.rolling_base_ms()) {
            (Some(ms), Some(base)) => !seg.is_empty() && now_ms.saturating_sub(base) >= ms as i64,
            _ => false,
        };
        if due {
            inner.roll(&self.dir)?;
            self.publish(&inner);
        }
        Ok(())
    }

    /// Removes every batch at or after `offset` (a batch straddling it goes too). At or below
    /// the log start, the log is emptied and restarts at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(self.closed_error());
        }
        if offset >= inner.next_offset {
            return Ok(());
        }
        if offset <= inner.log_start {
            return self.restart_empty_at(&mut inner, offset);
        }
        let removed = inner.segments.split_off(&offset);
        for seg in removed.values() {
            seg.delete_files()?;
        }
        let active = inner.active_mut();
        active.truncate_to(offset)?;
        inner.next_offset = inner.active().next_offset();
        drop(removed);
        self.after_truncation(&mut inner)
    }

    /// Empties the log and restarts it at `offset`, which may lie past the log end: what a
    /// follower does when the offsets it would fetch next are gone from its leader (retention
    /// moved the leader's log start past them), since appending after such a gap would leave
    /// this log claiming a start it has no batches for.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(self.closed_error());
        }
        self.restart_empty_at(&mut inner, offset)
    }

    fn restart_empty_at(&self, inner: &mut Inner, offset: i64) -> Result<(), LogError> {
        let base = offset.max(0);
        let old = std::mem::take(&mut inner.segments);
        for seg in old.values() {
            seg.delete_files()?;
        }
        let seg = LogSegment::create(&self.dir, base, &inner.config)?;
        inner.segments.insert(base, seg);
        inner.log_start = base;
        inner.next_offset = base;
        inner.recovery_point = base;
        // Nothing is left to have been cleaned, and no snapshot describes producers of this
        // (empty) log: an old one at or below `base` would otherwise be loaded back.
        inner.first_dirty = None;
        for snapshot in inner.producers.snapshot_offsets()? {
            inner.producers.delete_snapshot(snapshot)?;
        }
        inner.producers.clear();
        // Every epoch goes, including those starting below `base` when it lies past the end.
        let cleared = inner.epochs.truncate_from_end(0);
        self.after_truncation(inner)?;
        cleared.map(|_| ())
    }

    /// What every truncation does once the segments are cut: bookkeeping that follows the new
    /// log end, and the producer state and leader epochs of what is left.
    fn after_truncation(&self, inner: &mut Inner) -> Result<(), LogError> {
        // What stays below the cut was cleaned as much as before; what follows is new.
        let next = inner.next_offset;
        inner.first_dirty = inner.first_dirty.map(|d| d.min(next));
        inner.recovery_point = inner.recovery_point.min(next);
        inner.dir_dirty = true;
        inner.truncations += 1;
        // The cache changes in memory even if its file cannot be written; that error is only
        // reported once the rest of the log agrees with the truncation.
        let epochs = inner.epochs.truncate_from_end(next);
        inner.reload_producer_state()?;
        self.publish(inner);
        epochs?;
        Ok(())
    }

    /// Flushes and writes a producer state snapshot, so the next open needs no replay. Further
    /// appends and reads fail with [`LogError::Closed`].
    pub fn close(&self) -> Result<(), LogError> {
        // A running cleaning pass stops at its next batch; none starts once `closed` is set.
        self.closing.store(true, Ordering::Release);
        let _no_cleaning = self.clean_lock.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut inner = self.lock();
            if inner.closed {
                return Ok(());
            }
            inner.closed = true;
            inner.active_mut().on_become_inactive()?;
            let end = inner.next_offset;
            inner.producers.take_snapshot(end, true)?;
        }
        self.flush()
    }

    /// Makes rolled segments durable, as Kafka does after each roll, so that a crash only has to
    /// recover the active segment. Runs in the background rather than inside the rolling append.
    pub fn flush_rolled_segments(&self) -> Result<(), LogError> {
        let due = {
            let inner = self.lock();
            !inner.closed && inner.recovery_point < inner.active().base_offset()
        };
        if due {
            self.flush()?;
        }
        Ok(())
    }

    /// Background work for this log: time-based roll, retention (when `retention_due`), and the
    /// flushes due by `flush.ms` or by rolled segments.
    pub fn run_maintenance(&self, now_ms: i64, retention_due: bool) -> Result<(), LogError> {
        self.roll_if_due(now_ms)?;
        if retention_due {
            self.apply_retention(now_ms)?;
        }
        self.flush_if_due(now_ms)?;
        self.flush_rolled_segments()
    }

    /// Puts new settings in force at once: appends, rolls, retention, flushes and cleaning passes
    /// all read them from here, so nothing else needs to be told.
    pub fn update_config(&self, config: LogConfig) {
        let mut inner = self.lock();
        for seg in inner.segments.values_mut() {
            seg.set_config(&config);
        }
        // The last pass timed its earliest kept tombstone by the old delete.retention.ms; moved
        // by the change, a shortened retention makes the next pass due without new writes.
        let shift = config
            .delete_retention_ms
            .saturating_sub(inner.config.delete_retention_ms);
        inner.next_tombstone_expiry = inner.next_tombstone_expiry.map(|t| t.saturating_add(shift));
        inner.config = config;
    }
}

mod compaction;
#[cfg(test)]
mod epoch_tests;
#[cfg(test)]
mod tests;
