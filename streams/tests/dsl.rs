//! The DSL run through `TopologyTestDriver`: word count, stateless operations, aggregations,
//! tables, repartitioning, changelogs and restore, timestamps, punctuation and serde errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sluice_streams::processor::{Processor, ProcessorContext, PunctuationType};
use sluice_streams::record::InputRecord;
use sluice_streams::serdes::{IntegerSerde, JsonSerde, LongSerde, StringSerde};
use sluice_streams::{
    Consumed, DeserializationErrorPolicy, Grouped, InternalTopicKind, KStream, Materialized,
    OutputKind, Produced, Record, Repartitioned, StreamsBuilder, StreamsError, TaskConfig,
    TopologyTestDriver,
};

type Lines = KStream<Option<String>, String>;

fn lines(b: &StreamsBuilder, topic: &str) -> Lines {
    b.stream(topic, Consumed::with(StringSerde, StringSerde))
}

fn s(v: &str) -> String {
    v.to_string()
}

fn word_count(b: &StreamsBuilder) {
    lines(b, "plaintext")
        .flat_map_values(|l: String| {
            l.to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, w: &String| w.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::as_store("counts"))
        .to_stream()
        .to("wordcount-out", Produced::with(StringSerde, LongSerde));
}

#[test]
fn word_count_gives_exact_counts() {
    let b = StreamsBuilder::new();
    word_count(&b);
    let topology = b.build().unwrap();
    let driver = TopologyTestDriver::new(topology, "wc").unwrap();
    let input = driver.create_input_topic("plaintext", StringSerde, StringSerde);
    let text = [
        "all streams lead to kafka",
        "hello kafka streams",
        "join kafka summit",
    ];
    for (i, line) in text.iter().enumerate() {
        input.pipe_input(None, s(line), 1000 + i as i64).unwrap();
    }
    let out = driver.create_output_topic::<String, i64>("wordcount-out", StringSerde, LongSerde);
    let updates = out.read_key_values_to_list().unwrap();
    // One update per word occurrence, each carrying the running count.
    assert_eq!(updates.len(), 11);
    assert_eq!(updates[0], (s("all"), 1));
    let last: HashMap<String, i64> = updates.into_iter().collect();
    let expected: HashMap<String, i64> = [
        ("all", 1),
        ("streams", 2),
        ("lead", 1),
        ("to", 1),
        ("kafka", 3),
        ("hello", 1),
        ("join", 1),
        ("summit", 1),
    ]
    .into_iter()
    .map(|(k, v)| (s(k), v))
    .collect();
    assert_eq!(last, expected);

    let store = driver.key_value_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.get(&s("kafka")).unwrap(), Some(3));
    assert_eq!(store.get(&s("absent")).unwrap(), None);
    assert_eq!(store.all().unwrap().len(), 8);
    // Counts are written as Kafka's LongSerializer writes them.
    input.pipe_input(None, s("kafka"), 2000).unwrap();
    let raw = driver.read_raw("wordcount-out");
    assert_eq!(raw[0].key.as_deref(), Some(&b"kafka"[..]));
    assert_eq!(raw[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 0, 0, 4][..]));
}

#[test]
fn word_count_topology_has_a_repartition_topic_between_two_subtopologies() {
    let b = StreamsBuilder::new();
    word_count(&b);
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopologies().len(), 2);
    let internal = topology.internal_topics("wc");
    let names: Vec<(&str, InternalTopicKind)> =
        internal.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        names,
        vec![
            ("wc-counts-repartition", InternalTopicKind::Repartition),
            ("wc-counts-changelog", InternalTopicKind::Changelog),
        ]
    );
    assert_eq!(
        internal[0].subtopology, 0,
        "written by the first sub-topology"
    );
    assert_eq!(internal[1].subtopology, 1, "the store lives in the second");
    assert_eq!(
        topology.source_topics("wc"),
        vec![s("plaintext"), s("wc-counts-repartition")]
    );
    let text = topology.describe().to_string();
    println!("{text}");
    for needle in [
        "Sub-topology: 0",
        "Source: KSTREAM-SOURCE-0000000000 (topics: [plaintext])",
        "Sink: counts-repartition-sink (topic: counts-repartition)",
        "Sub-topology: 1",
        "Source: counts-repartition-source (topics: [counts-repartition])",
        "(stores: [counts])",
        "Store: counts (key-value, changelog: counts-changelog)",
        "Sink: KSTREAM-SINK-",
        "counts-repartition (repartition, sub-topology 0)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
}

