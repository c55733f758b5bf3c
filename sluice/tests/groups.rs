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

/// `sluice console-consumer --group` members (the Sluice client's group membership) as
/// separate processes: three share six partitions, one is closed, one is killed -9.
#[test]
fn sluice_console_consumers_share_partitions_through_close_and_crash() {
    use std::collections::BTreeMap;

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]);
    let b = broker.bootstrap();
    let sluice = |args: &[&str], input: &[u8]| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        assert!(child.wait().unwrap().success(), "sluice {args:?}");
    };
    sluice(
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "6",
        ],
        b"",
    );
    let member = |name: &str| {
        let out = std::fs::File::create(dir.path().join(name)).unwrap();
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "console-consumer",
                "--bootstrap-server",
                &b,
                "--topic",
                "orders",
                "--group",
                "order-readers",
                "--from-beginning",
                "--property",
                "print.partition=true",
                "--property",
                "print.offset=true",
                "--consumer-property",
                "session.timeout.ms=6000",
                "--consumer-property",
                "heartbeat.interval.ms=500",
                "--consumer-property",
                "auto.commit.interval.ms=200",
            ])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // "Partition:P\tOffset:O\tvalue" lines of one member.
    let read = |name: &str| -> Vec<(i32, i64, String)> {
        String::from_utf8_lossy(&std::fs::read(dir.path().join(name)).unwrap_or_default())
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let p = f.next()?.strip_prefix("Partition:")?.parse().ok()?;
                let o = f.next()?.strip_prefix("Offset:")?.parse().ok()?;
                Some((p, o, f.next()?.to_string()))
            })
            .collect()
    };
    let names = ["a.out", "b.out", "c.out"];
    let all_values = || -> BTreeSet<String> {
        names
            .iter()
            .flat_map(|n| read(n))
            .map(|(_, _, v)| v)
            .collect()
    };
    let produce = |from: usize, to: usize| {
        let lines: String = (from..to).map(|i| format!("k{i}:v{i}\n")).collect();
        sluice(
            &[
                "console-producer",
                "--bootstrap-server",
                &b,
                "--topic",
                "orders",
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=:",
            ],
            lines.as_bytes(),
        );
    };
    let generations = || common::log_lines(&broker, "rebalance: new generation").len();

    let mut a = member("a.out");
    let mut bm = member("b.out");
    let mut c = member("c.out");
    wait_until(60, "a generation with three members", || {
        !common::log_lines(&broker, "members=3").is_empty()
    });
    produce(0, 3000);
    wait_until(60, "the three members to read 3000 records", || {
        all_values().len() >= 3000
    });
    // All three were members before anything was produced: the partitions split three ways.
    let owners: Vec<BTreeSet<i32>> = names
        .iter()
        .map(|n| read(n).iter().map(|(p, _, _)| *p).collect())
        .collect();
    assert!(owners.iter().all(|o| o.len() == 2), "{owners:?}");
    assert_eq!(owners.iter().flatten().collect::<BTreeSet<_>>().len(), 6);

    signal(c.id(), "TERM");
    assert!(c.wait().unwrap().success());
    let before = generations();
    wait_until(30, "a rebalance after c left", || generations() > before);
    produce(3000, 6000);
    wait_until(60, "a and b to read 6000 records", || {
        all_values().len() >= 6000
    });

    let _ = bm.kill();
    bm.wait().unwrap();
    wait_until(30, "b's session to expire", || {
        !common::log_lines(&broker, "session expired").is_empty()
    });
    produce(6000, 9000);
    wait_until(60, "a alone to read 9000 records", || {
        all_values().len() >= 9000
    });
    signal(a.id(), "TERM");
    assert!(a.wait().unwrap().success());

    let expected: BTreeSet<String> = (0..9000).map(|i| format!("v{i}")).collect();
    assert_eq!(all_values(), expected);
    // No offset skipped in any partition, whoever read it.
    let mut per_partition: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (p, o, _) in names.iter().flat_map(|n| read(n)) {
        per_partition.entry(p).or_default().insert(o);
    }
    for (p, offsets) in per_partition {
        let last = *offsets.iter().next_back().unwrap();
        assert_eq!(offsets.len() as i64, last + 1, "partition {p} has a gap");
    }
}
