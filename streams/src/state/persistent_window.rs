//! Persistent window and session stores: one redb file per store and task, with the same
//! transaction, checkpoint and retention rules as the persistent key-value and in-memory stores.
//!
//! Writes go into one open redb transaction made durable by `flush`/`write_checkpoint`; a file
//! opened without a checkpoint is emptied (restored from the whole changelog), as in
//! `persistent.rs`. The store's observed time is kept beside the checkpoint so retention
//! continues where it stopped after a reopen. Table keys are laid out so redb's byte order is
//! the in-memory stores' order: windows by start then key, sessions by end, key, then start.

use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};
use redb::ReadableTable;

use super::persistent::{io, store_path, RedbFile, DATA};
use super::window::{split_session_changelog_key, split_window_changelog_key, Retention};
use super::{
    SessionIter, SessionStore, StateStore, StoreContext, StoreError, StoreKind, StoreSupplier,
    WindowIter, WindowStore,
};
use crate::window::Window;

const OBSERVED: &str = "observed_time";

/// A time as 8 bytes whose unsigned order is the signed order of the times.
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn read_time(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64
}

/// Window table key: start, then the key bytes (last, so no escaping is needed).
fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + key.len());
    b.extend_from_slice(&time_bytes(start));
    b.extend_from_slice(key);
    b
}

/// Session table key: end, the key bytes escaped (0x00 as 0x00 0xFF, ended by 0x00 0x00) so a
/// key that is a prefix of another still sorts first whatever follows, then start.
fn session_table_key(key: &[u8], w: Window) -> Vec<u8> {
    let mut b = Vec::with_capacity(key.len() + 18);
    b.extend_from_slice(&time_bytes(w.end));
    for &c in key {
        b.push(c);
        if c == 0 {
            b.push(0xff);
        }
    }
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&time_bytes(w.start));
    b
}

fn split_session_table_key(store: &str, raw: &[u8]) -> Result<(Bytes, Window), StoreError> {
    let corrupt = || StoreError::Corrupt {
        store: store.to_string(),
        message: format!("session table key of {} bytes", raw.len()),
    };
    if raw.len() < 18 {
        return Err(corrupt());
    }
    let end = read_time(raw);
    let body = &raw[8..raw.len() - 8];
    let mut key = BytesMut::with_capacity(body.len());
    let mut i = 0;
    loop {
        match (body.get(i), body.get(i + 1)) {
            (Some(0), Some(0)) if i + 2 == body.len() => break,
            (Some(0), Some(0xff)) => {
                key.put_u8(0);
                i += 2;
            }
            (Some(&c), _) if c != 0 => {
                key.put_u8(c);
                i += 1;
            }
            _ => return Err(corrupt()),
        }
    }
    let start = read_time(&raw[raw.len() - 8..]);
    Ok((key.freeze(), Window::new(start, end)))
}

/// Reads and writes of a store file whose table keys lead with a time (the window stores').
impl RedbFile {
    /// The retention of a store kept in this file, observed time included.
    fn retention(&self, ms: i64) -> Result<Retention, StoreError> {
        let observed = self.meta(OBSERVED)?.unwrap_or(-1);
        Ok(Retention { ms, observed })
    }

    /// Writes (or with `None` deletes) the entry at `table_key`, whose leading time is `time`,
    /// after purging what falls out of `retention`; a write out of retention is refused (false).
    fn write_retained(
        &self,
        retention: &mut Retention,
        time: i64,
        table_key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        if retention.observe(time) {
            self.set_meta(OBSERVED, time)?;
        }
        let floor = retention.expired_through();
        self.purge_through(floor)?;
        if time <= floor {
            return Ok(false);
        }
        match value {
            Some(v) => self.insert(table_key, v)?,
            None => {
                self.remove(table_key)?;
            }
        }
        Ok(true)
    }

    /// Removes entries from the front while their leading time is at or before `floor`.
    fn purge_through(&self, floor: i64) -> Result<(), StoreError> {
        let mut t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        loop {
            let first = t.first().map_err(|e| io(&self.name, e))?;
            let Some(k) = first.map(|(k, _)| k.value().to_vec()) else {
                return Ok(());
            };
            if read_time(&k) > floor {
                return Ok(());
            }
            t.remove(&k[..]).map_err(|e| io(&self.name, e))?;
        }
    }

