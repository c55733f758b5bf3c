//! Windowed aggregations through `TopologyTestDriver`: tumbling counts per window, grace and
//! dropped late records, hopping windows, retention, session merges, changelogs and restore.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{pipe_events, s, MIN};
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, SessionWindowedSerde, StreamsBuilder,
    TimeWindowedSerde, TimeWindows, TopologyTestDriver, Window, Windowed,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Counts "events" per key in `windows`, into store "counts" and topic "out".
fn windowed_count(windows: TimeWindows, m: Materialized<String, i64>) -> TopologyTestDriver {
    TopologyTestDriver::new(common::windowed_count(windows, m), "win").unwrap()
}

/// The latest count per (key, window start) written to "out".
fn counts(d: &TopologyTestDriver, size: Duration) -> Vec<(String, i64, i64, i64)> {
    let out = d.create_output_topic::<Windowed<String>, Option<i64>>(
        "out",
        TimeWindowedSerde::new(StringSerde, size),
        LongSerde,
    );
    let mut m: Vec<(String, i64, i64, i64)> = Vec::new();
    for (w, c) in out.read_key_values_to_list().unwrap() {
        let c = c.expect("counts are never deleted");
        m.retain(|(k, st, _, _)| !(k == &w.key && *st == w.window.start));
        m.push((w.key, w.window.start, w.window.end, c));
    }
    m.sort();
    m
}

#[test]
fn tumbling_one_minute_count_gives_counts_per_window() {
    // Retention keeps closed windows queryable in the store (by default only size + grace).
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(secs(60)),
        Materialized::as_store("counts").with_retention(secs(600)),
    );
    pipe_events(
        &d,
        &[
            ("a", 0),
            ("a", 30_000),
            ("b", 45_000),
            ("a", MIN),
            ("a", 2 * MIN - 1),
            ("b", 2 * MIN + 5_000),
        ],
    );
    assert_eq!(
        counts(&d, secs(60)),
        vec![
            (s("a"), 0, MIN, 2),
            (s("a"), MIN, 2 * MIN, 2),
            (s("b"), 0, MIN, 1),
            (s("b"), 2 * MIN, 3 * MIN, 1),
        ]
    );
    assert_eq!(d.dropped_records(), 0);
    // The store holds the same, one entry per key and window start.
    let store = d.window_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.fetch(&s("a"), MIN).unwrap(), Some(2));
    assert_eq!(store.fetch(&s("a"), 2 * MIN).unwrap(), None);
}

#[test]
fn windowed_keys_reach_the_topic_as_key_bytes_and_window_start() {
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(secs(60)),
        Materialized::new(),
    );
    pipe_events(&d, &[("k", 90_000)]);
    let raw = d.read_raw("out");
    assert_eq!(raw.len(), 1);
    let mut key = b"k".to_vec();
    key.extend_from_slice(&MIN.to_be_bytes());
    assert_eq!(raw[0].key.as_deref(), Some(&key[..]));
    assert_eq!(raw[0].value.as_deref(), Some(&1i64.to_be_bytes()[..]));
    assert_eq!(raw[0].timestamp, 90_000);
}

#[test]
fn a_late_record_within_grace_is_counted_and_one_after_grace_is_dropped() {
    let d = windowed_count(
        TimeWindows::of_size_and_grace(secs(60), secs(30)),
        Materialized::as_store("counts"),
    );
    // Stream time reaches 70s; window [0, 60) stays open until 60s + 30s of grace.
    pipe_events(&d, &[("a", 10_000), ("a", 70_000), ("a", 50_000)]);
    assert_eq!(d.dropped_records(), 0);
    assert_eq!(
        counts(&d, secs(60)),
        vec![(s("a"), 0, MIN, 2), (s("a"), MIN, 2 * MIN, 1)]
    );
    // At 90s the window has closed: a record for it changes nothing and is counted as dropped.
    pipe_events(&d, &[("a", 90_000), ("a", 20_000)]);
    assert_eq!(d.dropped_records(), 1);
    assert_eq!(counts(&d, secs(60)), vec![(s("a"), MIN, 2 * MIN, 2)]);
    let store = d.window_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(2));
}

