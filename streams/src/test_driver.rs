//! `TopologyTestDriver`: runs a topology in memory with no broker, one task per sub-topology on
//! partition 0; records written to repartition topics are fed straight back to their reader.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::StreamsError;
use crate::record::{Data, InputRecord, OutputKind, OutputRecord, RecordHeader};
use crate::serdes::Serde;
use crate::state::{StateStore, StoreError, TypedKeyValueStore};
use crate::task::{Task, TaskConfig};
use crate::topology::{TaskId, Topology};
use crate::window::Windowed;

struct Inner {
    tasks: Vec<Task>,
    outputs: HashMap<String, VecDeque<OutputRecord>>,
    next_offset: HashMap<String, i64>,
    wall_clock_ms: i64,
}

impl Inner {
    /// The task whose sub-topology has the store.
    fn task_with_store(&mut self, store: &str) -> Result<&mut Task, StoreError> {
        self.tasks
            .iter_mut()
            .find(|t| t.stores().store(store).is_some())
            .ok_or_else(|| StoreError::Unknown(store.to_string()))
    }

    fn task_reading(&mut self, topic: &str) -> Option<usize> {
        self.tasks
            .iter()
            .position(|t| t.source_topics().any(|s| s == topic))
    }

    /// Pipes one new record at the next offset of its topic.
    fn pipe_new(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Vec<RecordHeader>,
    ) -> Result<(), StreamsError> {
        let offset = self.next_offset.entry(topic.to_string()).or_insert(0);
        let rec = InputRecord {
            topic: topic.to_string(),
            partition: 0,
            offset: *offset,
            timestamp,
            key,
            value,
            headers,
        };
        *offset += 1;
        self.pipe(VecDeque::from([rec]))
    }

    /// Processes queued records and all they lead to. Then, as Kafka's driver commits after
    /// every record, the record caches are flushed, so each input's updates can be read at once.
    fn pipe(&mut self, mut queue: VecDeque<InputRecord>) -> Result<(), StreamsError> {
        loop {
            while let Some(rec) = queue.pop_front() {
                let t = self.task_reading(&rec.topic).ok_or_else(|| {
                    StreamsError::Topology(format!("no source reads topic {}", rec.topic))
                })?;
                let mut out = Vec::new();
                self.tasks[t].process(rec, &mut out)?;
                self.route(out, &mut queue);
            }
            for t in 0..self.tasks.len() {
                let mut out = Vec::new();
                self.tasks[t].flush_caches(&mut out)?;
                self.route(out, &mut queue);
            }
            if queue.is_empty() {
                return Ok(());
            }
        }
    }

    /// Keeps every produced record for reading; repartition records also go to their reader.
    fn route(&mut self, out: Vec<OutputRecord>, queue: &mut VecDeque<InputRecord>) {
        for o in out {
            if o.kind == OutputKind::Repartition {
                let offset = self.next_offset.entry(o.topic.clone()).or_insert(0);
                queue.push_back(InputRecord {
                    topic: o.topic.clone(),
                    partition: 0,
                    offset: *offset,
                    timestamp: o.timestamp,
                    key: o.key.clone(),
                    value: o.value.clone(),
                    headers: o.headers.clone(),
                });
                *offset += 1;
            }
            self.outputs
                .entry(o.topic.clone())
                .or_default()
                .push_back(o);
        }
    }
}

/// Runs a topology without a broker, for unit tests of topologies (the library's own included).
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
    topology: Arc<Topology>,
    application_id: String,
}

impl TopologyTestDriver {
    pub fn new(topology: Topology, application_id: &str) -> Result<Self, StreamsError> {
        Self::with_config(topology, TaskConfig::new(application_id))
    }

