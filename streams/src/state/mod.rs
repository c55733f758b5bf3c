//! State stores: the `StateStore`/`KeyValueStore` traits over bytes, the `StoreSupplier` factory
//! a topology holds per store, a task's stores with their changelogs, and the typed layer on top.
//!
//! Kinds of store: key-value (`KeyValueStore`), window (`WindowStore`) and session
//! (`SessionStore`), each in memory or persistent on disk; each reached from `StateStore` through its
//! `as_*` accessor and written by processors through a handle that logs every write.

mod cache;
mod memory;
mod persistent;
mod persistent_window;
mod typed;
mod window;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::{OutputKind, OutputRecord};
use crate::topology::TaskId;
use cache::{CachedWrite, RecordCache};

pub use memory::{InMemoryKeyValueStore, InMemoryStoreSupplier};
pub use persistent::{PersistentKeyValueStore, PersistentStoreSupplier};
pub use persistent_window::{
    PersistentSessionStore, PersistentSessionStoreSupplier, PersistentWindowStore,
    PersistentWindowStoreSupplier,
};
pub use typed::TypedKeyValueStore;
pub(crate) use window::split_window_changelog_key;
pub use window::{
    window_changelog_key, InMemorySessionStore, InMemorySessionStoreSupplier, InMemoryWindowStore,
    InMemoryWindowStoreSupplier, SessionIter, SessionStore, SessionStoreHandle, WindowIter,
    WindowStore, WindowStoreHandle,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no store named {0} is connected to this processor's sub-topology")]
    Unknown(String),
    #[error("store {0} is not of the kind (key-value, window or session) this processor uses")]
    WrongKind(String),
    #[error("store {store}: {message}")]
    Io { store: String, message: String },
    #[error("store {store}: corrupt entry: {message}")]
    Corrupt { store: String, message: String },
}

/// What every store is to its task: named, flushed before a commit, closed at shutdown,
/// and rebuilt from its changelog by `restore` (which writes no changelog of its own).
pub trait StateStore: Send {
    fn name(&self) -> &str;
    /// True when the store keeps its data on disk across restarts (the runtime then restores
    /// only the changelog tail past its checkpoint).
    fn persistent(&self) -> bool;
    fn flush(&mut self) -> Result<(), StoreError>;
    fn close(&mut self) -> Result<(), StoreError> {
        self.flush()
    }
    /// Applies one changelog record: a value is written, `None` (a tombstone) deletes the key.
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError>;
    fn as_key_value(&mut self) -> Option<&mut dyn KeyValueStore> {
        None
    }
    fn as_key_value_ref(&self) -> Option<&dyn KeyValueStore> {
        None
    }
    fn as_window(&mut self) -> Option<&mut dyn WindowStore> {
        None
    }
    fn as_window_ref(&self) -> Option<&dyn WindowStore> {
        None
    }
    fn as_session(&mut self) -> Option<&mut dyn SessionStore> {
        None
    }
    fn as_session_ref(&self) -> Option<&dyn SessionStore> {
        None
    }
    /// For a persistent store: the offset of the last changelog record its on-disk data is
    /// known to include, so a restore can start after it (`None`: restore from the start).
    fn checkpointed_offset(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
    /// For a persistent store: flushes, then records durably that its data includes the
    /// changelog up to `offset`. In-memory stores ignore it.
    fn write_checkpoint(&mut self, _offset: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Entries yielded by a key-value range, in ascending byte order of their keys.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Bytes, Bytes), StoreError>> + 'a>;

/// A key-value store over bytes, keys ordered by unsigned byte comparison (as Kafka's stores
/// are), so range scans mean the same in memory and on disk.
pub trait KeyValueStore: StateStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError>;
    /// Removes the key, returning the value it had.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KvIter<'_>, StoreError>;
    fn all(&self) -> Result<KvIter<'_>, StoreError> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }
    fn approximate_num_entries(&self) -> Result<u64, StoreError>;
}

/// The kind of store a supplier builds, for `describe` and for the runtime's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    KeyValue,
    Window,
    Session,
}

