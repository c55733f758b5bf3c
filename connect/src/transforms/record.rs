//! The record view transforms work on, shared by source and sink records.
//! Fields a transform cannot change (source offsets, sink offsets) travel beside it.

use crate::connector::{Header, SinkRecord, SourceRecord};
use crate::data::{Schema, Value};

/// What a transform sees of a record. Source records have no Kafka offset and may have no
/// partition yet; sink records always have both.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectRecord {
    pub topic: String,
    pub partition: Option<i32>,
    /// Only sink records have one, which is why `InsertField`'s `offset.field` is sink-only.
    pub kafka_offset: Option<i64>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

/// Which half of a record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

impl ConnectRecord {
    pub fn schema_and_value(&self, target: Target) -> (Option<&Schema>, &Value) {
        match target {
            Target::Key => (self.key_schema.as_ref(), &self.key),
            Target::Value => (self.value_schema.as_ref(), &self.value),
        }
    }

    pub fn with(mut self, target: Target, schema: Option<Schema>, value: Value) -> Self {
        match target {
            Target::Key => {
                self.key_schema = schema;
                self.key = value;
            }
            Target::Value => {
                self.value_schema = schema;
                self.value = value;
            }
        }
        self
    }

    /// Splits a source record; the source partition and offset come back in [`Self::into_source`].
    pub fn from_source(record: SourceRecord) -> (ConnectRecord, SourceRecord) {
        let SourceRecord {
            source_partition,
            source_offset,
            topic,
            partition,
            key_schema,
            key,
            value_schema,
            value,
            timestamp,
            headers,
        } = record;
        let view = ConnectRecord {
            topic,
            partition,
            kafka_offset: None,
            key_schema,
            key,
            value_schema,
            value,
            timestamp,
            headers,
        };
        let rest = SourceRecord {
            source_partition,
            source_offset,
            ..SourceRecord::default()
        };
        (view, rest)
    }

    /// Rebuilds a source record, keeping `original`'s source partition and offset so offset
    /// commits still refer to what the task actually read.
    pub fn into_source(self, original: SourceRecord) -> SourceRecord {
        SourceRecord {
            source_partition: original.source_partition,
            source_offset: original.source_offset,
            topic: self.topic,
            partition: self.partition,
            key_schema: self.key_schema,
            key: self.key,
            value_schema: self.value_schema,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// Rebuilds a sink record. The offset is always the consumed one, because the worker
    /// commits it; a transform clearing the partition falls back to the consumed one too.
    pub fn into_sink(self, partition: i32, offset: i64) -> SinkRecord {
        SinkRecord {
            topic: self.topic,
            partition: self.partition.unwrap_or(partition),
            offset,
            key_schema: self.key_schema,
            key: self.key,
            value_schema: self.value_schema,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}

impl From<SinkRecord> for ConnectRecord {
    fn from(r: SinkRecord) -> Self {
        ConnectRecord {
            topic: r.topic,
            partition: Some(r.partition),
            kafka_offset: Some(r.offset),
            key_schema: r.key_schema,
            key: r.key,
            value_schema: r.value_schema,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
        }
    }
}

impl From<SourceRecord> for ConnectRecord {
    fn from(r: SourceRecord) -> Self {
        ConnectRecord::from_source(r).0
    }
}
