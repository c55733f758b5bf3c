//! `Value`, the `Struct` record type and `SchemaAndValue`, with validation against a `Schema`.
//! Validation follows Kafka's `ConnectSchema.validateValue`, so bad data fails at the edge.

use std::fmt;

use bytes::Bytes;

use super::{Schema, Type};
use crate::error::{ConnectError, Result};

/// A Connect value. Maps keep their entries as pairs: keys may be any value, and order is
/// preserved so that serialised output is deterministic.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Bytes),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    /// The schema type this value inhabits; `None` for `Null`, which fits any optional schema.
    pub fn schema_type(&self) -> Option<Type> {
        Some(match self {
            Value::Null => return None,
            Value::Int8(_) => Type::Int8,
            Value::Int16(_) => Type::Int16,
            Value::Int32(_) => Type::Int32,
            Value::Int64(_) => Type::Int64,
            Value::Float32(_) => Type::Float32,
            Value::Float64(_) => Type::Float64,
            Value::Boolean(_) => Type::Boolean,
            Value::String(_) => Type::String,
            Value::Bytes(_) => Type::Bytes,
            Value::Array(_) => Type::Array,
            Value::Map(_) => Type::Map,
            Value::Struct(_) => Type::Struct,
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Checks that this value may be stored under `schema`, recursing into containers.
    pub fn validate(&self, schema: &Schema) -> Result<()> {
        self.validate_named(schema, None)
    }

    fn validate_named(&self, schema: &Schema, field: Option<&str>) -> Result<()> {
        let Some(actual) = self.schema_type() else {
            if schema.optional {
                return Ok(());
            }
            return Err(ConnectError::data(match field {
                Some(name) => format!(
                    "Invalid value: null used for required field: \"{name}\", schema type: {}",
                    schema.type_
                ),
                None => format!(
                    "Invalid value: null used for required schema type: {}",
                    schema.type_
                ),
            }));
        };
        if actual != schema.type_ {
            return Err(ConnectError::data(format!(
                "Invalid {actual} value for {}{} schema",
                schema.type_,
                field.map(|f| format!(" field \"{f}\"")).unwrap_or_default()
            )));
        }
        match self {
            Value::Array(items) => {
                let item_schema = container_schema(schema.value_schema.as_deref(), "array")?;
                items
                    .iter()
                    .try_for_each(|item| item.validate_named(item_schema, field))
            }
            Value::Map(entries) => {
                let key_schema = container_schema(schema.key_schema.as_deref(), "map key")?;
                let value_schema = container_schema(schema.value_schema.as_deref(), "map value")?;
                entries.iter().try_for_each(|(k, v)| {
                    k.validate_named(key_schema, field)?;
                    v.validate_named(value_schema, field)
                })
            }
            Value::Struct(s) => {
                if s.schema() != schema {
                    return Err(ConnectError::data("Struct schemas do not match."));
                }
                s.validate()
            }
            _ => Ok(()),
        }
    }
}

fn container_schema<'a>(schema: Option<&'a Schema>, what: &str) -> Result<&'a Schema> {
    schema.ok_or_else(|| ConnectError::data(format!("{what} schema is missing")))
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        })*
    };
}

value_from!(
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    f32 => Float32, f64 => Float64, bool => Boolean,
    String => String, &str => String, Bytes => Bytes, Vec<u8> => Bytes,
    Vec<Value> => Array, Struct => Struct,
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Java's `toString` shapes (`[a, b]`, `{k=v}`, `Struct{a=1}`), which is what Kafka's
/// `StringConverter` writes for non-string values.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) => write!(f, "{v}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Float32(v) => f.write_str(&java_float_string(*v)),
            Value::Float64(v) => f.write_str(&java_double_string(*v)),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::String(v) => f.write_str(v),
            Value::Bytes(v) => write!(f, "{:?}", v.as_ref()),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(s) => write!(f, "{s}"),
        }
    }
}

