//! `LogManager`: every partition log across the broker's log dirs, their checkpoint files, the
//! clean-shutdown marker that decides how much recovery the next start needs, maintenance, and
//! the passes of the log cleaner over compacted logs.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::{
    fsync_dir, wall_clock_ms, Checkpoint, CleanOutcome, CleanStats, CleanerConfig, Log, LogConfig,
    LogError, TopicPartition,
};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Kafka's name for the high watermarks of replicated partitions: a restarted broker must not
/// take everything in its log as committed (a follower's tail may be ahead of the ISR's).
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Each compacted log's cleaner checkpoint, so that a restart does not re-clean everything.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
pub const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";
/// Suffix of a partition dir being deleted; such dirs are finished off at the next start.
const DELETE_DIR_SUFFIX: &str = "-delete";

/// Per log dir, what each checkpoint file holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct DirOffsets {
    recovery_points: BTreeMap<TopicPartition, i64>,
    log_starts: BTreeMap<TopicPartition, i64>,
    cleaner: BTreeMap<TopicPartition, i64>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
}

type OffsetsByDir = HashMap<PathBuf, DirOffsets>;

pub struct LogManager {
    log_dirs: Vec<PathBuf>,
    default_config: LogConfig,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    /// Serialises checkpoint writers and remembers what they last wrote, so that the periodic
    /// pass only rewrites (and fsyncs) files whose content changed.
    checkpoints: Mutex<OffsetsByDir>,
    delete_counter: AtomicU64,
    /// Set by `shutdown`: a cleaner pass visits no further logs.
    stop_cleaning: AtomicBool,
}

