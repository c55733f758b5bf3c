//! The producer against an in-process broker: partitioning, ordering and offsets read back from
//! the log, compression, idempotence, acks, batching, retries through injected faults and a
//! broker restart, flush, close, buffer.memory and config errors.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice_broker::Endpoint;
use sluice_client::cluster::Lane;
use sluice_client::producer::{partition_for_key, RecordHeader};
use sluice_client::{ClientConfig, ClientError, Cluster, Producer, ProducerRecord};
use sluice_protocol::api::{encode_response_frame, request_header_version, ApiMessage};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, ProduceRequest, ProduceResponse,
    ProduceResponsePartition, ProduceResponseTopic,
};
use sluice_protocol::records::{Batches, Compression, RecordBatch};
use sluice_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start_broker(
    dir: &Path,
    listen: SocketAddr,
    advertised: Option<Endpoint>,
) -> RunningBroker {
    common::start_broker(dir, listen, |c| {
        c.num_partitions = 3;
        c.advertised = advertised;
    })
    .await
}

use common::RunningBroker;

async fn broker(dir: &Path) -> RunningBroker {
    start_broker(dir, "127.0.0.1:0".parse().unwrap(), None).await
}

async fn producer(addr: SocketAddr, settings: &[(&str, &str)]) -> Producer {
    let mut config = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "20");
    for (k, v) in settings {
        config.insert(*k, *v);
    }
    Producer::new(config).await.unwrap()
}

/// Every batch of a partition, read with raw Fetch requests from offset 0 to the high watermark.
async fn read_log(cluster: &Cluster, topic: &str, partition: i32) -> Vec<RecordBatch> {
    let (leader, _) = cluster.leader(topic, partition).await.unwrap();
    let conn = cluster.connection(leader, Lane::Fetch).await.unwrap();
    let mut batches = Vec::new();
    let mut offset = 0;
    loop {
        let request = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 64 << 20,
            topics: vec![FetchRequestTopic {
                topic: topic.into(),
                partitions: vec![FetchRequestPartition {
                    partition,
                    fetch_offset: offset,
                    partition_max_bytes: 16 << 20,
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        let response = conn.send(&request, Duration::from_secs(5)).await.unwrap();
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic}-{partition}");
        for batch in Batches::new(p.records.clone().unwrap_or_default()) {
            let (header, bytes) = batch.unwrap();
            offset = header.last_offset() + 1;
            batches.push(RecordBatch::decode_bytes(&bytes, 64 << 20).unwrap());
        }
        if offset >= p.high_watermark {
            return batches;
        }
    }
}

fn values(batches: &[RecordBatch]) -> Vec<Bytes> {
    batches
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.value.clone().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_their_murmur2_partition_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let p = producer(b.addr, &[("linger.ms", "10")]).await;
    const N: usize = 10_000;
    let mut sent: BTreeMap<i32, Vec<(i64, ProducerRecord)>> = BTreeMap::new();
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new("keyed")
            .key(format!("key-{}", i % 101))
            .value(format!("value-{i}"))
            .header("index", i.to_string())
            .headers_push_null_if(i % 7 == 0)
            .timestamp(1_700_000_000_000 + i as i64);
        pending.push((record.clone(), p.send(record).await.unwrap()));
    }
    for (record, delivery) in pending {
        let meta = delivery.await.unwrap();
        let key = record.key.as_ref().unwrap();
        assert_eq!(meta.topic, "keyed");
        assert_eq!(meta.partition, partition_for_key(key, 3));
        assert_eq!(meta.timestamp, record.timestamp.unwrap());
        sent.entry(meta.partition)
            .or_default()
            .push((meta.offset, record));
    }
    assert_eq!(sent.len(), 3, "101 keys spread over every partition");
    for (partition, records) in &sent {
        // Offsets are contiguous from 0, in send order.
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..records.len() as i64).collect::<Vec<_>>());
        let log: Vec<_> = read_log(p.cluster(), "keyed", *partition)
            .await
            .into_iter()
            .flat_map(|b| b.records)
            .collect();
        assert_eq!(log.len(), records.len());
        for (stored, (offset, sent)) in log.iter().zip(records) {
            assert_eq!(stored.offset, *offset);
            assert_eq!(stored.key, sent.key);
            assert_eq!(stored.value, sent.value);
            assert_eq!(stored.headers, sent.headers);
            assert_eq!(stored.timestamp, sent.timestamp.unwrap());
        }
    }
    p.close().await;
    b.stop().await;
}

