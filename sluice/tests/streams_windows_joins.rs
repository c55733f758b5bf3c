//! Sluice Streams windows and joins against the real broker: a tumbling one-minute count with
//! grace over records with explicit timestamps, and stream-table joins (inner and left).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::clients::TestClients;
use common::BrokerProcess;
use sluice_client::ConsumerRecord;
use sluice_streams::serdes::{LongSerde, Serde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, State, StreamsBuilder, StreamsConfig,
    TimeWindowedSerde, TimeWindows, Topology, Window, Windowed,
};

const MINUTE: i64 = 60_000;

/// The test's own clients (see `common::clients`), waiting on what an app writes.
trait AwaitTopic {
    fn await_topic<T: std::fmt::Debug>(
        &self,
        topic: &str,
        streams: &KafkaStreams,
        decode: impl Fn(&ConsumerRecord) -> T,
        done: impl Fn(&[T]) -> bool,
    ) -> Vec<T>;
}

impl AwaitTopic for TestClients {
    /// Reads `topic` until `done` holds for what it holds, failing with the last read (and
    /// the app's state) after 60 s.
    fn await_topic<T: std::fmt::Debug>(
        &self,
        topic: &str,
        streams: &KafkaStreams,
        decode: impl Fn(&ConsumerRecord) -> T,
        done: impl Fn(&[T]) -> bool,
    ) -> Vec<T> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got: Vec<T> = self.read(topic).iter().map(&decode).collect();
            if done(&got) {
                return got;
            }
            assert_ne!(
                streams.state(),
                State::Error,
                "the app failed; {topic}: {got:?}"
            );
            assert!(
                Instant::now() < deadline,
                "{topic} never got the expected records; it holds {got:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn streams_config(app: &str, bootstrap: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new()
        .set("application.id", app)
        .set("bootstrap.servers", bootstrap)
        .set("commit.interval.ms", "500")
        .set("state.dir", state.display().to_string())
        .set("producer.linger.ms", "5")
}

fn run(topology: Topology, cfg: StreamsConfig) -> KafkaStreams {
    let mut s = KafkaStreams::new(topology, cfg);
    s.start().unwrap();
    s
}

fn string(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
}

// ---- a tumbling one-minute windowed count ---------------------------------------------------

const EVENTS: &str = "events";
const COUNTS: &str = "counts-per-minute";
const GRACE_MS: i64 = 30_000;

fn windowed_count() -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>(EVENTS, Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(MINUTE as u64),
            Duration::from_millis(GRACE_MS as u64),
        ))
        .count(Materialized::as_store("events-per-minute"))
        .to_stream()
        .to(
            COUNTS,
            Produced::with(
                TimeWindowedSerde::new(StringSerde, Duration::from_secs(60)),
                LongSerde,
            ),
        );
    b.build().unwrap()
}

