//! `LogSegment`: one `.log` file of whole batches plus its offset and time indexes.
//! Appends go through `&mut self` under the log's lock; reads use a shared file handle.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use sluice_protocol::records::{BatchHeader, BATCH_HEADER_SIZE};

use super::index::{OffsetIndex, TimeIndex};
use super::scan::{BatchScanner, Scanned};
use super::{offset_file_name, LogConfig, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// Read size when walking headers near an index entry: an index interval plus slack covers the
/// usual distance to the wanted batch in one read.
const LOOKUP_CHUNK: usize = 16 * 1024;
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// Where one batch of an append sits in the append buffer, with its assigned offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendedBatch {
    pub position: usize,
    pub size: usize,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: usize,
    bytes_since_last_index: usize,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    next_offset: i64,
    /// The broker time a `segment.ms` roll counts from: the first append, or for a segment found
    /// on disk the first time the log looked at the clock after loading it. Batch timestamps are
    /// not used because producers may set them arbitrarily far in the past.
    rolling_base_ms: Option<i64>,
}

/// The (log, offset index, time index) paths of the segment at `base_offset`, each name followed
/// by `suffix` ("" for a live segment, ".cleaned" or ".swap" while the cleaner replaces one).
pub(crate) fn segment_paths(
    dir: &Path,
    base_offset: i64,
    suffix: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    let path = |ext| dir.join(format!("{}{suffix}", offset_file_name(base_offset, ext)));
    (
        path(LOG_SUFFIX),
        path(INDEX_SUFFIX),
        path(TIME_INDEX_SUFFIX),
    )
}

fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    segment_paths(dir, base_offset, "")
}

impl LogSegment {
    /// Creates an empty segment, replacing any files of the same name.
    pub fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> io::Result<LogSegment> {
        LogSegment::create_with_suffix(dir, base_offset, config, "")
    }