/// What a store is built for: its task, and that task's directory under `state.dir`
/// (`None` in the test driver, where persistent stores may use a temporary directory).
#[derive(Debug, Clone)]
pub struct StoreContext {
    pub application_id: String,
    pub task: TaskId,
    pub state_dir: Option<PathBuf>,
}

/// Builds one store instance per task. The topology keeps the supplier; each task calls `build`.
pub trait StoreSupplier: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn kind(&self) -> StoreKind {
        StoreKind::KeyValue
    }
    fn build(&self, ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError>;
}

/// A store as the topology declares it: how to build it, whether writes go to a changelog,
/// whether values carry their timestamp (aggregates and tables do, as Kafka's timestamped
/// stores: 8-byte big-endian timestamp before the value bytes), and whether a record cache
/// holds writes back until a commit (key-value and window stores; see
/// `Processor::cache_flushed`).
#[derive(Clone)]
pub struct StoreSpec {
    pub supplier: Arc<dyn StoreSupplier>,
    pub logged: bool,
    pub timestamped: bool,
    pub cached: bool,
}

impl StoreSpec {
    pub fn name(&self) -> &str {
        self.supplier.name()
    }
}

/// The changelog topic of a store: `<application.id>-<store>-changelog`.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

pub(crate) fn with_timestamp(value: &[u8], timestamp: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + value.len());
    b.put_i64(timestamp);
    b.put_slice(value);
    b.freeze()
}

pub(crate) fn split_timestamp(store: &str, raw: Bytes) -> Result<(Bytes, i64), StoreError> {
    let ts = split_timestamp_ref(store, &raw)?.1;
    Ok((raw.slice(8..), ts))
}

/// `split_timestamp` for borrowed bytes.
pub(crate) fn split_timestamp_ref<'a>(
    store: &str,
    raw: &'a [u8],
) -> Result<(&'a [u8], i64), StoreError> {
    match raw.split_first_chunk::<8>() {
        Some((ts, value)) => Ok((value, i64::from_be_bytes(*ts))),
        None => Err(StoreError::Corrupt {
            store: store.to_string(),
            message: format!("timestamped value of {} bytes", raw.len()),
        }),
    }
}

pub(crate) struct StoreEntry {
    pub store: Box<dyn StateStore>,
    pub changelog: Option<String>,
    pub timestamped: bool,
    /// Writes held back until the next flush, for a cached key-value store.
    pub cache: Option<RecordCache>,
}

impl StoreEntry {
    /// `cached`: whether the store's writes may wait in a record cache (only key-value and
    /// window stores have one).
    pub fn new(
        store: Box<dyn StateStore>,
        changelog: Option<String>,
        timestamped: bool,
        cached: bool,
    ) -> Self {
        let cached =
            cached && (store.as_key_value_ref().is_some() || store.as_window_ref().is_some());
        StoreEntry {
            store,
            changelog,
            timestamped,
            cache: cached.then(RecordCache::default),
        }
    }
}

/// A write a cached store held back and has now passed to the store and its changelog, in the
/// store's own bytes (a timestamped store's with their timestamp prefix); `old` is what the
/// store had before it. A processor connected to the store gets these in `cache_flushed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFlush {
    pub key: Bytes,
    pub new: Option<Bytes>,
    pub old: Option<Bytes>,
    /// The timestamp of the write (for timestamped stores, the one in its value).
    pub timestamp: i64,
}

/// One task's stores by name. Everything written through a handle is also queued as a
/// changelog record for the runtime to produce.
#[derive(Default)]
pub struct TaskStores {
    entries: Vec<StoreEntry>,
    by_name: HashMap<String, usize>,
    partition: i32,
}

