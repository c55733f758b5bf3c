//! Window and session stores: the `WindowStore`/`SessionStore` traits over bytes, in-memory
//! implementations that purge what falls out of retention, their suppliers, and logged handles.
//!
//! Retention follows the store's own observed time (the largest window start, or session end,
//! written so far): entries older than that minus the retention are purged, and writes to them
//! are refused, as Kafka's window and session stores do. Changelog keys are laid out as Kafka's:
//! key + 8-byte window start + 4-byte sequence number (always 0) for windows, and key + 8-byte
//! end + 8-byte start for sessions.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::cache::{CachedWrite, RecordCache};
use super::{
    split_timestamp, with_timestamp, ChangeLogger, HandleParts, StateStore, StoreContext,
    StoreError, StoreKind, StoreSupplier, TaskStores,
};
use crate::record::OutputRecord;
use crate::window::{session_key, split_session_key, Window};

/// Windows yielded by a window store: key, window start, stored value.
pub type WindowIter<'a> = Box<dyn Iterator<Item = Result<(Bytes, i64, Bytes), StoreError>> + 'a>;

/// Sessions yielded by a session store: key, session window, stored value.
pub type SessionIter<'a> =
    Box<dyn Iterator<Item = Result<(Bytes, Window, Bytes), StoreError>> + 'a>;

/// Values per key and window start, kept for `retention_ms` of observed time.
pub trait WindowStore: StateStore {
    fn retention_ms(&self) -> i64;
    /// The largest window start written so far (-1 when none), which retention counts from.
    fn observed_time(&self) -> i64;
    /// Writes a window (`None` deletes it). Returns false, writing nothing, when the window is
    /// already out of retention.
    fn put(&mut self, key: Bytes, start: i64, value: Option<Bytes>) -> Result<bool, StoreError>;
    fn fetch(&self, key: &[u8], start: i64) -> Result<Option<Bytes>, StoreError>;
    /// The windows of `key` starting in `[from, to]`, oldest first.
    fn fetch_range(&self, key: &[u8], from: i64, to: i64) -> Result<WindowIter<'_>, StoreError>;
    /// Every window, by start then key.
    fn all(&self) -> Result<WindowIter<'_>, StoreError>;
}

/// Session aggregates per key and session window, kept for `retention_ms` of observed time.
pub trait SessionStore: StateStore {
    fn retention_ms(&self) -> i64;
    /// The largest session end written so far (-1 when none).
    fn observed_time(&self) -> i64;
    /// Writes a session (`None` removes it). Returns false, writing nothing, when the session
    /// is already out of retention.
    fn put(&mut self, key: Bytes, window: Window, value: Option<Bytes>)
        -> Result<bool, StoreError>;
    fn fetch(&self, key: &[u8], window: Window) -> Result<Option<Bytes>, StoreError>;
    /// The sessions of `key` ending at or after `earliest_end` and starting at or before
    /// `latest_start` (those a record at t merges with, for `[t - gap, t + gap]`).
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<SessionIter<'_>, StoreError>;
    /// Every session, by end, key, then start.
    fn all(&self) -> Result<SessionIter<'_>, StoreError>;
}

/// The changelog key of a window: key, start, and a sequence number of 0.
pub fn window_changelog_key(key: &[u8], start: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 12);
    b.put_slice(key);
    b.put_i64(start);
    b.put_i32(0);
    b.freeze()
}

pub(crate) fn split_window_changelog_key<'k>(
    store: &str,
    raw: &'k [u8],
) -> Result<(&'k [u8], i64), StoreError> {
    let split = raw
        .len()
        .checked_sub(12)
        .ok_or_else(|| StoreError::Corrupt {
            store: store.to_string(),
            message: format!("window changelog key of {} bytes", raw.len()),
        })?;
    let start = i64::from_be_bytes(raw[split..split + 8].try_into().expect("8 bytes"));
    Ok((&raw[..split], start))
}

