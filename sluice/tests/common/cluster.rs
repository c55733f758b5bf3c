//! `Cluster`: n `sluice server` child processes forming one cluster of combined nodes on loopback
//! ports, and the faults tests inflict on them (kill -9, SIGTERM, SIGSTOP/SIGCONT, restart).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{repo_root, signal};

/// How long a whole cluster may take to start and agree on its members.
const START_SECS: u64 = 60;

/// Who reaches whom at which address, for tests that put proxies between nodes. Each hook gets
/// the address a node binds and returns the one others are told to use; called again for new
/// ports when the cluster has to start over.
pub struct Addressing {
    /// The PLAINTEXT address node `id` advertises to clients and to the other brokers' replica
    /// fetchers: `advertised(id, bound)`.
    pub advertised: Box<dyn FnMut(i32, SocketAddr) -> SocketAddr>,
    /// The address node `viewer` has in its controller.quorum.voters for voter `voter`:
    /// `voter(viewer, voter, bound)`. Per viewer, so one node's links can be cut alone.
    pub voter: Box<dyn FnMut(i32, i32, SocketAddr) -> SocketAddr>,
}

/// One partition as `sluice topics --describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `None` when describe prints `Leader: none`.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

struct Node {
    broker_port: u16,
    advertised: SocketAddr,
    config: PathBuf,
    log_file: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    nodes: BTreeMap<i32, Node>,
}

/// Ports that were free a moment ago, all held at once so none is handed out twice.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The shipped `config/server-<id>.properties` (or server-1's for ids past the shipped files)
/// with only what sharing the machine requires replaced, then `extra` applied: so the cluster
/// runs with what users run, and a change to the shipped files is tested here too.
fn node_properties(id: i32, settings: &[(String, String)], extra: &[(String, String)]) -> String {
    let root = repo_root().join("config");
    let shipped = root.join(format!("server-{id}.properties"));
    let base = std::fs::read_to_string(if shipped.exists() {
        shipped
    } else {
        root.join("server-1.properties")
    })
    .expect("the shipped config/server-N.properties");
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for (key, value) in settings.iter().chain(extra) {
        let setting = format!("{key}={value}");
        // A key set twice would leave which value wins to the parser.
        match lines.iter_mut().find(|l| l.starts_with(&format!("{key}="))) {
            Some(line) => *line = setting,
            None => lines.push(setting),
        }
    }
    lines.join("\n") + "\n"
}

impl Cluster {
    /// Nodes 1..=n, each in `dir/node-<id>` (config, logs, server.log), with `extra` properties
    /// on top of the shipped files; returns once every node lists all n brokers in Metadata.
    pub fn start(dir: &Path, n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_with(dir, n, extra, None)
    }

    /// As `start`, with advertised and voter addresses chosen by `addressing`.
    pub fn start_with(
        dir: &Path,
        n: usize,
        extra: &[(&str, &str)],
        mut addressing: Option<Addressing>,
    ) -> Cluster {
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for attempt in 1.. {
            match Cluster::try_start(dir, n, &extra, addressing.as_mut()) {
                Ok(cluster) => return cluster,
                Err(why) if attempt < 4 => {
                    eprintln!("cluster start failed ({why}); starting over on other ports");
                }
                Err(why) => panic!("cluster start failed {attempt} times: {why}"),
            }
        }
        unreachable!()
    }

