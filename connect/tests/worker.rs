//! The standalone worker against an in-process broker, with small connectors defined here:
//! what reaches the topic, resuming from saved offsets, sinks seeing records in order, one
//! failing task not stopping the others, and errors.tolerance.

use std::time::Duration;

use serde_json::json;
use sluice_client::{ClientConfig, Producer, ProducerRecord};
use sluice_connect::data::{Schema, Value};
use sluice_connect::runtime::{State, Worker};

mod common;

use common::*;

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_records_reach_the_topic_and_a_restart_resumes_from_saved_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let received = Received::default();

    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    worker
        .start_connector("counter", source_props("counted", 20))
        .await
        .unwrap();
    let values = read_values(broker.addr, "counted", 20).await;
    assert_eq!(values, (1..=20).map(envelope).collect::<Vec<_>>());
    let status = worker.connector_status("counter").unwrap();
    assert_eq!(status.state, State::Running);
    assert_eq!(status.tasks[0].state, State::Running);
    worker.stop().await;
    assert_eq!(
        worker.connector_status("counter").unwrap().tasks[0].state,
        State::Unassigned
    );
    let saved = std::fs::read_to_string(dir.path().join("connect.offsets")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved[0]["key"], json!(["counter", {"source": "counter"}]));
    assert_eq!(saved[0]["value"], json!({"position": 20}));

    // Same offset file, more to emit: only the new records are produced.
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    worker
        .start_connector("counter", source_props("counted", 30))
        .await
        .unwrap();
    let values = read_values(broker.addr, "counted", 30).await;
    assert_eq!(values, (1..=30).map(envelope).collect::<Vec<_>>());
    worker.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_receives_the_topic_in_order_and_a_failed_task_leaves_others_running() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let received = Received::default();
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();

    let mut broken = source_props("broken", 5);
    broken.insert("fail".into(), "yes".into());
    worker.start_connector("broken", broken).await.unwrap();
    worker
        .start_connector("counter", source_props("piped", 12))
        .await
        .unwrap();
    worker
        .start_connector(
            "collector",
            props(&[
                ("connector.class", "test.CollectingSinkConnector"),
                ("topics", "piped"),
            ]),
        )
        .await
        .unwrap();

    wait_for("12 records at the sink", || {
        received.lock().unwrap().len() >= 12
    })
    .await;
    let expected: Vec<Value> = (1..=12)
        .map(|n| Value::from(format!("record-{n}")))
        .collect();
    assert_eq!(values_of(&received), expected);
    {
        let got = received.lock().unwrap();
        assert!(got.iter().all(|r| r.value_schema == Some(Schema::STRING)));
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (0..12).collect::<Vec<i64>>()
        );
    }

    wait_for("the broken task to fail", || {
        worker.connector_status("broken").unwrap().tasks[0].state == State::Failed
    })
    .await;
    let broken = worker.connector_status("broken").unwrap();
    assert!(broken.tasks[0].trace.as_deref().unwrap().contains("boom"));
    assert_eq!(broken.state, State::Running);
    for name in ["counter", "collector"] {
        assert_eq!(
            worker.connector_status(name).unwrap().tasks[0].state,
            State::Running,
            "{name}"
        );
    }
    worker.stop().await;

    // The sink's group committed everything at stop: a restart receives nothing again.
    received.lock().unwrap().clear();
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    worker
        .start_connector(
            "collector",
            props(&[("connector.class", "CollectingSink"), ("topics", "piped")]),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(received.lock().unwrap().is_empty());
    worker.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tolerance_all_skips_an_unparsable_record_and_none_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let producer =
        Producer::new(ClientConfig::new().set("bootstrap.servers", broker.addr.to_string()))
            .await
            .unwrap();
    for value in ["not json".to_string(), envelope(1)] {
        producer
            .send_and_wait(ProducerRecord::new("mixed").value(value))
            .await
            .unwrap();
    }
    producer.close().await;

    let tolerant = Received::default();
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&tolerant)).unwrap();
    worker
        .start_connector(
            "tolerant",
            props(&[
                ("connector.class", "CollectingSink"),
                ("topics", "mixed"),
                ("errors.tolerance", "all"),
                ("errors.log.enable", "true"),
                ("errors.deadletterqueue.topic.name", "mixed-dlq"),
                ("errors.deadletterqueue.context.headers.enable", "true"),
            ]),
        )
        .await
        .unwrap();
    wait_for("the valid record", || !tolerant.lock().unwrap().is_empty()).await;
    // The unreadable record went to the dead letter queue as it was, with where it came from.
    let mut dlq = sluice_client::Consumer::new(
        ClientConfig::new()
            .set("bootstrap.servers", broker.addr.to_string())
            .set("auto.offset.reset", "earliest"),
    )
    .unwrap();
    dlq.assign([sluice_client::TopicPartition::new("mixed-dlq", 0)])
        .unwrap();
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while dead.is_empty() && std::time::Instant::now() < deadline {
        dead = dlq.poll(Duration::from_millis(200)).await.unwrap();
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));
    let header = |k: &str| {
        dead[0]
            .headers
            .iter()
            .find(|h| h.key == k)
            .and_then(|h| h.value.clone())
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(header("__connect.errors.topic").as_deref(), Some("mixed"));
    assert_eq!(header("__connect.errors.offset").as_deref(), Some("0"));
    assert!(header("__connect.errors.exception.message").is_some());
    dlq.close().await.unwrap();
    assert_eq!(values_of(&tolerant), [Value::from("record-1")]);
    assert_eq!(tolerant.lock().unwrap()[0].offset, 1);
    assert_eq!(
        worker.connector_status("tolerant").unwrap().tasks[0].state,
        State::Running
    );

    worker
        .start_connector(
            "strict",
            props(&[("connector.class", "CollectingSink"), ("topics", "mixed")]),
        )
        .await
        .unwrap();
    wait_for("the strict task to fail", || {
        worker.connector_status("strict").unwrap().tasks[0].state == State::Failed
    })
    .await;
    let trace = worker.connector_status("strict").unwrap().tasks[0]
        .trace
        .clone()
        .unwrap();
    assert!(trace.contains("errors.tolerance=none"), "{trace}");
    worker.stop().await;
    broker.stop().await;
}

