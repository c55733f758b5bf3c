//! `ReplaceField$Key` / `ReplaceField$Value`: drops (`exclude`), keeps (`include`) and renames
//! (`renames=old:new,...`) fields of a struct or schemaless map.

use std::collections::HashMap;

use super::record::{ConnectRecord, Target};
use super::util::{list, require_map, require_struct, struct_builder_like, Props};
use super::{config_error, Transformation};
use crate::data::{Struct, Value};
use crate::error::Result;

const PURPOSE: &str = "field replacement";

#[derive(Debug)]
pub struct ReplaceField {
    target: Target,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: HashMap<String, String>,
}

impl ReplaceField {
    pub fn new(target: Target) -> Self {
        ReplaceField {
            target,
            exclude: Vec::new(),
            include: Vec::new(),
            renames: HashMap::new(),
        }
    }

    /// The output name of a kept field, `None` when it is dropped.
    fn rename(&self, name: &str) -> Option<String> {
        let kept = (self.include.is_empty() || self.include.iter().any(|f| f == name))
            && !self.exclude.iter().any(|f| f == name);
        kept.then(|| {
            self.renames
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string())
        })
    }
}

impl Transformation for ReplaceField {
    fn configure(&mut self, props: &Props) -> Result<()> {
        // `blacklist` / `whitelist` are the names older Kafka configs still use.
        self.exclude = [list(props, "exclude"), list(props, "blacklist")].concat();
        self.include = [list(props, "include"), list(props, "whitelist")].concat();
        self.renames.clear();
        for pair in list(props, "renames") {
            match pair.split_once(':') {
                Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                    self.renames
                        .insert(from.trim().to_string(), to.trim().to_string());
                }
                _ => {
                    return Err(config_error(
                        "renames",
                        format!("expected old:new, got {pair:?}"),
                    ))
                }
            }
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
                let entries = require_map(value, PURPOSE)?
                    .iter()
                    .filter_map(|(k, v)| match k {
                        Value::String(name) => Some((Value::String(self.rename(name)?), v.clone())),
                        // Non-string keys cannot be named in config, so they pass untouched.
                        _ => Some((k.clone(), v.clone())),
                    })
                    .collect();
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let old = require_struct(value, PURPOSE)?;
                let mut builder = struct_builder_like(schema);
                let mut moves = Vec::new();
                for field in &schema.fields {
                    if let Some(new_name) = self.rename(&field.name) {
                        builder = builder.field(new_name.clone(), field.schema.clone());
                        moves.push((field.name.as_str(), new_name));
                    }
                }
                let new_schema = builder.build();
                let mut new = Struct::new(new_schema.clone())?;
                for (from, to) in moves {
                    new.put(&to, old.get(from)?.clone())?;
                }
                (Some(new_schema), Value::Struct(new))
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

    fn configured(pairs: &[(&str, &str)]) -> ReplaceField {
        let mut t = ReplaceField::new(Target::Value);
        let props = props(pairs);
        t.configure(&props).unwrap();
        t
    }

    #[test]
    fn schemaless_exclude_and_rename() {
        let t = configured(&[("exclude", "secret"), ("renames", "a:alpha, b:beta")]);
        let rec = ConnectRecord {
            value: Value::Map(vec![
                (s("a"), Value::Int32(1)),
                (s("secret"), s("x")),
                (s("c"), Value::Int32(3)),
            ]),
            ..ConnectRecord::default()
        };
        let out = t.apply(rec).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![
                (s("alpha"), Value::Int32(1)),
                (s("c"), Value::Int32(3))
            ])
        );
    }

    #[test]
    fn struct_include_and_rename() {
        let schema = SchemaBuilder::struct_()
            .field("a", Schema::INT32)
            .field("b", Schema::STRING)
            .field("c", Schema::INT64)
            .build();
        let value = Struct::new(schema.clone())
            .unwrap()
            .with("a", 1)
            .unwrap()
            .with("b", "two")
            .unwrap()
            .with("c", 3i64)
            .unwrap();
        let t = configured(&[("include", "a,b"), ("renames", "b:bee")]);
        let rec = ConnectRecord {
            value_schema: Some(schema),
            value: Value::Struct(value),
            ..ConnectRecord::default()
        };
        let out = t.apply(rec).unwrap().unwrap();
        let expected_schema = SchemaBuilder::struct_()
            .field("a", Schema::INT32)
            .field("bee", Schema::STRING)
            .build();
        assert_eq!(out.value_schema.as_ref(), Some(&expected_schema));
        let expected = Struct::new(expected_schema)
            .unwrap()
            .with("a", 1)
            .unwrap()
            .with("bee", "two")
            .unwrap();
        assert_eq!(out.value, Value::Struct(expected));
    }

    #[test]
    fn bad_rename_is_rejected() {
        let mut t = ReplaceField::new(Target::Key);
        let props: Props = [("renames".to_string(), "a".to_string())].into();
        let err = t.configure(&props).unwrap_err().to_string();
        assert!(err.contains("renames:"), "{err}");
    }
}