#[test]
fn unnamed_store_and_repartition_topic_get_generated_names() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .select_key(|_, v: &String| v.clone())
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .count(Materialized::new())
        .to_stream()
        .to("out", Produced::with(StringSerde, LongSerde));
    let t = b.build().unwrap();
    let names: Vec<String> = t
        .internal_topics("app")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        vec![
            s("app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"),
            s("app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-changelog"),
        ]
    );
}

#[test]
fn map_filter_branch_and_merge() {
    let b = StreamsBuilder::new();
    let nums: KStream<String, i32> = b.stream("nums", Consumed::with(StringSerde, IntegerSerde));
    let branches = nums
        .filter(|_, v| *v != 0)
        .filter_not(|k, _| k == "skip")
        .split()
        .branch(|_, v| *v < 0)
        .branch(|_, v| *v % 2 == 0)
        .default_branch();
    assert_eq!(branches.len(), 3);
    branches[0]
        .map(|k, v| (format!("neg-{k}"), -v))
        .to("negative", Produced::with(StringSerde, IntegerSerde));
    branches[1]
        .map_values(|v| v * 10)
        .merge(&branches[2].map_values(|v| v * 100))
        .to("positive", Produced::with(StringSerde, IntegerSerde));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "app").unwrap();
    let input = driver.create_input_topic("nums", StringSerde, IntegerSerde);
    for (k, v) in [
        ("a", -3),
        ("b", 2),
        ("c", 0),
        ("d", 3),
        ("skip", 4),
        ("e", -1),
    ] {
        input.pipe_input(s(k), v, 5).unwrap();
    }
    let neg = driver.create_output_topic::<String, i32>("negative", StringSerde, IntegerSerde);
    assert_eq!(
        neg.read_key_values_to_list().unwrap(),
        vec![(s("neg-a"), 3), (s("neg-e"), 1)]
    );
    let pos = driver.create_output_topic::<String, i32>("positive", StringSerde, IntegerSerde);
    let recs = pos.read_records_to_list().unwrap();
    let kv: Vec<(String, i32)> = recs.iter().map(|r| (r.key.clone(), r.value)).collect();
    assert_eq!(kv, vec![(s("b"), 20), (s("d"), 300)]);
    assert!(
        recs.iter().all(|r| r.timestamp == 5),
        "outputs keep the input timestamp"
    );
}

#[test]
fn split_without_default_drops_unmatched_and_named_branches_name_nodes() {
    let b = StreamsBuilder::new();
    let branches = lines(&b, "in")
        .split()
        .branch_named("errors", |_, v| v.starts_with("ERROR"))
        .no_default_branch();
    branches[0].to("errors-out", Produced::with(StringSerde, StringSerde));
    let t = b.build().unwrap();
    assert!(t.describe().to_string().contains("Processor: errors"));
    let driver = TopologyTestDriver::new(t, "app").unwrap();
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    for l in ["INFO up", "ERROR disk", "WARN slow", "ERROR net"] {
        input.pipe_input(None, s(l), 0).unwrap();
    }
    let out = driver.create_output_topic::<Option<String>, String>(
        "errors-out",
        StringSerde,
        StringSerde,
    );
    let vals: Vec<String> = out
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(vals, vec![s("ERROR disk"), s("ERROR net")]);
}

