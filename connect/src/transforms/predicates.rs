//! The predicates Kafka ships: `TopicNameMatches`, `HasHeaderKey` and `RecordIsTombstone`.
//! A transform with `predicate=<alias>` runs only on records its predicate accepts.

use regex::Regex;

use super::record::ConnectRecord;
use super::util::{required, Props};
use super::{config_error, Predicate};
use crate::error::Result;

/// True when the whole topic name matches `pattern`.
#[derive(Debug, Default)]
pub struct TopicNameMatches {
    pattern: Option<Regex>,
}

impl Predicate for TopicNameMatches {
    fn configure(&mut self, props: &Props) -> Result<()> {
        let pattern = required(props, "pattern")?;
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| config_error("pattern", format!("invalid regex {pattern:?}: {e}")))?;
        self.pattern = Some(regex);
        Ok(())
    }

    fn test(&self, record: &ConnectRecord) -> bool {
        self.pattern
            .as_ref()
            .expect("TopicNameMatches used before configure")
            .is_match(&record.topic)
    }
}

/// True when the record has at least one header called `name`.
#[derive(Debug, Default)]
pub struct HasHeaderKey {
    name: String,
}

impl Predicate for HasHeaderKey {
    fn configure(&mut self, props: &Props) -> Result<()> {
        self.name = required(props, "name")?;
        Ok(())
    }

    fn test(&self, record: &ConnectRecord) -> bool {
        record.headers.iter().any(|h| h.key == self.name)
    }
}

/// True when the record's value is null, i.e. a delete marker for compacted topics.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn configure(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }

    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Header;
    use crate::data::Value;

    fn props(k: &str, v: &str) -> Props {
        [(k.to_string(), v.to_string())].into()
    }

    fn on_topic(topic: &str) -> ConnectRecord {
        ConnectRecord {
            topic: topic.into(),
            value: Value::Int32(1),
            ..ConnectRecord::default()
        }
    }

    #[test]
    fn topic_name_matches_whole_name() {
        let mut p = TopicNameMatches::default();
        p.configure(&props("pattern", "db\\.[a-z]+")).unwrap();
        assert!(p.test(&on_topic("db.users")));
        assert!(!p.test(&on_topic("db.users.v2")));
        assert!(!p.test(&on_topic("xdb.users")));
        let err = TopicNameMatches::default()
            .configure(&props("pattern", "("))
            .unwrap_err();
        assert!(err.to_string().contains("pattern:"), "{err}");
    }

    #[test]
    fn has_header_key() {
        let mut p = HasHeaderKey::default();
        p.configure(&props("name", "trace")).unwrap();
        let mut r = on_topic("t");
        assert!(!p.test(&r));
        r.headers.push(Header {
            key: "trace".into(),
            schema: None,
            value: Value::Null,
        });
        assert!(p.test(&r));
        assert!(HasHeaderKey::default().configure(&Props::new()).is_err());
    }

    #[test]
    fn record_is_tombstone() {
        let p = RecordIsTombstone;
        assert!(!p.test(&on_topic("t")));
        assert!(p.test(&ConnectRecord::default()));
    }
}
