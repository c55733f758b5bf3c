//! Windowed aggregations: `TimeWindowedKStream` (tumbling and hopping windows) and
//! `SessionWindowedKStream`, folding a grouped stream into `KTable<Windowed<K>, _>` over window
//! and session stores, with stream time deciding which windows still accept records.

use std::sync::Arc;

use bytes::Bytes;

use super::ops::{count_agg, init_agg, reduce_agg, AggFn};
use super::{Change, KGroupedStream, KTable, Materialized};
use crate::error::StreamsError;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Data, Record};
use crate::serdes::{LongSerde, Serde};
use crate::state::{
    split_window_changelog_key, CacheFlush, InMemorySessionStoreSupplier,
    InMemoryWindowStoreSupplier, PersistentSessionStoreSupplier, PersistentWindowStoreSupplier,
    StoreKind, StoreSpec, StoreSupplier, TypedKeyValueStore,
};
use crate::topology::GraphBuilder;
use crate::window::{
    SessionWindowedSerde, SessionWindows, TimeWindowedSerde, TimeWindows, Window, Windowed,
};

/// The store of a windowed aggregation: its name and spec, or why it cannot be built.
fn window_store_spec<K: Data, VA: Data>(
    g: &mut GraphBuilder,
    m: &Materialized<K, VA>,
    kind: StoreKind,
    min_retention_ms: i64,
) -> Result<(String, StoreSpec), String> {
    let name = m
        .name
        .clone()
        .unwrap_or_else(|| g.new_name("KSTREAM-AGGREGATE-STATE-STORE"));
    let retention = m.retention_ms.unwrap_or(min_retention_ms);
    if retention < min_retention_ms {
        return Err(format!(
            "store {name}: retention of {retention} ms is shorter than the windows' size plus grace ({min_retention_ms} ms)"
        ));
    }
    let supplier: Arc<dyn StoreSupplier> = match (&m.supplier, kind) {
        (Some(s), _) => s.clone(),
        (None, StoreKind::Session) if m.persistent => {
            Arc::new(PersistentSessionStoreSupplier::new(name.clone(), retention))
        }
        (None, StoreKind::Session) => {
            Arc::new(InMemorySessionStoreSupplier::new(name.clone(), retention))
        }
        (None, _) if m.persistent => {
            Arc::new(PersistentWindowStoreSupplier::new(name.clone(), retention))
        }
        (None, _) => Arc::new(InMemoryWindowStoreSupplier::new(name.clone(), retention)),
    };
    if supplier.kind() != kind {
        return Err(format!(
            "store {name}: a windowed aggregation needs a {kind:?} store, the supplier builds a {:?} store",
            supplier.kind()
        ));
    }
    Ok((
        name,
        StoreSpec {
            supplier,
            logged: m.logged,
            // Session aggregates take their timestamp from the session's end instead.
            timestamped: kind == StoreKind::Window,
            // Session stores have no record cache (yet): every session update goes on.
            cached: m.cached && kind == StoreKind::Window,
        },
    ))
}

/// Adds a windowed aggregation to the graph: its store of `kind`, kept at least
/// `min_retention` ms (or the reason the windows are refused), and the processor `processor`
/// makes on the store's codec. The table's windowed keys are read with `windowed_serde`.
fn add_windowed_aggregate<K: Data, V: Data, VA: Data>(
    grouped: &KGroupedStream<K, V>,
    materialized: Materialized<K, VA>,
    kind: StoreKind,
    min_retention: Result<i64, String>,
    processor: impl Fn(TypedKeyValueStore<K, VA>) -> Box<dyn Processor> + Send + Sync + 'static,
    windowed_serde: impl FnOnce(Arc<dyn Serde<K>>) -> Arc<dyn Serde<Windowed<K>>>,
) -> KTable<Windowed<K>, VA> {
    let g = grouped.stream.g.clone();
    let spec = {
        let mut gb = g.borrow_mut();
        min_retention.and_then(|min| window_store_spec(&mut gb, &materialized, kind, min))
    };
    let key_serde = materialized.key.clone().or_else(|| grouped.key_serde());
    let (store_name, spec, ks, vs) = match (spec, key_serde, materialized.value.clone()) {
        (Ok((n, s)), Some(ks), Some(vs)) => (n, s, ks, vs),
        (spec, _, _) => {
            let why = match spec {
                Err(e) => e,
                Ok((n, _)) => format!(
                    "store {n} needs key and value serdes (give them in Grouped or Materialized)"
                ),
            };
            g.borrow_mut().errors.push(why);
            return KTable::new(g.clone(), grouped.stream.node, None, None, None);
        }
    };
    let input = grouped.input_for(&store_name);
    let codec = TypedKeyValueStore::new(store_name.clone(), ks.clone(), vs.clone());
    let supplier = Arc::new(move || processor(codec.clone()));
    let mut gb = g.borrow_mut();
    let name = gb.new_name("KSTREAM-AGGREGATE");
    let node = gb.add_processor(name, &[input.node], supplier);
    gb.connect_store(node, spec);
    drop(gb);
    KTable::new(
        g,
        node,
        Some(store_name),
        Some(windowed_serde(ks)),
        Some(vs),
    )
}

