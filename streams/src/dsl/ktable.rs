//! `KTable<K, V>`: the latest value per key. Its nodes pass `Change`s (new and old value) so
//! filters can retract rows that stop matching, and deletes travel as `None`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::ops::{step_supplier, StepFn, TableSource};
use super::{Consumed, KStream, Materialized, OptionSerde};
use crate::processor::Processor;
use crate::record::{Data, Record};
use crate::serdes::Serde;
use crate::state::TypedKeyValueStore;
use crate::topology::{GraphBuilder, SerdePair, TopicRef};

/// An update of one key of a table: the value after and before it (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

pub struct KTable<K, V> {
    pub(crate) g: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    /// The store holding this table's rows, when it is materialized.
    pub(crate) store: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        g: Rc<RefCell<GraphBuilder>>,
        node: usize,
        store: Option<String>,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
    ) -> Self {
        KTable {
            g,
            node,
            store,
            key_serde,
            value_serde,
        }
    }

    /// The name of the store this table is materialized in (for queries and joins).
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn step<V2: Data>(
        &self,
        prefix: &str,
        f: Arc<StepFn>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
    ) -> KTable<K, V2> {
        let mut g = self.g.borrow_mut();
        let name = g.new_name(prefix);
        let node = g.add_processor(name, &[self.node], step_supplier(f));
        drop(g);
        KTable::new(
            self.g.clone(),
            node,
            None,
            self.key_serde.clone(),
            value_serde,
        )
    }

    /// The rows the predicate accepts. A row that stops matching is deleted downstream.
    pub fn filter(&self, p: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, c, meta) = r.into_parts::<K, Change<V>>()?;
            let keep = |v: Option<V>| v.filter(|v| p(&k, v));
            let (new, old) = (keep(c.new), keep(c.old));
            // Neither side visible: downstream never saw the row and need not hear of it.
            if new.is_some() || old.is_some() {
                ctx.forward(meta.into_record(k, Change { new, old }));
            }
            Ok(())
        });
        self.step("KTABLE-FILTER", f, self.value_serde.clone())
    }

    pub fn filter_not(&self, p: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter(move |k, v| !p(k, v))
    }

    /// A new value for each row (deletes stay deletes).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, c, meta) = r.into_parts::<K, Change<V>>()?;
            let change = Change {
                new: c.new.map(&f),
                old: c.old.map(&f),
            };
            ctx.forward(meta.into_record(k, change));
            Ok(())
        });
        self.step("KTABLE-MAPVALUES", f, None)
    }

    /// The stream of the table's updates: each new value, `None` where a row was deleted.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let f: Arc<StepFn> = Arc::new(|r: Record, ctx| {
            let (k, c, meta) = r.into_parts::<K, Change<V>>()?;
            ctx.forward(meta.into_record(k, c.new));
            Ok(())
        });
        let mut g = self.g.borrow_mut();
        let name = g.new_name("KTABLE-TOSTREAM");
        let node = g.add_processor(name, &[self.node], step_supplier(f));
        drop(g);
        let value_serde = self
            .value_serde
            .clone()
            .map(|s| Arc::new(OptionSerde(s)) as Arc<dyn Serde<Option<V>>>);
        KStream::new(
            self.g.clone(),
            node,
            self.key_serde.clone(),
            value_serde,
            false,
        )
    }
}

pub(crate) fn table_from_topic<K: Data, V: Data>(
    g: &Rc<RefCell<GraphBuilder>>,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let mut gb = g.borrow_mut();
    let source = consumed
        .name
        .clone()
        .unwrap_or_else(|| gb.new_name("KSTREAM-SOURCE"));
    let (store_name, spec) = match &materialized.name {
        Some(_) => materialized.spec(&mut gb, ""),
        None => {
            let name = gb.new_name(&format!("{topic}-STATE-STORE"));
            Materialized::<K, V> {
                name: Some(name),
                ..materialized
            }
            .spec(&mut gb, "")
        }
    };
    // Table sources read values as Option so a null value is a delete, not a serde error.
    let decoder = Arc::new(SerdePair::<K, Option<V>> {
        key: consumed.key.clone(),
        value: Arc::new(OptionSerde(consumed.value.clone())),
    });
    let src = gb.add_source(
        source,
        vec![TopicRef::External(topic.to_string())],
        decoder,
        consumed.extractor.clone(),
    );
    let typed = TypedKeyValueStore::new(
        store_name.clone(),
        consumed.key.clone(),
        consumed.value.clone(),
    );
    let supplier = Arc::new(move || {
        Box::new(TableSource {
            store: typed.clone(),
        }) as Box<dyn Processor>
    });
    let name = gb.new_name("KTABLE-SOURCE");
    let node = gb.add_processor(name, &[src], supplier);
    gb.connect_store(node, spec);
    drop(gb);
    KTable::new(
        g.clone(),
        node,
        Some(store_name),
        Some(consumed.key),
        Some(consumed.value),
    )
}
