//! `JsonConverter`: Connect data as JSON, with or without Kafka's `{"schema":…,"payload":…}` envelope.
//! Output matches Kafka's JsonConverter byte for byte (key order, Java number format, Jackson escaping).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json_text::{base64_decode, base64_encode, write_str, Json};
use super::Converter;
use crate::connector::Props;
use crate::data::{Schema, SchemaAndValue, SchemaBuilder, Struct, Type, Value};
use crate::error::{ConnectError, Result};

const SCHEMAS_ENABLE: &str = "schemas.enable";
const SCHEMAS_CACHE_SIZE: &str = "schemas.cache.size";
const DEFAULT_SCHEMAS_CACHE_SIZE: usize = 1000;

/// Kafka's `org.apache.kafka.connect.json.JsonConverter`. `schemas.enable` defaults to true.
#[derive(Debug)]
pub struct JsonConverter {
    schemas_enable: bool,
    /// Schemas as envelope text, and envelope text back to schemas: converting a schema costs
    /// far more than converting the value it describes, and a topic carries few schemas.
    to_json_schemas: Mutex<Recent<Schema, Arc<str>>>,
    to_connect_schemas: Mutex<Recent<Box<str>, Option<Schema>>>,
}

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter {
            schemas_enable: true,
            to_json_schemas: Mutex::new(Recent::new(DEFAULT_SCHEMAS_CACHE_SIZE)),
            to_connect_schemas: Mutex::new(Recent::new(DEFAULT_SCHEMAS_CACHE_SIZE)),
        }
    }
}

/// The most recently used entries of a mapping, at most `capacity` of them (Kafka's
/// `schemas.cache.size`). A linear scan, with the latest hit moved to the front: a stream's
/// records usually share one schema, so the first comparison nearly always hits.
#[derive(Debug)]
struct Recent<K, V> {
    capacity: usize,
    entries: Vec<(K, V)>,
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    fn new(capacity: usize) -> Self {
        Recent {
            capacity,
            entries: Vec::new(),
        }
    }

    fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        let at = self.entries.iter().position(|(k, _)| k.borrow() == key)?;
        self.entries[..=at].rotate_right(1);
        Some(self.entries[0].1.clone())
    }

    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop();
        }
        self.entries.insert(0, (key, value));
    }
}

/// The envelope with both parts left as text, so the schema can be looked up by its text
/// before anything is built from it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    schema: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

impl JsonConverter {
    pub fn schemas_enabled(&self) -> bool {
        self.schemas_enable
    }
}

impl Converter for JsonConverter {
    fn configure(&mut self, configs: &Props, _is_key: bool) -> Result<()> {
        if let Some(raw) = configs.get(SCHEMAS_CACHE_SIZE) {
            let size = raw.trim().parse::<usize>().map_err(|_| {
                ConnectError::Config(format!(
                    "Invalid value {raw} for configuration {SCHEMAS_CACHE_SIZE}: Not a number of type INT"
                ))
            })?;
            self.to_json_schemas = Mutex::new(Recent::new(size));
            self.to_connect_schemas = Mutex::new(Recent::new(size));
        }
        if let Some(raw) = configs.get(SCHEMAS_ENABLE) {
            // Java's ConfigDef accepts booleans case-insensitively and trimmed.
            self.schemas_enable = match raw.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConnectError::Config(format!(
                        "Invalid value {raw} for configuration {SCHEMAS_ENABLE}: Expected value to be either true or false"
                    )))
                }
            };
        }
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>> {
        // Only a schemaless null is a tombstone; a null under a schema still gets an envelope.
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let mut out = String::new();
        if self.schemas_enable {
            let cached;
            let schema_text = match schema {
                None => "null",
                Some(s) => match plain_schema_text(s) {
                    Some(text) => text,
                    None => {
                        cached = self.schema_text(s)?;
                        &cached
                    }
                },
            };
            out.reserve(schema_text.len() + payload_size_hint(value) + 24);
            out.push_str("{\"schema\":");
            out.push_str(schema_text);
            out.push_str(",\"payload\":");
            write_payload(&mut out, schema, value)?;
            out.push('}');
        } else {
            write_payload(&mut out, schema, value)?;
        }
        Ok(Some(Bytes::from(out.into_bytes())))
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::NULL);
        };
        if self.schemas_enable {
            // Validated once here (simdutf8 is several times faster than std on non-ASCII
            // text); parsing from a `str` then skips serde_json's own validation.
            let envelope = simdutf8::basic::from_utf8(bytes)
                .ok()
                .and_then(|text| serde_json::from_str::<RawEnvelope>(text).ok());
            if let Some(envelope) = envelope {
                let schema = self.schema_of(envelope.schema.get())?;
                let value = raw_to_value(schema.as_ref(), envelope.payload.get())?;
                return Ok(SchemaAndValue::new(schema, value));
            }
            // Not a plain two-member envelope: the general path below says what is wrong
            // with it, in Kafka's words (or accepts Jackson's leniencies, like a repeated key).
        }
        let json = Json::parse(bytes)?;
        if !self.schemas_enable {
            return Ok(SchemaAndValue::new(None, json_to_value(None, &json)?));
        }
        let envelope = match &json {
            Json::Object(entries) if entries.len() == 2 => {
                json.get("schema").zip(json.get("payload"))
            }
            _ => None,
        };
        let Some((schema_json, payload)) = envelope else {
            return Err(ConnectError::data(
                "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not \
                 contain additional fields. If you are trying to deserialize plain JSON data, set \
                 schemas.enable=false in your converter configuration.",
            ));
        };
        let schema = json_to_schema(schema_json)?;
        let value = json_to_value(schema.as_ref(), payload)?;
        Ok(SchemaAndValue::new(schema, value))
    }
}

