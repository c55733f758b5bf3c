//! `sluice server` start-up with bad configuration: one line naming the key, the value and the
//! file, and a non-zero exit; unknown keys only warn.

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
