//! Reads `transforms=` / `predicates=` connector properties into an ordered chain and runs it.
//! The worker calls `apply_source` after poll and `apply_sink` after conversion.

use std::collections::{BTreeMap, HashMap};

use super::record::ConnectRecord;
use super::util::{list, parse_bool, Props};
use super::{create_predicate, create_transformation, Predicate, Transformation};
use crate::connector::{SinkRecord, SourceRecord};
use crate::error::{ConnectError, Result};

struct Stage {
    alias: String,
    transform: Box<dyn Transformation>,
    /// Index into `TransformationChain::predicates`, and whether to negate it.
    predicate: Option<(usize, bool)>,
}

/// The configured transforms of one connector, in `transforms=` order.
#[derive(Default)]
pub struct TransformationChain {
    stages: Vec<Stage>,
    predicates: Vec<Box<dyn Predicate>>,
}

impl std::fmt::Debug for TransformationChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let aliases: Vec<&str> = self.stages.iter().map(|s| s.alias.as_str()).collect();
        f.debug_struct("TransformationChain")
            .field("transforms", &aliases)
            .finish()
    }
}

impl TransformationChain {
    /// Builds the chain from a connector's properties. No `transforms` key gives an empty
    /// chain that passes every record through unchanged.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<TransformationChain> {
        let predicate_aliases = aliases(props, "predicates")?;
        let mut predicates = Vec::new();
        let mut predicate_index = HashMap::new();
        for alias in &predicate_aliases {
            let prefix = format!("predicates.{alias}.");
            let class = class_of(props, &prefix)?;
            let mut p = create_predicate(&class)?;
            p.configure(&sub_props(props, &prefix, &["type"]))
                .map_err(|e| prefixed(e, &prefix))?;
            predicate_index.insert(alias.clone(), predicates.len());
            predicates.push(p);
        }

        let mut stages = Vec::new();
        for alias in aliases(props, "transforms")? {
            let prefix = format!("transforms.{alias}.");
            let class = class_of(props, &prefix)?;
            let mut transform = create_transformation(&class)?;
            transform
                .configure(&sub_props(props, &prefix, &["type", "predicate", "negate"]))
                .map_err(|e| prefixed(e, &prefix))?;
            let negate_key = format!("{prefix}negate");
            let negate = props
                .get(&negate_key)
                .map(|v| parse_bool(&negate_key, v))
                .transpose()?;
            let predicate_key = format!("{prefix}predicate");
            let predicate = match props.get(&predicate_key).map(|v| v.trim()) {
                Some(p) if !p.is_empty() => {
                    let index = *predicate_index.get(p).ok_or_else(|| {
                        ConnectError::Config(format!(
                            "{predicate_key}: predicate {p:?} is not listed in predicates"
                        ))
                    })?;
                    Some((index, negate.unwrap_or(false)))
                }
                _ => {
                    // A lone negate is almost certainly a typo in the predicate key; applying
                    // the transform to everything would hide it.
                    if negate.is_some() {
                        return Err(ConnectError::Config(format!(
                            "{negate_key}: negate needs {predicate_key} to be set"
                        )));
                    }
                    None
                }
            };
            stages.push(Stage {
                alias,
                transform,
                predicate,
            });
        }
        Ok(TransformationChain { stages, predicates })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs every transform in order; `None` means some transform dropped the record.
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        for stage in &self.stages {
            if let Some((index, negate)) = stage.predicate {
                if self.predicates[index].test(&record) == negate {
                    continue;
                }
            }
            match stage.transform.apply(record)? {
                Some(next) => record = next,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    /// [`Self::apply`] for a polled source record; the source partition and offset survive.
    pub fn apply_source(&self, record: SourceRecord) -> Result<Option<SourceRecord>> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        let (view, rest) = ConnectRecord::from_source(record);
        Ok(self.apply(view)?.map(|r| r.into_source(rest)))
    }

    /// [`Self::apply`] for a converted sink record; the consumed offset survives.
    pub fn apply_sink(&self, record: SinkRecord) -> Result<Option<SinkRecord>> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        let (partition, offset) = (record.partition, record.offset);
        Ok(self
            .apply(record.into())?
            .map(|r| r.into_sink(partition, offset)))
    }
}

fn aliases(props: &Props, key: &str) -> Result<Vec<String>> {
    let aliases = list(props, key);
    for (i, alias) in aliases.iter().enumerate() {
        if aliases[..i].contains(alias) {
            return Err(ConnectError::Config(format!(
                "{key}: alias {alias:?} is listed more than once"
            )));
        }
    }
    Ok(aliases)
}

fn class_of(props: &Props, prefix: &str) -> Result<String> {
    let key = format!("{prefix}type");
    match props.get(&key).map(|v| v.trim()) {
        Some(class) if !class.is_empty() => Ok(class.to_string()),
        _ => Err(ConnectError::Config(format!(
            "{key}: missing required class name"
        ))),
    }
}

