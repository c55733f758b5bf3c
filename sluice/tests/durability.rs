//! Crashes and retention with real clients: `kill -9` under a steady acks=all producer loses no
//! acknowledged record, and retention deletes old segments so a consumer at a deleted offset
//! gets OFFSET_OUT_OF_RANGE and resets by its policy.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{kcat, list_offset, python, repo_root, wait_until, BrokerProcess};

#[test]
fn kill_9_during_acks_all_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        dir.path(),
        &[("num.partitions", "3"), ("log.segment.bytes", "65536")],
    );
    let acked = dir.path().join("acked.txt");
    let acked_lines = || {
        std::fs::read_to_string(&acked)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let mut producer = Command::new("python3")
        .arg(repo_root().join("sluice/tests/clients/acks_all_producer.py"))
        .args(["--bootstrap", &broker.bootstrap(), "--topic", "crash"])
        .arg("--out")
        .arg(&acked)
        .args(["--max-seconds", "120", "--rate", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for round in 0..3 {
        let before = acked_lines();
        wait_until(60, "the producer to make progress", || {
            acked_lines() > before + 500
        });
        broker.kill9();
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        broker.restart();
    }
    let before = acked_lines();
    wait_until(60, "the producer to resume after the last restart", || {
        acked_lines() > before + 500
    });
    common::signal(producer.id(), "TERM");
    let status = producer.wait().unwrap();
    assert!(status.success(), "producer exited with {status}");
    let out = python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "crash",
            "--acked",
            acked.to_str().unwrap(),
        ],
    );
    println!("{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn retention_deletes_old_segments_and_consumers_reset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        dir.path(),
        &[
            ("log.segment.bytes", "4096"),
            ("log.retention.ms", "2000"),
            ("log.retention.check.interval.ms", "300"),
        ],
    );
    let b = broker.bootstrap();
    let lines: String = (0..2000)
        .map(|i| format!("record-{i:05}-{}\n", "r".repeat(40)))
        .collect();
    kcat(
        &[
            "-b",
            &b,
            "-t",
            "old",
            "-P",
            "-X",
            "linger.ms=0",
            "-X",
            "batch.num.messages=50",
        ],
        Some(lines.as_bytes()),
    );
    assert_eq!(list_offset(&broker, "old", 0, -2), 0);
    let partition_dir = dir.path().join("logs/old-0");
    let segments = || {
        std::fs::read_dir(&partition_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    };
    assert!(
        segments() > 5,
        "expected many small segments, got {}",
        segments()
    );
    // Once every record is older than retention.ms, all but the active segment go.
    wait_until(30, "retention to delete old segments", || {
        list_offset(&broker, "old", 0, -2) > 0 && segments() == 1
    });
    let earliest = list_offset(&broker, "old", 0, -2);
    let latest = list_offset(&broker, "old", 0, -1);
    assert_eq!(latest, 2000);
    assert!(earliest > 0 && earliest < latest, "earliest {earliest}");
    let out = python(
        "offset_reset.py",
        &[
            "--bootstrap",
            &b,
            "--topic",
            "old",
            "--start-offset",
            "0",
            "--expect-first",
            &earliest.to_string(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
}
