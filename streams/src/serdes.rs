//! Serdes: how typed keys and values become record bytes and back, at sources, sinks and stores.
//! Failures are `SerdeError` values; every built-in serde also handles `Option<T>` (None = null).

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why bytes could not become a value or a value bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerdeError {
    /// A null key or value where the type has no null; read it as `Option<T>` to accept nulls.
    #[error("null data for non-optional type {0}")]
    Null(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Serializer and deserializer of one type. Shared between tasks and threads, so `Send + Sync`.
/// `topic` is the topic the bytes go to or come from, for serdes that depend on it.
pub trait Serde<T>: Send + Sync + 'static {
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, SerdeError>;
    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<T, SerdeError>;

    /// `serialize` for a value that is not needed afterwards (what sinks write): a serde whose
    /// bytes can take over the value's buffer (strings, bytes) saves a copy per record.
    fn serialize_owned(&self, topic: &str, value: T) -> Result<Option<Bytes>, SerdeError> {
        self.serialize(topic, &value)
    }
}

/// Implements `Serde<T>` and `Serde<Option<T>>` for a serde from two non-null conversions.
/// With `owned |v| expr`, also how an owned value becomes bytes without a copy.
macro_rules! serde_with_option {
    ($serde:ty, $t:ty, |$v:ident| $ser:expr, |$d:ident| $de:expr $(, owned |$o:ident| $own:expr)?) => {
        impl Serde<$t> for $serde {
            fn serialize(&self, _topic: &str, $v: &$t) -> Result<Option<Bytes>, SerdeError> {
                Ok(Some($ser))
            }
            fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<$t, SerdeError> {
                let $d = data.ok_or(SerdeError::Null(stringify!($t)))?;
                $de
            }
            $(
                fn serialize_owned(
                    &self,
                    _topic: &str,
                    $o: $t,
                ) -> Result<Option<Bytes>, SerdeError> {
                    Ok($own)
                }
            )?
        }
        impl Serde<Option<$t>> for $serde {
            fn serialize(
                &self,
                topic: &str,
                value: &Option<$t>,
            ) -> Result<Option<Bytes>, SerdeError> {
                match value {
                    Some(v) => Serde::<$t>::serialize(self, topic, v),
                    None => Ok(None),
                }
            }
            fn serialize_owned(
                &self,
                topic: &str,
                value: Option<$t>,
            ) -> Result<Option<Bytes>, SerdeError> {
                match value {
                    Some(v) => Serde::<$t>::serialize_owned(self, topic, v),
                    None => Ok(None),
                }
            }
            fn deserialize(
                &self,
                topic: &str,
                data: Option<&[u8]>,
            ) -> Result<Option<$t>, SerdeError> {
                match data {
                    Some(_) => Serde::<$t>::deserialize(self, topic, data).map(Some),
                    None => Ok(None),
                }
            }
        }
    };
}

/// UTF-8 strings, as Kafka's StringSerializer writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

serde_with_option!(
    StringSerde,
    String,
    |v| Bytes::copy_from_slice(v.as_bytes()),
    |d| {
        String::from_utf8(d.to_vec()).map_err(|e| SerdeError::Invalid(format!("not UTF-8: {e}")))
    },
    owned | v | Some(Bytes::from(v.into_bytes()))
);

/// Raw bytes, unchanged (Kafka's ByteArraySerde / BytesSerde).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

serde_with_option!(
    BytesSerde,
    Bytes,
    |v| v.clone(),
    |d| Ok(Bytes::copy_from_slice(d)),
    owned | v | Some(v)
);
serde_with_option!(
    BytesSerde,
    Vec<u8>,
    |v| Bytes::copy_from_slice(v),
    |d| Ok(d.to_vec()),
    owned | v | Some(Bytes::from(v))
);

fn fixed<const N: usize>(d: &[u8], what: &str) -> Result<[u8; N], SerdeError> {
    d.try_into().map_err(|_| {
        SerdeError::Invalid(format!("{what} needs exactly {N} bytes, got {}", d.len()))
    })
}

/// 4-byte big-endian i32, as Kafka's IntegerSerializer writes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntegerSerde;

serde_with_option!(
    IntegerSerde,
    i32,
    |v| Bytes::copy_from_slice(&v.to_be_bytes()),
    |d| Ok(i32::from_be_bytes(fixed(d, "integer")?))
);

/// 8-byte big-endian i64, as Kafka's LongSerializer writes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongSerde;

serde_with_option!(
    LongSerde,
    i64,
    |v| Bytes::copy_from_slice(&v.to_be_bytes()),
    |d| Ok(i64::from_be_bytes(fixed(d, "long")?))
);

/// 8-byte big-endian u64 (the same bytes LongSerializer writes for values below 2^63).
#[derive(Debug, Clone, Copy, Default)]
pub struct U64Serde;

serde_with_option!(
    U64Serde,
    u64,
    |v| Bytes::copy_from_slice(&v.to_be_bytes()),
    |d| Ok(u64::from_be_bytes(fixed(d, "u64")?))
);

/// JSON through serde. Null data is an error for `T`; read `Option<T>` with `JsonSerde<Option<T>>`,
/// which maps both a null record and the JSON text `null` to `None`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        JsonSerde::new()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        JsonSerde::new()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, _topic: &str, value: &T) -> Result<Option<Bytes>, SerdeError> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| SerdeError::Invalid(format!("JSON: {e}")))
    }

    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<T, SerdeError> {
        // A null record reads as JSON null, so Option<T> (and other types accepting null) work.
        serde_json::from_slice(data.unwrap_or(b"null"))
            .map_err(|e| SerdeError::Invalid(format!("JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round<T, S: Serde<T>>(s: &S, v: T) -> (Option<Bytes>, T) {
        let b = s.serialize("t", &v).unwrap();
        let back = s.deserialize("t", b.as_deref()).unwrap();
        (b, back)
    }

    fn owned_matches_borrowed<T: Clone, S: Serde<T>>(s: &S, v: T) {
        let borrowed = s.serialize("t", &v).unwrap();
        assert_eq!(s.serialize_owned("t", v).unwrap(), borrowed);
    }

    #[test]
    fn serializing_an_owned_value_gives_the_same_bytes() {
        owned_matches_borrowed(&StringSerde, String::from("héllo"));
        owned_matches_borrowed(&StringSerde, Some(String::from("x")));
        owned_matches_borrowed(&StringSerde, None::<String>);
        owned_matches_borrowed(&BytesSerde, Bytes::from_static(b"\x00\x01"));
        owned_matches_borrowed(&BytesSerde, vec![1u8, 2, 3]);
        owned_matches_borrowed(&LongSerde, -5i64);
        owned_matches_borrowed(&IntegerSerde, Some(7i32));
    }

    #[test]
    fn integers_are_big_endian_like_kafka() {
        let (b, v) = round(&LongSerde, 1i64);
        assert_eq!(b.unwrap().as_ref(), &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(v, 1);
        let (b, v) = round(&IntegerSerde, -2i32);
        assert_eq!(b.unwrap().as_ref(), &[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(v, -2);
        let (b, _) = round(&U64Serde, 258u64);
        assert_eq!(b.unwrap().as_ref(), &[0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn errors_are_values() {
        assert_eq!(
            Serde::<i64>::deserialize(&LongSerde, "t", None),
            Err(SerdeError::Null("i64"))
        );
        assert!(matches!(
            Serde::<i64>::deserialize(&LongSerde, "t", Some(&[1, 2, 3])),
            Err(SerdeError::Invalid(_))
        ));
        assert!(Serde::<String>::deserialize(&StringSerde, "t", Some(&[0xff, 0xfe])).is_err());
        assert_eq!(
            Serde::<Option<String>>::deserialize(&StringSerde, "t", None),
            Ok(None)
        );
        assert_eq!(
            Serde::<Option<i32>>::serialize(&IntegerSerde, "t", &None),
            Ok(None)
        );
    }

    #[test]
    fn json_round_trips_and_rejects_garbage() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct P {
            name: String,
            n: u32,
        }
        let s = JsonSerde::<P>::new();
        let (b, v) = round(
            &s,
            P {
                name: "a".into(),
                n: 3,
            },
        );
        assert_eq!(b.unwrap().as_ref(), br#"{"name":"a","n":3}"#);
        assert_eq!(
            v,
            P {
                name: "a".into(),
                n: 3
            }
        );
        assert!(s.deserialize("t", Some(b"{")).is_err());
        assert!(s.deserialize("t", None).is_err());
        assert_eq!(
            JsonSerde::<Option<P>>::new().deserialize("t", None),
            Ok(None)
        );
    }
}