pub(super) fn split_session_changelog_key<'k>(
    store: &str,
    raw: &'k [u8],
) -> Result<(&'k [u8], Window), StoreError> {
    split_session_key(raw).ok_or_else(|| StoreError::Corrupt {
        store: store.to_string(),
        message: format!("session changelog key of {} bytes", raw.len()),
    })
}

/// A store's retention, counted from its observed time: the largest time (window start,
/// session end) written so far, -1 when none.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retention {
    pub(super) ms: i64,
    pub(super) observed: i64,
}

impl Retention {
    /// Takes in the time of a write; true when it moved the observed time on.
    pub(super) fn observe(&mut self, t: i64) -> bool {
        let moved = t > self.observed;
        if moved {
            self.observed = t;
        }
        moved
    }

    /// Times at or before this are out of retention.
    pub(super) fn expired_through(&self) -> i64 {
        self.observed.saturating_sub(self.ms)
    }
}

/// Drops the entries of an in-memory store keyed by time that are at or before `floor`.
fn purge_through<V>(by_time: &mut BTreeMap<i64, V>, floor: i64) {
    while by_time.first_key_value().is_some_and(|(&t, _)| t <= floor) {
        by_time.pop_first();
    }
}

/// Windows in memory, grouped by start so purging drops whole starts at once.
#[derive(Debug)]
pub struct InMemoryWindowStore {
    name: String,
    retention: Retention,
    by_start: BTreeMap<i64, BTreeMap<Bytes, Bytes>>,
}

impl InMemoryWindowStore {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        InMemoryWindowStore {
            name: name.into(),
            retention: Retention {
                ms: retention_ms,
                observed: -1,
            },
            by_start: BTreeMap::new(),
        }
    }

    fn write(&mut self, key: Bytes, start: i64, value: Option<Bytes>) -> bool {
        self.retention.observe(start);
        let floor = self.retention.expired_through();
        purge_through(&mut self.by_start, floor);
        if start <= floor {
            return false;
        }
        match value {
            Some(v) => {
                self.by_start.entry(start).or_default().insert(key, v);
            }
            None => {
                if let Some(m) = self.by_start.get_mut(&start) {
                    m.remove(&key);
                    if m.is_empty() {
                        self.by_start.remove(&start);
                    }
                }
            }
        }
        true
    }
}

impl StateStore for InMemoryWindowStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        false
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        let (k, start) = split_window_changelog_key(&self.name, &key)?;
        let k = key.slice_ref(k);
        self.write(k, start, value);
        Ok(())
    }
    fn as_window(&mut self) -> Option<&mut dyn WindowStore> {
        Some(self)
    }
    fn as_window_ref(&self) -> Option<&dyn WindowStore> {
        Some(self)
    }
}

impl WindowStore for InMemoryWindowStore {
    fn retention_ms(&self) -> i64 {
        self.retention.ms
    }
    fn observed_time(&self) -> i64 {
        self.retention.observed
    }
    fn put(&mut self, key: Bytes, start: i64, value: Option<Bytes>) -> Result<bool, StoreError> {
        Ok(self.write(key, start, value))
    }
    fn fetch(&self, key: &[u8], start: i64) -> Result<Option<Bytes>, StoreError> {
        Ok(self.by_start.get(&start).and_then(|m| m.get(key)).cloned())
    }
    fn fetch_range(&self, key: &[u8], from: i64, to: i64) -> Result<WindowIter<'_>, StoreError> {
        if from > to {
            return Ok(Box::new(std::iter::empty()));
        }
        let key = Bytes::copy_from_slice(key);
        Ok(Box::new(self.by_start.range(from..=to).filter_map(
            move |(&s, m)| m.get(&key).map(|v| Ok((key.clone(), s, v.clone()))),
        )))
    }
    fn all(&self) -> Result<WindowIter<'_>, StoreError> {
        Ok(Box::new(self.by_start.iter().flat_map(|(&s, m)| {
            m.iter().map(move |(k, v)| Ok((k.clone(), s, v.clone())))
        })))
    }
}