impl LogManager {
    /// Opens every partition dir under each log dir. A dir whose clean-shutdown marker is present
    /// is trusted as flushed; otherwise each log recovers from its checkpointed recovery point.
    /// The marker is removed once everything is loaded, so a crash from now on is detected.
    pub fn open(log_dirs: Vec<PathBuf>, default_config: LogConfig) -> Result<LogManager, LogError> {
        if log_dirs.is_empty() {
            return Err(LogError::Corrupt("no log dirs configured".into()));
        }
        let mut logs: HashMap<TopicPartition, Arc<Log>> = HashMap::new();
        for dir in &log_dirs {
            fs::create_dir_all(dir)?;
            let clean = dir.join(CLEAN_SHUTDOWN_MARKER).exists();
            let recovery_points = read_checkpoint_or_empty(dir, RECOVERY_POINT_CHECKPOINT);
            let log_starts = read_checkpoint_or_empty(dir, LOG_START_OFFSET_CHECKPOINT);
            let cleaned = read_checkpoint_or_empty(dir, CLEANER_OFFSET_CHECKPOINT);
            let high_watermarks = read_checkpoint_or_empty(dir, HIGH_WATERMARK_CHECKPOINT);
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(DELETE_DIR_SUFFIX) {
                    tracing::info!(dir = %path.display(), "finishing interrupted partition delete");
                    fs::remove_dir_all(&path)?;
                    continue;
                }
                // The controller quorum's own log (metadata.log.dir defaults to the first log
                // dir) is not a partition: opening it as one would write segments into it.
                if name == crate::controller::METADATA_DIR_NAME {
                    continue;
                }
                let Some(tp) = TopicPartition::from_dir_name(&name) else {
                    continue;
                };
                if logs.contains_key(&tp) {
                    return Err(LogError::Corrupt(format!(
                        "partition {tp} is present in more than one log dir"
                    )));
                }
                let recovery_point = recovery_points.get(&tp).copied().unwrap_or(0);
                let log = Log::open_with_log_start(
                    &path,
                    tp.clone(),
                    default_config.clone(),
                    recovery_point,
                    log_starts.get(&tp).copied(),
                    clean,
                )?;
                if let Some(&offset) = cleaned.get(&tp) {
                    log.set_cleaner_checkpoint(offset);
                }
                if let Some(&hw) = high_watermarks.get(&tp) {
                    // Clamped to the recovered log; replication moves it from here.
                    log.set_high_watermark(hw);
                }
                logs.insert(tp, Arc::new(log));
            }
        }
        for dir in &log_dirs {
            match fs::remove_file(dir.join(CLEAN_SHUTDOWN_MARKER)) {
                Ok(()) => fsync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(LogManager {
            log_dirs,
            default_config,
            logs: RwLock::new(logs),
            checkpoints: Mutex::new(HashMap::new()),
            delete_counter: AtomicU64::new(0),
            stop_cleaning: AtomicBool::new(false),
        })
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }

    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tp)
            .cloned()
    }

    /// The existing log (config untouched), or a new one in the log dir holding the fewest
    /// partitions.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Log>, LogError> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let parent = self
            .log_dirs
            .iter()
            .min_by_key(|d| {
                logs.values()
                    .filter(|l| l.dir().parent() == Some(d.as_path()))
                    .count()
            })
            .expect("at least one log dir");
        let path = parent.join(tp.dir_name());
        let log = Arc::new(Log::open(&path, tp.clone(), config, 0, true)?);
        fsync_dir(parent)?;
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Closes the log and removes its directory. The rename first makes the delete atomic: a
    /// crash part-way leaves a `-delete` dir that the next `open` removes instead of loading.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let Some(log) = self
            .logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tp)
        else {
            return Ok(());
        };
        log.close()?;
        let dir = log.dir();
        let unique = format!(
            "{:x}{:04x}{:x}",
            wall_clock_ms(),
            self.delete_counter.fetch_add(1, Ordering::Relaxed) & 0xffff,
            std::process::id()
        );
        let doomed = dir.with_file_name(format!("{}.{unique}{DELETE_DIR_SUFFIX}", tp.dir_name()));
        fs::rename(dir, &doomed)?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        fs::remove_dir_all(&doomed)?;
        self.write_checkpoints()
    }

    pub fn all(&self) -> Vec<Arc<Log>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// One pass of background work over every log: time-based rolls, retention when
    /// `retention_due`, due flushes, then checkpoints whose content changed. A failing log does
    /// not stop the others; the first error is returned after the pass.
    pub fn run_maintenance(&self, now_ms: i64, retention_due: bool) -> Result<(), LogError> {
        let mut first_error = None;
        for log in self.all() {
            if let Err(e) = log.run_maintenance(now_ms, retention_due) {
                tracing::warn!(tp = %log.topic_partition(), error = %e, "log maintenance failed");
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint(false) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes both checkpoint files in every log dir.
    pub fn write_checkpoints(&self) -> Result<(), LogError> {
        self.checkpoint(true)
    }

    fn checkpoint(&self, force: bool) -> Result<(), LogError> {
        let mut last = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        let mut current: OffsetsByDir = self
            .log_dirs
            .iter()
            .map(|d| (d.clone(), Default::default()))
            .collect();
        for log in self.all() {
            let Some(entry) = log.dir().parent().and_then(|p| current.get_mut(p)) else {
                continue;
            };
            let tp = log.topic_partition().clone();
            entry
                .recovery_points
                .insert(tp.clone(), log.recovery_point());
            entry.log_starts.insert(tp.clone(), log.log_start_offset());
            if let Some(hw) = log.replicated_high_watermark() {
                entry.high_watermarks.insert(tp.clone(), hw);
            }
            if let Some(offset) = log.cleaner_checkpoint() {
                entry.cleaner.insert(tp, offset);
            }
        }
        for (dir, offsets) in current {
            let before = last.get(&dir);
            let changed = |f: fn(&DirOffsets) -> &BTreeMap<TopicPartition, i64>| {
                force || before.map(f) != Some(f(&offsets))
            };
            if changed(|o| &o.recovery_points) {
                Checkpoint::new(dir.join(RECOVERY_POINT_CHECKPOINT))
                    .write(&offsets.recovery_points)?;
            }
            if changed(|o| &o.log_starts) {
                Checkpoint::new(dir.join(LOG_START_OFFSET_CHECKPOINT))
                    .write(&offsets.log_starts)?;
            }
            if changed(|o| &o.cleaner) {
                Checkpoint::new(dir.join(CLEANER_OFFSET_CHECKPOINT)).write(&offsets.cleaner)?;
            }
            if changed(|o| &o.high_watermarks) {
                Checkpoint::new(dir.join(HIGH_WATERMARK_CHECKPOINT))
                    .write(&offsets.high_watermarks)?;
            }
            last.insert(dir, offsets);
        }
        Ok(())
    }

    /// One pass of the log cleaner: [`Log::clean_with`] on every log whose cleanup policy
    /// includes compact, then the cleaner checkpoints. Meant for its own thread or blocking task,
    /// apart from `run_maintenance`, since a pass reads and rewrites whole segments. A failing log
    /// does not stop the others; the first error is returned after the pass. Returns the logs
    /// that were cleaned.
    pub fn clean_compacted(
        &self,
        now_ms: i64,
        config: &CleanerConfig,
    ) -> Result<Vec<(TopicPartition, CleanStats)>, LogError> {
        let mut cleaned = Vec::new();
        let mut first_error = None;
        for log in self.all() {
            if self.stop_cleaning.load(Ordering::Acquire) {
                break;
            }
            if !log.config().cleanup_policy.compacts() {
                continue;
            }
            match log.clean_with(now_ms, config) {
                Ok(stats) if stats.outcome == CleanOutcome::Cleaned => {
                    tracing::info!(
                        tp = %log.topic_partition(),
                        records_before = stats.records_before,
                        records_after = stats.records_after,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        "log cleaned"
                    );
                    cleaned.push((log.topic_partition().clone(), stats));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tp = %log.topic_partition(), error = %e, "log cleaning failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        if !cleaned.is_empty() {
            if let Err(e) = self.checkpoint(false) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(cleaned), Err)
    }

    /// Clean shutdown: closes (and so flushes) every log, writes checkpoints, then the marker
    /// that lets the next start skip recovery. The marker is not written if anything failed.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.stop_cleaning.store(true, Ordering::Release);
        let mut first_error = None;
        for log in self.all() {
            if let Err(e) = log.close() {
                tracing::error!(tp = %log.topic_partition(), error = %e, "closing log failed");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.write_checkpoints()?;
        for dir in &self.log_dirs {
            File::create(dir.join(CLEAN_SHUTDOWN_MARKER))?.sync_all()?;
            fsync_dir(dir)?;
        }
        Ok(())
    }
}

/// A damaged checkpoint only costs recovery work (recovery point 0 means "check everything"),
/// so it must not keep the broker from starting.
fn read_checkpoint_or_empty(dir: &Path, name: &str) -> BTreeMap<TopicPartition, i64> {
    match Checkpoint::new(dir.join(name)).read() {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), file = name, error = %e, "ignoring checkpoint");
            BTreeMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::batch;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1000,
            ..LogConfig::default()
        }
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    #[test]
    fn create_spreads_partitions_and_shutdown_reopen_keeps_them() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        let mgr = LogManager::open(dirs.clone(), config()).unwrap();
        let parts = [tp("orders", 0), tp("orders", 1), tp("my-topic", 0)];
        for (i, p) in parts.iter().enumerate() {
            let log = mgr.get_or_create(p, config()).unwrap();
            for _ in 0..=i {
                log.append(batch(1, 0), 0, 0).unwrap();
            }
        }
        let same = mgr.get_or_create(&parts[0], config()).unwrap();
        assert_eq!(same.log_end_offset(), 1);
        let per_dir: Vec<usize> = dirs
            .iter()
            .map(|d| {
                mgr.all()
                    .iter()
                    .filter(|l| l.dir().parent() == Some(d))
                    .count()
            })
            .collect();
        assert_eq!(per_dir, vec![2, 1]);
        assert!(mgr.get(&tp("nope", 0)).is_none());
        mgr.shutdown().unwrap();
        drop(mgr);

        for d in &dirs {
            assert!(d.join(CLEAN_SHUTDOWN_MARKER).exists());
        }
        let cp = Checkpoint::new(dirs[0].join(RECOVERY_POINT_CHECKPOINT))
            .read()
            .unwrap();
        assert_eq!(cp.len(), 2);
        let dir_of_orders_1 = mgr_dir_of(&dirs, &parts[1]);
        let cp = Checkpoint::new(dir_of_orders_1.join(RECOVERY_POINT_CHECKPOINT))
            .read()
            .unwrap();
        assert_eq!(cp.get(&parts[1]), Some(&2));

        // Not partitions: a stray directory and a half-finished delete.
        fs::create_dir(dirs[0].join("lost+found")).unwrap();
        fs::create_dir(dirs[1].join("gone-0.1234-delete")).unwrap();
        let mgr = LogManager::open(dirs.clone(), config()).unwrap();
        for d in &dirs {
            assert!(!d.join(CLEAN_SHUTDOWN_MARKER).exists());
        }
        assert!(!dirs[1].join("gone-0.1234-delete").exists());
        assert_eq!(mgr.all().len(), 3);
        for (i, p) in parts.iter().enumerate() {
            let log = mgr.get(p).unwrap();
            assert_eq!(log.log_end_offset(), i as i64 + 1);
            assert_eq!(log.recovery_point(), i as i64 + 1);
        }
    }

    fn mgr_dir_of(dirs: &[PathBuf], tp: &TopicPartition) -> PathBuf {
        dirs.iter()
            .find(|d| d.join(tp.dir_name()).exists())
            .unwrap()
            .clone()
    }

    #[test]
    fn replicated_high_watermarks_survive_a_restart_and_standalone_logs_keep_none() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        {
            let mgr = LogManager::open(dirs.clone(), config()).unwrap();
            let replicated = mgr.get_or_create(&tp("r", 0), config()).unwrap();
            for i in 0..3 {
                replicated.append(batch(2, i), 0, 0).unwrap();
            }
            replicated.set_high_watermark(4);
            let standalone = mgr.get_or_create(&tp("s", 0), config()).unwrap();
            standalone.append(batch(2, 0), 0, 0).unwrap();
            mgr.shutdown().unwrap();
        }
        let cp = Checkpoint::new(root.path().join(HIGH_WATERMARK_CHECKPOINT))
            .read()
            .unwrap();
        assert_eq!(cp.into_iter().collect::<Vec<_>>(), vec![(tp("r", 0), 4)]);
        let mgr = LogManager::open(dirs, config()).unwrap();
        let replicated = mgr.get(&tp("r", 0)).unwrap();
        // Not the log end (6): records past 4 were never known to be on the whole ISR.
        assert_eq!(replicated.log_end_offset(), 6);
        assert_eq!(replicated.high_watermark(), 4);
        let standalone = mgr.get(&tp("s", 0)).unwrap();
        assert_eq!(standalone.high_watermark(), 2);
        replicated.follow_log_end();
        assert_eq!(replicated.high_watermark(), 6);
    }

    #[test]
    fn delete_removes_the_dir_and_its_checkpoint_entries() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let mgr = LogManager::open(dirs.clone(), config()).unwrap();
        let victim = tp("victim", 3);
        let log = mgr.get_or_create(&victim, config()).unwrap();
        log.append(batch(1, 0), 0, 0).unwrap();
        mgr.get_or_create(&tp("keep", 0), config()).unwrap();
        mgr.write_checkpoints().unwrap();
        mgr.delete(&victim).unwrap();
        assert!(mgr.get(&victim).is_none());
        assert!(matches!(
            log.append(batch(1, 0), 0, 0),
            Err(LogError::Closed)
        ));
        let names: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("victim"))
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
        let cp = Checkpoint::new(root.path().join(LOG_START_OFFSET_CHECKPOINT))
            .read()
            .unwrap();
        assert_eq!(cp.keys().cloned().collect::<Vec<_>>(), vec![tp("keep", 0)]);
        // Re-creating starts from scratch.
        let again = mgr.get_or_create(&victim, config()).unwrap();
        assert_eq!(again.log_end_offset(), 0);
    }

    #[test]
    fn unclean_restart_recovers_from_checkpointed_recovery_points() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let p = tp("t", 0);
        {
            let mgr = LogManager::open(dirs.clone(), config()).unwrap();
            let log = mgr.get_or_create(&p, config()).unwrap();
            for _ in 0..25 {
                log.append(batch(1, 0), 0, 0).unwrap();
            }
            mgr.run_maintenance(0, true).unwrap();
            assert_eq!(log.recovery_point(), 25, "rolled segments flushed");
            for _ in 0..3 {
                log.append(batch(1, 0), 0, 0).unwrap();
            }
            // Crash: no shutdown, so no marker and the checkpoint says 25.
        }
        let active = root.path().join("t-0").join("00000000000000000020.log");
        let mut f = fs::OpenOptions::new().append(true).open(&active).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 30]).unwrap();
        let mgr = LogManager::open(dirs, config()).unwrap();
        let log = mgr.get(&p).unwrap();
        assert_eq!(log.log_end_offset(), 28);
        assert_eq!(fs::metadata(&active).unwrap().len(), 800);
        assert_eq!(log.append(batch(1, 0), 0, 0).unwrap().base_offset, 28);
    }

    #[test]
    fn the_cleaner_visits_compacted_logs_and_its_checkpoint_survives_restarts() {
        use crate::log::test_util::keyed_batch;
        use crate::log::CleanupPolicy;
        use sluice_protocol::records::Compression;

        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let compacted = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..config()
        };
        let (c, d) = (tp("table", 0), tp("events", 0));
        {
            let mgr = LogManager::open(dirs.clone(), config()).unwrap();
            let table = mgr.get_or_create(&c, compacted.clone()).unwrap();
            let events = mgr.get_or_create(&d, config()).unwrap();
            for i in 0..40 {
                let rec = [(Some("same-key"), Some("v"))];
                table
                    .append(keyed_batch(&rec, i, Compression::None), 0, 0)
                    .unwrap();
                events
                    .append(keyed_batch(&rec, i, Compression::None), 0, 0)
                    .unwrap();
            }
            let cleaned = mgr.clean_compacted(0, &CleanerConfig::default()).unwrap();
            assert_eq!(cleaned.len(), 1);
            assert_eq!(cleaned[0].0, c);
            assert_eq!(events.cleaner_checkpoint(), None);
            let checkpoint = table.cleaner_checkpoint().unwrap();
            assert!(checkpoint > 0);
            let cp = Checkpoint::new(root.path().join(CLEANER_OFFSET_CHECKPOINT))
                .read()
                .unwrap();
            assert_eq!(cp.get(&c), Some(&checkpoint));
            assert_eq!(cp.get(&d), None);
            assert!(mgr
                .clean_compacted(0, &CleanerConfig::default())
                .unwrap()
                .is_empty());
            // Crash: no shutdown.
        }
        let mgr = LogManager::open(dirs, config()).unwrap();
        let table = mgr.get(&c).unwrap();
        table.update_config(compacted);
        assert!(table.cleaner_checkpoint().unwrap() > 0);
        assert!(
            mgr.clean_compacted(0, &CleanerConfig::default())
                .unwrap()
                .is_empty(),
            "nothing new since the checkpoint"
        );
    }

    #[test]
    fn maintenance_applies_retention_and_checkpoints_log_start() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let retained = LogConfig {
            retention_bytes: Some(1000),
            ..config()
        };
        let mgr = LogManager::open(dirs.clone(), config()).unwrap();
        let p = tp("r", 0);
        let log = mgr.get_or_create(&p, retained).unwrap();
        for _ in 0..25 {
            log.append(batch(1, 0), 0, 0).unwrap();
        }
        mgr.run_maintenance(0, false).unwrap();
        assert_eq!(log.log_start_offset(), 0, "retention only when due");
        mgr.run_maintenance(0, true).unwrap();
        assert_eq!(log.log_start_offset(), 10);
        let cp = Checkpoint::new(root.path().join(LOG_START_OFFSET_CHECKPOINT))
            .read()
            .unwrap();
        assert_eq!(cp.get(&p), Some(&10));
    }
}