#[test]
fn flat_map_peek_and_foreach_see_every_record() {
    let b = StreamsBuilder::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let peeked = Arc::new(Mutex::new(0));
    let (s1, p1) = (seen.clone(), peeked.clone());
    lines(&b, "in")
        .flat_map(|_, v: String| {
            v.split(',')
                .map(|p| (p.to_string(), p.len() as i64))
                .collect::<Vec<_>>()
        })
        .peek(move |_, _| *p1.lock().unwrap() += 1)
        .foreach(move |k: &String, v: &i64| s1.lock().unwrap().push((k.clone(), *v)));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "app").unwrap();
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input(None, s("ab,c"), 0).unwrap();
    input.pipe_input(Some(s("k")), s("dddd"), 0).unwrap();
    assert_eq!(*peeked.lock().unwrap(), 3);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(s("ab"), 2), (s("c"), 1), (s("dddd"), 4)]
    );
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Stats {
    count: u32,
    sum: i64,
    max: i64,
}

#[test]
fn reduce_and_aggregate_keep_per_key_state_and_the_latest_timestamp() {
    let b = StreamsBuilder::new();
    let readings: KStream<String, i64> =
        b.stream("readings", Consumed::with(StringSerde, LongSerde));
    let grouped = readings.group_by_key(Grouped::new());
    grouped
        .reduce(|a, v| a + v, Materialized::as_store("sums"))
        .to_stream()
        .to("sums-out", Produced::with(StringSerde, LongSerde));
    grouped
        .aggregate(
            || Stats {
                count: 0,
                sum: 0,
                max: i64::MIN,
            },
            |_, v, a| Stats {
                count: a.count + 1,
                sum: a.sum + v,
                max: a.max.max(v),
            },
            Materialized::as_store("stats").with_value_serde(JsonSerde::<Stats>::new()),
        )
        .to_stream()
        .to(
            "stats-out",
            Produced::with(StringSerde, JsonSerde::<Option<Stats>>::new()),
        );
    let t = b.build().unwrap();
    // Grouping by the unchanged key needs no repartition topic: one sub-topology.
    assert_eq!(t.subtopologies().len(), 1);
    assert!(t
        .internal_topics("app")
        .iter()
        .all(|i| i.kind == InternalTopicKind::Changelog));
    let driver = TopologyTestDriver::new(t, "app").unwrap();
    let input = driver.create_input_topic("readings", StringSerde, LongSerde);
    input
        .pipe_key_value_list([
            (s("x"), 5, 100),
            (s("y"), 1, 50),
            (s("x"), 7, 90),
            (s("x"), -2, 120),
        ])
        .unwrap();
    let sums = driver.create_output_topic::<String, i64>("sums-out", StringSerde, LongSerde);
    let recs = sums.read_records_to_list().unwrap();
    let got: Vec<(String, i64, i64)> = recs
        .iter()
        .map(|r| (r.key.clone(), r.value, r.timestamp))
        .collect();
    // The late record (ts 90) yields an update stamped with the key's max timestamp so far.
    assert_eq!(
        got,
        vec![
            (s("x"), 5, 100),
            (s("y"), 1, 50),
            (s("x"), 12, 100),
            (s("x"), 10, 120)
        ]
    );
    let store = driver.key_value_store::<String, Stats>("stats", StringSerde, JsonSerde::new());
    assert_eq!(
        store.get_with_timestamp(&s("x")).unwrap(),
        Some((
            Stats {
                count: 3,
                sum: 10,
                max: 7
            },
            120
        ))
    );
    let stats =
        driver.create_output_topic::<String, Stats>("stats-out", StringSerde, JsonSerde::new());
    assert_eq!(
        stats.read_key_values_to_map().unwrap()[&s("y")],
        Stats {
            count: 1,
            sum: 1,
            max: 1
        }
    );
}

