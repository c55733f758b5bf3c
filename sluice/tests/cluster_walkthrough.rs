//! The three-broker walkthrough as a user types it: a replicated topic, `kill -9` of its leader,
//! a new leader, every message still readable, and the dead broker rejoining the ISR.

mod common;

use std::collections::BTreeSet;

use common::cluster::{Cluster, PartitionInfo, TestDir};

const TOPIC: &str = "my-replicated-topic";

fn stdout_of(what: &str, out: std::process::Output) -> String {
    common::check(what, out)
}

#[test]
fn kill_9_the_leader_of_a_replicated_topic_and_read_every_message() {
    let dir = TestDir::new();
    // The shipped config/server-1..3.properties on free ports. Only the failure detection is
    // made quicker than Kafka's defaults (broker.session.timeout.ms 9000, heartbeats every
    // 2000 ms) so the test waits seconds rather than tens of seconds for the controller to
    // notice the dead broker; nothing else is changed.
    let mut cluster = Cluster::start(
        dir.path(),
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    );
    let all: BTreeSet<i32> = cluster.ids().into_iter().collect();
    let bootstrap = cluster.bootstrap();

    let created = cluster.create_topic(
        &bootstrap,
        TOPIC,
        &["--replication-factor", "3", "--partitions", "1"],
    );
    assert!(
        created.contains(&format!("Created topic {TOPIC}.")),
        "{created}"
    );

    // Leader, Replicas and Isr: three replicas, all in sync once the followers have fetched.
    let parts = cluster.wait_for_partitions(TOPIC, 30, "all three replicas in the ISR", |p| {
        p[0].leader.is_some() && p[0].isr.iter().copied().collect::<BTreeSet<_>>() == all
    });
    println!("{}", describe_output(&cluster, &bootstrap));
    assert_eq!(parts.len(), 1);
    let PartitionInfo {
        leader, replicas, ..
    } = parts[0].clone();
    let leader = leader.unwrap();
    assert_eq!(replicas.iter().copied().collect::<BTreeSet<_>>(), all);

    // console-producer waits for acks=all by default, so once it exits every message is on
    // all three brokers.
    let messages: Vec<String> = (1..=50).map(|i| format!("my test message {i}")).collect();
    let input = messages.join("\n") + "\n";
    stdout_of(
        "console-producer",
        cluster.sluice(
            &[
                "console-producer",
                "--broker-list",
                &bootstrap,
                "--topic",
                TOPIC,
            ],
            Some(input.as_bytes()),
            60,
        ),
    );

    println!(
        "kill -9 {} (node {leader}, the leader)",
        cluster.pid(leader).unwrap()
    );
    cluster.kill9(leader);
    let survivors: BTreeSet<i32> = all.iter().copied().filter(|&id| id != leader).collect();
    let parts = cluster.wait_for_partitions(
        TOPIC,
        30,
        "a new leader and an ISR without the dead broker",
        |p| {
            p[0].leader.is_some_and(|l| l != leader)
                && p[0].isr.iter().copied().collect::<BTreeSet<_>>() == survivors
        },
    );
    println!("{}", describe_output(&cluster, &cluster.bootstrap()));
    // Replicas still names the dead broker: it holds a copy, alive or not.
    assert_eq!(parts[0].replicas, replicas);

    // The user's bootstrap list still names the dead broker; the tools must get by without it.
    let consumed = stdout_of(
        "console-consumer",
        cluster.sluice(
            &[
                "console-consumer",
                "--bootstrap-server",
                &bootstrap,
                "--from-beginning",
                "--topic",
                TOPIC,
                "--max-messages",
                &messages.len().to_string(),
                "--timeout-ms",
                "20000",
            ],
            None,
            60,
        ),
    );
    let read: Vec<&str> = consumed.lines().collect();
    assert_eq!(read, messages, "every message, in order");

    cluster.restart(leader);
    let parts = cluster.wait_for_partitions(
        TOPIC,
        45,
        "the restarted broker to catch up and rejoin the ISR",
        |p| p[0].leader.is_some() && p[0].isr.iter().copied().collect::<BTreeSet<_>>() == all,
    );
    println!("{}", describe_output(&cluster, &bootstrap));
    assert_eq!(parts[0].replicas, replicas);
}

/// What the user sees from `sluice topics --describe`.
fn describe_output(cluster: &Cluster, bootstrap: &str) -> String {
    stdout_of(
        "topics --describe",
        cluster.sluice(
            &[
                "topics",
                "--describe",
                "--bootstrap-server",
                bootstrap,
                "--topic",
                TOPIC,
            ],
            None,
            30,
        ),
    )
}
