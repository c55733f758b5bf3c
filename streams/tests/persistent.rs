//! The persistent key-value store through `TopologyTestDriver`: state kept on disk across a
//! restart, restored from the changelog only past its checkpoint.

use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, StreamsBuilder, TaskConfig, TopologyTestDriver,
};

fn s(v: &str) -> String {
    v.to_string()
}

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
    assert_eq!(log.len(), 3);
    // The runtime checkpoints once the changelog up to offset 2 is acknowledged and committed.
    first.write_checkpoint("counts", 2).unwrap();
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
    assert_eq!(second.checkpointed_offset("counts").unwrap(), Some(2));
    assert_eq!(store.get(&s("a")).unwrap(), Some(2));
    assert_eq!(store.get(&s("b")).unwrap(), Some(1));
    // Only the changelog after the checkpoint is replayed.
    assert_eq!(second.restore_store("counts", log.split_off(3)).unwrap(), 1);
    assert_eq!(store.get(&s("b")).unwrap(), Some(2));
    line(&second, "a b", 30);
    let out = second.create_output_topic::<String, i64>("out", StringSerde, LongSerde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("a"), 3), (s("b"), 3)]
    );
    // A checkpointed store comes back whole with no restore at all. (Topic and store views
    // share the driver, so they go too.)
    second.write_checkpoint("counts", 5).unwrap();
    drop((second, store, out));
    let third = word_count(dir.path());
    assert_eq!(third.checkpointed_offset("counts").unwrap(), Some(5));
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