/// `Double.toString` as on JDK 19+: the shortest digits that round-trip, laid out plainly
/// for magnitudes in [1e-3, 1e7) and as `d.dddE±n` otherwise.
pub fn java_double_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    java_layout(
        &format!("{v:e}"),
        v == 0.0 || (1e-3..1e7).contains(&v.abs()),
    )
}

/// `Float.toString` as on JDK 19+ (shortest digits that round-trip as an `f32`).
pub fn java_float_string(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    java_layout(
        &format!("{v:e}"),
        v == 0.0 || (1e-3..1e7).contains(&v.abs()),
    )
}

/// Re-lays Rust's shortest `LowerExp` output (`-1.25e-5`) the way Java prints it.
fn java_layout(exp_form: &str, plain: bool) -> String {
    let (mantissa, exp) = exp_form.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if plain {
        if digits == "0" {
            return format!("{sign}0.0");
        }
        let point = exp + 1; // digits before the decimal point
        let (int_part, frac_part) = if point <= 0 {
            (
                "0".to_string(),
                format!("{}{}", "0".repeat((-point) as usize), digits),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{}{}", digits, "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            let (i, fr) = digits.split_at(point as usize);
            (i.to_string(), fr.to_string())
        };
        let frac_part = if frac_part.is_empty() {
            "0".to_string()
        } else {
            frac_part
        };
        format!("{sign}{int_part}.{frac_part}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

/// A record value: a struct schema and one value per field, validated on every `put`.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    schema: Schema,
    values: Vec<Value>,
}

impl Struct {
    pub fn new(schema: Schema) -> Result<Struct> {
        if schema.type_ != Type::Struct {
            return Err(ConnectError::data(format!(
                "Not a struct schema: {}",
                schema.type_
            )));
        }
        let values = vec![Value::Null; schema.fields.len()];
        Ok(Struct { schema, values })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Stores `value` in the named field after checking it against the field's schema.
    pub fn put(&mut self, name: &str, value: impl Into<Value>) -> Result<&mut Self> {
        let value = value.into();
        let field = self.lookup(name)?;
        value.validate_named(&field.schema, Some(name))?;
        let index = field.index;
        self.values[index] = value;
        Ok(self)
    }

    /// Chaining form of [`Struct::put`] for building a struct in one expression.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.put(name, value)?;
        Ok(self)
    }

    /// The field's value, or its schema default when unset (as Kafka's `Struct.get`).
    pub fn get(&self, name: &str) -> Result<&Value> {
        let field = self.lookup(name)?;
        let value = &self.values[field.index];
        match (value, &field.schema.default_value) {
            (Value::Null, Some(default)) => Ok(default),
            _ => Ok(value),
        }
    }

    /// Field values in schema order, without defaults applied.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Checks that every required field is set; `put` already checked the types.
    pub fn validate(&self) -> Result<()> {
        self.schema.fields.iter().try_for_each(|field| {
            let value = self.get(&field.name)?;
            value.validate_named(&field.schema, Some(&field.name))
        })
    }

    fn lookup(&self, name: &str) -> Result<&super::Field> {
        self.schema
            .field(name)
            .ok_or_else(|| ConnectError::data(format!("{name} is not a valid field name")))
    }
}

impl fmt::Display for Struct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Struct{")?;
        let mut first = true;
        for (field, value) in self.schema.fields.iter().zip(&self.values) {
            if value.is_null() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={value}", field.name)?;
        }
        f.write_str("}")
    }
}

/// What a converter hands back: the value and, when known, its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<Schema>,
    pub value: Value,
}

impl SchemaAndValue {
    pub const NULL: SchemaAndValue = SchemaAndValue {
        schema: None,
        value: Value::Null,
    };

    pub fn new(schema: Option<Schema>, value: Value) -> Self {
        SchemaAndValue { schema, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaBuilder;

    fn person() -> Schema {
        SchemaBuilder::struct_()
            .name("person")
            .field("name", Schema::STRING)
            .field("age", Schema::OPTIONAL_INT32)
            .field("tags", SchemaBuilder::array(Schema::STRING).build())
            .build()
    }

    #[test]
    fn put_and_get_validate_against_field_schema() {
        let mut s = Struct::new(person()).unwrap();
        s.put("name", "ada").unwrap().put("age", 36).unwrap();
        assert_eq!(s.get("name").unwrap(), &Value::from("ada"));
        assert_eq!(s.get("age").unwrap(), &Value::Int32(36));

        let err = s.put("age", 36i64).unwrap_err();
        assert!(
            matches!(err, ConnectError::Data(ref m) if m.contains("INT64") && m.contains("age")),
            "{err}"
        );
        let err = s.put("name", Value::Null).unwrap_err();
        assert!(
            err.to_string().contains("required field: \"name\""),
            "{err}"
        );
        let err = s.put("missing", 1).unwrap_err();
        assert!(err
            .to_string()
            .contains("missing is not a valid field name"));
        let err = s
            .put(
                "tags",
                Value::Array(vec![Value::from("a"), Value::Int32(1)]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("INT32"), "{err}");
    }

    #[test]
    fn validate_reports_unset_required_fields() {
        let mut s = Struct::new(person()).unwrap();
        s.put("name", "ada").unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("tags"));
        s.put("tags", Value::Array(vec![])).unwrap();
        s.validate().unwrap();
        Value::Struct(s.clone()).validate(&person()).unwrap();
        let other = SchemaBuilder::struct_()
            .field("name", Schema::STRING)
            .build();
        assert!(Value::Struct(s).validate(&other).is_err());
    }

    #[test]
    fn defaults_fill_unset_fields() {
        let schema = SchemaBuilder::struct_()
            .field(
                "n",
                SchemaBuilder::int32()
                    .default_value(Value::Int32(7))
                    .build(),
            )
            .build();
        let s = Struct::new(schema).unwrap();
        assert_eq!(s.get("n").unwrap(), &Value::Int32(7));
        s.validate().unwrap();
    }

    #[test]
    fn struct_new_requires_struct_schema() {
        assert!(Struct::new(Schema::STRING).is_err());
    }

    #[test]
    fn map_validation_checks_keys_and_values() {
        let schema = SchemaBuilder::map(Schema::INT32, Schema::STRING).build();
        Value::Map(vec![(Value::Int32(1), "a".into())])
            .validate(&schema)
            .unwrap();
        assert!(Value::Map(vec![("k".into(), "a".into())])
            .validate(&schema)
            .is_err());
        assert!(Value::Null.validate(&schema).is_err());
        Value::Null
            .validate(
                &SchemaBuilder::map(Schema::INT32, Schema::STRING)
                    .optional()
                    .build(),
            )
            .unwrap();
    }

    #[test]
    fn java_number_layout() {
        for (v, want) in [
            (1.5, "1.5"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (1e7, "1.0E7"),
            (9999999.0, "9999999.0"),
            (1e10, "1.0E10"),
            (1.25e-5, "1.25E-5"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-123.456, "-123.456"),
            (0.1, "0.1"),
            (1.7976931348623157e308, "1.7976931348623157E308"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java_double_string(v), want, "{v}");
        }
        assert_eq!(java_float_string(0.1f32), "0.1");
        assert_eq!(java_float_string(3.4028235e38f32), "3.4028235E38");
        assert_eq!(java_float_string(1.5f32), "1.5");
    }

    #[test]
    fn display_uses_java_shapes() {
        let mut s = Struct::new(person()).unwrap();
        s.put("name", "ada").unwrap();
        assert_eq!(s.to_string(), "Struct{name=ada}");
        let v = Value::Map(vec![(
            "k".into(),
            Value::Array(vec![1i32.into(), 2i32.into()]),
        )]);
        assert_eq!(v.to_string(), "{k=[1, 2]}");
    }
}
