//! Window definitions (tumbling and hopping `TimeWindows`, `SessionWindows`), the `Windowed<K>`
//! key of a windowed aggregate, and serdes laying windowed keys out as Kafka's serializers do.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::Data;
use crate::serdes::{Serde, SerdeError};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time interval: `[start, end)` for time windows; for sessions both ends are record
/// timestamps and `end` is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Window {
        Window { start, end }
    }
}

/// A key of a windowed aggregate: the record key and the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    pub key: K,
    pub window: Window,
}

impl<K> Windowed<K> {
    pub fn new(key: K, window: Window) -> Windowed<K> {
        Windowed { key, window }
    }
}

/// Fixed-size windows aligned to the epoch: tumbling when `advance == size`, hopping
/// (overlapping) when `advance < size`. A record is accepted into a window until stream time
/// reaches the window's end plus `grace`; later ones are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size_ms: i64,
    pub(crate) advance_ms: i64,
    pub(crate) grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that close as soon as stream time passes their end.
    pub fn of_size_with_no_grace(size: Duration) -> TimeWindows {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that still accept records `grace` after their end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> TimeWindows {
        let size_ms = ms(size);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: ms(grace),
        }
    }

    /// Hopping windows: a new window starts every `advance` (which must be positive and at
    /// most the size; `validate` reports otherwise when the topology is built).
    pub fn advance_by(self, advance: Duration) -> TimeWindows {
        TimeWindows {
            advance_ms: ms(advance),
            ..self
        }
    }

    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size_ms <= 0 {
            return Err(format!(
                "window size must be positive, got {} ms",
                self.size_ms
            ));
        }
        if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            return Err(format!(
                "window advance must be in (0, size = {}] ms, got {} ms",
                self.size_ms, self.advance_ms
            ));
        }
        Ok(())
    }

    /// The windows containing `timestamp`, oldest first: every start that is a multiple of
    /// the advance in `(timestamp - size, timestamp]`, never before 0.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let first = (timestamp - self.size_ms + self.advance_ms).max(0);
        let mut start = first - first % self.advance_ms;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window::new(start, start.saturating_add(self.size_ms)));
            // A timestamp near i64::MAX (bad input) must not wrap the start around.
            match start.checked_add(self.advance_ms) {
                Some(next) => start = next,
                None => break,
            }
        }
        out
    }
}

/// Sessions per key: records closer than `gap` to each other fall into one session; a record
/// bridging two sessions merges them. Grace works as for `TimeWindows`, from a session's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap_ms: i64,
    pub(crate) grace_ms: i64,
}

impl SessionWindows {
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> SessionWindows {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> SessionWindows {
        SessionWindows {
            gap_ms: ms(gap),
            grace_ms: ms(grace),
        }
    }

    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.gap_ms <= 0 {
            return Err(format!(
                "session inactivity gap must be positive, got {} ms",
                self.gap_ms
            ));
        }
        Ok(())
    }
}

fn read_i64(d: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(d[at..at + 8].try_into().expect("8 bytes"))
}

fn inner_key<K: 'static>(inner: &dyn Serde<K>, topic: &str, key: &K) -> Result<Bytes, SerdeError> {
    inner
        .serialize(topic, key)?
        .ok_or_else(|| SerdeError::Invalid("a windowed key cannot be null".to_string()))
}

/// `Windowed<K>` of time windows as Kafka's TimeWindowedSerializer writes it: the key's bytes,
/// then the window start as an 8-byte big-endian long. The end is not written; reading takes
/// it as start + the window size given here.
pub struct TimeWindowedSerde<K> {
    inner: Arc<dyn Serde<K>>,
    size_ms: i64,
}

impl<K: Data> TimeWindowedSerde<K> {
    pub fn new(inner: impl Serde<K>, window_size: Duration) -> Self {
        Self::from_arc(Arc::new(inner), ms(window_size))
    }

    pub(crate) fn from_arc(inner: Arc<dyn Serde<K>>, size_ms: i64) -> Self {
        TimeWindowedSerde { inner, size_ms }
    }
}