impl TaskStores {
    /// The index of the store called `name` in `entries`.
    fn entry_index(&self, name: &str) -> Result<usize, StoreError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| StoreError::Unknown(name.to_string()))
    }

    /// What a handle on the store called `name` is made of: the store, whether it is
    /// timestamped, and a logger to its changelog stamped with `timestamp`.
    fn handle_parts<'a>(
        &'a mut self,
        name: &str,
        timestamp: i64,
        out: &'a mut Vec<OutputRecord>,
    ) -> Result<HandleParts<'a>, StoreError> {
        let partition = self.partition;
        let i = self.entry_index(name)?;
        let entry = &mut self.entries[i];
        let logger = ChangeLogger {
            topic: entry.changelog.as_deref(),
            partition,
            timestamp,
            out,
        };
        Ok(HandleParts {
            store: &mut *entry.store,
            timestamped: entry.timestamped,
            cache: entry.cache.as_mut(),
            logger,
        })
    }
    pub(crate) fn new(partition: i32) -> TaskStores {
        TaskStores {
            partition,
            ..Default::default()
        }
    }

    pub(crate) fn add(&mut self, entry: StoreEntry) {
        self.by_name
            .insert(entry.store.name().to_string(), self.entries.len());
        self.entries.push(entry);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.store.name())
    }

    /// The changelog topic of a store, when it is logged.
    pub fn changelog_of(&self, store: &str) -> Option<&str> {
        let i = self.entry_index(store).ok()?;
        self.entries[i].changelog.as_deref()
    }

    /// The store itself, for reads outside processing (tests, interactive queries).
    pub fn store(&self, name: &str) -> Option<&dyn StateStore> {
        self.by_name.get(name).map(|&i| &*self.entries[i].store)
    }

    pub(crate) fn is_timestamped(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| self.entries[i].timestamped)
    }

    /// Replays changelog records into a store (the record timestamp is what a timestamped
    /// store keeps beside the value).
    pub fn restore(
        &mut self,
        store: &str,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>, i64)>,
    ) -> Result<u64, StoreError> {
        let i = self.entry_index(store)?;
        let entry = &mut self.entries[i];
        let mut n = 0;
        for (key, value, ts) in records {
            let value = match value {
                Some(v) if entry.timestamped => Some(with_timestamp(&v, ts)),
                v => v,
            };
            entry.store.restore(key, value)?;
            n += 1;
        }
        Ok(n)
    }

    /// A persistent store's checkpoint (see `StateStore::checkpointed_offset`).
    pub fn checkpointed_offset(&self, store: &str) -> Result<Option<i64>, StoreError> {
        let i = self.entry_index(store)?;
        self.entries[i].store.checkpointed_offset()
    }

    /// Records in a persistent store that it includes its changelog up to `offset` (call it
    /// once the task's offsets are committed; see `StateStore::write_checkpoint`).
    pub fn write_checkpoint(&mut self, store: &str, offset: i64) -> Result<(), StoreError> {
        let i = self.entry_index(store)?;
        self.entries[i].store.write_checkpoint(offset)
    }

    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.entries.iter_mut().try_for_each(|e| e.store.flush())
    }

    pub fn close(&mut self) -> Result<(), StoreError> {
        self.entries.iter_mut().try_for_each(|e| e.store.close())
    }

    /// Bytes held in the record caches of these stores.
    pub(crate) fn cache_size(&self) -> usize {
        self.entries
            .iter()
            .filter_map(|e| e.cache.as_ref())
            .map(RecordCache::size)
            .sum()
    }

    /// Indexes of the stores whose caches hold writes.
    pub(crate) fn held_writes(&self) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| {
                self.entries[i]
                    .cache
                    .as_ref()
                    .is_some_and(|c| !c.is_empty())
            })
            .collect()
    }

    pub(crate) fn name_at(&self, i: usize) -> &str {
        self.entries[i].store.name()
    }

    /// Passes a store's held writes to the store and its changelog (queued on `out`), and
    /// returns them with the values they replaced, for the processors that forward them.
    pub(crate) fn flush_cache(
        &mut self,
        i: usize,
        out: &mut Vec<OutputRecord>,
    ) -> Result<Vec<CacheFlush>, StoreError> {
        let partition = self.partition;
        let StoreEntry {
            store,
            changelog,
            timestamped,
            cache,
        } = &mut self.entries[i];
        let Some(held) = cache.as_mut().map(RecordCache::drain) else {
            return Ok(Vec::new());
        };
        let name = store.name().to_string();
        let mut logger = ChangeLogger {
            topic: changelog.as_deref(),
            partition,
            timestamp: -1,
            out,
        };
        // What the changelog gets: the value without a timestamped store's prefix.
        let logged = |value: &Option<Bytes>| -> Result<Option<Bytes>, StoreError> {
            match value {
                Some(v) if *timestamped => Ok(Some(split_timestamp(&name, v.clone())?.0)),
                v => Ok(v.clone()),
            }
        };
        let mut flushed = Vec::with_capacity(held.len());
        if let Some(kv) = store.as_key_value() {
            for (key, write) in held {
                let old = kv.get(&key)?;
                match &write.value {
                    None if old.is_none() => continue, // put and deleted since the last flush
                    None => {
                        kv.delete(&key)?;
                    }
                    Some(v) => kv.put(key.clone(), v.clone())?,
                }
                logger.log(key.clone(), logged(&write.value)?, write.timestamp);
                flushed.push(CacheFlush {
                    key,
                    new: write.value,
                    old,
                    timestamp: write.timestamp,
                });
            }
        } else if let Some(windows) = store.as_window() {
            // Window writes are held under their changelog keys (key, start).
            for (ck, write) in held {
                let (key, start) = window::split_window_changelog_key(&name, &ck)?;
                let old = windows.fetch(key, start)?;
                if old.is_none() && write.value.is_none() {
                    continue;
                }
                if !windows.put(Bytes::copy_from_slice(key), start, write.value.clone())? {
                    continue; // out of retention by now
                }
                logger.log(ck.clone(), logged(&write.value)?, write.timestamp);
                flushed.push(CacheFlush {
                    key: ck,
                    new: write.value,
                    old,
                    timestamp: write.timestamp,
                });
            }
        } else {
            return Err(StoreError::WrongKind(name));
        }
        Ok(flushed)
    }

    pub(crate) fn kv_handle<'a>(
        &'a mut self,
        name: &str,
        timestamp: i64,
        out: &'a mut Vec<OutputRecord>,
    ) -> Result<KvStoreHandle<'a>, StoreError> {
        let parts = self.handle_parts(name, timestamp, out)?;
        Ok(KvStoreHandle {
            store: (parts.store.as_key_value())
                .ok_or_else(|| StoreError::WrongKind(name.to_string()))?,
            timestamped: parts.timestamped,
            cache: parts.cache,
            logger: parts.logger,
        })
    }
}

