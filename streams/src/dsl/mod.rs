//! The DSL: `StreamsBuilder` makes typed `KStream`s and `KTable`s whose operations add
//! processor nodes to one graph; `build` turns it into a `Topology`. Options are plain structs.

mod grouped;
mod join;
mod kstream;
mod ktable;
mod ops;
mod windowed;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use grouped::KGroupedStream;
pub use kstream::{KStream, Splitter};
pub use ktable::{Change, KTable};
pub use windowed::{SessionWindowedKStream, TimeWindowedKStream};

use crate::error::StreamsError;
use crate::record::{Data, TimestampExtractor};
use crate::serdes::{Serde, SerdeError};
use crate::state::{InMemoryStoreSupplier, PersistentStoreSupplier, StoreSpec, StoreSupplier};
use crate::topology::{GraphBuilder, SerdePair, TopicRef, Topology};

/// Where a topology is described. Not `Send`: build on one thread, then share the `Topology`.
#[derive(Default)]
pub struct StreamsBuilder {
    g: Rc<RefCell<GraphBuilder>>,
}

impl StreamsBuilder {
    pub fn new() -> StreamsBuilder {
        StreamsBuilder::default()
    }

    /// A stream of the records of one topic.
    pub fn stream<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.stream_from(&[topic], consumed)
    }

    /// A stream of the records of several topics, read by one source node.
    pub fn stream_from<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut g = self.g.borrow_mut();
        let name = consumed
            .name
            .clone()
            .unwrap_or_else(|| g.new_name("KSTREAM-SOURCE"));
        let decoder = Arc::new(SerdePair {
            key: consumed.key.clone(),
            value: consumed.value.clone(),
        });
        let topics = topics
            .iter()
            .map(|t| TopicRef::External(t.to_string()))
            .collect();
        let node = g.add_source(name, topics, decoder, consumed.extractor);
        drop(g);
        KStream::new(
            self.g.clone(),
            node,
            Some(consumed.key),
            Some(consumed.value),
            false,
        )
    }

    /// A table of the latest value per key of a topic; a null value deletes the key. Always
    /// materialized in a store (named by `materialized` or generated), logged to a changelog.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        ktable::table_from_topic(&self.g, topic, consumed, materialized)
    }

    pub fn build(self) -> Result<Topology, StreamsError> {
        let g = Rc::try_unwrap(self.g)
            .map(RefCell::into_inner)
            .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()));
        g.build()
    }
}

