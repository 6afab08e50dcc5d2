//! The hybrid histogram keep-alive policy of Shahrad et al., "Serverless in
//! the Wild: Characterizing and Optimizing the Serverless Workload at a
//! Large Cloud Provider" (USENIX ATC 2020), §4.2.
//!
//! Per function, a histogram of its *idle times* (from the end of its last
//! call, when no call of it was in flight any more, to the arrival of the
//! next call) in 1-minute bins over 4 hours; idle times beyond the range
//! are counted apart (out of bounds). From the histogram, after each call:
//!
//! - **representative** (the bin counts' coefficient of variation is at
//!   least 2, and at most half of the idle times are out of bounds):
//!   - *pre-warming window* = the 5th percentile's bin (its lower edge)
//!     minus a 10 % margin: the function's instances are unloaded when its
//!     last call ends, and one is pre-warmed this long after;
//!   - *keep-alive window* = the 99th percentile's bin (its upper edge)
//!     plus a 10 % margin, minus the pre-warming window: how long an
//!     instance stays after it was pre-warmed (or, with no pre-warming
//!     window, after the call). The pair covers idle times from the head to
//!     the tail of the distribution;
//! - **not representative** (no idle time yet, a flat histogram, or mostly
//!   out of bounds): no pre-warming and a fixed keep-alive (the node
//!   model's `keep_alive`; the paper's fallback is the histogram's range,
//!   4 h: `--keep-alive-s 14400` gives it).
//!
//! Percentiles are nearest-rank over the in-range idle times: the p-th
//! percentile is the bin holding the ⌈p/100 · n⌉-th smallest one.
//!
//! ARIMA: the paper forecasts the next idle time with an ARIMA model for
//! functions whose idle times are mostly out of the histogram's range
//! (rare, infrequently called functions). We do not fit ARIMA (no time
//! series library in a pure crate, and our scenarios last minutes, far
//! below 4 h): such functions get the fixed keep-alive, like other
//! non-representative histograms. This is a deliberate difference.
//!
//! Parameters ([`HistogramParams`], defaults the paper's): bin 60 s, 240
//! bins (4 h), head percentile 5, tail percentile 99, margin 10 %, CV
//! threshold 2, out-of-bounds share 0.5.

use std::time::Duration;

/// The histogram policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HistogramParams {
    /// Width of one bin.
    #[serde(rename = "bin_s", serialize_with = "secs")]
    pub bin: Duration,
    /// Number of bins (range = bins × bin).
    pub bins: usize,
    /// Percentile giving the pre-warming window.
    pub head_percentile: f64,
    /// Percentile giving the end of the keep-alive window.
    pub tail_percentile: f64,
    /// Margin: the head shrinks by it, the tail grows by it.
    pub margin: f64,
    /// Least coefficient of variation of the bin counts for the histogram
    /// to be representative.
    pub cv_threshold: f64,
    /// Largest share of out-of-bounds idle times for the histogram to be
    /// representative.
    pub max_out_of_bounds_share: f64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for HistogramParams {
    fn default() -> Self {
        Self {
            bin: Duration::from_secs(60),
            bins: 240,
            head_percentile: 5.0,
            tail_percentile: 99.0,
            margin: 0.10,
            cv_threshold: 2.0,
            max_out_of_bounds_share: 0.5,
        }
    }
}

/// What the histogram says after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// How long after the call to pre-warm an instance (zero: keep the
    /// instance instead of unloading it).
    pub prewarm: Duration,
    /// How long an instance stays idle (after the call, or after it was
    /// pre-warmed).
    pub keep_alive: Duration,
    /// Whether they come from the histogram (else: the fixed fallback).
    pub representative: bool,
}

/// One function's idle-time histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleTimeHistogram {
    counts: Vec<u64>,
    in_range: u64,
    out_of_bounds: u64,
}

impl IdleTimeHistogram {
    pub fn new(params: &HistogramParams) -> Self {
        Self {
            counts: vec![0; params.bins.max(1)],
            in_range: 0,
            out_of_bounds: 0,
        }
    }

    /// Records one idle time.
    pub fn record(&mut self, idle: Duration, params: &HistogramParams) {
        let bin = params.bin.as_micros().max(1);
        let i = idle.as_micros() / bin;
        match usize::try_from(i).ok().and_then(|i| self.counts.get_mut(i)) {
            Some(c) => {
                *c += 1;
                self.in_range += 1;
            }
            _ => self.out_of_bounds += 1,
        }
    }

    pub fn in_range(&self) -> u64 {
        self.in_range
    }

    pub fn out_of_bounds(&self) -> u64 {
        self.out_of_bounds
    }

    /// The coefficient of variation (population standard deviation over
    /// mean) of the bin counts; 0 for an empty histogram.
    pub fn cv(&self) -> f64 {
        let n = self.counts.len() as f64;
        let mean = self.in_range as f64 / n;
        if mean == 0.0 {
            return 0.0;
        }
        let var = self
            .counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt() / mean
    }

