//! The processor API under the DSL: a `Processor` handles one record at a time and talks to its
//! task only through `ProcessorContext` (forward to children, stores, stream time, schedules).

use std::fmt;

use crate::error::StreamsError;
use crate::record::{OutputRecord, Record, RecordContext};
use crate::state::{
    CacheFlush, KvStoreHandle, SessionStoreHandle, StoreError, TaskStores, WindowStoreHandle,
};
use crate::topology::TaskId;

/// What drives a punctuation: stream time (the largest record timestamp the task has seen,
/// so it only moves when records arrive) or the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    StreamTime,
    WallClockTime,
}

/// One node's logic, instantiated once per task by its `ProcessorSupplier`. Processors do no
/// I/O: everything they emit goes through the context, so the same topology runs in the
/// test driver and in the runtime.
pub trait Processor: Send {
    /// Called once when the task starts; the place to `schedule` punctuations.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        Ok(())
    }

    fn process(
        &mut self,
        record: Record,
        ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError>;

    /// Called when a schedule this processor asked for is due; `timestamp` is the stream time
    /// or wall-clock time that made it due.
    fn punctuate(
        &mut self,
        _kind: PunctuationType,
        _timestamp: i64,
        _ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called when the record cache of a store this processor is connected to has passed its
    /// held writes to the store and changelog (at a commit, or when the task's cache budget
    /// ran out). A processor that writes through a cached handle (`KvStoreHandle::is_cached`)
    /// forwards what its writes mean here, once per key and flush, instead of at each record;
    /// the DSL's aggregations and tables do.
    fn cache_flushed(
        &mut self,
        _store: &str,
        _writes: &[CacheFlush],
        _ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }

    fn close(&mut self) {}
}

/// Makes a fresh processor for each task, so tasks share no mutable state.
pub trait ProcessorSupplier: Send + Sync + 'static {
    fn get(&self) -> Box<dyn Processor>;
}

impl<F: Fn() -> Box<dyn Processor> + Send + Sync + 'static> ProcessorSupplier for F {
    fn get(&self) -> Box<dyn Processor> {
        self()
    }
}

/// A punctuation a processor asked for in `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub kind: PunctuationType,
    pub interval_ms: i64,
}

/// Where a forwarded record goes: all children, or one child by its position.
pub(crate) type Forward = (Option<usize>, Record);

/// A processor's view of its task during one call.
pub struct ProcessorContext<'a> {
    pub(crate) application_id: &'a str,
    pub(crate) task: TaskId,
    pub(crate) node: &'a str,
    pub(crate) children: &'a [String],
    pub(crate) record: &'a RecordContext,
    pub(crate) timestamp: i64,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock_ms: i64,
    pub(crate) forwards: &'a mut Vec<Forward>,
    pub(crate) stores: &'a mut TaskStores,
    pub(crate) outputs: &'a mut Vec<OutputRecord>,
    pub(crate) schedules: Option<&'a mut Vec<Schedule>>,
    /// The task's count of records dropped by processors (Kafka's dropped-records metric).
    pub(crate) dropped: &'a mut u64,
}

impl ProcessorContext<'_> {
    pub fn application_id(&self) -> &str {
        self.application_id
    }

    pub fn task_id(&self) -> TaskId {
        self.task
    }

    pub fn node_name(&self) -> &str {
        self.node
    }

    /// Topic, partition and offset of the input record being processed.
    pub fn record_context(&self) -> &RecordContext {
        self.record
    }

    /// The timestamp of the record being processed, or of the punctuation.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The largest record timestamp this task has processed (-1 before the first record).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    pub fn wall_clock_time(&self) -> i64 {
        self.wall_clock_ms
    }

    pub fn child_names(&self) -> &[String] {
        self.children
    }

    /// Sends a record to every child; they run after this call returns, depth first.
    pub fn forward(&mut self, record: Record) {
        self.forwards.push((None, record));
    }

    /// Sends a record to one child, by its node name.
    pub fn forward_to(&mut self, child: &str, record: Record) -> Result<(), StreamsError> {
        let i = self
            .children
            .iter()
            .position(|c| c == child)
            .ok_or_else(|| {
                StreamsError::Topology(format!("{} has no child named {child}", self.node))
            })?;
        self.forwards.push((Some(i), record));
        Ok(())
    }

    /// A key-value store connected to this processor. Writes through the handle are logged.
    pub fn kv_store(&mut self, name: &str) -> Result<KvStoreHandle<'_>, StoreError> {
        self.stores.kv_handle(name, self.timestamp, self.outputs)
    }

    /// A window store connected to this processor. Writes through the handle are logged.
    pub fn window_store(&mut self, name: &str) -> Result<WindowStoreHandle<'_>, StoreError> {
        self.stores
            .window_handle(name, self.timestamp, self.outputs)
    }

    /// A session store connected to this processor. Writes through the handle are logged.
    pub fn session_store(&mut self, name: &str) -> Result<SessionStoreHandle<'_>, StoreError> {
        self.stores
            .session_handle(name, self.timestamp, self.outputs)
    }

    /// Counts a record this processor drops (a late record for a closed window, a null key
    /// where one is needed) in the task's dropped-records count, and logs why.
    pub fn record_dropped(&mut self, reason: &str) {
        *self.dropped += 1;
        tracing::warn!(task = %self.task, node = %self.node, timestamp = self.timestamp,
            stream_time = self.stream_time, "dropping a record: {reason}");
    }

    /// The task's stores, for store kinds that have no handle here yet.
    pub fn stores(&mut self) -> &mut TaskStores {
        self.stores
    }

    /// Queues a record for the runtime to produce (what sink nodes do).
    pub fn emit(&mut self, record: OutputRecord) {
        self.outputs.push(record);
    }

    /// Asks for `punctuate` every `interval_ms` of the given time; only during `init`.
    pub fn schedule(
        &mut self,
        interval_ms: i64,
        kind: PunctuationType,
    ) -> Result<(), StreamsError> {
        if interval_ms <= 0 {
            return Err(StreamsError::Topology(format!(
                "{}: punctuation interval must be positive, got {interval_ms}",
                self.node
            )));
        }
        match self.schedules.as_deref_mut() {
            Some(s) => {
                s.push(Schedule { kind, interval_ms });
                Ok(())
            }
            None => Err(StreamsError::Topology(format!(
                "{}: schedule is only allowed in init",
                self.node
            ))),
        }
    }
}

impl fmt::Debug for ProcessorContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("task", &self.task)
            .field("node", &self.node)
            .field("stream_time", &self.stream_time)
            .finish()
    }
}
