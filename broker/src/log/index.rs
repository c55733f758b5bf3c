//! The sparse per-segment indexes: `OffsetIndex` (offset → file position) and `TimeIndex`
//! (timestamp → offset), kept in memory and mirrored to plain files in Kafka's on-disk layout.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An index file that only grows at the end or is cut back. New entries are staged and written
/// with one syscall per append call, so that indexing costs nothing per batch beyond a memcpy.
#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    file: Arc<File>,
    written: u64,
    pending: Vec<u8>,
}

impl IndexFile {
    /// Opens (creating if needed) the file and returns its content.
    fn open(path: &Path) -> io::Result<(IndexFile, Vec<u8>, bool)> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut content = Vec::new();
        file.read_to_end(&mut content)?;
        Ok((
            IndexFile {
                path: path.to_path_buf(),
                file: Arc::new(file),
                written: content.len() as u64,
                pending: Vec::new(),
            },
            content,
            existed,
        ))
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Moves the file to `to`; the open handle follows it.
    fn rename(&mut self, to: PathBuf) -> io::Result<()> {
        std::fs::rename(&self.path, &to)?;
        self.path = to;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.pending.clear();
        self.file.set_len(len)?;
        self.written = len;
        Ok(())
    }
}

/// Maps offsets to byte positions in a segment's `.log`: 8-byte entries of (offset relative to
/// the segment base: u32, position: u32), big-endian, one every `index.interval.bytes`.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    max_entries: usize,
    file: IndexFile,
}

pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

impl OffsetIndex {
    /// Opens the index; the flag is true when its content cannot be trusted (missing, torn or not
    /// increasing) and it was emptied, so the caller must rebuild it from the log.
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_bytes: usize,
    ) -> io::Result<(OffsetIndex, bool)> {
        let (mut file, content, existed) = IndexFile::open(path)?;
        let mut entries = Vec::with_capacity(content.len() / OFFSET_INDEX_ENTRY_SIZE);
        let mut valid = existed && content.len() % OFFSET_INDEX_ENTRY_SIZE == 0;
        if valid {
            for chunk in content.chunks_exact(OFFSET_INDEX_ENTRY_SIZE) {
                let rel = u32::from_be_bytes(chunk[0..4].try_into().unwrap());
                let pos = u32::from_be_bytes(chunk[4..8].try_into().unwrap());
                if let Some(&(last_rel, last_pos)) = entries.last() {
                    if rel <= last_rel || pos <= last_pos {
                        valid = false;
                        break;
                    }
                }
                entries.push((rel, pos));
            }
        }
        if !valid {
            entries.clear();
            file.set_len(0)?;
        }
        let index = OffsetIndex {
            base_offset,
            entries,
            max_entries: (max_bytes / OFFSET_INDEX_ENTRY_SIZE).max(1),
            file,
        };
        Ok((index, !valid))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Renames the file (the cleaner moves finished indexes into place).
    pub(crate) fn rename(&mut self, to: PathBuf) -> io::Result<()> {
        self.file.rename(to)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_entries = (max_bytes / OFFSET_INDEX_ENTRY_SIZE).max(1);
    }

    /// Last indexed (absolute offset, position), if any.
    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries
            .last()
            .map(|&(rel, pos)| (self.base_offset + rel as i64, pos))
    }

    /// Stages an entry; ignored unless both offset and position move forward, which keeps the
    /// index searchable even if a caller repeats itself.
    pub fn append(&mut self, offset: i64, position: u32) {
        if self.is_full() {
            return;
        }
        let rel = (offset - self.base_offset) as u32;
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            if rel <= last_rel || position <= last_pos {
                return;
            }
        }
        self.entries.push((rel, position));
        self.file.pending.extend_from_slice(&rel.to_be_bytes());
        self.file.pending.extend_from_slice(&position.to_be_bytes());
    }

    pub fn write_pending(&mut self) -> io::Result<()> {
        self.file.write_pending()
    }

    /// The greatest indexed (offset, position) with offset <= `offset`, or the segment start.
    pub fn lookup(&self, offset: i64) -> (i64, u32) {
        let rel = offset - self.base_offset;
        let n = self.entries.partition_point(|&(r, _)| (r as i64) <= rel);
        if n == 0 {
            (self.base_offset, 0)
        } else {
            let (r, pos) = self.entries[n - 1];
            (self.base_offset + r as i64, pos)
        }
    }

    /// Drops entries for offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let rel = offset - self.base_offset;
        let n = self.entries.partition_point(|&(r, _)| (r as i64) < rel);
        self.entries.truncate(n);
        self.file.set_len((n * OFFSET_INDEX_ENTRY_SIZE) as u64)
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }

    pub fn file(&self) -> Arc<File> {
        self.file.file.clone()
    }
}

/// Maps timestamps to offsets: 12-byte entries of (max timestamp so far: i64, offset relative to
/// the segment base of the batch carrying it: u32). Timestamps only ever increase.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    max_entries: usize,
    file: IndexFile,
}

