//! The Connect quickstart as Kafka's docs give it, with the shipped config files: lines of
//! test.txt reach test.sink.txt through the topic connect-test (as JsonConverter envelopes),
//! appended lines follow, and a restarted worker neither loses nor repeats lines.

mod common;

use common::{connect_quickstart_dir, kcat, wait_until, ConnectWorker};

#[test]
fn the_connect_quickstart_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let port = connect_quickstart_dir(dir.path(), &[]);
    std::fs::write(dir.path().join("test.txt"), "foo\nbar\n").unwrap();
    let sink = || std::fs::read_to_string(dir.path().join("test.sink.txt")).unwrap_or_default();

    let mut worker = ConnectWorker::start(dir.path());
    wait_until(30, "foo and bar in test.sink.txt", || {
        sink() == "foo\nbar\n"
    });
    let b = format!("127.0.0.1:{port}");
    let topic = kcat(&["-b", &b, "-t", "connect-test", "-C", "-e", "-q"], None);
    assert_eq!(
        String::from_utf8(topic).unwrap(),
        "{\"schema\":{\"type\":\"string\",\"optional\":false},\"payload\":\"foo\"}\n\
         {\"schema\":{\"type\":\"string\",\"optional\":false},\"payload\":\"bar\"}\n"
    );
    let mut source = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("test.txt"))
        .unwrap();
    use std::io::Write;
    writeln!(source, "baz").unwrap();
    let appended = std::time::Instant::now();
    // The issue asks for "within a second"; the bound here is looser so a loaded CI machine
    // does not fail the test, and the latency seen is printed.
    wait_until(10, "the appended line in test.sink.txt", || {
        sink() == "foo\nbar\nbaz\n"
    });
    println!(
        "appended line reached test.sink.txt in {:?}",
        appended.elapsed()
    );
    worker.stop();

    // A clean stop flushed the offsets: a restart sends nothing again and picks up new lines.
    let mut worker = ConnectWorker::start(dir.path());
    writeln!(source, "qux").unwrap();
    wait_until(30, "qux after the restart", || sink().ends_with("qux\n"));
    assert_eq!(sink(), "foo\nbar\nbaz\nqux\n", "{}", worker.log());
    worker.stop();
}
