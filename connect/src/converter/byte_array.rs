//! `ByteArrayConverter`: record bytes pass through untouched, as Kafka's `ByteArrayConverter`.
//! Only BYTES data (or schemaless bytes) is accepted; anything else is a data error.

use bytes::Bytes;

use super::Converter;
use crate::connector::Props;
use crate::data::{Schema, SchemaAndValue, Type, Value};
use crate::error::{ConnectError, Result};

#[derive(Debug, Default, Clone, Copy)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn configure(&mut self, _configs: &Props, _is_key: bool) -> Result<()> {
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>> {
        if let Some(schema) = schema {
            if schema.type_ != Type::Bytes {
                return Err(ConnectError::data(format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    schema.type_
                )));
            }
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::data(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.schema_type().map_or("null", |t| t.kafka_name())
            ))),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let value = bytes.map_or(Value::Null, |b| Value::Bytes(Bytes::copy_from_slice(b)));
        Ok(SchemaAndValue::new(Some(Schema::OPTIONAL_BYTES), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_through() {
        let c = ByteArrayConverter;
        let raw = Bytes::from_static(b"\x00\x01binary");
        let out = c
            .from_connect("t", Some(&Schema::BYTES), &Value::Bytes(raw.clone()))
            .unwrap();
        assert_eq!(out, Some(raw.clone()));
        let back = c.to_connect("t", Some(&raw)).unwrap();
        assert_eq!(
            back,
            SchemaAndValue::new(Some(Schema::OPTIONAL_BYTES), Value::Bytes(raw))
        );
        assert_eq!(c.from_connect("t", None, &Value::Null).unwrap(), None);
        assert_eq!(c.to_connect("t", None).unwrap().value, Value::Null);
    }

    #[test]
    fn non_bytes_are_rejected() {
        let c = ByteArrayConverter;
        let err = c
            .from_connect("t", Some(&Schema::STRING), &"x".into())
            .unwrap_err();
        assert!(err.to_string().contains("Invalid schema type"), "{err}");
        let err = c.from_connect("t", None, &"x".into()).unwrap_err();
        assert!(err.to_string().contains("STRING"), "{err}");
    }
}
