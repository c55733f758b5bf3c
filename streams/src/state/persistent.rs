//! The redb file every persistent store is (one per store and task under the task's state
//! directory, its checkpoint beside the data), and the persistent key-value store on it.
//!
//! # Crash semantics
//!
//! All writes between two flushes go into one redb write transaction: reads see them at once,
//! the file only when `flush` (or `write_checkpoint`) commits the transaction durably (fsync).
//! redb commits are atomic, so after a crash or `kill -9` the file holds exactly the state of
//! the last durable commit, and the writes since are lost; the runtime gets them back by
//! replaying the changelog after the checkpoint.
//!
//! `write_checkpoint(offset)` commits the data together with the offset of the last changelog
//! record it includes; the runtime calls it once the task's input offsets are committed (so
//! every changelog record up to `offset` is acknowledged). The data may be ahead of the
//! checkpoint (flushed later): replaying the changelog from `offset + 1` writes each key's
//! latest value again, which ends in the same state, since changelog records carry whole
//! values. A store opened without a checkpoint holds data of unknown provenance and is emptied,
//! so it is restored from the whole changelog. One caveat, as in Kafka: a tombstone compacted
//! away (after the topic's `delete.retention.ms`) while the store was offline past its
//! checkpoint leaves the deleted key in the store.

use std::ops::Bound;
use std::path::PathBuf;

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::memory::is_empty_range;
use super::{KeyValueStore, KvIter, StateStore, StoreContext, StoreError, StoreSupplier};

pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const CHECKPOINT: &str = "changelog_offset";

pub(super) fn io(store: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        store: store.to_string(),
        message: e.to_string(),
    }
}

/// A store's redb file: its open write transaction, its data table and its metadata (the
/// checkpoint, and what else a store keeps beside it); every persistent store is one.
pub(super) struct RedbFile {
    pub(super) name: String,
    path: PathBuf,
    /// The open transaction holding the writes since the last durable commit (declared
    /// before `db` so it is dropped, uncommitted, before the database closes).
    txn: Option<redb::WriteTransaction>,
    db: Database,
    /// Owns the store's directory when no state directory was given (the test driver).
    _temp: Option<tempfile::TempDir>,
}

impl RedbFile {
    /// Opens (or creates) the file at `path`, emptying it when it has no checkpoint.
    pub(super) fn open(
        name: String,
        path: PathBuf,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&name, e))?;
        }
        let db = Database::create(&path).map_err(|e| io(&name, e))?;
        let mut f = RedbFile {
            name,
            path,
            txn: None,
            db,
            _temp: temp,
        };
        f.begin()?;
        if f.checkpoint()?.is_none() {
            let n = f.len()?;
            let txn = f.txn();
            let has_meta = !txn
                .open_table(META)
                .map_err(|e| io(&f.name, e))?
                .is_empty()
                .map_err(|e| io(&f.name, e))?;
            if n > 0 || has_meta {
                tracing::info!(store = %f.name, path = %f.path.display(), entries = n,
                    "persistent store has no checkpoint: emptying it to restore from the changelog");
                txn.delete_table(DATA).map_err(|e| io(&f.name, e))?;
                txn.delete_table(META).map_err(|e| io(&f.name, e))?;
                f.commit()?;
            }
        }
        Ok(f)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.txn = Some(self.db.begin_write().map_err(|e| io(&self.name, e))?);
        Ok(())
    }

    /// Commits the open transaction durably and opens the next.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(mut txn) = self.txn.take() {
            txn.set_durability(Durability::Immediate);
            txn.commit().map_err(|e| io(&self.name, e))?;
        }
        self.begin()
    }

    pub(super) fn txn(&self) -> &redb::WriteTransaction {
        self.txn
            .as_ref()
            .expect("a write transaction is open between calls")
    }

    pub(super) fn meta(&self, k: &str) -> Result<Option<i64>, StoreError> {
        let t = self.txn().open_table(META).map_err(|e| io(&self.name, e))?;
        let v = t.get(k).map_err(|e| io(&self.name, e))?;
        Ok(v.map(|g| g.value()))
    }

    pub(super) fn set_meta(&self, k: &str, v: i64) -> Result<(), StoreError> {
        let mut t = self.txn().open_table(META).map_err(|e| io(&self.name, e))?;
        t.insert(k, v).map_err(|e| io(&self.name, e))?;
        Ok(())
    }

    /// The offset of the last changelog record the data is known to include.
    pub(super) fn checkpoint(&self) -> Result<Option<i64>, StoreError> {
        self.meta(CHECKPOINT)
    }

    /// Records the checkpoint and commits it durably together with the data.
    pub(super) fn write_checkpoint(&mut self, offset: i64) -> Result<(), StoreError> {
        self.set_meta(CHECKPOINT, offset)?;
        self.commit()
    }

    pub(super) fn get(&self, k: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let v = t.get(k).map_err(|e| io(&self.name, e))?;
        Ok(v.map(|g| Bytes::copy_from_slice(g.value())))
    }

    pub(super) fn insert(&self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let mut t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        t.insert(k, v).map_err(|e| io(&self.name, e))?;
        Ok(())
    }

    /// Removes a key, returning the value it had.
    pub(super) fn remove(&self, k: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let mut t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let old = t.remove(k).map_err(|e| io(&self.name, e))?;
        Ok(old.map(|g| Bytes::copy_from_slice(g.value())))
    }

    /// The number of entries in the data table.
    fn len(&self) -> Result<u64, StoreError> {
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        t.len().map_err(|e| io(&self.name, e))
    }
}

