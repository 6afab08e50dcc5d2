//! A seeded, deterministic mutator of text files (issue 13, part 5): the
//! stable-toolchain half of the fuzzing, so that `cargo test` alone checks
//! that hostile scenarios and logs are errors, never panics. The fuzz
//! targets under `fuzz/` explore further with libFuzzer; this keeps a fixed
//! sample in every test run.
//!
//! The mutations are those a careless hand, a broken disk or a hostile
//! file produce: bit flips, inserted and deleted bytes, numbers replaced
//! by the integer extremes or by `NaN`/`inf`, byte-order marks, very long
//! fields, NUL bytes and invalid UTF-8, duplicated or truncated lines, and
//! one line moved far away in time.
//!
//! The generator is SplitMix64 (Steele, Lea & Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014): a few lines, no crate,
//! the same stream on every machine.

#![allow(dead_code)] // each test binary uses a part

/// SplitMix64: a seeded stream of 64-bit values.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`; the slight modulo bias does not matter
    /// here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that have broken parsers: integer extremes, floats that are not
/// numbers, numbers beyond every integer type, and signs where none belong.
pub const HOSTILE_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "4294967295",
    "4294967296",
    "2147483647",
    "-1",
    "-0",
    "0",
    "1e308",
    "1e-300",
    "-1e308",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1.5",
    "0x10",
    "99999999999999999999999999999999999999",
    "9007199254740993",
    "",
];

/// Byte strings inserted whole.
const HOSTILE_INSERTS: &[&[u8]] = &[
    "\u{feff}".as_bytes(),
    b"\0",
    b"\xff\xfe",
    b"\xc3",
    b"\r",
    b"\n",
    b",",
    b" ",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"%",
    b"\t",
];

/// What one mutation did, for failure messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    FlipBit,
    InsertByte,
    InsertHostile,
    DeleteRange,
    HostileNumber,
    LeadingBom,
    LongField,
    DuplicateLine,
    DeleteLine,
    Truncate,
    FarInTime,
    SwapFields,
}

const ALL: [Mutation; 12] = [
    Mutation::FlipBit,
    Mutation::InsertByte,
    Mutation::InsertHostile,
    Mutation::DeleteRange,
    Mutation::HostileNumber,
    Mutation::LeadingBom,
    Mutation::LongField,
    Mutation::DuplicateLine,
    Mutation::DeleteLine,
    Mutation::Truncate,
    Mutation::FarInTime,
    Mutation::SwapFields,
];

/// Start and end (exclusive) of each line of `bytes`, without its `\n`.
fn lines(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}

/// Ranges of ASCII digit runs (with a leading `-`) in `bytes`.
fn numbers(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = if i > 0 && bytes[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            let mut end = i;
            while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
                end += 1;
            }
            out.push((start, end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Applies one mutation to `bytes`.
pub fn apply(rng: &mut SplitMix64, bytes: &mut Vec<u8>, m: Mutation) {
    let len = bytes.len();
    match m {
        Mutation::FlipBit if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        Mutation::InsertByte => {
            let i = rng.below(len + 1);
            bytes.insert(i, rng.next_u64() as u8);
        }
        Mutation::InsertHostile => {
            let i = rng.below(len + 1);
            let what = rng.pick(HOSTILE_INSERTS);
            bytes.splice(i..i, what.iter().copied());
        }
        Mutation::DeleteRange if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(16.min(len - i));
            bytes.drain(i..i + n);
        }
        Mutation::HostileNumber => {
            let spans = numbers(bytes);
            if spans.is_empty() {
                return;
            }
            let (s, e) = *rng.pick(&spans);
            let value = rng.pick(HOSTILE_NUMBERS).as_bytes();
            bytes.splice(s..e, value.iter().copied());
        }
        Mutation::LeadingBom => {
            bytes.splice(0..0, "\u{feff}".bytes());
        }
        Mutation::LongField => {
            let i = rng.below(len + 1);
            let n = 1_000 + rng.below(200_000);
            let c = *rng.pick(b"a9 {W");
            bytes.splice(i..i, std::iter::repeat_n(c, n));
        }
        Mutation::DuplicateLine => {
            let ls = lines(bytes);
            if ls.is_empty() {
                return;
            }
            let (s, e) = *rng.pick(&ls);
            let mut copy = bytes[s..e].to_vec();
            copy.push(b'\n');
            let at = rng.pick(&ls).0;
            bytes.splice(at..at, copy);
        }
        Mutation::DeleteLine => {
            let ls = lines(bytes);
            if ls.is_empty() {
                return;
            }
            let (s, e) = *rng.pick(&ls);
            let e = (e + 1).min(bytes.len());
            bytes.drain(s..e);
        }
        Mutation::Truncate if len > 0 => {
            bytes.truncate(rng.below(len));
        }
        Mutation::FarInTime => {
            // A number of a line (a start time, most often) moved far away:
            // years, or millennia, or to the edge of what a line may hold.
            let spans = numbers(bytes);
            if spans.is_empty() {
                return;
            }
            let (s, e) = *rng.pick(&spans);
            let far = *rng.pick(&[
                "9000000000024",
                "9007199254740992",
                "-9007199254740992",
                "100000000000000",
                "31536000000",
                "1",
            ]);
            bytes.splice(s..e, far.bytes());
        }
        Mutation::SwapFields => {
            let ls = lines(bytes);
            if ls.len() < 2 {
                return;
            }
            let a = rng.below(ls.len());
            let b = rng.below(ls.len());
            let (lo, hi) = (a.min(b), a.max(b));
            if lo == hi {
                return;
            }
            let (ls0, le0) = ls[lo];
            let (ls1, le1) = ls[hi];
            let first = bytes[ls0..le0].to_vec();
            let second = bytes[ls1..le1].to_vec();
            bytes.splice(ls1..le1, first);
            bytes.splice(ls0..le0, second);
        }
        _ => {}
    }
}

/// One to four random mutations of `seed_text`; returns the bytes and what
/// was done.
pub fn mutate(rng: &mut SplitMix64, seed_text: &[u8]) -> (Vec<u8>, Vec<Mutation>) {
    let mut bytes = seed_text.to_vec();
    let n = 1 + rng.below(4);
    let mut done = Vec::with_capacity(n);
    for _ in 0..n {
        let m = *rng.pick(&ALL);
        apply(rng, &mut bytes, m);
        done.push(m);
    }
    (bytes, done)
}
