//! The lock on an application's state directory: one running instance per
//! `<state.dir>/<application.id>`, as two would overwrite each other's stores and checkpoints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::StreamsError;

/// Held while an instance runs; the kernel drops the lock when the file closes or the process
/// dies (kill -9 included), so a crashed instance never leaves the directory locked.
#[derive(Debug)]
pub(crate) struct StateDirLock {
    _file: File,
}

impl StateDirLock {
    /// Creates `dir` if needed and locks it, or says which process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<StateDirLock, StreamsError> {
        let path: PathBuf = dir.join(".lock");
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            StreamsError::Runtime(format!("state directory {}: {what}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("cannot create it", &e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| failed("cannot open its lock file", &e))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StreamsError::Runtime(format!(
                "state directory {} is in use by another running instance of this application \
                 ({}); give each instance on a host its own state.dir",
                dir.display(),
                match holder.trim() {
                    "" => "process unknown".to_string(),
                    pid => format!("process {pid}"),
                }
            )));
        }
        // Who holds it, for the message above: best effort, the lock is what counts.
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()));
        Ok(StateDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        let first = StateDirLock::acquire(&app).unwrap();
        let refused = StateDirLock::acquire(&app).unwrap_err().to_string();
        assert!(refused.contains("in use"), "{refused}");
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        drop(first);
        StateDirLock::acquire(&app).unwrap();
    }
}
