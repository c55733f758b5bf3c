//! `ProducerStateManager`: per idempotent producer, its epoch and its last few batches, to reject
//! out-of-order or fenced writes and to answer retries with the original offsets.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sluice_protocol::records::BatchHeader;

use super::{offset_file_name, parse_offset_file_name, LogError, SNAPSHOT_SUFFIX};

/// How many recent batches per producer are remembered; matches the client's limit of in-flight
/// requests per connection, so any retry the client can send is still recognised.
pub const MAX_CACHED_BATCHES: usize = 5;
const SNAPSHOT_VERSION: u16 = 1;
/// Snapshots kept on disk: the newest, plus one in case the newest is torn.
const SNAPSHOTS_KEPT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            epoch,
            batches: VecDeque::with_capacity(MAX_CACHED_BATCHES),
        }
    }

    fn push(&mut self, meta: BatchMetadata) {
        if self.batches.len() == MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
    }

    /// Applies a batch known to be valid (from the log itself).
    fn apply(&mut self, h: &BatchHeader, first_offset: i64) {
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        if h.base_sequence >= 0 {
            self.push(metadata(h, first_offset));
        }
    }
}

fn metadata(h: &BatchHeader, first_offset: i64) -> BatchMetadata {
    BatchMetadata {
        first_seq: h.base_sequence,
        last_seq: h.last_sequence(),
        first_offset,
        last_offset: first_offset + h.last_offset_delta as i64,
        timestamp: h.max_timestamp,
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Result of checking an append against producer state.
#[derive(Debug)]
pub enum ProducerValidation {
    /// A retry of a batch already in the log; nothing is to be written.
    Duplicate(BatchMetadata),
    /// Entries to store once the append has been written.
    Accepted(Vec<ProducerEntry>),
}

#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new(dir: &Path) -> ProducerStateManager {
        ProducerStateManager {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
        }
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Checks batches (with the offsets they would get) in order; later batches of the same call
    /// are checked against the state the earlier ones leave behind. Nothing changes until
    /// [`commit`](Self::commit).
    pub fn validate<'a>(
        &self,
        batches: impl IntoIterator<Item = (&'a BatchHeader, i64)>,
    ) -> Result<ProducerValidation, LogError> {
        let mut pending: Vec<ProducerEntry> = Vec::new();
        for (h, first_offset) in batches {
            if h.producer_id < 0 {
                continue;
            }
            let pid = h.producer_id;
            let idx = match pending.iter().position(|e| e.producer_id == pid) {
                Some(i) => i,
                None => {
                    match self.producers.get(&pid) {
                        Some(e) => pending.push(e.clone()),
                        None => {
                            let mut e = ProducerEntry::new(pid, h.producer_epoch);
                            e.apply(h, first_offset);
                            pending.push(e);
                            continue;
                        }
                    }
                    pending.len() - 1
                }
            };
            let entry = &mut pending[idx];
            if h.producer_epoch < entry.epoch {
                return Err(LogError::InvalidProducerEpoch);
            }
            if h.base_sequence >= 0 {
                if h.producer_epoch > entry.epoch {
                    if h.base_sequence != 0 {
                        return Err(LogError::OutOfOrderSequence {
                            producer_id: pid,
                            expected: 0,
                            received: h.base_sequence,
                        });
                    }
                } else {
                    let last_seq = h.last_sequence();
                    if let Some(dup) = entry
                        .batches
                        .iter()
                        .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
                    {
                        return Ok(ProducerValidation::Duplicate(*dup));
                    }
                    if let Some(last) = entry.batches.back() {
                        let expected = next_sequence(last.last_seq);
                        if h.base_sequence != expected {
                            return Err(LogError::OutOfOrderSequence {
                                producer_id: pid,
                                expected,
                                received: h.base_sequence,
                            });
                        }
                    }
                }
            }
            entry.apply(h, first_offset);
        }
        Ok(ProducerValidation::Accepted(pending))
    }

    pub fn commit(&mut self, entries: Vec<ProducerEntry>) {
        for e in entries {
            self.producers.insert(e.producer_id, e);
        }
    }

    /// Forgets producers whose last batch fell below the new log start (retention): their
    /// sequences can no longer be checked against the log, and a producer the log does not know
    /// is accepted at any sequence, as in Kafka.
    pub fn truncate_head(&mut self, log_start: i64) {
        self.producers
            .retain(|_, e| !matches!(e.batches.back(), Some(b) if b.last_offset < log_start));
    }

    /// Replays a batch read back from the log, without validation.
    pub fn replay(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_id, h.producer_epoch))
            .apply(h, h.base_offset);
    }

    /// Offsets of the snapshot files present, ascending.
    pub fn snapshot_offsets(&self) -> io::Result<Vec<i64>> {
        let mut offsets = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(o) = parse_offset_file_name(Path::new(name), SNAPSHOT_SUFFIX) {
                offsets.push(o);
            }
        }
        offsets.sort_unstable();
        Ok(offsets)
    }

    fn snapshot_path(&self, offset: i64) -> PathBuf {
        self.dir.join(offset_file_name(offset, SNAPSHOT_SUFFIX))
    }

    /// Writes the state covering every batch below `offset`, atomically; with `sync` it is also
    /// durable before this returns. Older snapshots beyond the newest few are removed.
    pub fn take_snapshot(&self, offset: i64, sync: bool) -> io::Result<()> {
        let mut buf = Vec::with_capacity(16 + self.producers.len() * 64);
        buf.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        buf.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            buf.extend_from_slice(&e.producer_id.to_be_bytes());
            buf.extend_from_slice(&e.epoch.to_be_bytes());
            buf.push(e.batches.len() as u8);
            for b in &e.batches {
                buf.extend_from_slice(&b.first_seq.to_be_bytes());
                buf.extend_from_slice(&b.last_seq.to_be_bytes());
                buf.extend_from_slice(&b.first_offset.to_be_bytes());
                buf.extend_from_slice(&b.last_offset.to_be_bytes());
                buf.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());

        let path = self.snapshot_path(offset);
        let tmp = path.with_extension(format!("{SNAPSHOT_SUFFIX}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, &path)?;
        if sync {
            File::open(&self.dir)?.sync_all()?;
        }
        let offsets = self.snapshot_offsets()?;
        if offsets.len() > SNAPSHOTS_KEPT {
            for o in &offsets[..offsets.len() - SNAPSHOTS_KEPT] {
                let _ = fs::remove_file(self.snapshot_path(*o));
            }
        }
        Ok(())
    }

    /// Replaces the state with the snapshot at `offset`; false (state cleared) if the file is
    /// missing or damaged.
    pub fn load_snapshot(&mut self, offset: i64) -> io::Result<bool> {
        self.producers.clear();
        let buf = match fs::read(self.snapshot_path(offset)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match parse_snapshot(&buf) {
            Some(producers) => {
                self.producers = producers;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn delete_snapshot(&self, offset: i64) -> io::Result<()> {
        match fs::remove_file(self.snapshot_path(offset)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn parse_snapshot(buf: &[u8]) -> Option<HashMap<i64, ProducerEntry>> {
    if buf.len() < 10 {
        return None;
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = body;
    fn take<'b>(r: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        if r.len() < n {
            return None;
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Some(a)
    }
    let i16_ = |r: &mut &[u8]| Some(i16::from_be_bytes(take(r, 2)?.try_into().ok()?));
    let i32_ = |r: &mut &[u8]| Some(i32::from_be_bytes(take(r, 4)?.try_into().ok()?));
    let i64_ = |r: &mut &[u8]| Some(i64::from_be_bytes(take(r, 8)?.try_into().ok()?));
    if i16_(&mut r)? as u16 != SNAPSHOT_VERSION {
        return None;
    }
    let count = i32_(&mut r)? as u32;
    let mut producers = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let mut e = ProducerEntry::new(i64_(&mut r)?, i16_(&mut r)?);
        let n = take(&mut r, 1)?[0];
        for _ in 0..n {
            e.push(BatchMetadata {
                first_seq: i32_(&mut r)?,
                last_seq: i32_(&mut r)?,
                first_offset: i64_(&mut r)?,
                last_offset: i64_(&mut r)?,
                timestamp: i64_(&mut r)?,
            });
        }
        producers.insert(e.producer_id, e);
    }
    r.is_empty().then_some(producers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::producer_batch;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader::parse(&producer_batch(pid, epoch, seq, count)).unwrap()
    }

    fn accept(m: &mut ProducerStateManager, h: &BatchHeader, offset: i64) {
        match m.validate([(h, offset)]).unwrap() {
            ProducerValidation::Accepted(e) => m.commit(e),
            ProducerValidation::Duplicate(d) => panic!("unexpected duplicate {d:?}"),
        }
    }

    #[test]
    fn sequence_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ProducerStateManager::new(dir.path());
        accept(&mut m, &header(7, 0, 0, 3), 0);
        accept(&mut m, &header(7, 0, 3, 2), 3);
        match m.validate([(&header(7, 0, 0, 3), 99)]).unwrap() {
            ProducerValidation::Duplicate(d) => assert_eq!((d.first_offset, d.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.validate([(&header(7, 0, 6, 1), 5)]),
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                received: 6,
                ..
            })
        ));
        assert!(matches!(
            m.validate([(&header(7, 1, 5, 1), 5)]),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        accept(&mut m, &header(7, 1, 0, 1), 5);
        assert!(matches!(
            m.validate([(&header(7, 0, 5, 1), 6)]),
            Err(LogError::InvalidProducerEpoch)
        ));
        // Batches of one call see each other.
        let (a, b) = (header(7, 1, 1, 1), header(7, 1, 3, 1));
        assert!(matches!(
            m.validate([(&a, 6), (&b, 7)]),
            Err(LogError::OutOfOrderSequence { expected: 2, .. })
        ));
        assert_eq!(m.get(7).unwrap().batches.len(), 1);
    }

    #[test]
    fn sequence_wraps_and_only_five_batches_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ProducerStateManager::new(dir.path());
        accept(&mut m, &header(1, 0, i32::MAX - 1, 2), 0);
        accept(&mut m, &header(1, 0, 0, 1), 2);
        for i in 1..7 {
            accept(&mut m, &header(1, 0, i, 1), 2 + i as i64);
        }
        let e = m.get(1).unwrap();
        assert_eq!(e.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(e.batches.front().unwrap().first_seq, 2);
        // A retry of a batch no longer cached is out of order, not a duplicate.
        assert!(m.validate([(&header(1, 0, 1, 1), 9)]).is_err());
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ProducerStateManager::new(dir.path());
        accept(&mut m, &header(1, 3, 0, 2), 0);
        accept(&mut m, &header(2, 0, 0, 1), 2);
        for o in [3, 10, 20] {
            m.take_snapshot(o, true).unwrap();
        }
        assert_eq!(m.snapshot_offsets().unwrap(), vec![10, 20]);
        let mut n = ProducerStateManager::new(dir.path());
        assert!(n.load_snapshot(20).unwrap());
        assert_eq!(n.get(1), m.get(1));
        assert_eq!(n.get(2), m.get(2));
        let path = dir.path().join(offset_file_name(20, SNAPSHOT_SUFFIX));
        let mut bytes = fs::read(&path).unwrap();
        bytes[7] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(!n.load_snapshot(20).unwrap());
        assert!(n.is_empty());
    }
}
