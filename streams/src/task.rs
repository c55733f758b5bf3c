//! A task: one sub-topology instantiated for one partition, with its own processors and stores.
//! Raw records in, records to produce out (sinks, repartition, changelogs); no I/O of its own.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::StreamsError;
use crate::processor::{Forward, Processor, ProcessorContext, PunctuationType, Schedule};
use crate::record::{
    InputRecord, OutputKind, OutputRecord, Record, RecordContext, RecordTimestampExtractor,
    TimestampExtractor,
};
use crate::state::{changelog_topic, StoreContext, StoreEntry, TaskStores};
use crate::topology::{NodeKind, SinkEncoder, SourceDecoder, TaskId, TopicRef, Topology};

/// What to do with a record whose key or value the source's serdes reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeserializationErrorPolicy {
    /// Stop the task with the error (Kafka's default, LogAndFailExceptionHandler).
    #[default]
    Fail,
    /// Log it, count it in `Task::skipped_records`, and go on.
    LogAndContinue,
}

/// Settings a task is created with; the runtime fills them from the streams config.
#[derive(Clone)]
pub struct TaskConfig {
    pub application_id: String,
    /// This task's directory under `state.dir`, for persistent stores.
    pub state_dir: Option<PathBuf>,
    pub default_timestamp_extractor: Arc<dyn TimestampExtractor>,
    pub deserialization_errors: DeserializationErrorPolicy,
    /// Bytes the task's record caches may hold before they are flushed early (Kafka's
    /// cache.max.bytes.buffering, the thread's share split among its tasks); 0 turns the
    /// caches off, so every write reaches store, changelog and downstream at once.
    pub cache_max_bytes: usize,
}

/// Kafka's default cache.max.bytes.buffering: 10 MiB.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 * 1024 * 1024;

impl TaskConfig {
    pub fn new(application_id: impl Into<String>) -> TaskConfig {
        TaskConfig {
            application_id: application_id.into(),
            state_dir: None,
            default_timestamp_extractor: Arc::new(RecordTimestampExtractor),
            deserialization_errors: DeserializationErrorPolicy::Fail,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
        }
    }
}

enum Body {
    Source {
        decoder: Arc<dyn SourceDecoder>,
        extractor: Arc<dyn TimestampExtractor>,
    },
    Processor(Box<dyn Processor>),
}

struct TaskNode {
    name: String,
    children: Vec<usize>,
    child_names: Vec<String>,
    body: Body,
}

struct Punctuation {
    node: usize,
    schedule: Schedule,
    next: i64,
}

/// Writes records to a topic through the sink's serdes.
struct SinkProcessor {
    topic: String,
    kind: OutputKind,
    encoder: Arc<dyn SinkEncoder>,
}

impl Processor for SinkProcessor {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (key, value) = self.encoder.encode(&self.topic, r.key, r.value)?;
        ctx.emit(OutputRecord {
            topic: self.topic.clone(),
            partition: None,
            kind: self.kind,
            timestamp: r.timestamp,
            key,
            value,
            headers: r.headers,
        });
        Ok(())
    }
}

/// Per-call values every processor context of a task shares.
struct Env<'a> {
    application_id: &'a str,
    task: TaskId,
    stream_time: i64,
    wall_clock_ms: i64,
}

pub struct Task {
    id: TaskId,
    application_id: String,
    nodes: Vec<TaskNode>,
    /// Resolved source topic -> local node.
    sources: Vec<(String, usize)>,
    stores: TaskStores,
    /// For each store (by its index in `stores`), the local nodes connected to it: they hear
    /// of its cache flushes.
    store_nodes: Vec<Vec<usize>>,
    cache_max_bytes: usize,
    punctuations: Vec<Punctuation>,
    stream_time: i64,
    partition_time: Vec<(String, i64)>,
    wall_clock_ms: i64,
    policy: DeserializationErrorPolicy,
    skipped: u64,
    dropped: u64,
    /// Emptied forward lists for `send` to reuse: a fresh one per node and record would cost
    /// an allocation at every step of every record.
    spare_forwards: Vec<Vec<Forward>>,
}