type Sessions = BTreeMap<i64, BTreeMap<Bytes, BTreeMap<i64, Bytes>>>;

/// Sessions in memory by end, then key, then start.
#[derive(Debug)]
pub struct InMemorySessionStore {
    name: String,
    retention: Retention,
    by_end: Sessions,
}

impl InMemorySessionStore {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        InMemorySessionStore {
            name: name.into(),
            retention: Retention {
                ms: retention_ms,
                observed: -1,
            },
            by_end: BTreeMap::new(),
        }
    }

    fn write(&mut self, key: Bytes, w: Window, value: Option<Bytes>) -> bool {
        self.retention.observe(w.end);
        let floor = self.retention.expired_through();
        purge_through(&mut self.by_end, floor);
        if w.end <= floor {
            return false;
        }
        match value {
            Some(v) => {
                self.by_end
                    .entry(w.end)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .insert(w.start, v);
            }
            None => {
                if let Some(keys) = self.by_end.get_mut(&w.end) {
                    if let Some(starts) = keys.get_mut(&key) {
                        starts.remove(&w.start);
                        if starts.is_empty() {
                            keys.remove(&key);
                        }
                    }
                    if keys.is_empty() {
                        self.by_end.remove(&w.end);
                    }
                }
            }
        }
        true
    }
}

impl StateStore for InMemorySessionStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        false
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        let (k, w) = split_session_changelog_key(&self.name, &key)?;
        let k = key.slice_ref(k);
        self.write(k, w, value);
        Ok(())
    }
    fn as_session(&mut self) -> Option<&mut dyn SessionStore> {
        Some(self)
    }
    fn as_session_ref(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }
}

impl SessionStore for InMemorySessionStore {
    fn retention_ms(&self) -> i64 {
        self.retention.ms
    }
    fn observed_time(&self) -> i64 {
        self.retention.observed
    }
    fn put(&mut self, key: Bytes, w: Window, value: Option<Bytes>) -> Result<bool, StoreError> {
        Ok(self.write(key, w, value))
    }
    fn fetch(&self, key: &[u8], w: Window) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .by_end
            .get(&w.end)
            .and_then(|m| m.get(key))
            .and_then(|m| m.get(&w.start))
            .cloned())
    }
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<SessionIter<'_>, StoreError> {
        let key = Bytes::copy_from_slice(key);
        Ok(Box::new(self.by_end.range(earliest_end..).flat_map(
            move |(&end, m)| {
                let key = key.clone();
                m.get(&key)
                    .into_iter()
                    .flat_map(move |starts| starts.range(..=latest_start))
                    .map(move |(&start, v)| Ok((key.clone(), Window::new(start, end), v.clone())))
            },
        )))
    }
    fn all(&self) -> Result<SessionIter<'_>, StoreError> {
        Ok(Box::new(self.by_end.iter().flat_map(|(&end, m)| {
            m.iter().flat_map(move |(k, starts)| {
                starts
                    .iter()
                    .map(move |(&start, v)| Ok((k.clone(), Window::new(start, end), v.clone())))
            })
        })))
    }
}

/// Supplies an in-memory window store per task.
#[derive(Debug, Clone)]
pub struct InMemoryWindowStoreSupplier {
    name: String,
    retention_ms: i64,
}

impl InMemoryWindowStoreSupplier {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        InMemoryWindowStoreSupplier {
            name: name.into(),
            retention_ms,
        }
    }
}

impl StoreSupplier for InMemoryWindowStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Window
    }
    fn build(&self, _ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(InMemoryWindowStore::new(
            self.name.clone(),
            self.retention_ms,
        )))
    }
}

/// Supplies an in-memory session store per task.
#[derive(Debug, Clone)]
pub struct InMemorySessionStoreSupplier {
    name: String,
    retention_ms: i64,
}

