//! The typed view of a byte store: serdes applied to keys and values, timestamps split off
//! values in timestamped stores. Used by the DSL's stateful processors and the test driver.

use std::sync::Arc;

use bytes::Bytes;

use super::{split_timestamp_ref, KeyValueStore, KvStoreHandle};
use crate::error::StreamsError;
use crate::record::Data;
use crate::serdes::Serde;

/// Serdes for one store's keys and values. Timestamps of entries in stores that keep none
/// read as -1.
pub struct TypedKeyValueStore<K, V> {
    name: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> Clone for TypedKeyValueStore<K, V> {
    fn clone(&self) -> Self {
        TypedKeyValueStore {
            name: self.name.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: Data, V: Data> TypedKeyValueStore<K, V> {
    pub fn new(
        name: impl Into<String>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedKeyValueStore {
            name: name.into(),
            key_serde,
            value_serde,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored form of a key; `None` when it serializes to null, which no store can hold
    /// (aggregations skip such records, as Kafka's do).
    pub fn key_bytes(&self, key: &K) -> Result<Option<Bytes>, StreamsError> {
        self.key_serde
            .serialize(&self.name, key)
            .map_err(|e| StreamsError::serde("serialize", "key", &self.name, e))
    }

    pub fn decode_key(&self, raw: &[u8]) -> Result<K, StreamsError> {
        self.key_serde
            .deserialize(&self.name, Some(raw))
            .map_err(|e| StreamsError::serde("deserialize", "key", &self.name, e))
    }

    pub fn decode_value(&self, raw: Bytes, timestamped: bool) -> Result<(V, i64), StreamsError> {
        self.decode_value_ref(&raw, timestamped)
    }

    fn decode_value_ref(&self, raw: &[u8], timestamped: bool) -> Result<(V, i64), StreamsError> {
        let (bytes, ts) = if timestamped {
            split_timestamp_ref(&self.name, raw)?
        } else {
            (raw, -1)
        };
        let v = self
            .value_serde
            .deserialize(&self.name, Some(bytes))
            .map_err(|e| StreamsError::serde("deserialize", "value", &self.name, e))?;
        Ok((v, ts))
    }

    /// The stored form of a value; `None` when it serializes to null.
    pub fn value_bytes(&self, value: &V) -> Result<Option<Bytes>, StreamsError> {
        self.value_serde
            .serialize(&self.name, value)
            .map_err(|e| StreamsError::serde("serialize", "value", &self.name, e))
    }

    pub fn get(&self, h: &KvStoreHandle<'_>, key: &[u8]) -> Result<Option<(V, i64)>, StreamsError> {
        let timestamped = h.is_timestamped();
        h.read(key, |raw| self.decode_value_ref(raw, timestamped))?
            .transpose()
    }

    /// A value a cache flush passed on (`CacheFlush::new`/`old`, stored bytes), decoded.
    pub fn decode_flushed(
        &self,
        raw: &Option<Bytes>,
        timestamped: bool,
    ) -> Result<Option<V>, StreamsError> {
        raw.as_deref()
            .map(|b| self.decode_value_ref(b, timestamped).map(|(v, _)| v))
            .transpose()
    }

    /// `get` of the value as of the last cache flush (see `KvStoreHandle::read_flushed`).
    pub fn get_flushed(
        &self,
        h: &KvStoreHandle<'_>,
        key: &[u8],
    ) -> Result<Option<(V, i64)>, StreamsError> {
        let timestamped = h.is_timestamped();
        h.read_flushed(key, |raw| self.decode_value_ref(raw, timestamped))?
            .transpose()
    }

    /// Writes a value, or deletes the key when `value` is `None` or serializes to null.
    pub fn put(
        &self,
        h: &mut KvStoreHandle<'_>,
        key: Bytes,
        value: Option<&V>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        let bytes = match value {
            Some(v) => self
                .value_serde
                .serialize(&self.name, v)
                .map_err(|e| StreamsError::serde("serialize", "value", &self.name, e))?,
            None => None,
        };
        match bytes {
            Some(b) if h.is_timestamped() => h.put_timestamped(key, b, timestamp)?,
            Some(b) => h.put(key, b)?,
            None => {
                h.delete(&key)?;
            }
        }
        Ok(())
    }

    /// Reads one key from a store outside processing (tests, queries).
    pub fn read(
        &self,
        store: &dyn KeyValueStore,
        timestamped: bool,
        key: &K,
    ) -> Result<Option<(V, i64)>, StreamsError> {
        let Some(k) = self.key_bytes(key)? else {
            return Ok(None);
        };
        match store.get(&k)? {
            Some(raw) => self.decode_value(raw, timestamped).map(Some),
            None => Ok(None),
        }
    }

    /// Every entry of a store, in key byte order, outside processing.
    pub fn read_all(
        &self,
        store: &dyn KeyValueStore,
        timestamped: bool,
    ) -> Result<Vec<(K, V, i64)>, StreamsError> {
        let mut out = Vec::new();
        for entry in store.all()? {
            let (k, raw) = entry?;
            let (v, ts) = self.decode_value(raw, timestamped)?;
            out.push((self.decode_key(&k)?, v, ts));
        }
        Ok(out)
    }
}