    pub fn with_config(topology: Topology, cfg: TaskConfig) -> Result<Self, StreamsError> {
        let tasks = topology
            .subtopologies()
            .iter()
            .map(|s| {
                let id = TaskId {
                    subtopology: s.id,
                    partition: 0,
                };
                Task::new(&topology, &cfg, id)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                tasks,
                outputs: HashMap::new(),
                next_offset: HashMap::new(),
                wall_clock_ms: 0,
            })),
            topology: Arc::new(topology),
            application_id: cfg.application_id,
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn create_input_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key: Box::new(key),
            value: Box::new(value),
        }
    }

    pub fn create_output_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key: Box::new(key),
            value: Box::new(value),
            _t: PhantomData,
        }
    }

    /// Pipes one raw record, with the next offset of its topic.
    pub fn pipe_raw(
        &self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Vec<RecordHeader>,
    ) -> Result<(), StreamsError> {
        self.inner
            .borrow_mut()
            .pipe_new(topic, key, value, timestamp, headers)
    }

    /// Takes everything produced to a topic so far (sinks, repartition and changelog topics).
    pub fn read_raw(&self, topic: &str) -> Vec<OutputRecord> {
        let mut inner = self.inner.borrow_mut();
        inner
            .outputs
            .get_mut(topic)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Topics something was produced to, sorted.
    pub fn produced_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.borrow().outputs.keys().cloned().collect();
        v.sort();
        v
    }

    /// Moves the wall clock forward and runs the wall-clock punctuations that became due.
    pub fn advance_wall_clock(&self, ms: i64) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock_ms += ms;
        let now = inner.wall_clock_ms;
        let mut queue = VecDeque::new();
        for t in 0..inner.tasks.len() {
            let mut out = Vec::new();
            inner.tasks[t].advance_wall_clock(now, &mut out)?;
            inner.route(out, &mut queue);
        }
        inner.pipe(queue)
    }

    /// The stream time of the task reading `topic` (-1 before its first record).
    pub fn stream_time(&self, topic: &str) -> Option<i64> {
        let mut inner = self.inner.borrow_mut();
        let t = inner.task_reading(topic)?;
        Some(inner.tasks[t].stream_time())
    }

    /// The changelog topic of a store as this driver's application id names it.
    pub fn changelog_topic(&self, store: &str) -> String {
        crate::state::changelog_topic(&self.application_id, store)
    }

    /// Replays changelog records (as read with `read_raw`) into a store, as the runtime does
    /// when a task moves to a new instance.
    pub fn restore_store(
        &self,
        store: &str,
        records: impl IntoIterator<Item = OutputRecord>,
    ) -> Result<u64, StreamsError> {
        let mut inner = self.inner.borrow_mut();
        let task = inner.task_with_store(store)?;
        let recs = records.into_iter().filter_map(|r| {
            let key = r.key?;
            Some((key, r.value, r.timestamp))
        });
        Ok(task.stores_mut().restore(store, recs)?)
    }

    /// Flushes every task's stores, as the runtime does before committing.
    pub fn flush(&self) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        let mut queue = VecDeque::new();
        for t in 0..inner.tasks.len() {
            let mut out = Vec::new();
            inner.tasks[t].flush(&mut out)?;
            inner.route(out, &mut queue);
        }
        inner.pipe(queue)
    }

    /// Records in a persistent store that it includes its changelog up to `offset`, as the
    /// runtime does after a commit (in-memory stores ignore it).
    pub fn write_checkpoint(&self, store: &str, offset: i64) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        let task = inner.task_with_store(store)?;
        Ok(task.stores_mut().write_checkpoint(store, offset)?)
    }

    /// A persistent store's checkpoint: the changelog offset to restore after.
    pub fn checkpointed_offset(&self, store: &str) -> Result<Option<i64>, StreamsError> {
        let mut inner = self.inner.borrow_mut();
        let task = inner.task_with_store(store)?;
        Ok(task.stores().checkpointed_offset(store)?)
    }

    /// Records the tasks' processors dropped (late for closed windows, null keys), summed.
    pub fn dropped_records(&self) -> u64 {
        self.inner
            .borrow()
            .tasks
            .iter()
            .map(Task::dropped_records)
            .sum()
    }

    fn store_view<K: Data, V: Data>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> StoreView<K, V> {
        StoreView {
            inner: self.inner.clone(),
            typed: TypedKeyValueStore::new(name, Arc::new(key), Arc::new(value)),
        }
    }

    /// Typed reads of a window or session store by name.
    pub fn window_store<K: Data, V: Data>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestWindowStore<K, V> {
        TestWindowStore(self.store_view(name, key, value))
    }

    /// Typed reads of a key-value store by name.
    pub fn key_value_store<K: Data, V: Data>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestKeyValueStore<K, V> {
        TestKeyValueStore(self.store_view(name, key, value))
    }
}

/// Pipes typed records into one topic.
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Box<dyn Serde<K>>,
    value: Box<dyn Serde<V>>,
}

impl<K: Data, V: Data> TestInputTopic<K, V> {
    pub fn pipe_input(&self, key: K, value: V, timestamp: i64) -> Result<(), StreamsError> {
        self.pipe_with_headers(key, value, timestamp, Vec::new())
    }

    pub fn pipe_with_headers(
        &self,
        key: K,
        value: V,
        timestamp: i64,
        headers: Vec<RecordHeader>,
    ) -> Result<(), StreamsError> {
        let t = &self.topic;
        let k = self
            .key
            .serialize(t, &key)
            .map_err(|e| StreamsError::serde("serialize", "key", t, e))?;
        let v = self
            .value
            .serialize(t, &value)
            .map_err(|e| StreamsError::serde("serialize", "value", t, e))?;
        self.inner
            .borrow_mut()
            .pipe_new(t, k, v, timestamp, headers)
    }

    pub fn pipe_key_value_list(
        &self,
        records: impl IntoIterator<Item = (K, V, i64)>,
    ) -> Result<(), StreamsError> {
        records
            .into_iter()
            .try_for_each(|(k, v, ts)| self.pipe_input(k, v, ts))
    }
}

/// A record read from an output topic, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord<K, V> {
    pub key: K,
    pub value: V,
    pub timestamp: i64,
    pub headers: Vec<RecordHeader>,
}