impl JsonConverter {
    /// The schema's envelope text, from the cache when it was seen recently.
    fn schema_text(&self, schema: &Schema) -> Result<Arc<str>> {
        let mut cache = self
            .to_json_schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(text) = cache.get(schema) {
            return Ok(text);
        }
        let text: Arc<str> = schema_to_json(schema)?.to_string().into();
        cache.insert(schema.clone(), text.clone());
        Ok(text)
    }

    /// The schema an envelope's `schema` text describes, from the cache when seen recently.
    fn schema_of(&self, text: &str) -> Result<Option<Schema>> {
        let mut cache = self
            .to_connect_schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(schema) = cache.get(text) {
            return Ok(schema);
        }
        let schema = json_to_schema(&Json::parse(text.as_bytes())?)?;
        cache.insert(text.into(), schema.clone());
        Ok(schema)
    }
}

/// The envelope text of a bare primitive schema (no name, doc, parameters or default), the
/// kind most records carry, without a trip through the cache and its lock.
fn plain_schema_text(schema: &Schema) -> Option<&'static str> {
    let bare = schema.name.is_none()
        && schema.version.is_none()
        && schema.doc.is_none()
        && schema.parameters.is_empty()
        && schema.default_value.is_none();
    if !bare {
        return None;
    }
    Some(match (schema.type_, schema.optional) {
        (Type::String, false) => r#"{"type":"string","optional":false}"#,
        (Type::String, true) => r#"{"type":"string","optional":true}"#,
        (Type::Bytes, false) => r#"{"type":"bytes","optional":false}"#,
        (Type::Bytes, true) => r#"{"type":"bytes","optional":true}"#,
        (Type::Int64, false) => r#"{"type":"int64","optional":false}"#,
        (Type::Int64, true) => r#"{"type":"int64","optional":true}"#,
        (Type::Int32, false) => r#"{"type":"int32","optional":false}"#,
        (Type::Int32, true) => r#"{"type":"int32","optional":true}"#,
        _ => return None,
    })
}

/// Room a value's JSON is likely to need, so the output buffer is allocated once.
fn payload_size_hint(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Bytes(b) => b.len() * 4 / 3 + 4,
        _ => 64,
    }
}

/// Writes a payload; a string under a string schema (every line a file source reads) goes
/// straight to the output instead of through a `Json` tree.
fn write_payload(out: &mut String, schema: Option<&Schema>, value: &Value) -> Result<()> {
    match (schema, value) {
        (None, Value::String(s)) => write_str(out, s),
        (Some(sc), Value::String(s)) if sc.type_ == Type::String => write_str(out, s),
        _ => value_to_json(schema, value)?.write(out),
    }
    Ok(())
}

/// Reads a payload from its JSON text; a string for a string schema skips the `Json` tree.
fn raw_to_value(schema: Option<&Schema>, text: &str) -> Result<Value> {
    if text.starts_with('"') && schema.is_some_and(|s| s.type_ == Type::String) {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return Ok(Value::String(s));
        }
    }
    json_to_value(schema, &Json::parse(text.as_bytes())?)
}

fn json_type_name(t: Type) -> &'static str {
    match t {
        Type::Int8 => "int8",
        Type::Int16 => "int16",
        Type::Int32 => "int32",
        Type::Int64 => "int64",
        Type::Float32 => "float",
        Type::Float64 => "double",
        Type::Boolean => "boolean",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Array => "array",
        Type::Map => "map",
        Type::Struct => "struct",
    }
}

fn required_schema<'a>(schema: &'a Option<Box<Schema>>, what: &str) -> Result<&'a Schema> {
    schema
        .as_deref()
        .ok_or_else(|| ConnectError::data(format!("{what} schema is missing")))
}

