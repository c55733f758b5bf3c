//! Where a record goes. Keyed records hash like the Java client's (murmur2), so Java,
//! librdkafka (murmur2_random) and Sluice producers agree; keyless ones stick to a partition
//! until about a batch's worth went there (KIP-480, KIP-794), which fills batches and still
//! spreads load.

use std::hash::{BuildHasher, Hasher};

use crate::cluster::TopicInfo;

/// Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed 0x9747b28c, over the key bytes, with
/// Java's signed arithmetic (wrapping; `>>>` is a logical shift, hence the u32 working type).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= (*b as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partitions`: Java's `toPositive(murmur2(key)) % n`.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    partition_for_hash(murmur2(key), partitions)
}

/// `partition_for_key` for a key hashed already (before a lock, say).
pub(crate) fn partition_for_hash(hash: i32, partitions: usize) -> i32 {
    ((hash & 0x7fff_ffff) as u32 % partitions as u32) as i32
}

/// xorshift64: it only spreads partitions, so it need not be a real generator.
pub(crate) struct Spread(u64);

impl Spread {
    pub(crate) fn new() -> Spread {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Spread(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
}

/// The sticky partition of one topic and what has been sent to it since it was chosen. It
/// takes no lock of its own: the producer keeps one per topic under the accumulator's lock.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    partition: Option<i32>,
    bytes: usize,
}

impl Sticky {
    /// The partition for the next record without a usable key; `add` counts it once sent there.
    pub(crate) fn current(
        &mut self,
        topic: &TopicInfo,
        batch_size: usize,
        spread: &mut Spread,
    ) -> i32 {
        let count = topic.partitions.len() as i32;
        match self.partition {
            Some(p) if self.bytes < batch_size && p < count => p,
            previous => {
                let p = choose(topic, previous, spread);
                self.partition = Some(p);
                self.bytes = 0;
                p
            }
        }
    }

    pub(crate) fn add(&mut self, size: usize) {
        self.bytes += size;
    }
}

/// A partition with a leader, other than `previous` when there is a choice; any partition when
/// none has a leader (the sender waits for one).
fn choose(topic: &TopicInfo, previous: Option<i32>, spread: &mut Spread) -> i32 {
    let led: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| p.partition)
        .collect();
    let candidates: Vec<i32> = if led.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        led
    };
    let others: Vec<i32> = candidates
        .iter()
        .copied()
        .filter(|p| Some(*p) != previous)
        .collect();
    let pool = if others.is_empty() {
        &candidates
    } else {
        &others
    };
    pool[(spread.next() % pool.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
    use sluice_protocol::wire::Uuid;
    use sluice_protocol::ErrorCode;

    #[test]
    fn murmur2_matches_kafkas_utils_test() {
        // The vectors of UtilsTest.testMurmur2 in Apache Kafka's clients module.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_the_positive_hash_modulo_the_count() {
        // -790332482 & 0x7fffffff = 1357151166
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        assert_eq!(partition_for_key(b"foobar", 3), 1_357_151_166 % 3);
        for n in 1..20 {
            assert!((0..n as i32).contains(&partition_for_key(b"21", n)));
        }
    }

    fn topic(leaders: &[i32]) -> TopicInfo {
        TopicInfo {
            name: "t".into(),
            id: Uuid::ZERO,
            internal: false,
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, &leader)| PartitionInfo {
                    partition: i as i32,
                    leader,
                    leader_epoch: 0,
                    replicas: vec![],
                    isr: vec![],
                    error: ErrorCode::None,
                })
                .collect(),
        }
    }

    #[test]
    fn sticks_until_a_batch_worth_then_moves_to_a_led_partition() {
        let (mut sticky, mut spread) = (Sticky::default(), Spread::new());
        let mut next = |t: &TopicInfo, size: usize| {
            let p = sticky.current(t, 100, &mut spread);
            sticky.add(size);
            p
        };
        let t = topic(&[1, -1, 1, 1]);
        let first = next(&t, 40);
        assert_ne!(first, 1, "partition 1 has no leader");
        assert_eq!(next(&t, 40), first);
        assert_eq!(next(&t, 40), first);
        // 120 bytes went to `first`: the next record moves on.
        let second = next(&t, 40);
        assert_ne!(second, first);
        assert_ne!(second, 1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(next(&t, 100));
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(!seen.contains(&1));
    }
}
