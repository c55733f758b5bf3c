//! `FileStreamSinkConnector`: appends each record's value as one line to a file (or stdout).
//! Delivery is at-least-once: `flush` fsyncs the file before the worker commits offsets.

use std::collections::HashMap;

use async_trait::async_trait;
use sluice_connect::connector::{
    Props, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, TopicPartition,
};
use sluice_connect::data::Value;
use sluice_connect::{ConnectError, Result};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use crate::config;

pub const FILE_CONFIG: &str = "file";

/// Kafka's `FileStreamSinkConnector`. It runs a single task, unlike Kafka's (which hands
/// `tasks.max` copies of the config out): several tasks appending to one file through their
/// own buffers could interleave inside a line.
#[derive(Debug, Default)]
pub struct FileStreamSinkConnector {
    props: Props,
}

#[async_trait]
impl SinkConnector for FileStreamSinkConnector {
    fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    async fn start(&mut self, props: Props) -> Result<()> {
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

enum Output {
    File {
        name: String,
        writer: BufWriter<tokio::fs::File>,
    },
    Stdout(BufWriter<tokio::io::Stdout>),
}

impl Output {
    fn describe(&self) -> &str {
        match self {
            Output::File { name, .. } => name,
            Output::Stdout(_) => "stdout",
        }
    }

    fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        match self {
            Output::File { writer, .. } => writer,
            Output::Stdout(writer) => writer,
        }
    }

    /// Empties the buffer and, for a file, waits until the data is on disk: offsets are
    /// committed right after this, so anything still in a cache could be lost with them.
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::File { writer, .. } => {
                writer.flush().await?;
                writer.get_mut().sync_data().await
            }
            Output::Stdout(writer) => writer.flush().await,
        }
    }
}

/// Writes every record's value as a line and makes it durable on `flush`.
///
/// Values are written as their Kafka-like string form (`Value`'s `Display`): a STRING as is,
/// null as `null`, containers in Java's `toString` shapes. Existing content is kept; lines are
/// appended. After a crash between a write and the offset commit, the lines written since the
/// last commit are written again on restart — that is the at-least-once trade-off.
#[derive(Default)]
pub struct FileStreamSinkTask {
    output: Option<Output>,
}

impl FileStreamSinkTask {
    fn output(&mut self) -> Result<&mut Output> {
        self.output
            .as_mut()
            .ok_or_else(|| ConnectError::Connector("FileStreamSinkTask used before start".into()))
    }
}

fn io_error(output: &Output, what: &str, e: std::io::Error) -> ConnectError {
    ConnectError::Connector(format!("{what} {}: {e}", output.describe()))
}

/// The line written for one value: a string verbatim, anything else in its Kafka-like form.
pub fn line_for(value: &Value) -> String {
    let mut line = String::new();
    push_line(&mut line, value);
    line
}

fn push_line(out: &mut String, value: &Value) {
    use std::fmt::Write;
    match value {
        Value::String(s) => out.push_str(s),
        // Writing to a String cannot fail.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn size_hint(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 1,
        _ => 16,
    }
}

/// A crash in the middle of a write can leave the last line half written. Those records were
/// not committed, so they come again whole; ending the torn bytes with a newline keeps the
/// next line from being glued to them. The bytes are kept, not cut: the file may hold text
/// that was there before this sink, and nothing here can tell the two apart.
async fn end_torn_line(file: &mut tokio::fs::File) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let len = file.metadata().await?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(std::io::SeekFrom::Start(len - 1)).await?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last).await?;
    if last[0] != b'\n' {
        tracing::warn!(
            bytes = len,
            "the sink file does not end with a newline (a write cut short?); ending its last line"
        );
        file.write_all(b"\n").await?;
        file.flush().await?;
    }
    Ok(())
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    async fn start(&mut self, props: Props, _context: SinkTaskContext) -> Result<()> {
        self.output = Some(match config::optional(&props, FILE_CONFIG) {
            None => Output::Stdout(BufWriter::new(tokio::io::stdout())),
            Some(name) => {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&name)
                    .await
                    .map_err(|e| ConnectError::Connector(format!("opening {name}: {e}")))?;
                end_torn_line(&mut file)
                    .await
                    .map_err(|e| ConnectError::Connector(format!("checking {name}: {e}")))?;
                Output::File {
                    name,
                    writer: BufWriter::new(file),
                }
            }
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let output = self.output()?;
        let mut text = String::with_capacity(records.iter().map(|r| size_hint(&r.value)).sum());
        for record in &records {
            push_line(&mut text, &record.value);
            text.push('\n');
        }
        // Handed to the OS at once, as Kafka's sink does, so a line shows up in the file while
        // the worker is still between commits; `flush` adds the fsync that commits rely on.
        let writer = output.writer();
        let mut result = writer.write_all(text.as_bytes()).await;
        if result.is_ok() {
            result = writer.flush().await;
        }
        result.map_err(|e| io_error(output, "writing to", e))
    }

    async fn flush(&mut self, _offsets: &HashMap<TopicPartition, i64>) -> Result<()> {
        let output = self.output()?;
        let result = output.flush().await;
        result.map_err(|e| io_error(output, "flushing", e))
    }

    async fn stop(&mut self) -> Result<()> {
        // The worker flushes before committing; this only saves what a stop without a final
        // commit would otherwise leave in the buffer (it will be redelivered anyway).
        if let Some(mut output) = self.output.take() {
            if let Err(e) = output.flush().await {
                tracing::warn!(output = output.describe(), error = %e, "flush on stop failed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connect::data::{Schema, SchemaBuilder, Struct};

    #[tokio::test]
    async fn a_torn_last_line_is_ended_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "whole\nhal").unwrap();
        let mut task = FileStreamSinkTask::default();
        let props = Props::from([(FILE_CONFIG.to_string(), path.display().to_string())]);
        task.start(props.clone(), SinkTaskContext::default())
            .await
            .unwrap();
        let record = SinkRecord {
            value: Value::from("next"),
            ..SinkRecord::default()
        };
        task.put(vec![record]).await.unwrap();
        task.stop().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "whole\nhal\nnext\n"
        );
        // A file that ends cleanly is left as it is.
        task.start(props, SinkTaskContext::default()).await.unwrap();
        task.stop().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "whole\nhal\nnext\n"
        );
    }

    #[test]
    fn lines_use_kafka_string_forms() {
        assert_eq!(line_for(&Value::from("plain")), "plain");
        assert_eq!(line_for(&Value::Null), "null");
        assert_eq!(line_for(&Value::Int32(42)), "42");
        assert_eq!(
            line_for(&Value::Array(vec![Value::Int8(1), Value::from("b")])),
            "[1, b]"
        );
        let schema = SchemaBuilder::struct_().field("a", Schema::INT32).build();
        let s = Struct::new(schema).unwrap().with("a", 1i32).unwrap();
        assert_eq!(line_for(&Value::Struct(s)), "Struct{a=1}");
    }
}
