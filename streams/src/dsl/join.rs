//! Joins: stream-table (`KStream::join`/`left_join`, each record enriched with the table's
//! current value for its key) and table-table (`KTable::join`/`left_join`, updated from both sides).
//!
//! A join reads the other side's store, which puts it in that store's sub-topology; the
//! topics feeding both sides are recorded as a co-partition group the runtime must check
//! (`Topology::copartition_groups`), since a key must land in the same task on both sides.

use std::rc::Rc;
use std::sync::Arc;

use super::ops::step_supplier;
use super::ops::StepFn;
use super::{Change, KStream, KTable};
use crate::error::StreamsError;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Data, Record};
use crate::state::{StoreKind, TypedKeyValueStore};
use crate::topology::GraphBuilder;

/// The store a join reads: the table's key-value store and a codec for it, or why not.
fn joinable_store<K: Data, V: Data>(
    g: &GraphBuilder,
    t: &KTable<K, V>,
) -> Result<TypedKeyValueStore<K, V>, String> {
    let store = t.store.clone().ok_or_else(|| {
        "a join needs a materialized table: join a table read with StreamsBuilder::table or \
         made by an aggregation, not one derived by filter/map_values/join"
            .to_string()
    })?;
    let spec = g
        .stores
        .iter()
        .find(|s| s.name() == store)
        .ok_or_else(|| format!("store {store} is not declared"))?;
    if spec.supplier.kind() != StoreKind::KeyValue {
        return Err(format!(
            "store {store} is a {:?} store; joins read key-value stores",
            spec.supplier.kind()
        ));
    }
    match (&t.key_serde, &t.value_serde) {
        (Some(k), Some(v)) => Ok(TypedKeyValueStore::new(store, k.clone(), v.clone())),
        _ => Err(format!(
            "store {store} has no key and value serdes to read it by"
        )),
    }
}

type StreamJoiner<V, VT, VR> = Arc<dyn Fn(V, Option<VT>) -> VR + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Each record joined with the table's current value for its key, by `joiner(value,
    /// table_value)`; records whose key has no row in the table are dropped. Only table
    /// updates made before a record is processed are seen (no later ones re-trigger it).
    /// Repartitions the stream first if its key changed upstream.
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let f: StreamJoiner<V, VT, VR> = Arc::new(move |v, t: Option<VT>| {
            joiner(
                v,
                t.expect("inner join calls the joiner with a table value"),
            )
        });
        self.join_table(table, true, f)
    }

    /// Each record joined with the table's current value for its key, or `None` when the
    /// table has no row for it (or the key is null).
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_table(table, false, Arc::new(joiner))
    }

    fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        inner: bool,
        joiner: StreamJoiner<V, VT, VR>,
    ) -> KStream<K, VR> {
        if !Rc::ptr_eq(&self.g, &table.g) {
            self.g
                .borrow_mut()
                .errors
                .push("join of a stream and a table from two different builders".to_string());
            return KStream::new(self.g.clone(), self.node, None, None, false);
        }
        let input = if self.repartition_required {
            let base = self.g.borrow_mut().new_name("KSTREAM-JOIN") + "-left";
            // The key's type is the table's, so the table's key serde serves when the stream
            // lost its own (select_key keeps only the value serde).
            let key = self.key_serde.clone().or_else(|| table.key_serde.clone());
            self.through_repartition_topic(&base, key, None)
        } else {
            self.clone()
        };
        let mut g = self.g.borrow_mut();
        let store = match joinable_store(&g, table) {
            Ok(s) => s,
            Err(e) => {
                g.errors.push(e);
                return KStream::new(self.g.clone(), self.node, None, None, false);
            }
        };
        let spec = g
            .stores
            .iter()
            .find(|s| s.name() == store.name())
            .expect("checked by joinable_store")
            .clone();
        let supplier = Arc::new(move || {
            Box::new(StreamTableJoin {
                table: store.clone(),
                inner,
                joiner: joiner.clone(),
            }) as Box<dyn Processor>
        });
        let name = g.new_name("KSTREAM-JOIN");
        let node = g.add_processor(name, &[input.node], supplier);
        g.connect_store(node, spec);
        g.copartition.push(vec![input.node, table.node]);
        drop(g);
        KStream::new(self.g.clone(), node, input.key_serde.clone(), None, false)
    }
}

struct StreamTableJoin<K, V, VT, VR> {
    table: TypedKeyValueStore<K, VT>,
    inner: bool,
    joiner: StreamJoiner<V, VT, VR>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor for StreamTableJoin<K, V, VT, VR> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, v, meta) = r.into_parts::<K, V>()?;
        let row = match self.table.key_bytes(&k)? {
            Some(kb) => {
                let h = ctx.kv_store(self.table.name())?;
                self.table.get(&h, &kb)?.map(|(t, _)| t)
            }
            None if self.inner => {
                ctx.record_dropped("null key in a stream-table join");
                return Ok(());
            }
            None => None,
        };
        if self.inner && row.is_none() {
            return Ok(());
        }
        let joined = (self.joiner)(v, row);
        ctx.forward(meta.into_record(k, joined));
        Ok(())
    }
}

