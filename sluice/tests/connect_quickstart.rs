//! The Connect quickstart as Kafka's docs give it, with the shipped config files: lines of
//! test.txt reach test.sink.txt through the topic connect-test (as JsonConverter envelopes),
//! appended lines follow, and a restarted worker neither loses nor repeats lines.

mod common;

use std::process::{Child, Command, Stdio};

use common::{kcat, repo_root, signal, wait_until};

struct Worker {
    child: Child,
}

impl Worker {
    /// `sluice connect-standalone config/connect-standalone.properties
    /// config/connect-file-source.properties config/connect-file-sink.properties`, run in `dir`.
    fn start(dir: &std::path::Path) -> Worker {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("worker.log"))
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
            .unwrap();
        Worker { child }
    }

    fn stop(mut self) {
        signal(self.child.id(), "TERM");
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_connect_quickstart_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    // The shipped files, except where the embedded broker and the REST API listen and where
    // data is kept, so the test does not collide with anything on the machine.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let port = free_port();
    let shipped =
        |name: &str| std::fs::read_to_string(repo_root().join("config").join(name)).unwrap();
    let worker = shipped("connect-standalone.properties")
        .replace(
            "bootstrap.servers=localhost:9092",
            &format!("bootstrap.servers=127.0.0.1:{port}"),
        )
        .replace(
            "/tmp/connect.offsets",
            dir.path().join("connect.offsets").to_str().unwrap(),
        )
        + &format!(
            "\nsluice.embedded.broker.log.dirs={}\nlisteners=http://127.0.0.1:{}\n",
            dir.path().join("broker-logs").display(),
            free_port()
        );
    assert!(worker.contains("sluice.embedded.broker=true"), "{worker}");
    std::fs::write(config.join("connect-standalone.properties"), worker).unwrap();
    for name in [
        "connect-file-source.properties",
        "connect-file-sink.properties",
    ] {
        std::fs::write(config.join(name), shipped(name)).unwrap();
    }
    std::fs::write(dir.path().join("test.txt"), "foo\nbar\n").unwrap();
    let sink = || std::fs::read_to_string(dir.path().join("test.sink.txt")).unwrap_or_default();
    let log = || std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default();

    let worker = Worker::start(dir.path());
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
    wait_until(10, "the appended line in test.sink.txt", || {
        sink() == "foo\nbar\nbaz\n"
    });
    worker.stop();

    // A clean stop flushed the offsets: a restart sends nothing again and picks up new lines.
    let worker = Worker::start(dir.path());
    writeln!(source, "qux").unwrap();
    wait_until(30, "qux after the restart", || sink().ends_with("qux\n"));
    assert_eq!(sink(), "foo\nbar\nbaz\nqux\n", "{}", log());
    worker.stop();
}