/// A header with a null value on some records: nulls must survive the trip too.
trait NullHeader {
    fn headers_push_null_if(self, yes: bool) -> Self;
}

impl NullHeader for ProducerRecord {
    fn headers_push_null_if(mut self, yes: bool) -> Self {
        if yes {
            self.headers.push(RecordHeader {
                key: "null".into(),
                value: None,
            });
        }
        self
    }
}

#[tokio::test]
async fn every_compression_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let p = producer(b.addr, &[("compression.type", name)]).await;
        let topic = format!("compressed-{name}");
        let mut pending = Vec::new();
        for i in 0..500 {
            let record = ProducerRecord::new(&topic)
                .partition(0)
                .key(format!("k{i}"))
                .value(format!(
                    "a fairly repetitive value, number {i}, repetitive indeed"
                ));
            pending.push(p.send(record).await.unwrap());
        }
        for (i, d) in pending.into_iter().enumerate() {
            assert_eq!(d.await.unwrap().offset, i as i64, "{name}");
        }
        let batches = read_log(p.cluster(), &topic, 0).await;
        assert!(batches.iter().all(|b| b.compression == codec), "{name}");
        let got = values(&batches);
        assert_eq!(got.len(), 500, "{name}");
        for (i, v) in got.iter().enumerate() {
            assert_eq!(
                v,
                &format!("a fairly repetitive value, number {i}, repetitive indeed"),
                "{name}"
            );
        }
        p.close().await;
    }
    b.stop().await;
}

#[tokio::test]
async fn idempotent_batches_carry_producer_id_epoch_and_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let p = producer(b.addr, &[("batch.size", "2000"), ("linger.ms", "0")]).await;
    assert!(p.config().idempotence);
    let mut pending = Vec::new();
    for i in 0..600 {
        let record = ProducerRecord::new("idempotent")
            .partition(i % 3)
            .value(format!("value-{i:05}"));
        pending.push(p.send(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    let mut producer_ids = HashSet::new();
    for partition in 0..3 {
        let batches = read_log(p.cluster(), "idempotent", partition).await;
        assert!(batches.len() > 1, "batch.size splits the records");
        let mut next_sequence = 0;
        for batch in &batches {
            assert!(batch.producer_id >= 0);
            assert_eq!(batch.producer_epoch, 0);
            assert_eq!(batch.base_sequence, next_sequence, "partition {partition}");
            next_sequence += batch.records.len() as i32;
            producer_ids.insert(batch.producer_id);
        }
        assert_eq!(next_sequence, 200);
    }
    assert_eq!(producer_ids.len(), 1);
    p.close().await;

    // Without idempotence batches carry no producer.
    let plain = producer(b.addr, &[("enable.idempotence", "false")]).await;
    plain
        .send_and_wait(ProducerRecord::new("plain").partition(0).value("x"))
        .await
        .unwrap();
    let batches = read_log(plain.cluster(), "plain", 0).await;
    assert_eq!((batches[0].producer_id, batches[0].base_sequence), (-1, -1));
    plain.close().await;
    b.stop().await;
}

#[tokio::test]
async fn acks_zero_and_one_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;

    let one = producer(b.addr, &[("acks", "1")]).await;
    assert!(
        !one.config().idempotence,
        "acks=1 turns the default idempotence off"
    );
    for i in 0..50 {
        let meta = one
            .send_and_wait(
                ProducerRecord::new("acks")
                    .partition(1)
                    .value(format!("{i}")),
            )
            .await
            .unwrap();
        assert_eq!(meta.offset, i);
    }
    one.close().await;

    let zero = producer(b.addr, &[("acks", "0")]).await;
    let mut pending = Vec::new();
    for i in 50..100 {
        let record = ProducerRecord::new("acks")
            .partition(1)
            .value(format!("{i}"));
        pending.push(zero.send(record).await.unwrap());
    }
    for d in pending {
        let meta = d.await.unwrap();
        assert_eq!(
            (meta.partition, meta.offset),
            (1, -1),
            "offsets are unknown"
        );
    }
    zero.close().await;
    // Nothing tells acks=0 when the broker has appended: look until it has.
    let reader = producer(b.addr, &[]).await;
    let mut got = Vec::new();
    for _ in 0..100 {
        got = values(&read_log(reader.cluster(), "acks", 1).await);
        if got.len() == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("{i}"))).collect();
    assert_eq!(got, expected);
    reader.close().await;
    b.stop().await;
}

