//! Benchmark of Sluice Streams against a plain consume-then-produce loop on sluice-client: one
//! mode per run, each processing N pre-produced records and printing records/s and CPU time.
//!
//! ```sh
//! streams_bench --bootstrap-server H:P --mode produce --topic in --records N [--keys K] [--record-size S]
//! streams_bench --bootstrap-server H:P --mode map-filter|count|count-uncached|plain-loop --topic in --output out --records N
//! ```
//!
//! `produce` writes the input: keys `key-<i mod K>`, values of S random uppercase letters.
//! `map-filter` (Streams): drops values starting with 'A', lowercases the rest, writes them.
//! `count` (Streams): group_by_key + count into an in-memory store with a changelog, writes
//! each new count. `plain-loop`: `map-filter` by hand with a Consumer and a Producer, with the
//! Streams runtime's settings (acks=all, linger.ms=100, auto.offset.reset=earliest) and its
//! commit cadence: every --commit-interval-ms, flush, wait for every output, commit offsets.
//! Each mode ends once all N records are processed and their outputs acknowledged and the
//! offsets committed (Streams: `close`), and prints one line starting with `RESULT`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::consumer::OffsetAndMetadata;
use sluice_client::{ClientConfig, Consumer, DeliveryFuture, Producer, ProducerRecord};
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, State, StreamsBuilder, StreamsConfig,
};

#[derive(Clone)]
struct Args {
    bootstrap: String,
    mode: String,
    topic: String,
    output: String,
    records: u64,
    keys: u64,
    record_size: usize,
    commit_interval_ms: u64,
    state_dir: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bootstrap: "localhost:9092".into(),
        mode: String::new(),
        topic: "bench-input".into(),
        output: "bench-output".into(),
        records: 1_000_000,
        keys: 10_000,
        record_size: 100,
        commit_interval_ms: 1000,
        state_dir: std::env::temp_dir()
            .join("sluice-streams-bench")
            .display()
            .to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--bootstrap-server" => a.bootstrap = value()?,
            "--mode" => a.mode = value()?,
            "--topic" => a.topic = value()?,
            "--output" => a.output = value()?,
            "--records" => a.records = number(value()?)?,
            "--keys" => a.keys = number(value()?)?.max(1),
            "--record-size" => a.record_size = number(value()?)? as usize,
            "--commit-interval-ms" => a.commit_interval_ms = number(value()?)?,
            "--state-dir" => a.state_dir = value()?,
            other => {
                return Err(format!(
                    "unknown argument {other} (see the file's doc comment)"
                ))
            }
        }
    }
    Ok(a)
}

/// User + system CPU seconds of this process so far, from /proc (Linux ticks are 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// The one processing step of `map-filter` and `plain-loop`.
fn keep(value: &str) -> bool {
    !value.starts_with('A')
}

fn rt() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn produce(a: &Args) -> Result<(), String> {
    rt()?.block_on(async {
        let producer = Producer::new(
            ClientConfig::new()
                .set("bootstrap.servers", &a.bootstrap)
                .set("linger.ms", "5")
                .set("batch.size", "1000000"),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut x: u32 = 0x2545_f491;
        let mut futures = Vec::new();
        for i in 0..a.records {
            let value: Vec<u8> = (0..a.record_size)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    b'A' + ((x >> 16) % 26) as u8
                })
                .collect();
            let r = ProducerRecord::new(a.topic.as_str())
                .key(format!("key-{}", i % a.keys))
                .value(value);
            futures.push(producer.send(r).await.map_err(|e| e.to_string())?);
            if futures.len() >= 100_000 {
                for f in futures.drain(..) {
                    f.stored().await.map_err(|e| e.to_string())?;
                }
            }
        }
        producer.flush().await;
        for f in futures {
            f.stored().await.map_err(|e| e.to_string())?;
        }
        producer.close().await;
        eprintln!("produced {} records to {}", a.records, a.topic);
        Ok(())
    })
}

/// Times a run: from the start (`t0`), from the first processed record, to `done`.
struct Timing {
    t0: Instant,
    first: Option<Instant>,
    cpu0: f64,
}

impl Timing {
    fn report(&self, a: &Args, end: Instant) {
        let cpu = cpu_seconds() - self.cpu0;
        let total = end.duration_since(self.t0).as_secs_f64();
        let from_first = self
            .first
            .map_or(total, |f| end.duration_since(f).as_secs_f64());
        let n = a.records as f64;
        println!(
            "RESULT mode={} records={} seconds={total:.3} from_first={from_first:.3} \
             rate={:.0} cpu={cpu:.2} records_per_cpu_s={:.0}",
            a.mode,
            a.records,
            n / from_first,
            n / cpu.max(1e-9)
        );
    }
}

