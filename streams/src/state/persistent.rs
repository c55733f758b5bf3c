//! The persistent key-value store: one redb file per store and task under the task's state
//! directory, with the changelog offset it holds recorded beside the data (its checkpoint).
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

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const CHECKPOINT: &str = "changelog_offset";

/// A key-value store in a redb file: keys in unsigned byte order, as the in-memory store.
pub struct PersistentKeyValueStore {
    name: String,
    path: PathBuf,
    /// The open transaction holding the writes since the last durable commit (declared
    /// before `db` so it is dropped, uncommitted, before the database closes).
    txn: Option<redb::WriteTransaction>,
    db: Database,
    /// Owns the store's directory when no state directory was given (the test driver).
    _temp: Option<tempfile::TempDir>,
}

pub(super) fn io(store: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        store: store.to_string(),
        message: e.to_string(),
    }
}

impl PersistentKeyValueStore {
    /// Opens (or creates) the store at `path`, emptying it when it has no checkpoint.
    pub fn open(name: impl Into<String>, path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_in(name.into(), path.into(), None)
    }

    fn open_in(
        name: String,
        path: PathBuf,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&name, e))?;
        }
        let db = Database::create(&path).map_err(|e| io(&name, e))?;
        let mut store = PersistentKeyValueStore {
            name,
            path,
            txn: None,
            db,
            _temp: temp,
        };
        store.begin()?;
        if store.checkpointed_offset()?.is_none() {
            let txn = store.txn.as_ref().expect("begun");
            let n = txn
                .open_table(DATA)
                .map_err(|e| io(&store.name, e))?
                .len()
                .map_err(|e| io(&store.name, e))?;
            if n > 0 {
                tracing::info!(store = %store.name, path = %store.path.display(), entries = n,
                    "persistent store has no checkpoint: emptying it to restore from the changelog");
                txn.delete_table(DATA).map_err(|e| io(&store.name, e))?;
                store.commit()?;
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| io(&self.name, e))?;
        self.txn = Some(txn);
        Ok(())
    }

    /// Commits the open transaction durably and opens the next.
    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(mut txn) = self.txn.take() {
            txn.set_durability(Durability::Immediate);
            txn.commit().map_err(|e| io(&self.name, e))?;
        }
        self.begin()
    }

    fn txn(&self) -> &redb::WriteTransaction {
        self.txn
            .as_ref()
            .expect("a write transaction is open between calls")
    }
}

impl StateStore for PersistentKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        true
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.commit()
    }
    fn close(&mut self) -> Result<(), StoreError> {
        self.commit()
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
        let t = self.txn().open_table(META).map_err(|e| io(&self.name, e))?;
        let v = t.get(CHECKPOINT).map_err(|e| io(&self.name, e))?;
        Ok(v.map(|g| g.value()))
    }
    fn write_checkpoint(&mut self, offset: i64) -> Result<(), StoreError> {
        {
            let mut t = self.txn().open_table(META).map_err(|e| io(&self.name, e))?;
            t.insert(CHECKPOINT, offset)
                .map_err(|e| io(&self.name, e))?;
        }
        self.commit()
    }
}

impl KeyValueStore for PersistentKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let v = t.get(key).map_err(|e| io(&self.name, e))?;
        Ok(v.map(|g| Bytes::copy_from_slice(g.value())))
    }
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        let mut t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        t.insert(&key[..], &value[..])
            .map_err(|e| io(&self.name, e))?;
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let mut t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let old = t.remove(key).map_err(|e| io(&self.name, e))?;
        Ok(old.map(|g| Bytes::copy_from_slice(g.value())))
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KvIter<'_>, StoreError> {
        if is_empty_range(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let range = t
            .range::<&[u8]>((from, to))
            .map_err(|e| io(&self.name, e))?;
        // A range of the open write transaction borrows its table, so it is read out here.
        let entries: Vec<Result<(Bytes, Bytes), StoreError>> = range
            .map(|r| {
                r.map(|(k, v)| {
                    (
                        Bytes::copy_from_slice(k.value()),
                        Bytes::copy_from_slice(v.value()),
                    )
                })
                .map_err(|e| io(&self.name, e))
            })
            .collect();
        Ok(Box::new(entries.into_iter()))
    }
    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        t.len().map_err(|e| io(&self.name, e))
    }
}

/// Supplies a persistent store per task, at `<task state dir>/redb/<store>.redb`, or in a
/// temporary directory removed with the store when the task has no state directory.
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
        let file = format!("{}.redb", self.name);
        let (path, temp) = match &ctx.state_dir {
            Some(dir) => (dir.join("redb").join(file), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("sluice-streams-")
                    .tempdir()
                    .map_err(|e| io(&self.name, e))?;
                (t.path().join(file), Some(t))
            }
        };
        Ok(Box::new(PersistentKeyValueStore::open_in(
            self.name.clone(),
            path,
            temp,
        )?))
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
