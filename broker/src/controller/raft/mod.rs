//! The controller quorum on openraft: type config, durable metadata log, image state machine,
//! TCP transport and node. Elections, replication and commitment are openraft's, not ours.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::records::MetadataRecord;

pub mod log_store;
pub mod network;
pub mod node;
pub mod state_machine;

pub use log_store::LogStore;
pub use node::{ControllerHandle, ControllerNode};
pub use state_machine::StateMachineStore;

/// One entry of the metadata log: the records of one controller decision, applied together so
/// no broker ever sees half of a decision (a topic without its partitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<MetadataRecord>);

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata record(s)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// The quorum's types: entries carry `MetadataBatch`es, snapshots are serialized images.
    pub TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;

/// Runs blocking file work (writes and fsyncs) off the async workers, so a slow disk delays only
/// the quorum's own I/O, not every task on the runtime.
pub(crate) async fn blocking<T, F>(work: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| std::io::Error::other(format!("storage task failed: {e}")))?
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new contents: write a
/// temporary file, fsync it, rename it over, fsync the directory.
pub(crate) fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

pub(crate) fn sync_dir(path: &std::path::Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
