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

/// Moves `a` into a `B` when they are the same type (a type-id check the compiler folds away),
/// or gives it back: lets the common key and value types travel unboxed.
fn cast<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<B>>() {
        Some(b) => Ok(b.take().expect("filled just above")),
        None => Err(slot.expect("untouched when the types differ")),
    }
}

/// Where an erased value lives: the types most records carry inline (an allocation saved per
/// key and value at every step), anything else in a box.
enum Slot {
    Str(String),
    OptStr(Option<String>),
    Bytes(Bytes),
    Long(i64),
    Boxed(Box<dyn AnyData>),
}

/// One key or value with its type erased. The DSL only ever takes back the type it put in,
/// so a mismatch is a bug in a hand-written processor, reported as an error rather than a panic.
pub struct Erased(Slot);

impl Erased {
    pub fn new<T: Data>(value: T) -> Erased {
        let value = match cast::<T, String>(value) {
            Ok(s) => return Erased(Slot::Str(s)),
            Err(v) => v,
        };
        let value = match cast::<T, Option<String>>(value) {
            Ok(s) => return Erased(Slot::OptStr(s)),
            Err(v) => v,
        };
        let value = match cast::<T, Bytes>(value) {
            Ok(b) => return Erased(Slot::Bytes(b)),
            Err(v) => v,
        };
        match cast::<T, i64>(value) {
            Ok(n) => Erased(Slot::Long(n)),
            Err(v) => Erased(Slot::Boxed(Box::new(v))),
        }
    }

    fn mismatch<T>(&self) -> StreamsError {
        StreamsError::TypeMismatch {
            expected: std::any::type_name::<T>(),
            found: self.type_name(),
        }
    }

    fn type_name(&self) -> &'static str {
        match &self.0 {
            Slot::Str(_) => std::any::type_name::<String>(),
            Slot::OptStr(_) => std::any::type_name::<Option<String>>(),
            Slot::Bytes(_) => std::any::type_name::<Bytes>(),
            Slot::Long(_) => std::any::type_name::<i64>(),
            Slot::Boxed(b) => (**b).type_name(),
        }
    }

    pub fn take<T: Data>(self) -> Result<T, StreamsError> {
        let err = |e: &Erased| Err(e.mismatch::<T>());
        match self.0 {
            Slot::Str(s) => cast(s).or_else(|s| err(&Erased(Slot::Str(s)))),
            Slot::OptStr(s) => cast(s).or_else(|s| err(&Erased(Slot::OptStr(s)))),
            Slot::Bytes(b) => cast(b).or_else(|b| err(&Erased(Slot::Bytes(b)))),
            Slot::Long(n) => cast(n).or_else(|n| err(&Erased(Slot::Long(n)))),
            Slot::Boxed(b) => {
                let found = (*b).type_name();
                b.into_any()
                    .downcast::<T>()
                    .map(|b| *b)
                    .map_err(|_| StreamsError::TypeMismatch {
                        expected: std::any::type_name::<T>(),
                        found,
                    })
            }
        }
    }

    pub fn get<T: Data>(&self) -> Result<&T, StreamsError> {
        let any: &dyn Any = match &self.0 {
            Slot::Str(s) => s,
            Slot::OptStr(s) => s,
            Slot::Bytes(b) => b,
            Slot::Long(n) => n,
            Slot::Boxed(b) => (**b).as_any(),
        };
        any.downcast_ref::<T>().ok_or_else(|| self.mismatch::<T>())
    }
}

impl Clone for Erased {
    fn clone(&self) -> Erased {
        Erased(match &self.0 {
            Slot::Str(s) => Slot::Str(s.clone()),
            Slot::OptStr(s) => Slot::OptStr(s.clone()),
            Slot::Bytes(b) => Slot::Bytes(b.clone()),
            Slot::Long(n) => Slot::Long(*n),
            Slot::Boxed(b) => Slot::Boxed((**b).clone_box()),
        })
    }
}

impl fmt::Debug for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Erased<{}>", self.type_name())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Data + PartialEq + fmt::Debug>(v: T) {
        let e = Erased::new(v.clone());
        assert_eq!(e.get::<T>().unwrap(), &v);
        assert_eq!(e.clone().take::<T>().unwrap(), v);
    }

    #[test]
    fn values_come_back_as_the_type_they_went_in() {
        round_trip(String::from("inline"));
        round_trip(Some(String::from("inline")));
        round_trip(None::<String>);
        round_trip(Bytes::from_static(b"inline"));
        round_trip(7i64);
        round_trip(7i32);
        round_trip((String::from("boxed"), 1u8));
    }

    #[test]
    fn another_type_is_an_error_naming_both() {
        for e in [
            Erased::new(String::from("s")),
            Erased::new(5i64),
            Erased::new(5u16),
        ] {
            let shown = e.get::<Vec<u8>>().unwrap_err().to_string();
            assert!(shown.contains("Vec<u8>"), "{shown}");
            let err = e.take::<Option<i64>>().unwrap_err().to_string();
            assert!(err.contains("Option<i64>"), "{err}");
        }
        let e = Erased::new(String::from("s"));
        assert!(e.get::<Option<String>>().is_err());
        assert!(e
            .take::<Bytes>()
            .unwrap_err()
            .to_string()
            .contains("String"));
    }
}