#[test]
fn tumbling_minute_count_takes_late_records_within_grace_and_drops_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = TestClients::new(&broker.bootstrap());
    // One input partition: one task, whose stream time is the largest timestamp it has read,
    // so the order the records are produced in decides what is late.
    c.create(EVENTS, 1, &[]);
    c.create(COUNTS, 1, &[]);
    let mut streams = run(
        windowed_count(),
        streams_config("windows", &broker.bootstrap(), &dir.path().join("state")),
    );

    // Minutes near now (the broker keeps them), aligned to the epoch as windows are.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = (now / MINUTE - 10) * MINUTE;
    let s = 1000;
    // (key, timestamp) in produce order. Stream time (st) after each, and the window of
    // [t, t+60 s) closing at t+90 s.
    let events = [
        ("a", t + s),       // st t+1s
        ("a", t + 30 * s),  // st t+30s
        ("b", t + 45 * s),  // st t+45s
        ("a", t + 61 * s),  // st t+61s: the second minute starts
        ("a", t + 75 * s),  // st t+75s
        ("a", t + 50 * s),  // late for the first minute, within grace: counted
        ("b", t + 100 * s), // st t+100s: the first minute is closed
        ("a", t + 59 * s),  // after grace: dropped
        ("b", t + 10 * s),  // after grace: dropped
        ("c", t + 150 * s), // st t+150s = the second minute's end + grace: it closes
        ("a", t + 119 * s), // at exactly end + grace: dropped
        ("a", t + 125 * s), // the third minute; the last record
    ];
    for (k, ts) in events {
        c.send(EVENTS, k, Some("event"), Some(ts));
    }

    let serde = TimeWindowedSerde::new(StringSerde, Duration::from_secs(60));
    let decode = |r: &ConsumerRecord| {
        let k: Windowed<String> = serde.deserialize(COUNTS, r.key.as_deref()).unwrap();
        let n: i64 = LongSerde.deserialize(COUNTS, r.value.as_deref()).unwrap();
        (k.key, k.window.start - t, n)
    };
    // The record cache holds a window's updates until a commit, so the topic shows each
    // window's latest count per commit: what must hold is each window's final count, and no
    // count above it on the way (a dropped record counted would be one).
    let finals = |got: &[(String, i64, i64)]| -> BTreeMap<(String, i64), i64> {
        got.iter()
            .map(|(k, start, n)| ((k.clone(), *start), *n))
            .collect()
    };
    let w = |k: &str, minute: i64, n: i64| ((k.to_string(), minute * MINUTE), n);
    let expected: BTreeMap<(String, i64), i64> = [
        w("a", 0, 3), // 1 s, 30 s, and 50 s late within grace; 59 s after grace dropped
        w("b", 0, 1), // 45 s; 10 s after grace dropped
        w("a", 1, 2), // 61 s, 75 s; 119 s at exactly end + grace dropped
        w("b", 1, 1),
        w("c", 2, 1),
        w("a", 2, 1),
    ]
    .into_iter()
    .collect();
    let got = c.await_topic(COUNTS, &streams, decode, |got| finals(got) == expected);
    for (k, start, n) in &got {
        assert!(
            *n <= expected[&(k.clone(), *start)],
            "{k}@{start}: {n} counted on the way, above the final count: {got:?}"
        );
    }

    // The windowed keys carry the window start as Kafka's TimeWindowedSerializer writes it.
    let mut key = b"a".to_vec();
    key.extend_from_slice(&t.to_be_bytes());
    assert!(
        c.read(COUNTS)
            .iter()
            .any(|r| r.key.as_deref() == Some(&key[..])),
        "no record keyed a@{t}"
    );
    let windowed = Windowed::new("a".to_string(), Window::new(t, t + MINUTE));
    assert_eq!(
        serde.serialize(COUNTS, &windowed).unwrap().as_deref(),
        Some(&key[..])
    );
    // Three records came too late: at 59 s and 10 s (first minute) and 119 s (second).
    assert_eq!(streams.dropped_records(), 3);
    streams.close().unwrap();
    // Nothing changed while the app closed (it commits and flushes, no new counts).
    assert_eq!(
        finals(&c.read(COUNTS).iter().map(decode).collect::<Vec<_>>()),
        expected
    );

    // Stream time survives a restart (the commit keeps it): the second minute, closed before
    // the stop, stays closed, though its window is still in the store.
    let mut streams = run(
        windowed_count(),
        streams_config("windows", &broker.bootstrap(), &dir.path().join("state")),
    );
    c.send(EVENTS, "a", Some("event"), Some(t + 65 * s)); // after grace: dropped
    c.send(EVENTS, "d", Some("event"), Some(t + 126 * s)); // the third minute: counted
    let marker = (("d".to_string(), 2 * MINUTE), 1);
    let got = c.await_topic(COUNTS, &streams, decode, |got| {
        finals(got).get(&marker.0) == Some(&marker.1)
    });
    let mut then = expected.clone();
    then.insert(marker.0, marker.1);
    assert_eq!(
        finals(&got),
        then,
        "a record for a window closed before the restart was counted"
    );
    assert_eq!(streams.dropped_records(), 1);
    streams.close().unwrap();
}

// ---- stream-table joins ---------------------------------------------------------------------

const USERS: &str = "users";
const CLICKS: &str = "clicks";
const ENRICHED: &str = "clicks-enriched";
const ENRICHED_LEFT: &str = "clicks-enriched-left";
const JOIN_PARTITIONS: i32 = 3;

fn joins() -> Topology {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>(
        USERS,
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("users-store"),
    );
    let clicks = b.stream::<String, String>(CLICKS, Consumed::with(StringSerde, StringSerde));
    clicks
        .join(&users, |page: String, region: String| {
            format!("{page}@{region}")
        })
        .to(ENRICHED, Produced::with(StringSerde, StringSerde));
    clicks
        .left_join(&users, |page: String, region: Option<String>| {
            format!("{page}@{}", region.as_deref().unwrap_or("<none>"))
        })
        .to(ENRICHED_LEFT, Produced::with(StringSerde, StringSerde));
    b.build().unwrap()
}

/// The join's topics, co-partitioned: one partition count, and the producer's default
/// partitioner puts a key in the same partition of each, so one task sees a user's row and
/// clicks.
fn create_join_topics(c: &TestClients) {
    c.create(USERS, JOIN_PARTITIONS, &[("cleanup.policy", "compact")]);
    c.create(CLICKS, JOIN_PARTITIONS, &[]);
    c.create(ENRICHED, JOIN_PARTITIONS, &[]);
    c.create(ENRICHED_LEFT, JOIN_PARTITIONS, &[]);
}