/// A grouped stream cut into time windows; `count`, `reduce` and `aggregate` give one row
/// per key and window.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: TimeWindows) -> Self {
        TimeWindowedKStream { grouped, windows }
    }

    /// The number of records per key and window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let materialized = materialized.or_value_serde(Some(Arc::new(LongSerde)));
        self.aggregate_with(count_agg(), materialized)
    }

    /// Combines the values of each key and window: the first as is, then `reducer(agg, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let materialized = materialized.or_value_serde(self.grouped.value_serde());
        self.aggregate_with(reduce_agg(reducer), materialized)
    }

    /// Folds the values of each key and window into an aggregate that starts as `initializer()`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(init_agg(initializer, aggregator), materialized)
    }

    fn aggregate_with<VA: Data>(
        &self,
        agg: AggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let w = self.windows;
        let min_retention = w.validate().map(|()| w.size_ms.saturating_add(w.grace_ms));
        add_windowed_aggregate(
            &self.grouped,
            materialized,
            StoreKind::Window,
            min_retention,
            move |codec| {
                Box::new(WindowAggregate {
                    windows: w,
                    codec,
                    agg: agg.clone(),
                })
            },
            |ks| Arc::new(TimeWindowedSerde::from_arc(ks, w.size_ms)),
        )
    }
}

/// Folds each record into every window it falls in that is still open: a window closes once
/// stream time reaches its end plus grace, and records for closed windows are dropped (and
/// counted in the task's dropped records).
struct WindowAggregate<K, V, VA> {
    windows: TimeWindows,
    codec: TypedKeyValueStore<K, VA>,
    agg: AggFn<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor for WindowAggregate<K, V, VA> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v, meta) = r.into_parts::<K, V>()?;
        let Some(kb) = self.codec.key_bytes(&k)? else {
            ctx.record_dropped("null key in a windowed aggregation");
            return Ok(());
        };
        let close = ctx
            .stream_time()
            .max(meta.timestamp)
            .saturating_sub(self.windows.grace_ms);
        for w in self.windows.windows_for(meta.timestamp) {
            if w.end <= close {
                ctx.record_dropped("its window has closed (end + grace <= stream time)");
                continue;
            }
            let mut h = ctx.window_store(self.codec.name())?;
            let old = match h.fetch_timestamped(&kb, w.start)? {
                Some((raw, ts)) => Some((self.codec.decode_value(raw, false)?.0, ts)),
                None => None,
            };
            let (old_value, old_ts) = match old {
                Some((v, ts)) => (Some(v), ts),
                None => (None, i64::MIN),
            };
            let new = (self.agg)(&k, v.clone(), old_value.clone());
            let ts = meta.timestamp.max(old_ts);
            let bytes = self.codec.value_bytes(&new)?;
            h.put(kb.clone(), w.start, bytes, ts)?;
            if h.is_cached() {
                continue; // forwarded when the cache is flushed
            }
            let change = Change {
                new: Some(new),
                old: old_value,
            };
            ctx.forward(Record {
                timestamp: ts,
                ..meta.record(Windowed::new(k.clone(), w), change)
            });
        }
        Ok(())
    }

    /// The latest value of each window a cache flush wrote, as the window's change.
    fn cache_flushed(
        &mut self,
        store: &str,
        writes: &[CacheFlush],
        ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        if store != self.codec.name() {
            return Ok(());
        }
        let timestamped = ctx.stores().is_timestamped(store);
        let decode = |raw: &Option<Bytes>| self.codec.decode_flushed(raw, timestamped);
        for w in writes {
            let (kb, start) = split_window_changelog_key(store, &w.key)?;
            let window = Window::new(start, start.saturating_add(self.windows.size_ms));
            let key = Windowed::new(self.codec.decode_key(kb)?, window);
            let change = Change {
                new: decode(&w.new)?,
                old: decode(&w.old)?,
            };
            ctx.forward(Record::new(key, change, w.timestamp));
        }
        Ok(())
    }
}

