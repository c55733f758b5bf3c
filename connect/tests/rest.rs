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
    let (code, plan) = call(
        addr,
        "POST",
        "/connectors/broken/restart?includeTasks=true&onlyFailed=true",
        None,
    )
    .await;
    assert_eq!(code, 202, "{plan}");
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

/// A broker, a worker with the test connectors and its REST API, for one test.
struct Harness {
    dir: tempfile::TempDir,
    broker: RunningBroker,
    worker: Arc<Worker>,
    addr: SocketAddr,
    received: Received,
    stop_rest: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let broker = start_broker(dir.path()).await;
        let received = Received::default();
        let worker = Arc::new(
            Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap(),
        );
        let (stop_rest, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = sluice_connect::rest::serve(worker.clone(), "http://127.0.0.1:0", async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        Harness {
            dir,
            broker,
            worker,
            addr,
            received,
            stop_rest,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(self.addr, method, path, body).await
    }

    async fn create(&self, name: &str, config: Value) {
        let (code, body) = self
            .call(
                "POST",
                "/connectors",
                Some(json!({"name": name, "config": config})),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }

    async fn produce(&self, topic: &str, values: impl IntoIterator<Item = usize>) {
        let producer = sluice_client::Producer::new(
            sluice_client::ClientConfig::new()
                .set("bootstrap.servers", self.broker.addr.to_string()),
        )
        .await
        .unwrap();
        for n in values {
            producer
                .send_and_wait(sluice_client::ProducerRecord::new(topic).value(envelope(n)))
                .await
                .unwrap();
        }
        producer.close().await;
    }

    /// Polls `GET path` until `done` accepts the body.
    async fn wait_body(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let (code, body) = self.call("GET", path, None).await;
            if code == 200 && done(&body) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "GET {path} never answered as wanted: {:?}",
            self.call("GET", path, None).await
        );
    }

    /// Resumes `name` and waits until the collecting sink holds at least `count` records.
    async fn resume_until_received(&self, name: &str, count: usize, what: &str) {
        let path = format!("/connectors/{name}/resume");
        assert_eq!(self.call("PUT", &path, None).await.0, 202);
        wait_for(what, || self.received.lock().unwrap().len() >= count).await;
    }

    async fn stop(self) {
        let _ = self.stop_rest.send(());
        self.worker.stop().await;
        self.broker.stop().await;
        drop(self.dir);
    }
}

fn received_values(received: &Received) -> Vec<String> {
    values_of(received)
        .into_iter()
        .map(|v| match v {
            sluice_connect::data::Value::String(s) => s,
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

fn records(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|n| format!("record-{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_list_expands_to_status_and_info() {
    let h = Harness::start().await;
    h.create(
        "counter",
        json!({"connector.class": "CountingSource", "topic": "listed", "count": "3"}),
    )
    .await;
    h.create(
        "collector",
        json!({"connector.class": "CollectingSink", "topics": "listed"}),
    )
    .await;
    for name in ["counter", "collector"] {
        wait_state(h.addr, name, "RUNNING", &["RUNNING"]).await;
    }

    let (code, plain) = h.call("GET", "/connectors", None).await;
    assert_eq!(code, 200);
    assert_eq!(plain, json!(["collector", "counter"]));

    let (code, by_status) = h.call("GET", "/connectors?expand=status", None).await;
    assert_eq!(code, 200);
    let (code, by_info) = h.call("GET", "/connectors?expand=info", None).await;
    assert_eq!(code, 200);
    let (code, both) = h
        .call("GET", "/connectors?expand=status&expand=info", None)
        .await;
    assert_eq!(code, 200);
    let (_, unknown) = h.call("GET", "/connectors?expand=nothing", None).await;
    assert_eq!(unknown, json!({"collector": {}, "counter": {}}));
    for name in ["counter", "collector"] {
        let (_, status) = h
            .call("GET", &format!("/connectors/{name}/status"), None)
            .await;
        let (_, info) = h.call("GET", &format!("/connectors/{name}"), None).await;
        assert_eq!(by_status[name], json!({ "status": status }), "{name}");
        assert_eq!(by_info[name], json!({ "info": info }), "{name}");
        assert_eq!(
            both[name],
            json!({"status": status, "info": info}),
            "{name}"
        );
    }
    assert_eq!(by_status.as_object().unwrap().len(), 2);
    assert_eq!(both["counter"]["info"]["type"], "source");
    assert_eq!(both["collector"]["status"]["type"], "sink");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_has_its_own_status_and_restart() {
    let h = Harness::start().await;
    let trouble = h.dir.path().join("trouble");
    std::fs::write(&trouble, "").unwrap();
    h.create(
        "flaky",
        json!({"connector.class": "CountingSource", "topic": "flaky", "count": "1000000",
               "fail.while.exists": trouble.to_str().unwrap()}),
    )
    .await;
    wait_state(h.addr, "flaky", "RUNNING", &["FAILED"]).await;

    let (code, task) = h
        .call("GET", "/connectors/flaky/tasks/0/status", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(task["id"], 0);
    assert_eq!(task["state"], "FAILED");
    assert_eq!(task["worker_id"], h.addr.to_string());
    assert!(task["trace"].as_str().unwrap().contains("boom"), "{task}");
    let (code, err) = h
        .call("GET", "/connectors/flaky/tasks/1/status", None)
        .await;
    assert_eq!(code, 404);
    assert_eq!(err["error_code"], 404);
    assert!(
        err["message"].as_str().unwrap().contains("flaky-1"),
        "{err}"
    );
    for path in [
        "/connectors/flaky/tasks/zero/status",
        "/connectors/nope/tasks/0/status",
    ] {
        let (code, err) = h.call("GET", path, None).await;
        assert_eq!(
            (code, err["error_code"].clone()),
            (404, json!(404)),
            "{path}"
        );
    }

    // KIP-745: what would be restarted is answered as RESTARTING, the rest as it is.
    let (code, plan) = h
        .call("POST", "/connectors/flaky/restart?onlyFailed=true", None)
        .await;
    assert_eq!(code, 202);
    assert_eq!(plan["connector"]["state"], "RUNNING");
    assert_eq!(plan["tasks"][0]["state"], "FAILED");
    let (code, plan) = h
        .call(
            "POST",
            "/connectors/flaky/restart?includeTasks=true&onlyFailed=true",
            None,
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(plan["name"], "flaky");
    assert_eq!(plan["connector"]["state"], "RUNNING");
    assert_eq!(plan["tasks"][0]["state"], "RESTARTING");
    assert!(plan["tasks"][0].get("trace").is_none());
    wait_state(h.addr, "flaky", "RUNNING", &["FAILED"]).await;
    let (code, plan) = h
        .call("POST", "/connectors/flaky/restart?includeTasks=true", None)
        .await;
    assert_eq!(code, 202);
    assert_eq!(plan["connector"]["state"], "RESTARTING");
    assert_eq!(plan["tasks"][0]["state"], "RESTARTING");
    let (code, _) = h
        .call("POST", "/connectors/nope/restart?includeTasks=true", None)
        .await;
    assert_eq!(code, 404);

    // Mended, the failed task comes back with a restart of its own.
    wait_state(h.addr, "flaky", "RUNNING", &["FAILED"]).await;
    std::fs::remove_file(&trouble).unwrap();
    let (code, body) = h
        .call("POST", "/connectors/flaky/tasks/0/restart", None)
        .await;
    assert_eq!((code, body), (204, Value::Null));
    wait_state(h.addr, "flaky", "RUNNING", &["RUNNING"]).await;
    let (_, task) = h
        .call("GET", "/connectors/flaky/tasks/0/status", None)
        .await;
    assert_eq!(
        task,
        json!({"id": 0, "state": "RUNNING", "worker_id": h.addr.to_string()})
    );
    assert!(!read_values(h.broker.addr, "flaky", 5).await.is_empty());
    for path in [
        "/connectors/flaky/tasks/1/restart",
        "/connectors/nope/tasks/0/restart",
    ] {
        let (code, err) = h.call("POST", path, None).await;
        assert_eq!(
            (code, err["error_code"].clone()),
            (404, json!(404)),
            "{path}"
        );
    }
    h.stop().await;
}

/// The `configs` entry for `key` in a validation answer.
fn config_entry<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == key)
        .unwrap_or_else(|| panic!("no {key} in {answer}"))
}

fn errors_of(answer: &Value, key: &str) -> Vec<String> {
    config_entry(answer, key)["value"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn plugin_configs_are_described_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    // Validation needs no cluster: nothing is started.
    let worker = Arc::new(
        Worker::new(
            worker_config("127.0.0.1:9".parse().unwrap(), dir.path()),
            registry(&Received::default()),
        )
        .unwrap(),
    );
    let addr = sluice_connect::rest::serve(worker, "http://127.0.0.1:0", std::future::pending())
        .await
        .unwrap();
    let validate = |plugin: &'static str, body: Value| async move {
        call(
            addr,
            "PUT",
            &format!("/connector-plugins/{plugin}/config/validate"),
            Some(body),
        )
        .await
    };

    let (code, keys) = call(
        addr,
        "GET",
        "/connector-plugins/CountingSource/config",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        keys[0],
        json!({"name": "count", "type": "LONG", "required": true, "default_value": null,
               "importance": "HIGH", "documentation": "How many records to emit.",
               "group": "Counting", "order": 1, "width": "NONE", "display_name": "count",
               "dependents": []})
    );
    assert_eq!(keys[1]["name"], "fail");
    assert_eq!(keys[1]["required"], false);
    assert_eq!(keys[1]["order"], 2);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let (code, err) = call(addr, "GET", "/connector-plugins/NoSuch/config", None).await;
    assert_eq!((code, err["error_code"].clone()), (404, json!(404)));

    // Good: no errors, values as given or defaulted.
    let (code, good) = validate(
        "CountingSource",
        json!({"connector.class": "CountingSource", "name": "v", "topic": "t", "count": 5}),
    )
    .await;
    assert_eq!(code, 200, "{good}");
    assert_eq!(good["name"], "test.CountingSourceConnector");
    assert_eq!(good["error_count"], 0, "{good}");
    assert_eq!(
        good["groups"],
        json!([
            "Common",
            "Transforms",
            "Predicates",
            "Error Handling",
            "Counting"
        ])
    );
    assert_eq!(
        config_entry(&good, "count")["value"],
        json!({"name": "count", "value": "5", "recommended_values": [], "errors": [], "visible": true})
    );
    let tasks_max = config_entry(&good, "tasks.max");
    assert_eq!(tasks_max["value"]["value"], "1");
    assert_eq!(tasks_max["definition"]["type"], "INT");
    assert_eq!(tasks_max["definition"]["group"], "Common");
    assert_eq!(tasks_max["definition"]["order"], 3);
    assert_eq!(
        config_entry(&good, "connector.class")["value"]["value"],
        "test.CountingSourceConnector"
    );

    // The connector's own check (topic) lands on its key even though it is not declared; so
    // do the worker's checks and the declared required keys.
    let (code, bad) = validate("test.CountingSourceConnector", json!({"tasks.max": "many"})).await;
    assert_eq!(code, 200, "{bad}");
    let topic = errors_of(&bad, "topic");
    assert_eq!(topic.len(), 1, "{bad}");
    assert!(topic[0].contains("topic"), "{bad}");
    for key in ["name", "count", "tasks.max"] {
        assert_eq!(errors_of(&bad, key).len(), 1, "{key}: {bad}");
        assert!(errors_of(&bad, key)[0].contains(key), "{bad}");
    }
    assert_eq!(bad["error_count"], 4, "{bad}");
    assert!(errors_of(&bad, "connector.class").is_empty());

    // A sink needs exactly one of topics and topics.regex; transformations are checked too.
    let (code, sink) = validate(
        "CollectingSink",
        json!({"name": "s", "transforms": "route"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(errors_of(&sink, "topics").len(), 1, "{sink}");
    assert_eq!(errors_of(&sink, "topics.regex").len(), 1, "{sink}");
    assert_eq!(errors_of(&sink, "transforms.route.type").len(), 1, "{sink}");
    assert_eq!(sink["error_count"], 3, "{sink}");
    assert_eq!(
        config_entry(&sink, "errors.tolerance")["value"]["value"],
        "none"
    );

    let (code, err) = validate(
        "CollectingSink",
        json!({"connector.class": "CountingSource"}),
    )
    .await;
    assert_eq!(
        (code, err["error_code"].clone()),
        (400, json!(400)),
        "{err}"
    );
    let (code, _) = validate("NoSuch", json!({})).await;
    assert_eq!(code, 404);
    let (code, _) = validate("CountingSource", json!(["not", "a", "map"])).await;
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_offsets_are_listed_and_changed_while_stopped() {
    let h = Harness::start().await;
    h.create(
        "counter",
        json!({"connector.class": "CountingSource", "topic": "counted", "count": "20"}),
    )
    .await;
    let want =
        json!({"offsets": [{"partition": {"source": "counter"}, "offset": {"position": 20}}]});
    h.wait_body("/connectors/counter/offsets", |b| *b == want)
        .await;
    let (code, _) = h.call("GET", "/connectors/nope/offsets", None).await;
    assert_eq!(code, 404);

    // Only a stopped connector's offsets change.
    let rewind =
        json!({"offsets": [{"partition": {"source": "counter"}, "offset": {"position": 15}}]});
    let (code, err) = h
        .call("PATCH", "/connectors/counter/offsets", Some(rewind.clone()))
        .await;
    assert_eq!(
        (code, err["error_code"].clone()),
        (400, json!(400)),
        "{err}"
    );
    assert!(err["message"].as_str().unwrap().contains("stop"), "{err}");
    assert_eq!(
        h.call("DELETE", "/connectors/counter/offsets", None)
            .await
            .0,
        400
    );

    assert_eq!(h.call("PUT", "/connectors/counter/stop", None).await.0, 202);
    wait_state(h.addr, "counter", "STOPPED", &[]).await;
    let (code, done) = h
        .call("PATCH", "/connectors/counter/offsets", Some(rewind.clone()))
        .await;
    assert_eq!(code, 200, "{done}");
    assert!(done["message"].is_string());
    assert_eq!(
        h.call("GET", "/connectors/counter/offsets", None).await.1,
        rewind
    );
    for bad in [
        json!({}),
        json!({"offsets": []}),
        json!({"offsets": [{"offset": {}}]}),
    ] {
        let (code, _) = h
            .call("PATCH", "/connectors/counter/offsets", Some(bad.clone()))
            .await;
        assert_eq!(code, 400, "{bad}");
    }
    assert_eq!(
        h.call("PATCH", "/connectors/nope/offsets", Some(rewind))
            .await
            .0,
        404
    );

    // Resumed, the source carries on after the rewound position.
    assert_eq!(
        h.call("PUT", "/connectors/counter/resume", None).await.0,
        202
    );
    let values = read_values(h.broker.addr, "counted", 25).await;
    assert_eq!(values.len(), 25);
    assert_eq!(
        values[20..],
        (16..=20).map(envelope).collect::<Vec<_>>()[..]
    );
    h.wait_body("/connectors/counter/offsets", |b| *b == want)
        .await;

    // A reset forgets the connector's offsets; others' stay.
    h.create(
        "other",
        json!({"connector.class": "CountingSource", "topic": "other", "count": "2"}),
    )
    .await;
    let other =
        json!({"offsets": [{"partition": {"source": "counter"}, "offset": {"position": 2}}]});
    h.wait_body("/connectors/other/offsets", |b| *b == other)
        .await;
    assert_eq!(h.call("PUT", "/connectors/counter/stop", None).await.0, 202);
    wait_state(h.addr, "counter", "STOPPED", &[]).await;
    let (code, done) = h.call("DELETE", "/connectors/counter/offsets", None).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        h.call("GET", "/connectors/counter/offsets", None).await.1,
        json!({"offsets": []})
    );
    assert_eq!(
        h.call("GET", "/connectors/other/offsets", None).await.1,
        other
    );
    let saved = std::fs::read_to_string(h.dir.path().join("connect.offsets")).unwrap();
    assert!(!saved.contains("\"counter\","), "{saved}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_offsets_are_the_groups_and_change_while_stopped() {
    let h = Harness::start().await;
    h.produce("piped", 1..=12).await;
    h.create(
        "collector",
        json!({"connector.class": "CollectingSink", "topics": "piped"}),
    )
    .await;
    let at = |n: i64| {
        json!({"offsets": [{"partition": {"kafka_topic": "piped", "kafka_partition": 0},
                            "offset": {"kafka_offset": n}}]})
    };
    h.wait_body("/connectors/collector/offsets", |b| *b == at(12))
        .await;
    assert_eq!(received_values(&h.received), records(1..=12));

    assert_eq!(
        h.call("PATCH", "/connectors/collector/offsets", Some(at(10)))
            .await
            .0,
        400
    );
    assert_eq!(
        h.call("PUT", "/connectors/collector/stop", None).await.0,
        202
    );
    wait_state(h.addr, "collector", "STOPPED", &[]).await;
    let (code, done) = h
        .call("PATCH", "/connectors/collector/offsets", Some(at(10)))
        .await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        h.call("GET", "/connectors/collector/offsets", None).await.1,
        at(10)
    );
    for bad in [
        json!({"offsets": [{"partition": {"kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}),
        json!({"offsets": [{"partition": {"kafka_topic": "piped", "kafka_partition": -1}, "offset": {"kafka_offset": 1}}]}),
        json!({"offsets": [{"partition": {"kafka_topic": "piped", "kafka_partition": 0}, "offset": {"position": 1}}]}),
    ] {
        let (code, _) = h
            .call("PATCH", "/connectors/collector/offsets", Some(bad.clone()))
            .await;
        assert_eq!(code, 400, "{bad}");
    }

    // Resumed at offset 10: the last two records come again.
    h.received.lock().unwrap().clear();
    h.resume_until_received("collector", 2, "the rewound records")
        .await;
    h.wait_body("/connectors/collector/offsets", |b| *b == at(12))
        .await;
    assert_eq!(received_values(&h.received), records(11..=12));

    // A null offset erases that partition's commit; a reset erases the group.
    assert_eq!(
        h.call("PUT", "/connectors/collector/stop", None).await.0,
        202
    );
    wait_state(h.addr, "collector", "STOPPED", &[]).await;
    let erase = json!({"offsets": [{"partition": {"kafka_topic": "piped", "kafka_partition": 0}, "offset": null}]});
    let (code, done) = h
        .call("PATCH", "/connectors/collector/offsets", Some(erase))
        .await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        h.call("GET", "/connectors/collector/offsets", None).await.1,
        json!({"offsets": []})
    );
    let (code, done) = h
        .call("DELETE", "/connectors/collector/offsets", None)
        .await;
    assert_eq!(code, 200, "{done}");
    h.received.lock().unwrap().clear();
    h.resume_until_received("collector", 12, "the whole topic again")
        .await;
    assert_eq!(received_values(&h.received), records(1..=12));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sink_receives_nothing_until_resumed() {
    let h = Harness::start().await;
    h.produce("flow", 1..=5).await;
    h.create(
        "collector",
        json!({"connector.class": "CollectingSink", "topics": "flow"}),
    )
    .await;
    wait_for("the first records", || {
        h.received.lock().unwrap().len() >= 5
    })
    .await;
    assert_eq!(
        h.call("PUT", "/connectors/collector/pause", None).await.0,
        202
    );
    // Produced at once, while the task may be in the middle of a poll.
    h.produce("flow", 6..=10).await;
    wait_state(h.addr, "collector", "PAUSED", &["PAUSED"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(received_values(&h.received), records(1..=5));

    h.resume_until_received("collector", 10, "the records produced while paused")
        .await;
    assert_eq!(received_values(&h.received), records(1..=10));
    h.stop().await;
}