#[test]
fn without_grace_a_window_closes_at_its_end() {
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(secs(60)),
        Materialized::as_store("counts"),
    );
    pipe_events(&d, &[("a", 59_000), ("a", MIN), ("a", 59_999)]);
    assert_eq!(d.dropped_records(), 1);
    assert_eq!(
        counts(&d, secs(60)),
        vec![(s("a"), 0, MIN, 1), (s("a"), MIN, 2 * MIN, 1)]
    );
}

#[test]
fn hopping_windows_count_a_record_in_each_overlapping_window() {
    let size = secs(60);
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(size).advance_by(secs(20)),
        Materialized::as_store("counts"),
    );
    pipe_events(&d, &[("a", 65_000), ("a", 70_000), ("a", 85_000)]);
    assert_eq!(
        counts(&d, size),
        vec![
            (s("a"), 20_000, 80_000, 2),
            (s("a"), 40_000, 100_000, 3),
            (s("a"), 60_000, 120_000, 3),
            (s("a"), 80_000, 140_000, 1),
        ]
    );
    assert_eq!(d.dropped_records(), 0);
}

#[test]
fn closed_windows_are_kept_for_the_retention_then_purged() {
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(secs(60)),
        Materialized::as_store("counts").with_retention(secs(180)),
    );
    let store = d.window_store::<String, i64>("counts", StringSerde, LongSerde);
    pipe_events(&d, &[("a", 10_000), ("a", 70_000), ("a", 130_000)]);
    // Window 0 closed at 60s, but retention keeps it until a window starts at 180s.
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));
    pipe_events(&d, &[("a", 190_000)]);
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), None);
    let left: Vec<i64> = store.all().unwrap().into_iter().map(|e| e.1).collect();
    assert_eq!(left, vec![MIN, 2 * MIN, 3 * MIN]);
}

#[test]
fn a_retention_shorter_than_size_plus_grace_or_a_bad_advance_fails_the_build() {
    let build = |w: TimeWindows, m: Materialized<String, i64>| {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("events", Consumed::with(StringSerde, StringSerde))
            .group_by_key(Grouped::new())
            .windowed_by(w)
            .count(m);
        b.build().err().map(|e| e.to_string())
    };
    let w = TimeWindows::of_size_and_grace(secs(60), secs(30));
    let e = build(w, Materialized::as_store("c").with_retention(secs(60))).unwrap();
    assert!(e.contains("retention"), "{e}");
    let e = build(w.advance_by(secs(90)), Materialized::new()).unwrap();
    assert!(e.contains("advance"), "{e}");
    assert_eq!(build(w, Materialized::new()), None);
}