#[test]
fn ktable_filter_map_values_and_to_stream_carry_deletes() {
    let b = StreamsBuilder::new();
    let prices = b.table::<String, i64>(
        "prices",
        Consumed::with(StringSerde, LongSerde),
        Materialized::as_store("prices-store"),
    );
    assert_eq!(prices.store_name(), Some("prices-store"));
    prices
        .filter(|_, p| *p >= 100)
        .map_values(|p| format!("${p}"))
        .to_stream()
        .to("expensive", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "shop").unwrap();
    let input = driver.create_input_topic::<String, Option<i64>>("prices", StringSerde, LongSerde);
    input.pipe_input(s("tv"), Some(500), 1).unwrap(); // passes
    input.pipe_input(s("pen"), Some(2), 2).unwrap(); // never visible: nothing emitted
    input.pipe_input(s("tv"), Some(50), 3).unwrap(); // stops passing: delete
    input.pipe_input(s("pen"), Some(150), 4).unwrap(); // starts passing
    input.pipe_input(s("pen"), None, 5).unwrap(); // deleted upstream: delete
    input.pipe_input(s("ghost"), None, 6).unwrap(); // deleting an absent key: nothing
    let out =
        driver.create_output_topic::<String, Option<String>>("expensive", StringSerde, StringSerde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            (s("tv"), Some(s("$500"))),
            (s("tv"), None),
            (s("pen"), Some(s("$150"))),
            (s("pen"), None),
        ]
    );
    let store = driver.key_value_store::<String, i64>("prices-store", StringSerde, LongSerde);
    assert_eq!(store.all().unwrap(), vec![(s("tv"), 50)]);
    // A delete reaches the output topic as a tombstone.
    input.pipe_input(s("tv"), Some(700), 7).unwrap();
    input.pipe_input(s("tv"), None, 8).unwrap();
    let raw = driver.read_raw("expensive");
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[1].value, None);
}

#[test]
fn repartition_when_the_key_changes_before_grouping() {
    let b = StreamsBuilder::new();
    // Orders keyed by order id, counted per customer: the key changes before the grouping.
    let orders: KStream<String, String> =
        b.stream("orders", Consumed::with(StringSerde, StringSerde));
    orders
        .map(|_id, v: String| {
            let (customer, item) = v.split_once(':').unwrap();
            (customer.to_string(), item.to_string())
        })
        .group_by_key(Grouped::with(StringSerde, StringSerde).with_name("by-customer"))
        .count(Materialized::as_store("orders-per-customer"))
        .to_stream()
        .to("per-customer", Produced::with(StringSerde, LongSerde));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies().len(), 2);
    let driver = TopologyTestDriver::new(t, "shop").unwrap();
    let input = driver.create_input_topic("orders", StringSerde, StringSerde);
    for (id, v) in [("o1", "ann:tea"), ("o2", "bob:pen"), ("o3", "ann:cup")] {
        input.pipe_input(s(id), s(v), 10).unwrap();
    }
    // The records went through the repartition topic, keyed by customer.
    let through = driver.read_raw("shop-by-customer-repartition");
    assert_eq!(through.len(), 3);
    assert!(through.iter().all(|r| r.kind == OutputKind::Repartition));
    assert_eq!(through[2].key.as_deref(), Some(&b"ann"[..]));
    let out = driver.create_output_topic::<String, i64>("per-customer", StringSerde, LongSerde);
    let m = out.read_key_values_to_map().unwrap();
    assert_eq!((m[&s("ann")], m[&s("bob")]), (2, 1));
    assert_eq!(driver.stream_time("shop-by-customer-repartition"), Some(10));
}

/// Re-keys each line by its first word: a key change the DSL cannot see.
struct KeyByFirstWord;

impl Processor for KeyByFirstWord {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (_, line, meta) = r.into_parts::<Option<String>, String>()?;
        let first = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        ctx.forward(meta.into_record(first, line));
        Ok(())
    }
}

