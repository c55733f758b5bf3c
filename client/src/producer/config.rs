//! `ProducerConfig`: the producer's settings read by their Kafka names and checked against each
//! other the way the Java client checks them (idempotence needs acks=all, retries, <= 5 in flight).

use std::time::Duration;

use sluice_protocol::records::Compression;

use crate::config::{ClientConfig, CommonConfig, COMMON_KEYS};
use crate::error::{ClientError, Result};

/// The producer's own keys; with [`COMMON_KEYS`], everything it reads.
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "buffer.memory",
    "max.block.ms",
    "compression.type",
    "enable.idempotence",
    "retries",
    "delivery.timeout.ms",
    "max.in.flight.requests.per.connection",
    "max.request.size",
    "partitioner.ignore.keys",
    "allow.auto.create.topics",
];

/// The most requests in flight per connection an idempotent producer may have: the broker
/// remembers that many batches per producer to recognise retries.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: nothing is answered, so nothing is known about delivery.
    None,
    /// acks=1: the leader has the records.
    Leader,
    /// acks=all (-1): every in-sync replica has them.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub common: CommonConfig,
    pub acks: Acks,
    pub linger: Duration,
    pub batch_size: usize,
    pub buffer_memory: usize,
    pub max_block: Duration,
    pub compression: Compression,
    pub idempotence: bool,
    pub retries: u32,
    pub delivery_timeout: Duration,
    pub max_in_flight: usize,
    pub max_request_size: usize,
    pub partitioner_ignore_keys: bool,
    pub allow_auto_create_topics: bool,
}

/// A config error about `key` for a reason of the producer's own, naming the key's value and
/// source as the typed readers do.
fn refuse(config: &ClientConfig, key: &str, reason: String) -> ClientError {
    // A choice among nothing fails for any value that is set, with the value and its source.
    match config.choice(key, "", &[]) {
        Err(ClientError::Config {
            key,
            value,
            source_name,
            ..
        }) => ClientError::Config {
            key,
            value,
            source_name,
            reason,
        },
        _ => ClientError::Config {
            key: key.to_string(),
            value: String::new(),
            source_name: "the defaults".into(),
            reason,
        },
    }
}

impl ProducerConfig {
    pub fn from_config(config: &ClientConfig) -> Result<ProducerConfig> {
        let common = CommonConfig::from_config(config, "sluice-producer")?;
        let acks = match config
            .choice("acks", "all", &["all", "-1", "0", "1"])?
            .as_str()
        {
            "0" => Acks::None,
            "1" => Acks::Leader,
            _ => Acks::All,
        };
        let compression = match config
            .choice(
                "compression.type",
                "none",
                &["none", "gzip", "snappy", "lz4", "zstd"],
            )?
            .as_str()
        {
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            _ => Compression::None,
        };
        let retries = config.number("retries", i32::MAX, 0, i32::MAX)? as u32;
        let max_in_flight =
            config.number("max.in.flight.requests.per.connection", 5usize, 1, 1 << 20)?;
        let linger = config.millis("linger.ms", 5)?;
        let request_timeout = common.request_timeout;

        // As in the Java client: idempotence is on unless turned off, and a default that other
        // settings contradict gives way to them, while an explicit one is an error.
        let idempotence_explicit = config.get("enable.idempotence").is_some();
        let mut idempotence = config.bool("enable.idempotence", true)?;
        if idempotence {
            let conflict =
                acks != Acks::All || retries == 0 || max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT;
            if conflict && !idempotence_explicit {
                idempotence = false;
            } else if conflict {
                const WHY: &str = "with enable.idempotence=true";
                return Err(if acks != Acks::All {
                    refuse(config, "acks", format!("must be all (-1) {WHY}"))
                } else if retries == 0 {
                    refuse(config, "retries", format!("must be at least 1 {WHY}"))
                } else {
                    refuse(
                        config,
                        "max.in.flight.requests.per.connection",
                        format!("must be at most {MAX_IN_FLIGHT_IDEMPOTENT} {WHY}"),
                    )
                });
            }
        }

        // Delivery must leave room for lingering and one request, or every batch would expire
        // on its first attempt. An explicit setting that does not is refused; the default grows.
        let floor = linger + request_timeout;
        let delivery_timeout = if config.get("delivery.timeout.ms").is_some() {
            let d = config.millis("delivery.timeout.ms", 120_000)?;
            if d < floor {
                return Err(refuse(
                    config,
                    "delivery.timeout.ms",
                    format!(
                        "must be at least linger.ms + request.timeout.ms = {} ms",
                        floor.as_millis()
                    ),
                ));
            }
            d
        } else {
            Duration::from_millis(120_000).max(floor)
        };

        Ok(ProducerConfig {
            acks,
            linger,
            batch_size: config.number("batch.size", 16_384usize, 0, i32::MAX as usize)?,
            buffer_memory: config.number("buffer.memory", 32usize << 20, 1, usize::MAX >> 4)?,
            max_block: config.millis("max.block.ms", 60_000)?,
            compression,
            idempotence,
            retries,
            delivery_timeout,
            max_in_flight,
            max_request_size: config.number(
                "max.request.size",
                1usize << 20,
                1,
                i32::MAX as usize,
            )?,
            partitioner_ignore_keys: config.bool("partitioner.ignore.keys", false)?,
            allow_auto_create_topics: config.bool("allow.auto.create.topics", true)?,
            common,
        })
    }