fn sub_props(props: &Props, prefix: &str, reserved: &[&str]) -> Props {
    props
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v)))
        .filter(|(k, _)| !reserved.contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Turns a transform's `key: problem` error into `transforms.<alias>.key: problem`.
fn prefixed(err: ConnectError, prefix: &str) -> ConnectError {
    match err {
        ConnectError::Config(msg) => ConnectError::Config(format!("{prefix}{msg}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Header;
    use crate::data::Value;
    use crate::transforms::util::test_support::props;

    fn record(topic: &str) -> ConnectRecord {
        ConnectRecord {
            topic: topic.into(),
            value: Value::String("v".into()),
            ..ConnectRecord::default()
        }
    }

    fn config_message(p: &Props) -> String {
        match TransformationChain::from_props(p).unwrap_err() {
            ConnectError::Config(m) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn no_transforms_passes_records_through() {
        let chain = TransformationChain::from_props(&Props::new()).unwrap();
        assert!(chain.is_empty());
        assert_eq!(chain.apply(record("t")).unwrap(), Some(record("t")));
    }

    #[test]
    fn transforms_run_in_listed_order() {
        let chain = TransformationChain::from_props(&props(&[
            ("transforms", "first, second"),
            ("transforms.first.type", "RegexRouter"),
            ("transforms.first.regex", "a"),
            ("transforms.first.replacement", "b"),
            ("transforms.second.type", "RegexRouter"),
            ("transforms.second.regex", "b"),
            ("transforms.second.replacement", "c"),
        ]))
        .unwrap();
        assert_eq!(chain.apply(record("a")).unwrap().unwrap().topic, "c");
    }

    #[test]
    fn predicate_gates_filter_and_negate_inverts_it() {
        let base = [
            ("transforms", "drop"),
            (
                "transforms.drop.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.drop.predicate", "isLogs"),
            ("predicates", "isLogs"),
            (
                "predicates.isLogs.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.isLogs.pattern", "logs-.*"),
        ];
        let chain = TransformationChain::from_props(&props(&base)).unwrap();
        assert_eq!(chain.apply(record("logs-1")).unwrap(), None);
        assert!(chain.apply(record("orders")).unwrap().is_some());

        let mut negated = props(&base);
        negated.insert("transforms.drop.negate".into(), "true".into());
        let chain = TransformationChain::from_props(&negated).unwrap();
        assert!(chain.apply(record("logs-1")).unwrap().is_some());
        assert_eq!(chain.apply(record("orders")).unwrap(), None);
    }

    #[test]
    fn source_and_sink_records_keep_their_offsets() {
        let chain = TransformationChain::from_props(&props(&[
            ("transforms", "r"),
            ("transforms.r.type", "RegexRouter"),
            ("transforms.r.regex", ".*"),
            ("transforms.r.replacement", "out"),
        ]))
        .unwrap();
        let mut source = SourceRecord::new(
            [("file".to_string(), serde_json::json!("a.txt"))].into(),
            [("position".to_string(), serde_json::json!(7))].into(),
            "in",
            None,
            Value::String("line".into()),
        );
        source.headers.push(Header {
            key: "h".into(),
            schema: None,
            value: Value::Null,
        });
        let out = chain.apply_source(source.clone()).unwrap().unwrap();
        assert_eq!(
            out,
            SourceRecord {
                topic: "out".into(),
                ..source
            }
        );

        let sink = SinkRecord {
            topic: "in".into(),
            partition: 3,
            offset: 42,
            ..SinkRecord::default()
        };
        let out = chain.apply_sink(sink.clone()).unwrap().unwrap();
        assert_eq!(
            out,
            SinkRecord {
                topic: "out".into(),
                ..sink
            }
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let m = config_message(&props(&[("transforms", "a")]));
        assert!(m.starts_with("transforms.a.type:"), "{m}");

        let m = config_message(&props(&[
            ("transforms", "a"),
            ("transforms.a.type", "RegexRouter"),
            ("transforms.a.replacement", "x"),
        ]));
        assert!(m.starts_with("transforms.a.regex:"), "{m}");

        let m = config_message(&props(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "missing"),
        ]));
        assert!(
            m.starts_with("transforms.a.predicate:") && m.contains("missing"),
            "{m}"
        );

        let m = config_message(&props(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.negate", "true"),
        ]));
        assert!(m.starts_with("transforms.a.negate:"), "{m}");

        let m = config_message(&props(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "p"),
            ("transforms.a.negate", "yes"),
            ("predicates", "p"),
            ("predicates.p.type", "RecordIsTombstone"),
        ]));
        assert!(m.starts_with("transforms.a.negate:"), "{m}");

        let m = config_message(&props(&[
            ("transforms", "a,a"),
            ("transforms.a.type", "Filter"),
        ]));
        assert!(m.starts_with("transforms:") && m.contains("\"a\""), "{m}");

        let m = config_message(&props(&[
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
        ]));
        assert!(m.starts_with("predicates.p.pattern:"), "{m}");
    }

    #[test]
    fn unknown_class_is_named() {
        let err = TransformationChain::from_props(&props(&[
            ("transforms", "a"),
            ("transforms.a.type", "com.example.Mystery"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("com.example.Mystery"), "{err}");
    }
}
