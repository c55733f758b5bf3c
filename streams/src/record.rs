//! Records at the edges (raw bytes read from and written to topics) and inside a sub-topology
//! (type-erased typed values), plus where a record came from and how its timestamp is chosen.

use std::any::Any;
use std::fmt;

use bytes::Bytes;
use sluice_client::ConsumerRecord;
pub use sluice_protocol::records::RecordHeader;

use crate::error::StreamsError;

/// What keys and values flowing through a topology must be: cloned when a node has several
/// children, and moved between stream threads with their task.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A record as read from a topic, before the source node's serdes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

impl From<ConsumerRecord> for InputRecord {
    fn from(r: ConsumerRecord) -> InputRecord {
        InputRecord {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }
    }
}

/// Why a task produced a record: the runtime treats them alike (produce, then commit after
/// they are acknowledged) but the test driver feeds `Repartition` records back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A user topic written by `to`.
    Sink,
    /// An internal `<application.id>-<name>-repartition` topic read by another sub-topology.
    Repartition,
    /// A store's `<application.id>-<store>-changelog` topic.
    Changelog,
}

/// A record a task wants produced. `partition` is `None` when the producer's partitioner
/// chooses; changelog records name their task's partition, since a store belongs to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub kind: OutputKind,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Where the record being processed came from (Kafka's RecordContext). Punctuations and
/// records forwarded from them carry no source offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordContext {
    pub topic: Option<String>,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// Chooses the timestamp a record is processed with (event time). `partition_time` is the
/// largest timestamp seen so far on the record's partition, or -1 before any.
pub trait TimestampExtractor: Send + Sync + 'static {
    fn extract(&self, record: &InputRecord, partition_time: i64) -> i64;
}

/// The default: the timestamp stored in the record (CreateTime or LogAppendTime).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordTimestampExtractor;

impl TimestampExtractor for RecordTimestampExtractor {
    fn extract(&self, record: &InputRecord, _partition_time: i64) -> i64 {
        record.timestamp
    }
}

impl<F: Fn(&InputRecord, i64) -> i64 + Send + Sync + 'static> TimestampExtractor for F {
    fn extract(&self, record: &InputRecord, partition_time: i64) -> i64 {
        self(record, partition_time)
    }
}

/// A cloneable `Any`: how typed keys and values travel between the type-erased nodes.
trait AnyData: Send {
    fn clone_box(&self) -> Box<dyn AnyData>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
}

impl<T: Data> AnyData for T {
    fn clone_box(&self) -> Box<dyn AnyData> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// One key or value with its type erased. The DSL only ever takes back the type it put in,
/// so a mismatch is a bug in a hand-written processor, reported as an error rather than a panic.
pub struct Erased(Box<dyn AnyData>);

impl Erased {
    pub fn new<T: Data>(value: T) -> Erased {
        Erased(Box::new(value))
    }

    pub fn take<T: Data>(self) -> Result<T, StreamsError> {
        let found = self.0.type_name();
        self.0
            .into_any()
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StreamsError::TypeMismatch {
                expected: std::any::type_name::<T>(),
                found,
            })
    }

    pub fn get<T: Data>(&self) -> Result<&T, StreamsError> {
        self.0
            .as_any()
            .downcast_ref::<T>()
            .ok_or(StreamsError::TypeMismatch {
                expected: std::any::type_name::<T>(),
                found: self.0.type_name(),
            })
    }
}

impl Clone for Erased {
    fn clone(&self) -> Erased {
        Erased(self.0.clone_box())
    }
}

impl fmt::Debug for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Erased<{}>", self.0.type_name())
    }
}

/// A record between processors of one sub-topology: typed key and value (erased), the
/// timestamp it is processed at, and its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Erased,
    pub value: Erased,
    pub timestamp: i64,
    pub headers: Vec<RecordHeader>,
}

impl Record {
    pub fn new<K: Data, V: Data>(key: K, value: V, timestamp: i64) -> Record {
        Record {
            key: Erased::new(key),
            value: Erased::new(value),
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with a new key and value (timestamp and headers kept).
    pub fn with<K: Data, V: Data>(self, key: K, value: V) -> Record {
        Record {
            key: Erased::new(key),
            value: Erased::new(value),
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    pub fn into_parts<K: Data, V: Data>(self) -> Result<(K, V, RecordMeta), StreamsError> {
        let meta = RecordMeta {
            timestamp: self.timestamp,
            headers: self.headers,
        };
        Ok((self.key.take()?, self.value.take()?, meta))
    }
}

/// A record's timestamp and headers, kept aside while a typed operation works on key and value.
#[derive(Debug, Clone, Default)]
pub struct RecordMeta {
    pub timestamp: i64,
    pub headers: Vec<RecordHeader>,
}

impl RecordMeta {
    pub fn record<K: Data, V: Data>(&self, key: K, value: V) -> Record {
        Record {
            key: Erased::new(key),
            value: Erased::new(value),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }

    pub fn into_record<K: Data, V: Data>(self, key: K, value: V) -> Record {
        Record {
            key: Erased::new(key),
            value: Erased::new(value),
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}
