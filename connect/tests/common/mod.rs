//! Shared by the Connect integration tests: an in-process broker, small test connectors and
//! helpers. Each test binary uses a subset, hence the dead-code allowance.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use sluice_broker::{Broker, BrokerConfig};
use sluice_client::{ClientConfig, Consumer, TopicPartition};
use sluice_connect::connector::{
    ConfigKey, ConfigType, ConnectorRegistry, Importance, Props, SinkConnector, SinkRecord,
    SinkTask, SinkTaskContext, SourceConnector, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, SourceTaskContext,
};
use sluice_connect::data::{Schema, Value};
use sluice_connect::runtime::WorkerConfig;
use sluice_connect::{ConnectError, Result};
use tokio::sync::oneshot;

// ---- an in-process broker ----------------------------------------------------------------

pub struct RunningBroker {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn start_broker(dir: &Path) -> RunningBroker {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("logs"));
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config.offsets_topic.partitions = 1;
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.local_addr();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        broker
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    RunningBroker { addr, stop, task }
}

impl RunningBroker {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

// ---- test connectors -----------------------------------------------------------------------

/// Emits `record-1` .. `record-<count>` to `topic`, resuming after its saved position.
/// It declares `count` but, like FileStreamSource, only checks `topic` in `validate`, so
/// validation is exercised both ways.
pub struct CountingSource {
    props: Props,
}

#[async_trait]
impl SourceConnector for CountingSource {
    fn version(&self) -> String {
        "test".into()
    }
    fn validate(&self, props: &Props) -> Result<()> {
        match props.get("topic") {
            Some(t) if !t.trim().is_empty() => Ok(()),
            _ => Err(ConnectError::Config(
                "missing required configuration \"topic\"".into(),
            )),
        }
    }
    fn config_keys(&self) -> Vec<ConfigKey> {
        vec![
            ConfigKey::required(
                "count",
                ConfigType::Long,
                Importance::High,
                "How many records to emit.",
            )
            .group("Counting"),
            ConfigKey::optional(
                "fail",
                ConfigType::String,
                None,
                Importance::Low,
                "Set to make every poll fail.",
            )
            .group("Counting")
            .display_name("Fail"),
        ]
    }
    async fn start(&mut self, props: Props) -> Result<()> {
        self.props = props;
        Ok(())
    }
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(CountingTask::default())
    }
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

#[derive(Default)]
pub struct CountingTask {
    next: i64,
    count: i64,
    topic: String,
    fail: bool,
    /// `fail.while.exists`: polls fail while this file exists, so a test can mend a failed
    /// task and see a restart bring it back.
    fail_while: Option<std::path::PathBuf>,
}

pub fn counter_partition() -> SourcePartition {
    SourcePartition::from([("source".to_string(), json!("counter"))])
}

#[async_trait]
impl SourceTask for CountingTask {
    fn version(&self) -> String {
        "test".into()
    }
    async fn start(&mut self, props: Props, context: SourceTaskContext) -> Result<()> {
        self.count = props["count"].parse().unwrap();
        self.topic = props["topic"].clone();
        self.fail = props.contains_key("fail");
        self.fail_while = props.get("fail.while.exists").map(Into::into);
        let saved = context.offset_storage_reader.offset(&counter_partition());
        self.next = saved
            .and_then(|o| o.get("position").and_then(|p| p.as_i64()))
            .unwrap_or(0)
            + 1;
        Ok(())
    }
    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if self.fail || self.fail_while.as_ref().is_some_and(|f| f.exists()) {
            return Err(ConnectError::Connector("boom: the source is broken".into()));
        }
        let mut batch = Vec::new();
        while self.next <= self.count && batch.len() < 7 {
            let offset = SourceOffset::from([("position".to_string(), json!(self.next))]);
            batch.push(SourceRecord::new(
                counter_partition(),
                offset,
                self.topic.clone(),
                Some(Schema::STRING),
                Value::from(format!("record-{}", self.next)),
            ));
            self.next += 1;
        }
        Ok(batch)
    }
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

pub type Received = Arc<Mutex<Vec<SinkRecord>>>;

/// Keeps every record it is given in `received`.
pub struct CollectingSink {
    props: Props,
    received: Received,
}

#[async_trait]
impl SinkConnector for CollectingSink {
    fn version(&self) -> String {
        "test".into()
    }
    async fn start(&mut self, props: Props) -> Result<()> {
        self.props = props;
        Ok(())
    }
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(CollectingTask {
            received: self.received.clone(),
        })
    }
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

pub struct CollectingTask {
    received: Received,
}

#[async_trait]
impl SinkTask for CollectingTask {
    fn version(&self) -> String {
        "test".into()
    }
    async fn start(&mut self, _props: Props, _context: SinkTaskContext) -> Result<()> {
        Ok(())
    }
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        self.received.lock().unwrap().extend(records);
        Ok(())
    }
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

pub fn registry(received: &Received) -> ConnectorRegistry {
    let mut r = ConnectorRegistry::new();
    r.register_source("test.CountingSourceConnector", || {
        Box::new(CountingSource {
            props: Props::new(),
        })
    });
    let received = received.clone();
    r.register_sink("test.CollectingSinkConnector", move || {
        Box::new(CollectingSink {
            props: Props::new(),
            received: received.clone(),
        })
    });
    r
}

// ---- helpers -------------------------------------------------------------------------------

pub fn props(pairs: &[(&str, &str)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn worker_config(broker: SocketAddr, dir: &Path) -> WorkerConfig {
    let offsets = dir.join("connect.offsets");
    WorkerConfig::from_props(
        &props(&[
            ("bootstrap.servers", &broker.to_string()),
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("key.converter.schemas.enable", "true"),
            ("value.converter.schemas.enable", "true"),
            ("offset.storage.file.filename", offsets.to_str().unwrap()),
            ("offset.flush.interval.ms", "100"),
            ("producer.linger.ms", "1"),
        ]),
        "test",
    )
    .unwrap()
}

pub fn source_props(topic: &str, count: usize) -> Props {
    props(&[
        ("connector.class", "CountingSource"),
        ("topic", topic),
        ("count", &count.to_string()),
    ])
}

/// Every record value of partition 0 of `topic`, once there are `want` of them.
pub async fn read_values(broker: SocketAddr, topic: &str, want: usize) -> Vec<String> {
    let mut consumer = Consumer::new(
        ClientConfig::new()
            .set("bootstrap.servers", broker.to_string())
            .set("auto.offset.reset", "earliest"),
    )
    .unwrap();
    consumer.assign([TopicPartition::new(topic, 0)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    while values.len() < want && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    // Anything beyond `want` would be a duplicate: give it a moment to show up.
    for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
        values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    consumer.close().await.unwrap();
    values
}

pub fn envelope(n: usize) -> String {
    format!(r#"{{"schema":{{"type":"string","optional":false}},"payload":"record-{n}"}}"#)
}

pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn values_of(received: &Received) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.value.clone())
        .collect()
}
