//! Faults under load: an idempotent acks=all librdkafka producer writes to a replicated topic
//! while a seeded nemesis kills, pauses and restarts brokers; no acknowledged record is lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, TestDir};
use common::{python, repo_root, Rng};

const TOPIC: &str = "nemesis";
const FAULTS: usize = 20;

#[derive(Clone, Copy)]
enum Fault {
    /// `kill -9`, then a restart on the same data.
    Kill,
    /// SIGSTOP, then SIGCONT: the process keeps its sockets and answers nothing meanwhile.
    Pause,
    /// SIGTERM (a clean shutdown), then a restart.
    CleanRestart,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Kill => "kill -9 and restart",
            Fault::Pause => "SIGSTOP and SIGCONT",
            Fault::CleanRestart => "clean restart",
        })
    }
}

/// How many writes were acknowledged in each partition so far.
fn acked_per_partition(path: &Path) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(Ok(p)) = line.split(' ').next().map(str::parse) {
            *counts.entry(p).or_default() += 1;
        }
    }
    counts
}

/// Kills the producer if the test fails before stopping it.
struct ProducerGuard(Option<Child>);

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn no_acknowledged_record_is_lost_or_duplicated_under_kills_pauses_and_restarts() {
    // SLUICE_NEMESIS_SEED=<n> replays a run: the same faults on the same nodes in the same
    // order (the timing of the processes themselves is not replayed).
    let seed = std::env::var("SLUICE_NEMESIS_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("SLUICE_NEMESIS_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("nemesis seed {seed} (replay with SLUICE_NEMESIS_SEED={seed})");
    let mut rng = Rng::new(seed);

    let dir = TestDir::new();
    // Failure detection is quicker than Kafka's defaults (session 9 s, heartbeats every 2 s,
    // replica lag 30 s) so each fault is noticed, and recovered from, in seconds.
    let mut cluster = Cluster::start(
        dir.path(),
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "4000"),
        ],
    );
    let all: BTreeSet<i32> = cluster.ids().into_iter().collect();
    let bootstrap = cluster.bootstrap();
    cluster.create_topic(
        &bootstrap,
        TOPIC,
        &[
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    let healthy = |c: &mut Cluster, what: &str| {
        c.wait_for_partitions(TOPIC, 60, what, |parts| {
            parts.len() == 3
                && parts.iter().all(|p| {
                    p.leader.is_some() && p.isr.iter().copied().collect::<BTreeSet<_>>() == all
                })
        })
    };
    healthy(
        &mut cluster,
        "every partition led, with all three replicas in sync",
    );

    let acked = dir.path().join("acked.txt");
    let producer_log = dir.path().join("producer.log");
    let log = std::fs::File::create(&producer_log).unwrap();
    let mut producer = ProducerGuard(Some(
        Command::new("python3")
            .arg(repo_root().join("sluice/tests/clients/acks_all_producer.py"))
            .args(["--bootstrap", &bootstrap, "--topic", TOPIC])
            .arg("--out")
            .arg(&acked)
            .args(["--max-seconds", "600", "--rate", "300"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("python3 is installed by scripts/test"),
    ));
    let producer_output = || std::fs::read_to_string(&producer_log).unwrap_or_default();
    // Progress in every partition: an acks=all write is acknowledged only once every ISR member
    // has it, so new acknowledgements after a fault also show the restarted node caught up.
    let mut wait_progress = |cluster: &mut Cluster, what: &str| {
        let before = acked_per_partition(&acked);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = acked_per_partition(&acked);
            let behind: Vec<i32> = (0..3)
                .filter(|p| {
                    now.get(p).copied().unwrap_or(0) < before.get(p).copied().unwrap_or(0) + 20
                })
                .collect();
            if behind.is_empty() {
                return now.values().sum::<usize>();
            }
            let child = producer.0.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the producer exited with {status}:\n{}", producer_output());
            }
            if Instant::now() > deadline {
                panic!(
                    "no acknowledged writes to partitions {behind:?} for 60s {what}\n--- producer\n{}\n{}",
                    tail(&producer_output(), 30),
                    cluster.all_log_tails(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut acked_so_far = wait_progress(&mut cluster, "before the first fault");

    let mut controller_hits = 0;
    for n in 1..=FAULTS {
        let controller = cluster.active_controller();
        // Every third fault aims at the active controller; the rest pick any node, which may
        // be it too.
        let target = match controller {
            Some(c) if n % 3 == 1 => c,
            _ => cluster.ids()[rng.below(all.len())],
        };
        let fault = [Fault::Kill, Fault::Pause, Fault::CleanRestart][rng.below(3)];
        let hits_controller = controller == Some(target);
        controller_hits += usize::from(hits_controller);
        // Down for less or more than broker.session.timeout.ms: the controller fences the node
        // and moves its leaderships, or never notices and the node carries on.
        let down_ms = match fault {
            Fault::Kill => 200 + rng.below(5000),
            Fault::CleanRestart => 200 + rng.below(2000),
            Fault::Pause => 500 + rng.below(5500),
        } as u64;
        println!(
            "fault {n}/{FAULTS}: {fault} of node {target} for {down_ms} ms{} ({acked_so_far} acknowledged so far)",
            if hits_controller {
                ", the active controller".to_string()
            } else {
                format!(" (active controller: {controller:?})")
            }
        );
        match fault {
            Fault::Kill => cluster.kill9(target),
            Fault::Pause => cluster.pause(target),
            Fault::CleanRestart => cluster.stop(target),
        }
        std::thread::sleep(Duration::from_millis(down_ms));
        match fault {
            Fault::Kill | Fault::CleanRestart => cluster.restart(target),
            Fault::Pause => cluster.resume(target),
        }
        // One fault at a time: the node is registered again, writes flow to every partition,
        // and it is in every ISR before the next.
        let started = Instant::now();
        cluster.wait_for_brokers(60, &all);
        acked_so_far = wait_progress(&mut cluster, &format!("after fault {n}"));
        healthy(&mut cluster, &format!("recovery from fault {n}"));
        println!("  recovered in {:.1}s", started.elapsed().as_secs_f64());
    }

    let mut child = producer.0.take().unwrap();
    common::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    println!("--- producer\n{}", tail(&producer_output(), 30));
    assert!(status.success(), "producer exited with {status}");

    let out = python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            TOPIC,
            "--acked",
            acked.to_str().unwrap(),
            "--exactly-once",
            "--timeout",
            "120",
        ],
    );
    println!("{out}");
    assert!(
        out.contains("lost 0, duplicated 0, out of order 0"),
        "{out}"
    );
    assert!(
        controller_hits > 0,
        "no fault hit the active controller (seed {seed})"
    );
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
