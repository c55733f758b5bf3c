//! The worker's settings (connect-standalone.properties) and one connector's settings
//! (name, connector.class, tasks.max, errors.*). Every error names the key and the file, since
//! a person editing a properties file is who reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_client::ClientConfig;
use sluice_config::Properties;

use crate::connector::Props;
use crate::converter::{converter_by_class, Converter};
use crate::error::{ConnectError, Result};

/// Kafka's default; its sample connect-standalone.properties lowers it to 10 s.
pub const DEFAULT_OFFSET_FLUSH_INTERVAL_MS: u64 = 60_000;
pub const DEFAULT_EMBEDDED_BROKER_LOG_DIRS: &str = "/tmp/sluice-connect-broker";

/// Reads a properties file into `Props`, remembering where it came from for error messages.
pub fn load_props(path: &Path) -> Result<Props> {
    let props = Properties::load(path).map_err(|e| ConnectError::Config(e.to_string()))?;
    Ok(props.into_entries().into_iter().collect())
}

/// Typed reads over `Props` whose errors say which key of which file is wrong.
struct Reader<'a> {
    props: &'a Props,
    source: &'a str,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.props
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn invalid(&self, key: &str, expected: &str) -> ConnectError {
        ConnectError::Config(format!(
            "invalid value {:?} for {key} in {}: expected {expected}",
            self.props.get(key).map(String::as_str).unwrap_or_default(),
            self.source
        ))
    }

    fn required(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            ConnectError::Config(format!("missing required config {key} in {}", self.source))
        })
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.invalid(key, "true or false")),
        }
    }

    fn u64(&self, key: &str, default: u64, min: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(self.invalid(key, &format!("a whole number of at least {min}"))),
            },
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every `prefix*` key with the prefix removed.
    fn with_prefix(&self, prefix: &str) -> Props {
        self.props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .filter(|(k, _)| !k.is_empty())
            .collect()
    }
}

/// How to build one side's converter: its class and its `<side>.converter.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverterSpec {
    pub class: String,
    pub props: Props,
}

impl ConverterSpec {
    fn read(r: &Reader<'_>, side: &str) -> Result<Option<ConverterSpec>> {
        let key = format!("{side}.converter");
        let Some(class) = r.get(&key) else {
            return Ok(None);
        };
        let spec = ConverterSpec {
            class: class.to_string(),
            props: r.with_prefix(&format!("{key}.")),
        };
        // Built once now so a misspelt class or setting fails at startup, naming the file.
        spec.build(side == "key")
            .map_err(|e| ConnectError::Config(format!("{key} in {}: {e}", r.source)))?;
        Ok(Some(spec))
    }

    pub fn build(&self, is_key: bool) -> Result<Box<dyn Converter>> {
        let mut c = converter_by_class(&self.class)?;
        c.configure(&self.props, is_key)?;
        Ok(c)
    }
}

/// The worker's settings, as Kafka's `StandaloneConfig` reads them.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where the settings came from, for later error messages.
    pub source: String,
    pub bootstrap_servers: Vec<String>,
    pub key_converter: ConverterSpec,
    pub value_converter: ConverterSpec,
    pub offset_storage_file: PathBuf,
    pub offset_flush_interval: Duration,
    /// Stored for the REST server to come; nothing listens on them yet.
    pub listeners: Vec<String>,
    /// Accepted so Kafka's files load unchanged; Rust connectors are compiled in.
    pub plugin_path: Option<String>,
    /// `producer.*` with the prefix removed, applied to every source task's producer.
    pub producer_overrides: Props,
    /// `consumer.*` with the prefix removed, applied to every sink task's consumer.
    pub consumer_overrides: Props,
    /// `sluice.embedded.broker`: run a broker inside the worker's process, on the
    /// bootstrap.servers address, so a quickstart needs nothing else.
    pub embedded_broker: bool,
    pub embedded_broker_log_dirs: PathBuf,
}

impl WorkerConfig {
    pub fn from_file(path: &Path) -> Result<WorkerConfig> {
        let props = load_props(path)?;
        WorkerConfig::from_props(&props, &path.display().to_string())
    }

