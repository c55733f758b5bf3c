//! An insertion-ordered JSON tree, parsed with serde_json and printed the way Jackson prints.
//! Kafka's JsonConverter output is Jackson's compact form; matching it byte for byte needs our own writer.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::data::value::{java_double_string, java_float_string};
use crate::error::{ConnectError, Result};

/// A JSON document. Objects keep key order (Jackson's `ObjectNode` is a `LinkedHashMap`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// Printed as Java's `Float.toString`; only produced when writing FLOAT32 values.
    Float(f32),
    Double(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Jackson's node type names, which Kafka puts in its error messages.
    pub(crate) fn node_type(&self) -> &'static str {
        match self {
            Json::Null => "NULL",
            Json::Bool(_) => "BOOLEAN",
            Json::Int(_) | Json::Float(_) | Json::Double(_) => "NUMBER",
            Json::Str(_) => "STRING",
            Json::Array(_) => "ARRAY",
            Json::Object(_) => "OBJECT",
        }
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Json> {
        serde_json::from_slice(bytes).map_err(|e| {
            ConnectError::data(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => out.push_str(&i.to_string()),
            // Jackson quotes NaN and infinities (QUOTE_NON_NUMERIC_NUMBERS is on by default).
            Json::Float(f) if !f.is_finite() => write_str(out, &java_float_string(*f)),
            Json::Float(f) => out.push_str(&java_float_string(*f)),
            Json::Double(d) if !d.is_finite() => write_str(out, &java_double_string(*d)),
            Json::Double(d) => out.push_str(&java_double_string(*d)),
            Json::Str(s) => write_str(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out);
        f.write_str(&out)
    }
}

/// Jackson's escaping: short escapes for `\b \t \n \f \r`, `\u00XX` with upper-case hex for
/// other control characters, everything else (including non-ASCII) written as UTF-8.
///
/// This is the hot loop of every JSON record a source writes, and most text has nothing to
/// escape: blocks are checked whole (a branch-free test the compiler vectorises) and runs of
/// clean bytes copied at once.
pub(crate) fn write_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const BLOCK: usize = 32;
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let bytes = s.as_bytes();
    out.reserve(s.len() + 2);
    out.push('"');
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(block) = bytes.get(i..i + BLOCK) {
            if !block.iter().fold(false, |any, &b| any | escaped(b)) {
                i += BLOCK;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if !escaped(b) {
            continue;
        }
        // An escaped byte is ASCII, so both slices end on character boundaries.
        out.push_str(&s[run..i - 1]);
        run = i;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xF)] as char);
            }
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Json, E> {
        i64::try_from(v)
            .map(Json::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 signed bits")))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Json, E> {
        Ok(Json::Double(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            // A repeated key overwrites in place, as Jackson's ObjectNode does.
            match entries.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(Json::Object(entries))
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64, Jackson's default variant for binary values.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; trailing padding may be omitted.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let invalid = || ConnectError::data("Invalid bytes field: not valid base64");
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return Err(invalid());
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        let v = BASE64.iter().position(|&b| b == c).ok_or_else(invalid)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_key_order_and_number_kinds() {
        let j = Json::parse(br#"{"z":1,"a":1.0,"m":[true,null,"s"],"n":-5}"#).unwrap();
        assert_eq!(
            j.to_string(),
            r#"{"z":1,"a":1.0,"m":[true,null,"s"],"n":-5}"#
        );
        assert_eq!(j.get("a"), Some(&Json::Double(1.0)));
        assert_eq!(j.get("n"), Some(&Json::Int(-5)));
    }

    #[test]
    fn strings_escape_like_jackson() {
        let j = Json::Str("a\"b\\c\n\t\u{1}\u{1f}é/\u{7f}".into());
        assert_eq!(j.to_string(), "\"a\\\"b\\\\c\\n\\t\\u0001\\u001Fé/\u{7f}\"");
    }

    #[test]
    fn escapes_are_found_inside_and_after_whole_blocks() {
        // Long enough for the block scan, with escapes at a block's start, middle and end.
        let text = format!(
            "\"{}\\{}\u{1}é{}\n",
            "a".repeat(31),
            "b".repeat(40),
            "c".repeat(30)
        );
        let mut out = String::new();
        write_str(&mut out, &text);
        let expected = format!(
            "\"\\\"{}\\\\{}\\u0001é{}\\n\"",
            "a".repeat(31),
            "b".repeat(40),
            "c".repeat(30)
        );
        assert_eq!(out, expected);
        let clean = "x".repeat(100);
        let mut out = String::new();
        write_str(&mut out, &clean);
        assert_eq!(out, format!("\"{clean}\""));
    }

    #[test]
    fn non_finite_numbers_are_quoted() {
        assert_eq!(Json::Double(f64::NAN).to_string(), "\"NaN\"");
        assert_eq!(Json::Float(f32::INFINITY).to_string(), "\"Infinity\"");
        assert_eq!(Json::Double(1e10).to_string(), "1.0E10");
    }

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\x00\xff\xfe\x01", "AP/+AQ=="),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw);
        }
        assert_eq!(base64_decode("Zg").unwrap(), b"f");
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zm9v!").is_err());
    }

    #[test]
    fn huge_integers_are_rejected() {
        assert!(Json::parse(b"18446744073709551615").is_err());
    }
}
