//! Jump consistent hash and the SipHash-2-4 key hash of `fnlb`.
//!
//! [`jump_consistent_hash`] is the algorithm of Lamping & Veach, "A Fast,
//! Minimal Memory, Consistent Hash Algorithm" (2014, arXiv:1406.2294): a
//! 64-bit key and a bucket count `n` give a bucket in `0..n`, such that
//! growing `n` to `n + 1` moves only a `1/(n + 1)` share of the keys, all of
//! them to the new bucket. It needs no table; the loop runs `O(ln n)` times.
//! Its test vectors are those of the Go package github.com/dgryski/go-jump
//! (`jump_test.go`, "generated from the reference C++ code").
//!
//! [`siphash24`] is SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
//! short-input PRF", 2012) with a 128-bit key given as two little-endian
//! words, as the Go package github.com/dchest/siphash's `Hash(k0, k1, b)`
//! that fnlb (fnproject/lb, `lib/ch.go`) uses to turn a function name into
//! the jump hash's key. It is tested against the paper's Appendix A vector
//! and against the standard library's (deprecated) `SipHasher`, which is
//! SipHash-2-4 too.

/// The bucket in `0..buckets` of `key` (0 when `buckets` is 0 or 1).
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) * 2^31 / ((key >> 33) + 1), in floating point as the paper.
        let scale = (1u64 << 31) as f64 / ((key >> 33) + 1) as f64;
        next = ((bucket + 1) as f64 * scale) as i64;
    }
    bucket.max(0) as u32
}

/// SipHash-2-4 of `data` under the key `(k0, k1)`.
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        compress(&mut v, u64::from_le_bytes(word), 2);
    }
    // The last word: the remaining bytes, and the length's low byte on top.
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    compress(&mut v, u64::from_le_bytes(last), 2);
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Absorbs one message word with `rounds` SipRounds.
fn compress(v: &mut [u64; 4], word: u64, rounds: u32) {
    v[3] ^= word;
    for _ in 0..rounds {
        sip_round(v);
    }
    v[0] ^= word;
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_matches_the_reference_vectors() {
        // github.com/dgryski/go-jump, jump_test.go: buckets for n = 1, 2, ...
        let vectors: [(u64, &[u32]); 4] = [
            (0, &[0; 20]),
            (
                1,
                &[0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17],
            ),
            (
                0xdead_beef,
                &[0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16],
            ),
            (
                0x0ddc_0ffe_ebad_f00d,
                &[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15],
            ),
        ];
        for (key, buckets) in vectors {
            for (i, &want) in buckets.iter().enumerate() {
                let n = i as u32 + 1;
                assert_eq!(jump_consistent_hash(key, n), want, "key {key:#x}, n {n}");
            }
        }
        assert_eq!(jump_consistent_hash(42, 0), 0);
    }

    #[test]
    fn jump_hash_moves_keys_only_to_a_new_bucket() {
        for key in 0..2000u64 {
            let key = siphash24(1, 2, &key.to_le_bytes());
            for n in 1..40 {
                let (a, b) = (
                    jump_consistent_hash(key, n),
                    jump_consistent_hash(key, n + 1),
                );
                assert!(a < n && b <= n);
                assert!(a == b || b == n, "key {key}: {a} -> {b} at n {n}");
            }
        }
    }

    #[test]
    fn siphash_matches_the_paper_and_the_standard_library() {
        // SipHash paper, Appendix A: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &message), 0xa129_ca61_49be_45e5);
        #[allow(deprecated)]
        for len in 0..40usize {
            use std::hash::Hasher;
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut std = std::hash::SipHasher::new_with_keys(0, 0x4c61_7279_426f_6174);
            std.write(&data);
            assert_eq!(
                siphash24(0, 0x4c61_7279_426f_6174, &data),
                std.finish(),
                "{len} bytes"
            );
        }
    }
}