    /// Logs keys neither the producer nor the common settings read.
    pub fn warn_unknown(config: &ClientConfig) {
        config.warn_unknown(&[COMMON_KEYS, PRODUCER_KEYS], "producer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ClientConfig {
        ClientConfig::new().set("bootstrap.servers", "localhost:9092")
    }

    #[test]
    fn defaults_follow_kafka() {
        let c = ProducerConfig::from_config(&base()).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.idempotence);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16_384);
        assert_eq!(c.buffer_memory, 32 << 20);
        assert_eq!(c.max_block, Duration::from_secs(60));
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.retries, i32::MAX as u32);
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.max_request_size, 1 << 20);
        assert!(!c.partitioner_ignore_keys);
        assert!(c.allow_auto_create_topics);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = ProducerConfig::from_config(&base().set("acks", "2")).unwrap_err();
        assert!(e.to_string().starts_with("acks = \"2\" in code"), "{e}");
        let e = ProducerConfig::from_config(&base().set("compression.type", "brotli"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("compression.type = \"brotli\""), "{e}");
        assert!(e.contains("zstd"), "{e}");
        let e = ProducerConfig::from_config(&base().set("linger.ms", "-1")).unwrap_err();
        assert!(e.to_string().starts_with("linger.ms"), "{e}");
    }

    #[test]
    fn idempotence_gives_way_unless_explicit() {
        for acks in ["0", "1"] {
            let c = ProducerConfig::from_config(&base().set("acks", acks)).unwrap();
            assert!(!c.idempotence, "acks={acks}");
        }
        let c = ProducerConfig::from_config(&base().set("acks", "-1")).unwrap();
        assert!(c.idempotence);
        let c = ProducerConfig::from_config(&base().set("retries", "0")).unwrap();
        assert!(!c.idempotence);

        let explicit = base().set("enable.idempotence", "true");
        let e = ProducerConfig::from_config(&explicit.clone().set("acks", "1"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "acks = \"1\" in code: must be all (-1) with enable.idempotence=true"
        );
        let e = ProducerConfig::from_config(
            &explicit
                .clone()
                .set("max.in.flight.requests.per.connection", "6"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("max.in.flight.requests.per.connection = \"6\""),
            "{e}"
        );
        let e = ProducerConfig::from_config(&explicit.set("retries", "0")).unwrap_err();
        assert!(e.to_string().starts_with("retries = \"0\""), "{e}");

        let off = base()
            .set("enable.idempotence", "false")
            .set("acks", "1")
            .set("max.in.flight.requests.per.connection", "10");
        let c = ProducerConfig::from_config(&off).unwrap();
        assert!(!c.idempotence);
        assert_eq!(c.max_in_flight, 10);
    }

    #[test]
    fn delivery_timeout_covers_linger_and_a_request() {
        let short = base()
            .set("delivery.timeout.ms", "1000")
            .set("request.timeout.ms", "5000");
        let e = ProducerConfig::from_config(&short).unwrap_err().to_string();
        assert!(e.starts_with("delivery.timeout.ms = \"1000\""), "{e}");
        assert!(e.contains("5005 ms"), "{e}");
        let grown = base()
            .set("request.timeout.ms", "200000")
            .set("linger.ms", "0");
        let c = ProducerConfig::from_config(&grown).unwrap();
        assert_eq!(c.delivery_timeout, Duration::from_millis(200_000));
    }
}
