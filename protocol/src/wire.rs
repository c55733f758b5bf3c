//! Kafka's primitive wire types and the `Wire` trait that every message field implements.
//! Decoding reads from a `Bytes` so byte fields (records above all) are zero-copy slices; every
//! declared length or count is checked against the bytes that remain before anything is allocated.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};

/// How a value is encoded: the message version and whether that version is "flexible"
/// (compact strings and arrays, tagged fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub version: i16,
    pub flexible: bool,
}

impl Ctx {
    pub fn new(version: i16, flexible: bool) -> Ctx {
        Ctx { version, flexible }
    }
}

/// A value with a Kafka wire encoding that may depend on the message version.
pub trait Wire: Sized {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx);
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self>;
}

/// Fails unless `n` bytes remain.
#[inline]
pub fn need(buf: &Bytes, n: usize) -> Result<()> {
    if buf.remaining() < n {
        Err(ProtocolError::Truncated {
            needed: n,
            remaining: buf.remaining(),
        })
    } else {
        Ok(())
    }
}

macro_rules! fixed_int {
    ($ty:ty, $get:ident, $put:ident) => {
        impl Wire for $ty {
            #[inline]
            fn encode(&self, buf: &mut BytesMut, _cx: Ctx) {
                buf.$put(*self);
            }
            #[inline]
            fn decode(buf: &mut Bytes, _cx: Ctx) -> Result<Self> {
                need(buf, std::mem::size_of::<$ty>())?;
                Ok(buf.$get())
            }
        }
    };
}

fixed_int!(i8, get_i8, put_i8);
fixed_int!(i16, get_i16, put_i16);
fixed_int!(i32, get_i32, put_i32);
fixed_int!(i64, get_i64, put_i64);
fixed_int!(u16, get_u16, put_u16);
fixed_int!(u32, get_u32, put_u32);
fixed_int!(f64, get_f64, put_f64);

impl Wire for bool {
    fn encode(&self, buf: &mut BytesMut, _cx: Ctx) {
        buf.put_u8(*self as u8);
    }
    fn decode(buf: &mut Bytes, _cx: Ctx) -> Result<Self> {
        need(buf, 1)?;
        Ok(buf.get_u8() != 0)
    }
}

/// A 16-byte UUID, as used for topic ids. The all-zero value means "none".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl Wire for Uuid {
    fn encode(&self, buf: &mut BytesMut, _cx: Ctx) {
        buf.put_slice(&self.0);
    }
    fn decode(buf: &mut Bytes, _cx: Ctx) -> Result<Self> {
        need(buf, 16)?;
        let mut id = [0u8; 16];
        buf.copy_to_slice(&mut id);
        Ok(Uuid(id))
    }
}

// ---- variable-length integers -------------------------------------------------------------

pub fn put_uvarint(buf: &mut impl BufMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn get_uvarint(buf: &mut impl Buf) -> Result<u32> {
    let mut v: u32 = 0;
    for i in 0..5 {
        if !buf.has_remaining() {
            return Err(ProtocolError::Truncated {
                needed: 1,
                remaining: 0,
            });
        }
        let b = buf.get_u8();
        if i == 4 && b > 0x0f {
            return Err(ProtocolError::VarintOverflow);
        }
        v |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtocolError::VarintOverflow)
}

pub fn put_uvarlong(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn get_uvarlong(buf: &mut impl Buf) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        if !buf.has_remaining() {
            return Err(ProtocolError::Truncated {
                needed: 1,
                remaining: 0,
            });
        }
        let b = buf.get_u8();
        if i == 9 && b > 0x01 {
            return Err(ProtocolError::VarintOverflow);
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtocolError::VarintOverflow)
}

/// Zig-zag signed varint (int32), as used inside records.
pub fn put_varint(buf: &mut impl BufMut, v: i32) {
    put_uvarint(buf, ((v << 1) ^ (v >> 31)) as u32)
}

pub fn get_varint(buf: &mut impl Buf) -> Result<i32> {
    let u = get_uvarint(buf)?;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Zig-zag signed varlong (int64).
pub fn put_varlong(buf: &mut impl BufMut, v: i64) {
    put_uvarlong(buf, ((v << 1) ^ (v >> 63)) as u64)
}

pub fn get_varlong(buf: &mut impl Buf) -> Result<i64> {
    let u = get_uvarlong(buf)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Encoded size of an unsigned varint.
pub fn uvarint_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub fn varint_len(v: i32) -> usize {
    uvarint_len(((v << 1) ^ (v >> 31)) as u32)
}

pub fn varlong_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

// ---- lengths ------------------------------------------------------------------------------

/// Reads the length prefix of a string, bytes or array: `None` for null.
/// Classic encodings use int16 (strings) or int32 (bytes, arrays) with -1 for null; compact
/// encodings use an unsigned varint holding length + 1, with 0 for null.
fn get_len(buf: &mut Bytes, cx: Ctx, classic_i16: bool) -> Result<Option<usize>> {
    let len: i64 = if cx.flexible {
        get_uvarint(buf)? as i64 - 1
    } else if classic_i16 {
        i16::decode(buf, cx)? as i64
    } else {
        i32::decode(buf, cx)? as i64
    };
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(ProtocolError::InvalidLength(n)),
        n => Ok(Some(n as usize)),
    }
}

fn put_len(buf: &mut BytesMut, cx: Ctx, classic_i16: bool, len: Option<usize>) {
    if cx.flexible {
        put_uvarint(buf, len.map_or(0, |n| n as u32 + 1));
    } else if classic_i16 {
        buf.put_i16(len.map_or(-1, |n| n as i16));
    } else {
        buf.put_i32(len.map_or(-1, |n| n as i32));
    }
}

/// Takes `len` bytes as a zero-copy slice, after checking that they are there.
fn take(buf: &mut Bytes, len: usize) -> Result<Bytes> {
    need(buf, len)?;
    Ok(buf.split_to(len))
}

fn to_string(b: Bytes) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtocolError::InvalidUtf8)
}