/// Kafka's `asJsonSchema`: type, then the type's own members (fields/items/keys+values),
/// then optional, name, version, doc, parameters, default — in that order.
fn schema_to_json(schema: &Schema) -> Result<Json> {
    let mut obj = vec![(
        "type".to_string(),
        Json::Str(json_type_name(schema.type_).into()),
    )];
    match schema.type_ {
        Type::Array => obj.push((
            "items".into(),
            schema_to_json(required_schema(&schema.value_schema, "array element")?)?,
        )),
        Type::Map => {
            obj.push((
                "keys".into(),
                schema_to_json(required_schema(&schema.key_schema, "map key")?)?,
            ));
            obj.push((
                "values".into(),
                schema_to_json(required_schema(&schema.value_schema, "map value")?)?,
            ));
        }
        Type::Struct => {
            let fields = schema
                .fields
                .iter()
                .map(|field| {
                    let mut field_json = schema_to_json(&field.schema)?;
                    if let Json::Object(entries) = &mut field_json {
                        entries.push(("field".into(), Json::Str(field.name.clone())));
                    }
                    Ok(field_json)
                })
                .collect::<Result<Vec<_>>>()?;
            obj.push(("fields".into(), Json::Array(fields)));
        }
        _ => {}
    }
    obj.push(("optional".into(), Json::Bool(schema.optional)));
    if let Some(name) = &schema.name {
        obj.push(("name".into(), Json::Str(name.clone())));
    }
    if let Some(version) = schema.version {
        obj.push(("version".into(), Json::Int(version.into())));
    }
    if let Some(doc) = &schema.doc {
        obj.push(("doc".into(), Json::Str(doc.clone())));
    }
    // Kafka leaves `parameters` null until one is set, so an empty map is never written.
    if !schema.parameters.is_empty() {
        let params = schema
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
            .collect();
        obj.push(("parameters".into(), Json::Object(params)));
    }
    if let Some(default) = &schema.default_value {
        obj.push(("default".into(), value_to_json(Some(schema), default)?));
    }
    Ok(Json::Object(obj))
}

/// Kafka's `convertToJson`. Logical types need no step here: their values are already held
/// in the physical form (Date as INT32 days, Decimal as BYTES, ...), which is what Kafka writes.
fn value_to_json(schema: Option<&Schema>, value: &Value) -> Result<Json> {
    if value.is_null() {
        return match schema {
            None => Ok(Json::Null),
            Some(s) => match &s.default_value {
                Some(default) => value_to_json(Some(s), default),
                None if s.optional => Ok(Json::Null),
                None => Err(ConnectError::data(
                    "Conversion error: null value for field that is required and has no default value",
                )),
            },
        };
    }
    if let Some(s) = schema {
        if value.schema_type() != Some(s.type_) {
            return Err(ConnectError::data(format!(
                "Invalid type for {}: {}",
                s.type_,
                value.schema_type().map_or("null", |t| t.kafka_name())
            )));
        }
    }
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int8(v) => Json::Int((*v).into()),
        Value::Int16(v) => Json::Int((*v).into()),
        Value::Int32(v) => Json::Int((*v).into()),
        Value::Int64(v) => Json::Int(*v),
        Value::Float32(v) => Json::Float(*v),
        Value::Float64(v) => Json::Double(*v),
        Value::Boolean(v) => Json::Bool(*v),
        Value::String(v) => Json::Str(v.clone()),
        Value::Bytes(v) => Json::Str(base64_encode(v)),
        Value::Array(items) => {
            let item_schema = schema
                .map(|s| required_schema(&s.value_schema, "array element"))
                .transpose()?;
            Json::Array(
                items
                    .iter()
                    .map(|item| value_to_json(item_schema, item))
                    .collect::<Result<_>>()?,
            )
        }
        Value::Map(entries) => {
            let (key_schema, value_schema) = match schema {
                Some(s) => (
                    Some(required_schema(&s.key_schema, "map key")?),
                    Some(required_schema(&s.value_schema, "map value")?),
                ),
                None => (None, None),
            };
            // String-keyed maps become JSON objects; any other key type needs [key, value] pairs.
            let object_mode = match key_schema {
                Some(ks) => ks.type_ == Type::String,
                None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if object_mode {
                let mut obj = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = match value_to_json(key_schema, k)? {
                        Json::Str(s) => s,
                        other => other.to_string(),
                    };
                    obj.push((key, value_to_json(value_schema, v)?));
                }
                Json::Object(obj)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(Json::Array(vec![
                                value_to_json(key_schema, k)?,
                                value_to_json(value_schema, v)?,
                            ]))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        Value::Struct(st) => {
            let Some(s) = schema.filter(|s| *s == st.schema()) else {
                return Err(ConnectError::data("Mismatching schema."));
            };
            let mut obj = Vec::with_capacity(s.fields.len());
            for field in &s.fields {
                obj.push((
                    field.name.clone(),
                    value_to_json(Some(&field.schema), st.get(&field.name)?)?,
                ));
            }
            Json::Object(obj)
        }
    })
}

