//! Summaries of repeated measurements: mean, sample standard deviation and
//! the 95 % confidence interval of the mean (Student's t, two-sided), as
//! `simulator experiment --repeat` reports them.
//!
//! And, for one run's percentiles, [`quantile_ranks`]: which order
//! statistics bound a quantile with 95 % confidence, whatever the
//! distribution (the binomial argument: the number of values below the
//! true q-quantile of n values is Binomial(n, q); Conover, *Practical
//! Nonparametric Statistics*, 3rd ed., 1999, section 3.2). A p99 over a
//! hundred calls has no upper bound at all: that is how little it says.
//!
//! The t quantiles are the standard table values (t_{0.975, df} for df =
//! 1..30, then 40, 60, 120; 1.96 beyond), interpolated linearly in 1/df
//! between table rows, which is within 0.1 % of the exact quantile there.

use serde::Serialize;

/// t_{0.975, df} for df = 1..=30.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];
/// (df, t_{0.975, df}) beyond the dense table.
const T_975_TAIL: [(f64, f64); 4] = [(30.0, 2.042), (40.0, 2.021), (60.0, 2.000), (120.0, 1.980)];

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom.
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975[df - 1],
        _ => {
            let x = 1.0 / df as f64;
            for w in T_975_TAIL.windows(2) {
                let ((d0, t0), (d1, t1)) = (w[0], w[1]);
                if (df as f64) <= d1 {
                    let (x0, x1) = (1.0 / d0, 1.0 / d1);
                    return t0 + (t1 - t0) * (x - x0) / (x1 - x0);
                }
            }
            // Between 120 and infinity (1/df = 0, t = 1.96).
            let x0 = 1.0 / 120.0;
            1.960 + (1.980 - 1.960) * x / x0
        }
    }
}

/// The median of `values` (sorted in place; the mean of the middle two
/// for an even count), or NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Mean and spread of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Number of values.
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub stddev: f64,
    /// Half-width of the 95 % confidence interval of the mean; `None` for
    /// fewer than two values (no interval can be given).
    pub ci95: Option<f64>,
    pub min: f64,
    pub max: f64,
}

