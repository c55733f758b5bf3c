//! Checking a connector configuration without starting anything, for the REST API's
//! `config/validate`: every problem found is tied to the key a person has to change.
//!
//! Connectors report problems through `validate` as one error message, not per key, so the key
//! is read from the message: a key the configuration knows of, else a quoted or dotted name in
//! it. What names no key is put on `connector.class`, the plugin that refused the config.

use std::collections::BTreeMap;

use super::config::ConnectorConfig;
use super::status::ConnectorType;
use crate::connector::{ConfigKey, ConfigType, Connector, Importance, Props};
use crate::error::ConnectError;
use crate::transforms::TransformationChain;

/// One key's definition, its value as it would be used, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInfo {
    pub definition: ConfigKey,
    /// The submitted value, else the default; passwords are never echoed.
    pub value: Option<String>,
    pub errors: Vec<String>,
}

/// The answer to a validation request (Kafka's `ConfigInfos`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInfos {
    /// The plugin's full class name.
    pub name: String,
    pub error_count: usize,
    /// Group names in the order their first key appears.
    pub groups: Vec<String>,
    pub configs: Vec<ConfigInfo>,
}

const COMMON: &str = "Common";
const ERRORS: &str = "Error Handling";

/// The keys the worker itself reads from every connector configuration of `kind`.
pub(crate) fn worker_keys(kind: ConnectorType) -> Vec<ConfigKey> {
    use ConfigType as T;
    use Importance::{High, Low, Medium};
    let mut keys = vec![
        ConfigKey::required("name", T::String, High, "The connector's name, unique on this worker.")
            .group(COMMON)
            .display_name("Connector name"),
        ConfigKey::required(
            "connector.class",
            T::String,
            High,
            "The connector plugin: its full class name, simple name, or simple name without 'Connector'.",
        )
        .group(COMMON)
        .display_name("Connector class"),
        ConfigKey::optional(
            "tasks.max",
            T::Int,
            Some("1"),
            High,
            "The most tasks this connector may run; it can choose fewer.",
        )
        .group(COMMON)
        .display_name("Tasks max"),
        ConfigKey::optional(
            "key.converter",
            T::Class,
            None,
            Low,
            "Turns record keys into bytes and back; unset uses the worker's key.converter.",
        )
        .group(COMMON)
        .display_name("Key converter class"),
        ConfigKey::optional(
            "value.converter",
            T::Class,
            None,
            Low,
            "Turns record values into bytes and back; unset uses the worker's value.converter.",
        )
        .group(COMMON)
        .display_name("Value converter class"),
    ];
    if kind == ConnectorType::Sink {
        keys.extend([
            ConfigKey::optional(
                "topics",
                T::List,
                Some(""),
                High,
                "Comma-separated topics to consume. Set this or topics.regex, not both.",
            )
            .group(COMMON)
            .display_name("Topics"),
            ConfigKey::optional(
                "topics.regex",
                T::String,
                Some(""),
                High,
                "A regular expression; every topic whose whole name matches is consumed. Set this or topics, not both.",
            )
            .group(COMMON)
            .display_name("Topics regex"),
        ]);
    }
    keys.extend([
        ConfigKey::optional(
            "transforms",
            T::List,
            Some(""),
            Low,
            "Aliases of the transformations applied to each record, in order.",
        )
        .group("Transforms")
        .display_name("Transforms"),
        ConfigKey::optional(
            "predicates",
            T::List,
            Some(""),
            Low,
            "Aliases of the predicates transformations may be conditioned on.",
        )
        .group("Predicates")
        .display_name("Predicates"),
        ConfigKey::optional(
            "errors.tolerance",
            T::String,
            Some("none"),
            Medium,
            "none: a record that fails conversion or a transformation fails the task. all: it is skipped.",
        )
        .group(ERRORS)
        .display_name("Error tolerance"),
        ConfigKey::optional(
            "errors.log.enable",
            T::Boolean,
            Some("false"),
            Medium,
            "Whether each skipped record is logged.",
        )
        .group(ERRORS)
        .display_name("Log errors"),
    ]);
    if kind == ConnectorType::Sink {
        keys.extend([
            ConfigKey::optional(
                "errors.deadletterqueue.topic.name",
                T::String,
                Some(""),
                Medium,
                "With errors.tolerance=all, the topic skipped records are written to as they were consumed; empty means none.",
            )
            .group(ERRORS)
            .display_name("Dead letter queue topic name"),
            ConfigKey::optional(
                "errors.deadletterqueue.context.headers.enable",
                T::Boolean,
                Some("false"),
                Medium,
                "Whether dead letter records carry headers saying where they came from and why they were skipped.",
            )
            .group(ERRORS)
            .display_name("Enable error context headers"),
        ]);
    }
    keys
}

/// The keys a connector declares for itself.
pub(crate) fn connector_keys(connector: &Connector) -> Vec<ConfigKey> {
    match connector {
        Connector::Source(c) => c.config_keys(),
        Connector::Sink(c) => c.config_keys(),
    }
}

fn is_set(props: &Props, key: &str) -> bool {
    props.get(key).is_some_and(|v| !v.trim().is_empty())
}

