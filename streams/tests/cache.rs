//! The record cache, driven through a `Task` (the test driver flushes after every record, as
//! Kafka's does, so it cannot show what a commit interval holds back).

use bytes::Bytes;
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, InputRecord, Materialized, OutputKind, OutputRecord, Produced, StreamsBuilder, Task,
    TaskConfig, TaskId, Topology,
};

fn b(v: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(v.as_bytes()))
}

fn long(n: i64) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&n.to_be_bytes()))
}

/// Counts per key of topic "in" into store "counts" and topic "out".
fn count(materialized: Materialized<String, i64>) -> Topology {
    let sb = StreamsBuilder::new();
    sb.stream::<String, String>("in", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Default::default())
        .count(materialized)
        .to_stream()
        .to("out", Produced::with(StringSerde, LongSerde));
    sb.build().unwrap()
}

fn task(topology: &Topology, cache_max_bytes: usize) -> Task {
    let mut cfg = TaskConfig::new("app");
    cfg.cache_max_bytes = cache_max_bytes;
    let id = TaskId {
        subtopology: 0,
        partition: 0,
    };
    Task::new(topology, &cfg, id).unwrap()
}

fn process(
    t: &mut Task,
    topic: &str,
    offset: i64,
    key: &str,
    value: Option<&str>,
) -> Vec<OutputRecord> {
    let mut out = Vec::new();
    let rec = InputRecord {
        topic: topic.to_string(),
        partition: 0,
        offset,
        timestamp: 100 + offset,
        key: b(key),
        value: value.and_then(b),
        headers: Vec::new(),
    };
    t.process(rec, &mut out).unwrap();
    out
}

/// (kind, key, value, timestamp) of each output.
fn shown(out: &[OutputRecord]) -> Vec<(OutputKind, Option<Bytes>, Option<Bytes>, i64)> {
    out.iter()
        .map(|o| (o.kind, o.key.clone(), o.value.clone(), o.timestamp))
        .collect()
}

#[test]
fn a_cached_count_writes_each_key_once_per_flush() {
    let topology = count(Materialized::as_store("counts"));
    let mut t = task(&topology, 1 << 20);
    for (i, k) in ["x", "y", "x", "x"].iter().enumerate() {
        assert!(
            process(&mut t, "in", i as i64, k, Some("v")).is_empty(),
            "held in the cache until the flush"
        );
    }
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    use OutputKind::{Changelog, Sink};
    assert_eq!(
        shown(&out),
        vec![
            // In the order the keys were last written: y at 101, x at 103.
            (Changelog, b("y"), long(1), 101),
            (Changelog, b("x"), long(3), 103),
            (Sink, b("y"), long(1), 101),
            (Sink, b("x"), long(3), 103),
        ]
    );
    let mut again = Vec::new();
    t.flush(&mut again).unwrap();
    assert!(again.is_empty(), "a flush empties the cache");
    // Counting goes on from the flushed value.
    assert!(process(&mut t, "in", 4, "x", Some("v")).is_empty());
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    assert_eq!(out[1].value, long(4), "{out:?}");
}

#[test]
fn a_full_cache_is_flushed_at_once() {
    // One entry is over a budget of 1 byte: every record goes through, as without a cache.
    let topology = count(Materialized::as_store("counts"));
    let mut t = task(&topology, 1);
    let first = process(&mut t, "in", 0, "x", Some("v"));
    let second = process(&mut t, "in", 1, "x", Some("v"));
    assert_eq!(first.len(), 2);
    assert_eq!(second[1].value, long(2));
}

#[test]
fn caching_off_by_materialized_or_by_budget_forwards_every_update() {
    for (materialized, budget) in [
        (
            Materialized::as_store("counts").with_caching_disabled(),
            1 << 20,
        ),
        (Materialized::as_store("counts"), 0),
    ] {
        let topology = count(materialized);
        let mut t = task(&topology, budget);
        let out = process(&mut t, "in", 0, "x", Some("v"));
        let out2 = process(&mut t, "in", 1, "x", Some("v"));
        use OutputKind::{Changelog, Sink};
        assert_eq!(
            shown(&out),
            vec![
                (Changelog, b("x"), long(1), 100),
                (Sink, b("x"), long(1), 100)
            ]
        );
        assert_eq!(out2[1].value, long(2));
    }
}