#[test]
fn group_by_key_after_process_repartitions_by_the_new_key() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .process::<String, String>(
            "key-by-first-word",
            || Box::new(KeyByFirstWord) as Box<dyn Processor>,
            vec![],
        )
        .group_by_key(Grouped::with(StringSerde, StringSerde).with_name("by-first"))
        .count(Materialized::as_store("first-words"))
        .to_stream()
        .to("out", Produced::with(StringSerde, LongSerde));
    let t = b.build().unwrap();
    // Without the repartition topic, lines with one first word read from different input
    // partitions would be counted by different tasks, each with a partial count.
    assert_eq!(t.subtopologies().len(), 2);
    assert_eq!(
        t.internal_topics("app")
            .iter()
            .map(|t| (t.name.as_str(), t.kind))
            .collect::<Vec<_>>(),
        vec![
            ("app-by-first-repartition", InternalTopicKind::Repartition),
            ("app-first-words-changelog", InternalTopicKind::Changelog),
        ]
    );
    let driver = TopologyTestDriver::new(t, "app").unwrap();
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    for l in ["ann tea", "bob pen", "ann cup"] {
        input.pipe_input(None, s(l), 10).unwrap();
    }
    let through = driver.read_raw("app-by-first-repartition");
    assert_eq!(
        through
            .iter()
            .map(|r| r.key.as_deref().unwrap())
            .collect::<Vec<_>>(),
        vec![&b"ann"[..], &b"bob"[..], &b"ann"[..]]
    );
    let out = driver.create_output_topic::<String, i64>("out", StringSerde, LongSerde);
    let m = out.read_key_values_to_map().unwrap();
    assert_eq!((m[&s("ann")], m[&s("bob")]), (2, 1));

    // The processor's output types are unknown to the DSL, so the repartition needs serdes.
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .process::<String, String>(
            "key-by-first-word",
            || Box::new(KeyByFirstWord) as Box<dyn Processor>,
            vec![],
        )
        .group_by_key(Grouped::new().with_name("by-first"))
        .count(Materialized::as_store("first-words").with_key_serde(StringSerde))
        .to_stream()
        .to("out", Produced::with(StringSerde, LongSerde));
    let err = b.build().map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("repartition topic by-first-repartition needs key and value serdes"),
        "{err}"
    );

    // A join after `process` is co-partitioned only through an explicit repartition.
    let join_after_process = |repartition: bool| {
        let b = StreamsBuilder::new();
        let table = b.table::<String, String>(
            "t",
            Consumed::with(StringSerde, StringSerde),
            Materialized::as_store("t-store"),
        );
        let mut keyed = lines(&b, "in").process::<String, String>(
            "key-by-first-word",
            || Box::new(KeyByFirstWord) as Box<dyn Processor>,
            vec![],
        );
        if repartition {
            keyed = keyed
                .repartition(Repartitioned::with(StringSerde, StringSerde).with_name("by-first"));
        }
        keyed
            .join(&table, |l: String, t: String| format!("{l}/{t}"))
            .to("out", Produced::with(StringSerde, StringSerde));
        b.build()
    };
    let err = join_after_process(false)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs key and value serdes"), "{err}");
    let t = join_after_process(true).unwrap();
    assert_eq!(t.subtopologies().len(), 2);
    let driver = TopologyTestDriver::new(t, "app").unwrap();
    driver
        .create_input_topic("t", StringSerde, StringSerde)
        .pipe_input(s("ann"), s("eu"), 1)
        .unwrap();
    driver
        .create_input_topic("in", StringSerde, StringSerde)
        .pipe_input(None, s("ann tea"), 2)
        .unwrap();
    let out = driver.create_output_topic::<String, String>("out", StringSerde, StringSerde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("ann"), s("ann tea/eu"))]
    );
}

#[test]
fn explicit_repartition_splits_the_topology() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .select_key(|_, v: &String| v.len() as i32)
        .repartition(Repartitioned::with(IntegerSerde, StringSerde).with_name("by-len"))
        .map_values(|v: String| v.to_uppercase())
        .to("out", Produced::with(IntegerSerde, StringSerde));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies().len(), 2);
    assert_eq!(t.internal_topics("a")[0].name, "a-by-len-repartition");
    let driver = TopologyTestDriver::new(t, "a").unwrap();
    driver
        .create_input_topic("in", StringSerde, StringSerde)
        .pipe_input(None, s("abc"), 0)
        .unwrap();
    let out = driver.create_output_topic::<i32, String>("out", IntegerSerde, StringSerde);
    assert_eq!(out.read_key_value().unwrap(), Some((3, s("ABC"))));
    assert!(out.is_empty());
}

