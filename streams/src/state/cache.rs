//! A store's record cache (Kafka's `cache.max.bytes.buffering`): the latest write of each key
//! held back between commits, so a busy key costs one store write, changelog record and update.
//!
//! The cache holds the store's own bytes (timestamp prefix included for timestamped stores),
//! `None` for a delete; reads through a store handle see it first. `TaskStores` passes the
//! writes on at a flush (a commit, or the task's cache budget running out).

use std::collections::HashMap;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use super::{KvIter, StoreError};

/// What an entry costs beyond its key and value bytes (map node, `Bytes` handles): a rough
/// figure, as Kafka's, so that many small entries still count against the budget.
const ENTRY_OVERHEAD: usize = 64;

/// One held-back write: the bytes the store will get (`None` deletes) and the timestamp of its
/// changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedWrite {
    pub value: Option<Bytes>,
    pub timestamp: i64,
}

/// Hashed, not ordered: every record looks a key up, while a flush needs the order of the
/// writes and the rare range read over a cached store key order, and they sort what they take.
#[derive(Debug, Default)]
pub(crate) struct RecordCache {
    /// Each key's latest write, with the sequence number of that write.
    dirty: HashMap<Bytes, (u64, CachedWrite)>,
    next_seq: u64,
    bytes: usize,
}

fn cost(key: &[u8], w: &CachedWrite) -> usize {
    key.len() + w.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

impl RecordCache {
    /// The write held for `key`: `Some(None)` when it is a delete, `None` when the cache has
    /// nothing to say and the store must be asked.
    pub fn get(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.dirty.get(key).map(|(_, w)| w.value.as_ref())
    }

    pub fn put(&mut self, key: Bytes, write: CachedWrite) {
        let added = cost(&key, &write);
        if let Some((_, old)) = self.dirty.get(&key[..]) {
            self.bytes -= cost(&key, old);
        }
        self.bytes += added;
        self.next_seq += 1;
        self.dirty.insert(key, (self.next_seq, write));
    }

    /// Bytes held, as counted against the task's budget.
    pub fn size(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Takes every held write, in the order the keys were last written (as Kafka's cache
    /// evicts, least recently written first): a window store applies them as it would have
    /// without the cache, its retention moving on with the windows in that order.
    pub fn drain(&mut self) -> Vec<(Bytes, CachedWrite)> {
        self.bytes = 0;
        let mut held: Vec<(Bytes, (u64, CachedWrite))> = self.dirty.drain().collect();
        held.sort_unstable_by_key(|(_, (seq, _))| *seq);
        held.into_iter().map(|(k, (_, w))| (k, w)).collect()
    }

    /// A range of the store as it will be once the cache is flushed: the store's entries
    /// overlaid with the held writes (deletes hide entries), in ascending key order.
    pub fn overlay<'a>(
        &'a self,
        store: KvIter<'a>,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> KvIter<'a> {
        let mut held: Vec<(Bytes, Option<Bytes>)> = self
            .dirty
            .iter()
            .filter(|(k, _)| RangeBounds::<[u8]>::contains(&(from, to), &k[..]))
            .map(|(k, (_, w))| (k.clone(), w.value.clone()))
            .collect();
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Box::new(Overlay {
            store: store.peekable(),
            held: held.into_iter().peekable(),
        })
    }
}

/// Merges two ascending iterators of one key space; the held side wins on equal keys.
struct Overlay<'a, H: Iterator<Item = (Bytes, Option<Bytes>)>> {
    store: Peekable<KvIter<'a>>,
    held: Peekable<H>,
}

impl<H: Iterator<Item = (Bytes, Option<Bytes>)>> Iterator for Overlay<'_, H> {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.store.peek(), self.held.peek()) {
                (None, None) => return None,
                // An error from the store is passed on at once.
                (Some(Err(_)), _) | (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((sk, _))), Some((hk, _))) => sk.cmp(hk),
            };
            let held = match order {
                std::cmp::Ordering::Less => return self.store.next(),
                std::cmp::Ordering::Greater => self.held.next(),
                std::cmp::Ordering::Equal => {
                    self.store.next();
                    self.held.next()
                }
            };
            if let Some((k, Some(v))) = held {
                return Some(Ok((k, v)));
            }
            // A held delete: the key is gone, look at the next one.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn write(v: Option<&str>) -> CachedWrite {
        CachedWrite {
            value: v.map(b),
            timestamp: 1,
        }
    }

    #[test]
    fn a_rewrite_replaces_the_entry_and_its_cost() {
        let mut c = RecordCache::default();
        c.put(b("k"), write(Some("aaaa")));
        let first = c.size();
        c.put(b("k"), write(Some("aa")));
        assert_eq!(c.size(), first - 2);
        assert_eq!(c.get(b"k"), Some(Some(&b("aa"))));
        c.put(b("k"), write(None));
        assert_eq!(c.get(b"k"), Some(None));
        assert_eq!(c.get(b"other"), None);
        c.put(b("a"), write(Some("later")));
        let drained: Vec<Bytes> = c.drain().into_iter().map(|(k, _)| k).collect();
        assert_eq!(drained, vec![b("k"), b("a")], "in the order last written");
        assert_eq!(c.size(), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn overlay_merges_in_key_order_and_hides_deletes() {
        let store: Vec<Result<(Bytes, Bytes), StoreError>> = ["a", "c", "e", "g"]
            .iter()
            .map(|k| Ok((b(k), b("store"))))
            .collect();
        let mut c = RecordCache::default();
        c.put(b("b"), write(Some("held")));
        c.put(b("c"), write(Some("held")));
        c.put(b("e"), write(None));
        c.put(b("h"), write(Some("held")));
        let all: Vec<(Bytes, Bytes)> = c
            .overlay(
                Box::new(store.clone().into_iter()),
                Bound::Unbounded,
                Bound::Unbounded,
            )
            .map(Result::unwrap)
            .collect();
        let shown: Vec<String> = all
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        assert_eq!(
            shown,
            ["a=store", "b=held", "c=held", "g=store", "h=held"].map(String::from)
        );
        // The cache side is cut to the range; the store side is the store's own range.
        let ranged: Vec<Bytes> = c
            .overlay(
                Box::new(store.into_iter().filter(|e| {
                    let k = &e.as_ref().unwrap().0;
                    k[..] >= b"b"[..] && k[..] < b"g"[..]
                })),
                Bound::Included(&b"b"[..]),
                Bound::Excluded(&b"g"[..]),
            )
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(ranged, vec![b("b"), b("c")]);
    }
}
