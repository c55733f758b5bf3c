//! The built processing graph: nodes (sources, processors, sinks), stores, sub-topologies (parts
//! connected only through topics, one task each per input partition) and internal topics.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::StreamsError;
use crate::processor::ProcessorSupplier;
use crate::record::{Data, Erased, InputRecord, TimestampExtractor};
use crate::serdes::Serde;
use crate::state::{changelog_topic, StoreKind, StoreSpec};

/// A task: one sub-topology working on one partition of its input topics. Printed as Kafka
/// prints it, `<sub-topology>_<partition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: u32,
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A topic a node reads or writes: a user topic, or an internal one named without the
/// `<application.id>-` prefix, which the runtime adds (so one topology serves any app id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicRef {
    External(String),
    Internal(String),
}

impl TopicRef {
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicRef::External(t) => t.clone(),
            TopicRef::Internal(base) => format!("{application_id}-{base}"),
        }
    }

    fn describe(&self) -> &str {
        match self {
            TopicRef::External(t) | TopicRef::Internal(t) => t,
        }
    }
}

/// Turns a raw record's key and value into the typed (erased) values of a source node.
pub(crate) trait SourceDecoder: Send + Sync {
    fn decode(&self, record: &InputRecord) -> Result<(Erased, Erased), StreamsError>;
}

/// Turns a record's typed key and value into bytes for a sink's topic, taking them over (a
/// sink is the last to see them).
pub(crate) trait SinkEncoder: Send + Sync {
    fn encode(
        &self,
        topic: &str,
        key: Erased,
        value: Erased,
    ) -> Result<(Option<Bytes>, Option<Bytes>), StreamsError>;
}

pub(crate) struct SerdePair<K, V> {
    pub key: Arc<dyn Serde<K>>,
    pub value: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> SourceDecoder for SerdePair<K, V> {
    fn decode(&self, r: &InputRecord) -> Result<(Erased, Erased), StreamsError> {
        let k = self
            .key
            .deserialize(&r.topic, r.key.as_deref())
            .map_err(|e| StreamsError::serde("deserialize", "key", &r.topic, e))?;
        let v = self
            .value
            .deserialize(&r.topic, r.value.as_deref())
            .map_err(|e| StreamsError::serde("deserialize", "value", &r.topic, e))?;
        Ok((Erased::new(k), Erased::new(v)))
    }
}

impl<K: Data, V: Data> SinkEncoder for SerdePair<K, V> {
    fn encode(
        &self,
        topic: &str,
        key: Erased,
        value: Erased,
    ) -> Result<(Option<Bytes>, Option<Bytes>), StreamsError> {
        let k = self
            .key
            .serialize_owned(topic, key.take::<K>()?)
            .map_err(|e| StreamsError::serde("serialize", "key", topic, e))?;
        let v = self
            .value
            .serialize_owned(topic, value.take::<V>()?)
            .map_err(|e| StreamsError::serde("serialize", "value", topic, e))?;
        Ok((k, v))
    }
}

pub(crate) enum NodeKind {
    Source {
        topics: Vec<TopicRef>,
        decoder: Arc<dyn SourceDecoder>,
        extractor: Option<Arc<dyn TimestampExtractor>>,
    },
    Processor {
        supplier: Arc<dyn ProcessorSupplier>,
    },
    Sink {
        topic: TopicRef,
        encoder: Arc<dyn SinkEncoder>,
    },
}

pub(crate) struct NodeSpec {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub stores: Vec<String>,
}

/// What an internal topic is for; changelogs are compacted, repartition topics deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopicKind {
    Repartition,
    Changelog,
}

/// An internal topic the runtime must create before starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    pub kind: InternalTopicKind,
    /// The sub-topology whose partition count the topic takes: for a repartition topic the
    /// writer's, for a changelog the store's (one changelog partition per task).
    pub subtopology: u32,
}