/// Reads typed records produced to one topic, oldest first; each is read once.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Box<dyn Serde<K>>,
    value: Box<dyn Serde<V>>,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: Data, V: Data> TestOutputTopic<K, V> {
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, |q| q.len())
    }

    pub fn read_record(&self) -> Result<Option<TestRecord<K, V>>, StreamsError> {
        let Some(o) = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(|q| q.pop_front())
        else {
            return Ok(None);
        };
        let t = &self.topic;
        let key = self
            .key
            .deserialize(t, o.key.as_deref())
            .map_err(|e| StreamsError::serde("deserialize", "key", t, e))?;
        let value = self
            .value
            .deserialize(t, o.value.as_deref())
            .map_err(|e| StreamsError::serde("deserialize", "value", t, e))?;
        Ok(Some(TestRecord {
            key,
            value,
            timestamp: o.timestamp,
            headers: o.headers,
        }))
    }

    pub fn read_key_value(&self) -> Result<Option<(K, V)>, StreamsError> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>, StreamsError> {
        let mut v = Vec::new();
        while let Some(r) = self.read_record()? {
            v.push(r);
        }
        Ok(v)
    }

    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>, StreamsError> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// The last value per key, as a table would keep it.
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>, StreamsError>
    where
        K: Eq + Hash,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }
}

/// One store of the driver's tasks, by name, with the codec of its keys and values.
struct StoreView<K, V> {
    inner: Rc<RefCell<Inner>>,
    typed: TypedKeyValueStore<K, V>,
}

impl<K: Data, V: Data> StoreView<K, V> {
    /// Calls `f` with the store (in whichever task has it) and whether it is timestamped.
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn StateStore, bool) -> Result<T, StreamsError>,
    ) -> Result<T, StreamsError> {
        let inner = self.inner.borrow();
        let name = self.typed.name();
        for t in &inner.tasks {
            if let Some(s) = t.stores().store(name) {
                return f(s, t.stores().is_timestamped(name));
            }
        }
        Err(StoreError::Unknown(name.to_string()).into())
    }

    /// The error for a store that is not of the kind read.
    fn wrong_kind(&self) -> StoreError {
        StoreError::WrongKind(self.typed.name().to_string())
    }
}

/// Typed reads of one store of the driver's tasks.
pub struct TestKeyValueStore<K, V>(StoreView<K, V>);

impl<K: Data, V: Data> TestKeyValueStore<K, V> {
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        Ok(self.get_with_timestamp(key)?.map(|(v, _)| v))
    }

    /// The value and, for timestamped stores, its timestamp (-1 otherwise).
    pub fn get_with_timestamp(&self, key: &K) -> Result<Option<(V, i64)>, StreamsError> {
        self.0.read(|s, ts| {
            let kv = s.as_key_value_ref().ok_or_else(|| self.0.wrong_kind())?;
            self.0.typed.read(kv, ts, key)
        })
    }

    /// Every entry, in key byte order.
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let all = self.0.read(|s, ts| {
            let kv = s.as_key_value_ref().ok_or_else(|| self.0.wrong_kind())?;
            self.0.typed.read_all(kv, ts)
        })?;
        Ok(all.into_iter().map(|(k, v, _)| (k, v)).collect())
    }
}

/// Typed reads of one window or session store of the driver's tasks.
pub struct TestWindowStore<K, V>(StoreView<K, V>);

impl<K: Data, V: Data> TestWindowStore<K, V> {
    /// Every window of a window store, by start then key: key, window start, value.
    pub fn all(&self) -> Result<Vec<(K, i64, V)>, StreamsError> {
        let typed = &self.0.typed;
        self.0.read(|s, timestamped| {
            let w = s.as_window_ref().ok_or_else(|| self.0.wrong_kind())?;
            let mut out = Vec::new();
            for e in w.all()? {
                let (k, start, raw) = e?;
                let (v, _) = typed.decode_value(raw, timestamped)?;
                out.push((typed.decode_key(&k)?, start, v));
            }
            Ok(out)
        })
    }

    /// The value of one key in the window starting at `start`.
    pub fn fetch(&self, key: &K, start: i64) -> Result<Option<V>, StreamsError> {
        let typed = &self.0.typed;
        let Some(kb) = typed.key_bytes(key)? else {
            return Ok(None);
        };
        self.0.read(|s, timestamped| {
            let w = s.as_window_ref().ok_or_else(|| self.0.wrong_kind())?;
            match w.fetch(&kb, start)? {
                Some(raw) => Ok(Some(typed.decode_value(raw, timestamped)?.0)),
                None => Ok(None),
            }
        })
    }

    /// Every session of a session store, by end, key, then start.
    pub fn sessions(&self) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let typed = &self.0.typed;
        self.0.read(|s, timestamped| {
            let ss = s.as_session_ref().ok_or_else(|| self.0.wrong_kind())?;
            let mut out = Vec::new();
            for e in ss.all()? {
                let (k, window, raw) = e?;
                let (v, _) = typed.decode_value(raw, timestamped)?;
                out.push((Windowed::new(typed.decode_key(&k)?, window), v));
            }
            Ok(out)
        })
    }
}
