//! Size-prefixed framing: every Kafka request and response is an int32 size, then that many bytes.
//! The size is checked against the limit before a single byte of the body is buffered.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};

/// Splits one complete frame off the front of `buf`, without its size prefix.
/// `Ok(None)` means more bytes are needed; an error means the stream is unusable and the
/// connection should be closed. On `Ok(None)` the caller may reserve the returned hint.
pub fn split_frame(buf: &mut BytesMut, max_size: usize) -> Result<Option<Bytes>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(ProtocolError::InvalidLength(size as i64));
    }
    if size as usize > max_size {
        return Err(ProtocolError::FrameTooLarge {
            size: size as i64,
            max: max_size,
        });
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

/// How many more bytes the frame at the front of `buf` needs (after `split_frame` said `None`).
pub fn bytes_wanted(buf: &BytesMut) -> usize {
    if buf.len() < 4 {
        return 4 - buf.len();
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]).max(0) as usize;
    (4 + size).saturating_sub(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_frames_only() {
        let mut b = BytesMut::from(&[0, 0, 0, 3, 1, 2][..]);
        assert_eq!(split_frame(&mut b, 100).unwrap(), None);
        assert_eq!(bytes_wanted(&b), 1);
        b.extend_from_slice(&[3, 0, 0]);
        assert_eq!(&split_frame(&mut b, 100).unwrap().unwrap()[..], &[1, 2, 3]);
        assert_eq!(&b[..], &[0, 0]);
    }

    #[test]
    fn rejects_negative_and_oversized_before_buffering() {
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(matches!(
            split_frame(&mut b, 100),
            Err(ProtocolError::InvalidLength(-2))
        ));
        let mut b = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            split_frame(&mut b, 100),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
}
