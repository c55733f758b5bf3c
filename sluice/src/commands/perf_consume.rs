//! `sluice perf consume`: reads records as fast as the Sluice consumer can and reports
//! throughput, like kafka-consumer-perf-test.sh, plus how old the records were when read.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use sluice_client::consumer::Consumer;
use sluice_client::ClientConfig;

use super::tool::key_value;

#[derive(Args, Clone)]
pub struct ConsumeArgs {
    /// Topic to read
    #[arg(long)]
    topic: String,
    /// How many records to read
    #[arg(long)]
    messages: u64,
    /// Broker(s) to bootstrap from (bootstrap.servers)
    #[arg(long)]
    bootstrap_server: String,
    /// Consumer group (default: a fresh perf-consumer-NNNNN group)
    #[arg(long)]
    group: Option<String>,
    /// Start at the end of the topic instead of the beginning
    #[arg(long)]
    from_latest: bool,
    /// Consumer properties as key=value (repeatable)
    #[arg(long = "consumer-props", value_name = "KEY=VALUE", num_args = 1..)]
    consumer_props: Vec<String>,
    /// A consumer properties file
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<PathBuf>,
    /// Give up when no record arrives for this long (ms)
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Seconds between progress lines
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
}

fn client_config(args: &ConsumeArgs) -> Result<ClientConfig, String> {
    let mut config = match &args.consumer_config {
        Some(path) => ClientConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ClientConfig::new(),
    };
    config.insert("bootstrap.servers", args.bootstrap_server.as_str());
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", std::process::id() % 100_000));
    config.insert("group.id", group);
    config.insert(
        "auto.offset.reset",
        if args.from_latest {
            "latest"
        } else {
            "earliest"
        },
    );
    // A measurement should not commit on a timer in the middle of it.
    if config.get("enable.auto.commit").is_none() {
        config.insert("enable.auto.commit", "false");
    }
    for p in &args.consumer_props {
        let (k, v) = key_value(p, "--consumer-props")?;
        config.insert(k, v);
    }
    Ok(config)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn consume(args: ConsumeArgs) -> Result<(), String> {
    let mut consumer = Consumer::new(client_config(&args)?).map_err(|e| e.to_string())?;
    consumer
        .subscribe([args.topic.clone()])
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut first_record_at = None;
    let (mut records, mut bytes) = (0u64, 0u64);
    let (mut window_records, mut window_bytes) = (0u64, 0u64);
    let mut window_start = Instant::now();
    let interval = Duration::from_secs(args.reporting_interval.max(1));
    let idle = Duration::from_millis(args.timeout);
    let mut last_record = Instant::now();
    // Record age at read time (now minus the record's timestamp), sampled.
    let mut ages: Vec<i64> = Vec::new();
    let sample_every = (args.messages / 200_000).max(1);
    while records < args.messages {
        let batch = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            if last_record.elapsed() > idle {
                return Err(format!(
                    "only {records} of {} records arrived; none for {} ms",
                    args.messages, args.timeout
                ));
            }
            continue;
        }
        let now = now_ms();
        last_record = Instant::now();
        first_record_at.get_or_insert(last_record);
        for r in &batch {
            let size =
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
            if records % sample_every == 0 {
                ages.push(now - r.timestamp);
            }
            records += 1;
            bytes += size as u64;
            window_records += 1;
            window_bytes += size as u64;
        }
        if window_start.elapsed() >= interval {
            let secs = window_start.elapsed().as_secs_f64();
            println!(
                "{window_records} records read, {:.1} records/sec ({:.2} MB/sec)",
                window_records as f64 / secs,
                window_bytes as f64 / secs / (1024.0 * 1024.0)
            );
            (window_records, window_bytes) = (0, 0);
            window_start = Instant::now();
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let fetching = first_record_at
        .map_or(elapsed, |t| t.elapsed().as_secs_f64())
        .max(1e-9);
    let _ = consumer.close().await;
    ages.sort_unstable();
    let pct = |p: f64| {
        ages.get(((ages.len() as f64 * p) as usize).min(ages.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{records} records read, {:.1} records/sec ({:.2} MB/sec); from the first record: {:.1} records/sec ({:.2} MB/sec), {:.0} ms joining and fetching before it",
        records as f64 / elapsed,
        mb / elapsed,
        records as f64 / fetching,
        mb / fetching,
        (elapsed - fetching) * 1000.0
    );
    println!(
        "record age when read: {} ms 50th, {} ms 99th, {} ms 99.9th, {} ms max",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        ages.last().copied().unwrap_or(0)
    );
    Ok(())
}