/// The DSL's graph under construction; `StreamsBuilder` owns it.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub nodes: Vec<NodeSpec>,
    pub stores: Vec<StoreSpec>,
    pub repartition_topics: Vec<String>,
    pub counter: u64,
    pub errors: Vec<String>,
    /// Nodes whose input topics must be co-partitioned (the two sides of each join).
    pub copartition: Vec<Vec<usize>>,
}

impl GraphBuilder {
    /// A generated name in Kafka's style: prefix and a ten-digit index shared by all names.
    pub fn new_name(&mut self, prefix: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{prefix}-{n:010}")
    }

    fn add(&mut self, name: String, kind: NodeKind, parents: &[usize]) -> usize {
        if self.nodes.iter().any(|n| n.name == name) {
            self.errors.push(format!("two processors are named {name}"));
        }
        let id = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        self.nodes.push(NodeSpec {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores: Vec::new(),
        });
        id
    }

    pub fn add_source(
        &mut self,
        name: String,
        topics: Vec<TopicRef>,
        decoder: Arc<dyn SourceDecoder>,
        extractor: Option<Arc<dyn TimestampExtractor>>,
    ) -> usize {
        for t in &topics {
            let read_twice = self.nodes.iter().any(|n| match &n.kind {
                NodeKind::Source { topics: ts, .. } => ts.contains(t),
                _ => false,
            });
            if read_twice {
                self.errors
                    .push(format!("topic {} is read by two sources", t.describe()));
            }
        }
        let kind = NodeKind::Source {
            topics,
            decoder,
            extractor,
        };
        self.add(name, kind, &[])
    }

    pub fn add_processor(
        &mut self,
        name: String,
        parents: &[usize],
        supplier: Arc<dyn ProcessorSupplier>,
    ) -> usize {
        self.add(name, NodeKind::Processor { supplier }, parents)
    }

    pub fn add_sink(
        &mut self,
        name: String,
        parent: usize,
        topic: TopicRef,
        encoder: Arc<dyn SinkEncoder>,
    ) -> usize {
        self.add(name, NodeKind::Sink { topic, encoder }, &[parent])
    }

    /// Declares a store (once) and connects it to a node; nodes sharing a store always end
    /// up in the same sub-topology.
    pub fn connect_store(&mut self, node: usize, spec: StoreSpec) {
        let name = spec.name().to_string();
        if !self.stores.iter().any(|s| s.name() == name) {
            self.stores.push(spec);
        }
        if !self.nodes[node].stores.contains(&name) {
            self.nodes[node].stores.push(name);
        }
    }

    pub fn build(self) -> Result<Topology, StreamsError> {
        if !self.errors.is_empty() {
            return Err(StreamsError::Topology(self.errors.join("; ")));
        }
        let mut topo = Topology::new(self.nodes, self.stores, self.repartition_topics)?;
        topo.copartition_groups = self
            .copartition
            .iter()
            .map(|group| {
                let mut topics = BTreeSet::new();
                for &n in group {
                    topo.source_topics_above(n, &mut topics);
                }
                topics.into_iter().collect()
            })
            .collect();
        Ok(topo)
    }
}

/// A part of the topology connected only through topics to the rest.
#[derive(Debug, Clone)]
pub struct SubTopology {
    pub id: u32,
    /// Node indexes, sources first (nodes are numbered in creation order).
    pub(crate) nodes: Vec<usize>,
    pub source_topics: Vec<TopicRef>,
    pub sink_topics: Vec<TopicRef>,
    pub stores: Vec<String>,
}

/// A built topology: immutable, shared by all tasks (`Send + Sync`), free of I/O.
pub struct Topology {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    subtopologies: Vec<SubTopology>,
    repartition_topics: Vec<String>,
    copartition_groups: Vec<Vec<TopicRef>>,
}