#[tokio::test]
async fn lingering_packs_many_sends_into_few_batches() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    // Generous linger: the machine may be busy, and the point is batching, not timing.
    let p = producer(b.addr, &[("linger.ms", "300")]).await;
    let mut pending = Vec::new();
    for i in 0..1000 {
        let record = ProducerRecord::new("linger")
            .partition(2)
            .value(format!("{i}"));
        pending.push(p.send(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    let batches = read_log(p.cluster(), "linger", 2).await;
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 1000);
    assert!(
        batches.len() <= 20,
        "{} batches for 1000 records",
        batches.len()
    );

    // Keyless records stick to a partition for a batch's worth, then move on.
    let sticky = producer(b.addr, &[("batch.size", "1024"), ("linger.ms", "0")]).await;
    let mut partitions = Vec::new();
    for i in 0..600 {
        let meta = sticky
            .send(ProducerRecord::new("sticky").value(format!("value {i:04}")))
            .await
            .unwrap();
        partitions.push(meta);
    }
    let mut seen = Vec::new();
    for d in partitions {
        seen.push(d.await.unwrap().partition);
    }
    let switches = seen.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > 3,
        "switches after about batch.size bytes: {switches}"
    );
    assert!(switches < 100, "not a new partition per record: {switches}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3);
    sticky.close().await;
    p.close().await;
    b.stop().await;
}

#[tokio::test]
async fn flush_waits_and_close_refuses_later_sends() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let p = producer(b.addr, &[("linger.ms", "60000")]).await;
    let mut pending = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new("flush")
            .partition(0)
            .value(format!("{i}"));
        pending.push(p.send(record).await.unwrap());
    }
    // Lingering for a minute: nothing goes by itself.
    let first = pending.remove(0);
    let waited = tokio::time::timeout(Duration::from_millis(200), first).await;
    assert!(waited.is_err(), "sent before linger.ms or flush");
    p.flush().await;
    for (i, d) in pending.into_iter().enumerate() {
        let d = tokio::time::timeout(Duration::from_millis(1), d).await;
        assert_eq!(
            d.expect("flush returned first").unwrap().offset,
            i as i64 + 1
        );
    }
    let last = p
        .send(ProducerRecord::new("flush").partition(0).value("last"))
        .await
        .unwrap();
    p.close().await;
    assert_eq!(
        last.await.unwrap().offset,
        10,
        "close delivers what was queued"
    );
    let refused = p.send(ProducerRecord::new("flush").value("late")).await;
    assert!(matches!(refused, Err(ClientError::Closed)), "{refused:?}");
    p.close().await;
    b.stop().await;
}