impl InMemorySessionStoreSupplier {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        InMemorySessionStoreSupplier {
            name: name.into(),
            retention_ms,
        }
    }
}

impl StoreSupplier for InMemorySessionStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Session
    }
    fn build(&self, _ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(InMemorySessionStore::new(
            self.name.clone(),
            self.retention_ms,
        )))
    }
}

/// A processor's access to a window store during one call: writes are logged.
pub struct WindowStoreHandle<'a> {
    store: &'a mut dyn WindowStore,
    timestamped: bool,
    /// Held-back writes, keyed by their changelog keys, for a cached store.
    cache: Option<&'a mut RecordCache>,
    logger: ChangeLogger<'a>,
}

impl WindowStoreHandle<'_> {
    pub fn name(&self) -> &str {
        self.store.name()
    }

    pub fn is_timestamped(&self) -> bool {
        self.timestamped
    }

    /// True when writes are held in a record cache (see `KvStoreHandle::is_cached`).
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// The store as of the last cache flush, for reads the handle has no method for.
    pub fn store(&self) -> &dyn WindowStore {
        &*self.store
    }

    pub fn fetch(&self, key: &[u8], start: i64) -> Result<Option<Bytes>, StoreError> {
        if let Some(cache) = self.cache.as_deref() {
            if let Some(held) = cache.get(&window_changelog_key(key, start)) {
                return Ok(held.cloned());
            }
        }
        self.store.fetch(key, start)
    }

    /// Value bytes and timestamp of a timestamped store's window.
    pub fn fetch_timestamped(
        &self,
        key: &[u8],
        start: i64,
    ) -> Result<Option<(Bytes, i64)>, StoreError> {
        match self.fetch(key, start)? {
            Some(raw) => split_timestamp(self.store.name(), raw).map(Some),
            None => Ok(None),
        }
    }

    /// Writes or deletes a window with the given timestamp (kept beside the value in a
    /// timestamped store, and the changelog record's timestamp). A window out of retention is
    /// neither written nor logged; the result says whether it was (a cached write says true:
    /// retention is applied when the cache is flushed).
    pub fn put(
        &mut self,
        key: Bytes,
        start: i64,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<bool, StoreError> {
        let stored = match &value {
            Some(v) if self.timestamped => Some(with_timestamp(v, timestamp)),
            v => v.clone(),
        };
        if let Some(cache) = self.cache.as_deref_mut() {
            let write = CachedWrite {
                value: stored,
                timestamp,
            };
            cache.put(window_changelog_key(&key, start), write);
            return Ok(true);
        }
        let written = self.store.put(key.clone(), start, stored)?;
        if written {
            self.logger
                .log(window_changelog_key(&key, start), value, timestamp);
        }
        Ok(written)
    }
}

/// A processor's access to a session store during one call: writes are logged.
pub struct SessionStoreHandle<'a> {
    store: &'a mut dyn SessionStore,
    logger: ChangeLogger<'a>,
}

impl SessionStoreHandle<'_> {
    pub fn name(&self) -> &str {
        self.store.name()
    }

    pub fn store(&self) -> &dyn SessionStore {
        &*self.store
    }

    /// Sessions of `key` a record would merge with: see `SessionStore::find_sessions`.
    pub fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, Bytes)>, StoreError> {
        self.store
            .find_sessions(key, earliest_end, latest_start)?
            .map(|r| r.map(|(_, w, v)| (w, v)))
            .collect()
    }

    /// Writes or removes a session; the changelog record has the given timestamp.
    pub fn put(
        &mut self,
        key: Bytes,
        window: Window,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<bool, StoreError> {
        let written = self.store.put(key.clone(), window, value.clone())?;
        if written {
            self.logger.log(session_key(&key, window), value, timestamp);
        }
        Ok(written)
    }
}