/// Table "users" (store "users-store") joined by stream "clicks" into "out".
fn clicks_with_users() -> Topology {
    let sb = StreamsBuilder::new();
    let users = sb.table::<String, String>(
        "users",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("users-store"),
    );
    sb.stream::<String, String>("clicks", Consumed::with(StringSerde, StringSerde))
        .join(&users, |page: String, region: String| {
            format!("{page}@{region}")
        })
        .to("out", Produced::with(StringSerde, StringSerde));
    sb.build().unwrap()
}

#[test]
fn a_join_reads_the_table_value_still_in_the_cache() {
    let topology = clicks_with_users();
    let mut t = task(&topology, 1 << 20);
    assert!(process(&mut t, "users", 0, "ann", Some("eu")).is_empty());
    let out = process(&mut t, "clicks", 0, "ann", Some("home"));
    assert_eq!(
        shown(&out),
        vec![(OutputKind::Sink, b("ann"), b("home@eu"), 100)]
    );
    // A delete held in the cache hides the row too.
    assert!(process(&mut t, "users", 1, "ann", None).is_empty());
    assert!(process(&mut t, "clicks", 1, "ann", Some("home")).is_empty());
}

#[test]
fn a_row_put_and_deleted_between_flushes_leaves_no_trace() {
    let topology = clicks_with_users();
    let mut t = task(&topology, 1 << 20);
    process(&mut t, "users", 0, "ann", Some("eu"));
    process(&mut t, "users", 1, "ann", None);
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    assert!(out.is_empty(), "the store never had the row: {out:?}");
    // Put, flushed, then deleted: the delete reaches the changelog as a tombstone.
    process(&mut t, "users", 2, "bob", Some("us"));
    t.flush(&mut Vec::new()).unwrap();
    process(&mut t, "users", 3, "bob", None);
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    assert_eq!(
        shown(&out),
        vec![(OutputKind::Changelog, b("bob"), None, 103)]
    );
}

/// Tables "users" and "plans" joined (inner) into "out".
fn users_with_plans() -> Topology {
    let sb = StreamsBuilder::new();
    let users = sb.table::<String, String>(
        "users",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("users-store"),
    );
    let plans = sb.table::<String, String>(
        "plans",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("plans-store"),
    );
    users
        .join(&plans, |u: &String, p: &String| format!("{u}/{p}"))
        .to_stream()
        .to("out", Produced::with(StringSerde, StringSerde));
    sb.build().unwrap()
}

#[test]
fn a_joined_row_whose_two_sides_go_in_one_interval_is_deleted_downstream() {
    let topology = users_with_plans();
    let mut t = task(&topology, 1 << 20);
    process(&mut t, "users", 0, "k", Some("eu"));
    process(&mut t, "plans", 0, "k", Some("pro"));
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    let sinks = |out: &[OutputRecord]| -> Vec<(Option<Bytes>, Option<Bytes>)> {
        out.iter()
            .filter(|o| o.kind == OutputKind::Sink)
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect()
    };
    // Each side's flush joins with the other's current row: the same row, maybe twice.
    let joined = sinks(&out);
    assert!(!joined.is_empty() && joined.iter().all(|j| *j == (b("k"), b("eu/pro"))));
    // Both rows deleted before the next flush: by then each side finds the other gone.
    process(&mut t, "users", 1, "k", None);
    process(&mut t, "plans", 1, "k", None);
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    let deletes = sinks(&out);
    assert!(!deletes.is_empty(), "the joined row was never deleted");
    assert!(deletes.iter().all(|d| *d == (b("k"), None)), "{deletes:?}");
}

/// A processor-API processor writing a cached timestamped store and reading it back.
struct ReadBack;

