//! `HoistField$Key` / `HoistField$Value`: wraps the key or value in a single-field struct
//! (with a schema) or a single-entry map (without one).

use super::record::{ConnectRecord, Target};
use super::util::{required, Props};
use super::Transformation;
use crate::data::{SchemaBuilder, Struct, Value};
use crate::error::Result;

#[derive(Debug)]
pub struct HoistField {
    target: Target,
    field: String,
}

impl HoistField {
    pub fn new(target: Target) -> Self {
        HoistField {
            target,
            field: String::new(),
        }
    }
}

impl Transformation for HoistField {
    fn configure(&mut self, props: &Props) -> Result<()> {
        self.field = required(props, "field")?;
        Ok(())
    }

    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = record.schema_and_value(self.target);
        let (schema, value) = match schema {
            None => (
                None,
                Value::Map(vec![(Value::String(self.field.clone()), value.clone())]),
            ),
            Some(schema) => {
                let wrapper = SchemaBuilder::struct_()
                    .field(self.field.clone(), schema.clone())
                    .build();
                let mut s = Struct::new(wrapper.clone())?;
                s.put(&self.field, value.clone())?;
                (Some(wrapper), Value::Struct(s))
            }
        };
        Ok(Some(record.with(self.target, schema, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Schema;

    fn hoist(target: Target) -> HoistField {
        let mut t = HoistField::new(target);
        t.configure(&[("field".to_string(), "line".to_string())].into())
            .unwrap();
        t
    }

    #[test]
    fn schemaless_and_schema() {
        let rec = ConnectRecord {
            value: Value::String("hello".into()),
            ..ConnectRecord::default()
        };
        let out = hoist(Target::Value).apply(rec.clone()).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![(
                Value::String("line".into()),
                Value::String("hello".into())
            )])
        );

        let rec = ConnectRecord {
            key_schema: Some(Schema::STRING),
            key: Value::String("k".into()),
            ..rec
        };
        let out = hoist(Target::Key).apply(rec).unwrap().unwrap();
        let schema = out.key_schema.unwrap();
        assert_eq!(schema.field("line").unwrap().schema, Schema::STRING);
        let Value::Struct(s) = out.key else {
            panic!("not a struct")
        };
        assert_eq!(s.get("line").unwrap(), &Value::String("k".into()));
    }
}
