//! `FileStreamSourceConnector`: tails a text file (or stdin) and turns each line into a record.
//! Offsets are byte positions, so a restarted task resumes exactly after the last committed line.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use sluice_connect::connector::{
    Props, SourceConnector, SourceOffset, SourcePartition, SourceRecord, SourceTask,
    SourceTaskContext,
};
use sluice_connect::data::{Schema, Value};
use sluice_connect::{ConnectError, Result};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config;

pub const FILE_CONFIG: &str = "file";
pub const TOPIC_CONFIG: &str = "topic";
pub const BATCH_SIZE_CONFIG: &str = "batch.size";
pub const DEFAULT_BATCH_SIZE: usize = 2000;

/// Kafka's key names, so offsets stored by Kafka's own connector stay readable.
pub const FILENAME_FIELD: &str = "filename";
pub const POSITION_FIELD: &str = "position";

/// How long `poll` waits for data before returning an empty batch, so the worker regains
/// control regularly (to commit offsets or stop the task).
const POLL_WAIT: Duration = Duration::from_millis(1000);
/// Re-check the file this often even without a notification: some file systems (NFS, FUSE)
/// never deliver events, and a rename into place may be reported before the file is complete.
const RECHECK: Duration = Duration::from_millis(250);
const READ_CHUNK: usize = 64 * 1024;

struct Settings {
    file: Option<String>,
    topic: String,
    batch_size: usize,
}

fn settings(props: &Props) -> Result<Settings> {
    Ok(Settings {
        file: config::optional(props, FILE_CONFIG),
        topic: config::required(props, TOPIC_CONFIG)?,
        batch_size: config::positive(props, BATCH_SIZE_CONFIG, DEFAULT_BATCH_SIZE)?,
    })
}

/// Kafka's `FileStreamSourceConnector`; always runs a single task, since one file can only
/// be read in order by one reader.
#[derive(Debug, Default)]
pub struct FileStreamSourceConnector {
    props: Props,
}