    /// `source` names the origin of `props` in errors (a file path, or "code").
    pub fn from_props(props: &Props, source: &str) -> Result<WorkerConfig> {
        let r = Reader { props, source };
        let bootstrap_servers = r.list("bootstrap.servers");
        let bootstrap_servers = if bootstrap_servers.is_empty() {
            vec!["localhost:9092".to_string()]
        } else {
            bootstrap_servers
        };
        for server in &bootstrap_servers {
            if sluice_client::config::split_host_port(server).is_none() {
                return Err(r.invalid("bootstrap.servers", "HOST:PORT[,HOST:PORT...]"));
            }
        }
        let required_converter = |side: &str| -> Result<ConverterSpec> {
            ConverterSpec::read(&r, side)?.ok_or_else(|| {
                ConnectError::Config(format!(
                    "missing required config {side}.converter in {source}"
                ))
            })
        };
        let key_converter = required_converter("key")?;
        let value_converter = required_converter("value")?;
        // Standalone keeps source offsets in a local file, so it must be told which one.
        let offset_storage_file = PathBuf::from(r.required("offset.storage.file.filename")?);
        let offset_flush_interval = Duration::from_millis(r.u64(
            "offset.flush.interval.ms",
            DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
            1,
        )?);
        Ok(WorkerConfig {
            source: source.to_string(),
            bootstrap_servers,
            key_converter,
            value_converter,
            offset_storage_file,
            offset_flush_interval,
            listeners: r.list("listeners"),
            plugin_path: r.get("plugin.path").map(str::to_string),
            producer_overrides: r.with_prefix("producer."),
            consumer_overrides: r.with_prefix("consumer."),
            embedded_broker: r.bool("sluice.embedded.broker", false)?,
            embedded_broker_log_dirs: PathBuf::from(
                r.get("sluice.embedded.broker.log.dirs")
                    .unwrap_or(DEFAULT_EMBEDDED_BROKER_LOG_DIRS),
            ),
        })
    }

    /// Client settings shared by producers and consumers, then `overrides` on top.
    pub(crate) fn client_config(&self, client_id: &str, layers: &[&Props]) -> ClientConfig {
        let mut config = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers.join(","))
            .set("client.id", client_id);
        for layer in layers {
            for (k, v) in layer.iter() {
                config.insert(k.clone(), v.clone());
            }
        }
        config
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTolerance {
    /// Any conversion failure fails the task.
    None,
    /// Conversion failures skip the record.
    All,
}

/// One connector's settings, as Kafka's `ConnectorConfig` reads them; `props` keeps them all
/// for the connector itself.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub class: String,
    pub tasks_max: usize,
    /// Per-connector converters win over the worker's, as in Kafka.
    pub key_converter: Option<ConverterSpec>,
    pub value_converter: Option<ConverterSpec>,
    pub errors_tolerance: ErrorTolerance,
    pub errors_log_enable: bool,
    /// errors.deadletterqueue.topic.name (sinks): where records that fail conversion or a
    /// transform go when errors.tolerance=all.
    pub dead_letter_topic: Option<String>,
    /// errors.deadletterqueue.context.headers.enable: add `__connect.errors.*` headers saying
    /// where the record came from and why it failed.
    pub dead_letter_context_headers: bool,
    /// `producer.override.*` / `consumer.override.*` with the prefix removed.
    pub producer_overrides: Props,
    pub consumer_overrides: Props,
    pub props: Props,
}

impl ConnectorConfig {
    pub fn from_file(path: &Path) -> Result<ConnectorConfig> {
        let props = load_props(path)?;
        ConnectorConfig::from_props(props, &path.display().to_string())
    }