#[tokio::test]
async fn buffer_memory_bounds_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let p = producer(
        b.addr,
        &[
            ("buffer.memory", "8192"),
            ("batch.size", "1000000"),
            ("linger.ms", "60000"),
            ("max.block.ms", "300"),
            ("max.request.size", "4000"),
        ],
    )
    .await;
    let value = Bytes::from(vec![7u8; 1000]);
    let mut queued = Vec::new();
    let error = loop {
        let record = ProducerRecord::new("memory")
            .partition(0)
            .value(value.clone());
        match p.send(record).await {
            Ok(d) => queued.push(d),
            Err(e) => break e,
        }
        assert!(queued.len() < 9, "buffer.memory is not enforced");
    };
    assert_eq!(queued.len(), 8, "8 records of ~1 KB fit in 8 KB");
    assert!(matches!(error, ClientError::Timeout(_)), "{error}");
    assert!(error.to_string().contains("buffer.memory"), "{error}");
    assert!(p.available_memory() < 1100);

    // A send waiting for memory goes through once a flush frees it.
    let p = Arc::new(p);
    let waiting = {
        let p = p.clone();
        let value = value.clone();
        tokio::spawn(async move {
            p.send(ProducerRecord::new("memory").partition(0).value(value))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.flush().await;
    let late = waiting
        .await
        .unwrap()
        .expect("memory was freed by the flush");
    for d in queued {
        d.await.unwrap();
    }
    p.flush().await;
    assert_eq!(late.await.unwrap().offset, 8);
    assert_eq!(p.available_memory(), 8192);

    let e = p
        .send(ProducerRecord::new("memory").value(vec![0u8; 5000]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("max.request.size (4000 bytes)"), "{e}");
    p.close().await;
    b.stop().await;
}

#[tokio::test]
async fn config_errors_name_the_key() {
    for (key, value) in [("acks", "2"), ("compression.type", "brotli")] {
        let config = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set(key, value);
        let e = Producer::new(config).await.unwrap_err();
        assert!(matches!(e, ClientError::Config { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{key} = \"{value}\"")),
            "{e}"
        );
    }
    let config = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9")
        .set("enable.idempotence", "true")
        .set("acks", "0");
    let e = Producer::new(config).await.unwrap_err().to_string();
    assert!(e.contains("enable.idempotence=true"), "{e}");
}

#[tokio::test]
async fn bad_partitions_and_missing_topics_fail_the_send() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let p = producer(
        b.addr,
        &[
            ("allow.auto.create.topics", "false"),
            ("max.block.ms", "200"),
        ],
    )
    .await;
    let e = p
        .send(ProducerRecord::new("nowhere").value("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout(_)), "{e}");
    assert!(e.to_string().contains("nowhere"), "{e}");
    let auto = producer(b.addr, &[]).await;
    auto.send_and_wait(ProducerRecord::new("three").value("x"))
        .await
        .unwrap();
    let e = auto
        .send(ProducerRecord::new("three").partition(3).value("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("partition 3"), "{e}");
    auto.close().await;
    p.close().await;
    b.stop().await;
}

/// What the proxy does to the next Produce request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answers it with this error for every partition, without forwarding it.
    Answer(ErrorCode),
    /// Forwards it, then drops the client's connection instead of answering.
    LoseAnswer,
}

/// A TCP proxy in front of a broker that advertises the proxy: every request goes through it,
/// one at a time, and planned faults hit Produce requests.
struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Vec<Fault>>>,
    produces: Arc<AtomicUsize>,
    metadata: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn bind() -> (FaultProxy, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            faults: Default::default(),
            produces: Default::default(),
            metadata: Default::default(),
        };
        (proxy, listener)
    }

    fn serve(&self, listener: TcpListener, broker: SocketAddr) {
        let faults = self.faults.clone();
        let produces = self.produces.clone();
        let metadata = self.metadata.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let (faults, produces, metadata) =
                    (faults.clone(), produces.clone(), metadata.clone());
                tokio::spawn(async move {
                    let upstream = TcpStream::connect(broker).await.unwrap();
                    let _ = relay(client, upstream, faults, produces, metadata).await;
                });
            }
        });
    }
}

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
    let size = s.read_i32().await?;
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

async fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    s.write_i32(body.len() as i32).await?;
    s.write_all(body).await
}