#[test]
fn windowed_aggregate_and_reduce_fold_values_per_window() {
    let b = StreamsBuilder::new();
    let nums = b.stream::<String, i64>("nums", Consumed::with(StringSerde, LongSerde));
    let windowed = nums
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)));
    windowed
        .aggregate(
            || s(""),
            |_, v: i64, agg: String| format!("{agg}{v}"),
            Materialized::as_store("concat")
                .with_value_serde(StringSerde)
                .with_retention(secs(60)),
        )
        .to_stream()
        .to(
            "concat-out",
            Produced::with(TimeWindowedSerde::new(StringSerde, secs(10)), StringSerde),
        );
    windowed
        .reduce(
            |a, b| a.max(b),
            Materialized::as_store("max").with_retention(secs(60)),
        )
        .to_stream()
        .to(
            "max-out",
            Produced::with(TimeWindowedSerde::new(StringSerde, secs(10)), LongSerde),
        );
    let d = TopologyTestDriver::new(b.build().unwrap(), "agg").unwrap();
    let input = d.create_input_topic("nums", StringSerde, LongSerde);
    for (v, ts) in [(1, 1_000), (5, 2_000), (3, 9_000), (7, 11_000)] {
        input.pipe_input(s("k"), v, ts).unwrap();
    }
    let concat = d.window_store::<String, String>("concat", StringSerde, StringSerde);
    assert_eq!(
        concat.all().unwrap(),
        vec![(s("k"), 0, s("153")), (s("k"), 10_000, s("7"))]
    );
    let max = d.window_store::<String, i64>("max", StringSerde, LongSerde);
    assert_eq!(
        max.all().unwrap(),
        vec![(s("k"), 0, 5), (s("k"), 10_000, 7)]
    );
    let out = d.create_output_topic::<Windowed<String>, Option<i64>>(
        "max-out",
        TimeWindowedSerde::new(StringSerde, secs(10)),
        LongSerde,
    );
    let recs = out.read_records_to_list().unwrap();
    let got: Vec<(i64, Option<i64>, i64)> = recs
        .iter()
        .map(|r| (r.key.window.start, r.value, r.timestamp))
        .collect();
    // Each update carries the largest timestamp of its window's records.
    assert_eq!(
        got,
        vec![
            (0, Some(1), 1_000),
            (0, Some(5), 2_000),
            (0, Some(5), 9_000),
            (10_000, Some(7), 11_000)
        ]
    );
}

#[test]
fn window_store_writes_go_to_the_changelog_and_restore_from_it() {
    let build = || {
        windowed_count(
            TimeWindows::of_size_with_no_grace(secs(60)),
            Materialized::as_store("counts").with_retention(secs(600)),
        )
    };
    let first = build();
    pipe_events(&first, &[("a", 5_000), ("a", 65_000)]);
    let topic = first.changelog_topic("counts");
    assert_eq!(topic, "win-counts-changelog");
    let changelog = first.read_raw(&topic);
    let key = |start: i64| {
        let mut k = b"a".to_vec();
        k.extend_from_slice(&start.to_be_bytes());
        k.extend_from_slice(&0i32.to_be_bytes());
        Bytes::from(k)
    };
    let got: Vec<(Bytes, Option<Bytes>, i64)> = changelog
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.value.clone(), r.timestamp))
        .collect();
    let one = Some(Bytes::copy_from_slice(&1i64.to_be_bytes()));
    assert_eq!(
        got,
        vec![(key(0), one.clone(), 5_000), (key(MIN), one, 65_000)]
    );

    let second = build();
    assert_eq!(second.restore_store("counts", changelog).unwrap(), 2);
    pipe_events(&second, &[("a", 70_000)]);
    assert_eq!(counts(&second, secs(60)), vec![(s("a"), MIN, 2 * MIN, 2)]);
    let store = second.window_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));
}

/// Counts "clicks" per user session with a 10 s inactivity gap, into store "sessions".
fn session_count(grace: Duration) -> TopologyTestDriver {
    let topology = common::session_count(grace, Materialized::as_store("sessions"));
    TopologyTestDriver::new(topology, "sess").unwrap()
}

fn click(d: &TopologyTestDriver, k: &str, ts: i64) {
    d.create_input_topic("clicks", StringSerde, StringSerde)
        .pipe_input(s(k), s("c"), ts)
        .unwrap();
}

