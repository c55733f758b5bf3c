//! FileStreamSinkTask driven directly against temp files: order, null values, durability
//! on flush and appending to what is already there.

use std::collections::HashMap;
use std::path::Path;

use sluice_connect::connector::{
    Props, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, TopicPartition,
};
use sluice_connect::data::{Schema, Value};
use sluice_connectors::{FileStreamSinkConnector, FileStreamSinkTask};

fn props(file: &Path) -> Props {
    Props::from([
        ("file".to_string(), file.display().to_string()),
        ("topics".to_string(), "lines".to_string()),
    ])
}

async fn start(file: &Path) -> FileStreamSinkTask {
    let mut task = FileStreamSinkTask::default();
    let p = props(file);
    task.start(p.clone(), SinkTaskContext::new(p))
        .await
        .unwrap();
    task
}

fn record(offset: i64, value_schema: Option<Schema>, value: Value) -> SinkRecord {
    SinkRecord {
        topic: "lines".into(),
        partition: 0,
        offset,
        value_schema,
        value,
        ..SinkRecord::default()
    }
}

fn string(offset: i64, s: &str) -> SinkRecord {
    record(offset, Some(Schema::STRING), Value::from(s))
}

fn offsets(next: i64) -> HashMap<TopicPartition, i64> {
    HashMap::from([(TopicPartition::new("lines", 0), next)])
}

#[tokio::test]
async fn writes_values_as_lines_in_order_and_flush_makes_them_visible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let mut task = start(&path).await;

    task.put(vec![string(0, "first"), string(1, "héllo")])
        .await
        .unwrap();
    task.put(vec![
        record(2, None, Value::Null),
        record(3, Some(Schema::INT64), Value::Int64(42)),
        record(4, Some(Schema::OPTIONAL_STRING), Value::Null),
    ])
    .await
    .unwrap();
    task.flush(&offsets(5)).await.unwrap();

    // Read through an independent handle: what flush promised is in the file itself.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "first\nhéllo\nnull\n42\nnull\n");
    task.stop().await.unwrap();
}

#[tokio::test]
async fn pre_commit_flushes_before_offsets_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let mut task = start(&path).await;
    task.put(vec![string(0, "a")]).await.unwrap();
    let committed = task.pre_commit(offsets(1)).await.unwrap();
    assert_eq!(committed, offsets(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\n");
}

#[tokio::test]
async fn appends_to_existing_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "already here\n").unwrap();

    let mut task = start(&path).await;
    task.put(vec![string(0, "new")]).await.unwrap();
    task.flush(&offsets(1)).await.unwrap();
    task.stop().await.unwrap();

    // A restarted task keeps appending too.
    let mut task = start(&path).await;
    task.put(vec![string(1, "again")]).await.unwrap();
    task.stop().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "already here\nnew\nagain\n"
    );
}

#[tokio::test]
async fn unwritable_file_fails_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("out.txt");
    let mut task = FileStreamSinkTask::default();
    let p = props(&path);
    let err = task
        .start(p.clone(), SinkTaskContext::new(p))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out.txt"), "{err}");
}

#[tokio::test]
async fn connector_accepts_worker_topic_settings_and_runs_one_task() {
    let mut p = props(Path::new("out.txt"));
    p.insert("topics.regex".into(), "lin.*".into());
    let mut connector = FileStreamSinkConnector::default();
    connector.validate(&p).unwrap();
    connector.start(p.clone()).await.unwrap();
    assert_eq!(connector.task_configs(3).unwrap(), vec![p]);
    assert_eq!(connector.version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(connector.create_task().version(), env!("CARGO_PKG_VERSION"));
}