/// Validates `props` for the plugin `class` (already resolved, and already in
/// `props["connector.class"]`), collecting every problem rather than stopping at the first.
pub(crate) fn validate(connector: &Connector, class: &str, props: &Props) -> ConfigInfos {
    let kind = match connector {
        Connector::Source(_) => ConnectorType::Source,
        Connector::Sink(_) => ConnectorType::Sink,
    };
    let mut keys = worker_keys(kind);
    for key in connector_keys(connector) {
        // The worker's meaning of a key wins: it is the one that will be applied.
        if !keys.iter().any(|k| k.name == key.name) {
            keys.push(key);
        }
    }
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys
        .iter()
        .filter(|k| k.required && !is_set(props, &k.name))
    {
        errors
            .entry(key.name.clone())
            .or_default()
            .push(format!("\"{}\" is required and has no default", key.name));
    }

    // Parsed with stand-ins for a missing name and class, already reported above, so the
    // checks after them (tasks.max, converters, errors.*) still run.
    let mut parsable = props.clone();
    if !is_set(&parsable, "name") {
        parsable.insert("name".into(), "validation".into());
    }
    let mut found: Vec<ConnectError> = Vec::new();
    found.extend(ConnectorConfig::from_props(parsable, "this configuration").err());
    found.extend(TransformationChain::from_props(props).err());
    if kind == ConnectorType::Sink {
        match (is_set(props, "topics"), is_set(props, "topics.regex")) {
            (true, true) | (false, false) => {
                let message = "set exactly one of topics and topics.regex";
                for key in ["topics", "topics.regex"] {
                    errors
                        .entry(key.to_string())
                        .or_default()
                        .push(message.to_string());
                }
            }
            _ => {}
        }
    }
    let by_connector = match connector {
        Connector::Source(c) => c.validate(props),
        Connector::Sink(c) => c.validate(props),
    };
    found.extend(by_connector.err());

    let known: Vec<&str> = keys
        .iter()
        .map(|k| k.name.as_str())
        .chain(props.keys().map(String::as_str))
        .collect();
    for e in found {
        let message = match e {
            ConnectError::Config(m) => m,
            other => other.to_string(),
        };
        let key = key_named_in(&message, &known, props).unwrap_or("connector.class");
        let on_key = errors.entry(key.to_string()).or_default();
        // One problem found by two checks (a required key the connector also insists on)
        // would otherwise count twice.
        if on_key.is_empty() {
            on_key.push(message);
        }
    }

    let mut configs: Vec<ConfigInfo> = keys
        .into_iter()
        .map(|definition| {
            let errors = errors.remove(&definition.name).unwrap_or_default();
            let value = match props.get(&definition.name) {
                Some(_) if definition.kind == ConfigType::Password => Some("[hidden]".into()),
                Some(v) => Some(v.clone()),
                None => definition.default.clone(),
            };
            ConfigInfo {
                definition,
                value,
                errors,
            }
        })
        .collect();
    // Keys nobody declared but a check complained about (a transformation's settings, a
    // connector's undeclared key) still get an entry, so no error is left without a home.
    for (name, errors) in errors {
        configs.push(ConfigInfo {
            value: props.get(&name).cloned(),
            definition: ConfigKey::optional(&name, ConfigType::String, None, Importance::Low, ""),
            errors,
        });
    }
    let mut groups: Vec<String> = Vec::new();
    for group in configs.iter().filter_map(|c| c.definition.group.as_ref()) {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    ConfigInfos {
        name: class.to_string(),
        error_count: configs.iter().map(|c| c.errors.len()).sum(),
        groups,
        configs,
    }
}

/// The configuration key an error message is about, most explicit naming first: a name in
/// double quotes that is not one of the submitted values, a dotted key the configuration
/// knows (declared or submitted), any other word shaped like a dotted key
/// (`transforms.route.type`), and last a known key written as a plain word (`name`, `file`),
/// since such words also occur as plain English.
fn key_named_in<'a>(message: &'a str, known: &[&'a str], props: &Props) -> Option<&'a str> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let words: Vec<(&str, bool)> = message
        .split(|c: char| !is_key_char(c))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let quoted = message[..offset_in(message, w)].ends_with('"')
                && message[offset_in(message, w) + w.len()..].starts_with('"');
            (w.trim_end_matches(['.', '-']), quoted)
        })
        .filter(|(w, _)| !w.is_empty())
        .collect();
    let is_value = |w: &str| props.values().any(|v| v.trim() == w);
    let key_shaped = |w: &str| {
        w.contains('.')
            && w.parse::<f64>().is_err()
            && !is_value(w)
            && w.chars().all(|c| !c.is_ascii_uppercase())
    };
    let first = |test: &dyn Fn(&str, bool) -> bool| {
        words.iter().find(|(w, q)| test(w, *q)).map(|(w, _)| *w)
    };
    first(&|w, quoted| quoted && !is_value(w))
        .or_else(|| first(&|w, _| w.contains('.') && known.contains(&w)))
        .or_else(|| first(&|w, _| key_shaped(w)))
        .or_else(|| first(&|w, _| known.contains(&w)))
}

/// Where the slice `word`, taken from `message`, starts in it.
fn offset_in(message: &str, word: &str) -> usize {
    word.as_ptr() as usize - message.as_ptr() as usize
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

    #[test]
    fn the_key_is_read_from_the_message() {
        let p = props(&[("tasks.max", "many"), ("file", "in.txt")]);
        let known = ["name", "tasks.max", "file"];
        let key = |m: &'static str| key_named_in(m, &known, &p);
        assert_eq!(
            key("invalid value \"many\" for tasks.max in x: expected a number"),
            Some("tasks.max")
        );
        assert_eq!(
            key("missing required configuration \"topic\""),
            Some("topic")
        );
        assert_eq!(key("cannot open \"in.txt\": no such file"), Some("file"));
        assert_eq!(key("cannot open \"in.txt\": denied"), None);
        assert_eq!(key("the name is too long for tasks.max"), Some("tasks.max"));
        assert_eq!(
            key("transforms.route.type: missing required class name"),
            Some("transforms.route.type")
        );
        assert_eq!(key("the value 1.5 is not allowed."), None);
        assert_eq!(key("class org.example.Thing failed"), None);
    }
}
