//! Source offsets for standalone mode: kept in memory, saved to one local JSON file.
//! Kafka keys each offset by `["<connector>", <source partition>]`; so does this store, so a
//! connector's partitions never collide with another connector's.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::connector::{OffsetStorageReader, SourceOffset, SourcePartition};
use crate::error::{ConnectError, Result};

/// Kafka's offset key, `["<connector>", <partition map>]`, as compact JSON: JSON values have no
/// ordering of their own, and partition maps serialise with sorted keys, so the text is canonical.
fn offset_key(connector: &str, partition: &SourcePartition) -> String {
    serde_json::to_string(&(connector, partition)).expect("JSON maps always serialise")
}

/// One entry of the saved file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: (String, SourcePartition),
    value: SourceOffset,
}

/// Where committed source offsets live (Kafka's `OffsetBackingStore`).
pub trait OffsetBackingStore: Send + Sync {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset>;
    /// Records offsets in memory; they are durable only after `flush`.
    fn set(&self, connector: &str, offsets: Vec<(SourcePartition, SourceOffset)>);
    fn flush(&self) -> Result<()>;
}

/// Offsets in memory, written whole to a file on `flush` (Kafka's `FileOffsetBackingStore`).
#[derive(Debug)]
pub struct FileOffsetBackingStore {
    path: PathBuf,
    offsets: Mutex<BTreeMap<String, Entry>>,
    /// Serialises writers, so two tasks flushing at once cannot rename over each other's newer
    /// snapshot with an older one.
    writing: Mutex<()>,
}

