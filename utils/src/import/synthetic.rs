//! A synthetic Azure Functions 2019 day in the published schema, for
//! benchmarks at the real size (the real files, hundreds of MB, cannot be
//! downloaded on every machine).
//!
//! The three files of day `dNN` ([`super::azure2019`] reads
//! them), with the published headers and row shapes (Shahrad et al.,
//! "Serverless in the Wild", ATC 2020):
//! - `invocations_per_function_md.anon.dNN.csv`: each function calls at a
//!   rate drawn log-uniformly between 0.001 and 100 calls per minute, its
//!   count in each of the 1,440 minutes Poisson at that rate (so most cells
//!   are 0, as in the trace); triggers in turn;
//! - `function_durations_percentiles.anon.dNN.csv`: a median drawn
//!   log-uniformly between 1 ms and 10 s, percentiles at fixed multiples
//!   of it (0.1x at 0 %, 10x at 100 %);
//! - `app_memory_percentiles.anon.dNN.csv`: an app's average allocation
//!   drawn uniformly between 50 and 400 MB, percentiles at fixed
//!   multiples.
//!
//! These choices are ours (the published trace's rates are far more
//! skewed): what matters for a benchmark is the files' size and shape.
//! The same [`SyntheticDay`] always writes the same bytes.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

use super::azure2019::{self, DAY_MINUTES};

/// The size and seed of a synthetic day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticDay {
    /// Functions (the public d01 has about 46,000).
    pub functions: usize,
    /// Apps, the functions spread over them in turn (about 19,000).
    pub apps: usize,
    /// Its day number, 1..=14 (the files' `dNN`).
    pub day: u8,
    pub seed: u64,
}

impl SyntheticDay {
    /// The size of the public day 1: 46,000 functions in 19,000 apps.
    pub fn real_size(seed: u64) -> Self {
        Self {
            functions: 46_000,
            apps: 19_000,
            day: 1,
            seed,
        }
    }
}

const TRIGGERS: [&str; 7] = [
    "http",
    "timer",
    "queue",
    "event",
    "storage",
    "orchestration",
    "others",
];

/// A 64-hex-digit hash, as the traces' anonymised ids.
pub fn hex_id(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        let _ = write!(s, "{:016x}", rng.gen::<u64>());
    }
    s
}

/// Writes the day's three files into `dir` (which must exist).
pub fn write_day(dir: &Path, day: &SyntheticDay) -> std::io::Result<()> {
    if day.functions == 0 || day.apps == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a synthetic day needs at least one function and one app",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(day.seed);
    let owners: Vec<String> = (0..day.apps.div_ceil(2))
        .map(|_| hex_id(&mut rng))
        .collect();
    let apps: Vec<(usize, String)> = (0..day.apps)
        .map(|_| (rng.gen_range(0..owners.len()), hex_id(&mut rng)))
        .collect();
    let open = |path: &Path| -> std::io::Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path)?,
        ))
    };
    let [inv, dur, mem] = azure2019::day_files(dir, day.day);
    let (mut inv, mut dur, mut mem) = (open(&inv)?, open(&dur)?, open(&mem)?);
    writeln!(inv, "{}", azure2019::invocation_columns().join(","))?;
    writeln!(dur, "{}", azure2019::DURATION_COLUMNS.join(","))?;
    writeln!(mem, "{}", azure2019::MEMORY_COLUMNS.join(","))?;
    let mut line = String::with_capacity(8 << 10);
    for f in 0..day.functions {
        let (owner, app) = &apps[f % day.apps];
        let owner = &owners[*owner];
        let id = hex_id(&mut rng);
        let per_minute = 10f64.powf(rng.gen_range(-3.0..2.0));
        let poisson = Poisson::new(per_minute).map_err(std::io::Error::other)?;
        line.clear();
        let _ = write!(line, "{owner},{app},{id},{}", TRIGGERS[f % TRIGGERS.len()]);
        for _ in 0..DAY_MINUTES {
            let n = poisson.sample(&mut rng) as u64;
            let _ = write!(line, ",{n}");
        }
        writeln!(inv, "{line}")?;
        let median = 10f64.powf(rng.gen_range(0.0..4.0));
        let p = [0.1, 0.2, 0.6, 1.0, 1.5, 4.0, 10.0].map(|k| median * k);
        write!(
            dur,
            "{owner},{app},{id},{median:.1},100,{:.1},{:.1}",
            p[0], p[6]
        )?;
        for v in p {
            write!(dur, ",{v:.1}")?;
        }
        writeln!(dur)?;
    }
    for (owner, app) in &apps {
        let base = rng.gen_range(50.0..400.0);
        write!(mem, "{},{app},120,{base:.1}", owners[*owner])?;
        for k in [0.8, 0.85, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5] {
            write!(mem, ",{:.1}", base * k)?;
        }
        writeln!(mem)?;
    }
    inv.flush()?;
    dur.flush()?;
    mem.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::azure2019::{import, Azure2019Config};
    use crate::import::Outputs;

    #[test]
    fn a_small_day_is_read_back_by_the_importer_and_is_the_same_for_a_seed() {
        let day = SyntheticDay {
            functions: 30,
            apps: 7,
            day: 3,
            seed: 5,
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_day(a.path(), &day).unwrap();
        write_day(b.path(), &day).unwrap();
        let inv = "invocations_per_function_md.anon.d03.csv";
        let text = std::fs::read_to_string(a.path().join(inv)).unwrap();
        assert_eq!(text, std::fs::read_to_string(b.path().join(inv)).unwrap());
        assert_eq!(text.lines().count(), 31);
        assert!(text
            .lines()
            .skip(1)
            .all(|l| l.split(',').count() == 4 + DAY_MINUTES as usize));

        let scenario = a.path().join("day.csv");
        let outputs = Outputs::new(scenario.clone(), None);
        let config = Azure2019Config {
            day: 3,
            functions: 10,
            ..Azure2019Config::new(a.path().to_path_buf())
        };
        let meta = import(&config, &outputs).unwrap();
        assert!(meta.total_events > 0);
        let rows = std::fs::read_to_string(&scenario).unwrap().lines().count();
        assert_eq!(rows as u64, meta.total_events, "one row per call");
    }

    #[test]
    fn an_empty_day_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let day = SyntheticDay {
            functions: 0,
            ..SyntheticDay::real_size(1)
        };
        assert!(write_day(dir.path(), &day).is_err());
    }
}