#[test]
fn store_writes_go_to_the_changelog_and_a_store_restores_from_it() {
    let build = || {
        let b = StreamsBuilder::new();
        word_count(&b);
        TopologyTestDriver::new(b.build().unwrap(), "wc").unwrap()
    };
    let first = build();
    let input = first.create_input_topic("plaintext", StringSerde, StringSerde);
    input.pipe_input(None, s("a b a"), 10).unwrap();
    input.pipe_input(None, s("b"), 20).unwrap();
    let changelog_topic = first.changelog_topic("counts");
    assert_eq!(changelog_topic, "wc-counts-changelog");
    let changelog = first.read_raw(&changelog_topic);
    let entries: Vec<(Bytes, Option<Bytes>, i64)> = changelog
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.value.clone(), r.timestamp))
        .collect();
    let long = |n: i64| Some(Bytes::copy_from_slice(&n.to_be_bytes()));
    let key = |k: &str| Bytes::copy_from_slice(k.as_bytes());
    // One input record's two updates of "a" reach the changelog as one (the record cache
    // holds them until the driver's commit after the record), after "b", written between.
    assert_eq!(
        entries,
        vec![
            (key("b"), long(1), 10),
            (key("a"), long(2), 10),
            (key("b"), long(2), 20),
        ]
    );
    assert!(changelog
        .iter()
        .all(|r| r.kind == OutputKind::Changelog && r.partition == Some(0)));

    // A new instance restores the store from the changelog and goes on counting from there.
    let second = build();
    assert_eq!(second.restore_store("counts", changelog).unwrap(), 3);
    let store = second.key_value_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.get_with_timestamp(&s("a")).unwrap(), Some((2, 10)));
    assert_eq!(store.get_with_timestamp(&s("b")).unwrap(), Some((2, 20)));
    assert!(
        second.read_raw("wc-counts-changelog").is_empty(),
        "restoring writes no changelog"
    );
    second
        .create_input_topic("plaintext", StringSerde, StringSerde)
        .pipe_input(None, s("a"), 30)
        .unwrap();
    let out = second.create_output_topic::<String, i64>("wordcount-out", StringSerde, LongSerde);
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("a"), 3)]);
}

#[test]
fn a_tombstone_in_the_changelog_deletes_on_restore() {
    let build = || {
        let b = StreamsBuilder::new();
        b.table::<String, String>(
            "t",
            Consumed::with(StringSerde, StringSerde),
            Materialized::as_store("ts"),
        );
        TopologyTestDriver::new(b.build().unwrap(), "app").unwrap()
    };
    let first = build();
    let input = first.create_input_topic::<String, Option<String>>("t", StringSerde, StringSerde);
    input.pipe_input(s("k1"), Some(s("v1")), 1).unwrap();
    input.pipe_input(s("k2"), Some(s("v2")), 2).unwrap();
    input.pipe_input(s("k1"), None, 3).unwrap();
    input.pipe_input(s("never-written"), None, 4).unwrap(); // changes nothing, logs nothing
    let changelog = first.read_raw("app-ts-changelog");
    assert_eq!(changelog.len(), 3);
    assert_eq!(changelog[2].value, None);
    let second = build();
    second.restore_store("ts", changelog).unwrap();
    let store = second.key_value_store::<String, String>("ts", StringSerde, StringSerde);
    assert_eq!(store.all().unwrap(), vec![(s("k2"), s("v2"))]);
}

