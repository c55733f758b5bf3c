//! `sluice server` start-up with bad configuration (one line naming the key, the value and the
//! file, and a non-zero exit; unknown keys only warn), and the shipped three-node files agreeing.

use std::process::Command;

fn run_server(props: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    let props = format!("{props}\nlog.dirs={}\n", dir.path().join("logs").display());
    std::fs::write(&path, props).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("server")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A valid config keeps running: give it a moment, then stop it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let exited = child.try_wait().unwrap();
    if exited.is_none() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (exited.is_some_and(|s| !s.success()), stderr)
}

#[test]
fn an_invalid_value_stops_start_up_with_one_line() {
    let (failed, stderr) = run_server("listeners=PLAINTEXT://127.0.0.1:0\nlog.segment.bytes=lots");
    assert!(failed, "server did not fail: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].contains("log.segment.bytes"), "{stderr}");
    assert!(lines[0].contains("lots"), "{stderr}");
    assert!(lines[0].contains("FILE"), "{stderr}");
}

#[test]
fn an_unknown_key_is_a_warning_not_an_error() {
    let (failed, stderr) = run_server("listeners=PLAINTEXT://127.0.0.1:0\nno.such.setting=1");
    assert!(!failed, "server failed: {stderr}");
    assert!(
        stderr.contains("no.such.setting"),
        "no warning naming the key: {stderr}"
    );
    assert!(stderr.contains("shut down cleanly"), "{stderr}");
}

/// config/server-1..3.properties form one cluster when started side by side on one machine:
/// a mistake in one of them (a shared port or log dir, a voter list that differs) would only
/// show when a user starts all three.
#[test]
fn the_shipped_three_node_files_parse_and_agree() {
    use sluice_config::{ProcessRole, ServerConfig};
    use std::collections::BTreeSet;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let files: Vec<std::path::PathBuf> = (1..=3)
        .map(|n| root.join(format!("server-{n}.properties")))
        .collect();
    let configs: Vec<ServerConfig> = files
        .iter()
        .map(|f| {
            let c = ServerConfig::from_file(f, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(c.warnings.is_empty(), "{}: {:?}", f.display(), c.warnings);
            c
        })
        .collect();

    let voters = configs[0].controller_quorum_voters.clone().expect("voters");
    let mut ports = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for (i, c) in configs.iter().enumerate() {
        let n = i as i32 + 1;
        let file = files[i].display();
        assert_eq!(c.node_id, n, "{file}");
        let roles = c.process_roles.clone().unwrap_or_default();
        assert!(
            roles.contains(&ProcessRole::Broker) && roles.contains(&ProcessRole::Controller),
            "{file}: combined nodes only"
        );
        assert_eq!(
            c.controller_quorum_voters.as_ref(),
            Some(&voters),
            "{file}: every node must name the same voters"
        );
        let listener = |name: &str| {
            c.listeners
                .iter()
                .find(|l| l.name == name)
                .unwrap_or_else(|| panic!("{file}: no {name} listener"))
        };
        let controller = listener("CONTROLLER");
        let plaintext = listener("PLAINTEXT");
        let me = voters.iter().find(|v| v.id == n).expect("a voter entry");
        assert_eq!(
            (me.host.as_str(), me.port),
            (controller.host.as_str(), controller.port),
            "{file}: its voter entry must be its CONTROLLER listener"
        );
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
        assert_eq!(
            c.advertised_listeners
                .iter()
                .map(|l| (l.name.as_str(), l.port))
                .collect::<Vec<_>>(),
            vec![("PLAINTEXT", plaintext.port)],
            "{file}: clients must be told the port it listens on"
        );
        assert!(ports.insert(controller.port), "{file}: port reused");
        assert!(ports.insert(plaintext.port), "{file}: port reused");
        for d in &c.log_dirs {
            assert!(dirs.insert(d.clone()), "{file}: log dir {} reused", d.display());
        }
        assert_eq!(
            c.offsets_topic_replication_factor, 3,
            "{file}: three brokers can hold three copies of __consumer_offsets"
        );
    }
    assert_eq!(voters.len(), 3);
    // The single-node file must not share a log dir with the cluster's nodes either.
    let single = ServerConfig::from_file(&root.join("server.properties"), &[]).unwrap();
    assert!(single.log_dirs.iter().all(|d| !dirs.contains(d)));

    // Apart from what makes a node itself, the three files say the same thing, so a setting
    // changed in one is not forgotten in the others.
    let own = ["node.id", "listeners", "advertised.listeners", "log.dirs"];
    let shared = |c: &ServerConfig| {
        let mut raw = c.raw.clone();
        raw.retain(|k, _| !own.contains(&k.as_str()));
        raw
    };
    assert_eq!(shared(&configs[0]), shared(&configs[1]));
    assert_eq!(shared(&configs[0]), shared(&configs[2]));
}
