//! The connector API: source and sink connectors, their tasks, records and task contexts.
//! `ConnectorRegistry` maps `connector.class` names to factories so a worker can build connectors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::data::{Schema, Value};
use crate::error::{ConnectError, Result};

/// String-to-string configuration, as connectors and tasks receive it.
pub type Props = BTreeMap<String, String>;

/// Where a source record came from (a file name, a table...). Stored as JSON in the offsets
/// topic, hence JSON values rather than Connect values.
///
/// Shared rather than owned: every record of a partition carries the same one, and a source
/// emitting a million records a second should not copy (and free) a map for each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePartition(Arc<BTreeMap<String, serde_json::Value>>);

impl SourcePartition {
    /// The empty partition, for sources (like stdin) that cannot resume.
    pub fn new() -> Self {
        SourcePartition::default()
    }
}

impl std::ops::Deref for SourcePartition {
    type Target = BTreeMap<String, serde_json::Value>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<BTreeMap<String, serde_json::Value>> for SourcePartition {
    fn from(map: BTreeMap<String, serde_json::Value>) -> Self {
        SourcePartition(Arc::new(map))
    }
}

impl<const N: usize> From<[(String, serde_json::Value); N]> for SourcePartition {
    fn from(entries: [(String, serde_json::Value); N]) -> Self {
        SourcePartition(Arc::new(BTreeMap::from(entries)))
    }
}

impl FromIterator<(String, serde_json::Value)> for SourcePartition {
    fn from_iter<I: IntoIterator<Item = (String, serde_json::Value)>>(iter: I) -> Self {
        SourcePartition(Arc::new(iter.into_iter().collect()))
    }
}

impl serde::Serialize for SourcePartition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SourcePartition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(SourcePartition::from)
    }
}

/// How far a source has read within its `SourcePartition` (a byte position, a row id...).
pub type SourceOffset = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub schema: Option<Schema>,
    pub value: Value,
}

/// A record produced by a source task, before conversion to bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceRecord {
    pub source_partition: SourcePartition,
    pub source_offset: SourceOffset,
    pub topic: String,
    /// `None` lets the producer's partitioner choose.
    pub partition: Option<i32>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    /// Milliseconds since the epoch; `None` means the producer stamps it.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl SourceRecord {
    /// The common case: a value with its schema, no key.
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: impl Into<String>,
        value_schema: Option<Schema>,
        value: Value,
    ) -> Self {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            value_schema,
            value,
            ..SourceRecord::default()
        }
    }
}

/// A record handed to a sink task, already converted from bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

/// Reads the last committed offset of a source partition, so a restarted task resumes.
pub trait OffsetStorageReader: Send + Sync {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset>;

    fn offsets(&self, partitions: &[SourcePartition]) -> Vec<(SourcePartition, SourceOffset)> {
        partitions
            .iter()
            .filter_map(|p| self.offset(p).map(|o| (p.clone(), o)))
            .collect()
    }
}

/// What the runtime offers a running source task.
#[derive(Clone)]
pub struct SourceTaskContext {
    pub configs: Props,
    pub offset_storage_reader: Arc<dyn OffsetStorageReader>,
}

/// What the runtime offers a running sink task: flow control over its partitions and a way
/// to ask for an early offset commit. Cloned handles share state with the worker.
#[derive(Debug, Clone, Default)]
pub struct SinkTaskContext {
    pub configs: Props,
    state: Arc<Mutex<SinkControl>>,
}

#[derive(Debug, Default)]
struct SinkControl {
    paused: BTreeSet<TopicPartition>,
    commit_requested: bool,
    offset_resets: HashMap<TopicPartition, i64>,
}

impl SinkTaskContext {
    pub fn new(configs: Props) -> Self {
        SinkTaskContext {
            configs,
            state: Arc::default(),
        }
    }

