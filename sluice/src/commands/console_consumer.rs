//! `sluice console-consumer`: prints a topic's records, as kafka-console-consumer.sh does, with
//! the same flags (`--from-beginning`, `--group`, `--partition/--offset`, `--property print.key`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use sluice_client::consumer::{Consumer, ConsumerRecord, TopicPartition};
use sluice_client::ClientConfig;

use super::tool::{self, key_value};

#[derive(Args)]
pub struct ConsoleConsumerArgs {
    /// Broker(s) to connect to (bootstrap.servers)
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: String,
    /// Topic to read
    #[arg(long, required_unless_present = "include")]
    topic: Option<String>,
    /// Regular expression of topics to read (instead of --topic)
    #[arg(long, alias = "whitelist", conflicts_with = "topic")]
    include: Option<String>,
    /// Start at the earliest record when the group has no committed offset
    #[arg(long)]
    from_beginning: bool,
    /// Consumer group (default: a new console-consumer-NNNNN group)
    #[arg(long)]
    group: Option<String>,
    /// Read only this partition (no group membership)
    #[arg(long)]
    partition: Option<i32>,
    /// With --partition: earliest, latest or an offset
    #[arg(long, requires = "partition", allow_negative_numbers = true)]
    offset: Option<String>,
    /// Exit after this many records
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.timestamp, print.partition,
    /// print.offset, print.headers, key.separator, line.separator, key.deserializer,
    /// value.deserializer
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Consumer settings as key=value (repeatable)
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_properties: Vec<String>,
    /// A consumer properties file
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<PathBuf>,
}

/// How a key or value is shown (Kafka's deserializer class names).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decoder {
    String,
    Long,
    Integer,
    Short,
    Double,
    Float,
    Bytes,
}

impl Decoder {
    fn parse(class: &str) -> Result<Decoder, String> {
        let name = class.rsplit('.').next().unwrap_or(class);
        Ok(match name {
            "StringDeserializer" => Decoder::String,
            "LongDeserializer" => Decoder::Long,
            "IntegerDeserializer" => Decoder::Integer,
            "ShortDeserializer" => Decoder::Short,
            "DoubleDeserializer" => Decoder::Double,
            "FloatDeserializer" => Decoder::Float,
            "ByteArrayDeserializer" | "BytesDeserializer" | "ByteBufferDeserializer" => {
                Decoder::Bytes
            }
            _ => return Err(format!("unsupported deserializer {class}")),
        })
    }

    fn show(self, data: &Option<Bytes>) -> Vec<u8> {
        let Some(b) = data else {
            return b"null".to_vec();
        };
        let fixed = |n: usize| -> Option<&[u8]> { (b.len() == n).then_some(&b[..]) };
        let text = match self {
            Decoder::String | Decoder::Bytes => return b.to_vec(),
            Decoder::Long => {
                fixed(8).map(|x| i64::from_be_bytes(x.try_into().unwrap()).to_string())
            }
            Decoder::Integer => {
                fixed(4).map(|x| i32::from_be_bytes(x.try_into().unwrap()).to_string())
            }
            Decoder::Short => {
                fixed(2).map(|x| i16::from_be_bytes(x.try_into().unwrap()).to_string())
            }
            Decoder::Double => {
                fixed(8).map(|x| f64::from_be_bytes(x.try_into().unwrap()).to_string())
            }
            Decoder::Float => {
                fixed(4).map(|x| f32::from_be_bytes(x.try_into().unwrap()).to_string())
            }
        };
        text.unwrap_or_else(|| format!("<{} bytes: not a {self:?}>", b.len()))
            .into_bytes()
    }
}

/// Kafka's DefaultMessageFormatter, the properties it reads and their defaults.
struct Formatter {
    print_key: bool,
    print_value: bool,
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    key_separator: String,
    line_separator: String,
    key: Decoder,
    value: Decoder,
}

impl Formatter {
    fn new(properties: &[(String, String)]) -> Result<Formatter, String> {
        let mut f = Formatter {
            print_key: false,
            print_value: true,
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            key: Decoder::String,
            value: Decoder::String,
        };
        let yes = |v: &str| v.eq_ignore_ascii_case("true");
        for (k, v) in properties {
            match k.as_str() {
                "print.key" => f.print_key = yes(v),
                "print.value" => f.print_value = yes(v),
                "print.timestamp" => f.print_timestamp = yes(v),
                "print.partition" => f.print_partition = yes(v),
                "print.offset" => f.print_offset = yes(v),
                "print.headers" => f.print_headers = yes(v),
                "key.separator" => f.key_separator = unescape(v),
                "line.separator" => f.line_separator = unescape(v),
                "key.deserializer" => f.key = Decoder::parse(v)?,
                "value.deserializer" => f.value = Decoder::parse(v)?,
                other => {
                    return Err(format!(
                        "--property {other}: not a console-consumer property"
                    ))
                }
            }
        }
        Ok(f)
    }

    fn write(&self, r: &ConsumerRecord, out: &mut impl Write) -> std::io::Result<()> {
        let sep = self.key_separator.as_bytes();
        if self.print_timestamp {
            write!(out, "CreateTime:{}", r.timestamp)?;
            out.write_all(sep)?;
        }
        if self.print_partition {
            write!(out, "Partition:{}", r.partition)?;
            out.write_all(sep)?;
        }
        if self.print_offset {
            write!(out, "Offset:{}", r.offset)?;
            out.write_all(sep)?;
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.write_all(b"NO_HEADERS")?;
            }
            for (i, h) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(h.key.as_bytes())?;
                out.write_all(b":")?;
                out.write_all(&Decoder::String.show(&h.value))?;
            }
            out.write_all(sep)?;
        }
        if self.print_key {
            out.write_all(&self.key.show(&r.key))?;
            if self.print_value {
                out.write_all(sep)?;
            }
        }
        if self.print_value {
            out.write_all(&self.value.show(&r.value))?;
        }
        out.write_all(self.line_separator.as_bytes())
    }
}