#[async_trait]
impl SourceConnector for FileStreamSourceConnector {
    fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    async fn start(&mut self, props: Props) -> Result<()> {
        settings(&props)?;
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn validate(&self, props: &Props) -> Result<()> {
        settings(props).map(|_| ())
    }
}

/// Reads lines from the configured file (or stdin) and emits them as STRING records.
///
/// How it reads, including the cases Kafka's reader leaves open:
/// - **Missing file**: the task waits for it to appear (logging once) instead of failing.
/// - **Truncation**: when the file becomes shorter than the position read so far (or than the
///   committed offset on start), reading restarts at byte 0. A file that regrows past the old
///   position before the task looks again (copy-and-truncate rotation under heavy writes)
///   cannot be told from a plain append, so its bytes before that position are skipped.
/// - **Rotation**: when the path names a different file (another inode) the old file is read to
///   its end, its unterminated last line (if any) is emitted since nothing will complete it,
///   and the new file is read from byte 0. Offsets keep the same source partition
///   (`{"filename": ...}`), so a rotation while the task is down looks like a truncation or
///   like the same file: lines may be skipped or re-read then.
/// - **Line ends**: `\n` ends a line and a `\r` before it is dropped. A last line without its
///   `\n` is held back until the newline arrives, so a half-written line is not emitted
///   (the one exception is the end of a rotated-away file, above).
/// - **Invalid UTF-8** is decoded lossily (U+FFFD), as Java's UTF-8 reader does; the offset still
///   counts the raw bytes, so resuming is exact.
/// - **stdin** (no `file`) has no offsets: records carry an empty partition and offset.
#[derive(Default)]
pub struct FileStreamSourceTask {
    topic: String,
    batch_size: usize,
    input: Option<Input>,
}

enum Input {
    File(FileInput),
    Stdin(mpsc::Receiver<String>),
}

struct FileInput {
    name: String,
    partition: SourcePartition,
    /// `None` only while a blocking read owns it.
    reader: Option<FileReader>,
    watch: Option<DirWatch>,
    wakeups: mpsc::Receiver<()>,
    wakeup_sender: mpsc::Sender<()>,
}

/// Watches the file's directory rather than the file, so creation, replacement and
/// renames are seen as well as appends.
struct DirWatch {
    _watcher: notify::RecommendedWatcher,
}

impl DirWatch {
    fn new(file: &Path, wakeups: mpsc::Sender<()>) -> notify::Result<DirWatch> {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut watcher = notify::recommended_watcher(move |_event| {
            // A full channel already holds a pending wake-up, which is all `poll` needs.
            let _ = wakeups.try_send(());
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(DirWatch { _watcher: watcher })
    }
}

fn line_record(
    topic: &str,
    partition: &SourcePartition,
    offset: SourceOffset,
    line: String,
) -> SourceRecord {
    SourceRecord::new(
        partition.clone(),
        offset,
        topic,
        Some(Schema::STRING),
        Value::String(line),
    )
}

impl FileStreamSourceTask {
    async fn poll_file(&mut self) -> Result<Vec<SourceRecord>> {
        let deadline = Instant::now() + POLL_WAIT;
        let batch_size = self.batch_size;
        loop {
            let Some(Input::File(input)) = self.input.as_mut() else {
                unreachable!("poll_file is only called for file input");
            };
            let mut reader = input.reader.take().ok_or_else(|| {
                ConnectError::Connector("file reader lost by a failed read".into())
            })?;
            let (reader, lines) = tokio::task::spawn_blocking(move || {
                let lines = reader.read_lines(batch_size);
                (reader, lines)
            })
            .await
            .map_err(|e| ConnectError::Connector(format!("file read panicked: {e}")))?;
            input.reader = Some(reader);
            let lines = lines
                .map_err(|e| ConnectError::Connector(format!("reading {}: {e}", input.name)))?;
            if !lines.is_empty() {
                let partition = &input.partition;
                return Ok(lines
                    .into_iter()
                    .map(|(line, position)| {
                        // Inserted rather than built from an array, which sorts and dedups.
                        let mut offset = SourceOffset::new();
                        offset.insert(POSITION_FIELD.to_string(), position.into());
                        line_record(&self.topic, partition, offset, line)
                    })
                    .collect());
            }

            if input.watch.is_none() {
                // The directory may not have existed at start; keep trying so that we
                // switch from timed re-checks to notifications once it does.
                input.watch =
                    DirWatch::new(Path::new(&input.name), input.wakeup_sender.clone()).ok();
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = (deadline - now).min(RECHECK);
            let _ = tokio::time::timeout(wait, input.wakeups.recv()).await;
        }
    }

    async fn poll_stdin(&mut self) -> Result<Vec<SourceRecord>> {
        let Some(Input::Stdin(rx)) = self.input.as_mut() else {
            unreachable!("poll_stdin is only called for stdin input");
        };
        let mut raw = Vec::new();
        match tokio::time::timeout(POLL_WAIT, rx.recv()).await {
            Ok(Some(line)) => raw.push(line),
            // stdin closed: nothing will ever come, but the worker still expects `poll`
            // to pace itself.
            Ok(None) => {
                tokio::time::sleep(POLL_WAIT).await;
                return Ok(Vec::new());
            }
            Err(_) => return Ok(Vec::new()),
        }
        while raw.len() < self.batch_size {
            match rx.try_recv() {
                Ok(line) => raw.push(line),
                Err(_) => break,
            }
        }
        let empty = SourcePartition::new();
        Ok(raw
            .into_iter()
            .map(|line| line_record(&self.topic, &empty, SourceOffset::new(), line))
            .collect())
    }
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    async fn start(&mut self, props: Props, context: SourceTaskContext) -> Result<()> {
        let settings = settings(&props)?;
        self.topic = settings.topic;
        self.batch_size = settings.batch_size;
        self.input = Some(match settings.file {
            None => Input::Stdin(spawn_stdin_reader(settings.batch_size)),
            Some(name) => {
                let partition =
                    SourcePartition::from([(FILENAME_FIELD.to_string(), name.clone().into())]);
                let resume_from = context
                    .offset_storage_reader
                    .offset(&partition)
                    .and_then(|o| o.get(POSITION_FIELD).and_then(|p| p.as_u64()));
                if let Some(position) = resume_from {
                    tracing::info!(file = %name, position, "resuming from committed offset");
                }
                let (wakeup_sender, wakeups) = mpsc::channel(1);
                let watch = match DirWatch::new(Path::new(&name), wakeup_sender.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot watch the file's directory; re-checking on a timer");
                        None
                    }
                };
                Input::File(FileInput {
                    reader: Some(FileReader::new(PathBuf::from(&name), resume_from)),
                    name,
                    partition,
                    watch,
                    wakeups,
                    wakeup_sender,
                })
            }
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        match self.input {
            Some(Input::File(_)) => self.poll_file().await,
            Some(Input::Stdin(_)) => self.poll_stdin().await,
            None => Err(ConnectError::Connector(
                "FileStreamSourceTask polled before start".into(),
            )),
        }
    }

    async fn stop(&mut self) -> Result<()> {
        // Dropping the input closes the file and the watcher. A stdin reader thread stays
        // blocked in `read` until stdin delivers or closes; there is no portable way to
        // interrupt it, and it exits on its next send.
        self.input = None;
        Ok(())
    }
}

fn spawn_stdin_reader(capacity: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(capacity.clamp(1, 4096));
    std::thread::Builder::new()
        .name("file-source-stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut lines = LineSplitter::default();
            let mut buf = [0u8; 8192];
            loop {
                let n = match stdin.lock().read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                lines.push(&buf[..n]);
                while let Some(line) = lines.next_line() {
                    if tx.blocking_send(line.text).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("spawn stdin reader thread");
    rx
}

/// Lines are nearly always valid UTF-8: validate in place (simdutf8 is several times faster
/// than std on non-ASCII text) and keep the one copy; only a line with invalid bytes pays for
/// the lossy rebuild.
fn decode_line(bytes: &[u8]) -> String {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// One complete line cut from the buffered bytes.
struct Line {
    /// Decoded, without the line end.
    text: String,
    /// How many buffered bytes the line used, line end included.
    consumed: usize,
}

/// Bytes read but not yet emitted, cut into lines at `\n`.
///
/// Lines are cut by moving a cursor, not by draining the buffer's front: draining copied the
/// whole rest of the buffer once per line. Emitted bytes are dropped only when new bytes
/// arrive, so the buffer is compacted once per read instead.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
    /// Where the next line starts in `pending`.
    start: usize,
    /// Where to resume looking for `\n`, so a long unterminated line is not rescanned.
    scanned: usize,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet emitted.
    fn len(&self) -> usize {
        self.pending.len() - self.start
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.start = 0;
        self.scanned = 0;
    }

    fn next_line(&mut self) -> Option<Line> {
        let from = self.scanned.max(self.start);
        let Some(at) = memchr::memchr(b'\n', &self.pending[from..]).map(|i| from + i) else {
            self.scanned = self.pending.len();
            return None;
        };
        let mut bytes = &self.pending[self.start..at];
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let line = Line {
            text: decode_line(bytes),
            consumed: at + 1 - self.start,
        };
        self.start = at + 1;
        self.scanned = self.start;
        Some(line)
    }

    /// Everything left, for a file that will never be completed.
    fn take_rest(&mut self) -> Option<Line> {
        if self.len() == 0 {
            return None;
        }
        let line = Line {
            text: decode_line(&self.pending[self.start..]),
            consumed: self.len(),
        };
        self.clear();
        Some(line)
    }
}

/// Identity of the file behind a path, to notice the path being pointed at another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId(meta.dev(), meta.ino()))
}

// Without inode numbers rotation goes unnoticed; truncation is still handled.
#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<FileId> {
    None
}

struct OpenFile {
    file: File,
    id: Option<FileId>,
}

/// The blocking half of the source: owns the open file and the read position.
struct FileReader {
    path: PathBuf,
    open: Option<OpenFile>,
    /// Committed offset to seek to on the first open only; later files start at 0.
    resume_from: Option<u64>,
    /// Byte offset just after the last emitted line.
    position: u64,
    lines: LineSplitter,
    logged_missing: bool,
}

impl FileReader {
    fn new(path: PathBuf, resume_from: Option<u64>) -> Self {
        FileReader {
            path,
            open: None,
            resume_from,
            position: 0,
            lines: LineSplitter::default(),
            logged_missing: false,
        }
    }

    /// Up to `max` complete lines, each with the byte offset just after it. Never blocks
    /// waiting for data: an empty result means nothing new is there yet.
    fn read_lines(&mut self, max: usize) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        loop {
            if self.open.is_none() && !self.try_open()? {
                return Ok(out);
            }
            self.restart_if_truncated()?;
            let at_eof = self.fill(&mut out, max)?;
            if !at_eof || !self.rotated() {
                return Ok(out);
            }
            if let Some(rest) = self.lines.take_rest() {
                self.emit(&mut out, rest);
            }
            tracing::info!(file = %self.path.display(), "file was rotated; reading the new file from the start");
            self.open = None;
            self.position = 0;
            if out.len() >= max {
                return Ok(out);
            }
        }
    }

    fn try_open(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.logged_missing {
                    tracing::info!(file = %self.path.display(), "file does not exist yet; waiting for it");
                    self.logged_missing = true;
                }
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.logged_missing = false;
        let meta = file.metadata()?;
        let mut start = self.resume_from.take().unwrap_or(0);
        if start > meta.len() {
            tracing::warn!(file = %self.path.display(), committed = start, length = meta.len(),
                "file is shorter than the committed offset; assuming it was truncated and reading from the start");
            start = 0;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(start))?;
        self.position = start;
        self.lines.clear();
        self.open = Some(OpenFile {
            id: file_id(&meta),
            file,
        });
        Ok(true)
    }

    fn restart_if_truncated(&mut self) -> io::Result<()> {
        let open = self.open.as_mut().expect("file is open");
        let read_to = self.position + self.lines.len() as u64;
        let len = open.file.metadata()?.len();
        if len < read_to {
            tracing::warn!(file = %self.path.display(), position = read_to, length = len,
                "file was truncated; reading from the start");
            open.file.seek(SeekFrom::Start(0))?;
            self.position = 0;
            self.lines.clear();
        }
        Ok(())
    }

    /// Reads until `max` lines are out or the file ends; returns whether it ended.
    fn fill(&mut self, out: &mut Vec<(String, u64)>, max: usize) -> io::Result<bool> {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            while out.len() < max {
                match self.lines.next_line() {
                    Some(line) => self.emit(out, line),
                    None => break,
                }
            }
            if out.len() >= max {
                return Ok(false);
            }
            let open = self.open.as_mut().expect("file is open");
            let n = match open.file.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(true);
            }
            self.lines.push(&chunk[..n]);
        }
    }

    fn emit(&mut self, out: &mut Vec<(String, u64)>, line: Line) {
        self.position += line.consumed as u64;
        out.push((line.text, self.position));
    }

    /// Whether the path now names another file than the open one. A path that is gone
    /// is not a rotation yet: the writer may still append to the file we hold, and the
    /// replacement will be picked up once it exists.
    fn rotated(&self) -> bool {
        let Some(open) = &self.open else {
            return false;
        };
        let Some(current) = open.id else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) => file_id(&meta).is_some_and(|id| id != current),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_holds_back_unterminated_lines_and_strips_crlf() {
        let mut s = LineSplitter::default();
        s.push(b"one\r\ntw");
        let line = s.next_line().unwrap();
        assert_eq!((line.text.as_str(), line.consumed), ("one", 5));
        assert!(s.next_line().is_none());
        s.push(b"o\n");
        let line = s.next_line().unwrap();
        assert_eq!((line.text.as_str(), line.consumed), ("two", 4));
        assert!(s.next_line().is_none());
        assert!(s.take_rest().is_none());
    }

    #[test]
    fn splitter_keeps_offsets_across_pushes_and_partial_lines() {
        let mut s = LineSplitter::default();
        s.push(b"a\nbb");
        assert_eq!(
            s.next_line().map(|l| (l.text, l.consumed)),
            Some(("a".into(), 2))
        );
        assert!(s.next_line().is_none());
        assert_eq!(s.len(), 2);
        // The emitted "a\n" is dropped here; the half-scanned "bb" must still be found.
        s.push(b"b\r\n\xc3");
        assert_eq!(
            s.next_line().map(|l| (l.text, l.consumed)),
            Some(("bbb".into(), 5))
        );
        s.push(b"\xa9\nrest");
        assert_eq!(
            s.next_line().map(|l| (l.text, l.consumed)),
            Some(("é".into(), 3))
        );
        assert!(s.next_line().is_none());
        assert_eq!(
            s.take_rest().map(|l| (l.text, l.consumed)),
            Some(("rest".into(), 4))
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        assert_eq!(decode_line(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn reader_counts_bytes_not_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "héllo\nx\n").unwrap();
        let mut r = FileReader::new(path, None);
        let lines = r.read_lines(10).unwrap();
        assert_eq!(lines, vec![("héllo".to_string(), 7), ("x".to_string(), 9)]);
    }

    #[tokio::test]
    async fn directory_watch_wakes_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\n").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let _watch = DirWatch::new(&path, tx).unwrap();
        std::fs::write(&path, "a\nb\n").unwrap();
        // Far below POLL_WAIT and with no timer involved: only a notification can wake this.
        let woke = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        assert!(matches!(woke, Ok(Some(()))));
    }

    #[test]
    fn connector_runs_one_task_whatever_tasks_max_says() {
        let mut c = FileStreamSourceConnector::default();
        let props = Props::from([
            ("topic".to_string(), "t".to_string()),
            ("tasks.max".to_string(), "4".to_string()),
        ]);
        block_on(c.start(props.clone())).unwrap();
        assert_eq!(c.task_configs(4).unwrap(), vec![props]);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