impl Estimate {
    /// The estimate of `values`, ignoring non-finite ones; `None` if none
    /// is left.
    pub fn of(values: &[f64]) -> Option<Self> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Equal values: exactly their value and no spread (the sum's
        // rounding would otherwise leave a mean off by an ulp and a
        // spread of 1e-17).
        let mean = if min == max {
            min
        } else {
            v.iter().sum::<f64>() / n as f64
        };
        let stddev = if n > 1 && min != max {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = (n > 1).then(|| t_975(n - 1) * stddev / (n as f64).sqrt());
        Some(Self {
            n,
            mean,
            stddev,
            ci95,
            min,
            max,
        })
    }

    /// The interval's relative half-width (ci95 / |mean|), if defined.
    pub fn relative_ci(&self) -> Option<f64> {
        self.ci95
            .filter(|_| self.mean != 0.0)
            .map(|h| h / self.mean.abs())
    }

    /// `mean ± ci95` with `decimals` decimals (`mean` alone for n = 1).
    pub fn display(&self, decimals: usize) -> String {
        match self.ci95 {
            Some(h) => format!("{:.*} ± {:.*}", decimals, self.mean, decimals, h),
            None => format!("{:.*}", decimals, self.mean),
        }
    }
}

/// `low-high` of the finite `values`, each written by `show`; `-` if none
/// is finite (a figure's range over runs, as reports print it).
pub fn range_text(values: &[f64], show: impl Fn(f64) -> String) -> String {
    Estimate::of(values).map_or_else(
        || "-".to_string(),
        |e| format!("{}-{}", show(e.min), show(e.max)),
    )
}

/// Ranks `(low, high)` (1-based, in `1..=n`) of the order statistics of
/// `n` values that bound their distribution's `q`-quantile with at least
/// 95 % confidence: P(x_(low) <= the quantile <= x_(high)) >= 0.95 for any
/// continuous distribution. `None` for a side `n` values cannot bound (the
/// upper side of a tail percentile over too few values, or any side of
/// `n = 0`), so a caller says so instead of printing the extreme value.
///
/// Each side takes 2.5 %: `low` is the largest rank with
/// P(B <= low - 1) <= 0.025 and `high` the smallest with
/// P(B <= high - 1) >= 0.975, B ~ Binomial(n, q). The binomial is summed
/// exactly around its mode (each term from the last, relative to the
/// mode's, until below 1e-30 of it), so this is exact for any `n` and
/// takes time in the width of the distribution, not in `n`.
pub fn quantile_ranks(n: u64, q: f64) -> (Option<u64>, Option<u64>) {
    const TAIL: f64 = 0.025;
    const NEGLIGIBLE: f64 = 1e-30;
    if n == 0 || !(q > 0.0 && q < 1.0) {
        return (None, None);
    }
    let ratio_up = q / (1.0 - q);
    let mode = (((n + 1) as f64 * q).floor() as u64).min(n);
    // P(B = k) relative to P(B = mode), from the mode down, then up.
    let mut below = Vec::new();
    let mut w = 1.0;
    let mut k = mode;
    while k > 0 {
        // P(k - 1) / P(k) = k / (n - k + 1) * (1 - q) / q
        w *= k as f64 / (n - k + 1) as f64 / ratio_up;
        if w < NEGLIGIBLE {
            break;
        }
        k -= 1;
        below.push(w);
    }
    let first = mode - below.len() as u64;
    let mut weights: Vec<f64> = below.into_iter().rev().collect();
    weights.push(1.0);
    let mut w = 1.0;
    let mut k = mode;
    while k < n {
        // P(k + 1) / P(k) = (n - k) / (k + 1) * q / (1 - q)
        w *= (n - k) as f64 / (k + 1) as f64 * ratio_up;
        if w < NEGLIGIBLE {
            break;
        }
        k += 1;
        weights.push(w);
    }
    let total: f64 = weights.iter().sum();
    // Below `first`, P(B <= k) is negligible; from the last weight on, 1.
    let mut low = (first > 0).then_some(first);
    let mut high = None;
    let mut cdf = 0.0;
    for (i, w) in weights.iter().enumerate() {
        let k = first + i as u64;
        cdf += w / total;
        if cdf <= TAIL {
            // P(B <= k) <= 0.025: x_(k + 1) is a lower bound.
            low = Some(k + 1);
        }
        if cdf >= 1.0 - TAIL {
            high = Some(k + 1);
            break;
        }
    }
    let last = first + weights.len() as u64 - 1;
    if high.is_none() {
        high = Some(last + 1);
    }
    (low, high.filter(|&h| h <= n))
}

/// What a summary line says of a p99 over `n` calls when they are too
/// few to bound it above (fewer than 368: the p99 is then little more
/// than the slowest call); `None` when they bound it.
pub fn p99_caveat(n: u64) -> Option<String> {
    quantile_ranks(n, 0.99)
        .1
        .is_none()
        .then(|| format!("no upper 95 % bound over {n} calls"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand: the median of 100 values lies between the 40th and
    /// 61st with 95 % confidence (P(B <= 39) = 0.0176, P(B <= 40) =
    /// 0.0284; P(B <= 59) = 0.9716, P(B <= 60) = 0.9824, B ~ Bin(100,
    /// 1/2)); five values cannot bound their median (P(B = 0) = 1/32 >
    /// 0.025), six can, by their extremes (1/64 and 63/64); and no p99
    /// over 100 values has an upper bound (P(B <= 99) = 1 - 0.99^100 =
    /// 0.634).
    #[test]
    fn quantile_ranks_match_worked_examples() {
        assert_eq!(quantile_ranks(100, 0.5), (Some(40), Some(61)));
        assert_eq!(quantile_ranks(5, 0.5), (None, None));
        assert_eq!(quantile_ranks(6, 0.5), (Some(1), Some(6)));
        assert_eq!(quantile_ranks(100, 0.99).1, None);
        // An upper bound for the p99 needs 0.99^n <= 0.025: n >= 368; for
        // the p99.9, n >= 3,688.
        assert_eq!(quantile_ranks(367, 0.99).1, None);
        assert_eq!(quantile_ranks(368, 0.99).1, Some(368));
        assert_eq!(p99_caveat(368), None);
        assert_eq!(
            p99_caveat(367).as_deref(),
            Some("no upper 95 % bound over 367 calls")
        );
        assert_eq!(quantile_ranks(3687, 0.999).1, None);
        assert_eq!(quantile_ranks(3688, 0.999).1, Some(3688));
        assert_eq!(quantile_ranks(0, 0.5), (None, None));
        assert_eq!(quantile_ranks(10, 1.0), (None, None));
        assert_eq!(quantile_ranks(10, f64::NAN), (None, None));
    }

    /// Against the binomial summed term by term in log space, for every
    /// n up to 400 and the percentiles reports print.
    #[test]
    fn quantile_ranks_match_the_binomial_summed_directly() {
        let ln_fact: Vec<f64> = std::iter::once(0.0)
            .chain((1..=400).scan(0.0, |acc, i| {
                *acc += f64::ln(i as f64);
                Some(*acc)
            }))
            .collect();
        for q in [0.5f64, 0.9, 0.95, 0.99, 0.999] {
            for n in 1..=400u64 {
                let pmf = |k: u64| {
                    (ln_fact[n as usize] - ln_fact[k as usize] - ln_fact[(n - k) as usize]
                        + k as f64 * q.ln()
                        + (n - k) as f64 * (1.0 - q).ln())
                    .exp()
                };
                let cdf: Vec<f64> = (0..=n)
                    .scan(0.0, |acc, k| {
                        *acc += pmf(k);
                        Some(*acc)
                    })
                    .collect();
                let low = (0..n)
                    .rev()
                    .find(|&k| cdf[k as usize] <= 0.025)
                    .map(|k| k + 1);
                let high = (0..n).find(|&k| cdf[k as usize] >= 0.975).map(|k| k + 1);
                assert_eq!(quantile_ranks(n, q), (low, high), "n {n}, q {q}");
            }
        }
    }

    /// Ten million values: the ranks sit 1.96 standard deviations either
    /// side of n q, found without a pass over n.
    #[test]
    fn quantile_ranks_of_many_values_follow_the_normal_limit() {
        let n = 10_000_000u64;
        let (low, high) = quantile_ranks(n, 0.99);
        let sd = (n as f64 * 0.99 * 0.01).sqrt();
        let centre = n as f64 * 0.99;
        assert!(
            (low.unwrap() as f64 - (centre - 1.96 * sd)).abs() < 3.0,
            "{low:?}"
        );
        assert!(
            (high.unwrap() as f64 - (centre + 1.96 * sd)).abs() < 3.0,
            "{high:?}"
        );
    }

    #[test]
    fn t_quantiles_match_the_table_and_converge() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(4), 2.776);
        assert!((t_975(40) - 2.021).abs() < 1e-9);
        assert!((t_975(50) - 2.009).abs() < 0.002, "{}", t_975(50));
        assert!((t_975(1000) - 1.962).abs() < 0.002, "{}", t_975(1000));
        assert!(t_975(0).is_infinite());
        let mut last = f64::INFINITY;
        for df in 1..500 {
            assert!(t_975(df) <= last, "monotone at {df}");
            last = t_975(df);
        }
    }

    #[test]
    fn the_median_of_odd_and_even_samples() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn a_range_is_of_the_finite_values() {
        let one = |x: f64| format!("{x:.1}");
        assert_eq!(range_text(&[2.0, f64::NAN, 0.5, 1.25], one), "0.5-2.0");
        assert_eq!(range_text(&[f64::INFINITY], one), "-");
        assert_eq!(range_text(&[], one), "-");
    }

    #[test]
    fn a_worked_example() {
        // 5 values, mean 10, s = sqrt(2.5): half-width 2.776 * 1.5811 / sqrt(5).
        let e = Estimate::of(&[8.0, 9.0, 10.0, 11.0, 12.0]).unwrap();
        assert_eq!(e.n, 5);
        assert!((e.mean - 10.0).abs() < 1e-12);
        assert!((e.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        assert!((e.ci95.unwrap() - 1.963).abs() < 1e-3, "{e:?}");
        assert_eq!(e.display(1), "10.0 ± 2.0");
        let one = Estimate::of(&[3.0, f64::NAN]).unwrap();
        assert_eq!(
            (one.n, one.ci95, one.display(2).as_str()),
            (1, None, "3.00")
        );
        assert!(Estimate::of(&[]).is_none());
    }

    #[test]
    fn equal_values_have_exactly_no_spread() {
        // 0.1 + 0.1 + 0.1 is 0.30000000000000004: summed, the mean would
        // be off by an ulp and the spread 1e-17 instead of 0.
        for v in [0.1, 0.021276595744680864, 1e300] {
            let e = Estimate::of(&[v, v, v]).unwrap();
            assert_eq!((e.mean, e.stddev, e.ci95), (v, 0.0, Some(0.0)), "{v}");
        }
    }
}