/// `\t`, `\n` and `\r` as Kafka users write them on a command line.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

fn client_config(args: &ConsoleConsumerArgs) -> Result<ClientConfig, String> {
    let mut config = match &args.consumer_config {
        Some(path) => ClientConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ClientConfig::new(),
    };
    config.insert("bootstrap.servers", args.bootstrap_server.as_str());
    for p in &args.consumer_properties {
        let (k, v) = key_value(p, "--consumer-property")?;
        config.insert(k, v);
    }
    if args.partition.is_none() {
        // Like Kafka's tool: without --group a fresh group, so everything is read once.
        let group = match (&args.group, config.get("group.id")) {
            (Some(g), _) => g.clone(),
            (None, Some(g)) => g.to_string(),
            (None, None) => format!("console-consumer-{}", std::process::id() % 100_000),
        };
        config.insert("group.id", group);
    } else if let Some(g) = &args.group {
        config.insert("group.id", g.as_str());
    }
    if args.from_beginning {
        config.insert("auto.offset.reset", "earliest");
    } else if config.get("auto.offset.reset").is_none() {
        config.insert("auto.offset.reset", "latest");
    }
    Ok(config)
}

pub fn run(args: ConsoleConsumerArgs) -> Result<(), String> {
    tool::run(consume(args))
}

async fn consume(args: ConsoleConsumerArgs) -> Result<(), String> {
    let properties = args
        .properties
        .iter()
        .map(|p| key_value(p, "--property"))
        .collect::<Result<Vec<_>, _>>()?;
    let formatter = Formatter::new(&properties)?;
    let mut consumer = Consumer::new(client_config(&args)?).map_err(|e| e.to_string())?;
    let err = |e: sluice_client::ClientError| e.to_string();
    match (&args.topic, args.partition, &args.include) {
        (Some(topic), Some(p), _) => {
            let tp = TopicPartition::new(topic.clone(), p);
            consumer.assign([tp.clone()]).map_err(err)?;
            match args.offset.as_deref() {
                None | Some("latest") if !args.from_beginning => {
                    consumer.seek_to_end(&[tp]).map_err(err)?
                }
                None | Some("earliest") => consumer.seek_to_beginning(&[tp]).map_err(err)?,
                Some("latest") => consumer.seek_to_end(&[tp]).map_err(err)?,
                Some(n) => {
                    let offset: i64 = n.parse().map_err(|_| {
                        format!("--offset {n}: expected earliest, latest or a number")
                    })?;
                    consumer.seek(&tp, offset).map_err(err)?
                }
            }
        }
        (Some(topic), None, _) => {
            // A typo'd topic is an error, not an endless wait.
            consumer.subscribe([topic.clone()]).map_err(err)?;
        }
        (None, _, Some(pattern)) => consumer.subscribe_pattern(pattern).map_err(err)?,
        (None, _, None) => return Err("--topic or --include is required".into()),
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let mut result = Ok(());
    let mut interrupted = std::pin::pin!(shutdown_signal());
    'reading: loop {
        if args.max_messages.is_some_and(|m| count >= m) {
            break;
        }
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(200)) => r,
            _ = &mut interrupted => break,
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        };
        if records.is_empty() {
            let _ = out.flush();
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for r in &records {
            if formatter.write(r, &mut out).is_err() {
                // stdout closed (e.g. piped into head): stop quietly.
                break 'reading;
            }
            count += 1;
            if args.max_messages.is_some_and(|m| count >= m) {
                break 'reading;
            }
        }
        let _ = out.flush();
    }
    let _ = out.flush();
    drop(out);
    // Commits what was printed (auto-commit) and leaves the group.
    let closed = consumer.close().await.map_err(err);
    eprintln!("Processed a total of {count} messages");
    result.and(closed)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>, value: Option<Bytes>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            timestamp_type: sluice_client::consumer::TimestampType::CreateTime,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value,
            headers: vec![],
            leader_epoch: None,
        }
    }

    #[test]
    fn formats_like_kafkas_default_formatter() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let show = |f: &Formatter, r: &ConsumerRecord| {
            let mut out = Vec::new();
            f.write(r, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let plain = Formatter::new(&[]).unwrap();
        assert_eq!(
            show(&plain, &record(Some("k"), Some(Bytes::from("v")))),
            "v\n"
        );
        let keyed = Formatter::new(&p(&[("print.key", "true"), ("key.separator", ":")])).unwrap();
        assert_eq!(
            show(&keyed, &record(Some("k"), Some(Bytes::from("v")))),
            "k:v\n"
        );
        assert_eq!(show(&keyed, &record(None, None)), "null:null\n");
        let counts = Formatter::new(&p(&[
            ("print.key", "true"),
            (
                "value.deserializer",
                "org.apache.kafka.common.serialization.LongDeserializer",
            ),
        ]))
        .unwrap();
        let two = Bytes::copy_from_slice(&2i64.to_be_bytes());
        assert_eq!(show(&counts, &record(Some("all"), Some(two))), "all\t2\n");
        let everything = Formatter::new(&p(&[
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
        ]))
        .unwrap();
        assert_eq!(
            show(&everything, &record(None, Some(Bytes::from("v")))),
            "CreateTime:1000\tPartition:2\tOffset:7\tv\n"
        );
        assert!(Formatter::new(&p(&[("print.kee", "true")])).is_err());
        assert!(Formatter::new(&p(&[("value.deserializer", "MyDeserializer")])).is_err());
    }
}
