//! `StringConverter`: values as UTF-8 text, as Kafka's `org.apache.kafka.connect.storage.StringConverter`.
//! Non-string values are written in their Java `toString` form; reading always yields an optional string.

use bytes::Bytes;

use super::Converter;
use crate::connector::Props;
use crate::data::{Schema, SchemaAndValue, Value};
use crate::error::{ConnectError, Result};

#[derive(Debug, Default, Clone)]
pub struct StringConverter {
    _private: (),
}

impl Converter for StringConverter {
    fn configure(&mut self, configs: &Props, is_key: bool) -> Result<()> {
        // Kafka allows other charsets; only UTF-8 is supported, so refuse rather than garble.
        let prefix = if is_key { "key" } else { "value" };
        for key in [
            "converter.encoding".to_string(),
            format!("converter.{prefix}.encoding"),
        ] {
            if let Some(enc) = configs.get(&key) {
                if !enc.eq_ignore_ascii_case("UTF-8") && !enc.eq_ignore_ascii_case("UTF8") {
                    return Err(ConnectError::Config(format!(
                        "StringConverter supports only UTF-8, not {key}={enc}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
            // Java would print "[B@hash"; passing the bytes through is the useful reading.
            Value::Bytes(b) => Some(b.clone()),
            other => Some(Bytes::from(other.to_string())),
        })
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let value = match bytes {
            None => Value::Null,
            Some(b) => Value::String(
                std::str::from_utf8(b)
                    .map_err(|e| ConnectError::data(format!("Failed to deserialize string: {e}")))?
                    .to_owned(),
            ),
        };
        Ok(SchemaAndValue::new(Some(Schema::OPTIONAL_STRING), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> StringConverter {
        let mut c = StringConverter::default();
        c.configure(&Props::new(), false).unwrap();
        c
    }

    #[test]
    fn strings_round_trip_as_utf8() {
        let c = conv();
        let b = c
            .from_connect("t", Some(&Schema::STRING), &"héllo".into())
            .unwrap()
            .unwrap();
        assert_eq!(&b[..], "héllo".as_bytes());
        let back = c.to_connect("t", Some(&b)).unwrap();
        assert_eq!(
            back,
            SchemaAndValue::new(Some(Schema::OPTIONAL_STRING), "héllo".into())
        );
    }

    #[test]
    fn other_values_use_their_string_form() {
        let c = conv();
        let one = |v: Value| c.from_connect("t", None, &v).unwrap().unwrap();
        assert_eq!(&one(Value::Int64(-3))[..], b"-3");
        assert_eq!(&one(Value::Float64(1e10))[..], b"1.0E10");
        assert_eq!(&one(Value::Boolean(true))[..], b"true");
        assert_eq!(&one(Value::Bytes(Bytes::from_static(b"raw")))[..], b"raw");
    }

    #[test]
    fn null_maps_to_null_both_ways() {
        let c = conv();
        assert_eq!(c.from_connect("t", None, &Value::Null).unwrap(), None);
        let back = c.to_connect("t", None).unwrap();
        assert_eq!(
            back,
            SchemaAndValue::new(Some(Schema::OPTIONAL_STRING), Value::Null)
        );
    }

    #[test]
    fn invalid_utf8_and_other_encodings_are_errors() {
        assert!(conv().to_connect("t", Some(&[0xff, 0xfe])).is_err());
        let mut c = StringConverter::default();
        let props = Props::from([("converter.encoding".to_string(), "ISO-8859-1".to_string())]);
        assert!(matches!(
            c.configure(&props, true),
            Err(ConnectError::Config(_))
        ));
    }
}
