//! `utils import` on traces of the real size (not a criterion bench: one
//! run per case, figures printed).
//!
//! Writes a synthetic Azure 2019 day into a temporary directory
//! ([`utils::import::synthetic`]): 46,000 functions × 1,440 minutes (the
//! public d01 has about that many rows) in 19,000 apps, most cells 0 as in
//! the trace, with its durations and memory files; and a 2021 trace of 1.98 M
//! rows (the public trace's size) with 64-hex ids, rows out of time order.
//! Then each case runs in a child process of this binary (its own peak
//! RSS, `VmHWM`) and prints wall time, input rows/s, calls written/s and
//! peak RSS. The temporary directory is deleted at the end.
//!
//! `cargo bench -p utils --bench azure_import` (optional:
//! `AZURE_BENCH_2021=0` skips the 2021 trace).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use utils::import::synthetic::{hex_id, write_day, SyntheticDay};
use utils::import::{self, MinuteWindow, Outputs, Pick};

const CHILD_ENV: &str = "AZURE_BENCH_CHILD";
const FUNCTIONS: usize = 46_000;
const APPS: usize = 19_000;
const ROWS_2021: usize = 1_980_000;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn write_2021(path: &Path) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(2021);
    let functions: Vec<(String, String)> = (0..424)
        .map(|_| (hex_id(&mut rng), hex_id(&mut rng)))
        .collect();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "app,func,end_timestamp,duration")?;
    let span = 14.0 * 86_400.0;
    for i in 0..ROWS_2021 {
        // Roughly in time order, with local disorder as in the trace.
        let end = span * i as f64 / ROWS_2021 as f64 + rng.gen_range(0.0..60.0);
        // Zipf-like popularity.
        let f = ((functions.len() as f64).powf(rng.gen::<f64>()) as usize).min(functions.len() - 1);
        let duration = 10f64.powf(rng.gen_range(-3.0..2.0));
        writeln!(
            out,
            "{},{},{end},{duration:.3}",
            functions[f].0, functions[f].1
        )?;
    }
    out.flush()
}

fn child(spec: &str, dir: &Path) {
    let parts: Vec<&str> = spec.split(':').collect();
    let out = dir.join(format!("out-{}.csv", parts.join("-")));
    let outputs = Outputs::new(out.clone(), None);
    let start = Instant::now();
    let (meta, rows) = match parts[0] {
        "2019" => {
            let mut config = import::azure2019::Azure2019Config::new(dir.to_path_buf());
            config.pick = match parts[1] {
                "random" => Pick::Random,
                "stratified" => Pick::Stratified,
                _ => Pick::Top,
            };
            config.functions = parts[2].parse().unwrap();
            config.window = parts[3].parse::<MinuteWindow>().unwrap();
            (
                import::azure2019::import(&config, &outputs).unwrap(),
                FUNCTIONS,
            )
        }
        _ => {
            let mut config = import::azure2021::Azure2021Config::new(dir.join("trace2021.txt"));
            config.functions = parts[2].parse().unwrap();
            (
                import::azure2021::import(&config, &outputs).unwrap(),
                ROWS_2021,
            )
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let out_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{spec:<28} {secs:>7.2} s  {:>9.0} rows/s  {:>10} calls  {:>10.0} calls/s  out {:>6.0} MB  peak RSS {:>6.1} MiB",
        rows as f64 / secs,
        meta.total_events,
        meta.total_events as f64 / secs,
        out_bytes as f64 / 1e6,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    for p in outputs.all() {
        let _ = std::fs::remove_file(p);
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let dir = PathBuf::from(std::env::var("AZURE_BENCH_DIR").expect("dir"));
        child(&spec, &dir);
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let t = Instant::now();
    let day = SyntheticDay {
        functions: FUNCTIONS,
        apps: APPS,
        day: 1,
        seed: 2019,
    };
    write_day(dir, &day).expect("write the 2019 fixture");
    let inv = std::fs::metadata(dir.join("invocations_per_function_md.anon.d01.csv"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "azure_import: 2019 fixture {FUNCTIONS} functions x 1440 minutes, invocations file {:.0} MB (written in {:.1} s)",
        inv as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut cases = vec![
        "2019:top:100:0..60",
        "2019:top:100:0..1440",
        "2019:random:1000:0..1440",
        "2019:stratified:1000:0..60",
    ];
    if std::env::var("AZURE_BENCH_2021").map_or(true, |v| v != "0") {
        write_2021(&dir.join("trace2021.txt")).expect("write the 2021 fixture");
        let size = std::fs::metadata(dir.join("trace2021.txt"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "azure_import: 2021 fixture {ROWS_2021} rows, {:.0} MB",
            size as f64 / 1e6
        );
        cases.push("2021:top:100:all");
    }
    let exe = std::env::current_exe().expect("own path");
    for case in cases {
        let status = Command::new(&exe)
            .env(CHILD_ENV, case)
            .env("AZURE_BENCH_DIR", dir)
            .status()
            .expect("run child");
        if !status.success() {
            println!("{case}: child failed ({status})");
        }
    }
    drop(tmp);
}
