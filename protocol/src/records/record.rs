//! Records inside a v2 batch: varint-framed, with deltas against the batch's base offset and
//! timestamp, optional keys and values, and headers.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

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

fn opt_slice_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn put_opt_slice(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Size of a record after its length prefix.
fn body_len(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[RecordHeader],
) -> usize {
    1 + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + opt_slice_len(key)
        + opt_slice_len(value)
        + varint_len(headers.len() as i32)
        + headers
            .iter()
            .map(|h| varint_len(h.key.len() as i32) + h.key.len() + opt_len(&h.value))
            .sum::<usize>()
}

/// Bytes one record takes inside a batch, length prefix included, at `offset_delta` and
/// `timestamp_delta` from the batch's base offset and timestamp.
pub fn encoded_record_len(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[RecordHeader],
) -> usize {
    let n = body_len(offset_delta, timestamp_delta, key, value, headers);
    varint_len(n as i32) + n
}

/// Appends one record, length prefix included, for a producer that builds a batch's records
/// section as records arrive (see [`finish_batch`]).
pub fn write_record(
    buf: &mut BytesMut,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[RecordHeader],
) {
    let body = body_len(offset_delta, timestamp_delta, key, value, headers);
    buf.reserve(varint_len(body as i32) + body);
    put_varint(buf, body as i32);
    buf.put_i8(0);
    put_varlong(buf, timestamp_delta);
    put_varint(buf, offset_delta);
    put_opt_slice(buf, key);
    put_opt_slice(buf, value);
    put_varint(buf, headers.len() as i32);
    for h in headers {
        put_varint(buf, h.key.len() as i32);
        buf.put_slice(h.key.as_bytes());
        put_opt(buf, &h.value);
    }
}

impl Record {
    fn encoded_len(&self, base_offset: i64, base_timestamp: i64) -> usize {
        encoded_record_len(
            self.offset.wrapping_sub(base_offset) as i32,
            self.timestamp.wrapping_sub(base_timestamp),
            self.key.as_deref(),
            self.value.as_deref(),
            &self.headers,
        )
    }

    fn encode(&self, buf: &mut BytesMut, base_offset: i64, base_timestamp: i64) {
        write_record(
            buf,
            self.offset.wrapping_sub(base_offset) as i32,
            self.timestamp.wrapping_sub(base_timestamp),
            self.key.as_deref(),
            self.value.as_deref(),
            &self.headers,
        );
    }
}

/// The header of a batch whose records section is already encoded: what [`finish_batch`]
/// writes in front of it. The record count is what the section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFields {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub compression: Compression,
    pub log_append_time: bool,
    pub transactional: bool,
    pub control: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub records_count: i32,
}

impl BatchFields {
    /// A plain batch of `records_count` records at offset deltas 0, 1, 2, ...: no producer
    /// id, no compression, CreateTime.
    pub fn new(records_count: i32, base_timestamp: i64, max_timestamp: i64) -> BatchFields {
        BatchFields {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            log_append_time: false,
            transactional: false,
            control: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_offset_delta: records_count.saturating_sub(1).max(0),
            base_timestamp,
            max_timestamp,
            records_count,
        }
    }

    fn attributes(&self) -> i16 {
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
        attributes
    }

    fn put_header(&self, out: &mut [u8]) {
        let mut h = &mut out[..BATCH_HEADER_SIZE];
        h.put_i64(self.base_offset);
        h.put_i32(0); // batch length, known once the section is final
        h.put_i32(self.partition_leader_epoch);
        h.put_i8(2);
        h.put_u32(0); // CRC, computed last
        h.put_i16(self.attributes());
        h.put_i32(self.last_offset_delta);
        h.put_i64(self.base_timestamp);
        h.put_i64(self.max_timestamp);
        h.put_i64(self.producer_id);
        h.put_i16(self.producer_epoch);
        h.put_i32(self.base_sequence);
        h.put_i32(self.records_count);
    }
}

/// Turns `buf` into a whole batch: its first [`BATCH_HEADER_SIZE`] bytes are room for the
/// header, the rest is the encoded records section. An uncompressed batch is finished in place,
/// so a producer that wrote records as they came pays only the header and the CRC here.
pub fn finish_batch(mut buf: BytesMut, fields: &BatchFields) -> Result<Bytes> {
    if buf.len() < BATCH_HEADER_SIZE {
        return Err(ProtocolError::Truncated {
            needed: BATCH_HEADER_SIZE,
            remaining: buf.len(),
        });
    }
    let mut out = if fields.compression == Compression::None {
        buf
    } else {
        let compressed = fields.compression.compress(&buf[BATCH_HEADER_SIZE..])?;
        buf.clear();
        buf.reserve(BATCH_HEADER_SIZE + compressed.len());
        buf.put_bytes(0, BATCH_HEADER_SIZE);
        buf.put_slice(&compressed);
        buf
    };
    fields.put_header(&mut out);
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    write_crc(&mut out);
    Ok(out.freeze())
}

