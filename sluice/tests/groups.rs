//! Consumer groups driven by real clients against the real binary: membership changes (close,
//! kill -9, join), committed offsets across a broker crash, and the same with kafka-python and
//! `kcat -G`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::{kcat, python, signal, wait_until, BrokerProcess};

/// Runs the close / kill -9 / join scenario with one assignment strategy.
fn members_through_close_crash_and_join(strategy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let work = dir.path().join("members");
    std::fs::create_dir_all(&work).unwrap();
    let out = python(
        "confluent_group.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--workdir",
            work.to_str().unwrap(),
            "--strategy",
            strategy,
        ],
    );
    assert!(out.contains(&format!("OK {strategy}")), "{out}");
    // The kill -9 was noticed by the session timeout, not by anything else.
    assert!(
        !common::log_lines(&broker, "session expired").is_empty(),
        "{}",
        broker.log()
    );
}

#[test]
fn confluent_members_share_partitions_through_close_crash_and_join() {
    members_through_close_crash_and_join("range");
}

/// Cooperative rebalancing is the clients' business (KIP-429): the broker sees one more
/// protocol name and more generations, and the same rules must hold.
#[test]
fn cooperative_sticky_members_share_partitions_through_close_crash_and_join() {
    members_through_close_crash_and_join("cooperative-sticky");
}

#[test]
fn committed_offsets_survive_a_broker_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let committed = python(
        "group_offsets_restart.py",
        &["commit", "--bootstrap", &broker.bootstrap()],
    );
    broker.kill9();
    broker.restart();
    let out = python(
        "group_offsets_restart.py",
        &[
            "verify",
            "--bootstrap",
            &broker.bootstrap(),
            "--expected",
            committed.trim(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn kafka_python_group_splits_and_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let out = python(
        "kafkapython_group.py",
        &["--bootstrap", &broker.bootstrap()],
    );
    assert!(out.contains("OK"), "{out}");
}

/// Parses kcat `-f '%p %o\n'` output into (partition, offset) pairs.
fn positions(out: &[u8]) -> Vec<(i32, i64)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let (p, o) = l.split_once(' ')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

#[test]
fn kcat_balanced_consumers_split_partitions_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        dir.path(),
        &[
            ("num.partitions", "6"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let b = broker.bootstrap();
    // A metadata request creates the (empty) topic, so both members subscribe to 6 partitions.
    kcat(&["-b", &b, "-L", "-t", "logs"], None);
    let spawn_member = |name: &str| {
        let out = std::fs::File::create(dir.path().join(name)).unwrap();
        Command::new("kcat")
            .args([
                "-b",
                &b,
                "-G",
                "log-readers",
                "logs",
                "-q",
                "-u",
                "-f",
                "%p %o\n",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
                // Not `-o beginning`: with -G, kcat applies -o to every assignment and would
                // ignore the group's committed offsets.
                "-X",
                "auto.offset.reset=earliest",
            ])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("kcat is installed by scripts/test")
    };
    let read = |name: &str| positions(&std::fs::read(dir.path().join(name)).unwrap_or_default());
    let mut first = spawn_member("first.out");
    let mut second = spawn_member("second.out");
    // Records are produced once both are members, so each reads its own half.
    wait_until(60, "a generation with both kcat members", || {
        !common::log_lines(&broker, "members=2").is_empty()
    });
    let lines: String = (0..600).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat(
        &["-b", &b, "-P", "-t", "logs", "-K", ":"],
        Some(lines.as_bytes()),
    );
    wait_until(60, "both kcat members to read all 600 records", || {
        read("first.out").len() + read("second.out").len() >= 600
    });
    // SIGTERM: kcat closes its consumer, which commits and leaves the group.
    for child in [&mut first, &mut second] {
        signal(child.id(), "TERM");
        child.wait().unwrap();
    }
    let (a, b_read) = (read("first.out"), read("second.out"));
    let parts = |v: &[(i32, i64)]| v.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>();
    // Both were members before anything was produced: each read only its own partitions.
    let all: Vec<(i32, i64)> = a.iter().chain(&b_read).copied().collect();
    let unique: BTreeSet<(i32, i64)> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "records read twice");
    assert_eq!(unique.len(), 600);
    let per_partition: BTreeMap<i32, usize> =
        unique.iter().fold(BTreeMap::new(), |mut m, (p, _)| {
            *m.entry(*p).or_default() += 1;
            m
        });
    assert_eq!(per_partition.len(), 6, "{per_partition:?}");
    assert!(
        !parts(&a).is_empty() && !parts(&b_read).is_empty(),
        "both members read"
    );
    assert!(
        parts(&a).is_disjoint(&parts(&b_read)),
        "a partition read by both: {:?} {:?}",
        parts(&a),
        parts(&b_read)
    );

    // A new member of the same group starts where the others committed: only new records.
    let more: String = (600..630).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat(
        &["-b", &b, "-P", "-t", "logs", "-K", ":"],
        Some(more.as_bytes()),
    );
    let out = kcat(
        &[
            "-b",
            &b,
            "-G",
            "log-readers",
            "logs",
            "-X",
            "auto.offset.reset=earliest",
            "-q",
            "-e",
            "-f",
            "%s\n",
        ],
        None,
    );
    let mut values: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect();
    values.sort();
    let mut expected: Vec<String> = (600..630).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
}

#[test]
fn static_member_restarted_within_its_session_keeps_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let work = dir.path().join("members");
    std::fs::create_dir_all(&work).unwrap();
    let out = python(
        "confluent_static.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--workdir",
            work.to_str().unwrap(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
    // One generation only: the restart did not rebalance the group.
    assert_eq!(
        common::log_lines(&broker, "rebalance: new generation").len(),
        1,
        "{}",
        broker.log()
    );
}
