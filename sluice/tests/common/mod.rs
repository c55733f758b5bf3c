//! Test harness for end-to-end tests: runs the real `sluice server` binary on a free loopback
//! port with its own log dir, and runs real Kafka clients (kcat, Python scripts) against it.
#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod fault_proxy;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    config: PathBuf,
    log_file: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BrokerProcess {
    /// Writes a server.properties into `dir` (plus `extra` lines) and starts the broker.
    pub fn start(dir: &Path, extra: &[(&str, &str)]) -> BrokerProcess {
        let port = free_port();
        let config = dir.join("server.properties");
        let mut props = format!(
            "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{port}\nadvertised.listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\n",
            dir.join("logs").display()
        );
        for (k, v) in extra {
            props.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&config, props).unwrap();
        let mut broker = BrokerProcess {
            child: None,
            port,
            dir: dir.to_path_buf(),
            config,
            log_file: dir.join("broker.log"),
        };
        broker.spawn();
        broker
    }

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
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "broker exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "broker did not listen in 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// What the broker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// SIGTERM and wait: the clean shutdown path.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "broker exited with {status}:\n{}",
                self.log()
            );
        }
    }

    /// SIGKILL: the crash path.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.spawn();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Repository root, for scripts under sluice/tests/clients.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a client script from sluice/tests/clients and fails the test, with its output, if it
/// fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let path = repo_root().join("sluice/tests/clients").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 is installed by scripts/test");
    check(&format!("python3 {script}"), out)
}

pub fn check(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// Runs kcat with `args`, feeding `input` on stdin.
pub fn kcat(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/test");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.map(|i| i.to_vec());
    let feeder = std::thread::spawn(move || {
        if let Some(data) = input {
            stdin.write_all(&data).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "kcat {args:?} failed: {stderr}");
    out.stdout
}

/// Lines the broker logged that match `needle`.
pub fn log_lines(broker: &BrokerProcess, needle: &str) -> Vec<String> {
    BufReader::new(broker.log().as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(needle))
        .collect()
}

/// Asks the broker for a partition's earliest (-2) or latest (-1) offset with a raw ListOffsets
/// request, so tests need no client library of ours.
pub fn list_offset(broker: &BrokerProcess, topic: &str, partition: i32, timestamp: i64) -> i64 {
    use bytes::Bytes;
    use sluice_protocol::api::{encode_request_frame, ApiMessage};
    use sluice_protocol::header::ResponseHeader;
    use sluice_protocol::messages::*;
    use std::io::Read;

    let request = ListOffsetsRequest {
        replica_id: -1,
        topics: vec![ListOffsetsRequestTopic {
            name: topic.into(),
            partitions: vec![ListOffsetsRequestPartition {
                partition_index: partition,
                current_leader_epoch: -1,
                timestamp,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let mut s = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&encode_request_frame(1, 5, Some("test"), &request))
        .unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, 0).unwrap();
    let response = ListOffsetsResponse::decode_body(body, 5).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets error");
    p.offset
}

/// Polls `cond` every 100 ms until it holds or `secs` pass.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lays out `dir` as the Kafka Connect quickstart expects: config/ holds the shipped
/// connect-standalone, connect-file-source and connect-file-sink properties, and the connectors
/// read test.txt and write test.sink.txt in `dir`. The worker file is changed only where
/// sharing the machine requires it (the embedded broker's and the REST API's ports, the offset
/// file and broker logs, kept in `dir`) and where `worker_overrides` say, so the test runs what
/// users run. Returns the embedded broker's port.
pub fn connect_quickstart_dir(dir: &Path, worker_overrides: &[(&str, &str)]) -> u16 {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let shipped =
        |name: &str| std::fs::read_to_string(repo_root().join("config").join(name)).unwrap();
    let port = free_port();
    let mut overrides: Vec<(String, String)> = vec![
        ("bootstrap.servers".into(), format!("127.0.0.1:{port}")),
        (
            "offset.storage.file.filename".into(),
            dir.join("connect.offsets").display().to_string(),
        ),
        (
            "sluice.embedded.broker.log.dirs".into(),
            dir.join("broker-logs").display().to_string(),
        ),
        (
            "listeners".into(),
            format!("http://127.0.0.1:{}", free_port()),
        ),
    ];
    overrides.extend(
        worker_overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let worker = shipped("connect-standalone.properties");
    assert!(
        worker.contains("\nsluice.embedded.broker=true\n"),
        "{worker}"
    );
    // A key set twice would leave which value wins to the parser; each override replaces the
    // shipped line instead, or is added when the shipped file leaves the key commented out.
    let mut lines: Vec<String> = worker.lines().map(str::to_string).collect();
    for (key, value) in overrides {
        let setting = format!("{key}={value}");
        match lines.iter_mut().find(|l| l.starts_with(&format!("{key}="))) {
            Some(line) => *line = setting,
            None => lines.push(setting),
        }
    }
    std::fs::write(
        config.join("connect-standalone.properties"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    for name in [
        "connect-file-source.properties",
        "connect-file-sink.properties",
    ] {
        std::fs::write(config.join(name), shipped(name)).unwrap();
    }
    port
}

/// `sluice connect-standalone config/connect-standalone.properties
/// config/connect-file-source.properties config/connect-file-sink.properties`, run in a
/// directory laid out by `connect_quickstart_dir`, its output appended to worker.log there.
/// Dropping it kills the process, so a failing test leaves nothing running.
pub struct ConnectWorker {
    child: Option<Child>,
    log_file: PathBuf,
}

impl ConnectWorker {
    pub fn start(dir: &Path) -> ConnectWorker {
        let log_file = dir.join("worker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .args([
                "connect-standalone",
                "config/connect-standalone.properties",
                "config/connect-file-source.properties",
                "config/connect-file-sink.properties",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sluice connect-standalone");
        ConnectWorker {
            child: Some(child),
            log_file,
        }
    }

    /// What every run of the worker in this directory has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Fails the test, with the log, if the worker has exited: a wait for its output would
    /// otherwise only time out.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("worker started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited with {status}:\n{}", self.log());
        }
    }

    /// SIGTERM and wait: the clean shutdown path, which saves offsets.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "worker exited with {status}:\n{}",
                self.log()
            );
        }
    }

    /// SIGKILL: the crash path, where nothing gets to save or flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SplitMix64: a few lines of deterministic randomness, so a failing input can be made again
/// from its seed without a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; the modulo bias is irrelevant for test data.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `n` short strings for building test lines: ASCII (with the characters JSON must escape:
/// quote, backslash, tab) and 2-, 3- and 4-byte UTF-8, so a line's byte length and character
/// count differ and converters have escaping to do. Never `\r` or `\n`, which the file source
/// treats as line ends.
pub fn text_pieces(rng: &mut Rng, n: usize) -> Vec<String> {
    const CHARS: &[char] = &[
        'a', 'b', 'k', 'q', 'z', 'A', 'Z', '0', '7', ' ', ' ', ' ', '.', ',', '-', '"', '\\', '\t',
        '{', '}', 'é', 'ß', 'ñ', 'Ω', 'ж', '数', '据', '€', 'ह', '✓', '🚀', '😀', '𝄞', '🦀',
    ];
    (0..n)
        .map(|_| {
            let len = 1 + rng.below(8);
            (0..len).map(|_| CHARS[rng.below(CHARS.len())]).collect()
        })
        .collect()
}
