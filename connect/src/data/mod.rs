//! Kafka Connect's data model: schemas and the values they describe.
//! Converters and connectors exchange data only in these types.

mod schema;
pub(crate) mod value;

pub use schema::{Field, Schema, SchemaBuilder, Type};
pub use value::{SchemaAndValue, Struct, Value};