    /// As [`create`](Self::create), with `suffix` after every file name: the cleaner writes a
    /// replacement segment under names that `Log::open` never mistakes for live data.
    pub(crate) fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
    ) -> io::Result<LogSegment> {
        let (log, index, time_index) = segment_paths(dir, base_offset, suffix);
        for p in [&index, &time_index] {
            if p.exists() {
                fs::remove_file(p)?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log)?;
        let (offset_index, _) = OffsetIndex::open(&index, base_offset, config.max_index_bytes)?;
        let (time_index, _) = TimeIndex::open(&time_index, base_offset, config.max_index_bytes)?;
        Ok(LogSegment::assemble(
            base_offset,
            log,
            file,
            0,
            offset_index,
            time_index,
            config,
        ))
    }

    /// A segment over opened files, with nothing yet known about its contents.
    fn assemble(
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        size: u64,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        config: &LogConfig,
    ) -> LogSegment {
        LogSegment {
            base_offset,
            log_path,
            file: Arc::new(file),
            size,
            offset_index,
            time_index,
            index_interval_bytes: config.index_interval_bytes,
            bytes_since_last_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            rolling_base_ms: None,
        }
    }

    /// Opens an existing segment. The flag is true when its indexes are missing, malformed or
    /// point past the end of the log, so it must be recovered. `next_offset` is not known until
    /// [`recover`](Self::recover), [`load_tail`](Self::load_tail) or
    /// [`set_next_offset`](Self::set_next_offset).
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> io::Result<(LogSegment, bool)> {
        let (log, index, time_index) = paths(dir, base_offset);
        let file = OpenOptions::new().read(true).write(true).open(&log)?;
        let size = file.metadata()?.len();
        let (offset_index, bad_offsets) =
            OffsetIndex::open(&index, base_offset, config.max_index_bytes)?;
        let (time_index, bad_times) =
            TimeIndex::open(&time_index, base_offset, config.max_index_bytes)?;
        let past_end = offset_index
            .last_entry()
            .is_some_and(|(_, pos)| pos as u64 >= size);
        let mut seg = LogSegment::assemble(
            base_offset,
            log,
            file,
            size,
            offset_index,
            time_index,
            config,
        );
        if let Some((ts, offset)) = seg.time_index.last_entry() {
            seg.max_timestamp = ts;
            seg.offset_of_max_timestamp = offset;
        }
        let empty_but_indexed =
            size == 0 && (!seg.offset_index.is_empty() || !seg.time_index.is_empty());
        Ok((
            seg,
            bad_offsets || bad_times || past_end || empty_but_indexed,
        ))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// One past the last offset in this segment (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn set_next_offset(&mut self, next: i64) {
        self.next_offset = next;
    }

    /// Largest batch timestamp, -1 if no batch carries one.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The timestamp retention judges the segment by: its largest batch timestamp, or the file's
    /// modification time when no batch has one.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    pub fn rolling_base_ms(&self) -> Option<i64> {
        self.rolling_base_ms
    }

    /// Starts the `segment.ms` clock of a non-empty segment loaded from disk at its first
    /// batch's timestamp, so that restarts do not postpone rolls (and with them retention);
    /// capped at now so that a timestamp from the future cannot block rolling.
    pub(crate) fn note_time(&mut self, now_ms: i64) {
        if self.size > 0 && self.rolling_base_ms.is_none() {
            let first = self.first_batch_timestamp().unwrap_or(-1);
            self.rolling_base_ms = Some(if first >= 0 {
                first.min(now_ms)
            } else {
                now_ms
            });
        }
    }

    fn first_batch_timestamp(&self) -> Option<i64> {
        let mut header = [0u8; BATCH_HEADER_SIZE];
        self.file.read_exact_at(&mut header, 0).ok()?;
        BatchHeader::parse(&header).ok().map(|h| h.max_timestamp)
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    pub(crate) fn set_config(&mut self, config: &LogConfig) {
        self.index_interval_bytes = config.index_interval_bytes;
        self.offset_index.set_max_bytes(config.max_index_bytes);
        self.time_index.set_max_bytes(config.max_index_bytes);
    }

    /// The handles whose contents a flush must reach the disk.
    pub fn sync_handles(&self) -> [Arc<File>; 3] {
        [
            self.file.clone(),
            self.offset_index.file(),
            self.time_index.file(),
        ]
    }

    fn index_batch(&mut self, position: u64, last_offset: i64, max_timestamp: i64, size: usize) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_last_index > self.index_interval_bytes {
            self.offset_index.append(last_offset, position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index = 0;
        }
        self.bytes_since_last_index += size;
    }

    /// Writes `buf` (whole batches with final offsets) at the end with one write, then indexes it.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        batches: &[AppendedBatch],
        now_ms: i64,
    ) -> io::Result<()> {
        if let Err(e) = self.file.write_all_at(buf, self.size) {
            // A partial write must not linger where the next append would land after it.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.rolling_base_ms.get_or_insert(now_ms);
        let start = self.size;
        for b in batches {
            self.index_batch(
                start + b.position as u64,
                b.last_offset,
                b.max_timestamp,
                b.size,
            );
        }
        self.size += buf.len() as u64;
        if let Some(b) = batches.last() {
            self.next_offset = b.last_offset + 1;
        }
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        Ok(())
    }

    /// Re-reads the whole segment checking every batch, rebuilds both indexes, and cuts the file
    /// at the first torn, corrupt or out-of-order batch. Returns the number of bytes cut.
    pub fn recover(&mut self) -> io::Result<u64> {
        self.offset_index.reset()?;
        self.time_index.reset()?;
        self.bytes_since_last_index = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        let size = self.file.metadata()?.len();
        let file = self.file.clone();
        let mut scanner = BatchScanner::new(&file, 0, size, true, RECOVERY_CHUNK);
        let valid_end = loop {
            match scanner.next_batch()? {
                Scanned::End => break size,
                Scanned::Invalid { position, reason } => {
                    tracing::warn!(
                        segment = %self.log_path.display(), position, %reason,
                        "truncating log segment at invalid batch"
                    );
                    break position;
                }
                Scanned::Batch { position, header } => {
                    let last = header.last_offset();
                    if header.base_offset < self.next_offset
                        || header.last_offset_delta < 0
                        || last - self.base_offset > u32::MAX as i64
                    {
                        tracing::warn!(
                            segment = %self.log_path.display(), position,
                            base_offset = header.base_offset,
                            "truncating log segment at out-of-order batch"
                        );
                        break position;
                    }
                    self.index_batch(position, last, header.max_timestamp, header.total_size());
                    self.next_offset = last + 1;
                }
            }
        };
        if valid_end < size {
            self.file.set_len(valid_end)?;
        }
        self.size = valid_end;
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        Ok(size - valid_end)
    }

    /// For a segment trusted without recovery: finds the end of the last whole batch by walking
    /// headers from the last index entry, cutting a partial batch if one is found.
    pub fn load_tail(&mut self) -> io::Result<u64> {
        let (mut next, start) = match self.offset_index.last_entry() {
            Some((offset, pos)) => (offset, pos as u64),
            None => (self.base_offset, 0),
        };
        let file = self.file.clone();
        let mut scanner = BatchScanner::new(&file, start, self.size, false, RECOVERY_CHUNK);
        let end = loop {
            match scanner.next_batch()? {
                Scanned::End => break self.size,
                Scanned::Invalid { position, .. } => break position,
                Scanned::Batch { header, .. } => next = next.max(header.last_offset() + 1),
            }
        };
        let cut = self.size - end;
        if cut > 0 {
            self.file.set_len(end)?;
            self.size = end;
        }
        self.next_offset = next;
        Ok(cut)
    }

    /// Marks the end of active life: the time index gets the segment's largest timestamp so it
    /// can be known without a scan when the segment is next opened.
    pub fn on_become_inactive(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.time_index.write_pending()
    }

    /// Drops every batch at or after `offset` (a batch straddling it goes too).
    /// Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        if offset >= self.next_offset {
            return Ok(0);
        }
        let (_, start) = self.offset_index.lookup(offset);
        let file = self.file.clone();
        let mut scanner = BatchScanner::new(&file, start as u64, self.size, false, LOOKUP_CHUNK);
        let mut cut_at = self.size;
        loop {
            match scanner.next_batch()? {
                Scanned::End => break,
                Scanned::Invalid { position, .. } => {
                    cut_at = position;
                    break;
                }
                Scanned::Batch { position, header } => {
                    if header.last_offset() >= offset {
                        cut_at = position;
                        break;
                    }
                }
            }
        }
        let removed = self.size - cut_at;
        self.file.set_len(cut_at)?;
        self.size = cut_at;
        // Rebuilding is simpler than patching max-timestamp bookkeeping, and truncation is rare.
        self.recover()?;
        Ok(removed)
    }

    /// Position of the first batch whose last offset is >= `offset`, searching
    /// `[start, end)` of `file`. Runs without any lock: bytes below `end` never change.
    pub fn find_batch(
        file: &File,
        start: u64,
        end: u64,
        offset: i64,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut scanner = BatchScanner::new(file, start, end, false, LOOKUP_CHUNK);
        loop {
            match scanner.next_batch()? {
                Scanned::End | Scanned::Invalid { .. } => return Ok(None),
                Scanned::Batch { position, header } => {
                    if header.last_offset() >= offset {
                        return Ok(Some((position, header)));
                    }
                }
            }
        }
    }

    /// First batch with max timestamp >= `ts`: its base offset and max timestamp.
    pub fn find_timestamp(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp < ts {
            return Ok(None);
        }
        let from = self.time_index.lookup(ts);
        let (_, start) = self.offset_index.lookup(from);
        let mut scanner =
            BatchScanner::new(&self.file, start as u64, self.size, false, LOOKUP_CHUNK);
        loop {
            match scanner.next_batch()? {
                Scanned::End | Scanned::Invalid { .. } => return Ok(None),
                Scanned::Batch { header, .. } => {
                    if header.max_timestamp >= ts {
                        return Ok(Some((header.base_offset, header.max_timestamp)));
                    }
                }
            }
        }
    }

    /// Visits the headers of all batches with base offset >= `from`.
    pub fn for_each_batch_from(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> io::Result<()> {
        let (_, start) = self.offset_index.lookup(from);
        let mut scanner =
            BatchScanner::new(&self.file, start as u64, self.size, false, RECOVERY_CHUNK);
        loop {
            match scanner.next_batch()? {
                Scanned::End | Scanned::Invalid { .. } => return Ok(()),
                Scanned::Batch { header, .. } => {
                    if header.base_offset >= from {
                        f(&header);
                    }
                }
            }
        }
    }

    /// Renames the `.log` file; open handles (including readers' clones) follow it.
    pub(crate) fn rename_log(&mut self, to: PathBuf) -> io::Result<()> {
        fs::rename(&self.log_path, &to)?;
        self.log_path = to;
        Ok(())
    }

    /// Renames both index files.
    pub(crate) fn rename_indexes(
        &mut self,
        offset_index: PathBuf,
        time_index: PathBuf,
    ) -> io::Result<()> {
        self.offset_index.rename(offset_index)?;
        self.time_index.rename(time_index)
    }

    /// Index entries, for deciding whether segments can be merged into one.
    pub(crate) fn index_entries(&self) -> (usize, usize) {
        (self.offset_index.len(), self.time_index.len())
    }

    /// Removes the segment's files; open read handles stay usable until dropped.
    pub fn delete_files(&self) -> io::Result<()> {
        for p in [
            self.log_path.as_path(),
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