    /// The bin of the `p`-th percentile (nearest rank) of the in-range
    /// idle times; None when there are none.
    pub fn percentile_bin(&self, p: f64) -> Option<usize> {
        if self.in_range == 0 {
            return None;
        }
        let rank = ((p / 100.0 * self.in_range as f64).ceil() as u64).clamp(1, self.in_range);
        let mut seen = 0;
        self.counts.iter().position(|&c| {
            seen += c;
            seen >= rank
        })
    }

    pub fn is_representative(&self, params: &HistogramParams) -> bool {
        let total = self.in_range + self.out_of_bounds;
        self.in_range > 0
            && (self.out_of_bounds as f64) <= params.max_out_of_bounds_share * total as f64
            && self.cv() >= params.cv_threshold
    }

    /// The windows after a call: from the histogram when it is
    /// representative, else no pre-warming and `fallback` keep-alive.
    pub fn windows(&self, params: &HistogramParams, fallback: Duration) -> Windows {
        let fixed = Windows {
            prewarm: Duration::ZERO,
            keep_alive: fallback,
            representative: false,
        };
        if !self.is_representative(params) {
            return fixed;
        }
        let (Some(head), Some(tail)) = (
            self.percentile_bin(params.head_percentile),
            self.percentile_bin(params.tail_percentile),
        ) else {
            return fixed;
        };
        let bin = params.bin.as_secs_f64();
        let prewarm = head as f64 * bin * (1.0 - params.margin);
        let end = (tail + 1) as f64 * bin * (1.0 + params.margin);
        Windows {
            prewarm: Duration::from_secs_f64(prewarm.max(0.0)),
            keep_alive: Duration::from_secs_f64((end - prewarm).max(0.0)),
            representative: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn min(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    fn histogram(idle: &[Duration]) -> IdleTimeHistogram {
        let p = HistogramParams::default();
        let mut h = IdleTimeHistogram::new(&p);
        for &d in idle {
            h.record(d, &p);
        }
        h
    }

    /// Hand-made series: ten idle times of 10 min 30 s (bin 10) and one of
    /// 12 min (bin 12). n = 11: the 5th percentile is the 1st smallest
    /// (⌈0.55⌉), bin 10, lower edge 10 min; the 99th is the 11th
    /// (⌈10.89⌉), bin 12, upper edge 13 min. Pre-warm = 10 min × 0.9 =
    /// 9 min; keep-alive = 13 min × 1.1 − 9 min = 5.3 min = 318 s. Bin
    /// counts (10, 1, 238 zeros): mean 11/240, CV ≈ 14.1 ≥ 2.
    #[test]
    fn windows_of_a_hand_made_series() {
        let mut series = vec![min(10) + Duration::from_secs(30); 10];
        series.push(min(12));
        let h = histogram(&series);
        let p = HistogramParams::default();
        assert_eq!(h.in_range(), 11);
        assert_eq!(h.percentile_bin(5.0), Some(10));
        assert_eq!(h.percentile_bin(99.0), Some(12));
        assert!((h.cv() - 14.118).abs() < 0.01, "{}", h.cv());
        let w = h.windows(&p, min(10));
        assert!(w.representative);
        assert_eq!(w.prewarm, Duration::from_secs(540));
        assert_eq!(w.keep_alive.as_millis(), 318_000);
    }

    #[test]
    fn short_idle_times_keep_the_instance_without_pre_warming() {
        // All in bin 0 (under a minute): head 0, tail edge 1 min.
        let h = histogram(&[Duration::from_secs(5), Duration::from_secs(20)]);
        let w = h.windows(&HistogramParams::default(), min(10));
        assert!(w.representative);
        assert_eq!(w.prewarm, Duration::ZERO);
        assert_eq!(w.keep_alive, Duration::from_secs(66));
    }

    #[test]
    fn unrepresentative_histograms_fall_back_to_the_fixed_keep_alive() {
        let p = HistogramParams::default();
        let fixed = Windows {
            prewarm: Duration::ZERO,
            keep_alive: min(10),
            representative: false,
        };
        // No idle time yet.
        assert_eq!(histogram(&[]).windows(&p, min(10)), fixed);
        // Flat: one idle time in each of 120 bins: mean 0.5, sd 0.5, CV 1.
        let flat: Vec<Duration> = (0..120).map(min).collect();
        let h = histogram(&flat);
        assert!((h.cv() - 1.0).abs() < 1e-9);
        assert_eq!(h.windows(&p, min(10)), fixed);
        // Mostly out of bounds (over 4 h): the paper's ARIMA case.
        let h = histogram(&[min(300), min(301), min(10)]);
        assert_eq!(h.out_of_bounds(), 2);
        assert_eq!(h.windows(&p, min(10)), fixed);
        // Exactly at the range's end is out of bounds; just below is in.
        let h = histogram(&[min(240), min(240) - Duration::from_micros(1)]);
        assert_eq!((h.in_range(), h.out_of_bounds()), (1, 1));
    }
}