impl Task {
    /// Instantiates a sub-topology for one partition: processors from their suppliers, stores
    /// from theirs, then `init` on every processor.
    pub fn new(topology: &Topology, cfg: &TaskConfig, id: TaskId) -> Result<Task, StreamsError> {
        let sub = topology
            .subtopologies()
            .iter()
            .find(|s| s.id == id.subtopology)
            .ok_or_else(|| StreamsError::Topology(format!("no sub-topology {}", id.subtopology)))?;
        let app = cfg.application_id.as_str();
        let local = |global: usize| sub.nodes.iter().position(|&n| n == global);
        let mut nodes = Vec::new();
        let mut sources = Vec::new();
        for (li, &gi) in sub.nodes.iter().enumerate() {
            let spec = &topology.nodes[gi];
            let body = match &spec.kind {
                NodeKind::Source {
                    topics,
                    decoder,
                    extractor,
                } => {
                    for t in topics {
                        sources.push((t.resolve(app), li));
                    }
                    Body::Source {
                        decoder: decoder.clone(),
                        extractor: extractor
                            .clone()
                            .unwrap_or_else(|| cfg.default_timestamp_extractor.clone()),
                    }
                }
                NodeKind::Processor { supplier } => Body::Processor(supplier.get()),
                NodeKind::Sink { topic, encoder } => Body::Processor(Box::new(SinkProcessor {
                    topic: topic.resolve(app),
                    kind: match topic {
                        TopicRef::Internal(_) => OutputKind::Repartition,
                        TopicRef::External(_) => OutputKind::Sink,
                    },
                    encoder: encoder.clone(),
                })),
            };
            nodes.push(TaskNode {
                name: spec.name.clone(),
                children: spec.children.iter().filter_map(|&c| local(c)).collect(),
                child_names: spec
                    .children
                    .iter()
                    .map(|&c| topology.nodes[c].name.clone())
                    .collect(),
                body,
            });
        }
        let mut stores = TaskStores::new(id.partition);
        let store_ctx = StoreContext {
            application_id: app.to_string(),
            task: id,
            state_dir: cfg.state_dir.clone(),
        };
        let mut store_nodes = Vec::new();
        for name in &sub.stores {
            let spec = topology
                .store_spec(name)
                .ok_or_else(|| StreamsError::Topology(format!("undeclared store {name}")))?;
            let store = spec.supplier.build(&store_ctx)?;
            let changelog = spec.logged.then(|| changelog_topic(app, name));
            let cached = spec.cached && cfg.cache_max_bytes > 0;
            stores.add(StoreEntry::new(store, changelog, spec.timestamped, cached));
            store_nodes.push(
                (sub.nodes.iter().enumerate())
                    .filter(|(_, &gi)| topology.nodes[gi].stores.contains(name))
                    .map(|(li, _)| li)
                    .collect(),
            );
        }
        let mut task = Task {
            id,
            application_id: app.to_string(),
            nodes,
            sources,
            stores,
            store_nodes,
            cache_max_bytes: cfg.cache_max_bytes,
            punctuations: Vec::new(),
            stream_time: -1,
            partition_time: Vec::new(),
            wall_clock_ms: 0,
            policy: cfg.deserialization_errors,
            skipped: 0,
            dropped: 0,
            spare_forwards: Vec::new(),
        };
        task.init()?;
        Ok(task)
    }