impl sluice_streams::processor::Processor for ReadBack {
    fn process(
        &mut self,
        r: sluice_streams::Record,
        ctx: &mut sluice_streams::processor::ProcessorContext<'_>,
    ) -> Result<(), sluice_streams::StreamsError> {
        let mut h = ctx.kv_store("s")?;
        h.put_timestamped(
            Bytes::from_static(b"k"),
            Bytes::from_static(b"v"),
            r.timestamp,
        )?;
        let back = h.get_timestamped(b"k")?;
        assert_eq!(back, Some((Bytes::from_static(b"v"), r.timestamp)));
        // put takes the stored form (timestamp first) and logs the plain value.
        let mut stored = (r.timestamp + 1).to_be_bytes().to_vec();
        stored.extend_from_slice(b"w");
        h.put(Bytes::from_static(b"j"), Bytes::from(stored))?;
        assert!(h
            .put(Bytes::from_static(b"bad"), Bytes::from_static(b"short"))
            .is_err());
        Ok(())
    }
}

#[test]
fn a_processor_reads_its_own_cached_writes_and_the_changelog_gets_plain_values() {
    use sluice_streams::state::{InMemoryStoreSupplier, StoreSpec};
    use std::sync::Arc;
    let sb = StreamsBuilder::new();
    let spec = StoreSpec {
        supplier: Arc::new(InMemoryStoreSupplier::new("s")),
        logged: true,
        timestamped: true,
        cached: true,
    };
    let _: sluice_streams::KStream<String, String> = sb
        .stream::<String, String>("in", Consumed::with(StringSerde, StringSerde))
        .process(
            "readback",
            || Box::new(ReadBack) as Box<dyn sluice_streams::processor::Processor>,
            vec![spec],
        );
    let topology = sb.build().unwrap();
    let mut t = task(&topology, 1 << 20);
    process(&mut t, "in", 0, "a", Some("x"));
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    assert_eq!(
        shown(&out),
        vec![
            (OutputKind::Changelog, b("k"), b("v"), 100),
            (OutputKind::Changelog, b("j"), b("w"), 101),
        ]
    );
}

#[test]
fn a_cached_windowed_count_writes_each_window_once_per_flush() {
    use sluice_streams::{TimeWindowedSerde, TimeWindows};
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    let sb = StreamsBuilder::new();
    sb.stream::<String, String>("in", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Default::default())
        .windowed_by(TimeWindows::of_size_with_no_grace(minute))
        .count(Materialized::as_store("per-minute"))
        .to_stream()
        .to(
            "out",
            Produced::with(TimeWindowedSerde::new(StringSerde, minute), LongSerde),
        );
    let topology = sb.build().unwrap();
    let mut t = task(&topology, 1 << 20);
    // Timestamps are 100 + offset: three records in the first minute.
    for i in 0..3 {
        assert!(process(&mut t, "in", i, "x", Some("v")).is_empty());
    }
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    let windowed_key = |start: i64| {
        let mut k = b"x".to_vec();
        k.extend_from_slice(&start.to_be_bytes());
        Some(Bytes::from(k))
    };
    let sinks: Vec<_> = out.iter().filter(|o| o.kind == OutputKind::Sink).collect();
    assert_eq!(sinks.len(), 1, "{out:?}");
    assert_eq!(sinks[0].key, windowed_key(0));
    assert_eq!(sinks[0].value, long(3));
    let changelogs = out
        .iter()
        .filter(|o| o.kind == OutputKind::Changelog)
        .count();
    assert_eq!(changelogs, 1);
    // The next minute, then a record late for the first one (closed, no grace): dropped.
    process(&mut t, "in", 60_000, "x", Some("v"));
    process(&mut t, "in", 3, "x", Some("v"));
    let mut out = Vec::new();
    t.flush(&mut out).unwrap();
    let sinks: Vec<_> = out.iter().filter(|o| o.kind == OutputKind::Sink).collect();
    assert_eq!(sinks.len(), 1, "{out:?}");
    assert_eq!(sinks[0].key, windowed_key(60_000));
    assert_eq!(sinks[0].value, long(1));
    assert_eq!(t.dropped_records(), 1);
}
