//! FileStreamSourceTask driven directly against temp files, with an in-memory offset store.
//! Covers reading, tailing, resuming, waiting, truncation, rotation, partial lines and batching.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect::connector::{
    OffsetStorageReader, Props, SourceConnector, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, SourceTaskContext,
};
use sluice_connect::data::{Schema, Value};
use sluice_connectors::{FileStreamSourceConnector, FileStreamSourceTask};

struct StoredOffsets(Vec<(SourcePartition, SourceOffset)>);

impl OffsetStorageReader for StoredOffsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.0
            .iter()
            .find(|(p, _)| p == partition)
            .map(|(_, o)| o.clone())
    }
}

fn props(file: &Path, extra: &[(&str, &str)]) -> Props {
    let mut p = Props::from([
        ("file".to_string(), file.display().to_string()),
        ("topic".to_string(), "lines".to_string()),
    ]);
    p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

fn partition(file: &Path) -> SourcePartition {
    SourcePartition::from([("filename".to_string(), file.display().to_string().into())])
}

async fn start(props: Props, stored: Vec<(SourcePartition, SourceOffset)>) -> FileStreamSourceTask {
    let mut task = FileStreamSourceTask::default();
    let context = SourceTaskContext {
        configs: props.clone(),
        offset_storage_reader: Arc::new(StoredOffsets(stored)),
    };
    task.start(props, context).await.unwrap();
    task
}

fn values(records: &[SourceRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r.value {
            Value::String(s) => s.clone(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

fn position(record: &SourceRecord) -> u64 {
    record.source_offset["position"].as_u64().unwrap()
}

/// Polls until `n` lines came or `within` passed, so tests wait on the tailer, not on sleeps.
async fn poll_lines(
    task: &mut FileStreamSourceTask,
    n: usize,
    within: Duration,
) -> Vec<SourceRecord> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(task.poll().await.unwrap());
    }
    out
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn reads_existing_lines_as_string_records_with_kafka_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "first\nsecond\r\n").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;

    let records = task.poll().await.unwrap();
    assert_eq!(values(&records), ["first", "second"]);
    let r = &records[0];
    assert_eq!(r.topic, "lines");
    assert_eq!(r.value_schema, Some(Schema::STRING));
    assert_eq!(r.key, Value::Null);
    assert_eq!(r.key_schema, None);
    assert_eq!(r.source_partition, partition(&path));
    assert_eq!(position(&records[0]), 6);
    assert_eq!(position(&records[1]), 14);
    task.stop().await.unwrap();
}

#[tokio::test]
async fn appended_lines_arrive_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "a\n").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    assert_eq!(values(&task.poll().await.unwrap()), ["a"]);

    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            append(&path, "b\nc\n");
        })
    };
    let began = Instant::now();
    let records = poll_lines(&mut task, 2, Duration::from_secs(1)).await;
    writer.await.unwrap();
    assert_eq!(values(&records), ["b", "c"]);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(position(&records[1]), 6);
}

#[tokio::test]
async fn empty_poll_returns_after_a_short_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    let began = Instant::now();
    assert!(task.poll().await.unwrap().is_empty());
    assert!(began.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn resumes_from_the_committed_byte_offset_after_multibyte_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "héllo\nwörld\nlast\n").unwrap();

    let mut first = start(props(&path, &[]), vec![]).await;
    let records = first.poll().await.unwrap();
    assert_eq!(values(&records), ["héllo", "wörld", "last"]);
    // "héllo" is 6 bytes, plus its newline.
    assert_eq!(position(&records[0]), 7);
    let committed = records[1].source_offset.clone();
    assert_eq!(committed["position"], 14);
    first.stop().await.unwrap();

    let mut resumed = start(props(&path, &[]), vec![(partition(&path), committed)]).await;
    let records = resumed.poll().await.unwrap();
    assert_eq!(values(&records), ["last"]);
    assert_eq!(position(&records[0]), 19);
}

#[tokio::test]
async fn a_committed_offset_beyond_the_end_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "short\n").unwrap();
    let stored = SourceOffset::from([("position".to_string(), 1000.into())]);
    let mut task = start(props(&path, &[]), vec![(partition(&path), stored)]).await;
    assert_eq!(values(&task.poll().await.unwrap()), ["short"]);
}