impl Wire for Option<String> {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, true, self.as_ref().map(|s| s.len()));
        if let Some(s) = self {
            buf.put_slice(s.as_bytes());
        }
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, true)? {
            None => Ok(None),
            Some(n) => Ok(Some(to_string(take(buf, n)?)?)),
        }
    }
}

impl Wire for String {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, true, Some(self.len()));
        buf.put_slice(self.as_bytes());
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, true)? {
            None => Err(ProtocolError::UnexpectedNull),
            Some(n) => to_string(take(buf, n)?),
        }
    }
}

impl Wire for Option<Bytes> {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, self.as_ref().map(|b| b.len()));
        if let Some(b) = self {
            buf.put_slice(b);
        }
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, false)? {
            None => Ok(None),
            Some(n) => Ok(Some(take(buf, n)?)),
        }
    }
}

impl Wire for Bytes {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, Some(self.len()));
        buf.put_slice(self);
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, false)? {
            None => Err(ProtocolError::UnexpectedNull),
            Some(n) => take(buf, n),
        }
    }
}

/// Decodes `count` elements. The capacity reserved up front is bounded by the bytes that remain
/// (every element takes at least one byte), so a huge declared count in a tiny frame fails on
/// truncation instead of allocating.
fn decode_elems<T: Wire>(buf: &mut Bytes, cx: Ctx, count: usize) -> Result<Vec<T>> {
    if count > buf.remaining() {
        return Err(ProtocolError::Truncated {
            needed: count,
            remaining: buf.remaining(),
        });
    }
    let mut v = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        v.push(T::decode(buf, cx)?);
    }
    Ok(v)
}

impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, Some(self.len()));
        for e in self {
            e.encode(buf, cx);
        }
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, false)? {
            None => Err(ProtocolError::UnexpectedNull),
            Some(n) => decode_elems(buf, cx, n),
        }
    }
}

impl<T: Wire> Wire for Option<Vec<T>> {
    fn encode(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, self.as_ref().map(|v| v.len()));
        if let Some(v) = self {
            for e in v {
                e.encode(buf, cx);
            }
        }
    }
    fn decode(buf: &mut Bytes, cx: Ctx) -> Result<Self> {
        match get_len(buf, cx, false)? {
            None => Ok(None),
            Some(n) => Ok(Some(decode_elems(buf, cx, n)?)),
        }
    }
}

/// A nullable type in a field that only became nullable in a later version (`nullable N..` in
/// `wire_struct!`). Before that version `None` goes out as the empty value, as Kafka writes it
/// (e.g. JoinGroup's protocol name before v7), and a null read is rejected.
pub trait Nullable: Wire {
    fn is_null(&self) -> bool;
    fn encode_not_null(&self, buf: &mut BytesMut, cx: Ctx);
}

impl Nullable for Option<String> {
    fn is_null(&self) -> bool {
        self.is_none()
    }
    fn encode_not_null(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, true, Some(self.as_ref().map_or(0, |s| s.len())));
        if let Some(s) = self {
            buf.put_slice(s.as_bytes());
        }
    }
}