    /// Entries whose key starts with a time in `[from, to]`, read out of the transaction
    /// (a range borrows its table), and decoded by `f`, which may skip them.
    fn scan<T>(
        &self,
        from: i64,
        to: Option<i64>,
        mut f: impl FnMut(&[u8], &[u8]) -> Option<Result<T, StoreError>>,
    ) -> Result<Vec<Result<T, StoreError>>, StoreError> {
        let t = self.txn().open_table(DATA).map_err(|e| io(&self.name, e))?;
        let lo = time_bytes(from);
        let range = t.range::<&[u8]>(&lo[..]..).map_err(|e| io(&self.name, e))?;
        let mut out = Vec::new();
        for r in range {
            let (k, v) = r.map_err(|e| io(&self.name, e))?;
            let (k, v) = (k.value(), v.value());
            if to.is_some_and(|to| read_time(k) > to) {
                break;
            }
            if let Some(x) = f(k, v) {
                out.push(x);
            }
        }
        Ok(out)
    }
}

/// A window store in a redb file, purged by retention as `InMemoryWindowStore`.
pub struct PersistentWindowStore {
    f: RedbFile,
    retention: Retention,
}

impl PersistentWindowStore {
    /// Opens (or creates) the store at `path`, emptying it when it has no checkpoint.
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        Self::open_in(name.into(), path.into(), None, retention_ms)
    }

    fn open_in(
        name: String,
        path: PathBuf,
        temp: Option<tempfile::TempDir>,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        let f = RedbFile::open(name, path, temp)?;
        let retention = f.retention(retention_ms)?;
        Ok(PersistentWindowStore { f, retention })
    }

    fn write(&mut self, key: &[u8], start: i64, value: Option<&[u8]>) -> Result<bool, StoreError> {
        let table_key = window_key(key, start);
        self.f
            .write_retained(&mut self.retention, start, &table_key, value)
    }
}

impl StateStore for PersistentWindowStore {
    fn name(&self) -> &str {
        &self.f.name
    }
    fn persistent(&self) -> bool {
        true
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.f.commit()
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        let (k, start) = split_window_changelog_key(&self.f.name, &key)?;
        self.write(k, start, value.as_deref()).map(|_| ())
    }
    fn as_window(&mut self) -> Option<&mut dyn WindowStore> {
        Some(self)
    }
    fn as_window_ref(&self) -> Option<&dyn WindowStore> {
        Some(self)
    }
    fn checkpointed_offset(&self) -> Result<Option<i64>, StoreError> {
        self.f.checkpoint()
    }
    fn write_checkpoint(&mut self, offset: i64) -> Result<(), StoreError> {
        self.f.write_checkpoint(offset)
    }
}

impl WindowStore for PersistentWindowStore {
    fn retention_ms(&self) -> i64 {
        self.retention.ms
    }
    fn observed_time(&self) -> i64 {
        self.retention.observed
    }
    fn put(&mut self, key: Bytes, start: i64, value: Option<Bytes>) -> Result<bool, StoreError> {
        self.write(&key, start, value.as_deref())
    }
    fn fetch(&self, key: &[u8], start: i64) -> Result<Option<Bytes>, StoreError> {
        self.f.get(&window_key(key, start))
    }
    fn fetch_range(&self, key: &[u8], from: i64, to: i64) -> Result<WindowIter<'_>, StoreError> {
        if from > to {
            return Ok(Box::new(std::iter::empty()));
        }
        let key_b = Bytes::copy_from_slice(key);
        let found = self.f.scan(from, Some(to), |k, v| {
            (&k[8..] == key).then(|| Ok((key_b.clone(), read_time(k), Bytes::copy_from_slice(v))))
        })?;
        Ok(Box::new(found.into_iter()))
    }
    fn all(&self) -> Result<WindowIter<'_>, StoreError> {
        let found = self.f.scan(i64::MIN, None, |k, v| {
            Some(Ok((
                Bytes::copy_from_slice(&k[8..]),
                read_time(k),
                Bytes::copy_from_slice(v),
            )))
        })?;
        Ok(Box::new(found.into_iter()))
    }
}

/// A session store in a redb file, purged by retention as `InMemorySessionStore`.
pub struct PersistentSessionStore {
    f: RedbFile,
    retention: Retention,
}

impl PersistentSessionStore {
    /// Opens (or creates) the store at `path`, emptying it when it has no checkpoint.
    pub fn open(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        Self::open_in(name.into(), path.into(), None, retention_ms)
    }

    fn open_in(
        name: String,
        path: PathBuf,
        temp: Option<tempfile::TempDir>,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        let f = RedbFile::open(name, path, temp)?;
        let retention = f.retention(retention_ms)?;
        Ok(PersistentSessionStore { f, retention })
    }

    fn write(&mut self, key: &[u8], w: Window, value: Option<&[u8]>) -> Result<bool, StoreError> {
        let table_key = session_table_key(key, w);
        self.f
            .write_retained(&mut self.retention, w.end, &table_key, value)
    }
}