/// How a source reads a topic: serdes, an optional timestamp extractor, an optional node name.
pub struct Consumed<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) extractor: Option<Arc<dyn TimestampExtractor>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Consumed<K, V> {
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Consumed {
            key: Arc::new(key),
            value: Arc::new(value),
            extractor: None,
            name: None,
        }
    }

    pub fn with_timestamp_extractor(mut self, e: impl TimestampExtractor) -> Self {
        self.extractor = Some(Arc::new(e));
        self
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a sink writes a topic: serdes and an optional node name.
pub struct Produced<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Produced<K, V> {
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Produced {
            key: Arc::new(key),
            value: Arc::new(value),
            name: None,
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serdes for a grouping's repartition topic, and its name (`<application.id>-<name>-repartition`).
pub struct Grouped<K, V> {
    pub(crate) key: Option<Arc<dyn Serde<K>>>,
    pub(crate) value: Option<Arc<dyn Serde<V>>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Grouped<K, V> {
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Grouped {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            name: None,
        }
    }

    /// No serdes: those the stream already knows (from its source) are used.
    pub fn new() -> Self {
        Grouped {
            key: None,
            value: None,
            name: None,
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            key: self.key.clone(),
            value: self.value.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K: Data, V: Data> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped::new()
    }
}

/// An explicit repartition: serdes, and the topic's name without prefix and suffix.
pub type Repartitioned<K, V> = Grouped<K, V>;

/// How a table's store is made: its name (also its changelog's), serdes, an optional store
/// supplier (the in-memory store by default), whether it is logged (it is by default), and
/// for window and session stores how long windows are kept (their size plus grace by default).
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<Arc<dyn Serde<K>>>,
    pub(crate) value: Option<Arc<dyn Serde<V>>>,
    pub(crate) supplier: Option<Arc<dyn StoreSupplier>>,
    pub(crate) logged: bool,
    pub(crate) retention_ms: Option<i64>,
    /// Set by `as_persistent_store`: the store is the persistent one of whichever kind the
    /// operation needs (key-value, window or session), chosen where the store is built.
    pub(crate) persistent: bool,
    pub(crate) cached: bool,
}

impl<K: Data, V: Data> Materialized<K, V> {
    /// A store with a generated name and the serdes the stream or grouping already knows.
    pub fn new() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            supplier: None,
            logged: true,
            retention_ms: None,
            persistent: false,
            cached: true,
        }
    }

    pub fn as_store(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Materialized::new()
        }
    }

    /// A store on local disk (redb, under the task's state directory), restored from the
    /// changelog only past its checkpoint: `state::PersistentKeyValueStore`, or for windowed
    /// aggregations `PersistentWindowStore`/`PersistentSessionStore`.
    pub fn as_persistent_store(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            persistent: true,
            ..Materialized::new()
        }
    }

    /// A store built by `supplier` (a persistent one, say); the store takes the supplier's name.
    pub fn with_supplier(supplier: impl StoreSupplier) -> Self {
        Materialized {
            name: Some(supplier.name().to_string()),
            supplier: Some(Arc::new(supplier)),
            ..Materialized::new()
        }
    }

    pub fn with_key_serde(mut self, s: impl Serde<K>) -> Self {
        self.key = Some(Arc::new(s));
        self
    }

    pub fn with_value_serde(mut self, s: impl Serde<V>) -> Self {
        self.value = Some(Arc::new(s));
        self
    }

    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }

    /// Every update reaches the store, its changelog and the table's downstream at once,
    /// instead of the latest per key (and window) at each commit (key-value and window stores
    /// are cached by default, within the application's statestore.cache.max.bytes; session
    /// stores never are).
    pub fn with_caching_disabled(mut self) -> Self {
        self.cached = false;
        self
    }

    /// How long a window or session store keeps windows, counted in stream time from their
    /// start (sessions: their end); at least the windows' size plus grace. Queries of closed
    /// windows need a longer retention. Ignored by key-value stores.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention_ms = Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// The same, with `serde` as value serde when none was given.
    pub(crate) fn or_value_serde(self, serde: Option<Arc<dyn Serde<V>>>) -> Self {
        Materialized {
            value: self.value.or(serde),
            ..self
        }
    }

    /// The store's name (generated when none was given) and its spec.
    pub(crate) fn spec(&self, g: &mut GraphBuilder, prefix: &str) -> (String, StoreSpec) {
        let name = self.name.clone().unwrap_or_else(|| g.new_name(prefix));
        let supplier = self
            .supplier
            .clone()
            .unwrap_or_else(|| match self.persistent {
                true => Arc::new(PersistentStoreSupplier::new(name.clone())),
                false => Arc::new(InMemoryStoreSupplier::new(name.clone())),
            });
        let spec = StoreSpec {
            supplier,
            logged: self.logged,
            timestamped: true,
            cached: self.cached,
        };
        (name, spec)
    }
}

impl<K: Data, V: Data> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized::new()
    }
}

/// Reads `Option<V>` through a serde of `V`: null is `None`. Keeps a table's value serde
/// usable for the stream of its changes, where deletes are `None`.
pub(crate) struct OptionSerde<V>(pub Arc<dyn Serde<V>>);

impl<V: Data> Serde<Option<V>> for OptionSerde<V> {
    fn serialize(
        &self,
        topic: &str,
        value: &Option<V>,
    ) -> Result<Option<bytes::Bytes>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v),
            None => Ok(None),
        }
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Option<V>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(topic, data).map(Some),
            None => Ok(None),
        }
    }
}