impl<K: Data> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, topic: &str, v: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let k = inner_key(&*self.inner, topic, &v.key)?;
        let mut b = BytesMut::with_capacity(k.len() + 8);
        b.put_slice(&k);
        b.put_i64(v.window.start);
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let d = data.ok_or(SerdeError::Null("Windowed"))?;
        if d.len() < 8 {
            return Err(SerdeError::Invalid(format!(
                "time-windowed key of {} bytes is shorter than its 8-byte start",
                d.len()
            )));
        }
        let split = d.len() - 8;
        let start = read_i64(d, split);
        let key = self.inner.deserialize(topic, Some(&d[..split]))?;
        Ok(Windowed::new(
            key,
            Window::new(start, start.saturating_add(self.size_ms)),
        ))
    }
}

/// `Windowed<K>` of sessions as Kafka's SessionWindowedSerializer writes it: the key's bytes,
/// then the session end and the session start, each an 8-byte big-endian long.
pub struct SessionWindowedSerde<K> {
    inner: Arc<dyn Serde<K>>,
}

impl<K: Data> SessionWindowedSerde<K> {
    pub fn new(inner: impl Serde<K>) -> Self {
        Self::from_arc(Arc::new(inner))
    }

    pub(crate) fn from_arc(inner: Arc<dyn Serde<K>>) -> Self {
        SessionWindowedSerde { inner }
    }
}

impl<K: Data> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, topic: &str, v: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let k = inner_key(&*self.inner, topic, &v.key)?;
        Ok(Some(session_key(&k, v.window)))
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let d = data.ok_or(SerdeError::Null("Windowed"))?;
        let (k, w) = split_session_key(d).ok_or_else(|| {
            SerdeError::Invalid(format!(
                "session-windowed key of {} bytes is shorter than its end and start",
                d.len()
            ))
        })?;
        Ok(Windowed::new(self.inner.deserialize(topic, Some(k))?, w))
    }
}

/// Key bytes, session end, session start (the layout of session changelog keys too).
pub(crate) fn session_key(key: &[u8], w: Window) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 16);
    b.put_slice(key);
    b.put_i64(w.end);
    b.put_i64(w.start);
    b.freeze()
}

pub(crate) fn split_session_key(d: &[u8]) -> Option<(&[u8], Window)> {
    let split = d.len().checked_sub(16)?;
    Some((
        &d[..split],
        Window::new(read_i64(d, split + 8), read_i64(d, split)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::StringSerde;

    #[test]
    fn tumbling_and_hopping_windows_for_a_timestamp() {
        let t = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
        assert_eq!(t.windows_for(59_999), vec![Window::new(0, 60_000)]);
        assert_eq!(t.windows_for(60_000), vec![Window::new(60_000, 120_000)]);
        let h = t.advance_by(Duration::from_secs(20));
        assert_eq!(
            h.windows_for(65_000),
            vec![
                Window::new(20_000, 80_000),
                Window::new(40_000, 100_000),
                Window::new(60_000, 120_000)
            ]
        );
        // Near the epoch no window starts before 0.
        assert_eq!(h.windows_for(5_000), vec![Window::new(0, 60_000)]);
        assert!(h.validate().is_ok());
        assert!(t.advance_by(Duration::from_secs(61)).validate().is_err());
        assert!(t.advance_by(Duration::ZERO).validate().is_err());
    }

    #[test]
    fn a_timestamp_at_the_end_of_time_gets_its_windows_and_no_more() {
        let t = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
        for ts in [i64::MAX, i64::MAX - 1] {
            let w = t.windows_for(ts);
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(w[0].start <= ts && ts <= w[0].end);
        }
        let h = t.advance_by(Duration::from_secs(20));
        assert_eq!(h.windows_for(i64::MAX).len(), 3);
    }

    #[test]
    fn windowed_keys_are_laid_out_as_kafka_writes_them() {
        let s = TimeWindowedSerde::new(StringSerde, Duration::from_secs(60));
        let w = Windowed::new("ab".to_string(), Window::new(60_000, 120_000));
        let b = s.serialize("t", &w).unwrap().unwrap();
        assert_eq!(&b[..], &[b'a', b'b', 0, 0, 0, 0, 0, 0, 0xea, 0x60]);
        assert_eq!(s.deserialize("t", Some(&b)).unwrap(), w);

        let s = SessionWindowedSerde::new(StringSerde);
        let w = Windowed::new("k".to_string(), Window::new(1, 2));
        let b = s.serialize("t", &w).unwrap().unwrap();
        assert_eq!(
            &b[..],
            &[b'k', 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(s.deserialize("t", Some(&b)).unwrap(), w);
        assert!(s.deserialize("t", Some(b"short")).is_err());
    }
}
