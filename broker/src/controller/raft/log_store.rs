//! The durable metadata log in `<metadata.log.dir>/__cluster_metadata-0/`: CRC-framed entries
//! fsynced before openraft hears of them, the vote and purge point, recovery of a torn tail.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{blocking, sync_dir, write_atomically, Entry, LogId, StorageError, TypeConfig, Vote};
use crate::error::{BrokerError, Result};

/// Kafka's name for the metadata log's directory (topic `__cluster_metadata`, partition 0).
pub const DIR_NAME: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "metadata.log";
const STATE_FILE: &str = "quorum-state.json";
const COMMITTED_FILE: &str = "committed.json";
/// Frame header: payload length and CRC-32C, both big-endian u32.
const FRAME_HEADER: usize = 8;
/// No entry comes near this (a topic of 100,000 partitions is about 15 MB); a longer length
/// field can only be a torn or damaged header.
const MAX_ENTRY_BYTES: usize = 256 << 20;

/// What must survive a crash besides the entries: the vote (so a node never votes twice in one
/// term) and how far the log was purged (so recovery knows where it starts).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
}

type Entries = Arc<RwLock<BTreeMap<u64, Entry>>>;

pub struct LogStore {
    dir: PathBuf,
    /// `None` only while a blocking task is writing through it.
    file: Option<File>,
    /// Where each entry's frame starts in the file, for truncation.
    positions: BTreeMap<u64, u64>,
    end: u64,
    state: QuorumState,
    /// Shared with the readers openraft's replication tasks use.
    entries: Entries,
}

/// A reader over the same entries, for openraft's replication to followers.
#[derive(Clone)]
pub struct LogReader {
    entries: Entries,
}

fn encode_frame(entry: &Entry) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// The whole frames at the start of `data`, with their positions, and the length they cover.
/// Reading stops at the first frame that is incomplete, fails its CRC, does not parse or does not
/// follow its predecessor: everything from there on was never acknowledged.
fn decode_frames(data: &[u8]) -> (Vec<(u64, Entry)>, usize, Option<String>) {
    let mut out: Vec<(u64, Entry)> = Vec::new();
    let mut pos = 0;
    let problem = loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < FRAME_HEADER {
            break Some(format!("{} stray bytes after the last frame", rest.len()));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_ENTRY_BYTES || rest.len() < FRAME_HEADER + len {
            break Some(format!("a frame claims {len} bytes, {} remain", rest.len()));
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if crc32c::crc32c(payload) != crc {
            break Some("a frame fails its checksum".to_string());
        }
        let entry: Entry = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => break Some(format!("a frame does not parse: {e}")),
        };
        if let Some((_, prev)) = out.last() {
            if entry.log_id.index != prev.log_id.index + 1 {
                break Some(format!(
                    "entry {} follows entry {}",
                    entry.log_id.index, prev.log_id.index
                ));
            }
        }
        out.push((pos as u64, entry));
        pos += FRAME_HEADER + len;
    };
    (out, pos, problem)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

fn write_err(e: io::Error) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

fn vote_err(e: io::Error) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Vote, ErrorVerb::Write, e)
}

