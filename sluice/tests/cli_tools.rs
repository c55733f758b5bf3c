//! The admin tools (`sluice topics`, `configs`, `consumer-groups`) run as a user runs them,
//! against the real broker: their output, their exit codes, and their one-line errors. Groups
//! are made and consumed by kcat, so lag and resets are checked against a real consumer.

mod common;

use std::process::{Child, Command, Output, Stdio};

use common::{kcat, signal, wait_until, BrokerProcess};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sluice")
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "sluice {args:?} exited with {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a tool that must succeed and log nothing; returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(out.status.success(), "{}", show(args, &out));
    assert!(out.stderr.is_empty(), "{}", show(args, &out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a tool that must fail with exit code 1 and one line on stderr; returns that line.
fn fails(args: &[&str]) -> String {
    let out = sluice(args);
    assert_eq!(out.status.code(), Some(1), "{}", show(args, &out));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", show(args, &out));
    assert!(lines[0].starts_with("Error: "), "{}", show(args, &out));
    lines[0].to_string()
}

/// `sluice <tool> --bootstrap-server B <rest...>`
fn with_bootstrap<'a>(tool: &'a str, b: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![tool, "--bootstrap-server", b];
    args.extend_from_slice(rest);
    args
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    let topics = |rest: &[&str]| ok(&with_bootstrap("topics", &b, rest));
    let topics_fail = |rest: &[&str]| fails(&with_bootstrap("topics", &b, rest));

    let out = topics(&[
        "--create",
        "--topic",
        "quickstart-events",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=600000",
    ]);
    assert_eq!(out, "Created topic quickstart-events.\n");
    assert_eq!(
        topics_fail(&["--create", "--topic", "quickstart-events"]),
        "Error: Topic 'quickstart-events' already exists."
    );
    assert_eq!(
        topics(&[
            "--create",
            "--topic",
            "quickstart-events",
            "--if-not-exists"
        ]),
        ""
    );
    assert!(topics(&["--list"])
        .lines()
        .any(|l| l == "quickstart-events"));

    let out = topics(&["--describe", "--topic", "quickstart-events"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields.len(), 5, "{out}");
    assert_eq!(fields[0], "Topic: quickstart-events");
    let id = fields[1].strip_prefix("TopicId: ").unwrap();
    assert_eq!(id.len(), 22, "Kafka prints topic ids in base64: {out}");
    assert_eq!(
        &fields[2..],
        [
            "PartitionCount: 3",
            "ReplicationFactor: 1",
            "Configs: retention.ms=600000"
        ]
    );
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("\tTopic: quickstart-events\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1")
        );
    }
    // The classic walkthrough writes and reads some events in between.
    kcat(
        &["-b", &b, "-t", "quickstart-events", "-P", "-p", "0"],
        Some(b"first event\nsecond event\n"),
    );
    let read = kcat(
        &[
            "-b",
            &b,
            "-t",
            "quickstart-events",
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    assert_eq!(read, b"first event\nsecond event\n");

    // More partitions; fewer is refused with Kafka's message.
    assert_eq!(
        topics(&[
            "--alter",
            "--topic",
            "quickstart-events",
            "--partitions",
            "4"
        ]),
        ""
    );
    assert!(topics(&["--describe", "--topic", "quickstart-events"]).contains("PartitionCount: 4\t"));
    assert!(topics_fail(&[
        "--alter",
        "--topic",
        "quickstart-events",
        "--partitions",
        "2"
    ])
    .contains("Topic currently has 4 partitions, which is higher than the requested 2."));

    // Describing everything covers the new topic and the internal one.
    let all = topics(&["--describe"]);
    assert!(all.contains("Topic: quickstart-events\t"), "{all}");
    let external = topics(&["--describe", "--exclude-internal"]);
    assert!(!external.contains("__consumer_offsets"), "{external}");

    assert_eq!(topics(&["--delete", "--topic", "quickstart-events"]), "");
    assert!(!topics(&["--list"]).contains("quickstart-events"));
    assert_eq!(
        topics_fail(&["--describe", "--topic", "quickstart-events"]),
        "Error: Topic 'quickstart-events' does not exist."
    );
    assert_eq!(
        topics(&["--delete", "--topic", "quickstart-events", "--if-exists"]),
        ""
    );
}

#[test]
fn topic_configs_are_described_and_altered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    ok(&with_bootstrap(
        "topics",
        &b,
        &[
            "--create",
            "--topic",
            "t",
            "--config",
            "retention.ms=600000",
        ],
    ));
    let configs = |rest: &[&str]| ok(&with_bootstrap("configs", &b, rest));
    let entity = ["--entity-type", "topics", "--entity-name", "t"];
    let describe = [&["--describe"][..], &entity].concat();
    assert_eq!(
        configs(&describe),
        "Dynamic configs for topic t are:\n  retention.ms=600000 sensitive=false synonyms={}\n"
    );

    let alter = [
        &["--alter"][..],
        &entity,
        &[
            "--add-config",
            "max.message.bytes=2048,cleanup.policy=[compact,delete]",
            "--delete-config",
            "retention.ms",
        ],
    ]
    .concat();
    assert_eq!(configs(&alter), "Completed updating config for topic t.\n");
    assert_eq!(
        configs(&describe),
        "Dynamic configs for topic t are:\n  cleanup.policy=compact,delete sensitive=false synonyms={}\n  max.message.bytes=2048 sensitive=false synonyms={}\n"
    );
    // --all adds the inherited defaults; --topic is the short spelling.
    let all = configs(&["--describe", "--topic", "t", "--all"]);
    assert!(all.starts_with("All configs for topic t are:\n"), "{all}");
    assert!(all.contains("\n  retention.ms="), "{all}");
    assert!(all.contains("\n  max.message.bytes=2048 "), "{all}");

    let fail = |rest: &[&str]| fails(&with_bootstrap("configs", &b, rest));
    assert_eq!(
        fail(
            &[
                &["--alter"][..],
                &entity,
                &["--delete-config", "retention.ms"]
            ]
            .concat()
        ),
        "Error: Invalid config(s): retention.ms"
    );
    assert!(fail(
        &[
            &["--alter"][..],
            &entity,
            &["--add-config", "no.such.key=1"]
        ]
        .concat()
    )
    .contains("no.such.key"));
    assert_eq!(
        fail(&[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "nope"
        ]),
        "Error: Topic 'nope' does not exist."
    );
}

fn kcat_member(b: &str, group: &str, topic: &str, out: &std::path::Path) -> Child {
    Command::new("kcat")
        .args([
            "-b",
            b,
            "-G",
            group,
            topic,
            "-q",
            // Unbuffered: the test watches the file while kcat runs.
            "-u",
            "-X",
            "auto.offset.reset=earliest",
        ])
        .stdout(Stdio::from(std::fs::File::create(out).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat is installed by scripts/test")
}

/// The describe table's data rows, split into columns; also checks each column starts
/// where its header does.
fn table(out: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("GROUP "), "{out}");
    let starts: Vec<usize> = header
        .match_indices(|c: char| c != ' ')
        .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
        .map(|(i, _)| i)
        .collect();
    lines
        .map(|l| {
            for s in &starts {
                assert!(
                    *s == 0 || l.as_bytes().get(s - 1) == Some(&b' '),
                    "misaligned:\n{out}"
                );
            }
            l.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

#[test]
fn consumer_groups_show_lag_and_reset_offsets_for_kcat() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]);
    let b = broker.bootstrap();
    let groups = |rest: &[&str]| ok(&with_bootstrap("consumer-groups", &b, rest));
    ok(&with_bootstrap(
        "topics",
        &b,
        &["--create", "--topic", "events", "--partitions", "1"],
    ));
    let lines: String = (0..10).map(|i| format!("event-{i}\n")).collect();
    kcat(&["-b", &b, "-t", "events", "-P"], Some(lines.as_bytes()));

    // kcat reads four and commits them as it exits.
    let first = kcat(
        &[
            "-b",
            &b,
            "-G",
            "readers",
            "events",
            "-X",
            "auto.offset.reset=earliest",
            "-c",
            "4",
            "-q",
        ],
        None,
    );
    assert_eq!(first, b"event-0\nevent-1\nevent-2\nevent-3\n");
    assert_eq!(groups(&["--list"]), "readers\n");

    let args = with_bootstrap("consumer-groups", &b, &["--describe", "--group", "readers"]);
    let out = sluice(&args);
    assert!(out.status.success(), "{}", show(&args, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Consumer group 'readers' has no active members."
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        table(&stdout),
        [["readers", "events", "0", "4", "10", "6", "-", "-", "-"]],
        "{stdout}"
    );

    // A live member is shown, and protects the group's offsets from a reset.
    let member_out = dir.path().join("member.out");
    let mut member = kcat_member(&b, "readers", "events", &member_out);
    let mut described = String::new();
    wait_until(30, "the kcat member to be assigned the partition", || {
        // Not `ok`: until the member is in, the tool notes an empty or rebalancing group.
        let args = with_bootstrap("consumer-groups", &b, &["--describe", "--group", "readers"]);
        described = String::from_utf8(sluice(&args).stdout).unwrap();
        table(&described)
            .first()
            .is_some_and(|row| row[6].starts_with("rdkafka"))
    });
    let row = &table(&described)[0];
    assert_eq!(row[7], "/127.0.0.1", "{described}");
    let reset = [
        "--reset-offsets",
        "--group",
        "readers",
        "--topic",
        "events",
        "--to-earliest",
        "--execute",
    ];
    assert_eq!(
        fails(&with_bootstrap("consumer-groups", &b, &reset)),
        "Error: Assignments can only be reset if the group 'readers' is inactive, but the current state is Stable."
    );
    wait_until(30, "the member to read the other six", || {
        std::fs::read_to_string(&member_out)
            .unwrap_or_default()
            .lines()
            .count()
            >= 6
    });
    signal(member.id(), "TERM");
    member.wait().unwrap();
    wait_until(30, "the group to commit 10 and empty", || {
        let args = with_bootstrap("consumer-groups", &b, &["--describe", "--group", "readers"]);
        let out = sluice(&args);
        String::from_utf8_lossy(&out.stderr).contains("no active members")
            && table(&String::from_utf8_lossy(&out.stdout))
                .first()
                .is_some_and(|row| row[3] == "10" && row[5] == "0")
    });

    // A dry run changes nothing; --execute does, and kcat then reads everything again.
    let dry = groups(&[
        "--reset-offsets",
        "--group",
        "readers",
        "--topic",
        "events:0",
        "--shift-by",
        "-3",
        "--dry-run",
    ]);
    assert!(dry.contains("NEW-OFFSET"), "{dry}");
    assert_eq!(
        dry.lines()
            .last()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["readers", "events", "0", "7"]
    );
    let executed = groups(&reset);
    assert_eq!(
        executed
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["readers", "events", "0", "0"]
    );
    let again = kcat(
        &[
            "-b",
            &b,
            "-G",
            "readers",
            "events",
            "-X",
            "auto.offset.reset=latest",
            "-e",
            "-q",
        ],
        None,
    );
    assert_eq!(String::from_utf8(again).unwrap(), lines);

    let deleted = groups(&[
        "--delete-offsets",
        "--group",
        "readers",
        "--topic",
        "events",
    ]);
    assert!(deleted.contains("Successful"), "{deleted}");
    assert_eq!(
        groups(&["--delete", "--group", "readers"]),
        "Deletion of requested consumer groups ('readers') was successful.\n"
    );
    assert_eq!(groups(&["--list"]), "");
}

#[test]
fn errors_are_one_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    assert_eq!(
        fails(&with_bootstrap(
            "topics",
            &b,
            &["--describe", "--topic", "nope"]
        )),
        "Error: Topic 'nope' does not exist."
    );
    assert_eq!(
        fails(&with_bootstrap(
            "consumer-groups",
            &b,
            &["--describe", "--group", "nobody"]
        )),
        "Error: Consumer group 'nobody' does not exist."
    );
    // Bad flag combinations, whether clap or the tool catches them.
    assert!(fails(&with_bootstrap("topics", &b, &["--create", "--list"])).contains("--list"));
    assert!(fails(&with_bootstrap("topics", &b, &["--create"])).contains("--topic"));
    assert!(fails(&["topics", "--list"]).contains("--bootstrap-server"));
    assert!(fails(&with_bootstrap(
        "consumer-groups",
        &b,
        &["--reset-offsets", "--group", "g", "--topic", "t"]
    ))
    .contains("--to-earliest"));
    assert_eq!(
        fails(&with_bootstrap(
            "topics",
            &b,
            &["--alter", "--topic", "nosuch", "--partitions", "4"]
        )),
        "Error: Topic 'nosuch' does not exist."
    );
    assert!(fails(&with_bootstrap(
        "topics",
        &b,
        &["--alter", "--topic", "nosuch"]
    ))
    .contains("--partitions"));

    // Nothing listens: the error comes once the request timeout (from --command-config) is spent.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, "request.timeout.ms=1500\n").unwrap();
    let started = std::time::Instant::now();
    let line = fails(&[
        "topics",
        "--bootstrap-server",
        &free,
        "--command-config",
        props.to_str().unwrap(),
        "--list",
    ]);
    assert!(line.contains("no broker reachable"), "{line}");
    assert!(line.contains(&free), "{line}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
