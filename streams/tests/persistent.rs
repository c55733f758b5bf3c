//! Persistent key-value, window and session stores through `TopologyTestDriver`: state kept on
//! disk across a restart past its checkpoint, and the same results as the in-memory stores.

mod common;

use std::time::Duration;

use common::{pipe_events, s, MIN};
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, SessionWindowedSerde, StreamsBuilder, TaskConfig,
    TimeWindowedSerde, TimeWindows, TopologyTestDriver, Window, Windowed,
};

fn word_count(state_dir: &std::path::Path) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.stream::<Option<String>, String>("lines", Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|l: String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(
            |_, w: &String| w.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::as_persistent_store("counts"))
        .to_stream()
        .to("out", Produced::with(StringSerde, LongSerde));
    let mut cfg = TaskConfig::new("wc");
    cfg.state_dir = Some(state_dir.to_path_buf());
    TopologyTestDriver::with_config(b.build().unwrap(), cfg).unwrap()
}

fn line(d: &TopologyTestDriver, text: &str, ts: i64) {
    d.create_input_topic::<Option<String>, String>("lines", StringSerde, StringSerde)
        .pipe_input(None, s(text), ts)
        .unwrap();
}

#[test]
fn a_restarted_instance_keeps_checkpointed_state_and_restores_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let first = word_count(dir.path());
    assert_eq!(first.checkpointed_offset("counts").unwrap(), None);
    line(&first, "a b a", 10);
    let changelog = first.changelog_topic("counts");
    let mut log = first.read_raw(&changelog);
    // "a" counted twice in one record: the record cache makes that one changelog record.
    assert_eq!(log.len(), 2);
    // The runtime checkpoints once the changelog up to offset 1 is acknowledged and committed.
    first.write_checkpoint("counts", 1).unwrap();
    line(&first, "b", 20);
    log.extend(first.read_raw(&changelog));
    assert!(
        dir.path().join("redb").join("counts.redb").exists(),
        "the store lives in the state directory"
    );
    // Gone without a flush, as in a crash: the write after the checkpoint is not on disk.
    drop(first);

    let second = word_count(dir.path());
    let store = second.key_value_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(second.checkpointed_offset("counts").unwrap(), Some(1));
    assert_eq!(store.get(&s("a")).unwrap(), Some(2));
    assert_eq!(store.get(&s("b")).unwrap(), Some(1));
    // Only the changelog after the checkpoint is replayed.
    assert_eq!(second.restore_store("counts", log.split_off(2)).unwrap(), 1);
    assert_eq!(store.get(&s("b")).unwrap(), Some(2));
    line(&second, "a b", 30);
    let out = second.create_output_topic::<String, i64>("out", StringSerde, LongSerde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("a"), 3), (s("b"), 3)]
    );
    // A checkpointed store comes back whole with no restore at all. (Topic and store views
    // share the driver, so they go too.)
    second.write_checkpoint("counts", 4).unwrap();
    drop((second, store, out));
    let third = word_count(dir.path());
    assert_eq!(third.checkpointed_offset("counts").unwrap(), Some(4));
    let store = third.key_value_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.all().unwrap(), vec![(s("a"), 3), (s("b"), 3)]);
}

#[test]
fn without_a_state_directory_the_store_lives_in_a_temporary_one() {
    let b = StreamsBuilder::new();
    b.table::<String, String>(
        "t",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_persistent_store("t-store"),
    );
    let d = TopologyTestDriver::new(b.build().unwrap(), "tmp").unwrap();
    d.create_input_topic::<String, Option<String>>("t", StringSerde, StringSerde)
        .pipe_input(s("k"), Some(s("v")), 1)
        .unwrap();
    let store = d.key_value_store::<String, String>("t-store", StringSerde, StringSerde);
    assert_eq!(
        store.get_with_timestamp(&s("k")).unwrap(),
        Some((s("v"), 1))
    );
    d.flush().unwrap();
}

// Window and session stores on disk: `Materialized::as_persistent_store` in windowed
// aggregations gives the persistent window or session store.

/// Counts "events" per key in `windows` into store "counts" and topic "out".
fn windowed_count(
    windows: TimeWindows,
    m: Materialized<String, i64>,
    state_dir: Option<&std::path::Path>,
) -> TopologyTestDriver {
    let mut cfg = TaskConfig::new("pwin");
    cfg.state_dir = state_dir.map(|d| d.to_path_buf());
    TopologyTestDriver::with_config(common::windowed_count(windows, m), cfg).unwrap()
}

fn windowed_out(d: &TopologyTestDriver, size_ms: i64) -> Vec<(Windowed<String>, Option<i64>)> {
    d.create_output_topic::<Windowed<String>, Option<i64>>(
        "out",
        TimeWindowedSerde::new(StringSerde, Duration::from_millis(size_ms as u64)),
        LongSerde,
    )
    .read_key_values_to_list()
    .unwrap()
}

#[test]
fn a_windowed_count_gives_the_same_results_on_disk_as_in_memory() {
    // Hopping windows with grace, keys where one is a prefix of another, late and too-late records.
    let w = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(30))
        .advance_by(Duration::from_secs(30));
    let input = [
        ("b", 10_000),
        ("a", 20_000),
        ("ab", 25_000),
        ("a", 65_000),
        ("a", 40_000),
        ("b", 130_000),
        ("a", 5_000),
        ("ab", 200_000),
        ("a", 190_000),
        ("b", 100_000),
    ];
    let mem = windowed_count(w, Materialized::as_store("counts"), None);
    let dir = tempfile::tempdir().unwrap();
    let disk = windowed_count(
        w,
        Materialized::as_persistent_store("counts"),
        Some(dir.path()),
    );
    pipe_events(&mem, &input);
    pipe_events(&disk, &input);
    let out = windowed_out(&disk, MIN);
    assert_eq!(out, windowed_out(&mem, MIN));
    assert!(out.len() > 10, "{out:?}");
    assert_eq!(disk.dropped_records(), mem.dropped_records());
    assert!(disk.dropped_records() > 0);
    let all = |d: &TopologyTestDriver| {
        d.window_store::<String, i64>("counts", StringSerde, LongSerde)
            .all()
            .unwrap()
    };
    assert_eq!(all(&disk), all(&mem));
    assert!(
        dir.path().join("redb").join("counts.redb").exists(),
        "the window store lives in the state directory"
    );
    // The changelogs agree too, so either store restores from the other's.
    assert_eq!(
        disk.read_raw(&disk.changelog_topic("counts")),
        mem.read_raw(&mem.changelog_topic("counts"))
    );
}

