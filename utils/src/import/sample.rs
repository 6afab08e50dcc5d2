//! The pure parts of trace import: percentile distributions, picking
//! functions, and spreading a minute's calls. No I/O; randomness comes from
//! the caller's seeded RNG.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A distribution given by some of its quantiles, sampled by inverse-CDF
/// piecewise-linear interpolation between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantiles {
    /// `(q, value)`, q strictly increasing in `[0, 1]`, values
    /// non-decreasing.
    knots: Vec<(f64, f64)>,
    /// True if a value had to be raised to keep the values non-decreasing.
    pub repaired: bool,
}

impl Quantiles {
    /// `knots`: `(q, value)` with increasing q (the caller's constant
    /// tables). A value below its predecessor is raised to it (the
    /// published percentiles are monotone; a file that is not gets the
    /// running maximum, and `repaired` says so).
    pub fn new(knots: &[(f64, f64)]) -> Self {
        let mut repaired = false;
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(knots.len());
        for &(q, v) in knots {
            let v = match out.last() {
                Some(&(_, prev)) if v < prev => {
                    repaired = true;
                    prev
                }
                _ => v,
            };
            out.push((q, v));
        }
        Self {
            knots: out,
            repaired,
        }
    }

    /// The value at quantile `q`: linear between the two knots around `q`;
    /// below the first knot, the first value; above the last, the last.
    pub fn at(&self, q: f64) -> f64 {
        let Some(&(q0, v0)) = self.knots.first() else {
            return 0.0;
        };
        if q <= q0 {
            return v0;
        }
        for pair in self.knots.windows(2) {
            let ((qa, va), (qb, vb)) = (pair[0], pair[1]);
            if q <= qb {
                return va + (vb - va) * (q - qa) / (qb - qa);
            }
        }
        self.knots.last().map_or(0.0, |k| k.1)
    }
}

/// How functions are picked from a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The `n` with the most calls in the window; equal counts: the earlier
    /// row first.
    Top,
    /// A uniform random sample of `n` (reservoir sampling, Algorithm R).
    Random,
    /// Stratified by rate: strata are decades of the window's call count
    /// (1-9, 10-99, 100-999, ...); each stratum gets `n × its size / all`
    /// places (largest remainders first, ties to the lower decade), filled
    /// by a uniform random sample of the stratum.
    Stratified,
}

/// One candidate kept by a [`Picker`].
#[derive(Debug, Clone)]
pub struct Picked<T> {
    /// Calls in the window.
    pub count: u64,
    /// Offer order (the row, for a trace read top to bottom).
    pub order: u64,
    pub item: T,
}

impl<T> Picked<T> {
    fn key(&self) -> (u64, Reverse<u64>) {
        (self.count, Reverse(self.order))
    }
}

impl<T> PartialEq for Picked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<T> Eq for Picked<T> {}
impl<T> PartialOrd for Picked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Picked<T> {
    /// Greater = more calls, then earlier.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A uniform sample of at most `capacity` of the items offered.
#[derive(Debug)]
struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<Picked<T>>,
}

impl<T> Reservoir<T> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: 0,
            items: Vec::new(),
        }
    }

    fn offer(&mut self, rng: &mut impl Rng, p: Picked<T>) {
        if self.items.len() < self.capacity {
            self.items.push(p);
        } else {
            let j = rng.gen_range(0..=self.seen);
            if let Some(slot) = self.items.get_mut(j as usize) {
                *slot = p;
            }
        }
        self.seen += 1;
    }
}

/// Picks `n` candidates offered one at a time, in memory bounded by `n`
/// (stratified: `n` per stratum, at most 20 strata), never by the number of
/// candidates.
#[derive(Debug)]
pub struct Picker<T> {
    pick: Pick,
    n: usize,
    top: BinaryHeap<Reverse<Picked<T>>>,
    random: Reservoir<T>,
    strata: BTreeMap<u32, Reservoir<T>>,
}

impl<T> Picker<T> {
    pub fn new(pick: Pick, n: usize) -> Self {
        Self {
            pick,
            n,
            top: BinaryHeap::new(),
            random: Reservoir::new(n),
            strata: BTreeMap::new(),
        }
    }

    /// Offers a candidate with `count` calls (candidates with no call are
    /// the caller's to skip). `order` must increase from offer to offer.
    pub fn offer(&mut self, rng: &mut impl Rng, count: u64, order: u64, item: T) {
        let p = Picked { count, order, item };
        match self.pick {
            Pick::Top => {
                if self.top.len() < self.n {
                    self.top.push(Reverse(p));
                } else if self.top.peek().is_some_and(|worst| p > worst.0) {
                    self.top.pop();
                    self.top.push(Reverse(p));
                }
            }
            Pick::Random => self.random.offer(rng, p),
            Pick::Stratified => {
                let n = self.n;
                self.strata
                    .entry(decade(count))
                    .or_insert_with(|| Reservoir::new(n))
                    .offer(rng, p);
            }
        }
    }

