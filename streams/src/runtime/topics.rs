//! Start-up topic work: partition counts of every sub-topology, the co-partitioning check, and
//! creation of the internal topics (compacted changelogs, repartition topics) through Admin.

use std::collections::{BTreeMap, BTreeSet};

use sluice_client::admin::NewTopic;
use sluice_client::Admin;
use sluice_protocol::ErrorCode;

use crate::error::StreamsError;
use crate::topology::{InternalTopicKind, TopicRef, Topology};

fn client_err(what: &str, e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Runtime(format!("{what}: {e}"))
}

/// Partition counts of existing topics (absent ones are left out).
async fn partition_counts(
    admin: &Admin,
    names: &[String],
) -> Result<BTreeMap<String, i32>, StreamsError> {
    let described = admin
        .describe_topics(names)
        .await
        .map_err(|e| client_err("describing topics", e))?;
    let mut out = BTreeMap::new();
    for (name, d) in described {
        match d {
            Ok(d) => {
                out.insert(name, d.partitions.len() as i32);
            }
            Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
            Err(e) => return Err(client_err(&format!("describing topic {name}"), e)),
        }
    }
    Ok(out)
}

/// Partition counts: per sub-topology, and per topic (sources and internal topics).
type PartitionPlan = (BTreeMap<u32, i32>, BTreeMap<String, i32>);