impl LogStore {
    /// Opens (creating if needed) the log under `metadata_log_dir`, recovering what a crash left.
    pub fn open(metadata_log_dir: &Path) -> Result<LogStore> {
        let dir = metadata_log_dir.join(DIR_NAME);
        std::fs::create_dir_all(&dir)?;
        let state = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| {
                BrokerError::Metadata(format!(
                    "{} is unreadable: {e}",
                    dir.join(STATE_FILE).display()
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => QuorumState::default(),
            Err(e) => return Err(e.into()),
        };
        let path = dir.join(LOG_FILE);
        let mut file = open_append(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (frames, valid, problem) = decode_frames(&data);
        if let Some(problem) = problem {
            warn!(
                log = %path.display(),
                kept = frames.len(),
                cut_bytes = data.len() - valid,
                "metadata log ends in an incomplete write ({problem}); cutting it off"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let purged = state.last_purged.map_or(0, |l| l.index + 1);
        let mut positions = BTreeMap::new();
        let mut entries = BTreeMap::new();
        // Entries at or below the purge point are only there because a crash came between
        // recording the purge and rewriting the file; the next purge drops them from disk.
        for (pos, entry) in frames {
            if entry.log_id.index >= purged {
                positions.insert(entry.log_id.index, pos);
                entries.insert(entry.log_id.index, entry);
            }
        }
        Ok(LogStore {
            dir,
            file: Some(file),
            positions,
            end: valid as u64,
            state,
            entries: Arc::new(RwLock::new(entries)),
        })
    }

    /// The `__cluster_metadata-0` directory, where the state machine keeps its snapshot too.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries_in<RB: RangeBounds<u64>>(entries: &Entries, range: RB) -> Vec<Entry> {
        let entries = entries.read().unwrap_or_else(|poison| poison.into_inner());
        entries.range(range).map(|(_, e)| e.clone()).collect()
    }

    async fn save_state(&mut self, state: QuorumState) -> io::Result<()> {
        let data = serde_json::to_vec(&state).map_err(io::Error::other)?;
        let path = self.dir.join(STATE_FILE);
        blocking(move || write_atomically(&path, &data)).await?;
        self.state = state;
        Ok(())
    }

    /// Runs `work` on the log file in a blocking task and puts the file back afterwards.
    async fn with_file<T, F>(&mut self, work: F) -> io::Result<T>
    where
        F: FnOnce(&mut File) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the metadata log file was lost by a failed write"))?;
        let (file, result) = blocking(move || {
            let result = work(&mut file);
            Ok((file, result))
        })
        .await?;
        self.file = Some(file);
        result
    }

    /// Writes every kept entry into a new file that replaces the old one, so purged entries stop
    /// taking space.
    async fn rewrite(&mut self) -> io::Result<()> {
        let kept = Self::entries_in(&self.entries, ..);
        let path = self.dir.join(LOG_FILE);
        // The old handle must not be written through once the new file is in place.
        self.file = None;
        let (file, positions, end) = blocking(move || {
            let tmp = path.with_extension("log.tmp");
            let mut positions = BTreeMap::new();
            let mut data = Vec::new();
            for entry in &kept {
                positions.insert(entry.log_id.index, data.len() as u64);
                data.extend(encode_frame(entry)?);
            }
            {
                let mut f = File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            sync_dir(&path)?;
            Ok((open_append(&path)?, positions, data.len() as u64))
        })
        .await?;
        self.file = Some(file);
        self.positions = positions;
        self.end = end;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<Entry>, StorageError> {
        Ok(Self::entries_in(&self.entries, range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<Entry>, StorageError> {
        Ok(LogStore::entries_in(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<TypeConfig>, StorageError> {
        let last = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            entries.values().next_back().map(|e| e.log_id)
        };
        Ok(LogState {
            last_purged_log_id: self.state.last_purged,
            last_log_id: last.or(self.state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> std::result::Result<(), StorageError> {
        let mut state = self.state.clone();
        state.vote = Some(*vote);
        self.save_state(state).await.map_err(vote_err)
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<Vote>, StorageError> {
        Ok(self.state.vote)
    }

    /// Kept without an fsync: it only lets a restarted node apply what it knows was committed
    /// before it hears from a leader, and losing it merely delays that.
    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> std::result::Result<(), StorageError> {
        let path = self.dir.join(COMMITTED_FILE);
        let data = serde_json::to_vec(&committed).map_err(|e| write_err(io::Error::other(e)))?;
        blocking(move || {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &data)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(write_err)
    }

    async fn read_committed(&mut self) -> std::result::Result<Option<LogId>, StorageError> {
        // Unreadable means "not known": the leader will say again.
        let committed = std::fs::read(self.dir.join(COMMITTED_FILE))
            .ok()
            .and_then(|data| serde_json::from_slice::<Option<LogId>>(&data).ok())
            .flatten();
        let last = self.get_log_state().await?.last_log_id;
        // Never claim more than the log holds (the entries past a torn tail are gone).
        Ok(match (committed, last) {
            (Some(c), Some(l)) if c.index > l.index => Some(l),
            (c, None) if c.is_some() => None,
            (c, _) => c,
        })
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> std::result::Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let batch: Vec<Entry> = entries.into_iter().collect();
        let mut data = Vec::new();
        let mut positions = Vec::with_capacity(batch.len());
        for entry in &batch {
            positions.push((entry.log_id.index, self.end + data.len() as u64));
            data.extend(encode_frame(entry).map_err(write_err)?);
        }
        let written = data.len() as u64;
        let result = self
            .with_file(move |f| {
                f.write_all(&data)?;
                f.sync_data()
            })
            .await;
        if let Err(e) = result {
            callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(write_err(e));
        }
        self.end += written;
        self.positions.extend(positions);
        {
            let mut stored = self.entries.write().unwrap_or_else(|p| p.into_inner());
            for entry in batch {
                stored.insert(entry.log_id.index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        {
            // Readers must stop seeing the conflicting entries before they leave the disk.
            let mut stored = self.entries.write().unwrap_or_else(|p| p.into_inner());
            stored.split_off(&log_id.index);
        }
        let cut = self.positions.split_off(&log_id.index);
        if let Some((_, &pos)) = cut.iter().next() {
            self.with_file(move |f| {
                f.set_len(pos)?;
                f.sync_data()
            })
            .await
            .map_err(write_err)?;
            self.end = pos;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        // The purge point is durable before any entry leaves the file, so recovery never finds
        // a gap it cannot explain.
        let mut state = self.state.clone();
        state.last_purged = Some(log_id);
        self.save_state(state).await.map_err(write_err)?;
        {
            let mut stored = self.entries.write().unwrap_or_else(|p| p.into_inner());
            *stored = stored.split_off(&(log_id.index + 1));
        }
        self.rewrite().await.map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::raft::MetadataBatch;
    use crate::controller::records::MetadataRecord;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataBatch(vec![MetadataRecord::FenceBroker {
                broker_id: index as i32,
                broker_epoch: term as i64,
            }])),
        }
    }

    async fn indexes(store: &mut LogStore) -> Vec<(u64, u64)> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn entries_vote_and_commit_point_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .unwrap();
        let vote = Vote::new_committed(2, 3);
        store.save_vote(&vote).await.unwrap();
        store
            .save_committed(Some(entry(1, 2).log_id))
            .await
            .unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(entry(1, 2).log_id)
        );
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(1, 3).log_id));
        assert_eq!(state.last_purged_log_id, None);
        assert!(dir.path().join(DIR_NAME).join(LOG_FILE).exists());
    }

    #[tokio::test]
    async fn truncation_is_durable_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=5).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.truncate(entry(1, 3).log_id).await.unwrap();
        // A new leader's entries replace the conflicting ones.
        store
            .blocking_append([entry(2, 3), entry(2, 4)])
            .await
            .unwrap();
        let mut reader = store.get_log_reader().await;
        assert_eq!(
            reader.try_get_log_entries(3..4).await.unwrap()[0],
            entry(2, 3)
        );
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            indexes(&mut store).await,
            vec![(1, 1), (1, 2), (2, 3), (2, 4)]
        );
    }

    #[tokio::test]
    async fn purged_entries_are_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=6).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.purge(entry(1, 4).log_id).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 5), (1, 6)]);
        store.blocking_append([entry(1, 7)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 5), (1, 6), (1, 7)]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 4).log_id));
        // Purging past the end (a snapshot from the leader got ahead) leaves an empty log whose
        // last entry is the purge point.
        store.purge(entry(1, 9).log_id).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(indexes(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(1, 9).log_id));
    }

    #[tokio::test]
    async fn a_torn_or_damaged_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .unwrap();
        drop(store);
        let path = dir.path().join(DIR_NAME).join(LOG_FILE);
        let full = std::fs::read(&path).unwrap();

        // A crash in the middle of writing entry 3.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2)]);
        store.blocking_append([entry(2, 3)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2), (2, 3)]);
        drop(store);

        // A flipped bit in the last entry.
        let mut damaged = std::fs::read(&path).unwrap();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![(1, 1), (1, 2)]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(1, 2).log_id));
    }

    #[test]
    fn frames_reject_absurd_lengths_and_gaps() {
        let mut data = encode_frame(&entry(1, 1)).unwrap();
        data.extend(encode_frame(&entry(1, 3)).unwrap());
        let (frames, valid, problem) = decode_frames(&data);
        assert_eq!(frames.len(), 1);
        assert!(problem.unwrap().contains("entry 3 follows entry 1"));
        assert_eq!(valid, encode_frame(&entry(1, 1)).unwrap().len());

        let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        huge.extend([0u8; 16]);
        let (frames, valid, problem) = decode_frames(&huge);
        assert!(frames.is_empty());
        assert_eq!(valid, 0);
        assert!(problem.is_some());
    }

    #[test]
    fn an_unreadable_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(DIR_NAME)).unwrap();
        std::fs::write(dir.path().join(DIR_NAME).join(STATE_FILE), b"{garbage").unwrap();
        // Starting over would forget the vote and could vote twice in one term.
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(BrokerError::Metadata(_))
        ));
    }
}
