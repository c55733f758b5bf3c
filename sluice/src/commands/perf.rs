//! `sluice perf produce`: sends records as fast as allowed (or at --throughput) with the Sluice
//! producer and reports throughput and latency, like kafka-producer-perf-test.sh.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use sluice_client::producer::DeliveryFuture;
use sluice_client::{ClientConfig, Producer, ProducerRecord};
use tokio::sync::mpsc;

#[derive(Args)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Subcommand)]
enum PerfCommand {
    /// Measure producing (kafka-producer-perf-test.sh)
    Produce(ProduceArgs),
    /// Measure consuming (kafka-consumer-perf-test.sh)
    Consume(super::perf_consume::ConsumeArgs),
}

#[derive(Args, Clone)]
pub struct ProduceArgs {
    /// Topic to produce to
    #[arg(long)]
    topic: String,
    /// How many records to send
    #[arg(long)]
    num_records: u64,
    /// Bytes per record value
    #[arg(long)]
    record_size: usize,
    /// Records per second at most; -1 for as fast as possible
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Broker(s) to bootstrap from (bootstrap.servers)
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// Producer properties as key=value (repeatable; after --producer.config)
    #[arg(long = "producer-props", value_name = "KEY=VALUE", num_args = 1..)]
    producer_props: Vec<String>,
    /// A producer properties file
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,
    /// Seconds between progress lines
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
}

pub fn run(args: PerfArgs) -> Result<(), String> {
    match args.command {
        PerfCommand::Produce(args) => {
            let runtime =
                tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
            runtime.block_on(produce(args, &mut std::io::stdout()))
        }
        PerfCommand::Consume(args) => {
            // Fetch tasks decode on the other core while poll hands records out.
            let runtime =
                tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
            runtime.block_on(super::perf_consume::consume(args))
        }
    }
}

fn client_config(args: &ProduceArgs) -> Result<ClientConfig, String> {
    let mut config = match &args.producer_config {
        Some(path) => ClientConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ClientConfig::new(),
    };
    if let Some(servers) = &args.bootstrap_server {
        config.insert("bootstrap.servers", servers.as_str());
    }
    for prop in &args.producer_props {
        let (key, value) = prop
            .split_once('=')
            .ok_or_else(|| format!("--producer-props {prop}: expected key=value"))?;
        config.insert(key.trim(), value.trim());
    }
    Ok(config)
}

/// Values of uppercase letters, as Kafka's tool sends: compressible, but not trivially.
fn payload(size: usize) -> Bytes {
    let mut x: u32 = 0x2545_f491;
    (0..size)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b'A' + ((x >> 16) % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Deliveries handed to the collector at a time.
const CHUNK: usize = 512;

/// Latency figures over one window or the whole run.
#[derive(Default)]
struct Window {
    records: u64,
    latency_sum_ms: f64,
    latency_max_ms: f64,
}

impl Window {
    fn add(&mut self, latency_ms: f64) {
        self.records += 1;
        self.latency_sum_ms += latency_ms;
        self.latency_max_ms = self.latency_max_ms.max(latency_ms);
    }

    fn line(&self, elapsed: Duration, record_size: usize) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let rate = self.records as f64 / secs;
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency",
            self.records,
            rate,
            rate * record_size as f64 / (1024.0 * 1024.0),
            self.latency_sum_ms / self.records.max(1) as f64,
            self.latency_max_ms
        )
    }
}

