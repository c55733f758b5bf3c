//! `InsertField$Key` / `InsertField$Value`: adds topic, partition, offset, timestamp or a
//! static string as fields, updating the struct schema or extending a schemaless map.

use super::record::{ConnectRecord, Target};
use super::util::{optional, require_map, require_struct, struct_builder_like, Props};
use super::{config_error, Transformation};
use crate::data::{Schema, SchemaBuilder, Struct, Value};
use crate::error::Result;

const PURPOSE: &str = "field insertion";

/// Kafka's `Timestamp` logical type; the data model has no logical types, so the name alone
/// tells converters what the int64 means.
const TIMESTAMP_SCHEMA_NAME: &str = "org.apache.kafka.connect.data.Timestamp";

/// A field name from config; `name!` makes the field required, `name?` (or no suffix) optional.
#[derive(Debug, Clone)]
struct FieldSpec {
    name: String,
    optional: bool,
}

impl FieldSpec {
    fn parse(spec: String) -> FieldSpec {
        if let Some(name) = spec.strip_suffix('!') {
            FieldSpec {
                name: name.to_string(),
                optional: false,
            }
        } else {
            FieldSpec {
                name: spec.strip_suffix('?').unwrap_or(&spec).to_string(),
                optional: true,
            }
        }
    }

    fn schema(&self, base: SchemaBuilder) -> Schema {
        if self.optional {
            base.optional().build()
        } else {
            base.build()
        }
    }
}

#[derive(Debug)]
pub struct InsertField {
    target: Target,
    topic: Option<FieldSpec>,
    partition: Option<FieldSpec>,
    offset: Option<FieldSpec>,
    timestamp: Option<FieldSpec>,
    static_field: Option<(FieldSpec, String)>,
}

impl InsertField {
    pub fn new(target: Target) -> Self {
        InsertField {
            target,
            topic: None,
            partition: None,
            offset: None,
            timestamp: None,
            static_field: None,
        }
    }

    /// The fields to add, in Kafka's order, with their schemas and this record's values.
    fn additions(&self, record: &ConnectRecord) -> Vec<(&FieldSpec, Schema, Value)> {
        let mut out = Vec::new();
        if let Some(f) = &self.topic {
            out.push((
                f,
                f.schema(SchemaBuilder::string()),
                Value::String(record.topic.clone()),
            ));
        }
        if let Some(f) = &self.partition {
            out.push((
                f,
                f.schema(SchemaBuilder::int32()),
                record.partition.map_or(Value::Null, Value::Int32),
            ));
        }
        // Source records have no offset yet, so Kafka skips the field for them entirely.
        if let (Some(f), Some(offset)) = (&self.offset, record.kafka_offset) {
            out.push((f, f.schema(SchemaBuilder::int64()), Value::Int64(offset)));
        }
        if let Some(f) = &self.timestamp {
            out.push((
                f,
                f.schema(
                    SchemaBuilder::int64()
                        .name(TIMESTAMP_SCHEMA_NAME)
                        .version(1),
                ),
                record.timestamp.map_or(Value::Null, Value::Int64),
            ));
        }
        if let Some((f, v)) = &self.static_field {
            out.push((
                f,
                f.schema(SchemaBuilder::string()),
                Value::String(v.clone()),
            ));
        }
        out
    }
}