    fn control(&self) -> std::sync::MutexGuard<'_, SinkControl> {
        // A panicking task must not wedge the worker; the state stays consistent per call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.control().paused.extend(partitions.iter().cloned());
    }

    pub fn resume(&self, partitions: &[TopicPartition]) {
        let mut c = self.control();
        for tp in partitions {
            c.paused.remove(tp);
        }
    }

    pub fn paused(&self) -> BTreeSet<TopicPartition> {
        self.control().paused.clone()
    }

    pub fn request_commit(&self) {
        self.control().commit_requested = true;
    }

    /// For the worker: whether a commit was requested since the last call.
    pub fn take_commit_request(&self) -> bool {
        std::mem::take(&mut self.control().commit_requested)
    }

    /// Asks the worker to rewind or skip a partition to `offset` before the next `put`.
    pub fn reset_offset(&self, partition: TopicPartition, offset: i64) {
        self.control().offset_resets.insert(partition, offset);
    }

    /// For the worker: offset resets requested since the last call.
    pub fn take_offset_resets(&self) -> HashMap<TopicPartition, i64> {
        std::mem::take(&mut self.control().offset_resets)
    }
}

/// How a setting's value is read, named as Kafka's `ConfigDef.Type` so REST clients that
/// render forms from it recognise the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// One setting a connector understands (Kafka's `ConfigDef.ConfigKey`, without validators:
/// checking values stays the job of `validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: String,
    pub kind: ConfigType,
    /// A required key has no default; an optional one may still default to nothing.
    pub required: bool,
    pub default: Option<String>,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub display_name: String,
}

impl ConfigKey {
    /// A key that must be set.
    pub fn required(
        name: &str,
        kind: ConfigType,
        importance: Importance,
        documentation: &str,
    ) -> ConfigKey {
        ConfigKey {
            name: name.to_string(),
            kind,
            required: true,
            default: None,
            importance,
            documentation: documentation.to_string(),
            group: None,
            display_name: name.to_string(),
        }
    }

    /// A key that may be left out, taking `default` then.
    pub fn optional(
        name: &str,
        kind: ConfigType,
        default: Option<&str>,
        importance: Importance,
        documentation: &str,
    ) -> ConfigKey {
        ConfigKey {
            required: false,
            default: default.map(str::to_string),
            ..ConfigKey::required(name, kind, importance, documentation)
        }
    }

    pub fn group(mut self, group: &str) -> ConfigKey {
        self.group = Some(group.to_string());
        self
    }

    pub fn display_name(mut self, display_name: &str) -> ConfigKey {
        self.display_name = display_name.to_string();
        self
    }
}

/// Splits a source job into task configurations (Kafka's `SourceConnector`).
#[async_trait]
pub trait SourceConnector: Send + Sync {
    fn version(&self) -> String;
    async fn start(&mut self, props: Props) -> Result<()>;
    /// At most `max_tasks` configurations, one per task to run.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>>;
    fn create_task(&self) -> Box<dyn SourceTask>;
    async fn stop(&mut self) -> Result<()>;
    /// Rejects a configuration before the connector is started with it.
    fn validate(&self, _props: &Props) -> Result<()> {
        Ok(())
    }
    /// The settings this connector reads, for the REST API's plugin config and validation
    /// answers. Keys declared without a default are reported missing by validation even when
    /// `validate` does not check them.
    fn config_keys(&self) -> Vec<ConfigKey> {
        Vec::new()
    }
}

/// Reads from an external system (Kafka's `SourceTask`).
#[async_trait]
pub trait SourceTask: Send {
    fn version(&self) -> String;
    async fn start(&mut self, props: Props, context: SourceTaskContext) -> Result<()>;
    /// Returns the next batch; an empty batch means nothing is available right now.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>>;
    /// Called after the offsets of everything polled so far have been committed.
    async fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// Called once per record after Kafka acknowledged it. Not async, as in Kafka: it runs for
    /// every record, and it is for bookkeeping (acking a message queue's delivery tag...), not
    /// for I/O that would hold up the records behind it.
    fn commit_record(&mut self, _record: &SourceRecord) -> Result<()> {
        Ok(())
    }
    async fn stop(&mut self) -> Result<()>;
}

/// Splits a sink job into task configurations (Kafka's `SinkConnector`).
#[async_trait]
pub trait SinkConnector: Send + Sync {
    fn version(&self) -> String;
    async fn start(&mut self, props: Props) -> Result<()>;
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>>;
    fn create_task(&self) -> Box<dyn SinkTask>;
    async fn stop(&mut self) -> Result<()>;
    fn validate(&self, _props: &Props) -> Result<()> {
        Ok(())
    }
    fn config_keys(&self) -> Vec<ConfigKey> {
        Vec::new()
    }
}