/// The pieces of a store handle (see `TaskStores::handle_parts`).
pub(crate) struct HandleParts<'a> {
    pub store: &'a mut dyn StateStore,
    pub timestamped: bool,
    /// The record cache, for a cached key-value store.
    pub cache: Option<&'a mut RecordCache>,
    pub logger: ChangeLogger<'a>,
}

/// Queues a store's writes as changelog records (key, value or tombstone) on its task's
/// partition, stamped with the timestamp of the record being processed.
pub struct ChangeLogger<'a> {
    topic: Option<&'a str>,
    partition: i32,
    timestamp: i64,
    out: &'a mut Vec<OutputRecord>,
}

impl ChangeLogger<'_> {
    pub fn log(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) {
        if let Some(topic) = self.topic {
            self.out.push(OutputRecord {
                topic: topic.to_string(),
                partition: Some(self.partition),
                kind: OutputKind::Changelog,
                timestamp,
                key: Some(key),
                value,
                headers: Vec::new(),
            });
        }
    }
}

/// A processor's access to a key-value store during one `process` or `punctuate` call:
/// reads go to the store, writes go to the store and to its changelog; for a cached store
/// writes wait in its cache (which reads see first) until the task flushes it.
pub struct KvStoreHandle<'a> {
    store: &'a mut dyn KeyValueStore,
    timestamped: bool,
    cache: Option<&'a mut RecordCache>,
    logger: ChangeLogger<'a>,
}

