//! The Sluice client against the reference clients, through the real broker binary: what the
//! Sluice producer writes, librdkafka and kafka-python read byte for byte; what librdkafka
//! writes, the Sluice consumer reads; and a key lands on the same partition either way.

mod common;

use bytes::Bytes;
use serde_json::{json, Value};
use sluice_client::admin::NewTopic;
use sluice_client::producer::partition_for_key;
use sluice_client::{Admin, ClientConfig, Producer, ProducerRecord};

use common::{python, BrokerProcess};

const PARTITIONS: i32 = 4;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn record_json(
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Option<Bytes>)],
    timestamp: i64,
) -> Value {
    json!({
        "partition": partition,
        "offset": offset,
        "key": key.map(hex),
        "value": value.map(hex),
        "headers": headers.iter().map(|(k, v)| json!([k, v.as_deref().map(hex)])).collect::<Vec<_>>(),
        "timestamp": timestamp,
    })
}

async fn create_topic(bootstrap: &str, name: &str) {
    let admin = Admin::new(ClientConfig::new().set("bootstrap.servers", bootstrap)).unwrap();
    let created = admin
        .create_topics(&[NewTopic::new(name).partitions(PARTITIONS)], false)
        .await
        .unwrap();
    assert!(created.values().all(|r| r.is_ok()), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_producer_records_read_identically_by_librdkafka_and_kafka_python() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    create_topic(&b, "from-sluice").await;
    let producer = Producer::new(
        ClientConfig::new()
            .set("bootstrap.servers", b.as_str())
            .set("compression.type", "zstd")
            .set("linger.ms", "5"),
    )
    .await
    .unwrap();
    let base = 1_700_000_000_000i64;
    let mut pending = Vec::new();
    for i in 0..1000i64 {
        let mut r = ProducerRecord::new("from-sluice").timestamp(base + i * 7);
        let key = (i % 10 != 0).then(|| format!("user-{}", i % 37));
        if let Some(k) = &key {
            r = r.key(k.clone().into_bytes());
        }
        let value = (i % 23 != 0).then(|| format!("event {i} ").repeat(1 + (i % 5) as usize));
        if let Some(v) = &value {
            r = r.value(v.clone().into_bytes());
        }
        let headers: Vec<(String, Option<Bytes>)> = if i % 3 == 0 {
            vec![]
        } else {
            vec![
                ("n".into(), Some(Bytes::from(i.to_string()))),
                ("empty".into(), Some(Bytes::new())),
            ]
        };
        for (k, v) in &headers {
            r = r.header(k.clone(), v.clone().unwrap());
        }
        let delivery = producer.send(r).await.unwrap();
        pending.push((key, value, headers, base + i * 7, delivery));
    }
    let mut expected = Vec::new();
    for (key, value, headers, ts, delivery) in pending {
        let meta = delivery.await.unwrap();
        if let Some(k) = &key {
            // The Java client's partitioner: same key, same partition, whichever client wrote.
            assert_eq!(
                meta.partition,
                partition_for_key(k.as_bytes(), PARTITIONS as usize)
            );
        }
        expected.push(record_json(
            meta.partition,
            meta.offset,
            key.as_deref().map(str::as_bytes),
            value.as_deref().map(str::as_bytes),
            &headers,
            ts,
        ));
    }
    producer.close().await;
    let path = dir.path().join("expected.json");
    std::fs::write(&path, serde_json::to_vec(&expected).unwrap()).unwrap();
    let out = python(
        "interop.py",
        &[
            "read",
            "--bootstrap",
            &b,
            "--topic",
            "from-sluice",
            "--expect",
            path.to_str().unwrap(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_records_read_identically_by_the_sluice_consumer() {
    use sluice_client::consumer::{Consumer, TopicPartition};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let b = broker.bootstrap();
    create_topic(&b, "from-librdkafka").await;
    let path = dir.path().join("written.json");
    let out = python(
        "interop.py",
        &[
            "write",
            "--bootstrap",
            &b,
            "--topic",
            "from-librdkafka",
            "--out",
            path.to_str().unwrap(),
        ],
    );
    assert!(out.contains("OK"), "{out}");
    let written: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();

    // Keyed records: librdkafka's murmur2_random partitioner is the Java client's, and so is ours.
    for r in &written {
        if let Some(key) = r["key"].as_str() {
            let key: Vec<u8> = (0..key.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(
                r["partition"].as_i64().unwrap() as i32,
                partition_for_key(&key, PARTITIONS as usize),
                "{r}"
            );
        }
    }

    let mut consumer = Consumer::new(
        ClientConfig::new()
            .set("bootstrap.servers", b.as_str())
            .set("enable.auto.commit", "false"),
    )
    .unwrap();
    let parts: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("from-librdkafka", p))
        .collect();
    consumer.assign(parts.clone()).unwrap();
    consumer.seek_to_beginning(&parts).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < written.len() && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let headers: Vec<(String, Option<Bytes>)> = r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect();
            read.push(record_json(
                r.partition,
                r.offset,
                r.key.as_deref(),
                r.value.as_deref(),
                &headers,
                r.timestamp,
            ));
        }
    }
    consumer.close().await.unwrap();
    let order = |v: &Value| (v["partition"].as_i64(), v["offset"].as_i64());
    let mut written = written;
    written.sort_by_key(order);
    read.sort_by_key(order);
    assert_eq!(read.len(), written.len());
    for (w, r) in written.iter().zip(&read) {
        assert_eq!(w, r);
    }
}