impl TaskStores {
    pub(crate) fn window_handle<'a>(
        &'a mut self,
        name: &str,
        timestamp: i64,
        out: &'a mut Vec<OutputRecord>,
    ) -> Result<WindowStoreHandle<'a>, StoreError> {
        let HandleParts {
            store,
            timestamped,
            cache,
            logger,
        } = self.handle_parts(name, timestamp, out)?;
        let store = store
            .as_window()
            .ok_or_else(|| StoreError::WrongKind(name.to_string()))?;
        Ok(WindowStoreHandle {
            store,
            timestamped,
            cache,
            logger,
        })
    }

    pub(crate) fn session_handle<'a>(
        &'a mut self,
        name: &str,
        timestamp: i64,
        out: &'a mut Vec<OutputRecord>,
    ) -> Result<SessionStoreHandle<'a>, StoreError> {
        let HandleParts { store, logger, .. } = self.handle_parts(name, timestamp, out)?;
        let store = store
            .as_session()
            .ok_or_else(|| StoreError::WrongKind(name.to_string()))?;
        Ok(SessionStoreHandle { store, logger })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn window_store_purges_and_refuses_what_falls_out_of_retention() {
        let mut s = InMemoryWindowStore::new("w", 100);
        assert!(s.put(b("a"), 0, Some(b("0"))).unwrap());
        assert!(s.put(b("a"), 50, Some(b("50"))).unwrap());
        assert!(s.put(b("b"), 50, Some(b("b50"))).unwrap());
        let got: Vec<i64> = s
            .fetch_range(b"a", 0, 100)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(got, vec![0, 50]);
        // Observed time 100: start 0 is exactly retention old, so it goes.
        assert!(s.put(b("a"), 100, Some(b("100"))).unwrap());
        assert_eq!(s.fetch(b"a", 0).unwrap(), None);
        assert_eq!(s.fetch(b"a", 50).unwrap(), Some(b("50")));
        assert!(!s.put(b("a"), 0, Some(b("late"))).unwrap());
        assert_eq!(s.all().unwrap().count(), 3);
        assert!(s.put(b("b"), 50, None).unwrap());
        assert_eq!(s.fetch(b"b", 50).unwrap(), None);
    }

    #[test]
    fn window_store_restores_from_changelog_keys() {
        let mut s = InMemoryWindowStore::new("w", 1000);
        let k = window_changelog_key(b"key", 60);
        assert_eq!(k.len(), 3 + 12);
        s.restore(k.clone(), Some(b("v"))).unwrap();
        assert_eq!(s.fetch(b"key", 60).unwrap(), Some(b("v")));
        s.restore(k, None).unwrap();
        assert_eq!(s.fetch(b"key", 60).unwrap(), None);
        assert!(s.restore(b("short"), None).is_err());
    }

    #[test]
    fn session_store_finds_overlapping_sessions() {
        let mut s = InMemorySessionStore::new("s", 1000);
        s.put(b("a"), Window::new(0, 10), Some(b("x"))).unwrap();
        s.put(b("a"), Window::new(30, 40), Some(b("y"))).unwrap();
        s.put(b("b"), Window::new(0, 10), Some(b("z"))).unwrap();
        // A record at 20 with gap 10 reaches sessions ending >= 10 and starting <= 30.
        let found: Vec<Window> = s
            .find_sessions(b"a", 10, 30)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(found, vec![Window::new(0, 10), Window::new(30, 40)]);
        assert_eq!(s.find_sessions(b"a", 11, 29).unwrap().count(), 0);
        s.put(b("a"), Window::new(0, 10), None).unwrap();
        assert_eq!(s.fetch(b"a", Window::new(0, 10)).unwrap(), None);
        s.restore(session_key(b"c", Window::new(5, 6)), Some(b("r")))
            .unwrap();
        assert_eq!(s.fetch(b"c", Window::new(5, 6)).unwrap(), Some(b("r")));
    }
}