impl KvStoreHandle<'_> {
    pub fn name(&self) -> &str {
        self.store.name()
    }

    pub fn is_timestamped(&self) -> bool {
        self.timestamped
    }

    /// True when writes are held in a record cache: what they mean downstream is then
    /// forwarded from `Processor::cache_flushed`, not at the write.
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// The stored bytes (for a timestamped store, timestamp included: see `get_timestamped`).
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        if let Some(held) = self.cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(held.cloned());
        }
        self.store.get(key)
    }

    /// Reads an entry where it is, without copying it out: `read` gets the stored bytes.
    pub fn read<R>(
        &self,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StoreError> {
        if let Some(held) = self.cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(held.map(|b| read(b)));
        }
        Ok(self.store.get(key)?.map(|b| read(&b)))
    }

    /// `read` of what the store held at the last cache flush: the cache's writes unseen.
    pub fn read_flushed<R>(
        &self,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StoreError> {
        Ok(self.store.get(key)?.map(|b| read(&b)))
    }

    /// One write: `stored` is what the store keeps (`None` deletes), `logged` the changelog
    /// record's value, `timestamp` its timestamp.
    fn write(
        &mut self,
        key: Bytes,
        stored: Option<Bytes>,
        logged: Option<Bytes>,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        if let Some(cache) = self.cache.as_mut() {
            cache.put(
                key,
                CachedWrite {
                    value: stored,
                    timestamp,
                },
            );
            return Ok(());
        }
        match stored {
            Some(v) => self.store.put(key.clone(), v)?,
            None => {
                self.store.delete(&key)?;
            }
        }
        self.logger.log(key, logged, timestamp);
        Ok(())
    }

    /// Writes the stored bytes as they are. In a timestamped store they must start with the
    /// 8-byte timestamp (see `put_timestamped`): the changelog gets the value without it.
    pub fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        if self.timestamped {
            let (plain, ts) = split_timestamp(self.store.name(), value.clone())?;
            return self.write(key, Some(value), Some(plain), ts);
        }
        let ts = self.logger.timestamp;
        self.write(key, Some(value.clone()), Some(value), ts)
    }

    /// Removes the key, returning the value it had.
    pub fn delete(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let old = self.get(key)?;
        let ts = self.logger.timestamp;
        self.write(Bytes::copy_from_slice(key), None, None, ts)?;
        Ok(old)
    }

    pub fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KvIter<'_>, StoreError> {
        let entries = self.store.range(from, to)?;
        Ok(match self.cache.as_deref() {
            Some(cache) => cache.overlay(entries, from, to),
            None => entries,
        })
    }

    pub fn all(&self) -> Result<KvIter<'_>, StoreError> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Value bytes and timestamp of a timestamped store's entry.
    pub fn get_timestamped(&self, key: &[u8]) -> Result<Option<(Bytes, i64)>, StoreError> {
        match self.get(key)? {
            Some(raw) => split_timestamp(self.store.name(), raw).map(Some),
            None => Ok(None),
        }
    }

    /// Writes value and timestamp; the changelog record carries the plain value with the
    /// timestamp as its record timestamp, so the topic stays readable by ordinary consumers.
    pub fn put_timestamped(
        &mut self,
        key: Bytes,
        value: Bytes,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        let stored = with_timestamp(&value, timestamp);
        self.write(key, Some(stored), Some(value), timestamp)
    }
}