type MergeFn<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

/// A grouped stream cut into sessions; `count`, `reduce` and `aggregate` give one row per key
/// and session, and a row is deleted when its session merges into a larger one.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream { grouped, windows }
    }

    /// The number of records per key and session.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let materialized = materialized.or_value_serde(Some(Arc::new(LongSerde)));
        self.aggregate_with(
            count_agg(),
            Arc::new(|_: &K, a: i64, b: i64| a + b),
            materialized,
        )
    }

    /// Combines the values of each session with `reducer`, which also combines the
    /// aggregates of sessions that merge.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let materialized = materialized.or_value_serde(self.grouped.value_serde());
        let reducer = Arc::new(reducer);
        let r2 = reducer.clone();
        self.aggregate_with(
            reduce_agg(move |agg, v| reducer(agg, v)),
            Arc::new(move |_: &K, a: V, b: V| r2(a, b)),
            materialized,
        )
    }

    /// Folds each session's values into an aggregate starting as `initializer()`; when a
    /// record joins sessions, `merger` combines their aggregates first.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(
            init_agg(initializer, aggregator),
            Arc::new(merger),
            materialized,
        )
    }

    fn aggregate_with<VA: Data>(
        &self,
        agg: AggFn<K, V, VA>,
        merge: MergeFn<K, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let w = self.windows;
        let min_retention = w.validate().map(|()| w.gap_ms.saturating_add(w.grace_ms));
        add_windowed_aggregate(
            &self.grouped,
            materialized,
            StoreKind::Session,
            min_retention,
            move |codec| {
                Box::new(SessionAggregate {
                    windows: w,
                    codec,
                    agg: agg.clone(),
                    merge: merge.clone(),
                })
            },
            |ks| Arc::new(SessionWindowedSerde::from_arc(ks)),
        )
    }
}

/// Puts each record in a session: its own, or the merge of every session of its key within
/// `gap` of it. Merged-away sessions are deleted (store, changelog and downstream). A record
/// whose merged session ended more than grace before stream time is dropped.
struct SessionAggregate<K, V, VA> {
    windows: SessionWindows,
    codec: TypedKeyValueStore<K, VA>,
    agg: AggFn<K, V, VA>,
    merge: MergeFn<K, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor for SessionAggregate<K, V, VA> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v, meta) = r.into_parts::<K, V>()?;
        let Some(kb) = self.codec.key_bytes(&k)? else {
            ctx.record_dropped("null key in a session aggregation");
            return Ok(());
        };
        let ts = meta.timestamp;
        let close = ctx
            .stream_time()
            .max(ts)
            .saturating_sub(self.windows.grace_ms);
        let gap = self.windows.gap_ms;
        let found = ctx.session_store(self.codec.name())?.find_sessions(
            &kb,
            ts.saturating_sub(gap),
            ts.saturating_add(gap),
        )?;
        let mut merged = Window::new(ts, ts);
        let mut acc: Option<VA> = None;
        let mut sessions = Vec::with_capacity(found.len());
        for (w, raw) in found {
            let value = self.codec.decode_value(raw, false)?.0;
            acc = Some(match acc {
                None => value.clone(),
                Some(a) => (self.merge)(&k, a, value.clone()),
            });
            merged = Window::new(merged.start.min(w.start), merged.end.max(w.end));
            sessions.push((w, value));
        }
        // A session's end is a record's timestamp and belongs to it, so it closes only once
        // stream time is past end + grace.
        if merged.end < close {
            ctx.record_dropped("its session has closed (end + grace < stream time)");
            return Ok(());
        }
        let mut same_window_old = None;
        for (w, value) in sessions {
            if w == merged {
                same_window_old = Some(value);
                continue;
            }
            ctx.session_store(self.codec.name())?
                .put(kb.clone(), w, None, ts)?;
            let gone = Change {
                new: None,
                old: Some(value),
            };
            ctx.forward(Record {
                timestamp: w.end,
                ..meta.record(Windowed::new(k.clone(), w), gone)
            });
        }
        let new = (self.agg)(&k, v, acc);
        let bytes = self.codec.value_bytes(&new)?;
        ctx.session_store(self.codec.name())?
            .put(kb, merged, bytes, ts)?;
        let change = Change {
            new: Some(new),
            old: same_window_old,
        };
        ctx.forward(Record {
            timestamp: merged.end,
            ..meta.into_record(Windowed::new(k, merged), change)
        });
        Ok(())
    }
}
