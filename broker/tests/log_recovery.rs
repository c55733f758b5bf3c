//! A real `kill -9` of a process appending to a log: every acknowledged append must be there
//! after recovery, offsets must stay dense, and appends must continue where the log ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use sluice_broker::log::{Log, LogConfig, TopicPartition};
use sluice_protocol::records::{verify_crc, Batches};

const CHILD_ENV: &str = "SLUICE_LOG_RECOVERY_CHILD_DIR";

/// A v2 batch of `count` records whose records section is filler: the log never parses it.
fn batch(count: i32, payload: usize) -> Bytes {
    let total = 61 + payload;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((total - 12) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend((0..payload).map(|i| i as u8));
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

/// Runs only as the child of `kill_9_loses_no_acknowledged_append`.
#[test]
#[ignore = "helper process for kill_9_loses_no_acknowledged_append"]
fn child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = Log::open(Path::new(&dir), tp(), config(), 0, true).unwrap();
    let mut n = 0i32;
    loop {
        n += 1;
        let info = log
            .append(batch(1 + n % 7, 500 + (n as usize % 900)), 0, 0)
            .unwrap();
        println!("acked {}", info.last_offset);
    }
}

#[test]
fn kill_9_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_appender", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_acked = -1i64;
    while last_acked < 3_000 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(offset) = line.strip_prefix("acked ") {
            last_acked = offset.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let log = Log::open(dir.path(), tp(), config(), 0, false).unwrap();
    assert!(log.log_end_offset() > last_acked);
    let mut next = 0;
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20, i64::MAX, true).unwrap();
        for item in Batches::new(r.records) {
            let (h, bytes) = item.unwrap();
            verify_crc(&bytes).unwrap();
            assert_eq!(h.base_offset, next, "offsets stay dense");
            next = h.last_offset() + 1;
        }
    }
    let info = log.append(batch(1, 10), 0, 0).unwrap();
    assert_eq!(info.base_offset, next);
}
