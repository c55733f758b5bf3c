//! `ExtractField$Key` / `ExtractField$Value`: replaces the key or value with one of its fields.
//! With a schema the field's schema becomes the new schema; a missing map entry gives null.

use super::record::{ConnectRecord, Target};
use super::util::{map_get, require_map, require_struct, required, Props};
use super::Transformation;
use crate::data::Value;
use crate::error::{ConnectError, Result};

const PURPOSE: &str = "field extraction";

#[derive(Debug)]
pub struct ExtractField {
    target: Target,
    field: String,
}

impl ExtractField {
    pub fn new(target: Target) -> Self {
        ExtractField {
            target,
            field: String::new(),
        }
    }
}

impl Transformation for ExtractField {
    fn configure(&mut self, props: &Props) -> Result<()> {
        self.field = required(props, "field")?;
        Ok(())
    }

    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = record.schema_and_value(self.target);
        let (schema, value) = match schema {
            None if value.is_null() => return Ok(Some(record)),
            None => {
                let entries = require_map(value, PURPOSE)?;
                (
                    None,
                    map_get(entries, &self.field)
                        .cloned()
                        .unwrap_or(Value::Null),
                )
            }
            Some(schema) => {
                let field = schema
                    .field(&self.field)
                    .ok_or_else(|| ConnectError::data(format!("Unknown field: {}", self.field)))?;
                let value = if value.is_null() {
                    Value::Null
                } else {
                    require_struct(value, PURPOSE)?.get(&self.field)?.clone()
                };
                (Some(field.schema.clone()), value)
            }
        };
        Ok(Some(record.with(self.target, schema, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaBuilder, Struct};

    fn extract(target: Target) -> ExtractField {
        let mut t = ExtractField::new(target);
        t.configure(&[("field".to_string(), "id".to_string())].into())
            .unwrap();
        t
    }

    #[test]
    fn schemaless_and_struct() {
        let t = extract(Target::Key);
        let rec = ConnectRecord {
            key: Value::Map(vec![(Value::String("id".into()), Value::Int64(5))]),
            ..ConnectRecord::default()
        };
        assert_eq!(t.apply(rec).unwrap().unwrap().key, Value::Int64(5));

        let schema = SchemaBuilder::struct_().field("id", Schema::INT64).build();
        let value = Struct::new(schema.clone())
            .unwrap()
            .with("id", 7i64)
            .unwrap();
        let t = extract(Target::Value);
        let rec = ConnectRecord {
            value_schema: Some(schema),
            value: Value::Struct(value),
            ..ConnectRecord::default()
        };
        let out = t.apply(rec).unwrap().unwrap();
        assert_eq!(out.value_schema, Some(Schema::INT64));
        assert_eq!(out.value, Value::Int64(7));
    }

    #[test]
    fn missing_field_and_config() {
        let schema = SchemaBuilder::struct_().field("x", Schema::INT64).build();
        let rec = ConnectRecord {
            value_schema: Some(schema.clone()),
            value: Value::Struct(Struct::new(schema).unwrap().with("x", 1i64).unwrap()),
            ..ConnectRecord::default()
        };
        assert!(extract(Target::Value).apply(rec).is_err());
        let err = ExtractField::new(Target::Value)
            .configure(&Props::new())
            .unwrap_err();
        assert!(err.to_string().contains("field:"), "{err}");
    }
}