#[test]
fn stream_table_join_enriches_each_click_with_the_latest_table_value() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = TestClients::new(&broker.bootstrap());
    create_join_topics(&c);
    let app = "joins";
    let mut streams = run(
        joins(),
        streams_config(app, &broker.bootstrap(), &dir.path().join("state")),
    );
    let changelog = format!("{app}-users-store-changelog");

    // A task reads its table and stream partitions in whatever order fetches return them, so
    // each table change is awaited in the store's changelog (written as the table task
    // applies it) before the clicks that must see it are sent.
    let table = |user: &str, region: Option<&str>| {
        c.send(USERS, user, region, None);
        let want = (user.to_string(), region.map(str::to_string));
        c.await_topic(
            &changelog,
            &streams,
            |r| (string(&r.key).unwrap(), string(&r.value)),
            |got| got.iter().rev().find(|(k, _)| *k == want.0) == Some(&want),
        );
    };
    let click = |user: &str, page: &str| c.send(CLICKS, user, Some(page), None);
    let decode = |r: &ConsumerRecord| (string(&r.key).unwrap(), string(&r.value).unwrap());
    let of = |got: &[(String, String)], user: &str| -> Vec<String> {
        got.iter()
            .filter(|(k, _)| k == user)
            .map(|(_, v)| v.clone())
            .collect()
    };

    table("alice", Some("eu"));
    table("bob", Some("us"));
    click("alice", "home");
    click("bob", "cart");
    click("carol", "home"); // no row in the table
    table("alice", Some("apac")); // alice moves between two of her clicks
    click("alice", "checkout");
    table("bob", None); // bob's row is deleted
    click("bob", "help");
    table("bob", Some("emea"));
    click("bob", "back");
    click("carol", "back");

    // Per key, one task in log order: each user's last click shows every earlier one was
    // processed, so a missing or extra output before it is a real error, not a slow app.
    let done = |inner: bool| {
        move |got: &[(String, String)]| {
            let o = |u: &str, last: &str| of(got, u).last().map(String::as_str) == Some(last);
            o("alice", "checkout@apac")
                && o("bob", "back@emea")
                && (inner || o("carol", "back@<none>"))
        }
    };
    // The left join first: it also waits for carol's clicks, which the inner join drops.
    let left = c.await_topic(ENRICHED_LEFT, &streams, decode, done(false));
    assert_eq!(of(&left, "alice"), ["home@eu", "checkout@apac"]);
    assert_eq!(of(&left, "bob"), ["cart@us", "help@<none>", "back@emea"]);
    assert_eq!(of(&left, "carol"), ["home@<none>", "back@<none>"]);
    assert_eq!(left.len(), 7, "{left:?}");

    let inner = c.await_topic(ENRICHED, &streams, decode, done(true));
    assert_eq!(of(&inner, "alice"), ["home@eu", "checkout@apac"]);
    // While bob had no row his click joined nothing, and carol never has one.
    assert_eq!(of(&inner, "bob"), ["cart@us", "back@emea"]);
    assert_eq!(inner.len(), 4, "{inner:?}");

    streams.close().unwrap();
}

#[test]
fn a_join_over_topics_filled_before_the_start_follows_the_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = TestClients::new(&broker.bootstrap());
    create_join_topics(&c);
    // Everything is on the broker before the app starts, the clicks written first. A task gets
    // a user's table partition and click partition in whatever order its fetches return them;
    // it must process them by timestamp, so each click sees the row current at its time.
    let t = 1_700_000_000_000;
    for (user, page, ts) in [
        ("alice", "home", t + 20),
        ("bob", "cart", t + 20),
        ("alice", "checkout", t + 40),
        ("bob", "help", t + 40),
        ("carol", "home", t + 50),
    ] {
        c.send(CLICKS, user, Some(page), Some(ts));
    }
    for (user, region, ts) in [
        ("alice", Some("eu"), t + 10),
        ("bob", Some("us"), t + 10),
        ("alice", Some("apac"), t + 30),
        ("bob", None, t + 30),
    ] {
        c.send(USERS, user, region, Some(ts));
    }
    let mut streams = run(
        joins(),
        streams_config(
            "joins-ordered",
            &broker.bootstrap(),
            &dir.path().join("state"),
        ),
    );
    let decode = |r: &ConsumerRecord| (string(&r.key).unwrap(), string(&r.value).unwrap());
    let mut left = c.await_topic(ENRICHED_LEFT, &streams, decode, |got| got.len() >= 5);
    left.sort();
    let want = [
        ("alice", "checkout@apac"),
        ("alice", "home@eu"),
        ("bob", "cart@us"),
        ("bob", "help@<none>"),
        ("carol", "home@<none>"),
    ];
    assert_eq!(left, want.map(|(k, v)| (k.to_string(), v.to_string())));
    streams.close().unwrap();
}