/// The partition count of each sub-topology (its task count) from its source topics.
///
/// A user topic has its own count. A repartition topic takes the count of the sub-topology
/// writing it (the largest of that one's sources), except where its reader also reads user
/// topics: then it takes theirs, so the reader's topics stay co-partitioned. A sub-topology
/// reading several topics needs them all to have one count.
pub(crate) fn plan_partitions(
    topology: &Topology,
    app: &str,
    existing: &BTreeMap<String, i32>,
) -> Result<PartitionPlan, StreamsError> {
    let internal = topology.internal_topics(app);
    let writer_of = |topic: &str| {
        internal
            .iter()
            .find(|t| t.kind == InternalTopicKind::Repartition && t.name == topic)
            .map(|t| t.subtopology)
    };
    let mut missing = BTreeSet::new();
    let mut topic_count: BTreeMap<String, i32> = BTreeMap::new();
    for s in topology.subtopologies() {
        for t in &s.source_topics {
            if let TopicRef::External(name) = t {
                match existing.get(name) {
                    Some(&n) => {
                        topic_count.insert(name.clone(), n);
                    }
                    None => {
                        missing.insert(name.clone());
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.into_iter().collect();
        return Err(StreamsError::Runtime(format!(
            "source topics missing: {} (create them before starting the application)",
            names.join(", ")
        )));
    }
    let mut sub_count: BTreeMap<u32, i32> = BTreeMap::new();
    // Each pass settles at least one sub-topology whose writers are settled; a cycle of
    // repartition topics would never settle.
    for _ in 0..=topology.subtopologies().len() {
        for s in topology.subtopologies() {
            if sub_count.contains_key(&s.id) {
                continue;
            }
            let external: Vec<i32> = s
                .source_topics
                .iter()
                .filter_map(|t| match t {
                    TopicRef::External(n) => topic_count.get(n).copied(),
                    TopicRef::Internal(_) => None,
                })
                .collect();
            let mut counts = external.clone();
            let mut settled = true;
            for t in &s.source_topics {
                let TopicRef::Internal(_) = t else { continue };
                let name = t.resolve(app);
                let n = match (external.iter().max(), writer_of(&name)) {
                    (Some(&n), _) => Some(n),
                    (None, Some(w)) => sub_count.get(&w).copied(),
                    (None, None) => existing.get(&name).copied(),
                };
                match n {
                    Some(n) => {
                        topic_count.insert(name, n);
                        counts.push(n);
                    }
                    None => settled = false,
                }
            }
            if settled {
                sub_count.insert(s.id, counts.iter().copied().max().unwrap_or(1));
            }
        }
    }
    for s in topology.subtopologies() {
        let Some(&n) = sub_count.get(&s.id) else {
            return Err(StreamsError::Topology(format!(
                "cannot tell the partition count of sub-topology {}",
                s.id
            )));
        };
        let names: Vec<String> = s.source_topics.iter().map(|t| t.resolve(app)).collect();
        let differ: Vec<String> = names
            .iter()
            .filter_map(|t| topic_count.get(t).map(|c| format!("{t} ({c})")))
            .collect();
        if names.iter().any(|t| topic_count.get(t) != Some(&n)) {
            return Err(StreamsError::Runtime(format!(
                "topics read together by sub-topology {} are not co-partitioned: {}; they \
                 need the same partition count",
                s.id,
                differ.join(", ")
            )));
        }
    }
    for t in &internal {
        let n = sub_count[&t.subtopology];
        if t.kind == InternalTopicKind::Changelog {
            topic_count.insert(t.name.clone(), n);
        } else {
            topic_count.entry(t.name.clone()).or_insert(n);
        }
    }
    Ok((sub_count, topic_count))
}

/// Checks the source topics and creates the missing internal topics; returns the partition
/// count of each sub-topology.
pub(crate) async fn prepare(
    admin: &Admin,
    topology: &Topology,
    app: &str,
    replication_factor: i16,
) -> Result<BTreeMap<u32, i32>, StreamsError> {
    let internal = topology.internal_topics(app);
    let mut names: BTreeSet<String> = topology.source_topics(app).into_iter().collect();
    names.extend(internal.iter().map(|t| t.name.clone()));
    let names: Vec<String> = names.into_iter().collect();
    let existing = partition_counts(admin, &names).await?;
    let (sub_count, topic_count) = plan_partitions(topology, app, &existing)?;
    let mut create = Vec::new();
    for t in &internal {
        let want = topic_count[&t.name];
        match existing.get(&t.name) {
            Some(&have) if have == want => {}
            Some(&have) => {
                return Err(StreamsError::Runtime(format!(
                    "internal topic {} has {have} partitions, but the topology needs {want} \
                     (its input topics changed? reset the application)",
                    t.name
                )))
            }
            None => {
                let policy = match t.kind {
                    InternalTopicKind::Changelog => "compact",
                    InternalTopicKind::Repartition => "delete",
                };
                create.push(
                    NewTopic::new(t.name.clone())
                        .partitions(want)
                        .replication_factor(replication_factor)
                        .config("cleanup.policy", policy),
                );
            }
        }
    }
    if !create.is_empty() {
        let results = admin
            .create_topics(&create, false)
            .await
            .map_err(|e| client_err("creating internal topics", e))?;
        for (name, r) in results {
            match r {
                Ok(created) => {
                    tracing::info!(topic = %name, partitions = created.partitions, "created internal topic")
                }
                // Another instance of the application created it first.
                Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(client_err(&format!("creating internal topic {name}"), e)),
            }
        }
    }
    Ok(sub_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::{LongSerde, StringSerde};
    use crate::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};

    fn wordcount() -> Topology {
        let b = StreamsBuilder::new();
        b.stream::<Option<String>, String>("in", Consumed::with(StringSerde, StringSerde))
            .flat_map_values(|l: String| {
                l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .group_by(
                |_, w: &String| w.clone(),
                Grouped::with(StringSerde, StringSerde),
            )
            .count(Materialized::as_store("counts"))
            .to_stream()
            .to("out", Produced::with(StringSerde, LongSerde));
        b.build().unwrap()
    }

    #[test]
    fn internal_topics_take_the_partition_count_of_their_sub_topology() {
        let t = wordcount();
        let existing = BTreeMap::from([("in".to_string(), 4)]);
        let (subs, topics) = plan_partitions(&t, "app", &existing).unwrap();
        assert_eq!(subs.values().copied().collect::<Vec<_>>(), vec![4, 4]);
        let internal = t.internal_topics("app");
        assert_eq!(internal.len(), 2, "{internal:?}");
        for it in internal {
            assert_eq!(topics[&it.name], 4, "{}", it.name);
        }
        let e = plan_partitions(&t, "app", &BTreeMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("source topics missing: in"), "{e}");
    }

    #[test]
    fn topics_read_together_must_be_co_partitioned() {
        let b = StreamsBuilder::new();
        let a = b.stream::<String, String>("a", Consumed::with(StringSerde, StringSerde));
        let c = b.stream::<String, String>("c", Consumed::with(StringSerde, StringSerde));
        a.merge(&c)
            .group_by_key(Grouped::with(StringSerde, StringSerde))
            .count(Materialized::as_store("n"));
        let t = b.build().unwrap();
        let ok = BTreeMap::from([("a".to_string(), 3), ("c".to_string(), 3)]);
        assert!(plan_partitions(&t, "app", &ok).is_ok());
        let bad = BTreeMap::from([("a".to_string(), 3), ("c".to_string(), 2)]);
        let e = plan_partitions(&t, "app", &bad).err().unwrap().to_string();
        assert!(e.contains("not co-partitioned"), "{e}");
        assert!(e.contains("a (3)") && e.contains("c (2)"), "{e}");
    }
}