    pub fn from_props(props: Props, source: &str) -> Result<ConnectorConfig> {
        let r = Reader {
            props: &props,
            source,
        };
        let name = r.required("name")?.to_string();
        let class = r.required("connector.class")?.to_string();
        let tasks_max = r.u64("tasks.max", 1, 1)?;
        let tasks_max =
            usize::try_from(tasks_max).map_err(|_| r.invalid("tasks.max", "a smaller number"))?;
        let errors_tolerance = match r.get("errors.tolerance") {
            None => ErrorTolerance::None,
            Some(v) if v.eq_ignore_ascii_case("none") => ErrorTolerance::None,
            Some(v) if v.eq_ignore_ascii_case("all") => ErrorTolerance::All,
            Some(_) => return Err(r.invalid("errors.tolerance", "none or all")),
        };
        Ok(ConnectorConfig {
            name,
            class,
            tasks_max,
            key_converter: ConverterSpec::read(&r, "key")?,
            value_converter: ConverterSpec::read(&r, "value")?,
            errors_tolerance,
            errors_log_enable: r.bool("errors.log.enable", false)?,
            dead_letter_topic: r
                .get("errors.deadletterqueue.topic.name")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            dead_letter_context_headers: r
                .bool("errors.deadletterqueue.context.headers.enable", false)?,
            producer_overrides: r.with_prefix("producer.override."),
            consumer_overrides: r.with_prefix("consumer.override."),
            props,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn worker_sample() -> Props {
        props(&[
            ("bootstrap.servers", "localhost:9092"),
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("key.converter.schemas.enable", "true"),
            ("value.converter.schemas.enable", "false"),
            ("offset.storage.file.filename", "/tmp/connect.offsets"),
            ("offset.flush.interval.ms", "10000"),
            ("listeners", "HTTP://:8083"),
            ("plugin.path", "/usr/share/java"),
            ("producer.linger.ms", "5"),
            ("consumer.max.poll.records", "10"),
        ])
    }

    #[test]
    fn kafka_sample_is_read() {
        let c = WorkerConfig::from_props(&worker_sample(), "w.properties").unwrap();
        assert_eq!(c.bootstrap_servers, ["localhost:9092"]);
        assert_eq!(c.offset_flush_interval, Duration::from_secs(10));
        assert_eq!(c.value_converter.props["schemas.enable"], "false");
        assert_eq!(c.producer_overrides["linger.ms"], "5");
        assert_eq!(c.consumer_overrides["max.poll.records"], "10");
        assert_eq!(c.listeners, ["HTTP://:8083"]);
        assert!(!c.embedded_broker);
        assert_eq!(
            c.embedded_broker_log_dirs,
            PathBuf::from(DEFAULT_EMBEDDED_BROKER_LOG_DIRS)
        );
    }

    fn worker_error(change: &[(&str, Option<&str>)]) -> String {
        let mut p = worker_sample();
        for (k, v) in change {
            match v {
                Some(v) => p.insert(k.to_string(), v.to_string()),
                None => p.remove(*k),
            };
        }
        WorkerConfig::from_props(&p, "/etc/w.properties")
            .expect_err("an error")
            .to_string()
    }

    #[test]
    fn worker_errors_name_the_key_and_the_file() {
        for (change, key) in [
            (
                ("offset.storage.file.filename", None),
                "offset.storage.file.filename",
            ),
            (
                ("offset.flush.interval.ms", Some("soon")),
                "offset.flush.interval.ms",
            ),
            (("value.converter", None), "value.converter"),
            (("key.converter", Some("AvroConverter")), "key.converter"),
            (
                ("sluice.embedded.broker", Some("yes")),
                "sluice.embedded.broker",
            ),
            (("bootstrap.servers", Some("nohost")), "bootstrap.servers"),
        ] {
            let e = worker_error(&[change]);
            assert!(e.contains(key), "{e}");
            assert!(e.contains("/etc/w.properties"), "{e}");
        }
    }

    #[test]
    fn connector_config_needs_name_and_class() {
        let e = ConnectorConfig::from_props(props(&[("connector.class", "X")]), "c.properties")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "config error: missing required config name in c.properties"
        );
        let e = ConnectorConfig::from_props(props(&[("name", "n")]), "c.properties")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("connector.class") && e.contains("c.properties"),
            "{e}"
        );
        let e = ConnectorConfig::from_props(
            props(&[("name", "n"), ("connector.class", "X"), ("tasks.max", "0")]),
            "c.properties",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("tasks.max") && e.contains("c.properties"), "{e}");
    }

    #[test]
    fn connector_config_reads_error_and_client_overrides() {
        let c = ConnectorConfig::from_props(
            props(&[
                ("name", "n"),
                ("connector.class", "X"),
                ("tasks.max", "3"),
                ("errors.tolerance", "all"),
                ("errors.log.enable", "true"),
                ("producer.override.acks", "1"),
                ("consumer.override.max.poll.records", "7"),
                ("value.converter", "StringConverter"),
            ]),
            "c.properties",
        )
        .unwrap();
        assert_eq!(c.tasks_max, 3);
        assert_eq!(c.errors_tolerance, ErrorTolerance::All);
        assert!(c.errors_log_enable);
        assert_eq!(c.producer_overrides["acks"], "1");
        assert_eq!(c.consumer_overrides["max.poll.records"], "7");
        assert_eq!(c.value_converter.unwrap().class, "StringConverter");
        assert!(c.key_converter.is_none());
    }

    #[test]
    fn missing_file_is_named() {
        let e = WorkerConfig::from_file(Path::new("/nonexistent/w.properties"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/w.properties"), "{e}");
    }
}
