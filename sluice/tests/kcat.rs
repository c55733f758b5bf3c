//! kcat (librdkafka) against the real broker: a 100,000-line round trip, and restart durability.

mod common;

use common::{kcat, BrokerProcess};

#[test]
fn kcat_produces_and_consumes_100k_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    let lines: String = (0..100_000)
        .map(|i| format!("line-{i:06}-{}\n", "x".repeat(i % 50)))
        .collect();
    kcat(&["-b", &b, "-t", "lines", "-P"], Some(lines.as_bytes()));
    let out = kcat(
        &["-b", &b, "-t", "lines", "-C", "-o", "beginning", "-e", "-q"],
        None,
    );
    assert_eq!(String::from_utf8(out).unwrap(), lines);
}

#[test]
fn stop_and_start_keeps_every_record_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[("num.partitions", "3")]);
    let b = broker.bootstrap();
    let input: String = (0..3000).map(|i| format!("k{i}:value-{i}\n")).collect();
    kcat(
        &["-b", &b, "-t", "durable", "-P", "-K:"],
        Some(input.as_bytes()),
    );
    let format = ["-f", "%p %o %k %s\n"];
    let consume = |b: &str| {
        let mut args = vec![
            "-b",
            b,
            "-t",
            "durable",
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
        ];
        args.extend_from_slice(&format);
        let mut lines: Vec<String> = String::from_utf8(kcat(&args, None))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let before = consume(&b);
    assert_eq!(before.len(), 3000);
    broker.stop();
    assert!(
        !common::log_lines(&broker, "shut down cleanly").is_empty(),
        "no clean shutdown line:\n{}",
        broker.log()
    );
    broker.restart();
    let after = consume(&broker.bootstrap());
    assert_eq!(before, after);
    // New records continue densely after the old ones.
    kcat(
        &["-b", &b, "-t", "durable", "-P", "-p", "0"],
        Some(b"after-restart\n"),
    );
    let p0: Vec<String> = consume(&b)
        .into_iter()
        .filter(|l| l.starts_with("0 "))
        .collect();
    let last = p0
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse::<i64>().unwrap())
        .max()
        .unwrap();
    assert_eq!(
        last as usize,
        p0.len() - 1,
        "offsets of partition 0 are not dense"
    );
}