impl StateStore for PersistentSessionStore {
    fn name(&self) -> &str {
        &self.f.name
    }
    fn persistent(&self) -> bool {
        true
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.f.commit()
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        let (k, w) = split_session_changelog_key(&self.f.name, &key)?;
        self.write(k, w, value.as_deref()).map(|_| ())
    }
    fn as_session(&mut self) -> Option<&mut dyn SessionStore> {
        Some(self)
    }
    fn as_session_ref(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }
    fn checkpointed_offset(&self) -> Result<Option<i64>, StoreError> {
        self.f.checkpoint()
    }
    fn write_checkpoint(&mut self, offset: i64) -> Result<(), StoreError> {
        self.f.write_checkpoint(offset)
    }
}

impl SessionStore for PersistentSessionStore {
    fn retention_ms(&self) -> i64 {
        self.retention.ms
    }
    fn observed_time(&self) -> i64 {
        self.retention.observed
    }
    fn put(&mut self, key: Bytes, w: Window, value: Option<Bytes>) -> Result<bool, StoreError> {
        self.write(&key, w, value.as_deref())
    }
    fn fetch(&self, key: &[u8], w: Window) -> Result<Option<Bytes>, StoreError> {
        self.f.get(&session_table_key(key, w))
    }
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<SessionIter<'_>, StoreError> {
        let name = self.f.name.clone();
        let found = self.f.scan(earliest_end, None, |k, v| {
            match split_session_table_key(&name, k) {
                Ok((kb, w)) => (kb[..] == *key && w.start <= latest_start)
                    .then(|| Ok((kb, w, Bytes::copy_from_slice(v)))),
                Err(e) => Some(Err(e)),
            }
        })?;
        Ok(Box::new(found.into_iter()))
    }
    fn all(&self) -> Result<SessionIter<'_>, StoreError> {
        let name = self.f.name.clone();
        let found = self.f.scan(i64::MIN, None, |k, v| {
            Some(
                split_session_table_key(&name, k).map(|(kb, w)| (kb, w, Bytes::copy_from_slice(v))),
            )
        })?;
        Ok(Box::new(found.into_iter()))
    }
}

/// Supplies a persistent window store per task (see `store_path` for where it lives).
#[derive(Debug, Clone)]
pub struct PersistentWindowStoreSupplier {
    name: String,
    retention_ms: i64,
}

impl PersistentWindowStoreSupplier {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        PersistentWindowStoreSupplier {
            name: name.into(),
            retention_ms,
        }
    }
}

impl StoreSupplier for PersistentWindowStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Window
    }
    fn build(&self, ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        let (path, temp) = store_path(&self.name, ctx)?;
        Ok(Box::new(PersistentWindowStore::open_in(
            self.name.clone(),
            path,
            temp,
            self.retention_ms,
        )?))
    }
}

/// Supplies a persistent session store per task (see `store_path` for where it lives).
#[derive(Debug, Clone)]
pub struct PersistentSessionStoreSupplier {
    name: String,
    retention_ms: i64,
}

impl PersistentSessionStoreSupplier {
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        PersistentSessionStoreSupplier {
            name: name.into(),
            retention_ms,
        }
    }
}

