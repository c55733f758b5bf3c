//! Converters between Connect data and the bytes stored in Kafka records.
//! `converter_by_class` resolves the `key.converter`/`value.converter` class names Kafka configs use.

mod byte_array;
mod json;
mod json_text;
mod string;

pub use byte_array::ByteArrayConverter;
pub use json::JsonConverter;
pub use string::StringConverter;

use bytes::Bytes;

use crate::connector::Props;
use crate::data::{Schema, SchemaAndValue, Value};
use crate::error::{ConnectError, Result};

/// Turns Connect data into record bytes and back (Kafka's `org.apache.kafka.connect.storage.Converter`).
pub trait Converter: Send + Sync {
    /// Applies the converter's settings (already stripped of the `key.converter.` /
    /// `value.converter.` prefix); `is_key` says which half of the record it serves.
    fn configure(&mut self, configs: &Props, is_key: bool) -> Result<()>;

    /// `None` means a null record key or value (a tombstone when it is the value).
    // Named after Kafka's `fromConnectData`; it converts *from* Connect data using `self`'s settings.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>>;

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue>;
}

/// Full Kafka class names of the built-in converters. Each also answers to its simple name
/// and to the simple name without the `Converter` suffix, as Kafka's plugin aliases do.
type ConverterFactory = fn() -> Box<dyn Converter>;

const CONVERTERS: [(&str, ConverterFactory); 3] = [
    ("org.apache.kafka.connect.json.JsonConverter", || {
        Box::new(JsonConverter::default())
    }),
    ("org.apache.kafka.connect.storage.StringConverter", || {
        Box::new(StringConverter::default())
    }),
    (
        "org.apache.kafka.connect.converters.ByteArrayConverter",
        || Box::new(ByteArrayConverter),
    ),
];

/// Builds an unconfigured converter from a Kafka class name or alias.
pub fn converter_by_class(class: &str) -> Result<Box<dyn Converter>> {
    let class = class.trim();
    CONVERTERS
        .iter()
        .find(|(full, _)| crate::connector::class_matches(full, class, "Converter"))
        .map(|(_, make)| make())
        .ok_or_else(|| ConnectError::UnknownClass {
            kind: "converter",
            class: class.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_and_aliases_resolve() {
        for name in [
            "org.apache.kafka.connect.json.JsonConverter",
            "JsonConverter",
            "Json",
            "org.apache.kafka.connect.storage.StringConverter",
            "StringConverter",
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            "ByteArrayConverter",
            " ByteArray ",
        ] {
            converter_by_class(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn resolved_converter_is_the_named_one() {
        let mut c = converter_by_class("StringConverter").unwrap();
        c.configure(&Props::new(), false).unwrap();
        let bytes = c.from_connect("t", None, &Value::Int32(5)).unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"5"[..]));
    }

    #[test]
    fn unknown_class_is_named_in_the_error() {
        let err = converter_by_class("com.example.AvroConverter")
            .err()
            .unwrap();
        assert_eq!(
            err,
            ConnectError::UnknownClass {
                kind: "converter",
                class: "com.example.AvroConverter".into()
            }
        );
        assert!(err.to_string().contains("com.example.AvroConverter"));
        // A different package with the same simple name is a different class.
        assert!(converter_by_class("com.example.JsonConverter").is_err());
    }
}