impl Transformation for InsertField {
    fn configure(&mut self, props: &Props) -> Result<()> {
        let field = |key: &str| optional(props, key).map(FieldSpec::parse);
        self.topic = field("topic.field");
        self.partition = field("partition.field");
        self.offset = field("offset.field");
        self.timestamp = field("timestamp.field");
        self.static_field = match (field("static.field"), props.get("static.value")) {
            (Some(f), Some(v)) => Some((f, v.clone())),
            (Some(_), None) => {
                return Err(config_error(
                    "static.value",
                    "must be set when static.field is",
                ))
            }
            (None, _) => None,
        };
        if self.topic.is_none()
            && self.partition.is_none()
            && self.offset.is_none()
            && self.timestamp.is_none()
            && self.static_field.is_none()
        {
            return Err(config_error(
                "topic.field",
                "no field to insert: set at least one of topic.field, partition.field, \
                 offset.field, timestamp.field or static.field",
            ));
        }
        Ok(())
    }

    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = record.schema_and_value(self.target);
        // Tombstones stay tombstones: adding fields would turn a delete into an upsert.
        if value.is_null() {
            return Ok(Some(record));
        }
        let additions = self.additions(&record);
        let (schema, value) = match schema {
            None => {
                let mut entries = require_map(value, PURPOSE)?.to_vec();
                for (f, _, v) in additions {
                    super::util::map_put(&mut entries, &f.name, v);
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let old = require_struct(value, PURPOSE)?;
                let mut builder = struct_builder_like(schema);
                for field in &schema.fields {
                    builder = builder.field(field.name.clone(), field.schema.clone());
                }
                for (f, s, _) in &additions {
                    if builder.has_field(&f.name) {
                        return Err(crate::error::ConnectError::data(format!(
                            "Cannot insert field {:?}: the struct already has it",
                            f.name
                        )));
                    }
                    builder = builder.field(f.name.clone(), s.clone());
                }
                let new_schema = builder.build();
                let mut new = Struct::new(new_schema.clone())?;
                for field in &schema.fields {
                    new.put(&field.name, old.get(&field.name)?.clone())?;
                }
                for (f, _, v) in additions {
                    new.put(&f.name, v)?;
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
    use crate::transforms::util::test_support::{props, s};

    fn configured(target: Target, pairs: &[(&str, &str)]) -> InsertField {
        let mut t = InsertField::new(target);
        let props = props(pairs);
        t.configure(&props).unwrap();
        t
    }

    fn sink_record(value_schema: Option<Schema>, value: Value) -> ConnectRecord {
        ConnectRecord {
            topic: "orders".into(),
            partition: Some(2),
            kafka_offset: Some(99),
            timestamp: Some(1_700_000_000_000),
            value_schema,
            value,
            ..ConnectRecord::default()
        }
    }

    const ALL: &[(&str, &str)] = &[
        ("topic.field", "topic"),
        ("partition.field", "partition!"),
        ("offset.field", "offset"),
        ("timestamp.field", "ts?"),
        ("static.field", "origin"),
        ("static.value", "sluice"),
    ];

    #[test]
    fn schemaless_map_gets_fields() {
        let t = configured(Target::Value, ALL);
        let rec = sink_record(None, Value::Map(vec![(s("id"), Value::Int32(1))]));
        let out = t.apply(rec).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![
                (s("id"), Value::Int32(1)),
                (s("topic"), s("orders")),
                (s("partition"), Value::Int32(2)),
                (s("offset"), Value::Int64(99)),
                (s("ts"), Value::Int64(1_700_000_000_000)),
                (s("origin"), s("sluice")),
            ])
        );
    }

    #[test]
    fn struct_schema_is_extended() {
        let schema = SchemaBuilder::struct_()
            .name("Order")
            .field("id", Schema::INT32)
            .build();
        let value = Struct::new(schema.clone()).unwrap().with("id", 1).unwrap();
        let t = configured(Target::Value, ALL);
        let out = t
            .apply(sink_record(Some(schema), Value::Struct(value)))
            .unwrap()
            .unwrap();
        let new_schema = out.value_schema.unwrap();
        assert_eq!(new_schema.name.as_deref(), Some("Order"));
        let names: Vec<_> = new_schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "topic", "partition", "offset", "ts", "origin"]
        );
        assert_eq!(
            new_schema.field("topic").unwrap().schema,
            Schema::OPTIONAL_STRING
        );
        assert_eq!(new_schema.field("partition").unwrap().schema, Schema::INT32);
        let ts = &new_schema.field("ts").unwrap().schema;
        assert_eq!(ts.name.as_deref(), Some(TIMESTAMP_SCHEMA_NAME));
        assert!(ts.optional);
        let Value::Struct(v) = out.value else {
            panic!("not a struct")
        };
        assert_eq!(v.get("id").unwrap(), &Value::Int32(1));
        assert_eq!(v.get("offset").unwrap(), &Value::Int64(99));
        assert_eq!(v.get("origin").unwrap(), &s("sluice"));
    }

    #[test]
    fn key_side_and_source_records_without_offset() {
        let t = configured(Target::Key, &[("offset.field", "o"), ("topic.field", "t")]);
        let rec = ConnectRecord {
            topic: "x".into(),
            key: Value::Map(vec![]),
            ..ConnectRecord::default()
        };
        let out = t.apply(rec).unwrap().unwrap();
        assert_eq!(out.key, Value::Map(vec![(s("t"), s("x"))]));
    }

    #[test]
    fn tombstones_pass_and_wrong_shapes_fail() {
        let t = configured(Target::Value, &[("topic.field", "t")]);
        let rec = sink_record(None, Value::Null);
        assert_eq!(t.apply(rec.clone()).unwrap(), Some(rec));
        let err = t.apply(sink_record(None, s("plain"))).unwrap_err();
        assert!(err.to_string().contains("Only Map objects"), "{err}");
        let err = t
            .apply(sink_record(Some(Schema::STRING), s("plain")))
            .unwrap_err();
        assert!(err.to_string().contains("Only Struct objects"), "{err}");
    }

    #[test]
    fn config_errors() {
        let mut t = InsertField::new(Target::Value);
        let props: Props = [("static.field".to_string(), "f".to_string())].into();
        let err = t.configure(&props).unwrap_err().to_string();
        assert!(err.contains("static.value:"), "{err}");
        assert!(t.configure(&Props::new()).is_err());
    }
}