/// Where a supplier's store file goes: `<task state dir>/redb/<store>.redb`, or a temporary
/// directory removed with the store when the task has none.
pub(super) fn store_path(
    name: &str,
    ctx: &StoreContext,
) -> Result<(PathBuf, Option<tempfile::TempDir>), StoreError> {
    let file = format!("{name}.redb");
    Ok(match &ctx.state_dir {
        Some(dir) => (dir.join("redb").join(file), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("sluice-streams-")
                .tempdir()
                .map_err(|e| io(name, e))?;
            (t.path().join(file), Some(t))
        }
    })
}

/// A key-value store in a redb file: keys in unsigned byte order, as the in-memory store.
pub struct PersistentKeyValueStore {
    f: RedbFile,
}

impl PersistentKeyValueStore {
    /// Opens (or creates) the store at `path`, emptying it when it has no checkpoint.
    pub fn open(name: impl Into<String>, path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let f = RedbFile::open(name.into(), path.into(), None)?;
        Ok(PersistentKeyValueStore { f })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.f.path
    }
}

impl StateStore for PersistentKeyValueStore {
    fn name(&self) -> &str {
        &self.f.name
    }
    fn persistent(&self) -> bool {
        true
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.f.commit()
    }
    fn close(&mut self) -> Result<(), StoreError> {
        self.f.commit()
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.put(key, v),
            None => self.delete(&key).map(|_| ()),
        }
    }
    fn as_key_value(&mut self) -> Option<&mut dyn KeyValueStore> {
        Some(self)
    }
    fn as_key_value_ref(&self) -> Option<&dyn KeyValueStore> {
        Some(self)
    }
    fn checkpointed_offset(&self) -> Result<Option<i64>, StoreError> {
        self.f.checkpoint()
    }
    fn write_checkpoint(&mut self, offset: i64) -> Result<(), StoreError> {
        self.f.write_checkpoint(offset)
    }
}

impl KeyValueStore for PersistentKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.f.get(key)
    }
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.f.insert(&key, &value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.f.remove(key)
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KvIter<'_>, StoreError> {
        if is_empty_range(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let name = &self.f.name;
        let t = self.f.txn().open_table(DATA).map_err(|e| io(name, e))?;
        let range = t.range::<&[u8]>((from, to)).map_err(|e| io(name, e))?;
        // A range of the open write transaction borrows its table, so it is read out here.
        let entries: Vec<Result<(Bytes, Bytes), StoreError>> = range
            .map(|r| {
                r.map(|(k, v)| {
                    (
                        Bytes::copy_from_slice(k.value()),
                        Bytes::copy_from_slice(v.value()),
                    )
                })
                .map_err(|e| io(name, e))
            })
            .collect();
        Ok(Box::new(entries.into_iter()))
    }
    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.f.len()
    }
}

/// Supplies a persistent store per task (see `store_path` for where it lives).
#[derive(Debug, Clone)]
pub struct PersistentStoreSupplier {
    name: String,
}

impl PersistentStoreSupplier {
    pub fn new(name: impl Into<String>) -> Self {
        PersistentStoreSupplier { name: name.into() }
    }
}

impl StoreSupplier for PersistentStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn build(&self, ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        let (path, temp) = store_path(&self.name, ctx)?;
        let f = RedbFile::open(self.name.clone(), path, temp)?;
        Ok(Box::new(PersistentKeyValueStore { f }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn keys(it: KvIter<'_>) -> Vec<Bytes> {
        it.map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn reads_see_writes_and_ranges_are_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PersistentKeyValueStore::open("s", dir.path().join("s.redb")).unwrap();
        for k in ["b", "a", "d", "c", "\u{00ff}"] {
            s.put(b(k), b(&k.to_uppercase())).unwrap();
        }
        assert_eq!(s.get(b"c").unwrap(), Some(b("C")));
        assert_eq!(s.delete(b"c").unwrap(), Some(b("C")));
        assert_eq!(s.delete(b"c").unwrap(), None);
        assert_eq!(
            keys(s.all().unwrap()),
            vec![b("a"), b("b"), b("d"), b("\u{00ff}")]
        );
        let r = s
            .range(Bound::Excluded(b"a"), Bound::Included(b"d"))
            .unwrap();
        assert_eq!(keys(r), vec![b("b"), b("d")]);
        assert!(keys(
            s.range(Bound::Included(b"d"), Bound::Excluded(b"a"))
                .unwrap()
        )
        .is_empty());
        assert_eq!(s.approximate_num_entries().unwrap(), 4);
    }

    #[test]
    fn data_and_checkpoint_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let mut s = PersistentKeyValueStore::open("s", &path).unwrap();
            assert_eq!(s.checkpointed_offset().unwrap(), None);
            s.put(b("a"), b("1")).unwrap();
            s.write_checkpoint(7).unwrap();
            s.put(b("b"), b("2")).unwrap();
            s.flush().unwrap();
        }
        let s = PersistentKeyValueStore::open("s", &path).unwrap();
        assert_eq!(s.checkpointed_offset().unwrap(), Some(7));
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
        assert_eq!(s.get(b"b").unwrap(), Some(b("2")));
    }

    #[test]
    fn a_store_without_a_checkpoint_is_emptied_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let mut s = PersistentKeyValueStore::open("s", &path).unwrap();
            s.put(b("a"), b("1")).unwrap();
            s.flush().unwrap();
        }
        let s = PersistentKeyValueStore::open("s", &path).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.approximate_num_entries().unwrap(), 0);
    }
}