    /// The picked candidates, most calls first (equal counts: offer order).
    pub fn finish(self, rng: &mut impl Rng) -> Vec<Picked<T>> {
        let mut out: Vec<Picked<T>> = match self.pick {
            Pick::Top => self.top.into_iter().map(|r| r.0).collect(),
            Pick::Random => self.random.items,
            Pick::Stratified => {
                let sizes: Vec<u64> = self.strata.values().map(|r| r.seen).collect();
                let quotas = proportional_quotas(self.n as u64, &sizes);
                let mut out = Vec::new();
                for (reservoir, quota) in self.strata.into_values().zip(quotas) {
                    let mut items = reservoir.items;
                    // A uniform subset of the stratum's uniform sample:
                    // a partial Fisher-Yates shuffle.
                    let take = (quota as usize).min(items.len());
                    for i in 0..take {
                        let j = rng.gen_range(i..items.len());
                        items.swap(i, j);
                    }
                    items.truncate(take);
                    out.extend(items);
                }
                out
            }
        };
        out.sort_by(|a, b| b.cmp(a));
        out
    }
}

/// The stratum of a call count: its decade (`floor(log10(count))`).
pub fn decade(count: u64) -> u32 {
    count.max(1).ilog10()
}

/// Splits `n` places over strata of the given sizes in proportion
/// (Hamilton's largest-remainder method; equal remainders: the earlier
/// stratum). `n` at least the total takes every stratum whole.
pub fn proportional_quotas(n: u64, sizes: &[u64]) -> Vec<u64> {
    let total: u64 = sizes.iter().sum();
    if total == 0 {
        return vec![0; sizes.len()];
    }
    if n >= total {
        return sizes.to_vec();
    }
    let exact: Vec<u128> = sizes
        .iter()
        .map(|&s| u128::from(n) * u128::from(s))
        .collect();
    let mut quotas: Vec<u64> = exact
        .iter()
        .map(|&e| (e / u128::from(total)) as u64)
        .collect();
    let given: u64 = quotas.iter().sum();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder.sort_by_key(|&i| Reverse(exact[i] % u128::from(total)));
    for &i in by_remainder.iter().take((n - given) as usize) {
        quotas[i] += 1;
    }
    quotas
}

/// How a minute's calls spread over its 60,000 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Each call at an independent uniform random time in the minute: a
    /// Poisson process conditioned on the minute's count.
    Uniform,
    /// Evenly spaced: the k-th of n (0-based) at `floor(k × 60000 / n)` ms.
    Even,
}

/// Milliseconds in a minute.
pub const MINUTE_MS: u64 = 60_000;

/// The ascending offsets (ms in the minute) of one function's calls in one
/// minute, drawn one at a time in O(1) memory whatever the count.
#[derive(Debug, Clone)]
struct MinuteStream {
    total: u64,
    /// Calls already drawn.
    drawn: u64,
    /// Uniform: the last order statistic drawn, in `[0, 1)`.
    last: f64,
}

impl MinuteStream {
    fn next(&mut self, spread: Spread, rng: &mut impl Rng) -> Option<u64> {
        if self.drawn >= self.total {
            return None;
        }
        let offset = match spread {
            Spread::Even => {
                (u128::from(self.drawn) * u128::from(MINUTE_MS) / u128::from(self.total)) as u64
            }
            Spread::Uniform => {
                // The smallest of the m uniforms still to come, on
                // [last, 1): last + (1 - last)(1 - V^(1/m)), V in (0, 1].
                let m = (self.total - self.drawn) as f64;
                let v = 1.0 - rng.gen::<f64>();
                self.last += (1.0 - self.last) * (1.0 - v.powf(1.0 / m));
                ((self.last * MINUTE_MS as f64) as u64).min(MINUTE_MS - 1)
            }
        };
        self.drawn += 1;
        Some(offset)
    }
}

