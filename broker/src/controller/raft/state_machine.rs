//! The quorum's state machine: committed metadata batches applied to a `ClusterImage` that is
//! published to watchers, and snapshots (the serialized image) kept beside the metadata log.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot};
use tokio::sync::watch;
use tracing::warn;

use super::{
    blocking, write_atomically, Entry, LogId, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use crate::controller::image::ClusterImage;
use crate::error::{BrokerError, Result};

const SNAPSHOT_FILE: &str = "snapshot.bin";
/// Snapshot file header: the metadata's length and a CRC-32C of everything after the header.
const HEADER: usize = 8;

#[derive(Debug)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn encode(&self) -> io::Result<Vec<u8>> {
        let meta = serde_json::to_vec(&self.meta).map_err(io::Error::other)?;
        let mut body = meta.clone();
        body.extend_from_slice(&self.data);
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> std::result::Result<StoredSnapshot, String> {
        if bytes.len() < HEADER {
            return Err("shorter than its header".into());
        }
        let meta_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let body = &bytes[HEADER..];
        if crc32c::crc32c(body) != crc {
            return Err("checksum mismatch".into());
        }
        if meta_len > body.len() {
            return Err(format!(
                "metadata of {meta_len} bytes in a {} byte body",
                body.len()
            ));
        }
        let meta = serde_json::from_slice(&body[..meta_len]).map_err(|e| e.to_string())?;
        Ok(StoredSnapshot {
            meta,
            data: body[meta_len..].to_vec(),
        })
    }

    fn to_snapshot(&self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        }
    }
}

/// The newest snapshot, shared by the state machine and its snapshot builders.
type Current = Arc<Mutex<Option<Arc<StoredSnapshot>>>>;

/// Makes `snapshot` the current one unless a newer one is already there, writing it to disk
/// first so the log is never purged past a snapshot that only exists in memory.
async fn keep(dir: &Path, current: &Current, snapshot: StoredSnapshot) -> io::Result<()> {
    let path = dir.join(SNAPSHOT_FILE);
    let current = current.clone();
    blocking(move || {
        // Held across the write so that two snapshots finishing together (a build and an
        // install) leave the file and the memory agreeing on the newer one.
        let mut slot = current.lock().unwrap_or_else(|p| p.into_inner());
        let newer_kept = slot
            .as_ref()
            .is_some_and(|s| s.meta.last_log_id >= snapshot.meta.last_log_id);
        if !newer_kept {
            write_atomically(&path, &snapshot.encode()?)?;
            *slot = Some(Arc::new(snapshot));
        }
        Ok(())
    })
    .await
}

pub struct StateMachineStore {
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<ClusterImage>,
    publish: watch::Sender<Arc<ClusterImage>>,
    current: Current,
    /// Makes snapshot ids unique within this process.
    built: u64,
}

pub struct SnapshotBuilder {
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<ClusterImage>,
    current: Current,
    seq: u64,
}

fn snapshot_err(e: impl std::fmt::Display, verb: ErrorVerb) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        verb,
        io::Error::other(e.to_string()),
    )
}