/// Kafka's `asConnectSchema`; a JSON null schema means "no schema".
fn json_to_schema(json: &Json) -> Result<Option<Schema>> {
    if *json == Json::Null {
        return Ok(None);
    }
    let Some(Json::Str(type_name)) = json.get("type") else {
        return Err(ConnectError::data("Schema must contain 'type' field"));
    };
    let sub_schema = |key: &str, what: &str| -> Result<Schema> {
        match json.get(key) {
            Some(j) if *j != Json::Null => json_to_schema(j)?.ok_or_else(unreachable_none),
            _ => Err(ConnectError::data(format!(
                "{what} schema did not specify the {key} type"
            ))),
        }
    };
    let mut builder = match type_name.as_str() {
        "boolean" => SchemaBuilder::bool(),
        "int8" => SchemaBuilder::int8(),
        "int16" => SchemaBuilder::int16(),
        "int32" => SchemaBuilder::int32(),
        "int64" => SchemaBuilder::int64(),
        "float" => SchemaBuilder::float32(),
        "double" => SchemaBuilder::float64(),
        "bytes" => SchemaBuilder::bytes(),
        "string" => SchemaBuilder::string(),
        "array" => SchemaBuilder::array(sub_schema("items", "Array")?),
        "map" => SchemaBuilder::map(sub_schema("keys", "Map")?, sub_schema("values", "Map")?),
        "struct" => {
            let Some(Json::Array(fields)) = json.get("fields") else {
                return Err(ConnectError::data(
                    "Struct schema's \"fields\" argument is not an array.",
                ));
            };
            let mut b = SchemaBuilder::struct_();
            for field in fields {
                let Some(Json::Str(name)) = field.get("field") else {
                    return Err(ConnectError::data(
                        "Struct schema's field name not specified properly",
                    ));
                };
                if b.has_field(name) {
                    return Err(ConnectError::data(format!(
                        "Cannot create field because of field name duplication {name}"
                    )));
                }
                let field_schema = json_to_schema(field)?.ok_or_else(unreachable_none)?;
                b = b.field(name.clone(), field_schema);
            }
            b
        }
        other => {
            return Err(ConnectError::data(format!("Unknown schema type: {other}")));
        }
    };
    if json.get("optional") == Some(&Json::Bool(true)) {
        builder = builder.optional();
    }
    if let Some(Json::Str(name)) = json.get("name") {
        builder = builder.name(name.clone());
    }
    if let Some(Json::Int(version)) = json.get("version") {
        let version = i32::try_from(*version)
            .map_err(|_| ConnectError::data(format!("Schema version {version} out of range")))?;
        builder = builder.version(version);
    }
    if let Some(Json::Str(doc)) = json.get("doc") {
        builder = builder.doc(doc.clone());
    }
    if let Some(Json::Object(params)) = json.get("parameters") {
        for (k, v) in params {
            let Json::Str(v) = v else {
                return Err(ConnectError::data(
                    "Schema parameters must have string values.",
                ));
            };
            builder = builder.parameter(k.clone(), v.clone());
        }
    }
    if let Some(default) = json.get("default") {
        let partial = builder.clone().build();
        builder = builder.default_value(json_to_value(Some(&partial), default)?);
    }
    Ok(Some(builder.build()))
}

// A non-null JSON schema always yields Some; this keeps that invariant out of the happy path.
fn unreachable_none() -> ConnectError {
    ConnectError::data("Schema must not be null here")
}

fn expected(what: &str, schema: &Schema, json: &Json) -> ConnectError {
    ConnectError::data(format!(
        "Expected {what} for {} schema, but found {}",
        schema.type_,
        json.node_type()
    ))
}

fn int_in<T: TryFrom<i64>>(schema: &Schema, json: &Json) -> Result<T> {
    match json {
        Json::Int(i) => T::try_from(*i).map_err(|_| {
            ConnectError::data(format!(
                "Value {i} out of range for {} schema",
                schema.type_
            ))
        }),
        _ => Err(expected("an integer", schema, json)),
    }
}

