//! `KStream<K, V>`: a typed stream of records; each operation adds a node and returns the
//! stream after it. Changing the key marks the stream for repartitioning before any grouping.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::ops::{step_supplier, Branch, Predicate, StepFn};
use super::{Grouped, KGroupedStream, Produced, Repartitioned};
use crate::processor::{Processor, ProcessorSupplier};
use crate::record::{Data, Erased, Record};
use crate::serdes::Serde;
use crate::state::StoreSpec;
use crate::topology::{GraphBuilder, SerdePair, TopicRef};

pub struct KStream<K, V> {
    pub(crate) g: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// The key may have changed since the source: group before repartitioning and records
    /// of one key could sit in several tasks.
    pub(crate) repartition_required: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            g: self.g.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        g: Rc<RefCell<GraphBuilder>>,
        node: usize,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
        repartition_required: bool,
    ) -> Self {
        KStream {
            g,
            node,
            key_serde,
            value_serde,
            repartition_required,
        }
    }

    /// Adds a processor node under this stream; the result's serdes are given by the caller.
    pub(crate) fn add<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        supplier: Arc<dyn ProcessorSupplier>,
        key_serde: Option<Arc<dyn Serde<K2>>>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        let mut g = self.g.borrow_mut();
        let name = g.new_name(prefix);
        let node = g.add_processor(name, &[self.node], supplier);
        drop(g);
        KStream::new(
            self.g.clone(),
            node,
            key_serde,
            value_serde,
            self.repartition_required || key_changed,
        )
    }

    fn step<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        f: Arc<StepFn>,
        key_serde: Option<Arc<dyn Serde<K2>>>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        self.add(
            prefix,
            step_supplier(f),
            key_serde,
            value_serde,
            key_changed,
        )
    }

    /// New key and value for each record (marks the stream for repartitioning).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, v, meta) = r.into_parts::<K, V>()?;
            let (k2, v2) = f(k, v);
            ctx.forward(meta.into_record(k2, v2));
            Ok(())
        });
        self.step("KSTREAM-MAP", f, None, None, true)
    }

    /// New value for each record; the key stays, so no repartitioning is needed.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            // The key goes on in its box: only the value is unboxed and boxed anew.
            let v2 = f(r.key.get::<K>()?, r.value.take::<V>()?);
            ctx.forward(Record {
                key: r.key,
                value: Erased::new(v2),
                timestamp: r.timestamp,
                headers: r.headers,
            });
            Ok(())
        });
        self.step("KSTREAM-MAPVALUES", f, self.key_serde.clone(), None, false)
    }

    /// Zero or more records for each record (marks the stream for repartitioning).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, v, meta) = r.into_parts::<K, V>()?;
            for (k2, v2) in f(k, v) {
                ctx.forward(meta.record(k2, v2));
            }
            Ok(())
        });
        self.step("KSTREAM-FLATMAP", f, None, None, true)
    }

    /// Zero or more values for each record, each with the record's key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, v, meta) = r.into_parts::<K, V>()?;
            for v2 in f(v) {
                ctx.forward(meta.record(k.clone(), v2));
            }
            Ok(())
        });
        self.step(
            "KSTREAM-FLATMAPVALUES",
            f,
            self.key_serde.clone(),
            None,
            false,
        )
    }

    /// Keeps the records the predicate accepts.
    pub fn filter(&self, p: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            if p(r.key.get::<K>()?, r.value.get::<V>()?) {
                ctx.forward(r);
            }
            Ok(())
        });
        let (ks, vs) = (self.key_serde.clone(), self.value_serde.clone());
        self.step("KSTREAM-FILTER", f, ks, vs, false)
    }

    /// Keeps the records the predicate rejects.
    pub fn filter_not(&self, p: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.filter(move |k, v| !p(k, v))
    }

    /// A new key from key and value (marks the stream for repartitioning).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            let (k, v, meta) = r.into_parts::<K, V>()?;
            let k2 = f(&k, &v);
            ctx.forward(meta.into_record(k2, v));
            Ok(())
        });
        self.step(
            "KSTREAM-KEY-SELECT",
            f,
            None,
            self.value_serde.clone(),
            true,
        )
    }

    /// Looks at each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f: Arc<StepFn> = Arc::new(move |r: Record, ctx| {
            f(r.key.get::<K>()?, r.value.get::<V>()?);
            ctx.forward(r);
            Ok(())
        });
        let (ks, vs) = (self.key_serde.clone(), self.value_serde.clone());
        self.step("KSTREAM-PEEK", f, ks, vs, false)
    }

    /// Calls `f` on each record; a terminal operation.
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f: Arc<StepFn> = Arc::new(move |r: Record, _ctx| {
            f(r.key.get::<K>()?, r.value.get::<V>()?);
            Ok(())
        });
        let _: KStream<K, V> = self.step("KSTREAM-FOREACH", f, None, None, false);
    }

    /// Starts splitting the stream: each record goes to the first branch whose predicate
    /// accepts it.
    pub fn split(&self) -> Splitter<K, V> {
        Splitter {
            stream: self.clone(),
            predicates: Vec::new(),
            names: Vec::new(),
        }
    }

    /// One stream of the records of both (in the order they are processed).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let f: Arc<StepFn> = Arc::new(|r: Record, ctx| {
            ctx.forward(r);
            Ok(())
        });
        let mut g = self.g.borrow_mut();
        if !Rc::ptr_eq(&self.g, &other.g) {
            g.errors
                .push("merge of streams from two different builders".to_string());
        }
        let name = g.new_name("KSTREAM-MERGE");
        let node = g.add_processor(name, &[self.node, other.node], step_supplier(f));
        drop(g);
        let same = |a: bool, b: bool| a && b;
        KStream::new(
            self.g.clone(),
            node,
            if same(self.key_serde.is_some(), other.key_serde.is_some()) {
                self.key_serde.clone()
            } else {
                None
            },
            if same(self.value_serde.is_some(), other.value_serde.is_some()) {
                self.value_serde.clone()
            } else {
                None
            },
            self.repartition_required || other.repartition_required,
        )
    }

    /// Writes the records to a topic.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let mut g = self.g.borrow_mut();
        let name = produced
            .name
            .clone()
            .unwrap_or_else(|| g.new_name("KSTREAM-SINK"));
        let enc = Arc::new(SerdePair {
            key: produced.key,
            value: produced.value,
        });
        g.add_sink(name, self.node, TopicRef::External(topic.to_string()), enc);
    }

    /// Writes the records through an internal `<application.id>-<name>-repartition` topic,
    /// partitioned by key, and reads them back in a new sub-topology.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let prefix = {
            let mut g = self.g.borrow_mut();
            repartitioned
                .name
                .clone()
                .unwrap_or_else(|| g.new_name("KSTREAM-REPARTITION"))
        };
        self.through_repartition_topic(&prefix, repartitioned.key, repartitioned.value)
    }

    /// Sink to and source from `<base>-repartition`. Missing serdes are recorded as a build
    /// error naming the topic, since they cannot be defaulted for an arbitrary type.
    pub(crate) fn through_repartition_topic(
        &self,
        base: &str,
        key: Option<Arc<dyn Serde<K>>>,
        value: Option<Arc<dyn Serde<V>>>,
    ) -> KStream<K, V> {
        let topic = format!("{base}-repartition");
        let key = key.or_else(|| self.key_serde.clone());
        let value = value.or_else(|| self.value_serde.clone());
        let mut g = self.g.borrow_mut();
        let (Some(key), Some(value)) = (key, value) else {
            g.errors.push(format!(
                "repartition topic {topic} needs key and value serdes (give them in Grouped or Repartitioned)"
            ));
            return self.clone();
        };
        let pair = Arc::new(SerdePair {
            key: key.clone(),
            value: value.clone(),
        });
        let sink = format!("{topic}-sink");
        g.add_sink(
            sink,
            self.node,
            TopicRef::Internal(topic.clone()),
            pair.clone(),
        );
        let source = format!("{topic}-source");
        let node = g.add_source(source, vec![TopicRef::Internal(topic.clone())], pair, None);
        g.repartition_topics.push(topic);
        drop(g);
        KStream::new(self.g.clone(), node, Some(key), Some(value), false)
    }

    /// Groups by the current key; repartitions first if the key was changed upstream.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped, self.repartition_required)
    }

    /// Groups by a new key; always repartitions, through `grouped`'s serdes.
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let keyed = self.select_key(f);
        KGroupedStream::new(keyed, grouped, true)
    }

    /// Adds a processor of the processor API, connected to the named stores (declared here
    /// when new). Its output types are the caller's promise: a processor forwarding other
    /// types makes the next node fail with `StreamsError::TypeMismatch`.
    ///
    /// The DSL cannot see whether the processor changes keys, so, as Kafka does, it takes it
    /// to: a later `group_by_key` repartitions first, by the serdes given in `Grouped`. A
    /// join needs `repartition` with serdes first (the output serdes are unknown here).
    pub fn process<K2: Data, V2: Data>(
        &self,
        name: &str,
        supplier: impl Fn() -> Box<dyn Processor> + Send + Sync + 'static,
        stores: Vec<StoreSpec>,
    ) -> KStream<K2, V2> {
        let mut g = self.g.borrow_mut();
        let node = g.add_processor(name.to_string(), &[self.node], Arc::new(supplier));
        for s in stores {
            g.connect_store(node, s);
        }
        drop(g);
        KStream::new(self.g.clone(), node, None, None, true)
    }
}