impl Topology {
    fn new(
        nodes: Vec<NodeSpec>,
        stores: Vec<StoreSpec>,
        repartition_topics: Vec<String>,
    ) -> Result<Topology, StreamsError> {
        // Sub-topologies are the connected components of parent edges and shared stores.
        let mut parent: Vec<usize> = (0..nodes.len()).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut store_user: HashMap<&str, usize> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for &c in &n.children {
                union(&mut parent, i, c);
            }
            for s in &n.stores {
                match store_user.get(s.as_str()) {
                    Some(&j) => union(&mut parent, i, j),
                    None => {
                        store_user.insert(s, i);
                    }
                }
            }
        }
        let mut by_root: Vec<(usize, Vec<usize>)> = Vec::new();
        for i in 0..nodes.len() {
            let r = find(&mut parent, i);
            match by_root.iter_mut().find(|(root, _)| *root == r) {
                Some((_, v)) => v.push(i),
                None => by_root.push((r, vec![i])),
            }
        }
        let mut subtopologies = Vec::new();
        for (id, (_, members)) in by_root.into_iter().enumerate() {
            let mut source_topics = Vec::new();
            let mut sink_topics = Vec::new();
            let mut st = BTreeSet::new();
            for &i in &members {
                match &nodes[i].kind {
                    NodeKind::Source { topics, .. } => source_topics.extend(topics.iter().cloned()),
                    NodeKind::Sink { topic, .. } => sink_topics.push(topic.clone()),
                    NodeKind::Processor { .. } => {}
                }
                st.extend(nodes[i].stores.iter().cloned());
            }
            if source_topics.is_empty() {
                return Err(StreamsError::Topology(format!(
                    "processor {} is not connected to any source",
                    nodes[members[0]].name
                )));
            }
            subtopologies.push(SubTopology {
                id: id as u32,
                nodes: members,
                source_topics,
                sink_topics,
                stores: st.into_iter().collect(),
            });
        }
        Ok(Topology {
            nodes,
            stores,
            subtopologies,
            repartition_topics,
            copartition_groups: Vec::new(),
        })
    }

    /// The topics read by the sources upstream of a node.
    fn source_topics_above(&self, node: usize, out: &mut BTreeSet<TopicRef>) {
        let mut stack = vec![node];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if let NodeKind::Source { topics, .. } = &self.nodes[n].kind {
                out.extend(topics.iter().cloned());
            }
            stack.extend(self.nodes[n].parents.iter().copied());
        }
    }

    /// Groups of topics (resolved names) that must have the same number of partitions, one
    /// group per join: partition p of each is processed by the same task, so a key must be
    /// in the same partition on both sides (same partition count and same partitioner). An
    /// internal repartition topic in a group must be created with the group's partition
    /// count, not its writer's.
    pub fn copartition_groups(&self, application_id: &str) -> Vec<Vec<String>> {
        self.copartition_groups
            .iter()
            .map(|g| g.iter().map(|t| t.resolve(application_id)).collect())
            .collect()
    }

    /// Checks that each co-partition group's topics have one partition count, given each
    /// topic's count (`None`: unknown, not checked). The error names the group's counts.
    pub fn check_copartitioning(
        &self,
        application_id: &str,
        partitions_of: impl Fn(&str) -> Option<i32>,
    ) -> Result<(), StreamsError> {
        for group in self.copartition_groups(application_id) {
            let counts: Vec<(String, i32)> = group
                .iter()
                .filter_map(|t| partitions_of(t).map(|n| (t.clone(), n)))
                .collect();
            if counts.windows(2).any(|w| w[0].1 != w[1].1) {
                let listed: Vec<String> = counts.iter().map(|(t, n)| format!("{t}: {n}")).collect();
                return Err(StreamsError::Topology(format!(
                    "joined topics must be co-partitioned but have different partition counts ({})",
                    listed.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub fn subtopologies(&self) -> &[SubTopology] {
        &self.subtopologies
    }

    /// The sub-topology that reads a topic (resolved names, as the runtime sees them).
    pub fn subtopology_of_topic(&self, application_id: &str, topic: &str) -> Option<u32> {
        self.subtopologies
            .iter()
            .find(|s| {
                s.source_topics
                    .iter()
                    .any(|t| t.resolve(application_id) == topic)
            })
            .map(|s| s.id)
    }

    /// Every topic the application subscribes to, internal repartition topics included.
    pub fn source_topics(&self, application_id: &str) -> Vec<String> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().map(|t| t.resolve(application_id)))
            .collect()
    }

    /// The repartition and changelog topics the runtime creates before starting.
    pub fn internal_topics(&self, application_id: &str) -> Vec<InternalTopic> {
        let mut out = Vec::new();
        for base in &self.repartition_topics {
            let r = TopicRef::Internal(base.clone());
            if let Some(s) = self
                .subtopologies
                .iter()
                .find(|s| s.sink_topics.contains(&r))
            {
                out.push(InternalTopic {
                    name: r.resolve(application_id),
                    kind: InternalTopicKind::Repartition,
                    subtopology: s.id,
                });
            }
        }
        for spec in self.stores.iter().filter(|s| s.logged) {
            if let Some(s) = self
                .subtopologies
                .iter()
                .find(|s| s.stores.iter().any(|n| n == spec.name()))
            {
                out.push(InternalTopic {
                    name: changelog_topic(application_id, spec.name()),
                    kind: InternalTopicKind::Changelog,
                    subtopology: s.id,
                });
            }
        }
        out
    }

    pub(crate) fn store_spec(&self, name: &str) -> Option<&StoreSpec> {
        self.stores.iter().find(|s| s.name() == name)
    }

    pub fn describe(&self) -> TopologyDescription<'_> {
        TopologyDescription { topology: self }
    }
}

/// Kafka-style text of a topology: each sub-topology's nodes with their topics, stores and
/// edges, then its stores and internal topics (names without the application id prefix).
pub struct TopologyDescription<'a> {
    topology: &'a Topology,
}

impl fmt::Display for TopologyDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.topology;
        let names = |ids: &[usize]| -> String {
            let v: Vec<&str> = ids.iter().map(|&i| t.nodes[i].name.as_str()).collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        writeln!(f, "Topologies:")?;
        for s in &t.subtopologies {
            writeln!(f, "   Sub-topology: {}", s.id)?;
            for &i in &s.nodes {
                let n = &t.nodes[i];
                match &n.kind {
                    NodeKind::Source { topics, .. } => {
                        let ts: Vec<&str> = topics.iter().map(TopicRef::describe).collect();
                        writeln!(f, "    Source: {} (topics: [{}])", n.name, ts.join(", "))?;
                    }
                    NodeKind::Processor { .. } => {
                        writeln!(
                            f,
                            "    Processor: {} (stores: [{}])",
                            n.name,
                            n.stores.join(", ")
                        )?;
                    }
                    NodeKind::Sink { topic, .. } => {
                        writeln!(f, "    Sink: {} (topic: {})", n.name, topic.describe())?;
                    }
                }
                if !n.children.is_empty() {
                    writeln!(f, "      --> {}", names(&n.children))?;
                }
                if !n.parents.is_empty() {
                    writeln!(f, "      <-- {}", names(&n.parents))?;
                }
            }
            for store in &s.stores {
                let spec = t.store_spec(store).expect("declared store");
                let kind = match spec.supplier.kind() {
                    StoreKind::KeyValue => "key-value",
                    StoreKind::Window => "window",
                    StoreKind::Session => "session",
                };
                let log = if spec.logged {
                    format!("changelog: {store}-changelog")
                } else {
                    "not logged".to_string()
                };
                writeln!(f, "    Store: {store} ({kind}, {log})")?;
            }
            writeln!(f)?;
        }
        let internal = t.internal_topics("");
        if !internal.is_empty() {
            writeln!(f, "Internal topics (prefixed with <application.id>):")?;
            for it in internal {
                let kind = match it.kind {
                    InternalTopicKind::Repartition => "repartition",
                    InternalTopicKind::Changelog => "changelog",
                };
                let name = it.name.trim_start_matches('-');
                writeln!(f, "    {name} ({kind}, sub-topology {})", it.subtopology)?;
            }
        }
        Ok(())
    }
}