/// Writes to an external system (Kafka's `SinkTask`).
#[async_trait]
pub trait SinkTask: Send {
    fn version(&self) -> String;
    async fn start(&mut self, props: Props, context: SinkTaskContext) -> Result<()>;
    /// Partitions newly assigned to this task.
    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<()> {
        Ok(())
    }
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()>;
    /// Makes everything `put` so far durable; `offsets` are the next offsets to consume.
    async fn flush(&mut self, _offsets: &HashMap<TopicPartition, i64>) -> Result<()> {
        Ok(())
    }
    /// Returns the offsets safe to commit. By default: flush, then commit all of them.
    async fn pre_commit(
        &mut self,
        offsets: HashMap<TopicPartition, i64>,
    ) -> Result<HashMap<TopicPartition, i64>> {
        self.flush(&offsets).await?;
        Ok(offsets)
    }
    /// Partitions taken away from this task; buffered data for them should be written now.
    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<()> {
        Ok(())
    }
    async fn stop(&mut self) -> Result<()>;
}

/// A freshly built connector of either kind.
pub enum Connector {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

type SourceFactory = Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>;
type SinkFactory = Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>;

#[derive(Clone)]
enum Factory {
    Source(SourceFactory),
    Sink(SinkFactory),
}

/// Connector plugins by class name. A class answers to its full name, its simple name
/// (`FileStreamSourceConnector`) and that name without `Connector` (`FileStreamSource`).
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    factories: Vec<(String, Factory)>,
}

impl ConnectorRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register_source(
        &mut self,
        class: impl Into<String>,
        factory: impl Fn() -> Box<dyn SourceConnector> + Send + Sync + 'static,
    ) {
        self.insert(class.into(), Factory::Source(Arc::new(factory)));
    }

    pub fn register_sink(
        &mut self,
        class: impl Into<String>,
        factory: impl Fn() -> Box<dyn SinkConnector> + Send + Sync + 'static,
    ) {
        self.insert(class.into(), Factory::Sink(Arc::new(factory)));
    }

    fn insert(&mut self, class: String, factory: Factory) {
        self.factories.retain(|(c, _)| *c != class);
        self.factories.push((class, factory));
    }

    /// Full class names of everything registered, in registration order.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.factories.iter().map(|(c, _)| c.as_str())
    }

    /// Resolves a name to its full class name. An exact full name wins over aliases, so two
    /// plugins sharing a simple name stay reachable by their full names.
    pub fn resolve(&self, name: &str) -> Result<&str> {
        let name = name.trim();
        self.factories
            .iter()
            .find(|(c, _)| c == name)
            .or_else(|| {
                self.factories
                    .iter()
                    .find(|(c, _)| class_matches(c, name, "Connector"))
            })
            .map(|(c, _)| c.as_str())
            .ok_or_else(|| ConnectError::UnknownClass {
                kind: "connector",
                class: name.to_string(),
            })
    }

    pub fn create(&self, name: &str) -> Result<Connector> {
        let class = self.resolve(name)?;
        let (_, factory) = self
            .factories
            .iter()
            .find(|(c, _)| c == class)
            .expect("resolve returned a registered class");
        Ok(match factory {
            Factory::Source(make) => Connector::Source(make()),
            Factory::Sink(make) => Connector::Sink(make()),
        })
    }
}

