//! `sluice connect-standalone` refuses bad configuration before starting anything: exit 1 and
//! one line naming the key and the file.

use std::path::Path;
use std::process::Command;

fn run(args: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("connect-standalone")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn worker_file(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("worker.properties");
    std::fs::write(
        &path,
        format!(
            "bootstrap.servers=127.0.0.1:1\nkey.converter=JsonConverter\nvalue.converter=JsonConverter\noffset.storage.file.filename={}\n{extra}",
            dir.join("offsets").display()
        ),
    )
    .unwrap();
    path
}

fn assert_one_line_naming(stderr: &str, words: &[&str]) {
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "{w:?} not in {stderr}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.properties");
    let (code, stderr) = run(&[&missing, &missing]);
    assert_eq!(code, 1);
    assert_one_line_naming(&stderr, &[missing.to_str().unwrap()]);
}

#[test]
fn a_bad_worker_key_is_named_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_file(dir.path(), "offset.flush.interval.ms=soon\n");
    let connector = dir.path().join("c.properties");
    std::fs::write(&connector, "name=c\nconnector.class=X\n").unwrap();
    let (code, stderr) = run(&[&worker, &connector]);
    assert_eq!(code, 1);
    assert_one_line_naming(
        &stderr,
        &["offset.flush.interval.ms", worker.to_str().unwrap()],
    );

    std::fs::remove_file(&worker).unwrap();
    std::fs::write(
        &worker,
        "key.converter=JsonConverter\nvalue.converter=JsonConverter\n",
    )
    .unwrap();
    let (code, stderr) = run(&[&worker, &connector]);
    assert_eq!(code, 1);
    assert_one_line_naming(
        &stderr,
        &["offset.storage.file.filename", worker.to_str().unwrap()],
    );
}

#[test]
fn a_bad_connector_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_file(dir.path(), "");
    let connector = dir.path().join("c.properties");
    std::fs::write(&connector, "connector.class=X\n").unwrap();
    let (code, stderr) = run(&[&worker, &connector]);
    assert_eq!(code, 1);
    assert_one_line_naming(&stderr, &["name", connector.to_str().unwrap()]);

    // No connector is compiled in under this name (yet): refused before anything starts.
    std::fs::write(&connector, "name=c\nconnector.class=NoSuchSource\n").unwrap();
    let (code, stderr) = run(&[&worker, &connector]);
    assert_eq!(code, 1);
    assert_one_line_naming(
        &stderr,
        &[
            "connector.class",
            "NoSuchSource",
            connector.to_str().unwrap(),
        ],
    );
}
