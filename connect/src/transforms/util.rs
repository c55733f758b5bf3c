//! Config-reading and value-shaping helpers shared by the transforms.
//! Kept in one place so every transform words its errors the same way.

use std::collections::BTreeMap;

use super::config_error;
use crate::data::{Schema, SchemaBuilder, Struct, Value};
use crate::error::{ConnectError, Result};

pub type Props = BTreeMap<String, String>;

pub fn required(props: &Props, key: &str) -> Result<String> {
    match props.get(key).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(config_error(key, "missing required value")),
    }
}

pub fn optional(props: &Props, key: &str) -> Option<String> {
    props
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A comma-separated list, as Kafka's `ConfigDef.Type.LIST` reads it.
pub fn list(props: &Props, key: &str) -> Vec<String> {
    props
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(config_error(
            key,
            format!("expected true or false, got {value:?}"),
        )),
    }
}

/// The schemaless form a field transform can work on: a map keyed by strings.
pub fn require_map<'a>(value: &'a Value, purpose: &str) -> Result<&'a [(Value, Value)]> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(ConnectError::data(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            describe(other)
        ))),
    }
}

pub fn require_struct<'a>(value: &'a Value, purpose: &str) -> Result<&'a Struct> {
    match value {
        Value::Struct(s) => Ok(s),
        other => Err(ConnectError::data(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            describe(other)
        ))),
    }
}

fn describe(value: &Value) -> String {
    value
        .schema_type()
        .map_or_else(|| "null".to_string(), |t| t.to_string())
}

pub fn map_get<'a>(entries: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::String(s) if s == name))
        .map(|(_, v)| v)
}

/// Sets `name` in a schemaless map, replacing an existing entry in place so the map keeps
/// its order.
pub fn map_put(entries: &mut Vec<(Value, Value)>, name: &str, value: Value) {
    match entries
        .iter_mut()
        .find(|(k, _)| matches!(k, Value::String(s) if s == name))
    {
        Some(entry) => entry.1 = value,
        None => entries.push((Value::String(name.to_string()), value)),
    }
}

/// A struct builder carrying over everything but the fields of `schema`, so a rewritten
/// struct keeps its name, version and docs.
pub fn struct_builder_like(schema: &Schema) -> SchemaBuilder {
    let mut b = SchemaBuilder::struct_();
    if schema.optional {
        b = b.optional();
    }
    if let Some(name) = &schema.name {
        b = b.name(name.clone());
    }
    if let Some(version) = schema.version {
        b = b.version(version);
    }
    if let Some(doc) = &schema.doc {
        b = b.doc(doc.clone());
    }
    for (k, v) in &schema.parameters {
        b = b.parameter(k.clone(), v.clone());
    }
    b
}

/// What the transforms' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::connector::Props;
    use crate::data::Value;

    pub(crate) fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn s(v: &str) -> Value {
        Value::String(v.into())
    }
}
