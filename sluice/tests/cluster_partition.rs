//! A network partition in a three-node cluster: the broker cut off from the others leaves the
//! ISR, a new leader takes over from a cut-off leader, nothing acknowledged is lost, and it rejoins.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::cluster::{Addressing, Cluster};
use common::fault_proxy::{FaultProxy, Isolation};
use common::{python, repo_root};

const TOPIC: &str = "partitioned";

/// Kills the producer if the test ends early.
struct ProducerGuard(Option<Child>);

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn acked_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Partition 0 of the topic as node `observer` sees it, asked on its own port (not through
/// its proxy, so an isolated node can be asked too): (leader, ISR).
fn seen_by(cluster: &Cluster, observer: i32) -> Option<(i32, BTreeSet<i32>)> {
    let metadata = cluster.metadata(observer, &[TOPIC])?;
    let partition = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(TOPIC))?
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)?
        .clone();
    Some((
        partition.leader_id,
        partition.isr_nodes.into_iter().collect(),
    ))
}

/// Waits until every node other than `isolated` sees a partition state for which `cond` holds,
/// and returns it; panics after `secs` with what they saw and the nodes' logs.
fn wait_state(
    cluster: &mut Cluster,
    isolated: Option<i32>,
    secs: u64,
    what: &str,
    cond: impl Fn(i32, &BTreeSet<i32>) -> bool,
) -> (i32, BTreeSet<i32>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let views: Vec<Option<(i32, BTreeSet<i32>)>> = cluster
            .ids()
            .into_iter()
            .filter(|&id| Some(id) != isolated)
            .map(|id| seen_by(cluster, id))
            .collect();
        if let Some(Some(first)) = views.first() {
            if views.iter().all(|v| v.as_ref() == Some(first)) && cond(first.0, &first.1) {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}; the other nodes see {views:?}\n{}",
            cluster.all_log_tails(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the producer has `more` acknowledgements beyond `before`.
fn wait_acks(cluster: &Cluster, acked: &Path, before: usize, more: usize, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while acked_count(acked) < before + more {
        assert!(
            Instant::now() < deadline,
            "{what}: the producer got {} acknowledgements in {secs}s, expected {more}\n{}",
            acked_count(acked) - before,
            cluster.all_log_tails(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `topics --describe` as a user would type it against the nodes still reachable.
fn describe(cluster: &Cluster, bootstrap: &str) -> String {
    let out = cluster.sluice(
        &[
            "topics",
            "--describe",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            TOPIC,
        ],
        None,
        20,
    );
    let text = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    if out.status.success() {
        text
    } else {
        format!(
            "describe failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

#[test]
fn an_isolated_broker_leaves_the_isr_loses_nothing_acknowledged_and_rejoins() {
    let start = Instant::now();
    let t = || format!("[{:5.1}s]", start.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();

    // Every node advertises a proxy in front of its PLAINTEXT port and is known to the quorum
    // by a proxy in front of its CONTROLLER port; the proxies share one Isolation.
    let isolation = Isolation::new();
    let proxies: Rc<RefCell<Vec<FaultProxy>>> = Rc::default();
    let (advertised_proxies, voter_proxies) = (proxies.clone(), proxies.clone());
    let (advertised_isolation, voter_isolation) = (isolation.clone(), isolation.clone());
    // One controller proxy per node, whichever node's voter list names it.
    let mut voter_addrs: BTreeMap<SocketAddr, SocketAddr> = BTreeMap::new();
    let addressing = Addressing {
        advertised: Box::new(move |id, bound| {
            let proxy = FaultProxy::start_isolating(bound, id, &advertised_isolation);
            let addr = proxy.addr;
            advertised_proxies.borrow_mut().push(proxy);
            addr
        }),
        voter: Box::new(move |_viewer, voter, bound| {
            *voter_addrs.entry(bound).or_insert_with(|| {
                let proxy = FaultProxy::start_isolating(bound, voter, &voter_isolation);
                let addr = proxy.addr;
                voter_proxies.borrow_mut().push(proxy);
                addr
            })
        }),
    };
    // Failure detection quicker than Kafka's defaults (broker.session.timeout.ms 9000,
    // heartbeats every 2000 ms, replica.lag.time.max.ms 30000) so each step takes seconds.
    let mut cluster = Cluster::start_with(
        dir.path(),
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "3000"),
        ],
        Some(addressing),
    );
    for id in cluster.ids() {
        isolation.set_pid(id, cluster.pid(id).unwrap());
    }
    let all: BTreeSet<i32> = cluster.ids().into_iter().collect();
    let bootstrap = cluster.bootstrap();
    let bootstrap_without = |cluster: &Cluster, isolated: i32| {
        cluster
            .bootstrap()
            .split(',')
            .zip(cluster.ids())
            .filter(|(_, id)| *id != isolated)
            .map(|(addr, _)| addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{} cluster up, every node behind its proxies: {bootstrap}",
        t()
    );

    cluster.create_topic(
        &bootstrap,
        TOPIC,
        &[
            "--partitions",
            "1",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    let (leader, _) = wait_state(
        &mut cluster,
        None,
        30,
        "three replicas in sync",
        |l, isr| l >= 0 && *isr == all,
    );
    println!(
        "{} created {TOPIC}:\n{}",
        t(),
        describe(&cluster, &bootstrap)
    );

    let acked = dir.path().join("acked.txt");
    let producer_log = dir.path().join("producer.log");
    let log = std::fs::File::create(&producer_log).unwrap();
    // Requests stuck on a blackholed broker time out after 5 s instead of librdkafka's 30 s
    // (produce) and 60 s (metadata and the rest: socket.timeout.ms), and metadata is refreshed
    // every second, so the producer finds the new leader in seconds rather than a minute.
    let mut producer = ProducerGuard(Some(
        Command::new("python3")
            .arg(repo_root().join("sluice/tests/clients/acks_all_producer.py"))
            .args(["--bootstrap", &bootstrap, "--topic", TOPIC])
            .arg("--out")
            .arg(&acked)
            .args(["--max-seconds", "150", "--rate", "200"])
            .args(["-X", "request.timeout.ms=5000"])
            .args(["-X", "socket.timeout.ms=5000"])
            .args(["-X", "topic.metadata.refresh.interval.ms=1000"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("python3 is installed by scripts/test"),
    ));
    wait_acks(&cluster, &acked, 0, 200, 30, "before any fault");
    println!("{} producing: {} acknowledged", t(), acked_count(&acked));

    // Step 1: a follower (not the active controller, so the quorum keeps its leader) is cut off.
    let controller = cluster.active_controller();
    let follower = *all
        .iter()
        .filter(|&&id| id != leader)
        .find(|&&id| Some(id) != controller)
        .unwrap_or_else(|| all.iter().find(|&&id| id != leader).unwrap());
    isolation.isolate(follower);
    let cut_at = Instant::now();
    println!(
        "{} isolated follower {follower} (leader {leader}, active controller {controller:?})",
        t()
    );
    let (l, isr) = wait_state(
        &mut cluster,
        Some(follower),
        30,
        "the isolated follower to leave the ISR",
        |_, isr| !isr.contains(&follower),
    );
    println!(
        "{} node {follower} left the ISR after {:.1}s: leader {l}, ISR {isr:?}; node {follower} itself sees {:?}\n{}",
        t(),
        cut_at.elapsed().as_secs_f64(),
        seen_by(&cluster, follower),
        describe(&cluster, &bootstrap_without(&cluster, follower))
    );
    assert_eq!(l, leader, "cutting off a follower must not move leadership");
    let before = acked_count(&acked);
    wait_acks(&cluster, &acked, before, 200, 30, "with a follower cut off");
    println!(
        "{} production continues without node {follower}: {} acknowledged",
        t(),
        acked_count(&acked)
    );

    isolation.heal();
    let healed_at = Instant::now();
    wait_state(
        &mut cluster,
        None,
        30,
        "the healed follower to rejoin the ISR",
        |_, isr| *isr == all,
    );
    println!(
        "{} healed: node {follower} back in the ISR after {:.1}s",
        t(),
        healed_at.elapsed().as_secs_f64()
    );

    // Step 2: the leader is cut off. The others elect a new leader from the ISR; the old one
    // can no longer reach anybody, so it cannot acknowledge anything meanwhile.
    let before = acked_count(&acked);
    isolation.isolate(leader);
    let cut_at = Instant::now();
    println!(
        "{} isolated leader {leader} (active controller {:?}), {before} acknowledged so far",
        t(),
        cluster.active_controller()
    );
    let (new_leader, isr) = wait_state(
        &mut cluster,
        Some(leader),
        30,
        "a new leader among the connected nodes",
        |l, _| l >= 0 && l != leader,
    );
    println!(
        "{} node {new_leader} leads after {:.1}s, ISR {isr:?}; node {leader} itself sees {:?}\n{}",
        t(),
        cut_at.elapsed().as_secs_f64(),
        seen_by(&cluster, leader),
        describe(&cluster, &bootstrap_without(&cluster, leader))
    );
    assert!(
        !isr.contains(&leader),
        "the cut-off leader is still in the ISR: {isr:?}"
    );
    let at_election = acked_count(&acked);
    wait_acks(
        &cluster,
        &acked,
        at_election,
        200,
        40,
        "after the leader was cut off",
    );
    println!(
        "{} production continues on node {new_leader}: {} acknowledged ({} between the cut and the election)",
        t(),
        acked_count(&acked),
        at_election - before
    );

    // Step 3: heal; the old leader learns it was deposed, truncates what it never got
    // acknowledged, and catches up.
    isolation.heal();
    let healed_at = Instant::now();
    wait_state(
        &mut cluster,
        None,
        30,
        "the old leader to rejoin the ISR",
        |_, isr| *isr == all,
    );
    println!(
        "{} healed: node {leader} back in the ISR after {:.1}s\n{}",
        t(),
        healed_at.elapsed().as_secs_f64(),
        describe(&cluster, &bootstrap)
    );
    let before = acked_count(&acked);
    wait_acks(&cluster, &acked, before, 100, 30, "after healing");

    let mut child = producer.0.take().unwrap();
    common::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let producer_out = std::fs::read_to_string(&producer_log).unwrap_or_default();
    assert!(
        status.success(),
        "producer exited with {status}:\n{producer_out}"
    );
    println!(
        "{} producer: {}",
        t(),
        producer_out
            .lines()
            .rfind(|l| l.starts_with("OK"))
            .unwrap_or_default()
    );
    let out = python(
        "verify_acked.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            TOPIC,
            "--acked",
            acked.to_str().unwrap(),
        ],
    );
    println!("{out}");
    assert!(out.contains("OK verify_acked"), "{out}");
    println!("{} done", t());
    drop(cluster);
    drop(proxies);
}
