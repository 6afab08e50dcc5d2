//! Each call's own random numbers: its service draws come from a stream of
//! its own, named by the run's seed, the call's number (its place in the
//! order its source sent calls) and its attempt, never from a stream that
//! every call of the run takes from in event order.
//!
//! Why (both are about numbers a researcher can trust):
//!
//! - **Common random numbers.** A call's draw is the same under every
//!   algorithm, node count or keep-alive policy (scaled by its warm or cold
//!   mean): two configurations compared on one workload differ by what
//!   they do, not by which calls happened to take which numbers from a
//!   shared stream. This is the textbook variance reduction for comparing
//!   simulated systems (Law, *Simulation Modeling and Analysis*, 5th ed.,
//!   §11.2, "common random numbers").
//! - **Order independence.** The draws do not depend on the order in which
//!   events are handled, so the engine may simulate nodes apart (the
//!   partitioned run of [`crate::engine`]) and find the very numbers the
//!   one-queue run finds.
//!
//! The generator is SplitMix64 (Steele, Lea & Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014): a Weyl sequence through
//! a 64-bit finalizer, whose outputs pass BigCrush. A stream's first state
//! is the finalizer applied to the seed's key, the call's number and its
//! attempt; streams of different calls start far apart in the Weyl
//! sequence with overwhelming probability, and a call takes one or two
//! numbers from its own.

use rand::RngCore;

/// The Weyl sequence's increment (2^64 / golden ratio, odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "Mix13" finalizer).
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of a run's streams, from its seed.
#[inline]
pub fn run_key(seed: u64) -> u64 {
    mix64(seed ^ 0x5DE5_1A7E_D0C5_EED5)
}

/// The random numbers of one attempt of one call.
#[derive(Debug, Clone)]
pub struct CallStream {
    state: u64,
}

impl CallStream {
    /// The stream of attempt `attempt` (0 for the first) of call number
    /// `call` in a run whose key is `key` ([`run_key`]).
    #[inline]
    pub fn new(key: u64, call: u64, attempt: u32) -> Self {
        let state = mix64(key ^ mix64(call.wrapping_mul(GAMMA) ^ u64::from(attempt)));
        Self { state }
    }
}

impl RngCore for CallStream {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use rand_distr::{Distribution, Exp1};

    use super::*;

    #[test]
    fn the_first_outputs_are_splitmix64s() {
        // SplitMix64 from state 0 (the reference C code, `x += GAMMA`
        // then the finalizer): the first outputs are these.
        let mut s = CallStream { state: 0 };
        assert_eq!(s.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(s.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(s.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn a_stream_depends_on_the_key_the_call_and_the_attempt_only() {
        let key = run_key(7);
        let first = |k: u64, call: u64, attempt: u32| CallStream::new(k, call, attempt).next_u64();
        assert_eq!(first(key, 12, 0), first(key, 12, 0));
        assert_ne!(first(key, 12, 0), first(key, 13, 0));
        assert_ne!(first(key, 12, 0), first(key, 12, 1));
        assert_ne!(first(key, 12, 0), first(run_key(8), 12, 0));
    }

    #[test]
    fn draws_over_many_calls_have_the_distributions_moments() {
        // One uniform and one exponential per call, over 200,000 calls:
        // means 1/2 and 1 (standard errors 0.00065 and 0.0022), and no
        // correlation between neighbouring calls' uniforms.
        let key = run_key(42);
        let n = 200_000u64;
        let (mut su, mut se, mut suu) = (0.0f64, 0.0f64, 0.0f64);
        let mut last = 0.5;
        for call in 0..n {
            let mut s = CallStream::new(key, call, 0);
            let u: f64 = s.gen();
            let e: f64 = Exp1.sample(&mut s);
            su += u;
            se += e;
            suu += (u - 0.5) * (last - 0.5);
            last = u;
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.004, "uniform mean {}", su / n);
        assert!((se / n - 1.0).abs() < 0.012, "exponential mean {}", se / n);
        // Correlation of neighbours: covariance over variance (1/12).
        let corr = suu / n * 12.0;
        assert!(corr.abs() < 0.012, "lag-1 correlation {corr}");
    }

    #[test]
    fn bytes_come_from_the_same_numbers() {
        let mut a = CallStream::new(1, 2, 3);
        let mut b = a.clone();
        let mut bytes = [0u8; 12];
        a.fill_bytes(&mut bytes);
        let x = b.next_u64().to_le_bytes();
        let y = b.next_u64().to_le_bytes();
        assert_eq!(bytes[..8], x);
        assert_eq!(bytes[8..], y[..4]);
    }
}