impl FileOffsetBackingStore {
    /// Loads `path` if it exists; a missing file is an empty store (the first run).
    pub fn open(path: impl Into<PathBuf>) -> Result<FileOffsetBackingStore> {
        let path = path.into();
        let offsets = match fs::read(&path) {
            Ok(bytes) => {
                let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectError::Config(format!(
                        "offset file {} is not a Sluice offset file: {e}",
                        path.display()
                    ))
                })?;
                entries
                    .into_iter()
                    .map(|e| (offset_key(&e.key.0, &e.key.1), e))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(ConnectError::Config(format!(
                    "cannot read offset file {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(FileOffsetBackingStore {
            path,
            offsets: Mutex::new(offsets),
            writing: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn offsets(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.offsets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `connector`'s tasks read their starting point from.
    pub fn reader(self: &Arc<Self>, connector: &str) -> Arc<dyn OffsetStorageReader> {
        Arc::new(ConnectorOffsetReader {
            store: self.clone(),
            connector: connector.to_string(),
        })
    }

    /// Every partition `connector` has an offset for, as the REST API lists them.
    pub fn connector_offsets(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        self.offsets()
            .values()
            .filter(|e| e.key.0 == connector)
            .map(|e| (e.key.1.clone(), e.value.clone()))
            .collect()
    }

    /// Erases `connector`'s offsets for `partitions`, or all of them for `None`, so its tasks
    /// start those partitions afresh. Durable only after `flush`.
    pub fn remove(&self, connector: &str, partitions: Option<&[SourcePartition]>) {
        let mut map = self.offsets();
        match partitions {
            Some(ps) => {
                for p in ps {
                    map.remove(&offset_key(connector, p));
                }
            }
            None => map.retain(|_, e| e.key.0 != connector),
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let _writer = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let entries: Vec<Entry> = self.offsets().values().cloned().collect();
        let json = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
        // A crash mid-write must leave the previous file whole: write aside, sync, rename, then
        // sync the directory so the rename itself survives a power cut.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &self.path)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

impl OffsetBackingStore for FileOffsetBackingStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        self.offsets()
            .get(&offset_key(connector, partition))
            .map(|e| e.value.clone())
    }

    fn set(&self, connector: &str, offsets: Vec<(SourcePartition, SourceOffset)>) {
        let mut map = self.offsets();
        for (p, o) in offsets {
            let key = offset_key(connector, &p);
            map.insert(
                key,
                Entry {
                    key: (connector.to_string(), p),
                    value: o,
                },
            );
        }
    }

    fn flush(&self) -> Result<()> {
        self.write().map_err(|e| {
            ConnectError::Connector(format!(
                "cannot write offset file {}: {e}",
                self.path.display()
            ))
        })
    }
}

struct ConnectorOffsetReader {
    store: Arc<FileOffsetBackingStore>,
    connector: String,
}

impl OffsetStorageReader for ConnectorOffsetReader {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.store.get(&self.connector, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn partition(file: &str) -> SourcePartition {
        SourcePartition::from([("filename".to_string(), json!(file))])
    }

    fn offset(pos: i64) -> SourceOffset {
        SourceOffset::from([("position".to_string(), json!(pos))])
    }

    #[test]
    fn offsets_survive_a_reopen_and_stay_per_connector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        let store = Arc::new(FileOffsetBackingStore::open(&path).unwrap());
        assert!(store.get("a", &partition("x")).is_none());
        store.set("a", vec![(partition("x"), offset(10))]);
        store.set("b", vec![(partition("x"), offset(20))]);
        store.flush().unwrap();
        // Set but not flushed: lost on reopen.
        store.set("a", vec![(partition("x"), offset(99))]);

        let reopened = Arc::new(FileOffsetBackingStore::open(&path).unwrap());
        assert_eq!(reopened.get("a", &partition("x")), Some(offset(10)));
        assert_eq!(reopened.get("b", &partition("x")), Some(offset(20)));
        assert_eq!(
            reopened.reader("b").offset(&partition("x")),
            Some(offset(20))
        );
        assert!(reopened.reader("c").offset(&partition("x")).is_none());

        let text = fs::read_to_string(&path).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(saved[0]["key"], json!(["a", {"filename": "x"}]));
        assert_eq!(saved[0]["value"], json!({"position": 10}));
    }

    #[test]
    fn offsets_are_listed_and_erased_per_connector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        let store = FileOffsetBackingStore::open(&path).unwrap();
        store.set(
            "a",
            vec![(partition("x"), offset(1)), (partition("y"), offset(2))],
        );
        store.set("b", vec![(partition("x"), offset(3))]);
        assert_eq!(
            store.connector_offsets("a"),
            [(partition("x"), offset(1)), (partition("y"), offset(2))]
        );
        store.remove("a", Some(&[partition("y"), partition("never")]));
        assert_eq!(store.connector_offsets("a"), [(partition("x"), offset(1))]);
        store.remove("a", None);
        assert!(store.connector_offsets("a").is_empty());
        store.flush().unwrap();
        let reopened = FileOffsetBackingStore::open(&path).unwrap();
        assert!(reopened.connector_offsets("a").is_empty());
        assert_eq!(
            reopened.connector_offsets("b"),
            [(partition("x"), offset(3))]
        );
    }

    #[test]
    fn a_flush_replaces_the_file_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        // A leftover from a crash mid-write must not be read back.
        fs::write(dir.path().join("connect.offsets.tmp"), b"garbage").unwrap();
        let store = FileOffsetBackingStore::open(&path).unwrap();
        for i in 0..5 {
            store.set("a", vec![(partition("x"), offset(i))]);
            store.flush().unwrap();
        }
        let entries: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, ["connect.offsets"]);
        let reopened = FileOffsetBackingStore::open(&path).unwrap();
        assert_eq!(reopened.get("a", &partition("x")), Some(offset(4)));
    }

    #[test]
    fn an_unreadable_offset_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        fs::write(&path, b"not json").unwrap();
        let e = FileOffsetBackingStore::open(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        let store = FileOffsetBackingStore::open(&path).unwrap();
        store.set("a", vec![(partition("x"), offset(1))]);
        store.flush().unwrap();
        // A directory where the temp file should go makes the write fail before the rename.
        fs::create_dir(dir.path().join("connect.offsets.tmp")).unwrap();
        store.set("a", vec![(partition("x"), offset(2))]);
        assert!(store.flush().is_err());
        let reopened = FileOffsetBackingStore::open(&path).unwrap();
        assert_eq!(reopened.get("a", &partition("x")), Some(offset(1)));
    }
}