/// Spreads one minute's calls: `counts[i]` calls of function `i`, emitted
/// as `(offset_ms, i)` in time order (equal times: lower `i` first). Memory
/// is one heap entry per function, whatever the counts.
/// `emit` gets the RNG too, to draw the call's duration and memory.
pub fn spread_minute<R: Rng>(
    counts: &[u64],
    spread: Spread,
    rng: &mut R,
    mut emit: impl FnMut(u64, usize, &mut R),
) {
    let mut streams: Vec<MinuteStream> = counts
        .iter()
        .map(|&total| MinuteStream {
            total,
            drawn: 0,
            last: 0.0,
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some(t) = s.next(spread, rng) {
            heap.push(Reverse((t, i)));
        }
    }
    while let Some(Reverse((t, i))) = heap.pop() {
        emit(t, i, rng);
        if let Some(next) = streams[i].next(spread, rng) {
            heap.push(Reverse((next, i)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn quantiles_interpolate_linearly_and_clamp() {
        let q = Quantiles::new(&[(0.0, 10.0), (0.5, 20.0), (1.0, 60.0)]);
        assert_eq!(q.at(0.0), 10.0);
        assert_eq!(q.at(0.25), 15.0);
        assert_eq!(q.at(0.75), 40.0);
        assert_eq!(q.at(1.0), 60.0);
        assert!(!q.repaired);
        // Below the first knot: the first value (memory has no 0th pct).
        let m = Quantiles::new(&[(0.01, 100.0), (1.0, 199.0)]);
        assert_eq!(m.at(0.0), 100.0);
        // 100 + (0.5 - 0.01) / (1 - 0.01) × 99 = 149
        assert_eq!(m.at(0.5), 149.0);
        let bad = Quantiles::new(&[(0.0, 5.0), (0.5, 3.0), (1.0, 9.0)]);
        assert!(bad.repaired);
        assert_eq!(bad.at(0.5), 5.0);
    }

    fn pick(mode: Pick, n: usize, counts: &[u64], seed: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = Picker::new(mode, n);
        for (i, &c) in counts.iter().enumerate() {
            p.offer(&mut rng, c, i as u64, i);
        }
        p.finish(&mut rng).into_iter().map(|p| p.item).collect()
    }

    #[test]
    fn top_keeps_the_most_called_and_breaks_ties_by_order() {
        assert_eq!(pick(Pick::Top, 3, &[5, 9, 1, 9, 7, 5], 0), vec![1, 3, 4]);
        assert_eq!(pick(Pick::Top, 10, &[2, 3], 0), vec![1, 0]);
        assert_eq!(pick(Pick::Top, 2, &[4, 4, 4], 0), vec![0, 1]);
    }

    #[test]
    fn random_is_uniform_and_seeded() {
        let counts = vec![1u64; 10];
        let a = pick(Pick::Random, 3, &counts, 1);
        assert_eq!(a.len(), 3);
        assert_eq!(a, pick(Pick::Random, 3, &counts, 1));
        // Every item is picked about 3/10 of the time.
        let mut hits = [0u32; 10];
        for seed in 0..2000 {
            for i in pick(Pick::Random, 3, &counts, seed) {
                hits[i] += 1;
            }
        }
        assert!(hits.iter().all(|&h| (500..700).contains(&h)), "{hits:?}");
    }

    #[test]
    fn stratified_fills_each_decade_in_proportion() {
        // 4 × (6, 3, 1) / 10 = 2.4, 1.2, 0.4: floors 2, 1, 0, and the last
        // place to the largest remainder (0.4, tied: the earlier stratum).
        assert_eq!(proportional_quotas(4, &[6, 3, 1]), vec![3, 1, 0]);
        assert_eq!(proportional_quotas(3, &[2, 1, 1]), vec![1, 1, 1]);
        assert_eq!(proportional_quotas(3, &[5, 5]), vec![2, 1]);
        assert_eq!(proportional_quotas(20, &[2, 3]), vec![2, 3]);
        assert_eq!(proportional_quotas(0, &[2, 3]), vec![0, 0]);
        assert_eq!(
            (decade(1), decade(9), decade(10), decade(999)),
            (0, 0, 1, 2)
        );
        // 2 functions with 1-9 calls, 1 with 10-99, 1 with 100+: 3 places
        // are 1 + 1 + 1 (3 × (2, 1, 1) / 4 = 1.5, 0.75, 0.75).
        let counts = [1, 2, 10, 100];
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..20 {
            let got = pick(Pick::Stratified, 3, &counts, seed);
            firsts.insert(got[2]);
            let per: Vec<usize> = [0, 1, 2]
                .iter()
                .map(|&d| got.iter().filter(|&&i| decade(counts[i]) == d).count())
                .collect();
            assert_eq!(per, vec![1, 1, 1], "seed {seed}: {got:?}");
            assert_eq!(&got[..2], &[3, 2]);
        }
        // Which of the two rare functions varies with the seed.
        assert_eq!(firsts.len(), 2);
    }

    fn minute(counts: &[u64], spread: Spread, seed: u64) -> Vec<(u64, usize)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        spread_minute(counts, spread, &mut rng, |t, i, _| out.push((t, i)));
        out
    }

    #[test]
    fn even_spread_is_evenly_spaced() {
        assert_eq!(
            minute(&[3, 0, 2], Spread::Even, 0),
            vec![(0, 0), (0, 2), (20_000, 0), (30_000, 2), (40_000, 0)]
        );
    }

    #[test]
    fn uniform_spread_keeps_counts_order_and_the_minute() {
        let got = minute(&[1000, 5, 0, 1], Spread::Uniform, 3);
        assert_eq!(got.len(), 1006);
        assert!(got.windows(2).all(|w| w[0] <= w[1]));
        assert!(got.iter().all(|&(t, _)| t < MINUTE_MS));
        assert_eq!(got.iter().filter(|c| c.1 == 1).count(), 5);
        // Uniform: about half of the calls in each half minute.
        let first_half = got.iter().filter(|c| c.0 < 30_000).count();
        assert!((430..570).contains(&first_half), "{first_half}");
        assert_eq!(got, minute(&[1000, 5, 0, 1], Spread::Uniform, 3));
        // A huge count costs no memory up front: the stream is lazy.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = 0u32;
        let mut stream = MinuteStream {
            total: u64::MAX,
            drawn: 0,
            last: 0.0,
        };
        while seen < 10 {
            assert!(stream.next(Spread::Uniform, &mut rng).is_some());
            seen += 1;
        }
    }
}