    fn init(&mut self) -> Result<(), StreamsError> {
        let rc = RecordContext::default();
        let mut forwards = Vec::new();
        let mut outputs = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Body::Processor(p) = &mut node.body else {
                continue;
            };
            let mut schedules = Vec::new();
            let mut ctx = ProcessorContext {
                application_id: &self.application_id,
                task: self.id,
                node: &node.name,
                children: &node.child_names,
                record: &rc,
                timestamp: -1,
                stream_time: self.stream_time,
                wall_clock_ms: self.wall_clock_ms,
                forwards: &mut forwards,
                stores: &mut self.stores,
                outputs: &mut outputs,
                schedules: Some(&mut schedules),
                dropped: &mut self.dropped,
            };
            p.init(&mut ctx)?;
            if !forwards.is_empty() || !outputs.is_empty() {
                return Err(StreamsError::Topology(format!(
                    "{} forwarded or wrote records in init",
                    node.name
                )));
            }
            for s in schedules {
                let start = match s.kind {
                    PunctuationType::StreamTime => -1,
                    PunctuationType::WallClockTime => self.wall_clock_ms,
                };
                self.punctuations.push(Punctuation {
                    node: i,
                    schedule: s,
                    next: start.saturating_add(s.interval_ms),
                });
            }
        }
        Ok(())
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The resolved topics this task reads.
    pub fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|(t, _)| t.as_str())
    }

    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// The largest timestamp processed from `topic`'s partition (-1 before any): what a commit
    /// stores beside the offset, so stream time survives a restart or a move.
    pub fn partition_time(&self, topic: &str) -> i64 {
        self.partition_time
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(-1, |(_, ts)| *ts)
    }

    /// Takes a partition time back from a commit before processing starts: stream time is the
    /// largest of them, so windows closed before a restart stay closed.
    pub fn restore_partition_time(&mut self, topic: &str, timestamp: i64) {
        match self.partition_time.iter_mut().find(|(t, _)| t == topic) {
            Some((_, ts)) => *ts = (*ts).max(timestamp),
            None => self.partition_time.push((topic.to_string(), timestamp)),
        }
        self.stream_time = self.stream_time.max(timestamp);
    }

    /// Records dropped because their key or value could not be read (LogAndContinue).
    pub fn skipped_records(&self) -> u64 {
        self.skipped
    }

    /// Records processors dropped: late records for closed windows, records without the
    /// key an aggregation or join needs (Kafka's dropped-records metric).
    pub fn dropped_records(&self) -> u64 {
        self.dropped
    }

    pub fn stores(&self) -> &TaskStores {
        &self.stores
    }

    /// For restoring stores from their changelogs before processing starts.
    pub fn stores_mut(&mut self) -> &mut TaskStores {
        &mut self.stores
    }

    /// Processes one input record through the sub-topology, depth first, appending what it
    /// produces to `out`; then fires stream-time punctuations that became due.
    pub fn process(
        &mut self,
        record: InputRecord,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), StreamsError> {
        let Some(&(_, node)) = self.sources.iter().find(|(t, _)| *t == record.topic) else {
            return Err(StreamsError::Topology(format!(
                "task {} does not read topic {}",
                self.id, record.topic
            )));
        };
        let Body::Source { decoder, extractor } = &self.nodes[node].body else {
            unreachable!("sources map to source nodes");
        };
        let pt = self
            .partition_time
            .iter()
            .find(|(t, _)| *t == record.topic)
            .map_or(-1, |(_, ts)| *ts);
        let timestamp = extractor.extract(&record, pt);
        if timestamp < 0 {
            return Err(StreamsError::InvalidTimestamp {
                topic: record.topic,
                offset: record.offset,
                timestamp,
            });
        }
        let (key, value) = match decoder.decode(&record) {
            Ok(kv) => kv,
            Err(e) if self.policy == DeserializationErrorPolicy::LogAndContinue => {
                tracing::warn!(task = %self.id, topic = %record.topic, offset = record.offset,
                    "skipping a record that cannot be deserialized: {e}");
                self.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match self
            .partition_time
            .iter_mut()
            .find(|(t, _)| *t == record.topic)
        {
            Some((_, ts)) => *ts = (*ts).max(timestamp),
            None => self.partition_time.push((record.topic.clone(), timestamp)),
        }
        self.stream_time = self.stream_time.max(timestamp);
        let rc = RecordContext {
            topic: Some(record.topic),
            partition: record.partition,
            offset: Some(record.offset),
        };
        let rec = Record {
            key,
            value,
            timestamp,
            headers: record.headers,
        };
        self.walk(&rc, out).send(node, None, rec)?;
        self.punctuate(PunctuationType::StreamTime, self.stream_time, out)?;
        self.flush_caches_if_full(out)
    }

    /// Moves the wall clock (milliseconds) and fires wall-clock punctuations that are due.
    pub fn advance_wall_clock(
        &mut self,
        now_ms: i64,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), StreamsError> {
        self.wall_clock_ms = self.wall_clock_ms.max(now_ms);
        self.punctuate(PunctuationType::WallClockTime, self.wall_clock_ms, out)?;
        self.flush_caches_if_full(out)
    }

    fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), StreamsError> {
        for pi in 0..self.punctuations.len() {
            let p = &self.punctuations[pi];
            if p.schedule.kind != kind || p.next > now {
                continue;
            }
            let node = p.node;
            // The next firing is one interval after now, so a jump in time fires once.
            self.punctuations[pi].next = now.saturating_add(p.schedule.interval_ms);
            self.call_node(node, now, out, |p, ctx| p.punctuate(kind, now, ctx))?;
        }
        Ok(())
    }

    /// Runs a hook of the processor at local node `node` (outside `process`, so with no
    /// source record), then sends on what it forwarded.
    fn call_node(
        &mut self,
        node: usize,
        timestamp: i64,
        out: &mut Vec<OutputRecord>,
        hook: impl FnOnce(&mut dyn Processor, &mut ProcessorContext<'_>) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let rc = RecordContext {
            partition: self.id.partition,
            ..RecordContext::default()
        };
        self.walk(&rc, out).run(node, timestamp, hook)
    }

    /// A walk through the nodes for one record (or punctuation, or cache flush).
    fn walk<'w>(&'w mut self, rc: &'w RecordContext, out: &'w mut Vec<OutputRecord>) -> Walk<'w> {
        Walk {
            nodes: &mut self.nodes,
            stores: &mut self.stores,
            env: Env {
                application_id: &self.application_id,
                task: self.id,
                stream_time: self.stream_time,
                wall_clock_ms: self.wall_clock_ms,
            },
            rc,
            out,
            dropped: &mut self.dropped,
            spare: &mut self.spare_forwards,
        }
    }

    fn flush_caches_if_full(&mut self, out: &mut Vec<OutputRecord>) -> Result<(), StreamsError> {
        if self.stores.cache_size() > self.cache_max_bytes {
            self.flush_caches(out)?;
        }
        Ok(())
    }

    /// Passes every cached write on (store, changelog on `out`, and the changes the connected
    /// processors forward). Those changes may fill another cached store downstream, so this
    /// goes on until no cache holds writes: at most once per store in an acyclic topology.
    pub(crate) fn flush_caches(&mut self, out: &mut Vec<OutputRecord>) -> Result<(), StreamsError> {
        for _ in 0..=self.store_nodes.len() {
            let held = self.stores.held_writes();
            if held.is_empty() {
                return Ok(());
            }
            for si in held {
                let writes = self.stores.flush_cache(si, out)?;
                if writes.is_empty() {
                    continue;
                }
                let store = self.stores.name_at(si).to_string();
                for node in self.store_nodes[si].clone() {
                    self.call_node(node, self.stream_time, out, |p, ctx| {
                        p.cache_flushed(&store, &writes, ctx)
                    })?;
                }
            }
        }
        Err(StreamsError::Topology(format!(
            "task {}: flushing the record caches keeps writing to them (a processor writes to a \
             cached store from its own cache_flushed?)",
            self.id
        )))
    }

    /// Sets the task's share of the record cache budget, flushing at once if it holds more.
    pub fn set_cache_max_bytes(
        &mut self,
        bytes: usize,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), StreamsError> {
        self.cache_max_bytes = bytes;
        self.flush_caches_if_full(out)
    }

    /// Before offsets are committed: passes the cached writes on (their changelog records and
    /// the changes they forward land in `out`, to be produced and acknowledged before the
    /// commit), then flushes every store.
    pub fn flush(&mut self, out: &mut Vec<OutputRecord>) -> Result<(), StreamsError> {
        self.flush_caches(out)?;
        Ok(self.stores.flush()?)
    }

    pub fn close(&mut self) -> Result<(), StreamsError> {
        for n in &mut self.nodes {
            if let Body::Processor(p) = &mut n.body {
                p.close();
            }
        }
        Ok(self.stores.close()?)
    }
}