impl StateMachineStore {
    /// Starts from the snapshot in `dir` (the metadata log's directory) if there is one; the
    /// committed entries after it are applied again by openraft.
    pub fn open(dir: &Path) -> Result<StateMachineStore> {
        let path = dir.join(SNAPSHOT_FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => Some(StoredSnapshot::decode(&bytes).map_err(|e| {
                BrokerError::Metadata(format!("snapshot {} is unreadable: {e}", path.display()))
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let (image, last_applied, membership) = match &stored {
            Some(s) => (
                ClusterImage::from_snapshot(&s.data)?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (ClusterImage::new(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let (publish, _) = watch::channel(image.clone());
        Ok(StateMachineStore {
            dir: dir.to_path_buf(),
            last_applied,
            membership,
            image,
            publish,
            current: Arc::new(Mutex::new(stored.map(Arc::new))),
            built: 0,
        })
    }

    /// The image after every applied entry; the receiver sees each new one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.publish.subscribe()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("empty-{}", self.seq),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data: self.image.to_snapshot(),
        };
        let snapshot = stored.to_snapshot();
        keep(&self.dir, &self.current, stored)
            .await
            .map_err(|e| snapshot_err(e, ErrorVerb::Write))?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        let image = Arc::make_mut(&mut self.image);
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    if let Err(e) = image.apply_all(entry.log_id.index, &batch.0) {
                        // Every replica skips the same record, so they stay identical; the
                        // controller that wrote it had decided against a different image.
                        warn!(offset = entry.log_id.index, error = %e, "metadata record does not apply");
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(());
        }
        self.publish.send_replace(self.image.clone());
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.built += 1;
        SnapshotBuilder {
            dir: self.dir.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: self.image.clone(),
            current: self.current.clone(),
            seq: self.built,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image =
            ClusterImage::from_snapshot(&data).map_err(|e| snapshot_err(e, ErrorVerb::Read))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        keep(&self.dir, &self.current, stored)
            .await
            .map_err(|e| snapshot_err(e, ErrorVerb::Write))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.image = Arc::new(image);
        self.publish.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        Ok(current.as_ref().map(|s| s.to_snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::raft::{LogStore, MetadataBatch};
    use crate::controller::records::{MetadataRecord, RegisterBrokerRecord};
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, Membership};
    use sluice_protocol::wire::Uuid;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> std::result::Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError>
        {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = LogStore::open(dir.path()).expect("log store");
            let sm = StateMachineStore::open(log.dir()).expect("state machine");
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for storage implementations.
    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn register(id: i32) -> Entry {
        Entry {
            log_id: log_id(id as u64),
            payload: EntryPayload::Normal(MetadataBatch(vec![MetadataRecord::RegisterBroker(
                RegisterBrokerRecord {
                    broker_id: id,
                    broker_epoch: id as i64,
                    incarnation_id: Uuid([1; 16]),
                    listeners: vec![],
                    rack: None,
                    fenced: true,
                },
            )])),
        }
    }

    #[tokio::test]
    async fn applied_batches_are_published_and_snapshots_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        let mut watch = sm.subscribe();
        let membership = Entry {
            log_id: log_id(0),
            payload: EntryPayload::Membership(Membership::new(
                vec![[1u64, 2, 3].into_iter().collect()],
                None,
            )),
        };
        sm.apply([membership, register(1), register(2)])
            .await
            .unwrap();
        assert!(watch.has_changed().unwrap());
        let image = watch.borrow_and_update().clone();
        assert_eq!(image.brokers().count(), 2);
        assert_eq!(image.offset(), 2);

        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));
        sm.apply([register(3)]).await.unwrap();
        drop(sm);

        // A restart starts from the snapshot; entry 3 comes back from the log via openraft.
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(2)));
        assert_eq!(membership.log_id(), &Some(log_id(0)));
        assert_eq!(sm.subscribe().borrow().brokers().count(), 2);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.snapshot_id, snapshot.meta.snapshot_id);
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_image_and_an_older_build_does_not_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        let mut leader = StateMachineStore::open(&dir.path().join("a")).unwrap();
        leader
            .apply([register(1), register(2), register(3)])
            .await
            .unwrap();
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let mut follower = StateMachineStore::open(&dir.path().join("b")).unwrap();
        let stale_builder = follower.get_snapshot_builder().await;
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.subscribe().borrow().brokers().count(), 3);
        // A build that started before the install finishes after it: the newer snapshot stays.
        let mut stale_builder = stale_builder;
        stale_builder.build_snapshot().await.unwrap();
        let current = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(3)));
        drop(follower);
        let follower = StateMachineStore::open(&dir.path().join("b")).unwrap();
        assert_eq!(follower.subscribe().borrow().brokers().count(), 3);
    }

    #[test]
    fn a_damaged_snapshot_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"\0\0\0\x02\0\0\0\0{}").unwrap();
        assert!(matches!(
            StateMachineStore::open(dir.path()),
            Err(BrokerError::Metadata(_))
        ));
    }
}