    /// Err when a node could not bind a port chosen for it (someone else took it meanwhile);
    /// any other start-up failure panics with the node's log.
    fn try_start(
        dir: &Path,
        n: usize,
        extra: &[(String, String)],
        mut addressing: Option<&mut Addressing>,
    ) -> Result<Cluster, String> {
        let ports = free_ports(2 * n);
        let ids: Vec<i32> = (1..=n as i32).collect();
        let broker_port = |id: i32| ports[2 * (id as usize - 1)];
        let controller_port = |id: i32| ports[2 * (id as usize - 1) + 1];
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
        };
        for &id in &ids {
            let node_dir = dir.join(format!("node-{id}"));
            // A previous attempt's logs and metadata belong to a cluster on other ports.
            let _ = std::fs::remove_dir_all(&node_dir);
            std::fs::create_dir_all(&node_dir).unwrap();
            let advertised = match addressing.as_deref_mut() {
                Some(a) => (a.advertised)(id, loopback(broker_port(id))),
                None => loopback(broker_port(id)),
            };
            let voters: Vec<String> = ids
                .iter()
                .map(|&v| {
                    let addr = match addressing.as_deref_mut() {
                        Some(a) => (a.voter)(id, v, loopback(controller_port(v))),
                        None => loopback(controller_port(v)),
                    };
                    format!("{v}@{addr}")
                })
                .collect();
            let settings = [
                ("node.id", id.to_string()),
                ("controller.quorum.voters", voters.join(",")),
                (
                    "listeners",
                    format!(
                        "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                        broker_port(id),
                        controller_port(id)
                    ),
                ),
                ("advertised.listeners", format!("PLAINTEXT://{advertised}")),
                ("log.dirs", node_dir.join("logs").display().to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v));
            let config = node_dir.join("server.properties");
            std::fs::write(&config, node_properties(id, &settings, extra)).unwrap();
            let mut node = Node {
                broker_port: broker_port(id),
                advertised,
                config,
                log_file: node_dir.join("server.log"),
                child: None,
                paused: false,
            };
            node.spawn();
            cluster.nodes.insert(id, node);
        }
        for id in ids {
            cluster.wait_listening(id)?;
        }
        let all: BTreeSet<i32> = cluster.nodes.keys().copied().collect();
        cluster.wait_for_brokers(START_SECS, &all);
        Ok(cluster)
    }

    /// Waits until node `id` accepts connections on its PLAINTEXT port. Err if it exited
    /// because a port was taken; panics with its log for any other exit.
    fn wait_listening(&mut self, id: i32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(START_SECS);
        let port = self.nodes[&id].broker_port;
        while TcpStream::connect(loopback(port)).is_err() {
            let node = self.nodes.get_mut(&id).unwrap();
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                node.child = None;
                let log = node.log();
                if log.contains("in use") {
                    return Err(format!("node {id} could not bind a port"));
                }
                panic!("node {id} exited with {status} during start-up:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not listen in {START_SECS}s:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    /// The nodes running and not paused.
    pub fn live_ids(&mut self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|&id| self.is_live(id))
            .collect()
    }

    /// Every node's advertised address, comma-separated: what a user passes as
    /// --bootstrap-server.
    pub fn bootstrap(&self) -> String {
        self.join_addresses(self.nodes.values())
    }

    /// The advertised addresses of the nodes that are running and not paused, for tools that
    /// must answer while a fault is in force (a paused node accepts connections and never
    /// replies, which would only cost a tool its timeout).
    pub fn live_bootstrap(&mut self) -> String {
        let live = self.live_ids();
        self.join_addresses(live.iter().map(|id| &self.nodes[id]))
    }

    fn join_addresses<'a>(&self, nodes: impl Iterator<Item = &'a Node>) -> String {
        nodes
            .map(|n| n.advertised.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The address node `id` binds for clients (not what it advertises).
    pub fn bound_address(&self, id: i32) -> SocketAddr {
        loopback(self.nodes[&id].broker_port)
    }

    pub fn pid(&self, id: i32) -> Option<u32> {
        self.nodes[&id].child.as_ref().map(Child::id)
    }

    /// Whether node `id`'s process exists (paused or not).
    pub fn is_running(&mut self, id: i32) -> bool {
        let node = self.nodes.get_mut(&id).unwrap();
        match node.child.as_mut() {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn is_paused(&self, id: i32) -> bool {
        self.nodes[&id].paused
    }

    /// Running and not paused: able to answer.
    pub fn is_live(&mut self, id: i32) -> bool {
        self.is_running(id) && !self.is_paused(id)
    }

    /// SIGKILL: the crash path.
    pub fn kill9(&mut self, id: i32) {
        self.nodes.get_mut(&id).unwrap().kill9();
    }

    /// SIGTERM and wait: the clean shutdown path, which must end in exit status 0.
    pub fn stop(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        if node.paused {
            node.resume();
        }
        let Some(mut child) = node.child.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} did not shut down in 60s after SIGTERM:\n{}",
                    node.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "node {id} exited with {status} after SIGTERM:\n{}",
            node.log_tail(60)
        );
    }

    /// Starts a stopped or killed node again with the same config and data, and waits until it
    /// listens (not until it has rejoined: callers wait for what they need).
    pub fn restart(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        assert!(
            !node.is_running(),
            "stop or kill node {id} before restarting it"
        );
        node.spawn();
        if let Err(why) = self.wait_listening(id) {
            panic!("restarting node {id}: {why}")
        }
    }

    /// SIGSTOP: the process stays, holding its sockets and answering nothing, as a long GC
    /// pause or a stalled VM would.
    pub fn pause(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        let pid = node.child.as_ref().expect("node running").id();
        signal(pid, "STOP");
        node.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: i32) {
        self.nodes.get_mut(&id).unwrap().resume();
    }

    /// Everything node `id` has logged across its runs.
    pub fn logs(&self, id: i32) -> String {
        self.nodes[&id].log()
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: i32, lines: usize) -> String {
        self.nodes[&id].log_tail(lines)
    }

    /// The tails of every node's log, for a failure message.
    pub fn all_log_tails(&self, lines: usize) -> String {
        self.nodes
            .keys()
            .map(|&id| format!("--- node {id}\n{}", self.log_tail(id, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `sluice <args>` with a time limit (a tool stuck on a dead broker must not hang the
    /// test).
    pub fn sluice(&self, args: &[&str], input: Option<&[u8]>, secs: u64) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(args);
        run_with_timeout(cmd, input, secs)
    }

    /// `sluice topics --create --topic <topic> <flags>` through `bootstrap` as a user types it;
    /// fails the test with the tool's output if it fails, else returns what it printed.
    pub fn create_topic(&self, bootstrap: &str, topic: &str, flags: &[&str]) -> String {
        let mut args = vec![
            "topics",
            "--create",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
        ];
        args.extend_from_slice(flags);
        super::check("topics --create", self.sluice(&args, None, 30))
    }

    /// `sluice topics --describe --topic <topic>` against the live nodes, parsed; Err with the
    /// tool's output when it fails.
    pub fn describe(&mut self, topic: &str) -> Result<Vec<PartitionInfo>, String> {
        let bootstrap = self.live_bootstrap();
        let out = self.sluice(
            &[
                "topics",
                "--describe",
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                topic,
            ],
            None,
            30,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            return Err(format!(
                "topics --describe failed with {}: {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        parse_describe(&stdout)
    }

    /// Describes `topic` until `cond` holds for its partitions, and returns them; panics after
    /// `secs` with the last description and the nodes' log tails.
    pub fn wait_for_partitions(
        &mut self,
        topic: &str,
        secs: u64,
        what: &str,
        mut cond: impl FnMut(&[PartitionInfo]) -> bool,
    ) -> Vec<PartitionInfo> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let last = match self.describe(topic) {
                Ok(parts) if !parts.is_empty() && cond(&parts) => return parts,
                other => other,
            };
            if Instant::now() > deadline {
                panic!(
                    "timed out after {secs}s waiting for {what}; last described {last:?}\n{}",
                    self.all_log_tails(40)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Polls `cond` every 100 ms until it holds; panics after `secs` with the nodes' log
    /// tails.
    pub fn wait_for(&mut self, secs: u64, what: &str, mut cond: impl FnMut(&mut Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {secs}s waiting for {what}\n{}",
                    self.all_log_tails(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live node's Metadata lists exactly `brokers`.
    pub fn wait_for_brokers(&mut self, secs: u64, brokers: &BTreeSet<i32>) {
        self.wait_for(
            secs,
            &format!("every live node to list brokers {brokers:?}"),
            |c| {
                c.live_ids().into_iter().all(|id| {
                    c.metadata(id, &[]).is_some_and(|m| {
                        m.brokers.iter().map(|b| b.node_id).collect::<BTreeSet<_>>() == *brokers
                    })
                })
            },
        );
    }

    /// The active controller (the metadata quorum's Raft leader) as the first live node that
    /// knows one reports it in Metadata's controller_id.
    pub fn active_controller(&mut self) -> Option<i32> {
        self.live_ids()
            .into_iter()
            .filter_map(|id| self.metadata(id, &[]))
            .map(|m| m.controller_id)
            .find(|&c| c >= 0)
    }

    /// A raw Metadata request (v12) for `topics` to node `id`'s bound port, so the harness
    /// observes a node directly whatever its advertised address; None if it does not answer
    /// within two seconds.
    pub fn metadata(
        &self,
        id: i32,
        topics: &[&str],
    ) -> Option<sluice_protocol::messages::MetadataResponse> {
        use bytes::Bytes;
        use sluice_protocol::api::{encode_request_frame, ApiMessage};
        use sluice_protocol::header::ResponseHeader;
        use sluice_protocol::messages::*;

        let request = MetadataRequest {
            topics: Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic {
                        name: Some(t.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let timeout = Duration::from_secs(2);
        let mut s = TcpStream::connect_timeout(&self.bound_address(id), timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.write_all(&encode_request_frame(
            1,
            12,
            Some("cluster-harness"),
            &request,
        ))
        .ok()?;
        let mut size = [0u8; 4];
        s.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).ok()?;
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, 1).ok()?;
        MetadataResponse::decode_body(body, 12).ok()
    }
}

impl Node {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("server")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sluice server");
        self.child = Some(child);
        self.paused = false;
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed process is no longer stopped; nothing is left to continue.
        self.paused = false;
    }

    fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
        self.paused = false;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            // A stopped process still dies of SIGKILL, but continuing it first leaves nothing
            // to chance.
            if node.paused {
                node.resume();
            }
            node.kill9();
        }
    }
}

/// Parses the partition lines of `topics --describe` output.
pub fn parse_describe(out: &str) -> Result<Vec<PartitionInfo>, String> {
    let ids = |s: &str| -> Result<Vec<i32>, String> {
        if s.is_empty() {
            return Ok(vec![]);
        }
        s.split(',')
            .map(|x| x.parse().map_err(|_| format!("bad id {x:?} in {out:?}")))
            .collect()
    };
    let mut parts = Vec::new();
    for line in out.lines().filter(|l| l.contains("\tPartition: ")) {
        let field = |name: &str| -> Result<&str, String> {
            line.split('\t')
                .find_map(|f| f.strip_prefix(name))
                .ok_or_else(|| format!("no {name} in {line:?}"))
        };
        let leader = field("Leader: ")?;
        parts.push(PartitionInfo {
            partition: field("Partition: ")?
                .parse()
                .map_err(|_| format!("bad partition in {line:?}"))?,
            leader: match leader {
                "none" => None,
                l => Some(l.parse().map_err(|_| format!("bad leader in {line:?}"))?),
            },
            replicas: ids(field("Replicas: ")?)?,
            isr: ids(field("Isr: ")?)?,
        });
    }
    Ok(parts)
}

/// Runs `cmd` with `input` on stdin and kills it after `secs`; the output says what it printed
/// either way (a killed command has a failed status).
pub fn run_with_timeout(mut cmd: Command, input: Option<&[u8]>, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start command");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.map(<[u8]>::to_vec);
    let feeder = std::thread::spawn(move || {
        if let Some(data) = input {
            let _ = stdin.write_all(&data);
        }
    });
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(secs)).is_err() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    feeder.join().unwrap();
    out
}

/// A temporary directory for a cluster test that is kept, its path printed, when the test
/// fails (or SLUICE_KEEP_TEST_DIR is set), so the nodes' logs and data can be read afterwards.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    pub fn new() -> TestDir {
        TestDir(Some(tempfile::tempdir().unwrap()))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SLUICE_KEEP_TEST_DIR").is_some() {
            let kept = self.0.take().unwrap().keep();
            eprintln!("kept {} (node logs in node-*/server.log)", kept.display());
        }
    }
}