/// What one walk through a task's nodes works with: the nodes and stores, the source record's
/// context, and where outputs go.
struct Walk<'a> {
    nodes: &'a mut [TaskNode],
    stores: &'a mut TaskStores,
    env: Env<'a>,
    rc: &'a RecordContext,
    out: &'a mut Vec<OutputRecord>,
    dropped: &'a mut u64,
    /// Emptied forward lists to reuse (see `Task::spare_forwards`).
    spare: &'a mut Vec<Vec<Forward>>,
}

impl Walk<'_> {
    /// Sends a record from `from` to its children (or to child `target`), depth first.
    fn send(
        &mut self,
        from: usize,
        target: Option<usize>,
        rec: Record,
    ) -> Result<(), StreamsError> {
        // Children are local indexes: an edge never leaves its sub-topology.
        let children = self.nodes[from].children.len();
        let (first, count) = match target {
            Some(i) if i < children => (i, 1),
            Some(_) => return Ok(()),
            None if children == 0 => return Ok(()),
            None => (0, children),
        };
        // Every child but the last gets a copy; the last takes the record itself.
        for n in first..first + count - 1 {
            let child = self.nodes[from].children[n];
            let r = rec.clone();
            self.run(child, r.timestamp, |p, ctx| p.process(r, ctx))?;
        }
        let last = self.nodes[from].children[first + count - 1];
        self.run(last, rec.timestamp, |p, ctx| p.process(rec, ctx))
    }

    /// Runs a hook of the processor at `node` (its `process`, a punctuation, a cache flush),
    /// then sends on what it forwarded.
    fn run(
        &mut self,
        node: usize,
        timestamp: i64,
        hook: impl FnOnce(&mut dyn Processor, &mut ProcessorContext<'_>) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let mut forwards = self.spare.pop().unwrap_or_default();
        {
            let TaskNode {
                name,
                child_names,
                body,
                ..
            } = &mut self.nodes[node];
            let Body::Processor(p) = body else {
                return Err(StreamsError::Topology(format!(
                    "{name} is a source with a parent"
                )));
            };
            let mut ctx = ProcessorContext {
                application_id: self.env.application_id,
                task: self.env.task,
                node: name,
                children: child_names,
                record: self.rc,
                timestamp,
                stream_time: self.env.stream_time,
                wall_clock_ms: self.env.wall_clock_ms,
                forwards: &mut forwards,
                stores: self.stores,
                outputs: self.out,
                schedules: None,
                dropped: self.dropped,
            };
            hook(p.as_mut(), &mut ctx)?;
        }
        for (target, rec) in forwards.drain(..) {
            self.send(node, target, rec)?;
        }
        self.spare.push(forwards);
        Ok(())
    }
}