/// Whether `name` names the class `full`: the full name itself, its simple name, or the
/// simple name without `suffix` — Kafka's plugin alias rules.
pub(crate) fn class_matches(full: &str, name: &str, suffix: &str) -> bool {
    let simple = full.rsplit('.').next().unwrap_or(full);
    name == full
        || name == simple
        || simple
            .strip_suffix(suffix)
            .is_some_and(|short| !short.is_empty() && name == short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Schema;

    struct Dummy {
        started: Option<Props>,
    }

    #[async_trait]
    impl SourceConnector for Dummy {
        fn version(&self) -> String {
            "1.0".into()
        }
        async fn start(&mut self, props: Props) -> Result<()> {
            self.started = Some(props);
            Ok(())
        }
        fn task_configs(&self, max_tasks: usize) -> Result<Vec<Props>> {
            let base = self.started.clone().unwrap_or_default();
            Ok(vec![base; max_tasks.min(2)])
        }
        fn create_task(&self) -> Box<dyn SourceTask> {
            Box::new(DummyTask {
                offset: 0,
                context: None,
            })
        }
        async fn stop(&mut self) -> Result<()> {
            Ok(())
        }
    }

    struct DummyTask {
        offset: i64,
        context: Option<SourceTaskContext>,
    }

    fn partition() -> SourcePartition {
        SourcePartition::from([("file".to_string(), serde_json::json!("a.txt"))])
    }

    #[async_trait]
    impl SourceTask for DummyTask {
        fn version(&self) -> String {
            "1.0".into()
        }
        async fn start(&mut self, _props: Props, context: SourceTaskContext) -> Result<()> {
            let committed = context.offset_storage_reader.offset(&partition());
            self.offset = committed
                .and_then(|o| o.get("position").and_then(|p| p.as_i64()))
                .unwrap_or(0);
            self.context = Some(context);
            Ok(())
        }
        async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
            self.offset += 1;
            let offset = SourceOffset::from([("position".to_string(), self.offset.into())]);
            Ok(vec![SourceRecord::new(
                partition(),
                offset,
                "t",
                Some(Schema::STRING),
                Value::from(format!("line {}", self.offset)),
            )])
        }
        async fn stop(&mut self) -> Result<()> {
            Ok(())
        }
    }

    struct FixedOffsets;

    impl OffsetStorageReader for FixedOffsets {
        fn offset(&self, p: &SourcePartition) -> Option<SourceOffset> {
            (*p == partition()).then(|| SourceOffset::from([("position".to_string(), 41.into())]))
        }
    }

    fn registry() -> ConnectorRegistry {
        let mut r = ConnectorRegistry::new();
        r.register_source("com.example.DummySourceConnector", || {
            Box::new(Dummy { started: None })
        });
        r
    }

    #[tokio::test]
    async fn registered_source_is_built_by_any_alias_and_runs() {
        let r = registry();
        for name in [
            "com.example.DummySourceConnector",
            "DummySourceConnector",
            "DummySource",
        ] {
            assert_eq!(r.resolve(name).unwrap(), "com.example.DummySourceConnector");
        }
        let Connector::Source(mut c) = r.create("DummySource").unwrap() else {
            panic!("expected a source connector");
        };
        c.start(Props::from([("k".into(), "v".into())]))
            .await
            .unwrap();
        let configs = c.task_configs(5).unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0]["k"], "v");

        let mut task = c.create_task();
        let context = SourceTaskContext {
            configs: configs[0].clone(),
            offset_storage_reader: Arc::new(FixedOffsets),
        };
        task.start(configs[0].clone(), context).await.unwrap();
        let records = task.poll().await.unwrap();
        // Resumed from the committed offset 41.
        assert_eq!(records[0].source_offset["position"], 42);
        assert_eq!(records[0].value, Value::from("line 42"));
        task.commit_record(&records[0]).unwrap();
        task.stop().await.unwrap();
        c.stop().await.unwrap();
    }

    #[test]
    fn unknown_connector_class_is_named() {
        let err = registry().create("FileStreamSource").err().unwrap();
        assert!(err
            .to_string()
            .contains("unknown connector class: FileStreamSource"));
        assert!(registry().resolve("Source").is_err());
    }

    #[test]
    fn full_names_disambiguate_shared_simple_names() {
        let mut r = registry();
        r.register_source("org.other.DummySourceConnector", || {
            Box::new(Dummy { started: None })
        });
        assert_eq!(
            r.resolve("org.other.DummySourceConnector").unwrap(),
            "org.other.DummySourceConnector"
        );
        assert_eq!(r.classes().count(), 2);
    }

    #[test]
    fn sink_context_tracks_pause_and_commit_requests() {
        let ctx = SinkTaskContext::new(Props::new());
        let worker_view = ctx.clone();
        let tp = TopicPartition::new("t", 0);
        ctx.pause(std::slice::from_ref(&tp));
        assert!(worker_view.paused().contains(&tp));
        ctx.resume(std::slice::from_ref(&tp));
        assert!(worker_view.paused().is_empty());
        ctx.request_commit();
        assert!(worker_view.take_commit_request());
        assert!(!worker_view.take_commit_request());
        ctx.reset_offset(tp.clone(), 7);
        assert_eq!(worker_view.take_offset_resets()[&tp], 7);
    }
}