#[test]
fn a_persistent_window_store_keeps_checkpointed_windows_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let w = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
    let m = || Materialized::as_persistent_store("counts").with_retention(Duration::from_secs(600));
    {
        let first = windowed_count(w, m(), Some(dir.path()));
        pipe_events(&first, &[("a", 10_000), ("a", 20_000), ("b", 70_000)]);
        first.flush().unwrap();
        first.write_checkpoint("counts", 2).unwrap();
    }
    let second = windowed_count(w, m(), Some(dir.path()));
    assert_eq!(second.checkpointed_offset("counts").unwrap(), Some(2));
    let store = second.window_store::<String, i64>("counts", StringSerde, LongSerde);
    assert_eq!(store.all().unwrap(), vec![(s("a"), 0, 2), (s("b"), MIN, 1)]);
    // Counting goes on from the stored windows.
    pipe_events(&second, &[("a", 30_000), ("b", 80_000)]);
    let got = windowed_out(&second, MIN);
    let win = |k: &str, start: i64| Windowed::new(s(k), Window::new(start, start + MIN));
    assert_eq!(got, vec![(win("a", 0), Some(3)), (win("b", MIN), Some(2))]);
}

#[test]
fn a_persistent_window_store_purges_windows_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(Duration::from_secs(60)),
        Materialized::as_persistent_store("counts").with_retention(Duration::from_secs(180)),
        Some(dir.path()),
    );
    let store = d.window_store::<String, i64>("counts", StringSerde, LongSerde);
    pipe_events(&d, &[("a", 10_000), ("a", 70_000), ("a", 130_000)]);
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(1));
    pipe_events(&d, &[("a", 190_000)]);
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), None);
    let left: Vec<i64> = store.all().unwrap().into_iter().map(|e| e.1).collect();
    assert_eq!(left, vec![MIN, 2 * MIN, 3 * MIN]);
    // Purged windows stay gone after a checkpointed reopen.
    d.write_checkpoint("counts", 3).unwrap();
    drop((d, store));
    let d = windowed_count(
        TimeWindows::of_size_with_no_grace(Duration::from_secs(60)),
        Materialized::as_persistent_store("counts").with_retention(Duration::from_secs(180)),
        Some(dir.path()),
    );
    let store = d.window_store::<String, i64>("counts", StringSerde, LongSerde);
    let left: Vec<i64> = store.all().unwrap().into_iter().map(|e| e.1).collect();
    assert_eq!(left, vec![MIN, 2 * MIN, 3 * MIN]);
}

fn session_count(
    m: Materialized<String, i64>,
    state_dir: Option<&std::path::Path>,
) -> TopologyTestDriver {
    let mut cfg = TaskConfig::new("psess");
    cfg.state_dir = state_dir.map(|d| d.to_path_buf());
    let topology = common::session_count(Duration::from_secs(5), m);
    TopologyTestDriver::with_config(topology, cfg).unwrap()
}

#[test]
fn a_session_count_gives_the_same_results_on_disk_as_in_memory() {
    let input = [
        ("a", 0),
        ("a", 20_000),
        ("ab", 5_000),
        ("a", 10_000),
        ("b", 12_000),
        ("a", 15_000),
        ("ab", 60_000),
        ("a", 1_000),
        ("b", 25_000),
        ("a", 90_000),
    ];
    let mem = session_count(Materialized::as_store("sessions"), None);
    let dir = tempfile::tempdir().unwrap();
    let disk = session_count(
        Materialized::as_persistent_store("sessions"),
        Some(dir.path()),
    );
    for d in [&mem, &disk] {
        let input_topic = d.create_input_topic("clicks", StringSerde, StringSerde);
        for (k, ts) in input {
            input_topic.pipe_input(s(k), s("c"), ts).unwrap();
        }
    }
    let out = |d: &TopologyTestDriver| {
        d.create_output_topic::<Windowed<String>, Option<i64>>(
            "out",
            SessionWindowedSerde::new(StringSerde),
            LongSerde,
        )
        .read_key_values_to_list()
        .unwrap()
    };
    let got = out(&disk);
    assert_eq!(got, out(&mem));
    assert!(
        got.iter().any(|(_, v)| v.is_none()),
        "sessions merged: {got:?}"
    );
    let sessions = |d: &TopologyTestDriver| {
        d.window_store::<String, i64>("sessions", StringSerde, LongSerde)
            .sessions()
            .unwrap()
    };
    assert_eq!(sessions(&disk), sessions(&mem));
    assert!(!sessions(&disk).is_empty());
    assert_eq!(disk.dropped_records(), mem.dropped_records());
    // The session store survives a checkpointed reopen.
    let before = sessions(&disk);
    disk.write_checkpoint("sessions", 0).unwrap();
    drop(disk);
    let again = session_count(
        Materialized::as_persistent_store("sessions"),
        Some(dir.path()),
    );
    assert_eq!(sessions(&again), before);
}
