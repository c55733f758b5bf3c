//! `ValueToKey`: replaces the key with a struct (or map) of the listed `fields` from the value.
//! Typically used so a sink can key rows by columns of the value.

use super::record::ConnectRecord;
use super::util::{list, map_get, require_map, require_struct, Props};
use super::{config_error, Transformation};
use crate::data::{SchemaBuilder, Struct, Value};
use crate::error::{ConnectError, Result};

const PURPOSE: &str = "copying fields from value to key";

#[derive(Debug, Default)]
pub struct ValueToKey {
    fields: Vec<String>,
}

impl Transformation for ValueToKey {
    fn configure(&mut self, props: &Props) -> Result<()> {
        self.fields = list(props, "fields");
        if self.fields.is_empty() {
            return Err(config_error("fields", "missing required value"));
        }
        Ok(())
    }

    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        match &record.value_schema {
            None => {
                let entries = require_map(&record.value, PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = map_get(entries, f).cloned().unwrap_or(Value::Null);
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let value = require_struct(&record.value, PURPOSE)?;
                let mut builder = SchemaBuilder::struct_();
                for f in &self.fields {
                    let field = schema
                        .field(f)
                        .ok_or_else(|| ConnectError::data(format!("Field does not exist: {f}")))?;
                    builder = builder.field(f.clone(), field.schema.clone());
                }
                let key_schema = builder.build();
                let mut key = Struct::new(key_schema.clone())?;
                for f in &self.fields {
                    key.put(f, value.get(f)?.clone())?;
                }
                record.key_schema = Some(key_schema);
                record.key = Value::Struct(key);
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Schema;
    use crate::transforms::util::test_support::s;

    fn v2k() -> ValueToKey {
        let mut t = ValueToKey::default();
        t.configure(&[("fields".to_string(), "id, region".to_string())].into())
            .unwrap();
        t
    }

    #[test]
    fn schemaless() {
        let rec = ConnectRecord {
            value: Value::Map(vec![
                (s("id"), Value::Int32(1)),
                (s("region"), s("eu")),
                (s("other"), s("x")),
            ]),
            ..ConnectRecord::default()
        };
        let out = v2k().apply(rec).unwrap().unwrap();
        assert_eq!(
            out.key,
            Value::Map(vec![(s("id"), Value::Int32(1)), (s("region"), s("eu"))])
        );
    }

    #[test]
    fn with_schema() {
        let schema = SchemaBuilder::struct_()
            .field("id", Schema::INT32)
            .field("region", Schema::STRING)
            .field("other", Schema::STRING)
            .build();
        let value = Struct::new(schema.clone())
            .unwrap()
            .with("id", 1)
            .unwrap()
            .with("region", "eu")
            .unwrap()
            .with("other", "x")
            .unwrap();
        let rec = ConnectRecord {
            value_schema: Some(schema),
            value: Value::Struct(value),
            ..ConnectRecord::default()
        };
        let out = v2k().apply(rec.clone()).unwrap().unwrap();
        let key_schema = out.key_schema.unwrap();
        assert_eq!(key_schema.fields.len(), 2);
        let Value::Struct(k) = out.key else {
            panic!("not a struct")
        };
        assert_eq!(k.get("region").unwrap(), &s("eu"));
        assert_eq!(out.value, rec.value);

        let mut missing = ValueToKey::default();
        missing
            .configure(&[("fields".to_string(), "nope".to_string())].into())
            .unwrap();
        assert!(missing.apply(rec).is_err());
        assert!(ValueToKey::default().configure(&Props::new()).is_err());
    }
}
