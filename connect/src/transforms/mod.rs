//! Single Message Transforms and predicates, configured the way Kafka Connect configures them
//! (`transforms=...`, `predicates=...`), applied to source records after poll and sink records after conversion.

mod chain;
mod extract_field;
mod filter;
mod hoist_field;
mod insert_field;
mod mask_field;
mod predicates;
mod record;
mod regex_router;
mod replace_field;
mod timestamp_router;
mod util;
mod value_to_key;

use std::collections::BTreeMap;

use crate::error::{ConnectError, Result};

pub use chain::TransformationChain;
pub use extract_field::ExtractField;
pub use filter::Filter;
pub use hoist_field::HoistField;
pub use insert_field::InsertField;
pub use mask_field::MaskField;
pub use predicates::{HasHeaderKey, RecordIsTombstone, TopicNameMatches};
pub use record::{ConnectRecord, Target};
pub use regex_router::RegexRouter;
pub use replace_field::ReplaceField;
pub use timestamp_router::TimestampRouter;
pub use value_to_key::ValueToKey;

/// Rewrites one record, or drops it by returning `None`.
///
/// `configure` receives only the transform's own keys, with the `transforms.<alias>.` prefix
/// stripped; errors it returns should name the unprefixed key (see [`config_error`]) so the
/// chain can report the full key.
pub trait Transformation: Send {
    fn configure(&mut self, props: &BTreeMap<String, String>) -> Result<()>;
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>>;
}

/// Decides whether a transform applies to a record.
pub trait Predicate: Send {
    fn configure(&mut self, props: &BTreeMap<String, String>) -> Result<()>;
    fn test(&self, record: &ConnectRecord) -> bool;
}

const TRANSFORMS_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
const PREDICATES_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// Builds an unconfigured transform from a Kafka class name
/// (`org.apache.kafka.connect.transforms.InsertField$Value`) or its short form (`InsertField$Value`).
pub fn create_transformation(class: &str) -> Result<Box<dyn Transformation>> {
    let name = class.trim();
    let short = name.strip_prefix(TRANSFORMS_PACKAGE).unwrap_or(name);
    let t: Box<dyn Transformation> = match short {
        "RegexRouter" => Box::new(RegexRouter::default()),
        "Filter" => Box::new(Filter),
        "TimestampRouter" => Box::new(TimestampRouter::default()),
        "ValueToKey" => Box::new(ValueToKey::default()),
        _ => {
            let Some((base, side)) = short.split_once('$') else {
                return Err(unknown("transformation", name));
            };
            let target = match side {
                "Key" => Target::Key,
                "Value" => Target::Value,
                _ => return Err(unknown("transformation", name)),
            };
            match base {
                "InsertField" => Box::new(InsertField::new(target)),
                "ReplaceField" => Box::new(ReplaceField::new(target)),
                "MaskField" => Box::new(MaskField::new(target)),
                "ExtractField" => Box::new(ExtractField::new(target)),
                "HoistField" => Box::new(HoistField::new(target)),
                _ => return Err(unknown("transformation", name)),
            }
        }
    };
    Ok(t)
}

/// Builds an unconfigured predicate from a Kafka class name
/// (`org.apache.kafka.connect.transforms.predicates.TopicNameMatches`) or its short form.
pub fn create_predicate(class: &str) -> Result<Box<dyn Predicate>> {
    let name = class.trim();
    let short = name.strip_prefix(PREDICATES_PACKAGE).unwrap_or(name);
    Ok(match short {
        "TopicNameMatches" => Box::new(TopicNameMatches::default()),
        "HasHeaderKey" => Box::new(HasHeaderKey::default()),
        "RecordIsTombstone" => Box::new(RecordIsTombstone),
        _ => return Err(unknown("predicate", name)),
    })
}

fn unknown(kind: &'static str, class: &str) -> ConnectError {
    ConnectError::UnknownClass {
        kind,
        class: class.to_string(),
    }
}

/// A configuration error about `key`. The message starts with the key so the chain can turn
/// it into the full `transforms.<alias>.<key>` without each transform knowing its alias.
pub fn config_error(key: &str, problem: impl std::fmt::Display) -> ConnectError {
    ConnectError::Config(format!("{key}: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_resolve_in_full_and_short_forms() {
        for class in [
            "org.apache.kafka.connect.transforms.InsertField$Value",
            "InsertField$Key",
            "org.apache.kafka.connect.transforms.RegexRouter",
            "Filter",
            "ReplaceField$Value",
            "MaskField$Key",
            "ExtractField$Value",
            "HoistField$Key",
            "ValueToKey",
            "TimestampRouter",
        ] {
            assert!(create_transformation(class).is_ok(), "{class}");
        }
        for class in [
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            "HasHeaderKey",
            "RecordIsTombstone",
        ] {
            assert!(create_predicate(class).is_ok(), "{class}");
        }
    }

    #[test]
    fn unknown_classes_are_named() {
        for class in ["InsertField", "InsertField$Header", "com.example.Nope"] {
            let err = create_transformation(class).err().unwrap();
            assert_eq!(
                err,
                ConnectError::UnknownClass {
                    kind: "transformation",
                    class: class.into()
                }
            );
        }
        let err = create_predicate("Nope").err().unwrap();
        assert!(err.to_string().contains("Nope"), "{err}");
    }
}
