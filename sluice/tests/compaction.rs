//! Log compaction through the real binary and a real client: a compacted topic shrinks to the
//! latest value per key with offsets unchanged; tombstones live for delete.retention.ms.

mod common;

use common::{python, BrokerProcess};

#[test]
fn compacted_topics_keep_the_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[("log.cleaner.backoff.ms", "200")]);
    let out = python("compaction.py", &["--bootstrap", &broker.bootstrap()]);
    assert!(out.contains("OK"), "{out}");
    assert!(
        out.contains("prices-keep-tombstones: 2010 records compacted to 100 (10 tombstones)"),
        "{out}"
    );
    assert!(
        out.contains("prices-drop-tombstones: 2010 records compacted to 90 (0 tombstones)"),
        "{out}"
    );
}