fn streams(a: &Args) -> Result<(), String> {
    let builder = StreamsBuilder::new();
    let input = builder
        .stream::<String, String>(a.topic.as_str(), Consumed::with(StringSerde, StringSerde));
    match a.mode.as_str() {
        "map-filter" => input
            .filter(|_, v: &String| keep(v))
            .map_values(|mut v: String| {
                v.make_ascii_lowercase();
                v
            })
            .to(&a.output, Produced::with(StringSerde, StringSerde)),
        "count" | "count-uncached" => input
            .group_by_key(Grouped::with(StringSerde, StringSerde))
            .count(Materialized::as_store("bench-counts"))
            .to_stream()
            .to(&a.output, Produced::with(StringSerde, LongSerde)),
        other => return Err(format!("unknown mode {other}")),
    }
    let topology = builder.build().map_err(|e| e.to_string())?;
    let config = StreamsConfig::new()
        .set(
            "application.id",
            format!("streams-bench-{}-{}", a.mode, std::process::id()),
        )
        .set("bootstrap.servers", &a.bootstrap)
        .set("commit.interval.ms", a.commit_interval_ms.to_string())
        .set("state.dir", &a.state_dir)
        .set(
            "statestore.cache.max.bytes",
            match a.mode.as_str() {
                "count-uncached" => "0",
                _ => "10485760",
            },
        );
    let mut t = Timing {
        t0: Instant::now(),
        first: None,
        cpu0: cpu_seconds(),
    };
    let mut app = KafkaStreams::new(topology, config);
    app.start().map_err(|e| e.to_string())?;
    let mut last = (0, Instant::now());
    loop {
        let n = app.processed_records();
        if n > 0 && t.first.is_none() {
            t.first = Some(Instant::now());
        }
        if n >= a.records {
            break;
        }
        if app.state() == State::Error {
            return app.close().map_err(|e| e.to_string());
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            return Err(format!("stuck at {n} of {} records", a.records));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // close flushes, waits for every output and commits: the end of the work.
    app.close().map_err(|e| e.to_string())?;
    t.report(a, Instant::now());
    Ok(())
}

/// What a careful hand-written loop keeps: outputs awaiting acknowledgement (the finished ones
/// dropped now and then, so memory stays bounded) and offsets to commit.
async fn plain_loop(a: &Args, first: &AtomicU64) -> Result<(), String> {
    let mut consumer = Consumer::new(
        ClientConfig::new()
            .set("bootstrap.servers", &a.bootstrap)
            .set(
                "group.id",
                format!("streams-bench-plain-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest"),
    )
    .map_err(|e| e.to_string())?;
    let producer = Producer::new(
        ClientConfig::new()
            .set("bootstrap.servers", &a.bootstrap)
            .set("acks", "all")
            .set("linger.ms", "100"),
    )
    .await
    .map_err(|e| e.to_string())?;
    consumer
        .subscribe([a.topic.as_str()])
        .map_err(|e| e.to_string())?;
    let interval = Duration::from_millis(a.commit_interval_ms);
    let mut next_commit = Instant::now() + interval;
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let mut offsets = BTreeMap::new();
    let mut processed = 0u64;
    let mut check_at = 10_000;
    async fn commit(
        consumer: &mut Consumer,
        producer: &Producer,
        pending: &mut Vec<DeliveryFuture>,
        offsets: &mut BTreeMap<sluice_client::TopicPartition, OffsetAndMetadata>,
    ) -> Result<(), String> {
        producer.flush().await;
        for f in pending.drain(..) {
            f.stored().await.map_err(|e| e.to_string())?;
        }
        if !offsets.is_empty() {
            consumer
                .commit_sync(Some(std::mem::take(offsets)))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    while processed < a.records {
        let records = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        if processed == 0 && !records.is_empty() {
            first.store(1, Ordering::Relaxed);
        }
        for rec in records {
            processed += 1;
            offsets.insert(
                rec.topic_partition(),
                OffsetAndMetadata::new(rec.offset + 1),
            );
            let value = rec
                .value
                .as_deref()
                .ok_or("a null value")
                .and_then(|v| std::str::from_utf8(v).map_err(|_| "not UTF-8"))?;
            if !keep(value) {
                continue;
            }
            let mut out = ProducerRecord::new(a.output.as_str())
                .value(value.to_ascii_lowercase())
                .timestamp(rec.timestamp);
            out.key = rec.key;
            pending.push(producer.send(out).await.map_err(|e| e.to_string())?);
            if pending.len() >= check_at {
                // Acknowledgements come in send order: the finished ones are the front.
                let n = pending
                    .iter()
                    .position(|f| !f.is_resolved())
                    .unwrap_or(pending.len());
                for f in pending.drain(..n) {
                    f.stored().await.map_err(|e| e.to_string())?;
                }
                // Looking again once the backlog doubled keeps the cost per send constant.
                check_at = (2 * pending.len()).max(10_000);
            }
        }
        if Instant::now() >= next_commit {
            commit(&mut consumer, &producer, &mut pending, &mut offsets).await?;
            next_commit = Instant::now() + interval;
        }
    }
    commit(&mut consumer, &producer, &mut pending, &mut offsets).await?;
    consumer.close().await.map_err(|e| e.to_string())?;
    producer.close().await;
    Ok(())
}

/// The loop runs on its own thread and runtime, as a stream thread does, and is timed the
/// same way from here.
fn plain(a: &Args) -> Result<(), String> {
    let mut t = Timing {
        t0: Instant::now(),
        first: None,
        cpu0: cpu_seconds(),
    };
    let first = Arc::new(AtomicU64::new(0));
    let handle = {
        let first = first.clone();
        let a = a.clone();
        std::thread::spawn(move || rt()?.block_on(plain_loop(&a, &first)))
    };
    while !handle.is_finished() {
        if t.first.is_none() && first.load(Ordering::Relaxed) > 0 {
            t.first = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let end = Instant::now();
    handle.join().map_err(|_| "the loop panicked")??;
    t.report(a, end);
    Ok(())
}

fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = parse_args()?;
    match a.mode.as_str() {
        "produce" => produce(&a),
        "map-filter" | "count" | "count-uncached" => streams(&a),
        "plain-loop" => plain(&a),
        "" => Err("--mode produce|map-filter|count|count-uncached|plain-loop is required".into()),
        other => Err(format!("unknown mode {other}")),
    }
}
