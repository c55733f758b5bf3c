//! A third-party source connector, written against the `sluice-connect` API and run by the same
//! `Worker` that `sluice connect-standalone` uses: every `interval.ms` it emits "tick N" to a topic,
//! and a restart resumes the count from the last committed offset.
//!
//! ```sh
//! cargo run --release -p sluice-examples --example ticker_connector -- localhost:9092 ticks
//! kcat -b localhost:9092 -t ticks -C
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_connect::connector::{
    ConnectorRegistry, Props, SourceConnector, SourcePartition, SourceRecord, SourceTask,
    SourceTaskContext,
};
use sluice_connect::data::{Schema, Value};
use sluice_connect::error::{ConnectError, Result};
use sluice_connect::runtime::{Worker, WorkerConfig};

/// The connector: validates its configuration and hands its one task the settings.
#[derive(Default)]
struct TickerConnector {
    props: Props,
}

#[async_trait]
impl SourceConnector for TickerConnector {
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn validate(&self, props: &Props) -> Result<()> {
        if props.get("topic").map_or(true, |t| t.trim().is_empty()) {
            return Err(ConnectError::Config("topic: required".into()));
        }
        Ok(())
    }

    async fn start(&mut self, props: Props) -> Result<()> {
        self.validate(&props)?;
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        // One counter: more tasks would emit the same ticks twice.
        Ok(vec![self.props.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::<TickerTask>::default()
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The task: one tick per poll, its count kept as the source offset.
#[derive(Default)]
struct TickerTask {
    topic: String,
    interval: Duration,
    next: u64,
}

fn partition() -> SourcePartition {
    SourcePartition::from([("ticker".to_string(), json!("main"))])
}

#[async_trait]
impl SourceTask for TickerTask {
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    async fn start(&mut self, props: Props, context: SourceTaskContext) -> Result<()> {
        self.topic = props["topic"].clone();
        let ms = props
            .get("interval.ms")
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| ConnectError::Config("interval.ms: expected milliseconds".into()))?
            .unwrap_or(1000);
        self.interval = Duration::from_millis(ms);
        // Resume after the last tick the worker committed.
        self.next = context
            .offset_storage_reader
            .offset(&partition())
            .and_then(|o| o.get("count").and_then(|c| c.as_u64()))
            .map_or(1, |c| c + 1);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        tokio::time::sleep(self.interval).await;
        let n = self.next;
        self.next += 1;
        let offset = BTreeMap::from([("count".to_string(), json!(n))]);
        Ok(vec![SourceRecord::new(
            partition(),
            offset,
            self.topic.clone(),
            Some(Schema::STRING),
            Value::from(format!("tick {n}")),
        )])
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), String> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(bootstrap), Some(topic)) = (args.next(), args.next()) else {
        return Err("usage: ticker_connector BOOTSTRAP_SERVERS TOPIC".into());
    };
    // Register the new class next to the built-in ones; `connector.class` finds it by name.
    let mut registry = ConnectorRegistry::new();
    sluice_connectors::register(&mut registry);
    registry.register_source("com.example.TickerConnector", || {
        Box::<TickerConnector>::default()
    });
    let worker_props: Props = [
        ("bootstrap.servers", bootstrap.as_str()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        ("offset.storage.file.filename", "/tmp/ticker.offsets"),
        ("offset.flush.interval.ms", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config =
        WorkerConfig::from_props(&worker_props, "ticker_connector").map_err(|e| e.to_string())?;
    let worker = Worker::new(config, registry).map_err(|e| e.to_string())?;
    let connector: Props = [
        ("connector.class", "TickerConnector"),
        ("topic", topic.as_str()),
        ("interval.ms", "500"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    worker
        .start_connector("ticker", connector)
        .await
        .map_err(|e| e.to_string())?;
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    worker.stop().await;
    Ok(())
}
