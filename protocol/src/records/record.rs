//! Records inside a v2 batch: varint-framed, with deltas against the batch's base offset and
//! timestamp, optional keys and values, and headers.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::records::batch::write_crc;
use crate::records::{verify_crc, BatchHeader, Compression, BATCH_HEADER_SIZE, LOG_OVERHEAD};
use crate::wire::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record with absolute offset and timestamp (deltas are a storage detail of the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// A whole batch, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub compression: Compression,
    pub log_append_time: bool,
    pub transactional: bool,
    pub control: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Kept explicitly because a compacted batch may have fewer records than its offset span.
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub records: Vec<Record>,
}

/// Smallest possible record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each. Bounds a declared record count.
const MIN_RECORD_SIZE: usize = 7;

fn opt_len(b: &Option<Bytes>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn put_opt(buf: &mut BytesMut, b: &Option<Bytes>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

impl Record {
    /// Size of the record after its length prefix.
    fn body_len(&self, base_offset: i64, base_timestamp: i64) -> usize {
        1 + varlong_len(self.timestamp - base_timestamp)
            + varint_len((self.offset - base_offset) as i32)
            + opt_len(&self.key)
            + opt_len(&self.value)
            + varint_len(self.headers.len() as i32)
            + self
                .headers
                .iter()
                .map(|h| varint_len(h.key.len() as i32) + h.key.len() + opt_len(&h.value))
                .sum::<usize>()
    }

    fn encode(&self, buf: &mut BytesMut, base_offset: i64, base_timestamp: i64) {
        put_varint(buf, self.body_len(base_offset, base_timestamp) as i32);
        buf.put_i8(0);
        put_varlong(buf, self.timestamp - base_timestamp);
        put_varint(buf, (self.offset - base_offset) as i32);
        put_opt(buf, &self.key);
        put_opt(buf, &self.value);
        put_varint(buf, self.headers.len() as i32);
        for h in &self.headers {
            put_varint(buf, h.key.len() as i32);
            buf.put_slice(h.key.as_bytes());
            put_opt(buf, &h.value);
        }
    }
}

/// A cursor over a records section that checks every length against what remains.
struct Cursor {
    buf: Bytes,
}

fn framing(msg: &str) -> ProtocolError {
    ProtocolError::CorruptBatch(msg.to_string())
}

impl Cursor {
    fn varint(&mut self) -> Result<i32> {
        get_varint(&mut self.buf).map_err(|_| framing("bad varint in record"))
    }

    fn varlong(&mut self) -> Result<i64> {
        get_varlong(&mut self.buf).map_err(|_| framing("bad varlong in record"))
    }

    /// A length-prefixed field: `None` for -1, an error for other negatives or overruns.
    fn field(&mut self) -> Result<Option<Bytes>> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        if len < -1 || len as usize > self.buf.remaining() {
            return Err(framing("record field length out of bounds"));
        }
        Ok(Some(self.buf.split_to(len as usize)))
    }
}

/// Reads one record's framing; `emit` decides whether to build it. Returns the offset delta.
fn read_record(cur: &mut Cursor, build: bool) -> Result<(i32, i64, Option<Record>)> {
    let len = cur.varint()?;
    if len < 0 || len as usize > cur.buf.remaining() {
        return Err(framing("record length out of bounds"));
    }
    let mut rec = Cursor {
        buf: cur.buf.split_to(len as usize),
    };
    if !rec.buf.has_remaining() {
        return Err(framing("empty record"));
    }
    let _attributes = rec.buf.get_i8();
    let ts_delta = rec.varlong()?;
    let offset_delta = rec.varint()?;
    let key = rec.field()?;
    let value = rec.field()?;
    let count = rec.varint()?;
    if count < 0 || count as usize > rec.buf.remaining() / 2 {
        return Err(framing("record header count out of bounds"));
    }
    let mut headers = Vec::new();
    for _ in 0..count {
        let hkey = rec.field()?.ok_or_else(|| framing("null header key"))?;
        let hvalue = rec.field()?;
        if build {
            let key = String::from_utf8(hkey.to_vec())
                .map_err(|_| ProtocolError::InvalidRecord("header key is not UTF-8".into()))?;
            headers.push(RecordHeader { key, value: hvalue });
        }
    }
    if rec.buf.has_remaining() {
        return Err(framing("record length does not match its fields"));
    }
    let record = build.then(|| Record {
        offset: offset_delta as i64,
        timestamp: ts_delta,
        key,
        value,
        headers,
    });
    Ok((offset_delta, ts_delta, record))
}

impl RecordBatch {
    /// A plain (non-idempotent, uncompressed) batch of `records`, whose absolute offsets and
    /// timestamps give the batch's base offset, timestamps and offset span.
    pub fn new(records: Vec<Record>) -> RecordBatch {
        let base_offset = records.first().map_or(0, |r| r.offset);
        let base_timestamp = records.first().map_or(-1, |r| r.timestamp);
        let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let last_offset_delta = records
            .last()
            .map_or(0, |r| (r.offset - base_offset) as i32);
        RecordBatch {
            base_offset,
            partition_leader_epoch: -1,
            compression: Compression::None,
            log_append_time: false,
            transactional: false,
            control: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            records,
        }
    }

    /// Encodes the batch, compressing the records section and computing the CRC.
    pub fn encode(&self) -> Result<Bytes> {
        let size: usize = self
            .records
            .iter()
            .map(|r| {
                let n = r.body_len(self.base_offset, self.base_timestamp);
                varint_len(n as i32) + n
            })
            .sum();
        let mut section = BytesMut::with_capacity(size);
        for r in &self.records {
            r.encode(&mut section, self.base_offset, self.base_timestamp);
        }
        let payload: Vec<u8>;
        let section: &[u8] = if self.compression == Compression::None {
            &section
        } else {
            payload = self.compression.compress(&section)?;
            &payload
        };
        let mut attributes = self.compression.attribute_bits();
        if self.log_append_time {
            attributes |= 0x08;
        }
        if self.transactional {
            attributes |= 0x10;
        }
        if self.control {
            attributes |= 0x20;
        }
        let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE + section.len());
        out.put_i64(self.base_offset);
        out.put_i32((BATCH_HEADER_SIZE - LOG_OVERHEAD + section.len()) as i32);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(2);
        out.put_u32(0); // CRC, computed last
        out.put_i16(attributes);
        out.put_i32(self.last_offset_delta);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.records.len() as i32);
        out.put_slice(section);
        write_crc(&mut out);
        Ok(out.freeze())
    }

    /// The records section of a checked batch, decompressed (at most `limit` bytes).
    fn section(batch: &[u8], h: &BatchHeader, limit: usize) -> Result<Bytes> {
        let raw = &batch[BATCH_HEADER_SIZE..h.total_size()];
        let codec = h.compression()?;
        if h.records_count < 0 {
            return Err(ProtocolError::InvalidRecord(format!(
                "negative record count {}",
                h.records_count
            )));
        }
        Ok(match codec {
            Compression::None => Bytes::copy_from_slice(raw),
            c => Bytes::from(c.decompress(raw, limit)?),
        })
    }

    /// Decodes a whole batch: checks its CRC, decompresses (at most `max_uncompressed` bytes) and
    /// reads every record.
    pub fn decode(batch: &[u8], max_uncompressed: usize) -> Result<RecordBatch> {
        verify_crc(batch)?;
        let h = BatchHeader::parse(batch)?;
        let section = Self::section(batch, &h, max_uncompressed)?;
        let count = h.records_count as usize;
        if count > section.len() / MIN_RECORD_SIZE {
            return Err(framing(
                "record count larger than the records section can hold",
            ));
        }
        let mut cur = Cursor { buf: section };
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let (_, _, rec) = read_record(&mut cur, true)?;
            let mut rec = rec.expect("built");
            rec.offset += h.base_offset;
            rec.timestamp += h.base_timestamp;
            records.push(rec);
        }
        if cur.buf.has_remaining() {
            return Err(framing("bytes after the last record"));
        }
        Ok(RecordBatch {
            base_offset: h.base_offset,
            partition_leader_epoch: h.partition_leader_epoch,
            compression: h.compression()?,
            log_append_time: h.has_log_append_time(),
            transactional: h.is_transactional(),
            control: h.is_control(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            last_offset_delta: h.last_offset_delta,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            records,
        })
    }

    /// The broker's check of a produced batch without building records: CRC, record count,
    /// consecutive offset deltas from 0, every record's framing within its bounds.
    pub fn validate(batch: &[u8], max_uncompressed: usize) -> Result<()> {
        verify_crc(batch)?;
        let h = BatchHeader::parse(batch)?;
        if h.records_count <= 0 {
            return Err(ProtocolError::InvalidRecord(format!(
                "batch holds {} records",
                h.records_count
            )));
        }
        if h.last_offset_delta != h.records_count - 1 {
            return Err(ProtocolError::InvalidRecord(format!(
                "last offset delta {} does not match {} records",
                h.last_offset_delta, h.records_count
            )));
        }
        let section = Self::section(batch, &h, max_uncompressed)?;
        if h.records_count as usize > section.len() / MIN_RECORD_SIZE {
            return Err(framing(
                "record count larger than the records section can hold",
            ));
        }
        let mut cur = Cursor { buf: section };
        for expected in 0..h.records_count {
            let (delta, _, _) = read_record(&mut cur, false)?;
            if delta != expected {
                return Err(ProtocolError::InvalidRecord(format!(
                    "record {expected} has offset delta {delta}; deltas must count up from 0"
                )));
            }
        }
        if cur.buf.has_remaining() {
            return Err(framing("bytes after the last record"));
        }
        Ok(())
    }
}
