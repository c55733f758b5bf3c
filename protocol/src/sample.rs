//! Random values of any wire type, for the round-trip tests over every version.
//! Test-only: a small deterministic generator so a failing seed can be replayed.

use bytes::Bytes;

use crate::wire::Uuid;

/// SplitMix64: tiny, deterministic, good enough to vary field values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub trait Sample {
    fn sample(rng: &mut Rng) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(rng: &mut Rng) -> Self {
                // Mostly small values, sometimes extremes, so defaults and edges both appear.
                match rng.below(4) {
                    0 => 0 as $t,
                    1 => <$t>::MAX,
                    _ => rng.next_u64() as $t,
                }
            }
        }
    )*};
}
sample_int!(i8, i16, i32, i64, u16, u32);

impl Sample for f64 {
    fn sample(rng: &mut Rng) -> Self {
        (rng.below(1000) as f64) / 7.0
    }
}

impl Sample for bool {
    fn sample(rng: &mut Rng) -> Self {
        rng.below(2) == 1
    }
}

impl Sample for String {
    fn sample(rng: &mut Rng) -> Self {
        let n = rng.below(8) as usize;
        (0..n)
            .map(|_| ['a', 'z', '-', '.', 'é', '漢'][rng.below(6) as usize])
            .collect()
    }
}

impl Sample for Bytes {
    fn sample(rng: &mut Rng) -> Self {
        let n = rng.below(8) as usize;
        Bytes::from((0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>())
    }
}

impl Sample for Uuid {
    fn sample(rng: &mut Rng) -> Self {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
        Uuid(id)
    }
}

impl<T: Sample> Sample for Option<T> {
    fn sample(rng: &mut Rng) -> Self {
        if rng.below(4) == 0 {
            None
        } else {
            Some(T::sample(rng))
        }
    }
}

impl<T: Sample> Sample for Vec<T> {
    fn sample(rng: &mut Rng) -> Self {
        let n = rng.below(4) as usize;
        (0..n).map(|_| T::sample(rng)).collect()
    }
}
