//! The in-memory key-value store (a BTreeMap over bytes) and its supplier, the default store
//! of every aggregation and table; its changelog is what makes it survive a restart.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::{KeyValueStore, KvIter, StateStore, StoreContext, StoreError, StoreSupplier};

#[derive(Debug, Default)]
pub struct InMemoryKeyValueStore {
    name: String,
    map: BTreeMap<Bytes, Bytes>,
}

impl InMemoryKeyValueStore {
    pub fn new(name: impl Into<String>) -> InMemoryKeyValueStore {
        InMemoryKeyValueStore {
            name: name.into(),
            map: BTreeMap::new(),
        }
    }
}

impl StateStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        false
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn restore(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.map.insert(key, v),
            None => self.map.remove(&key),
        };
        Ok(())
    }
    fn as_key_value(&mut self) -> Option<&mut dyn KeyValueStore> {
        Some(self)
    }
    fn as_key_value_ref(&self) -> Option<&dyn KeyValueStore> {
        Some(self)
    }
}

/// Whether a range has no keys; BTreeMap::range panics on such bounds instead.
pub(super) fn is_empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    use Bound::*;
    match (from, to) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

impl KeyValueStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.map.insert(key, value);
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.map.remove(key))
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KvIter<'_>, StoreError> {
        if is_empty_range(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        Ok(Box::new(
            self.map
                .range::<[u8], _>((from, to))
                .map(|(k, v)| Ok((k.clone(), v.clone()))),
        ))
    }
    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        Ok(self.map.len() as u64)
    }
}

/// Supplies a fresh in-memory store per task.
#[derive(Debug, Clone)]
pub struct InMemoryStoreSupplier {
    name: String,
}

impl InMemoryStoreSupplier {
    pub fn new(name: impl Into<String>) -> InMemoryStoreSupplier {
        InMemoryStoreSupplier { name: name.into() }
    }
}

impl StoreSupplier for InMemoryStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn build(&self, _ctx: &StoreContext) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(InMemoryKeyValueStore::new(self.name.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn put_get_delete_and_ordered_ranges() {
        let mut s = InMemoryKeyValueStore::new("s");
        for k in ["b", "a", "d", "c"] {
            s.put(b(k), b(&k.to_uppercase())).unwrap();
        }
        assert_eq!(s.get(b"c").unwrap(), Some(b("C")));
        assert_eq!(s.delete(b"c").unwrap(), Some(b("C")));
        assert_eq!(s.get(b"c").unwrap(), None);
        let keys = |it: KvIter<'_>| -> Vec<Bytes> { it.map(|r| r.unwrap().0).collect() };
        assert_eq!(keys(s.all().unwrap()), vec![b("a"), b("b"), b("d")]);
        let r = s
            .range(Bound::Included(b"b"), Bound::Included(b"d"))
            .unwrap();
        assert_eq!(keys(r), vec![b("b"), b("d")]);
        let r = s
            .range(Bound::Included(b"d"), Bound::Excluded(b"a"))
            .unwrap();
        assert!(keys(r).is_empty());
        assert_eq!(s.approximate_num_entries().unwrap(), 3);
    }
}