#[test]
fn session_windows_merge_when_a_record_bridges_them() {
    // Grace keeps the first session open (and in the store) until the bridging record comes.
    let d = session_count(secs(30));
    let out = d.create_output_topic::<Windowed<String>, Option<i64>>(
        "out",
        SessionWindowedSerde::new(StringSerde),
        LongSerde,
    );
    click(&d, "a", 0);
    click(&d, "a", 20_000);
    click(&d, "b", 5_000);
    // Two sessions of "a" so far, 20 s apart: more than the gap.
    let w = |k: &str, a: i64, b: i64| Windowed::new(s(k), Window::new(a, b));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            (w("a", 0, 0), Some(1)),
            (w("a", 20_000, 20_000), Some(1)),
            (w("b", 5_000, 5_000), Some(1))
        ]
    );
    // A record at 10 s is within the gap of both: they merge into one session of three.
    click(&d, "a", 10_000);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            (w("a", 0, 0), None),
            (w("a", 20_000, 20_000), None),
            (w("a", 0, 20_000), Some(3))
        ]
    );
    // A record inside a session extends nothing and updates it in place.
    click(&d, "a", 15_000);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(w("a", 0, 20_000), Some(4))]
    );
    let store = d.window_store::<String, i64>("sessions", StringSerde, LongSerde);
    assert_eq!(
        store.sessions().unwrap(),
        vec![(w("b", 5_000, 5_000), 1), (w("a", 0, 20_000), 4)]
    );
    assert_eq!(d.dropped_records(), 0);

    // The changelog has the merged-away sessions' tombstones, keyed key + end + start.
    let log = d.read_raw(&d.changelog_topic("sessions"));
    let key = |k: &str, start: i64, end: i64| {
        let mut v = k.as_bytes().to_vec();
        v.extend_from_slice(&end.to_be_bytes());
        v.extend_from_slice(&start.to_be_bytes());
        Bytes::from(v)
    };
    let tombstones: Vec<Bytes> = log
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.key.clone().unwrap())
        .collect();
    assert_eq!(tombstones, vec![key("a", 0, 0), key("a", 20_000, 20_000)]);
    let fresh = session_count(secs(30));
    fresh.restore_store("sessions", log).unwrap();
    let restored = fresh.window_store::<String, i64>("sessions", StringSerde, LongSerde);
    assert_eq!(restored.sessions().unwrap(), store.sessions().unwrap());
}

#[test]
fn a_session_past_its_grace_drops_late_records() {
    let d = session_count(secs(5));
    click(&d, "a", 0);
    click(&d, "a", 30_000);
    // Stream time 30 s: session [0, 0] ended more than gap + grace before, so it is purged,
    // and a record at 1 s is dropped; one at 26 s joins the open session.
    click(&d, "a", 1_000);
    assert_eq!(d.dropped_records(), 1);
    click(&d, "a", 26_000);
    let store = d.window_store::<String, i64>("sessions", StringSerde, LongSerde);
    let got: Vec<(Window, i64)> = store
        .sessions()
        .unwrap()
        .into_iter()
        .map(|(w, c)| (w.window, c))
        .collect();
    assert_eq!(got, vec![(Window::new(26_000, 30_000), 2)]);
}

#[test]
fn records_at_the_end_of_time_do_not_break_windowed_aggregations() {
    use sluice_streams::serdes::LongSerde;
    use sluice_streams::{
        Consumed, Grouped, Materialized, Produced, SessionWindowedSerde, SessionWindows,
        StreamsBuilder, TimeWindowedSerde, TimeWindows, TopologyTestDriver,
    };
    let sb = StreamsBuilder::new();
    let grouped = sb
        .stream::<String, String>("events", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde));
    let minute = Duration::from_secs(60);
    grouped
        .windowed_by(
            TimeWindows::of_size_and_grace(minute, minute).advance_by(Duration::from_secs(20)),
        )
        .count(Materialized::as_store("hopping"))
        .to_stream()
        .to(
            "hopping-out",
            Produced::with(TimeWindowedSerde::new(StringSerde, minute), LongSerde),
        );
    grouped
        .session_windowed_by(SessionWindows::of_inactivity_gap_and_grace(minute, minute))
        .count(Materialized::as_store("sessions"))
        .to_stream()
        .to(
            "sessions-out",
            Produced::with(SessionWindowedSerde::new(StringSerde), LongSerde),
        );
    let d = TopologyTestDriver::new(sb.build().unwrap(), "app").unwrap();
    let input = d.create_input_topic("events", StringSerde, StringSerde);
    for ts in [i64::MAX, i64::MAX - 1, 0, i64::MAX] {
        input.pipe_input(s("k"), s("v"), ts).unwrap();
    }
    assert!(!d.read_raw("hopping-out").is_empty());
    assert!(!d.read_raw("sessions-out").is_empty());
}