fn framing(msg: &str) -> ProtocolError {
    ProtocolError::CorruptBatch(msg.to_string())
}

/// Where one record's parts lie in its records section. Parsing yields positions rather than
/// values so that `validate` touches no allocator and `decode` can slice one shared buffer.
struct RawRecord {
    ts_delta: i64,
    offset_delta: i32,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    header_count: usize,
    /// The header bytes, whose framing has already been checked.
    headers: Range<usize>,
}

/// Reads `buf[pos..end]`; every length is checked against `end` before it is used.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], range: Range<usize>) -> Reader<'a> {
        Reader {
            buf,
            pos: range.start,
            end: range.end,
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.end
    }

    fn varint(&mut self) -> Result<i32> {
        let mut rest = &self.buf[self.pos..self.end];
        let v = get_varint(&mut rest).map_err(|_| framing("bad varint in record"))?;
        self.pos = self.end - rest.len();
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64> {
        let mut rest = &self.buf[self.pos..self.end];
        let v = get_varlong(&mut rest).map_err(|_| framing("bad varlong in record"))?;
        self.pos = self.end - rest.len();
        Ok(v)
    }

    /// `n` bytes as a range, after checking they are there.
    fn take(&mut self, n: usize) -> Result<Range<usize>> {
        if n > self.end - self.pos {
            return Err(framing("record field length out of bounds"));
        }
        let r = self.pos..self.pos + n;
        self.pos += n;
        Ok(r)
    }

    /// A varint-length-prefixed field: `None` for -1, an error for other negative lengths.
    fn field(&mut self) -> Result<Option<Range<usize>>> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < 0 => Err(framing("negative record field length")),
            len => self.take(len as usize).map(Some),
        }
    }

    /// One header: its key (never null, as Kafka requires) and value.
    fn header(&mut self) -> Result<(Range<usize>, Option<Range<usize>>)> {
        let key = self
            .field()?
            .ok_or_else(|| ProtocolError::InvalidRecord("null header key".into()))?;
        Ok((key, self.field()?))
    }

    /// The next record; its length prefix must bound its fields exactly.
    fn record(&mut self) -> Result<RawRecord> {
        let len = self.varint()?;
        if len < 0 {
            return Err(framing("negative record length"));
        }
        let body = self
            .take(len as usize)
            .map_err(|_| framing("record length out of bounds"))?;
        let mut r = Reader::new(self.buf, body);
        let _attributes = r.take(1).map_err(|_| framing("empty record"))?;
        let ts_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.field()?;
        let value = r.field()?;
        let count = r.varint()?;
        // A header takes at least two bytes; this also bounds `decode`'s allocation.
        if count < 0 || count as usize > (r.end - r.pos) / 2 {
            return Err(framing("record header count out of bounds"));
        }
        let headers_start = r.pos;
        for _ in 0..count {
            r.header()?;
        }
        if !r.at_end() {
            return Err(framing("record length does not match its fields"));
        }
        Ok(RawRecord {
            ts_delta,
            offset_delta,
            key,
            value,
            header_count: count as usize,
            headers: headers_start..r.pos,
        })
    }
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
            .map_or(0, |r| r.offset.wrapping_sub(base_offset) as i32);
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

    fn fields(&self) -> BatchFields {
        BatchFields {
            base_offset: self.base_offset,
            partition_leader_epoch: self.partition_leader_epoch,
            compression: self.compression,
            log_append_time: self.log_append_time,
            transactional: self.transactional,
            control: self.control,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            last_offset_delta: self.last_offset_delta,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            records_count: self.records.len() as i32,
        }
    }

    /// Encodes the batch, compressing the records section and computing the CRC.
    pub fn encode(&self) -> Result<Bytes> {
        let section_len: usize = self
            .records
            .iter()
            .map(|r| r.encoded_len(self.base_offset, self.base_timestamp))
            .sum();
        let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE + section_len);
        out.put_bytes(0, BATCH_HEADER_SIZE);
        for r in &self.records {
            r.encode(&mut out, self.base_offset, self.base_timestamp);
        }
        finish_batch(out, &self.fields())
    }

    /// CRC, header, codec and record count checks shared by `decode` and `validate`.
    fn checked_header(batch: &[u8]) -> Result<(BatchHeader, Compression)> {
        verify_crc(batch)?;
        let h = BatchHeader::parse(batch)?;
        let codec = h.compression()?;
        if h.records_count < 0 {
            return Err(ProtocolError::InvalidRecord(format!(
                "negative record count {}",
                h.records_count
            )));
        }
        Ok((h, codec))
    }

    /// Refuses a record count the section could not hold, before anything is sized by it.
    fn check_count(h: &BatchHeader, section: &[u8]) -> Result<()> {
        if h.records_count as usize > section.len() / MIN_RECORD_SIZE {
            return Err(framing(
                "record count larger than the records section can hold",
            ));
        }
        Ok(())
    }

    /// Decodes a whole batch: checks its CRC, decompresses (at most `max_uncompressed` bytes) and
    /// reads every record.
    pub fn decode(batch: &[u8], max_uncompressed: usize) -> Result<RecordBatch> {
        let (h, codec) = Self::checked_header(batch)?;
        let raw = &batch[BATCH_HEADER_SIZE..h.total_size()];
        let section = match codec {
            Compression::None => Bytes::copy_from_slice(raw),
            c => Bytes::from(c.decompress(raw, max_uncompressed)?),
        };
        Self::decode_section(&h, codec, section)
    }

    /// `decode` for a batch already in a `Bytes`: uncompressed keys, values and header values
    /// then share the batch's buffer instead of a copy of it.
    pub fn decode_bytes(batch: &Bytes, max_uncompressed: usize) -> Result<RecordBatch> {
        let (h, codec) = Self::checked_header(batch)?;
        let section = match codec {
            Compression::None => batch.slice(BATCH_HEADER_SIZE..h.total_size()),
            c => Bytes::from(
                c.decompress(&batch[BATCH_HEADER_SIZE..h.total_size()], max_uncompressed)?,
            ),
        };
        Self::decode_section(&h, codec, section)
    }

    fn decode_section(h: &BatchHeader, codec: Compression, section: Bytes) -> Result<RecordBatch> {
        Self::check_count(h, &section)?;
        let count = h.records_count as usize;
        let mut reader = Reader::new(&section, 0..section.len());
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let raw = reader.record()?;
            let mut headers = Vec::with_capacity(raw.header_count);
            let mut hr = Reader::new(&section, raw.headers);
            for _ in 0..raw.header_count {
                let (key, value) = hr.header()?;
                let key = std::str::from_utf8(&section[key])
                    .map_err(|_| ProtocolError::InvalidRecord("header key is not UTF-8".into()))?
                    .to_owned();
                headers.push(RecordHeader {
                    key,
                    value: value.map(|v| section.slice(v)),
                });
            }
            // Deltas come off the wire: wrap like Java rather than panic on overflow.
            records.push(Record {
                offset: h.base_offset.wrapping_add(raw.offset_delta as i64),
                timestamp: h.base_timestamp.wrapping_add(raw.ts_delta),
                key: raw.key.map(|k| section.slice(k)),
                value: raw.value.map(|v| section.slice(v)),
                headers,
            });
        }
        if !reader.at_end() {
            return Err(framing("bytes after the last record"));
        }
        Ok(RecordBatch {
            base_offset: h.base_offset,
            partition_leader_epoch: h.partition_leader_epoch,
            compression: codec,
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
    /// offset deltas 0, 1, 2, ... as Kafka requires of client batches, every record's framing.
    /// An uncompressed batch is read in place; a compressed one costs its decompression only.
    pub fn validate(batch: &[u8], max_uncompressed: usize) -> Result<()> {
        let (h, codec) = Self::checked_header(batch)?;
        // Kafka refuses empty produced batches too: there is no offset for them to take.
        if h.records_count == 0 {
            return Err(ProtocolError::InvalidRecord(
                "batch holds no records".into(),
            ));
        }
        if h.last_offset_delta != h.records_count - 1 {
            return Err(ProtocolError::InvalidRecord(format!(
                "last offset delta {} does not match {} records",
                h.last_offset_delta, h.records_count
            )));
        }
        let raw = &batch[BATCH_HEADER_SIZE..h.total_size()];
        let decompressed;
        let section = match codec {
            Compression::None => raw,
            c => {
                decompressed = c.decompress(raw, max_uncompressed)?;
                &decompressed[..]
            }
        };
        Self::check_count(&h, section)?;
        let mut reader = Reader::new(section, 0..section.len());
        for expected in 0..h.records_count {
            let delta = reader.record()?.offset_delta;
            if delta != expected {
                return Err(ProtocolError::InvalidRecord(format!(
                    "record {expected} has offset delta {delta}; deltas must count up from 0"
                )));
            }
        }
        if !reader.at_end() {
            return Err(framing("bytes after the last record"));
        }
        Ok(())
    }
}