#[tokio::test]
async fn an_unknown_connector_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let received = Received::default();
    let worker = Worker::new(
        worker_config("127.0.0.1:1".parse().unwrap(), dir.path()),
        registry(&received),
    )
    .unwrap();
    let e = worker
        .start_connector("f", props(&[("connector.class", "FileStreamSource")]))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("FileStreamSource"), "{e}");
    assert!(worker.connector_status("f").is_none());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_transforms_route_and_filter_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let received = Received::default();
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    let mut p = source_props("raw-counts", 10);
    for (k, v) in [
        ("transforms", "route,drop"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "raw-(.*)"),
        ("transforms.route.replacement", "clean-$1"),
        ("transforms.drop.type", "Filter"),
        ("transforms.drop.predicate", "is-raw"),
        ("predicates", "is-raw"),
        ("predicates.is-raw.type", "TopicNameMatches"),
        ("predicates.is-raw.pattern", "raw-.*"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    worker.start_connector("router", p).await.unwrap();
    // Routed first, so the filter (on the old name) lets every record through to the new topic.
    let values = read_values(broker.addr, "clean-counts", 10).await;
    assert_eq!(values, (1..=10).map(envelope).collect::<Vec<_>>());
    worker.stop().await;

    // A filter that matches drops every record, and their offsets still count as processed.
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    let mut p = source_props("dropped-counts", 5);
    for (k, v) in [
        ("transforms", "drop"),
        ("transforms.drop.type", "Filter"),
        ("transforms.drop.predicate", "all"),
        ("predicates", "all"),
        ("predicates.all.type", "TopicNameMatches"),
        ("predicates.all.pattern", "dropped-.*"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    worker.start_connector("dropper", p).await.unwrap();
    let saved_position = || {
        let saved = std::fs::read_to_string(dir.path().join("connect.offsets")).unwrap_or_default();
        saved.contains("\"dropper\"") && saved.contains("\"position\": 5")
    };
    wait_for("the filtered records' offsets to be saved", saved_position).await;
    worker.stop().await;
    assert!(read_values(broker.addr, "dropped-counts", 0)
        .await
        .is_empty());

    // A bad transform config fails the start and names the key.
    let worker = Worker::new(worker_config(broker.addr, dir.path()), registry(&received)).unwrap();
    let mut bad = source_props("raw-counts", 1);
    bad.insert("transforms".into(), "route".into());
    let e = worker.start_connector("bad", bad).await.unwrap_err();
    assert!(e.to_string().contains("transforms.route.type"), "{e}");
    worker.stop().await;
    broker.stop().await;
}