impl TimeIndex {
    /// As [`OffsetIndex::open`].
    pub fn open(path: &Path, base_offset: i64, max_bytes: usize) -> io::Result<(TimeIndex, bool)> {
        let (mut file, content, existed) = IndexFile::open(path)?;
        let mut entries = Vec::with_capacity(content.len() / TIME_INDEX_ENTRY_SIZE);
        let mut valid = existed && content.len() % TIME_INDEX_ENTRY_SIZE == 0;
        if valid {
            for chunk in content.chunks_exact(TIME_INDEX_ENTRY_SIZE) {
                let ts = i64::from_be_bytes(chunk[0..8].try_into().unwrap());
                let rel = u32::from_be_bytes(chunk[8..12].try_into().unwrap());
                if let Some(&(last_ts, last_rel)) = entries.last() {
                    if ts <= last_ts || rel < last_rel {
                        valid = false;
                        break;
                    }
                }
                entries.push((ts, rel));
            }
        }
        if !valid {
            entries.clear();
            file.set_len(0)?;
        }
        let index = TimeIndex {
            base_offset,
            entries,
            max_entries: (max_bytes / TIME_INDEX_ENTRY_SIZE).max(1),
            file,
        };
        Ok((index, !valid))
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Renames the file (the cleaner moves finished indexes into place).
    pub(crate) fn rename(&mut self, to: PathBuf) -> io::Result<()> {
        self.file.rename(to)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_entries = (max_bytes / TIME_INDEX_ENTRY_SIZE).max(1);
    }

    /// Last (timestamp, absolute offset), i.e. the segment's largest indexed timestamp.
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + rel as i64))
    }

    /// Stages an entry if `timestamp` exceeds every indexed one.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if self.is_full() {
            return;
        }
        let rel = (offset - self.base_offset) as u32;
        if let Some(&(last_ts, last_rel)) = self.entries.last() {
            if timestamp <= last_ts || rel < last_rel {
                return;
            }
        }
        self.entries.push((timestamp, rel));
        self.file
            .pending
            .extend_from_slice(&timestamp.to_be_bytes());
        self.file.pending.extend_from_slice(&rel.to_be_bytes());
    }

    pub fn write_pending(&mut self) -> io::Result<()> {
        self.file.write_pending()
    }

    /// An offset from which a forward scan finds the first batch with max timestamp >= `ts`:
    /// every batch before the returned offset has a smaller max timestamp.
    pub fn lookup(&self, ts: i64) -> i64 {
        let n = self.entries.partition_point(|&(t, _)| t < ts);
        if n == 0 {
            self.base_offset
        } else {
            self.base_offset + self.entries[n - 1].1 as i64
        }
    }

    /// Drops entries pointing at offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let rel = offset - self.base_offset;
        let n = self.entries.partition_point(|&(_, r)| (r as i64) < rel);
        self.entries.truncate(n);
        self.file.set_len((n * TIME_INDEX_ENTRY_SIZE) as u64)
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.file.set_len(0)
    }

    pub fn file(&self) -> Arc<File> {
        self.file.file.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let (mut idx, rebuild) = OffsetIndex::open(&path, 100, 1024).unwrap();
        assert!(rebuild, "a missing index must be rebuilt");
        idx.append(110, 500);
        idx.append(120, 1000);
        idx.append(115, 2000); // not increasing: ignored
        idx.write_pending().unwrap();
        assert_eq!(idx.lookup(100), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 500));
        assert_eq!(idx.lookup(119), (110, 500));
        assert_eq!(idx.lookup(500), (120, 1000));
        drop(idx);

        let (mut idx, rebuild) = OffsetIndex::open(&path, 100, 1024).unwrap();
        assert!(!rebuild);
        assert_eq!(idx.len(), 2);
        idx.truncate_to(120).unwrap();
        assert_eq!(idx.last_entry(), Some((110, 500)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }

    #[test]
    fn torn_offset_index_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 11]).unwrap();
        let (idx, rebuild) = OffsetIndex::open(&path, 0, 1024).unwrap();
        assert!(rebuild);
        assert!(idx.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn time_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let (mut idx, _) = TimeIndex::open(&path, 0, 1200).unwrap();
        idx.maybe_append(1000, 5);
        idx.maybe_append(900, 7); // older: ignored
        idx.maybe_append(2000, 10);
        idx.write_pending().unwrap();
        assert_eq!(idx.lookup(500), 0);
        assert_eq!(idx.lookup(1000), 0);
        assert_eq!(idx.lookup(1001), 5);
        assert_eq!(idx.lookup(5000), 10);
        assert_eq!(idx.last_entry(), Some((2000, 10)));
        drop(idx);
        let (idx, rebuild) = TimeIndex::open(&path, 0, 1200).unwrap();
        assert!(!rebuild);
        assert_eq!(idx.len(), 2);
        assert!(!idx.is_full());
    }
}