#[test]
fn unlogged_store_writes_no_changelog() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .group_by(
            |_, v: &String| v.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::as_store("c").with_logging_disabled());
    let t = b.build().unwrap();
    assert!(t
        .internal_topics("x")
        .iter()
        .all(|i| i.kind != InternalTopicKind::Changelog));
    let driver = TopologyTestDriver::new(t, "x").unwrap();
    driver
        .create_input_topic("in", StringSerde, StringSerde)
        .pipe_input(None, s("w"), 0)
        .unwrap();
    assert_eq!(driver.produced_topics(), vec![s("x-c-repartition")]);
}

#[test]
fn timestamp_extractor_sets_event_time() {
    let b = StreamsBuilder::new();
    // The event time is in the value: "<millis> <text>".
    let consumed = Consumed::with(StringSerde, StringSerde).with_timestamp_extractor(
        |r: &InputRecord, _pt: i64| {
            let v = r.value.as_deref().unwrap_or_default();
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.split(' ').next()?.parse().ok())
                .unwrap_or(-1)
        },
    );
    let st: KStream<Option<String>, String> = b.stream("in", consumed);
    st.to("out", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "a").unwrap();
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input(None, s("777 hello"), 1).unwrap();
    let out = driver.create_output_topic::<Option<String>, String>("out", StringSerde, StringSerde);
    assert_eq!(out.read_record().unwrap().unwrap().timestamp, 777);
    assert_eq!(driver.stream_time("in"), Some(777));
    let err = input.pipe_input(None, s("no time"), 1).unwrap_err();
    assert!(
        matches!(err, StreamsError::InvalidTimestamp { timestamp: -1, .. }),
        "{err}"
    );
}

/// Emits, on each punctuation, how many records it saw since the last one.
struct Counter {
    seen: i64,
    kind: PunctuationType,
}

impl Processor for Counter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        ctx.schedule(1000, self.kind)
    }
    fn process(&mut self, _r: Record, _ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        self.seen += 1;
        Ok(())
    }
    fn punctuate(
        &mut self,
        _kind: PunctuationType,
        ts: i64,
        ctx: &mut ProcessorContext<'_>,
    ) -> Result<(), StreamsError> {
        ctx.forward(Record::new(format!("at-{ts}"), self.seen, ts));
        self.seen = 0;
        Ok(())
    }
}

fn punctuating(kind: PunctuationType) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .process::<String, i64>(
            "counter",
            move || Box::new(Counter { seen: 0, kind }) as Box<dyn Processor>,
            vec![],
        )
        .to("ticks", Produced::with(StringSerde, LongSerde));
    TopologyTestDriver::new(b.build().unwrap(), "p").unwrap()
}

#[test]
fn stream_time_punctuation_fires_as_record_timestamps_advance() {
    let driver = punctuating(PunctuationType::StreamTime);
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    let ticks = driver.create_output_topic::<String, i64>("ticks", StringSerde, LongSerde);
    input.pipe_input(None, s("a"), 500).unwrap();
    assert!(
        ticks.is_empty(),
        "stream time 500 is before the first schedule at 999"
    );
    input.pipe_input(None, s("b"), 1200).unwrap();
    input.pipe_input(None, s("c"), 900).unwrap(); // out of order: stream time stays 1200
    input.pipe_input(None, s("d"), 2300).unwrap();
    assert_eq!(
        ticks.read_key_values_to_list().unwrap(),
        vec![(s("at-1200"), 2), (s("at-2300"), 2)]
    );
}

#[test]
fn wall_clock_punctuation_fires_when_the_driver_clock_moves() {
    let driver = punctuating(PunctuationType::WallClockTime);
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    let ticks = driver.create_output_topic::<String, i64>("ticks", StringSerde, LongSerde);
    input.pipe_input(None, s("a"), 99_999).unwrap();
    assert!(ticks.is_empty());
    driver.advance_wall_clock(999).unwrap();
    assert!(ticks.is_empty());
    driver.advance_wall_clock(1).unwrap();
    assert_eq!(
        ticks.read_key_values_to_list().unwrap(),
        vec![(s("at-1000"), 1)]
    );
}

