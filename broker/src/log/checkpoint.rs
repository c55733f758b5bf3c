//! `Checkpoint`: a per-log-dir text file mapping partitions to an offset (recovery point, log
//! start), in Kafka's format: version line `0`, entry count, then `topic partition offset` lines.
//! Also the atomic write and the header checks that the partition's leader-epoch file shares.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{fsync_dir, LogError, TopicPartition};

const VERSION: u32 = 0;

#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    pub fn new(path: impl Into<PathBuf>) -> Checkpoint {
        Checkpoint { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file atomically; see [`write_atomically`].
    pub fn write(&self, entries: &BTreeMap<TopicPartition, i64>) -> Result<(), LogError> {
        let lines = entries
            .iter()
            .map(|(tp, offset)| format!("{} {} {}", tp.topic, tp.partition, offset));
        write_atomically(&self.path, &format_checkpoint(entries.len(), lines))?;
        Ok(())
    }

    /// Reads the file; a missing file is an empty checkpoint (a fresh log dir).
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, i64>, LogError> {
        let Some(lines) = read_checkpoint_lines(&self.path)? else {
            return Ok(BTreeMap::new());
        };
        let corrupt =
            |why: String| LogError::Corrupt(format!("checkpoint {}: {why}", self.path.display()));
        let mut entries = BTreeMap::new();
        for line in &lines {
            // Topic names cannot contain spaces, so splitting from the right is unambiguous.
            let mut parts = line.rsplitn(3, ' ');
            let (Some(offset), Some(partition), Some(topic)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(format!("malformed line {line:?}")));
            };
            let offset: i64 = offset
                .parse()
                .map_err(|_| corrupt(format!("bad offset in {line:?}")))?;
            let partition: i32 = partition
                .parse()
                .map_err(|_| corrupt(format!("bad partition in {line:?}")))?;
            entries.insert(TopicPartition::new(topic, partition), offset);
        }
        if entries.len() != lines.len() {
            return Err(corrupt(format!(
                "expected {} entries, found {}",
                lines.len(),
                entries.len()
            )));
        }
        Ok(entries)
    }
}

/// Kafka's checkpoint text: the version line, the entry count, then one line per entry.
pub(crate) fn format_checkpoint(count: usize, lines: impl Iterator<Item = String>) -> String {
    let mut text = format!("{VERSION}\n{count}\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Replaces `path` with `text` so that a crash leaves either the old or the new content, never a
/// mix: the new content is made durable under a temporary name before the rename, and the rename
/// itself by syncing the directory.
pub(crate) fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// The entry lines of a checkpoint file, after checking its version and that exactly as many
/// lines follow as its count line says; `None` if the file does not exist.
pub(crate) fn read_checkpoint_lines(path: &Path) -> Result<Option<Vec<String>>, LogError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |why: &str| LogError::Corrupt(format!("checkpoint {}: {why}", path.display()));
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing version"))?;
    if version != VERSION {
        return Err(corrupt(&format!("unsupported version {version}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("missing entry count"))?;
    let entries: Vec<String> = lines.take(count).map(str::to_owned).collect();
    if entries.len() != count {
        return Err(corrupt(&format!(
            "expected {count} entries, found {}",
            entries.len()
        )));
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("recovery-point-offset-checkpoint"));
        assert!(cp.read().unwrap().is_empty());
        let mut entries = BTreeMap::new();
        entries.insert(TopicPartition::new("a-b", 0), 42);
        entries.insert(TopicPartition::new("z", 3), 7);
        cp.write(&entries).unwrap();
        assert_eq!(
            fs::read_to_string(cp.path()).unwrap(),
            "0\n2\na-b 0 42\nz 3 7\n"
        );
        assert_eq!(cp.read().unwrap(), entries);
        entries.remove(&TopicPartition::new("z", 3));
        cp.write(&entries).unwrap();
        assert_eq!(cp.read().unwrap(), entries);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file must be renamed away");
    }

    #[test]
    fn damaged_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("cp"));
        for bad in ["", "1\n0\n", "0\n2\nt 0 1\n", "0\n1\nt x 1\n", "0\n1\nt0\n"] {
            fs::write(cp.path(), bad).unwrap();
            assert!(
                matches!(cp.read(), Err(LogError::Corrupt(_))),
                "{bad:?} must be rejected"
            );
        }
    }
}