impl Nullable for Option<Bytes> {
    fn is_null(&self) -> bool {
        self.is_none()
    }
    fn encode_not_null(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, Some(self.as_ref().map_or(0, |b| b.len())));
        if let Some(b) = self {
            buf.put_slice(b);
        }
    }
}

impl<T: Wire> Nullable for Option<Vec<T>> {
    fn is_null(&self) -> bool {
        self.is_none()
    }
    fn encode_not_null(&self, buf: &mut BytesMut, cx: Ctx) {
        put_len(buf, cx, false, Some(self.as_ref().map_or(0, |v| v.len())));
        for e in self.iter().flatten() {
            e.encode(buf, cx);
        }
    }
}

// ---- tagged fields ------------------------------------------------------------------------

/// Writes a tagged-field section from (tag, encoded value) pairs, which must be in tag order.
pub fn put_tagged_fields(buf: &mut BytesMut, fields: &[(u32, BytesMut)]) {
    put_uvarint(buf, fields.len() as u32);
    for (tag, data) in fields {
        put_uvarint(buf, *tag);
        put_uvarint(buf, data.len() as u32);
        buf.put_slice(data);
    }
}

/// Reads a tagged-field section, handing each field to `on_field`; unknown tags are skipped.
/// The count is bounded by the bytes that remain (each field takes at least two bytes).
pub fn get_tagged_fields(
    buf: &mut Bytes,
    mut on_field: impl FnMut(u32, Bytes) -> Result<()>,
) -> Result<()> {
    let count = get_uvarint(buf)? as usize;
    if count > buf.remaining() / 2 {
        return Err(ProtocolError::Truncated {
            needed: count * 2,
            remaining: buf.remaining(),
        });
    }
    for _ in 0..count {
        let tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        let data = take(buf, size)?;
        on_field(tag, data)?;
    }
    Ok(())
}

/// A tagged-field section with nothing in it, for structs that declare none.
pub fn skip_tagged_fields(buf: &mut Bytes) -> Result<()> {
    get_tagged_fields(buf, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLASSIC: Ctx = Ctx {
        version: 0,
        flexible: false,
    };
    const FLEX: Ctx = Ctx {
        version: 0,
        flexible: true,
    };

    #[test]
    fn uvarint_known_bytes() {
        let mut b = BytesMut::new();
        put_uvarint(&mut b, 300);
        assert_eq!(&b[..], &[0xac, 0x02]);
        let mut b = BytesMut::new();
        put_varint(&mut b, -1);
        assert_eq!(&b[..], &[0x01]);
    }

    #[test]
    fn huge_array_count_fails_without_allocating() {
        let mut b = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0]);
        let r = <Vec<i32>>::decode(&mut b, CLASSIC);
        assert!(matches!(r, Err(ProtocolError::Truncated { .. })));
    }

    #[test]
    fn negative_lengths_other_than_null_are_invalid() {
        let mut b = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(
            <Option<String>>::decode(&mut b, CLASSIC),
            Err(ProtocolError::InvalidLength(-2))
        );
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(get_uvarint(&mut b), Err(ProtocolError::VarintOverflow));
    }

    #[test]
    fn huge_tagged_field_count_fails() {
        let mut b = BytesMut::new();
        put_uvarint(&mut b, u32::MAX >> 4);
        let mut b = b.freeze();
        assert!(skip_tagged_fields(&mut b).is_err());
    }

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<i32>(), l in any::<i64>(), u in any::<u32>()) {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            put_varlong(&mut b, l);
            put_uvarint(&mut b, u);
            prop_assert_eq!(b.len(), varint_len(v) + varlong_len(l) + uvarint_len(u));
            let mut r = b.freeze();
            prop_assert_eq!(get_varint(&mut r).unwrap(), v);
            prop_assert_eq!(get_varlong(&mut r).unwrap(), l);
            prop_assert_eq!(get_uvarint(&mut r).unwrap(), u);
        }

        #[test]
        fn strings_round_trip(s in proptest::option::of(".*"), flex in any::<bool>()) {
            let cx = if flex { FLEX } else { CLASSIC };
            let mut b = BytesMut::new();
            s.encode(&mut b, cx);
            let mut r = b.freeze();
            prop_assert_eq!(<Option<String>>::decode(&mut r, cx).unwrap(), s);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            for cx in [CLASSIC, FLEX] {
                let _ = <Vec<Option<String>>>::decode(&mut Bytes::from(data.clone()), cx);
                let _ = <Option<Vec<Bytes>>>::decode(&mut Bytes::from(data.clone()), cx);
                let _ = skip_tagged_fields(&mut Bytes::from(data.clone()));
            }
        }
    }
}