#[test]
fn undeserializable_records_fail_the_task_or_are_skipped_by_policy() {
    let build = |policy| {
        let b = StreamsBuilder::new();
        let st: KStream<String, i64> = b.stream("in", Consumed::with(StringSerde, LongSerde));
        st.to("out", Produced::with(StringSerde, LongSerde));
        let mut cfg = TaskConfig::new("a");
        cfg.deserialization_errors = policy;
        TopologyTestDriver::with_config(b.build().unwrap(), cfg).unwrap()
    };
    let bad = Some(Bytes::from_static(&[1, 2, 3]));
    let driver = build(DeserializationErrorPolicy::Fail);
    let err = driver
        .pipe_raw("in", Some(Bytes::from_static(b"k")), bad.clone(), 0, vec![])
        .unwrap_err();
    assert!(
        matches!(&err, StreamsError::Serde { part: "value", topic, .. } if topic == "in"),
        "{err}"
    );
    // A null key where the type has none is an error too, not a panic.
    let err = driver
        .pipe_raw(
            "in",
            None,
            Some(Bytes::copy_from_slice(&1i64.to_be_bytes())),
            0,
            vec![],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StreamsError::Serde { part: "key", .. }),
        "{err}"
    );

    let driver = build(DeserializationErrorPolicy::LogAndContinue);
    driver
        .pipe_raw("in", Some(Bytes::from_static(b"k")), bad, 0, vec![])
        .unwrap();
    driver
        .create_input_topic("in", StringSerde, LongSerde)
        .pipe_input(s("k"), 9, 0)
        .unwrap();
    let out = driver.create_output_topic::<String, i64>("out", StringSerde, LongSerde);
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("k"), 9)]);
}

#[test]
fn missing_serdes_for_a_repartition_topic_fail_the_build() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .map(|_, v: String| (v.clone(), v))
        .group_by_key(Grouped::new())
        .count(Materialized::as_store("c"));
    let err = b.build().err().expect("build must fail").to_string();
    assert!(
        err.contains("c-repartition needs key and value serdes"),
        "{err}"
    );
}

#[test]
fn headers_travel_with_records() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .map_values(|v: String| v.len() as i64)
        .to("out", Produced::with(StringSerde, LongSerde));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "a").unwrap();
    let h = sluice_streams::record::RecordHeader {
        key: s("trace"),
        value: Some(Bytes::from_static(b"42")),
    };
    driver
        .create_input_topic("in", StringSerde, StringSerde)
        .pipe_with_headers(None, s("abc"), 3, vec![h.clone()])
        .unwrap();
    let out = driver.create_output_topic::<Option<String>, i64>("out", StringSerde, LongSerde);
    let r = out.read_record().unwrap().unwrap();
    assert_eq!((r.key, r.value, r.headers), (None, 3, vec![h]));
}

/// Forwards where each record came from, as the processor context reports it.
struct Origin;

impl Processor for Origin {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let rc = ctx.record_context();
        let origin = format!(
            "{}/{}/{}@{}",
            rc.topic.as_deref().unwrap_or("-"),
            rc.partition,
            rc.offset.unwrap_or(-1),
            ctx.stream_time()
        );
        ctx.forward(r.with(origin, ctx.task_id().to_string()));
        Ok(())
    }
}

#[test]
fn processors_see_the_source_topic_partition_offset_and_stream_time() {
    let b = StreamsBuilder::new();
    lines(&b, "in")
        .process::<String, String>("origin", || Box::new(Origin) as Box<dyn Processor>, vec![])
        .to("out", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(b.build().unwrap(), "a").unwrap();
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input(None, s("x"), 70).unwrap();
    input.pipe_input(None, s("y"), 40).unwrap();
    let out = driver.create_output_topic::<String, String>("out", StringSerde, StringSerde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("in/0/0@70"), s("0_0")), (s("in/0/1@70"), s("0_0"))]
    );
}

#[test]
fn topologies_and_tasks_can_move_to_stream_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<sluice_streams::Topology>();
    send::<sluice_streams::Task>();
}