async fn produce(args: ProduceArgs, out: &mut impl Write) -> Result<(), String> {
    let producer = Producer::new(client_config(&args)?)
        .await
        .map_err(|e| e.to_string())?;
    let value = payload(args.record_size);
    let total = args.num_records;
    // A bounded sample of latencies for percentiles, as a run may send billions of records.
    let sample_every = (total / 500_000).max(1);
    // Outcomes travel to the collector in chunks: a channel operation per record would cost
    // more than the send it measures.
    let (tx, mut rx) = mpsc::channel::<Vec<(Instant, DeliveryFuture)>>(256);
    let interval = Duration::from_secs(args.reporting_interval.max(1));
    let record_size = args.record_size;
    let start = Instant::now();

    // Outcomes are awaited in send order: each partition resolves in order, so a record's
    // latency is read at most one other partition's round trip late.
    let collector = tokio::spawn(async move {
        let mut all = Window::default();
        let mut window = Window::default();
        let mut window_start = Instant::now();
        let mut samples: Vec<f64> = Vec::new();
        let mut errors = 0u64;
        let mut first_error = None;
        let mut seen = 0u64;
        let mut next_sample = 0u64;
        while let Some(chunk) = rx.recv().await {
            for (sent_at, delivery) in chunk {
                let result = delivery.await;
                // One clock reading per record serves the latency and the window.
                let now = Instant::now();
                match result {
                    Ok(_) => {
                        let ms = now.duration_since(sent_at).as_secs_f64() * 1000.0;
                        all.add(ms);
                        window.add(ms);
                        if seen >= next_sample {
                            samples.push(ms);
                            next_sample = seen + sample_every;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                seen += 1;
                if now.duration_since(window_start) >= interval {
                    println!(
                        "{}",
                        window.line(now.duration_since(window_start), record_size)
                    );
                    window = Window::default();
                    window_start = now;
                }
            }
        }
        (all, samples, errors, first_error)
    });

    let mut send_error = None;
    let mut chunk = Vec::with_capacity(CHUNK);
    for i in 0..total {
        if args.throughput > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let sent_at = Instant::now();
        let record = ProducerRecord::new(&args.topic).value(value.clone());
        match producer.send(record).await {
            Ok(delivery) => {
                chunk.push((sent_at, delivery));
                // A throttled run hands each record over at once, so progress lines stay live.
                if chunk.len() == CHUNK || args.throughput > 0 {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(full).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                send_error = Some(e.to_string());
                break;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk).await;
    }
    drop(tx);
    producer.flush().await;
    let (all, mut samples, errors, first_error) = collector
        .await
        .map_err(|e| format!("collector failed: {e}"))?;
    let elapsed = start.elapsed();
    producer.close().await;

    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| -> u64 {
        if samples.is_empty() {
            return 0;
        }
        let i = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
        samples[i] as u64
    };
    writeln!(
        out,
        "{}, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        all.line(elapsed, record_size),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(0.999)
    )
    .map_err(|e| e.to_string())?;
    if let Some(e) = send_error {
        return Err(format!("send failed: {e}"));
    }
    if errors > 0 {
        return Err(format!(
            "{errors} of {total} records failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_broker::{Broker, BrokerConfig};

    #[tokio::test]
    async fn produces_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("logs"));
        let broker = Broker::start(config).await.unwrap();
        let addr = broker.local_addr();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            broker
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap()
        });
        let args = ProduceArgs {
            topic: "perf".into(),
            num_records: 2_000,
            record_size: 100,
            throughput: -1,
            bootstrap_server: Some(addr.to_string()),
            producer_props: vec!["compression.type=lz4".into(), "linger.ms = 2".into()],
            producer_config: None,
            reporting_interval: 5,
        };
        let mut out = Vec::new();
        produce(args.clone(), &mut out).await.unwrap();
        let summary = String::from_utf8(out).unwrap();
        assert!(summary.starts_with("2000 records sent, "), "{summary}");
        assert!(summary.contains("ms 99.9th."), "{summary}");

        let bad = ProduceArgs {
            producer_props: vec!["acks=2".into()],
            ..args
        };
        let e = produce(bad, &mut Vec::new()).await.unwrap_err();
        assert!(e.starts_with("acks = \"2\""), "{e}");
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[test]
    fn payload_is_letters() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().collect::<std::collections::HashSet<_>>().len() > 20);
    }
}
