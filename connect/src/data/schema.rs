//! `Schema`, its `Type`, struct `Field`s and the `SchemaBuilder` that assembles them.
//! Mirrors Kafka's `ConnectSchema`/`SchemaBuilder` so schemas travel unchanged through converters.

use std::fmt;

use super::Value;

/// The physical type of a Connect schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl Type {
    /// Kafka's enum constant name (`INT32`, `STRUCT`, ...), used in error messages.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Type::Int8 => "INT8",
            Type::Int16 => "INT16",
            Type::Int32 => "INT32",
            Type::Int64 => "INT64",
            Type::Float32 => "FLOAT32",
            Type::Float64 => "FLOAT64",
            Type::Boolean => "BOOLEAN",
            Type::String => "STRING",
            Type::Bytes => "BYTES",
            Type::Array => "ARRAY",
            Type::Map => "MAP",
            Type::Struct => "STRUCT",
        }
    }

    pub fn is_primitive(self) -> bool {
        !matches!(self, Type::Array | Type::Map | Type::Struct)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kafka_name())
    }
}

/// One named, positioned member of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Schema,
}

/// A Connect schema. Built with [`SchemaBuilder`] or taken from the `Schema::*` constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub type_: Type,
    pub optional: bool,
    pub default_value: Option<Box<Value>>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// Insertion-ordered, because Kafka keeps a `LinkedHashMap` and the JSON form must match.
    pub parameters: Vec<(String, String)>,
    /// Struct members; empty for other types.
    pub fields: Vec<Field>,
    /// Key schema of a map.
    pub key_schema: Option<Box<Schema>>,
    /// Element schema of an array, value schema of a map.
    pub value_schema: Option<Box<Schema>>,
}

impl Schema {
    const fn primitive(type_: Type, optional: bool) -> Schema {
        Schema {
            type_,
            optional,
            default_value: None,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    pub const INT8: Schema = Schema::primitive(Type::Int8, false);
    pub const INT16: Schema = Schema::primitive(Type::Int16, false);
    pub const INT32: Schema = Schema::primitive(Type::Int32, false);
    pub const INT64: Schema = Schema::primitive(Type::Int64, false);
    pub const FLOAT32: Schema = Schema::primitive(Type::Float32, false);
    pub const FLOAT64: Schema = Schema::primitive(Type::Float64, false);
    pub const BOOLEAN: Schema = Schema::primitive(Type::Boolean, false);
    pub const STRING: Schema = Schema::primitive(Type::String, false);
    pub const BYTES: Schema = Schema::primitive(Type::Bytes, false);
    pub const OPTIONAL_INT8: Schema = Schema::primitive(Type::Int8, true);
    pub const OPTIONAL_INT16: Schema = Schema::primitive(Type::Int16, true);
    pub const OPTIONAL_INT32: Schema = Schema::primitive(Type::Int32, true);
    pub const OPTIONAL_INT64: Schema = Schema::primitive(Type::Int64, true);
    pub const OPTIONAL_FLOAT32: Schema = Schema::primitive(Type::Float32, true);
    pub const OPTIONAL_FLOAT64: Schema = Schema::primitive(Type::Float64, true);
    pub const OPTIONAL_BOOLEAN: Schema = Schema::primitive(Type::Boolean, true);
    pub const OPTIONAL_STRING: Schema = Schema::primitive(Type::String, true);
    pub const OPTIONAL_BYTES: Schema = Schema::primitive(Type::Bytes, true);

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Fluent construction of a [`Schema`]: `SchemaBuilder::string().optional().build()`.
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    schema: Schema,
}

impl SchemaBuilder {
    pub fn new(type_: Type) -> Self {
        SchemaBuilder {
            schema: Schema::primitive(type_, false),
        }
    }

    pub fn int8() -> Self {
        Self::new(Type::Int8)
    }
    pub fn int16() -> Self {
        Self::new(Type::Int16)
    }
    pub fn int32() -> Self {
        Self::new(Type::Int32)
    }
    pub fn int64() -> Self {
        Self::new(Type::Int64)
    }
    pub fn float32() -> Self {
        Self::new(Type::Float32)
    }
    pub fn float64() -> Self {
        Self::new(Type::Float64)
    }
    pub fn bool() -> Self {
        Self::new(Type::Boolean)
    }
    pub fn string() -> Self {
        Self::new(Type::String)
    }
    pub fn bytes() -> Self {
        Self::new(Type::Bytes)
    }
    pub fn struct_() -> Self {
        Self::new(Type::Struct)
    }

    pub fn array(items: Schema) -> Self {
        let mut b = Self::new(Type::Array);
        b.schema.value_schema = Some(Box::new(items));
        b
    }

    pub fn map(keys: Schema, values: Schema) -> Self {
        let mut b = Self::new(Type::Map);
        b.schema.key_schema = Some(Box::new(keys));
        b.schema.value_schema = Some(Box::new(values));
        b
    }

    pub fn optional(mut self) -> Self {
        self.schema.optional = true;
        self
    }

    pub fn required(mut self) -> Self {
        self.schema.optional = false;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.schema.name = Some(name.into());
        self
    }

    pub fn version(mut self, version: i32) -> Self {
        self.schema.version = Some(version);
        self
    }

    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.schema.doc = Some(doc.into());
        self
    }

    /// Setting a key twice keeps its first position, as a Java `LinkedHashMap` would.
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.schema.parameters.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.schema.parameters.push((key, value)),
        }
        self
    }

    pub fn default_value(mut self, value: Value) -> Self {
        self.schema.default_value = Some(Box::new(value));
        self
    }

    /// Appends a struct field.
    ///
    /// # Panics
    /// On a non-struct builder or a duplicate field name: both are programming errors that
    /// Kafka also rejects while building, never data errors.
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Self {
        let name = name.into();
        assert!(
            self.schema.type_ == Type::Struct,
            "cannot add field {name:?} to a {} schema",
            self.schema.type_
        );
        assert!(
            self.schema.field(&name).is_none(),
            "duplicate struct field {name:?}"
        );
        let index = self.schema.fields.len();
        self.schema.fields.push(Field {
            name,
            index,
            schema,
        });
        self
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.schema.field(name).is_some()
    }

    pub fn build(self) -> Schema {
        self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_matches_constants() {
        assert_eq!(
            SchemaBuilder::string().optional().build(),
            Schema::OPTIONAL_STRING
        );
        assert_eq!(SchemaBuilder::int32().build(), Schema::INT32);
    }

    #[test]
    fn struct_fields_are_indexed_in_order() {
        let s = SchemaBuilder::struct_()
            .field("a", Schema::INT32)
            .field("b", Schema::OPTIONAL_STRING)
            .build();
        assert_eq!(s.field("b").unwrap().index, 1);
        assert_eq!(s.field("a").unwrap().schema, Schema::INT32);
        assert!(s.field("c").is_none());
    }

    #[test]
    fn parameters_keep_insertion_order() {
        let s = SchemaBuilder::string()
            .parameter("z", "1")
            .parameter("a", "2")
            .parameter("z", "3")
            .build();
        assert_eq!(
            s.parameters,
            vec![("z".into(), "3".into()), ("a".into(), "2".into())]
        );
        assert_eq!(s.parameter("a"), Some("2"));
    }

    #[test]
    #[should_panic(expected = "duplicate struct field")]
    fn duplicate_field_is_rejected() {
        SchemaBuilder::struct_()
            .field("a", Schema::INT32)
            .field("a", Schema::INT64);
    }
}