/// A stream being split into branches; `default_branch` or `no_default_branch` ends it.
pub struct Splitter<K, V> {
    stream: KStream<K, V>,
    predicates: Vec<Predicate<K, V>>,
    names: Vec<Option<String>>,
}

impl<K: Data, V: Data> Splitter<K, V> {
    pub fn branch(mut self, p: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.predicates.push(Arc::new(p));
        self.names.push(None);
        self
    }

    /// A branch whose node has the given name.
    pub fn branch_named(
        mut self,
        name: impl Into<String>,
        p: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(p));
        self.names.push(Some(name.into()));
        self
    }

    /// The branches in order, then one for the records no predicate accepted.
    pub fn default_branch(self) -> Vec<KStream<K, V>> {
        self.finish(true)
    }

    /// The branches in order; records no predicate accepts are dropped.
    pub fn no_default_branch(self) -> Vec<KStream<K, V>> {
        self.finish(false)
    }

    fn finish(mut self, has_default: bool) -> Vec<KStream<K, V>> {
        if has_default {
            self.names.push(None);
        }
        let predicates = Arc::new(self.predicates);
        let router: Arc<dyn ProcessorSupplier> = Arc::new(move || {
            Box::new(Branch {
                predicates: predicates.clone(),
                has_default,
            }) as Box<dyn Processor>
        });
        let s = &self.stream;
        let router: KStream<K, V> = s.add("KSTREAM-BRANCH", router, None, None, false);
        let pass: Arc<StepFn> = Arc::new(|r: Record, ctx| {
            ctx.forward(r);
            Ok(())
        });
        let mut out = Vec::new();
        for name in self.names {
            let mut g = s.g.borrow_mut();
            let name = name.unwrap_or_else(|| g.new_name("KSTREAM-BRANCHCHILD"));
            let node = g.add_processor(name, &[router.node], step_supplier(pass.clone()));
            drop(g);
            let (ks, vs) = (s.key_serde.clone(), s.value_serde.clone());
            out.push(KStream::new(
                s.g.clone(),
                node,
                ks,
                vs,
                s.repartition_required,
            ));
        }
        out
    }
}