/// Accepts integers and decimals, plus the quoted non-finite forms Jackson writes.
fn float_of(schema: &Schema, json: &Json) -> Result<f64> {
    match json {
        Json::Int(i) => Ok(*i as f64),
        Json::Double(d) => Ok(*d),
        Json::Float(f) => Ok(f64::from(*f)),
        Json::Str(s) if s == "NaN" => Ok(f64::NAN),
        Json::Str(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::Str(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(expected("a number", schema, json)),
    }
}

/// Kafka's `convertToConnect`, but strict: a JSON type that does not fit the schema is an
/// error instead of Jackson's silent coercion (e.g. a string read as int 0).
fn json_to_value(schema: Option<&Schema>, json: &Json) -> Result<Value> {
    let Some(schema) = schema else {
        return Ok(match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Int(i) => Value::Int64(*i),
            Json::Float(f) => Value::Float64(f64::from(*f)),
            Json::Double(d) => Value::Float64(*d),
            Json::Str(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| json_to_value(None, item))
                    .collect::<Result<_>>()?,
            ),
            Json::Object(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((Value::String(k.clone()), json_to_value(None, v)?)))
                    .collect::<Result<_>>()?,
            ),
        });
    };
    if *json == Json::Null {
        return match &schema.default_value {
            Some(default) => Ok((**default).clone()),
            None if schema.optional => Ok(Value::Null),
            None => Err(ConnectError::data(format!(
                "Invalid null value for required {} field",
                schema.type_
            ))),
        };
    }
    Ok(match schema.type_ {
        Type::Boolean => match json {
            Json::Bool(b) => Value::Boolean(*b),
            _ => return Err(expected("a boolean", schema, json)),
        },
        Type::Int8 => Value::Int8(int_in(schema, json)?),
        Type::Int16 => Value::Int16(int_in(schema, json)?),
        Type::Int32 => Value::Int32(int_in(schema, json)?),
        Type::Int64 => Value::Int64(int_in(schema, json)?),
        Type::Float32 => Value::Float32(float_of(schema, json)? as f32),
        Type::Float64 => Value::Float64(float_of(schema, json)?),
        Type::String => match json {
            Json::Str(s) => Value::String(s.clone()),
            _ => return Err(expected("a string", schema, json)),
        },
        Type::Bytes => match json {
            Json::Str(s) => Value::Bytes(base64_decode(s)?.into()),
            _ => return Err(expected("a base64 string", schema, json)),
        },
        Type::Array => {
            let Json::Array(items) = json else {
                return Err(expected("an array", schema, json));
            };
            let item_schema = required_schema(&schema.value_schema, "array element")?;
            Value::Array(
                items
                    .iter()
                    .map(|item| json_to_value(Some(item_schema), item))
                    .collect::<Result<_>>()?,
            )
        }
        Type::Map => {
            let key_schema = required_schema(&schema.key_schema, "map key")?;
            let value_schema = required_schema(&schema.value_schema, "map value")?;
            if key_schema.type_ == Type::String {
                let Json::Object(entries) = json else {
                    return Err(ConnectError::data(format!(
                        "Maps with string fields should be encoded as JSON objects, but found {}",
                        json.node_type()
                    )));
                };
                Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok((
                                Value::String(k.clone()),
                                json_to_value(Some(value_schema), v)?,
                            ))
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                let Json::Array(entries) = json else {
                    return Err(ConnectError::data(format!(
                        "Maps with non-string fields should be encoded as JSON array of tuples, but found {}",
                        json.node_type()
                    )));
                };
                let mut pairs = Vec::with_capacity(entries.len());
                for entry in entries {
                    match entry {
                        Json::Array(kv) if kv.len() == 2 => pairs.push((
                            json_to_value(Some(key_schema), &kv[0])?,
                            json_to_value(Some(value_schema), &kv[1])?,
                        )),
                        Json::Array(kv) => {
                            return Err(ConnectError::data(format!(
                                "Found invalid map entry, expected length 2 but found :{}",
                                kv.len()
                            )))
                        }
                        other => {
                            return Err(ConnectError::data(format!(
                                "Found invalid map entry instead of array tuple: {}",
                                other.node_type()
                            )))
                        }
                    }
                }
                Value::Map(pairs)
            }
        }
        Type::Struct => {
            if !matches!(json, Json::Object(_)) {
                return Err(ConnectError::data(format!(
                    "Structs should be encoded as JSON objects, but found {}",
                    json.node_type()
                )));
            }
            let mut st = Struct::new(schema.clone())?;
            for field in &schema.fields {
                let field_json = json.get(&field.name).unwrap_or(&Json::Null);
                st.put(&field.name, json_to_value(Some(&field.schema), field_json)?)?;
            }
            Value::Struct(st)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter(schemas_enable: bool) -> JsonConverter {
        let mut c = JsonConverter::default();
        let props = Props::from([(SCHEMAS_ENABLE.to_string(), schemas_enable.to_string())]);
        c.configure(&props, false).unwrap();
        c
    }

    fn write(c: &JsonConverter, schema: Option<&Schema>, value: &Value) -> String {
        let bytes = c.from_connect("t", schema, value).unwrap().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn plain_schema_shortcut_matches_the_general_writer() {
        for type_ in [
            Type::String,
            Type::Bytes,
            Type::Int64,
            Type::Int32,
            Type::Int8,
        ] {
            for optional in [false, true] {
                let mut b = SchemaBuilder::new(type_);
                if optional {
                    b = b.optional();
                }
                let schema = b.build();
                let general = schema_to_json(&schema).unwrap().to_string();
                if let Some(short) = plain_schema_text(&schema) {
                    assert_eq!(short, general);
                }
                // Anything beyond the bare type goes the general way.
                let named = SchemaBuilder::new(type_).name("x").build();
                assert_eq!(plain_schema_text(&named), None);
            }
        }
    }

    #[test]
    fn envelopes_the_fast_path_declines_still_convert() {
        let c = converter(true);
        // A repeated key: Jackson keeps the last, and so does the general path.
        let doubled = br#"{"schema":{"type":"int32","optional":false},"payload":1,"payload":2}"#;
        let read = c.to_connect("t", Some(doubled)).unwrap();
        assert_eq!(read.value, Value::Int32(2));
        // A third member is still refused with Kafka's message.
        let extra = br#"{"schema":null,"payload":1,"x":0}"#;
        let e = c.to_connect("t", Some(extra)).unwrap_err().to_string();
        assert!(e.contains("requires \"schema\" and \"payload\""), "{e}");
        // A string payload under a string schema, with escapes.
        let text = br#"{"schema":{"type":"string","optional":false},"payload":"a\"b\u00e9"}"#;
        assert_eq!(
            c.to_connect("t", Some(text)).unwrap().value,
            Value::from("a\"bé")
        );
    }

    #[test]
    fn schema_cache_size_zero_still_converts() {
        let mut c = JsonConverter::default();
        c.configure(
            &Props::from([(SCHEMAS_CACHE_SIZE.to_string(), "0".to_string())]),
            false,
        )
        .unwrap();
        let schema = SchemaBuilder::struct_().field("a", Schema::INT32).build();
        let value = Value::Struct(
            Struct::new(schema.clone())
                .unwrap()
                .with("a", 1i32)
                .unwrap(),
        );
        for _ in 0..2 {
            let bytes = c.from_connect("t", Some(&schema), &value).unwrap();
            let back = c.to_connect("t", bytes.as_deref()).unwrap();
            assert_eq!(back.value, value);
        }
        let e = c
            .configure(
                &Props::from([(SCHEMAS_CACHE_SIZE.to_string(), "many".to_string())]),
                false,
            )
            .unwrap_err();
        assert!(e.to_string().contains(SCHEMAS_CACHE_SIZE));
    }

    fn round_trip(c: &JsonConverter, schema: &Schema, value: Value) {
        let bytes = c.from_connect("t", Some(schema), &value).unwrap().unwrap();
        let back = c.to_connect("t", Some(&bytes)).unwrap();
        assert_eq!(back, SchemaAndValue::new(Some(schema.clone()), value));
    }

    #[test]
    fn quickstart_string_line() {
        let c = JsonConverter::default();
        assert_eq!(
            write(&c, Some(&Schema::STRING), &"foo".into()),
            r#"{"schema":{"type":"string","optional":false},"payload":"foo"}"#
        );
    }

    #[test]
    fn every_primitive_with_schema() {
        let c = converter(true);
        let cases: Vec<(Schema, Value, &str)> = vec![
            (
                Schema::INT8,
                Value::Int8(-8),
                r#"{"type":"int8","optional":false},"payload":-8"#,
            ),
            (
                Schema::INT16,
                Value::Int16(300),
                r#"{"type":"int16","optional":false},"payload":300"#,
            ),
            (
                Schema::INT32,
                Value::Int32(70000),
                r#"{"type":"int32","optional":false},"payload":70000"#,
            ),
            (
                Schema::INT64,
                Value::Int64(i64::MAX),
                r#"{"type":"int64","optional":false},"payload":9223372036854775807"#,
            ),
            (
                Schema::FLOAT32,
                Value::Float32(1.5),
                r#"{"type":"float","optional":false},"payload":1.5"#,
            ),
            (
                Schema::FLOAT64,
                Value::Float64(1e10),
                r#"{"type":"double","optional":false},"payload":1.0E10"#,
            ),
            (
                Schema::FLOAT64,
                Value::Float64(2.0),
                r#"{"type":"double","optional":false},"payload":2.0"#,
            ),
            (
                Schema::BOOLEAN,
                Value::Boolean(true),
                r#"{"type":"boolean","optional":false},"payload":true"#,
            ),
            (
                Schema::STRING,
                "a\"b".into(),
                r#"{"type":"string","optional":false},"payload":"a\"b""#,
            ),
            (
                Schema::BYTES,
                Value::Bytes(bytes::Bytes::from_static(b"hello")),
                r#"{"type":"bytes","optional":false},"payload":"aGVsbG8=""#,
            ),
        ];
        for (schema, value, tail) in cases {
            assert_eq!(
                write(&c, Some(&schema), &value),
                format!("{{\"schema\":{tail}}}")
            );
            round_trip(&c, &schema, value);
        }
    }

    #[test]
    fn optional_null_keeps_the_envelope_and_schemaless_null_is_a_tombstone() {
        let c = converter(true);
        assert_eq!(
            write(&c, Some(&Schema::OPTIONAL_STRING), &Value::Null),
            r#"{"schema":{"type":"string","optional":true},"payload":null}"#
        );
        round_trip(&c, &Schema::OPTIONAL_STRING, Value::Null);
        assert_eq!(c.from_connect("t", None, &Value::Null).unwrap(), None);
        assert_eq!(
            converter(false)
                .from_connect("t", None, &Value::Null)
                .unwrap(),
            None
        );
        assert_eq!(c.to_connect("t", None).unwrap(), SchemaAndValue::NULL);
        let err = c
            .from_connect("t", Some(&Schema::STRING), &Value::Null)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("null value for field that is required"),
            "{err}"
        );
    }

    #[test]
    fn schema_metadata_order_and_default() {
        let c = converter(true);
        let schema = SchemaBuilder::int32()
            .optional()
            .name("com.example.Count")
            .version(2)
            .doc("how many")
            .parameter("z", "1")
            .parameter("a", "2")
            .default_value(Value::Int32(5))
            .build();
        assert_eq!(
            write(&c, Some(&schema), &Value::Null),
            r#"{"schema":{"type":"int32","optional":true,"name":"com.example.Count","version":2,"doc":"how many","parameters":{"z":"1","a":"2"},"default":5},"payload":5}"#
        );
        round_trip(&c, &schema, Value::Int32(9));
    }

    fn nested_schema() -> Schema {
        SchemaBuilder::struct_()
            .name("rec")
            .field("id", Schema::INT64)
            .field("tags", SchemaBuilder::array(Schema::STRING).build())
            .field(
                "attrs",
                SchemaBuilder::map(Schema::STRING, Schema::INT32).build(),
            )
            .field(
                "codes",
                SchemaBuilder::map(Schema::INT32, Schema::OPTIONAL_STRING).build(),
            )
            .field("blob", Schema::OPTIONAL_BYTES)
            .build()
    }

    fn nested_value() -> Value {
        Struct::new(nested_schema())
            .unwrap()
            .with("id", 7i64)
            .unwrap()
            .with("tags", Value::Array(vec!["x".into(), "y".into()]))
            .unwrap()
            .with(
                "attrs",
                Value::Map(vec![("b".into(), 2i32.into()), ("a".into(), 1i32.into())]),
            )
            .unwrap()
            .with(
                "codes",
                Value::Map(vec![
                    (404i32.into(), "nf".into()),
                    (500i32.into(), Value::Null),
                ]),
            )
            .unwrap()
            .with("blob", Value::Bytes(bytes::Bytes::from_static(&[0, 255])))
            .unwrap()
            .into()
    }

    #[test]
    fn struct_with_nested_array_and_maps() {
        let c = converter(true);
        let expected = concat!(
            r#"{"schema":{"type":"struct","fields":["#,
            r#"{"type":"int64","optional":false,"field":"id"},"#,
            r#"{"type":"array","items":{"type":"string","optional":false},"optional":false,"field":"tags"},"#,
            r#"{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"int32","optional":false},"optional":false,"field":"attrs"},"#,
            r#"{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":true},"optional":false,"field":"codes"},"#,
            r#"{"type":"bytes","optional":true,"field":"blob"}"#,
            r#"],"optional":false,"name":"rec"},"#,
            r#""payload":{"id":7,"tags":["x","y"],"attrs":{"b":2,"a":1},"codes":[[404,"nf"],[500,null]],"blob":"AP8="}}"#,
        );
        assert_eq!(write(&c, Some(&nested_schema()), &nested_value()), expected);
        round_trip(&c, &nested_schema(), nested_value());
    }

    #[test]
    fn struct_must_match_its_schema() {
        let c = converter(true);
        let other = SchemaBuilder::struct_().field("id", Schema::INT64).build();
        let err = c
            .from_connect("t", Some(&other), &nested_value())
            .unwrap_err();
        assert_eq!(err, ConnectError::data("Mismatching schema."));
        let err = c
            .from_connect("t", Some(&Schema::INT32), &"x".into())
            .unwrap_err();
        assert!(
            err.to_string().contains("Invalid type for INT32: STRING"),
            "{err}"
        );
    }

    #[test]
    fn schemaless_values() {
        let c = converter(true);
        assert_eq!(
            write(&c, None, &"foo".into()),
            r#"{"schema":null,"payload":"foo"}"#
        );
        let plain = converter(false);
        assert_eq!(
            write(&plain, Some(&Schema::STRING), &"foo".into()),
            r#""foo""#
        );
        let map = Value::Map(vec![
            (
                "k".into(),
                Value::Array(vec![1i64.into(), 2.5f64.into(), Value::Null]),
            ),
            ("b".into(), true.into()),
        ]);
        assert_eq!(write(&plain, None, &map), r#"{"k":[1,2.5,null],"b":true}"#);
        // Plain JSON reads back schemaless: integers as INT64, decimals as FLOAT64.
        let back = plain
            .to_connect("t", Some(br#"{"k":[1,2.5,null],"b":true}"#))
            .unwrap();
        assert_eq!(back, SchemaAndValue::new(None, map));
        let pairs = Value::Map(vec![(1i64.into(), "one".into())]);
        assert_eq!(write(&plain, None, &pairs), r#"[[1,"one"]]"#);
    }

    #[test]
    fn plain_json_with_schema_round_trips_through_envelope_schema_null() {
        let c = converter(true);
        let back = c
            .to_connect("t", Some(br#"{"schema":null,"payload":[1,"a"]}"#))
            .unwrap();
        assert_eq!(
            back,
            SchemaAndValue::new(None, Value::Array(vec![1i64.into(), "a".into()]))
        );
    }

    #[test]
    fn floats_match_java_formatting() {
        let plain = converter(false);
        for (v, want) in [
            (0.1f64, "0.1"),
            (1e-4, "1.0E-4"),
            (12345678.9, "1.23456789E7"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(write(&plain, Some(&Schema::FLOAT64), &v.into()), want);
        }
        assert_eq!(write(&plain, Some(&Schema::FLOAT32), &0.1f32.into()), "0.1");
        assert_eq!(
            write(&plain, Some(&Schema::FLOAT64), &f64::NAN.into()),
            "\"NaN\""
        );
        let c = converter(true);
        round_trip(&c, &Schema::FLOAT32, Value::Float32(0.1));
        round_trip(&c, &Schema::FLOAT64, Value::Float64(f64::INFINITY));
    }

    #[test]
    fn missing_envelope_is_rejected_with_kafkas_message() {
        let c = converter(true);
        for input in [
            &br#""foo""#[..],
            br#"{"payload":1}"#,
            br#"{"schema":null,"payload":1,"x":2}"#,
        ] {
            let err = c.to_connect("t", Some(input)).unwrap_err();
            assert!(
                err.to_string().contains(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_json_and_bad_schemas_are_data_errors() {
        let c = converter(true);
        let err = c.to_connect("t", Some(b"{\"schema\":")).unwrap_err();
        assert!(
            matches!(err, ConnectError::Data(ref m) if m.contains("serialization error")),
            "{err}"
        );
        assert!(converter(false).to_connect("t", Some(b"nope")).is_err());
        let cases: [(&[u8], &str); 6] = [
            (br#"{"schema":{"optional":false},"payload":1}"#, "must contain 'type'"),
            (br#"{"schema":{"type":"uint"},"payload":1}"#, "Unknown schema type: uint"),
            (br#"{"schema":{"type":"int8"},"payload":300}"#, "out of range"),
            (br#"{"schema":{"type":"string"},"payload":null}"#, "Invalid null value for required STRING"),
            (br#"{"schema":{"type":"array"},"payload":[]}"#, "did not specify"),
            (br#"{"schema":{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}},"payload":[[1]]}"#, "expected length 2"),
        ];
        for (input, want) in cases {
            let err = c.to_connect("t", Some(input)).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn schema_enable_config_is_validated() {
        let mut c = JsonConverter::default();
        assert!(c.schemas_enabled());
        c.configure(
            &Props::from([(SCHEMAS_ENABLE.into(), " FALSE ".into())]),
            true,
        )
        .unwrap();
        assert!(!c.schemas_enabled());
        let err = c
            .configure(&Props::from([(SCHEMAS_ENABLE.into(), "yes".into())]), true)
            .unwrap_err();
        assert!(matches!(err, ConnectError::Config(_)));
    }
}
