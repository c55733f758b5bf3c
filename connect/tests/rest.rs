//! The Connect REST API against a worker running test connectors on an in-process broker,
//! spoken to over plain HTTP/1.1 so the paths, status codes and JSON are what curl would see.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use sluice_connect::runtime::Worker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on a fresh connection; returns the status code and the body parsed as JSON
/// (`Null` for an empty body).
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, json)
}

async fn state_of(addr: SocketAddr, name: &str) -> (String, Vec<String>) {
    let (_, s) = call(addr, "GET", &format!("/connectors/{name}/status"), None).await;
    let tasks = s["tasks"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["state"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (
        s["connector"]["state"].as_str().unwrap_or("").to_string(),
        tasks,
    )
}

async fn wait_state(addr: SocketAddr, name: &str, connector: &str, tasks: &[&str]) {
    for _ in 0..400 {
        let (c, t) = state_of(addr, name).await;
        if c == connector && t == tasks {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{name} never reached {connector} {tasks:?}: {:?}",
        state_of(addr, name).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_kafka_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let received = Received::default();
    let worker =
        Arc::new(Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let addr = sluice_connect::rest::serve(worker.clone(), "http://127.0.0.1:0", async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    assert_ne!(addr.port(), 0);

    let (code, root) = call(addr, "GET", "/", None).await;
    assert_eq!(code, 200);
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert!(root["commit"].is_string());
    assert!(root["kafka_cluster_id"].is_string(), "{root}");

    let (code, plugins) = call(addr, "GET", "/connector-plugins", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        plugins,
        json!([
            {"class": "test.CollectingSinkConnector", "type": "sink", "version": "test"},
            {"class": "test.CountingSourceConnector", "type": "source", "version": "test"},
        ])
    );

    // Create by POST; a second POST of the same name conflicts.
    let counter = json!({"name": "counter", "config": {
        "connector.class": "CountingSource", "topic": "counted", "count": 1000000, "tasks.max": "1"
    }});
    let (code, created) = call(addr, "POST", "/connectors", Some(counter.clone())).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], "counter");
    assert_eq!(created["type"], "source");
    assert_eq!(created["config"]["count"], "1000000");
    assert_eq!(created["config"]["name"], "counter");
    assert_eq!(
        created["tasks"],
        json!([{"connector": "counter", "task": 0}])
    );
    let (code, err) = call(addr, "POST", "/connectors", Some(counter)).await;
    assert_eq!(code, 409);
    assert_eq!(err["error_code"], 409);

    // A bad configuration is a 400 naming the key.
    let (code, err) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "bad", "config": {"connector.class": "CountingSource", "tasks.max": "many"}})),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(err["error_code"], 400);
    assert!(
        err["message"].as_str().unwrap().contains("tasks.max"),
        "{err}"
    );
    let (code, err) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "bad", "config": {"connector.class": "NoSuchThing"}})),
    )
    .await;
    assert_eq!(code, 400, "{err}");

    let (code, info) = call(addr, "GET", "/connectors/counter", None).await;
    assert_eq!(code, 200);
    assert_eq!(info, created);
    let (code, err) = call(addr, "GET", "/connectors/nope", None).await;
    assert_eq!(code, 404);
    assert_eq!(
        err,
        json!({"error_code": 404, "message": "Connector nope not found"})
    );
    for (method, path) in [
        ("GET", "/connectors/nope/status"),
        ("GET", "/connectors/nope/config"),
        ("GET", "/connectors/nope/tasks"),
        ("PUT", "/connectors/nope/pause"),
        ("POST", "/connectors/nope/restart"),
        ("DELETE", "/connectors/nope"),
    ] {
        assert_eq!(
            call(addr, method, path, None).await.0,
            404,
            "{method} {path}"
        );
    }

    let (code, config) = call(addr, "GET", "/connectors/counter/config", None).await;
    assert_eq!(code, 200);
    assert_eq!(config["topic"], "counted");
    let (code, tasks) = call(addr, "GET", "/connectors/counter/tasks", None).await;
    assert_eq!(code, 200);
    assert_eq!(tasks[0]["id"], json!({"connector": "counter", "task": 0}));
    assert_eq!(tasks[0]["config"]["topic"], "counted");

    wait_state(addr, "counter", "RUNNING", &["RUNNING"]).await;
    let (_, status) = call(addr, "GET", "/connectors/counter/status", None).await;
    assert_eq!(status["name"], "counter");
    assert_eq!(status["type"], "source");
    assert_eq!(status["connector"]["worker_id"], addr.to_string());
    assert_eq!(status["tasks"][0]["id"], 0);
    assert!(status["tasks"][0].get("trace").is_none());

    // Pause, resume, stop, resume again.
    assert_eq!(
        call(addr, "PUT", "/connectors/counter/pause", None).await.0,
        202
    );
    wait_state(addr, "counter", "PAUSED", &["PAUSED"]).await;
    assert_eq!(
        call(addr, "PUT", "/connectors/counter/resume", None)
            .await
            .0,
        202
    );
    wait_state(addr, "counter", "RUNNING", &["RUNNING"]).await;
    assert_eq!(
        call(addr, "PUT", "/connectors/counter/stop", None).await.0,
        202
    );
    wait_state(addr, "counter", "STOPPED", &[]).await;
    let (_, config) = call(addr, "GET", "/connectors/counter/config", None).await;
    assert_eq!(
        config["topic"], "counted",
        "a stopped connector keeps its config"
    );
    assert_eq!(
        call(addr, "PUT", "/connectors/counter/resume", None)
            .await
            .0,
        202
    );
    wait_state(addr, "counter", "RUNNING", &["RUNNING"]).await;

    // A failing task shows FAILED with its trace; a restart runs it again.
    let (code, _) = call(
        addr,
        "PUT",
        "/connectors/broken/config",
        Some(json!({"connector.class": "CountingSource", "topic": "broken", "count": "5", "fail": "yes"})),
    )
    .await;
    assert_eq!(code, 201);
    wait_state(addr, "broken", "RUNNING", &["FAILED"]).await;
    let (_, status) = call(addr, "GET", "/connectors/broken/status", None).await;
    assert!(status["tasks"][0]["trace"]
        .as_str()
        .unwrap()
        .contains("boom"));
    let (code, _) = call(
        addr,
        "POST",
        "/connectors/broken/restart?includeTasks=true&onlyFailed=true",
        None,
    )
    .await;
    assert_eq!(code, 204);
    wait_state(addr, "broken", "RUNNING", &["FAILED"]).await;

    // PUT config on an existing connector replaces it: 200, and the task sees the new config.
    let (code, updated) = call(
        addr,
        "PUT",
        "/connectors/broken/config",
        Some(json!({"connector.class": "CountingSource", "topic": "mended", "count": "5"})),
    )
    .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["config"]["topic"], "mended");
    wait_state(addr, "broken", "RUNNING", &["RUNNING"]).await;
    let (_, tasks) = call(addr, "GET", "/connectors/broken/tasks", None).await;
    assert_eq!(tasks[0]["config"]["topic"], "mended");
    assert!(tasks[0]["config"].get("fail").is_none());
    assert_eq!(read_values(broker.addr, "mended", 5).await.len(), 5);
    assert_eq!(
        call(addr, "POST", "/connectors/broken/restart", None)
            .await
            .0,
        204
    );
    wait_state(addr, "broken", "RUNNING", &["RUNNING"]).await;

    // A sink created by POST reads what the source wrote.
    let (code, _) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "collector", "config": {"connector.class": "CollectingSink", "topics": "mended"}})),
    )
    .await;
    assert_eq!(code, 201);
    wait_for("5 records at the sink", || {
        received.lock().unwrap().len() >= 5
    })
    .await;
    let (_, status) = call(addr, "GET", "/connectors/collector/status", None).await;
    assert_eq!(status["type"], "sink");

    let (_, names) = call(addr, "GET", "/connectors", None).await;
    assert_eq!(names, json!(["broken", "collector", "counter"]));
    assert_eq!(
        call(addr, "DELETE", "/connectors/counter", None).await.0,
        204
    );
    assert_eq!(call(addr, "GET", "/connectors/counter", None).await.0, 404);
    assert_eq!(
        call(addr, "GET", "/connectors/counter/status", None)
            .await
            .0,
        404
    );
    let (_, names) = call(addr, "GET", "/connectors", None).await;
    assert_eq!(names, json!(["broken", "collector"]));

    let _ = stop.send(());
    worker.stop().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_listener_that_cannot_bind_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Arc::new(
        Worker::new(
            worker_config("127.0.0.1:9".parse().unwrap(), dir.path()),
            registry(&Received::default()),
        )
        .unwrap(),
    );
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listeners = format!("http://{}", taken.local_addr().unwrap());
    let err = sluice_connect::rest::serve(worker, &listeners, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}