async fn relay(
    mut client: TcpStream,
    mut upstream: TcpStream,
    faults: Arc<Mutex<Vec<Fault>>>,
    produces: Arc<AtomicUsize>,
    metadata: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    loop {
        let frame = read_frame(&mut client).await?;
        let (api_key, version, correlation_id) = RequestHeader::peek(&frame).unwrap();
        let mut fault = None;
        if api_key == ProduceRequest::API_KEY {
            produces.fetch_add(1, Ordering::SeqCst);
            let mut planned = faults.lock().unwrap();
            if !planned.is_empty() {
                fault = Some(planned.remove(0));
            }
        } else if api_key == 3 {
            metadata.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Some(Fault::Answer(code)) => {
                let mut body = frame.clone();
                RequestHeader::decode(&mut body, request_header_version(api_key, version)).unwrap();
                let request = ProduceRequest::decode_body(body, version).unwrap();
                let response = ProduceResponse {
                    responses: request
                        .topic_data
                        .into_iter()
                        .map(|t| ProduceResponseTopic {
                            name: t.name,
                            partition_responses: t
                                .partition_data
                                .into_iter()
                                .map(|p| ProduceResponsePartition {
                                    index: p.index,
                                    error_code: code.code(),
                                    base_offset: -1,
                                    log_append_time_ms: -1,
                                    log_start_offset: -1,
                                    ..Default::default()
                                })
                                .collect(),
                        })
                        .collect(),
                    ..Default::default()
                };
                let frame = encode_response_frame(correlation_id, version, &response);
                client.write_all(&frame).await?;
            }
            Some(Fault::LoseAnswer) => {
                write_frame(&mut upstream, &frame).await?;
                read_frame(&mut upstream).await?;
                return Ok(());
            }
            None => {
                write_frame(&mut upstream, &frame).await?;
                let answer = read_frame(&mut upstream).await?;
                write_frame(&mut client, &answer).await?;
            }
        }
    }
}

async fn broker_behind_proxy(dir: &Path) -> (RunningBroker, FaultProxy) {
    let (proxy, listener) = FaultProxy::bind().await;
    let advertised = Endpoint {
        host: "127.0.0.1".into(),
        port: proxy.addr.port(),
    };
    let b = start_broker(dir, "127.0.0.1:0".parse().unwrap(), Some(advertised)).await;
    proxy.serve(listener, b.addr);
    (b, proxy)
}

#[tokio::test]
async fn not_leader_is_retried_after_a_metadata_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let (b, proxy) = broker_behind_proxy(dir.path()).await;
    let p = producer(proxy.addr, &[]).await;
    p.send_and_wait(ProducerRecord::new("moved").partition(0).value("warm-up"))
        .await
        .unwrap();
    proxy
        .faults
        .lock()
        .unwrap()
        .extend([Fault::Answer(ErrorCode::NotLeaderOrFollower); 2]);
    let metadata_before = proxy.metadata.load(Ordering::SeqCst);
    let produces_before = proxy.produces.load(Ordering::SeqCst);
    let meta = p
        .send_and_wait(ProducerRecord::new("moved").partition(0).value("after"))
        .await
        .unwrap();
    assert_eq!(meta.offset, 1);
    assert_eq!(proxy.produces.load(Ordering::SeqCst) - produces_before, 3);
    assert!(proxy.metadata.load(Ordering::SeqCst) > metadata_before);
    assert_eq!(
        values(&read_log(p.cluster(), "moved", 0).await),
        [Bytes::from("warm-up"), Bytes::from("after")]
    );

    // A non-retriable error goes to the record's future, named.
    proxy
        .faults
        .lock()
        .unwrap()
        .push(Fault::Answer(ErrorCode::InvalidRecord));
    let e = p
        .send_and_wait(ProducerRecord::new("moved").partition(0).value("refused"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidRecord), "{e}");
    assert!(e.to_string().contains("moved-0"), "{e}");
    // The failed batch had a sequence: the producer starts over with a new id, and works.
    let meta = p
        .send_and_wait(ProducerRecord::new("moved").partition(0).value("again"))
        .await
        .unwrap();
    assert_eq!(meta.offset, 2);
    let batches = read_log(p.cluster(), "moved", 0).await;
    assert_ne!(batches[0].producer_id, batches[2].producer_id);
    assert_eq!(batches[2].base_sequence, 0);

    // A broker that reports a duplicate without offsets: delivered, offset unknown.
    proxy
        .faults
        .lock()
        .unwrap()
        .push(Fault::Answer(ErrorCode::DuplicateSequenceNumber));
    let meta = p
        .send_and_wait(ProducerRecord::new("moved").partition(0).value("dup"))
        .await
        .unwrap();
    assert_eq!((meta.partition, meta.offset), (0, -1));
    p.close().await;
    b.stop().await;
}

