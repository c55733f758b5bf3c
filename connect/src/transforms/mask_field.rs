//! `MaskField$Key` / `MaskField$Value`: replaces the listed `fields` with their type's empty
//! value (0, false, "", empty bytes/array/map) or with `replacement` parsed as the field's type.

use bytes::Bytes;

use super::record::{ConnectRecord, Target};
use super::util::{list, optional, require_map, require_struct, Props};
use super::{config_error, Transformation};
use crate::data::{Struct, Type, Value};
use crate::error::{ConnectError, Result};

const PURPOSE: &str = "masking fields";

#[derive(Debug)]
pub struct MaskField {
    target: Target,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    pub fn new(target: Target) -> Self {
        MaskField {
            target,
            fields: Vec::new(),
            replacement: None,
        }
    }

    fn masked(&self, name: &str, type_: Type) -> Result<Value> {
        let Some(r) = &self.replacement else {
            return Ok(match type_ {
                Type::Int8 => Value::Int8(0),
                Type::Int16 => Value::Int16(0),
                Type::Int32 => Value::Int32(0),
                Type::Int64 => Value::Int64(0),
                Type::Float32 => Value::Float32(0.0),
                Type::Float64 => Value::Float64(0.0),
                Type::Boolean => Value::Boolean(false),
                Type::String => Value::String(String::new()),
                Type::Bytes => Value::Bytes(Bytes::new()),
                Type::Array => Value::Array(Vec::new()),
                Type::Map => Value::Map(Vec::new()),
                Type::Struct => {
                    return Err(ConnectError::data(format!(
                        "Cannot mask field {name}: structs cannot be masked"
                    )))
                }
            });
        };
        let bad = || {
            ConnectError::data(format!(
                "Cannot mask field {name} of type {type_} with replacement {r:?}"
            ))
        };
        Ok(match type_ {
            Type::Int8 => Value::Int8(r.parse().map_err(|_| bad())?),
            Type::Int16 => Value::Int16(r.parse().map_err(|_| bad())?),
            Type::Int32 => Value::Int32(r.parse().map_err(|_| bad())?),
            Type::Int64 => Value::Int64(r.parse().map_err(|_| bad())?),
            Type::Float32 => Value::Float32(r.parse().map_err(|_| bad())?),
            Type::Float64 => Value::Float64(r.parse().map_err(|_| bad())?),
            Type::String => Value::String(r.clone()),
            _ => return Err(bad()),
        })
    }
}

impl Transformation for MaskField {
    fn configure(&mut self, props: &Props) -> Result<()> {
        self.fields = list(props, "fields");
        if self.fields.is_empty() {
            return Err(config_error("fields", "missing required value"));
        }
        // Kafka rejects an empty replacement: it would be indistinguishable from no replacement.
        self.replacement = optional(props, "replacement");
        if props.contains_key("replacement") && self.replacement.is_none() {
            return Err(config_error("replacement", "must not be empty"));
        }
        Ok(())
    }

    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = record.schema_and_value(self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = match schema {
            None => {
                let mut entries = require_map(value, PURPOSE)?.to_vec();
                for (k, v) in entries.iter_mut() {
                    let Value::String(name) = k else { continue };
                    if self.fields.contains(name) {
                        // Schemaless nulls have no type to mask with; they reveal nothing anyway.
                        if let Some(t) = v.schema_type() {
                            *v = self.masked(name, t)?;
                        }
                    }
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let old = require_struct(value, PURPOSE)?;
                let mut new = Struct::new(schema.clone())?;
                for field in &schema.fields {
                    let v = old.get(&field.name)?.clone();
                    let v = if self.fields.contains(&field.name) && !v.is_null() {
                        self.masked(&field.name, field.schema.type_)?
                    } else {
                        v
                    };
                    new.put(&field.name, v)?;
                }
                (Some(schema.clone()), Value::Struct(new))
            }
        };
        Ok(Some(record.with(self.target, schema, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaBuilder};
    use crate::transforms::util::test_support::{props, s};

    fn mask(pairs: &[(&str, &str)]) -> MaskField {
        let mut t = MaskField::new(Target::Value);
        let props = props(pairs);
        t.configure(&props).unwrap();
        t
    }

    #[test]
    fn schemaless_masks_to_empty_values() {
        let rec = ConnectRecord {
            value: Value::Map(vec![
                (s("ssn"), s("123")),
                (s("age"), Value::Int32(40)),
                (s("name"), s("ann")),
            ]),
            ..ConnectRecord::default()
        };
        let out = mask(&[("fields", "ssn,age")]).apply(rec).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![
                (s("ssn"), s("")),
                (s("age"), Value::Int32(0)),
                (s("name"), s("ann")),
            ])
        );
    }

    #[test]
    fn struct_masks_with_replacement() {
        let schema = SchemaBuilder::struct_()
            .field("ssn", Schema::STRING)
            .field("pin", Schema::INT64)
            .field("ok", Schema::BOOLEAN)
            .build();
        let value = Struct::new(schema.clone())
            .unwrap()
            .with("ssn", "123")
            .unwrap()
            .with("pin", 42i64)
            .unwrap()
            .with("ok", true)
            .unwrap();
        let rec = ConnectRecord {
            value_schema: Some(schema),
            value: Value::Struct(value),
            ..ConnectRecord::default()
        };
        let out = mask(&[("fields", "ssn,pin"), ("replacement", "9")])
            .apply(rec.clone())
            .unwrap()
            .unwrap();
        let Value::Struct(v) = out.value else {
            panic!("not a struct")
        };
        assert_eq!(v.get("ssn").unwrap(), &s("9"));
        assert_eq!(v.get("pin").unwrap(), &Value::Int64(9));
        assert_eq!(v.get("ok").unwrap(), &Value::Boolean(true));

        let err = mask(&[("fields", "pin"), ("replacement", "x")])
            .apply(rec)
            .unwrap_err();
        assert!(err.to_string().contains("pin"), "{err}");
    }
}