#[tokio::test]
async fn waits_for_a_missing_file_and_reads_it_once_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.txt");
    let mut task = start(props(&path, &[]), vec![]).await;
    assert!(task.poll().await.unwrap().is_empty());

    std::fs::write(&path, "hello\n").unwrap();
    let records = poll_lines(&mut task, 1, Duration::from_secs(2)).await;
    assert_eq!(values(&records), ["hello"]);
    assert_eq!(position(&records[0]), 6);
}

#[tokio::test]
async fn truncation_restarts_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "one long line\ntwo long line\n").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    assert_eq!(task.poll().await.unwrap().len(), 2);

    // Same file (same inode), cut down and rewritten shorter than what was read.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&path, "new\n");
    let records = poll_lines(&mut task, 1, Duration::from_secs(2)).await;
    assert_eq!(values(&records), ["new"]);
    assert_eq!(position(&records[0]), 4);
}

#[tokio::test]
async fn rotation_finishes_the_old_file_then_reads_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, "old 1\n").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    assert_eq!(values(&task.poll().await.unwrap()), ["old 1"]);

    // A writer still holding the old file appends once more, then the path is rotated.
    append(&path, "old 2\nold tail");
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&path, "new 1\n").unwrap();

    let records = poll_lines(&mut task, 4, Duration::from_secs(2)).await;
    assert_eq!(values(&records), ["old 2", "old tail", "new 1"]);
    assert_eq!(position(&records[2]), 6);

    append(&path, "new 2\n");
    let records = poll_lines(&mut task, 1, Duration::from_secs(2)).await;
    assert_eq!(values(&records), ["new 2"]);
    assert_eq!(position(&records[0]), 12);
}

#[tokio::test]
async fn a_partial_last_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "done\nhalf").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    assert_eq!(values(&task.poll().await.unwrap()), ["done"]);
    assert!(task.poll().await.unwrap().is_empty());

    append(&path, " and rest\n");
    let records = poll_lines(&mut task, 1, Duration::from_secs(2)).await;
    assert_eq!(values(&records), ["half and rest"]);
    assert_eq!(position(&records[0]), 19);
}

#[tokio::test]
async fn batch_size_caps_each_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let text: String = (0..7).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let mut task = start(props(&path, &[("batch.size", "3")]), vec![]).await;

    let mut got = Vec::new();
    for expected in [3, 3, 1] {
        let records = task.poll().await.unwrap();
        assert_eq!(records.len(), expected);
        got.extend(values(&records));
    }
    let want: Vec<String> = (0..7).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn invalid_utf8_is_replaced_and_offsets_count_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, b"a\xffb\nok\n").unwrap();
    let mut task = start(props(&path, &[]), vec![]).await;
    let records = task.poll().await.unwrap();
    assert_eq!(values(&records), ["a\u{fffd}b", "ok"]);
    assert_eq!(position(&records[0]), 4);
    assert_eq!(position(&records[1]), 7);
}

#[tokio::test]
async fn missing_topic_is_a_config_error_naming_the_key() {
    let mut p = props(Path::new("x.txt"), &[]);
    p.remove("topic");

    let mut connector = FileStreamSourceConnector::default();
    let err = connector.validate(&p).unwrap_err();
    assert!(err.to_string().contains("topic"), "{err}");
    let err = connector.start(p.clone()).await.unwrap_err();
    assert!(err.to_string().contains("\"topic\""), "{err}");

    let mut task = FileStreamSourceTask::default();
    let context = SourceTaskContext {
        configs: p.clone(),
        offset_storage_reader: Arc::new(StoredOffsets(vec![])),
    };
    let err = task.start(p, context).await.unwrap_err();
    assert!(err.to_string().contains("\"topic\""), "{err}");
}

#[tokio::test]
async fn connector_hands_out_exactly_one_task_config() {
    let p = props(Path::new("x.txt"), &[("tasks.max", "5")]);
    let mut connector = FileStreamSourceConnector::default();
    connector.start(p.clone()).await.unwrap();
    assert_eq!(connector.task_configs(5).unwrap(), vec![p]);
    assert_eq!(connector.version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(connector.create_task().version(), env!("CARGO_PKG_VERSION"));
}
