//! `sluice console-producer`: one record per line of stdin, as kafka-console-producer.sh does,
//! with the same flags (`--bootstrap-server`/`--broker-list`, `--property parse.key=true`, ...).

use std::path::PathBuf;

use clap::Args;
use sluice_client::producer::DeliveryFuture;
use sluice_client::{ClientConfig, Producer, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::tool::{self, key_value};

#[derive(Args)]
pub struct ConsoleProducerArgs {
    /// Broker(s) to connect to (bootstrap.servers)
    #[arg(long, alias = "broker-list", value_name = "HOST:PORT")]
    bootstrap_server: String,
    /// Topic to produce to
    #[arg(long)]
    topic: String,
    /// Line-reader properties: parse.key, key.separator, ignore.error
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Producer settings as key=value (repeatable)
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    producer_properties: Vec<String>,
    /// A producer properties file
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,
    /// none, gzip, snappy, lz4 or zstd
    #[arg(long = "compression-codec", value_name = "CODEC")]
    compression_codec: Option<String>,
    /// acks: all, -1, 0 or 1
    #[arg(long = "request-required-acks", value_name = "ACKS")]
    request_required_acks: Option<String>,
    /// Wait for each record to be acknowledged before reading the next line
    #[arg(long)]
    sync: bool,
}

/// How lines become records (Kafka's LineMessageReader properties).
struct LineReader {
    parse_key: bool,
    key_separator: String,
    ignore_error: bool,
}

impl LineReader {
    fn new(properties: &[(String, String)]) -> Result<LineReader, String> {
        let mut reader = LineReader {
            parse_key: false,
            key_separator: "\t".into(),
            ignore_error: false,
        };
        for (k, v) in properties {
            match k.as_str() {
                "parse.key" => reader.parse_key = v.eq_ignore_ascii_case("true"),
                "key.separator" => reader.key_separator = v.clone(),
                "ignore.error" => reader.ignore_error = v.eq_ignore_ascii_case("true"),
                other => return Err(format!("--property {other}: not a console-producer property (parse.key, key.separator, ignore.error)")),
            }
        }
        if reader.key_separator.is_empty() {
            return Err("--property key.separator: must not be empty".into());
        }
        Ok(reader)
    }

    /// A line without the key separator is an error unless ignore.error, which sends the whole
    /// line as the value.
    fn record(&self, topic: &str, line: &str, number: u64) -> Result<ProducerRecord, String> {
        let record = ProducerRecord::new(topic);
        if !self.parse_key {
            return Ok(record.value(line.as_bytes().to_vec()));
        }
        match line.split_once(self.key_separator.as_str()) {
            Some((key, value)) => Ok(record
                .key(key.as_bytes().to_vec())
                .value(value.as_bytes().to_vec())),
            None if self.ignore_error => Ok(record.value(line.as_bytes().to_vec())),
            None => Err(format!(
                "no key separator {:?} found on line number {number}: {line:?}",
                self.key_separator
            )),
        }
    }
}

fn client_config(args: &ConsoleProducerArgs) -> Result<ClientConfig, String> {
    let mut config = match &args.producer_config {
        Some(path) => ClientConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ClientConfig::new(),
    };
    config.insert("bootstrap.servers", args.bootstrap_server.as_str());
    // The console producer is interactive: a line should not wait for a batch to fill.
    if config.get("linger.ms").is_none() {
        config.insert("linger.ms", "0");
    }
    if let Some(codec) = &args.compression_codec {
        config.insert("compression.type", codec.as_str());
    }
    if let Some(acks) = &args.request_required_acks {
        config.insert("acks", acks.as_str());
    }
    for p in &args.producer_properties {
        let (k, v) = key_value(p, "--producer-property")?;
        config.insert(k, v);
    }
    Ok(config)
}

pub fn run(args: ConsoleProducerArgs) -> Result<(), String> {
    tool::run(produce(args))
}

async fn produce(args: ConsoleProducerArgs) -> Result<(), String> {
    let properties = args
        .properties
        .iter()
        .map(|p| key_value(p, "--property"))
        .collect::<Result<Vec<_>, _>>()?;
    let reader = LineReader::new(&properties)?;
    let producer = Producer::new(client_config(&args)?)
        .await
        .map_err(|e| e.to_string())?;
    // The topic must be reachable before reading input, so a typo'd broker fails at once.
    producer
        .cluster()
        .topic(&args.topic)
        .await
        .map_err(|e| e.to_string())?;

    // Deliveries are checked as they complete; the first failure ends the run.
    let (tx, mut rx) = mpsc::channel::<DeliveryFuture>(10_000);
    let checker = tokio::spawn(async move {
        while let Some(delivery) = rx.recv().await {
            if let Err(e) = delivery.await {
                return Err(format!("a record was not delivered: {e}"));
            }
        }
        Ok(())
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0u64;
    let mut result = Ok(());
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("reading stdin: {e}"))?
    {
        number += 1;
        let record = match reader.record(&args.topic, &line, number) {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        match producer.send(record).await {
            Ok(delivery) if args.sync => {
                if let Err(e) = delivery.await {
                    result = Err(format!("a record was not delivered: {e}"));
                    break;
                }
            }
            Ok(delivery) => {
                if tx.send(delivery).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    producer.close().await;
    let delivered = checker
        .await
        .map_err(|e| format!("delivery checker failed: {e}"))?;
    result.and(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records_like_kafkas_line_reader() {
        let plain = LineReader::new(&[]).unwrap();
        let r = plain.record("t", "a:b", 1).unwrap();
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref()),
            (None, Some(&b"a:b"[..]))
        );
        let keyed = LineReader::new(&[
            ("parse.key".into(), "true".into()),
            ("key.separator".into(), ":".into()),
        ])
        .unwrap();
        let r = keyed.record("t", "k:v:w", 1).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v:w"[..]));
        let e = keyed.record("t", "novalue", 7).unwrap_err();
        assert!(e.contains("line number 7"), "{e}");
        assert!(LineReader::new(&[("parse.kee".into(), "true".into())]).is_err());
    }
}