#[tokio::test]
async fn retries_and_delivery_timeout_bound_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (b, proxy) = broker_behind_proxy(dir.path()).await;
    let p = producer(proxy.addr, &[("retries", "2")]).await;
    p.send_and_wait(ProducerRecord::new("bounded").partition(0).value("warm-up"))
        .await
        .unwrap();
    proxy
        .faults
        .lock()
        .unwrap()
        .extend([Fault::Answer(ErrorCode::NotLeaderOrFollower); 5]);
    let before = proxy.produces.load(Ordering::SeqCst);
    let e = p
        .send_and_wait(ProducerRecord::new("bounded").partition(0).value("x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotLeaderOrFollower), "{e}");
    assert_eq!(
        proxy.produces.load(Ordering::SeqCst) - before,
        3,
        "1 try + 2 retries"
    );
    p.close().await;
    proxy.faults.lock().unwrap().clear();

    let p = producer(
        proxy.addr,
        &[
            ("request.timeout.ms", "200"),
            ("linger.ms", "0"),
            ("delivery.timeout.ms", "400"),
        ],
    )
    .await;
    p.send_and_wait(ProducerRecord::new("bounded").partition(0).value("warm-up"))
        .await
        .unwrap();
    proxy
        .faults
        .lock()
        .unwrap()
        .extend([Fault::Answer(ErrorCode::NotLeaderOrFollower); 10_000]);
    let started = std::time::Instant::now();
    let e = p
        .send_and_wait(ProducerRecord::new("bounded").partition(0).value("y"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(e, ClientError::Timeout(_)) || e.code() == Some(ErrorCode::NotLeaderOrFollower),
        "{e}"
    );
    assert!(took >= Duration::from_millis(350), "gave up after {took:?}");
    assert!(took < Duration::from_secs(3), "retried for {took:?}");
    proxy.faults.lock().unwrap().clear();
    p.close().await;
    b.stop().await;
}

#[tokio::test]
async fn a_lost_answer_is_retried_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let (b, proxy) = broker_behind_proxy(dir.path()).await;
    let p = producer(proxy.addr, &[("linger.ms", "20")]).await;
    p.send_and_wait(ProducerRecord::new("lost").partition(0).value("v0"))
        .await
        .unwrap();
    proxy.faults.lock().unwrap().push(Fault::LoseAnswer);
    let mut pending = Vec::new();
    for i in 1..=50 {
        let record = ProducerRecord::new("lost")
            .partition(0)
            .value(format!("v{i}"));
        pending.push(p.send(record).await.unwrap());
    }
    for (i, d) in pending.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, i as i64 + 1);
    }
    let got = values(&read_log(p.cluster(), "lost", 0).await);
    let expected: Vec<Bytes> = (0..=50).map(|i| Bytes::from(format!("v{i}"))).collect();
    assert_eq!(got, expected, "the retry was recognised as a duplicate");
    assert!(proxy.produces.load(Ordering::SeqCst) >= 3);
    p.close().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_broker_restart_once_each() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the restarted broker is where the producer looks.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b = start_broker(dir.path(), addr, None).await;
    let p = Arc::new(producer(addr, &[("linger.ms", "2"), ("batch.size", "4096")]).await);
    const N: usize = 3000;
    let sending = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            for i in 0..N {
                let record = ProducerRecord::new("restart")
                    .key(format!("{}", i % 17))
                    .value(format!("{i}"));
                pending.push(p.send(record).await.unwrap());
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            pending
        })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    b.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = start_broker(dir.path(), addr, None).await;
    let pending = sending.await.unwrap();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in pending {
        let meta = d.await.unwrap();
        per_partition
            .entry(meta.partition)
            .or_default()
            .push(meta.offset);
    }
    let mut seen = HashSet::new();
    for (partition, offsets) in per_partition {
        let log = values(&read_log(p.cluster(), "restart", partition).await);
        assert_eq!(
            offsets,
            (0..log.len() as i64).collect::<Vec<_>>(),
            "partition {partition}: every record once, in order"
        );
        for v in log {
            assert!(seen.insert(v.clone()), "{v:?} written twice");
        }
    }
    assert_eq!(seen.len(), N);
    p.close().await;
    b.stop().await;
}
