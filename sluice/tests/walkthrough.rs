//! Kafka's quickstart, typed as a user types it with `sluice` in place of the scripts: create a
//! topic, list and describe it, write events with console-producer, read them back with
//! console-consumer (alone and in a group), check the group's lag, delete the topic.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::BrokerProcess;

fn sluice(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_kafka_quickstart_with_sluice_tools() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]);
    let b = broker.bootstrap();
    let bs = ["--bootstrap-server", b.as_str()];
    let with = |tool: &'static str, rest: &[&'static str]| -> Vec<String> {
        let mut v = vec![tool.to_string()];
        v.extend(bs.iter().map(|s| s.to_string()));
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, input: &[u8]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice(&refs, input)
    };

    let created = run(
        with("topics", &["--create", "--topic", "quickstart-events"]),
        b"",
    );
    assert_eq!(stdout(&created), "Created topic quickstart-events.\n");
    assert!(stdout(&run(with("topics", &["--list"]), b""))
        .lines()
        .any(|l| l == "quickstart-events"));
    let described = stdout(&run(
        with("topics", &["--describe", "--topic", "quickstart-events"]),
        b"",
    ));
    assert!(
        described.starts_with("Topic: quickstart-events\t"),
        "{described}"
    );

    let events = "This is my first event\nThis is my second event\nthird\nfourth\nfifth\n";
    run(
        with("console-producer", &["--topic", "quickstart-events"]),
        events.as_bytes(),
    );
    let read = run(
        with(
            "console-consumer",
            &[
                "--topic",
                "quickstart-events",
                "--from-beginning",
                "--max-messages",
                "5",
            ],
        ),
        b"",
    );
    assert_eq!(stdout(&read), events);
    assert!(String::from_utf8_lossy(&read.stderr).contains("Processed a total of 5 messages"));

    // In a group: read once, commit, and a second run of the same group finds nothing new.
    let group = |input: &[u8]| {
        run(
            with(
                "console-consumer",
                &[
                    "--topic",
                    "quickstart-events",
                    "--from-beginning",
                    "--group",
                    "quickstart-readers",
                    "--timeout-ms",
                    "3000",
                ],
            ),
            input,
        )
    };
    assert_eq!(stdout(&group(b"")), events);
    assert_eq!(stdout(&group(b"")), "");
    let lag = stdout(&run(
        with(
            "consumer-groups",
            &["--describe", "--group", "quickstart-readers"],
        ),
        b"",
    ));
    let row: Vec<&str> = lag
        .lines()
        .find(|l| l.contains("quickstart-events"))
        .unwrap_or_else(|| panic!("{lag}"))
        .split_whitespace()
        .collect();
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert_eq!(
        &row[..6],
        [
            "quickstart-readers",
            "quickstart-events",
            "0",
            "5",
            "5",
            "0"
        ]
    );

    // The older spelling of the quickstart's producer line still works.
    run(
        vec![
            "console-producer".into(),
            "--broker-list".into(),
            b.clone(),
            "--topic".into(),
            "quickstart-events".into(),
        ],
        b"",
    );

    // Keys, as the walkthroughs type them.
    run(
        with(
            "console-producer",
            &[
                "--topic",
                "quickstart-events",
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=:",
            ],
        ),
        b"user1:clicked\nuser2:scrolled\n",
    );
    let keyed = run(
        with(
            "console-consumer",
            &[
                "--topic",
                "quickstart-events",
                "--partition",
                "0",
                "--offset",
                "5",
                "--max-messages",
                "2",
                "--property",
                "print.key=true",
                "--property",
                "key.separator=:",
            ],
        ),
        b"",
    );
    assert_eq!(stdout(&keyed), "user1:clicked\nuser2:scrolled\n");

    run(
        with("topics", &["--delete", "--topic", "quickstart-events"]),
        b"",
    );
    assert!(!stdout(&run(with("topics", &["--list"]), b"")).contains("quickstart-events"));
}
