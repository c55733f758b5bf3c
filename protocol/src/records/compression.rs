//! Compression codecs of the records section of a batch: gzip, snappy (xerial framing, as the
//! Java client writes it), lz4 (frame format) and zstd, in both directions.

use std::io::{Read, Write};

use crate::error::{ProtocolError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, in attribute-bit order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by bits 0-2 of a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Compression> {
        match attributes & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            n => Err(ProtocolError::UnsupportedCompression(n)),
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Compresses a records section as one stream.
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>> {
        let err = |e: std::io::Error| ProtocolError::Compression(e.to_string());
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::default(),
                );
                enc.write_all(data).map_err(err)?;
                enc.finish().map_err(err)
            }
            Compression::Snappy => xerial_compress(data),
            Compression::Lz4 => {
                // Java's reader decompresses every block on its own and knows block sizes up
                // to 4 MiB only, so pin independent 64 KiB blocks (its own writer's choice)
                // rather than rely on the library's defaults.
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .block_size(lz4_flex::frame::BlockSize::Max64KB);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                    info,
                    Vec::with_capacity(data.len() / 2),
                );
                enc.write_all(data).map_err(err)?;
                enc.finish()
                    .map_err(|e| ProtocolError::Compression(e.to_string()))
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).map_err(err),
        }
    }

    /// Decompresses a records section, failing once the output would exceed `limit` bytes, so a
    /// small compressed batch cannot expand into unbounded memory.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        match self {
            Compression::None => {
                if data.len() > limit {
                    return Err(too_big(limit));
                }
                Ok(data.to_vec())
            }
            // Java's GZIPInputStream reads concatenated members; a single-member decoder would
            // silently drop every record after the first member.
            Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
            Compression::Snappy => {
                if data.starts_with(XERIAL_MAGIC) {
                    xerial_decompress(data, limit)
                } else {
                    raw_snappy_decompress(data, limit)
                }
            }
            Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit),
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::new(data)
                    .map_err(|e| ProtocolError::Compression(e.to_string()))?;
                read_bounded(dec, limit)
            }
        }
    }
}

fn too_big(limit: usize) -> ProtocolError {
    ProtocolError::Compression(format!("decompressed data exceeds {limit} bytes"))
}

/// Reads a decoder to the end, but never more than `limit` bytes.
fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ProtocolError::Compression(e.to_string()))?;
    if out.len() > limit {
        return Err(too_big(limit));
    }
    Ok(out)
}

/// The header the Java client's snappy stream starts with: a magic, then version and
/// minimum-compatible version (both 1).
const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// The Java client compresses in blocks of 32 KiB; we do the same so its reader is at home.
const XERIAL_BLOCK: usize = 32 * 1024;

fn xerial_compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK) {
        let compressed = enc
            .compress_vec(block)
            .map_err(|e| ProtocolError::Compression(e.to_string()))?;
        out.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

fn xerial_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    if data.len() < XERIAL_HEADER_LEN {
        return Err(ProtocolError::Compression(
            "truncated xerial snappy header".into(),
        ));
    }
    let mut rest = &data[XERIAL_HEADER_LEN..];
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(ProtocolError::Compression(
                "truncated xerial snappy chunk".into(),
            ));
        }
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap());
        rest = &rest[4..];
        if len < 0 || len as usize > rest.len() {
            return Err(ProtocolError::Compression(format!(
                "xerial snappy chunk of {len} bytes, {} remain",
                rest.len()
            )));
        }
        let (chunk, tail) = rest.split_at(len as usize);
        // Each chunk is decoded in place at the end of the output, checked against what is
        // left of the limit before the output grows.
        let n = snap::raw::decompress_len(chunk).map_err(snappy_err)?;
        if n > limit - out.len() {
            return Err(too_big(limit));
        }
        let start = out.len();
        out.resize(start + n, 0);
        let written = decoder
            .decompress(chunk, &mut out[start..])
            .map_err(snappy_err)?;
        out.truncate(start + written);
        rest = tail;
    }
    Ok(out)
}

fn snappy_err(e: snap::Error) -> ProtocolError {
    ProtocolError::Compression(e.to_string())
}

fn raw_snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    // The declared length is checked before the output buffer is allocated.
    let len = snap::raw::decompress_len(data).map_err(snappy_err)?;
    if len > limit {
        return Err(too_big(limit));
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(snappy_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for c in Compression::ALL {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z, data.len()).unwrap(), data, "{c:?}");
            assert!(
                c.decompress(&z, data.len() - 1).is_err(),
                "{c:?} ignored its limit"
            );
        }
    }

    #[test]
    fn xerial_framing_has_the_java_header() {
        let z = Compression::Snappy.compress(b"hello").unwrap();
        assert_eq!(&z[..8], XERIAL_MAGIC);
        assert_eq!(&z[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // Raw snappy without the framing is accepted too.
        let raw = snap::raw::Encoder::new().compress_vec(b"hello").unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw, 100).unwrap(), b"hello");
    }

    #[test]
    fn lz4_frames_use_independent_64k_blocks() {
        let z = Compression::Lz4.compress(&[7u8; 200_000]).unwrap();
        assert_eq!(&z[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        // FLG: version 01 and the block-independence bit; BD: 64 KiB maximum block size.
        assert_eq!(z[4] & 0xe0, 0x60);
        assert_eq!(z[5], 0x40);
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut z = Compression::Gzip.compress(b"first ").unwrap();
        z.extend(Compression::Gzip.compress(b"second").unwrap());
        assert_eq!(
            Compression::Gzip.decompress(&z, 100).unwrap(),
            b"first second"
        );
    }

    #[test]
    fn xerial_chunks_are_bounded_by_input_and_limit() {
        let z = Compression::Snappy.compress(&[1u8; 100_000]).unwrap();
        // Four chunks of up to 32 KiB: the limit is enforced across chunks, not per chunk.
        assert!(Compression::Snappy.decompress(&z, 99_999).is_err());
        assert_eq!(
            Compression::Snappy.decompress(&z, 100_000).unwrap().len(),
            100_000
        );
        // A chunk length beyond the remaining input is refused before anything is read.
        let mut bad = z[..XERIAL_HEADER_LEN].to_vec();
        bad.extend_from_slice(&1_000_000i32.to_be_bytes());
        bad.extend_from_slice(&z[XERIAL_HEADER_LEN + 4..]);
        assert!(Compression::Snappy.decompress(&bad, 1 << 20).is_err());
        assert!(Compression::Snappy
            .decompress(&z[..z.len() - 1], 1 << 20)
            .is_err());
    }

    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
        ] {
            let z = c.compress(&zeros).unwrap();
            assert!(z.len() < 4 << 20);
            assert!(c.decompress(&z, 1 << 20).is_err(), "{c:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in Compression::ALL {
            let _ = c.decompress(
                &[
                    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x7f,
                    0xff, 0xff, 0xff,
                ],
                1000,
            );
            let _ = c.decompress(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 1000);
        }
    }
}
