//! The processors behind DSL operations: a closure processor for stateless steps, the branch
//! router, and the stateful aggregate and table-source processors over timestamped stores.

use std::sync::Arc;

use bytes::Bytes;

use crate::dsl::Change;
use crate::error::StreamsError;
use crate::processor::{Processor, ProcessorContext, ProcessorSupplier};
use crate::record::{Data, Record};
use crate::state::{CacheFlush, TypedKeyValueStore};

pub(crate) type StepFn =
    dyn Fn(Record, &mut ProcessorContext<'_>) -> Result<(), StreamsError> + Send + Sync;

/// A stateless step: the closure gets each record and forwards what it makes of it.
pub(crate) struct Step(pub Arc<StepFn>);

impl Processor for Step {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        (self.0)(r, ctx)
    }
}

pub(crate) fn step_supplier(f: Arc<StepFn>) -> Arc<dyn ProcessorSupplier> {
    Arc::new(move || Box::new(Step(f.clone())) as Box<dyn Processor>)
}

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Sends each record to the child of the first predicate it matches (children are the
/// branches in order, the default branch last), or drops it.
pub(crate) struct Branch<K, V> {
    pub predicates: Arc<Vec<Predicate<K, V>>>,
    pub has_default: bool,
}

impl<K: Data, V: Data> Processor for Branch<K, V> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v) = (r.key.get::<K>()?, r.value.get::<V>()?);
        let hit = self.predicates.iter().position(|p| p(k, v));
        let child = match hit {
            Some(i) => i,
            None if self.has_default => self.predicates.len(),
            None => return Ok(()),
        };
        ctx.forwards.push((Some(child), r));
        Ok(())
    }
}

pub(crate) type AggFn<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// The aggregator of `count`: one more for each record.
pub(crate) fn count_agg<K: Data, V: Data>() -> AggFn<K, V, i64> {
    Arc::new(|_: &K, _: V, old: Option<i64>| old.unwrap_or(0) + 1)
}

/// The aggregator of `reduce`: the first value as is, then `reducer(aggregate, value)`.
pub(crate) fn reduce_agg<K: Data, V: Data>(
    reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> AggFn<K, V, V> {
    Arc::new(move |_: &K, v: V, old: Option<V>| match old {
        Some(agg) => reducer(agg, v),
        None => v,
    })
}

/// The aggregator of `aggregate`: `aggregator(key, value, aggregate)`, the aggregate starting
/// as `initializer()`.
pub(crate) fn init_agg<K: Data, V: Data, VA: Data>(
    initializer: impl Fn() -> VA + Send + Sync + 'static,
    aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
) -> AggFn<K, V, VA> {
    Arc::new(move |k: &K, v: V, old: Option<VA>| aggregator(k, v, old.unwrap_or_else(&initializer)))
}

/// Folds each record into its key's entry in a timestamped store and forwards the change;
/// the result's timestamp is the largest of the key's records, as in Kafka. With a cached
/// store the change is forwarded when the cache is flushed: the latest per key, once.
pub(crate) struct Aggregate<K, V, VA> {
    pub store: TypedKeyValueStore<K, VA>,
    pub agg: AggFn<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor for Aggregate<K, V, VA> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v, meta) = r.into_parts::<K, V>()?;
        // Records whose key is null cannot be grouped; Kafka drops them too.
        let Some(kb) = self.store.key_bytes(&k)? else {
            return Ok(());
        };
        let mut h = ctx.kv_store(self.store.name())?;
        let old = self.store.get(&h, &kb)?;
        let (old_value, old_ts) = match old {
            Some((v, ts)) => (Some(v), ts),
            None => (None, i64::MIN),
        };
        let new = (self.agg)(&k, v, old_value.clone());
        let ts = meta.timestamp.max(old_ts);
        self.store.put(&mut h, kb, Some(&new), ts)?;
        if h.is_cached() {
            return Ok(());
        }
        let change = Change {
            new: Some(new),
            old: old_value,
        };
        ctx.forward(Record {
            timestamp: ts,
            ..meta.into_record(k, change)
        });
        Ok(())
    }

    fn cache_flushed(
        &mut self,
        store: &str,
        writes: &[CacheFlush],
        ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        forward_flushed(&self.store, store, writes, ctx)
    }
}

/// Forwards each write a cached timestamped store passed on as the change it made to its key
/// (at the write's timestamp, without headers: the records behind it may be many).
fn forward_flushed<K: Data, V: Data>(
    typed: &TypedKeyValueStore<K, V>,
    store: &str,
    writes: &[CacheFlush],
    ctx: &mut ProcessorContext<'_>,
) -> Result<(), StreamsError> {
    if store != typed.name() {
        return Ok(());
    }
    let timestamped = ctx.stores().is_timestamped(store);
    let decode = |raw: &Option<Bytes>| typed.decode_flushed(raw, timestamped);
    for w in writes {
        let change = Change {
            new: decode(&w.new)?,
            old: decode(&w.old)?,
        };
        let key = typed.decode_key(&w.key)?;
        ctx.forward(Record::new(key, change, w.timestamp));
    }
    Ok(())
}

/// Keeps the latest value per key of a table's topic (a `None` value deletes the key) and
/// forwards each change with the value it replaced (for a cached store, at its flush).
pub(crate) struct TableSource<K, V> {
    pub store: TypedKeyValueStore<K, V>,
}

impl<K: Data, V: Data> Processor for TableSource<K, V> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v, meta) = r.into_parts::<K, Option<V>>()?;
        let Some(kb) = self.store.key_bytes(&k)? else {
            return Ok(());
        };
        let mut h = ctx.kv_store(self.store.name())?;
        let old = self.store.get(&h, &kb)?.map(|(v, _)| v);
        if old.is_none() && v.is_none() {
            return Ok(()); // deleting an absent key changes nothing
        }
        self.store.put(&mut h, kb, v.as_ref(), meta.timestamp)?;
        if !h.is_cached() {
            ctx.forward(meta.into_record(k, Change { new: v, old }));
        }
        Ok(())
    }

    fn cache_flushed(
        &mut self,
        store: &str,
        writes: &[CacheFlush],
        ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        forward_flushed(&self.store, store, writes, ctx)
    }
}
