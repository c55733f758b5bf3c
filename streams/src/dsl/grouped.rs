//! `KGroupedStream<K, V>`: a stream grouped by key, folded into a `KTable` by count, reduce or
//! aggregate over a timestamped store (repartitioning first when the key changed upstream).

use std::sync::Arc;

use super::ops::{count_agg, init_agg, reduce_agg, AggFn, Aggregate};
use super::{Grouped, KStream, KTable, Materialized, SessionWindowedKStream, TimeWindowedKStream};
use crate::processor::Processor;
use crate::record::Data;
use crate::serdes::{LongSerde, Serde};
use crate::state::TypedKeyValueStore;
use crate::window::{SessionWindows, TimeWindows};

pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
    repartition: bool,
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            grouped: self.grouped.clone(),
            repartition: self.repartition,
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>, repartition: bool) -> Self {
        KGroupedStream {
            stream,
            grouped,
            repartition,
        }
    }

    /// The number of records per key (a count of 8-byte big-endian longs in the store).
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let materialized = materialized.or_value_serde(Some(Arc::new(LongSerde)));
        self.aggregate_with(count_agg(), materialized)
    }

    /// Combines the values of each key: the first value as is, then `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let materialized = materialized.or_value_serde(self.value_serde());
        self.aggregate_with(reduce_agg(reducer), materialized)
    }

    /// Folds the values of each key into an aggregate that starts as `initializer()`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_with(init_agg(initializer, aggregator), materialized)
    }

    /// Aggregates per key and time window (tumbling or hopping), as `KTable<Windowed<K>, _>`.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone(), windows)
    }

    /// Aggregates per key and session, as `KTable<Windowed<K>, _>`.
    pub fn session_windowed_by(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream::new(self.clone(), windows)
    }

    /// The stream to aggregate: through a repartition topic when the key changed upstream.
    /// The topic is named after the grouping, else after the store, as Kafka does.
    pub(crate) fn input_for(&self, store_name: &str) -> KStream<K, V> {
        if self.repartition {
            let base = self
                .grouped
                .name
                .clone()
                .unwrap_or_else(|| store_name.to_string());
            self.stream
                .through_repartition_topic(&base, self.key_serde(), self.value_serde())
        } else {
            self.stream.clone()
        }
    }

    pub(crate) fn key_serde(&self) -> Option<Arc<dyn Serde<K>>> {
        self.grouped
            .key
            .clone()
            .or_else(|| self.stream.key_serde.clone())
    }

    pub(crate) fn value_serde(&self) -> Option<Arc<dyn Serde<V>>> {
        self.grouped
            .value
            .clone()
            .or_else(|| self.stream.value_serde.clone())
    }

    fn aggregate_with<VA: Data>(
        &self,
        agg: AggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let key_serde = materialized.key.clone().or_else(|| self.key_serde());
        let (store_name, spec) = {
            let mut g = self.stream.g.borrow_mut();
            materialized.spec(&mut g, "KSTREAM-AGGREGATE-STATE-STORE")
        };
        let input = self.input_for(&store_name);
        let (Some(ks), Some(vs)) = (key_serde.clone(), materialized.value.clone()) else {
            input.g.borrow_mut().errors.push(format!(
                "store {store_name} needs key and value serdes (give them in Grouped or Materialized)"
            ));
            return KTable::new(input.g.clone(), input.node, None, key_serde, None);
        };
        let typed = TypedKeyValueStore::new(store_name.clone(), ks.clone(), vs.clone());
        let supplier = Arc::new(move || {
            Box::new(Aggregate {
                store: typed.clone(),
                agg: agg.clone(),
            }) as Box<dyn Processor>
        });
        let mut g = input.g.borrow_mut();
        let name = g.new_name("KSTREAM-AGGREGATE");
        let node = g.add_processor(name, &[input.node], supplier);
        g.connect_store(node, spec);
        drop(g);
        KTable::new(input.g.clone(), node, Some(store_name), Some(ks), Some(vs))
    }
}