type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// A table with a row for each key both tables have, `joiner(value, other_value)`,
    /// updated whenever either side changes (and deleted when either side's row is).
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let f: TableJoiner<V, VO, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        });
        self.join_table(other, f)
    }

    /// A table with a row for each key of this table, `joiner(value, other_value_or_None)`,
    /// updated whenever either side changes.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let f: TableJoiner<V, VO, VR> = Arc::new(move |l, r| l.map(|l| joiner(l, r)));
        self.join_table(other, f)
    }

    fn join_table<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        f: TableJoiner<V, VO, VR>,
    ) -> KTable<K, VR> {
        let mut g = self.g.borrow_mut();
        let fail = |g: &mut GraphBuilder, e: String| {
            g.errors.push(e);
            KTable::new(self.g.clone(), self.node, None, None, None)
        };
        if !Rc::ptr_eq(&self.g, &other.g) {
            return fail(
                &mut g,
                "join of tables from two different builders".to_string(),
            );
        }
        let (left, right) = match (joinable_store(&g, self), joinable_store(&g, other)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => return fail(&mut g, e),
        };
        let specs: Vec<_> = g
            .stores
            .iter()
            .filter(|s| s.name() == left.name() || s.name() == right.name())
            .cloned()
            .collect();
        let fl = f.clone();
        let lsup = Arc::new(move || {
            Box::new(TableJoinSide {
                other: right.clone(),
                join: {
                    let fl = fl.clone();
                    Arc::new(move |mine: Option<&V>, theirs: Option<&VO>| fl(mine, theirs))
                        as SideFn<V, VO, VR>
                },
            }) as Box<dyn Processor>
        });
        let rsup = Arc::new(move || {
            Box::new(TableJoinSide {
                other: left.clone(),
                join: {
                    let f = f.clone();
                    Arc::new(move |mine: Option<&VO>, theirs: Option<&V>| f(theirs, mine))
                        as SideFn<VO, V, VR>
                },
            }) as Box<dyn Processor>
        });
        let lname = g.new_name("KTABLE-JOINTHIS");
        let lnode = g.add_processor(lname, &[self.node], lsup);
        let rname = g.new_name("KTABLE-JOINOTHER");
        let rnode = g.add_processor(rname, &[other.node], rsup);
        for s in specs {
            g.connect_store(lnode, s.clone());
            g.connect_store(rnode, s);
        }
        let pass: Arc<StepFn> = Arc::new(|r: Record, ctx| {
            ctx.forward(r);
            Ok(())
        });
        let mname = g.new_name("KTABLE-MERGE");
        let node = g.add_processor(mname, &[lnode, rnode], step_supplier(pass));
        g.copartition.push(vec![self.node, other.node]);
        drop(g);
        KTable::new(self.g.clone(), node, None, self.key_serde.clone(), None)
    }
}

type SideFn<A, B, VR> = Arc<dyn Fn(Option<&A>, Option<&B>) -> Option<VR> + Send + Sync>;

/// One side of a table-table join: a change on this side is joined with the other side's
/// current row; the result's old value is what the join gave before the change.
struct TableJoinSide<K, A, B, VR> {
    other: TypedKeyValueStore<K, B>,
    join: SideFn<A, B, VR>,
}

impl<K: Data, A: Data, B: Data, VR: Data> Processor for TableJoinSide<K, A, B, VR> {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (k, c, meta) = r.into_parts::<K, Change<A>>()?;
        let Some(kb) = self.other.key_bytes(&k)? else {
            ctx.record_dropped("null key in a table-table join");
            return Ok(());
        };
        let h = ctx.kv_store(self.other.name())?;
        let theirs = self.other.get(&h, &kb)?;
        let (theirs, their_ts) = match theirs {
            Some((v, ts)) => (Some(v), ts),
            None => (None, i64::MIN),
        };
        // The old result is what downstream was told: this side's old row with the other's
        // row as of the last cache flush. Joining it with the other's newer row instead would
        // lose a delete when both rows go between two flushes (neither side would see a row).
        let theirs_before = if h.is_cached() {
            self.other.get_flushed(&h, &kb)?.map(|(v, _)| v)
        } else {
            theirs.clone()
        };
        let new = (self.join)(c.new.as_ref(), theirs.as_ref());
        let old = (self.join)(c.old.as_ref(), theirs_before.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(Record {
            timestamp: meta.timestamp.max(their_ts),
            ..meta.into_record(k, Change { new, old })
        });
        Ok(())
    }
}