impl StoreSupplier for PersistentSessionStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> StoreKind {
        StoreKind::Session
    }
    fn build(&self, ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        let (path, temp) = store_path(&self.name, ctx)?;
        Ok(Box::new(PersistentSessionStore::open_in(
            self.name.clone(),
            path,
            temp,
            self.retention_ms,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::window_changelog_key;
    use super::super::{InMemorySessionStore, InMemoryWindowStore};
    use super::*;
    use crate::window::session_key;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn windows(s: &dyn WindowStore) -> Vec<(Bytes, i64, Bytes)> {
        s.all().unwrap().map(Result::unwrap).collect()
    }

    fn sessions(s: &dyn SessionStore) -> Vec<(Bytes, Window, Bytes)> {
        s.all().unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn window_store_matches_the_in_memory_one_in_order_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = PersistentWindowStore::open("w", dir.path().join("w.redb"), 100).unwrap();
        let mut m = InMemoryWindowStore::new("w", 100);
        let writes: &[(&str, i64, Option<&str>)] = &[
            ("b", 50, Some("1")),
            ("a", 50, Some("2")),
            ("ab", 50, Some("3")),
            ("a", -20, Some("neg")),
            ("a\u{0}", 0, Some("4")),
            ("\u{00ff}", 0, Some("5")),
            ("a", 0, Some("6")),
            ("b", 50, None),
            ("a", 100, Some("7")),
            ("a", 0, Some("late")),
            ("c", 60, Some("8")),
        ];
        for &(k, start, v) in writes {
            let pw = WindowStore::put(&mut p, b(k), start, v.map(b)).unwrap();
            let mw = WindowStore::put(&mut m, b(k), start, v.map(b)).unwrap();
            assert_eq!(pw, mw, "write of {k}@{start}");
            assert_eq!(windows(&p), windows(&m), "after {k}@{start}");
        }
        assert_eq!(WindowStore::fetch(&p, b"a", 0).unwrap(), None, "purged");
        assert_eq!(WindowStore::fetch(&p, b"a", 50).unwrap(), Some(b("2")));
        let range = |s: &dyn WindowStore| -> Vec<i64> {
            s.fetch_range(b"a", 0, 100)
                .unwrap()
                .map(|r| r.unwrap().1)
                .collect()
        };
        assert_eq!(range(&p), vec![50, 100]);
        assert_eq!(range(&p), range(&m));
        assert_eq!(p.observed_time(), 100);
    }

    #[test]
    fn window_store_keeps_data_and_observed_time_across_a_checkpointed_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        {
            let mut s = PersistentWindowStore::open("w", &path, 100).unwrap();
            s.restore(window_changelog_key(b"k", 40), Some(b("v")))
                .unwrap();
            WindowStore::put(&mut s, b("k"), 90, Some(b("w"))).unwrap();
            s.write_checkpoint(3).unwrap();
        }
        let mut s = PersistentWindowStore::open("w", &path, 100).unwrap();
        assert_eq!(s.checkpointed_offset().unwrap(), Some(3));
        assert_eq!(s.observed_time(), 90);
        assert_eq!(WindowStore::fetch(&s, b"k", 40).unwrap(), Some(b("v")));
        // Retention counts on from the observed time kept on disk.
        assert!(!WindowStore::put(&mut s, b("k"), -10, Some(b("x"))).unwrap());
        drop(s);
        // Without a checkpoint the file is emptied.
        let other = dir.path().join("o.redb");
        {
            let mut s = PersistentWindowStore::open("o", &other, 100).unwrap();
            WindowStore::put(&mut s, b("k"), 1, Some(b("v"))).unwrap();
            s.flush().unwrap();
        }
        let s = PersistentWindowStore::open("o", &other, 100).unwrap();
        assert!(windows(&s).is_empty());
        assert_eq!(s.observed_time(), -1);
    }

    #[test]
    fn session_store_matches_the_in_memory_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let mut p = PersistentSessionStore::open("s", &path, 100).unwrap();
        let mut m = InMemorySessionStore::new("s", 100);
        let writes: &[(&str, i64, i64, Option<&str>)] = &[
            ("a", 0, 10, Some("x")),
            ("ab", 5, 10, Some("y")),
            ("a\u{0}", 3, 10, Some("z")),
            ("a", 2, 10, Some("w")),
            ("a", 30, 40, Some("u")),
            ("b", 0, 10, Some("v")),
            ("b", 0, 10, None),
            ("a", 150, 150, Some("t")),
            ("a", 40, 40, Some("late")),
        ];
        for &(k, s, e, v) in writes {
            let w = Window::new(s, e);
            let pw = SessionStore::put(&mut p, b(k), w, v.map(b)).unwrap();
            let mw = SessionStore::put(&mut m, b(k), w, v.map(b)).unwrap();
            assert_eq!(pw, mw, "write of {k}@{w:?}");
            assert_eq!(sessions(&p), sessions(&m), "after {k}@{w:?}");
        }
        p.restore(session_key(b"a", Window::new(70, 80)), Some(b("r")))
            .unwrap();
        let found: Vec<Window> = p
            .find_sessions(b"a", 60, 150)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(found, vec![Window::new(70, 80), Window::new(150, 150)]);
        p.write_checkpoint(9).unwrap();
        drop(p);
        let p = PersistentSessionStore::open("s", &path, 100).unwrap();
        assert_eq!(
            SessionStore::fetch(&p, b"a", Window::new(70, 80)).unwrap(),
            Some(b("r"))
        );
        assert_eq!(p.observed_time(), 150);
    }

    #[test]
    fn session_table_keys_round_trip() {
        for key in [&b""[..], b"a", b"\0", b"a\0\0b", b"\xff\0"] {
            let w = Window::new(-5, 7);
            let raw = session_table_key(key, w);
            let (k, got) = split_session_table_key("s", &raw).unwrap();
            assert_eq!((&k[..], got), (key, w));
        }
    }
}
