//! `hf-fn`: runs any of the sample functions (one statically linkable binary).
//!
//! ```text
//! hf-fn <NAME> [--call QUERY]          one call; prints one FunctionOutput JSON line
//! hf-fn serve --function <NAME> [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]
//!                                      warm instance (REST mode / pool), see sample_functions::serve
//! hf-fn stage <NAME> <DIR>             writes DIR/hf-fn (a copy of this binary) and DIR/payload.bin
//! hf-fn list                           the catalog's function names
//! hf-fn calibrate [--ms 100]           measures CPU-loop iterations per ms on this machine
//! ```
//!
//! Environment: `HF_TIME_SCALE` (default 1.0) scales CPU work and sleeps;
//! `HF_PACKAGE_SCALE` (default 1.0) scales the payload's expected (and
//! staged) size; `HF_ITERATIONS_PER_MS` overrides the calibration constant; `HF_PAYLOAD`
//! is the payload path (default `payload.bin` beside this binary; `none`
//! skips it); `HF_FAIL_FUNCTION=<NAME>` makes that function fail (exit 1,
//! a message on stderr), for testing error paths; `HF_CATALOG` is a catalog
//! file whose functions are served beside the samples (default:
//! `function.csv` beside this binary when it exists, which is how the
//! runtimes stage a synthetic function's row in its image).
//!
//! A call's own shape (`sample_functions::CallWork`): the query of
//! `GET /invoke?duration_ms=..&memory_mb=..&cpu_share=..`, or `--call
//! 'duration_ms=..&memory_mb=..'` for one call; refused (400, or exit 2)
//! for a sample function and beyond `MAX_CALL_MEMORY_MB`.
//!
//! Exit status: 0 success, 1 the function failed, 2 usage or setup error.

use protocol::query::CallParams;
use sample_functions::catalog::{CATALOG_ENV, FUNCTION_FILE_NAME};
use sample_functions::payload::{self, PACKAGE_SCALE_ENV, PAYLOAD_ENV};
use sample_functions::serve::{self, Handling, Reply};
use sample_functions::workload::{
    self, WorkloadSettings, ITERATIONS_ENV, MAX_CALL_MEMORY_MB, TIME_SCALE_ENV,
};
use sample_functions::{catalog, CallWork, Catalog, FunctionSpec};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage:
  hf-fn <NAME> [--call QUERY]                     run one call, print its FunctionOutput JSON
                                                  (QUERY: duration_ms=..&memory_mb=..&cpu_share=..)
  hf-fn serve --function <NAME> [--host H] [--port P] [--exit-on-stdin-eof]
                                                  warm instance: prints {\"port\": N}, then serves
                                                  GET /invoke[?QUERY] and GET /health (port 0 = any);
                                                  --exit-on-stdin-eof: exit when stdin closes
  hf-fn stage <NAME> <DIR>                        write DIR/hf-fn and DIR/payload.bin
  hf-fn list                                      list the functions
  hf-fn calibrate [--ms N]                        measure CPU-loop iterations per ms
environment: HF_TIME_SCALE, HF_PACKAGE_SCALE, HF_ITERATIONS_PER_MS, HF_PAYLOAD, HF_FAIL_FUNCTION,
  HF_CATALOG (a catalog file of more functions; default function.csv beside hf-fn if present)";

/// A failure: exit status and message.
struct Failure(i32, String);

fn usage(msg: impl Into<String>) -> Failure {
    Failure(2, format!("{}\n{USAGE}", msg.into()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => {}
        Err(Failure(code, msg)) => {
            eprintln!("hf-fn: {msg}");
            std::process::exit(code);
        }
    }
}

fn dispatch(args: &[String]) -> Result<(), Failure> {
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("serve") => cmd_serve(&args[1..]),
        Some("stage") => cmd_stage(&args[1..]),
        Some("list") => {
            for f in &functions()?.functions {
                println!("{}", f.name);
            }
            Ok(())
        }
        Some("calibrate") => cmd_calibrate(&args[1..]),
        Some(name) if args.len() == 1 => cmd_run_once(name, ""),
        Some(name) if args.len() == 3 && args[1] == "--call" => cmd_run_once(name, &args[2]),
        Some(_) => Err(usage(format!("unexpected arguments {:?}", &args[1..]))),
    }
}

/// The functions this process knows: the samples, plus `HF_CATALOG`'s
/// (or the `function.csv` staged beside this binary).
fn functions() -> Result<&'static Catalog, Failure> {
    static FUNCTIONS: OnceLock<Result<Catalog, String>> = OnceLock::new();
    let loaded = FUNCTIONS.get_or_init(|| {
        let file = match std::env::var_os(CATALOG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Some(PathBuf::from(path)),
            None => std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join(FUNCTION_FILE_NAME)))
                .filter(|p| p.is_file()),
        };
        match file {
            Some(path) => Catalog::with_file(&path).map_err(|e| e.to_string()),
            None => Ok(catalog().clone()),
        }
    });
    loaded.as_ref().map_err(|e| Failure(2, e.clone()))
}

fn spec_of(name: &str) -> Result<&'static FunctionSpec, Failure> {
    functions()?
        .get(name)
        .ok_or_else(|| usage(format!("unknown function {name:?} (see `hf-fn list`)")))
}

fn settings() -> Result<WorkloadSettings, Failure> {
    WorkloadSettings::from_env_values(
        std::env::var(TIME_SCALE_ENV).ok().as_deref(),
        std::env::var(ITERATIONS_ENV).ok().as_deref(),
    )
    .map_err(|e| Failure(2, e))
}

/// The function's payload bytes at this process's package scale
/// (`HF_PACKAGE_SCALE`).
fn payload_bytes(spec: &FunctionSpec) -> Result<u64, Failure> {
    let scale = payload::parse_package_scale(std::env::var(PACKAGE_SCALE_ENV).ok().as_deref())
        .map_err(|e| Failure(2, e))?;
    Ok(payload::scaled_bytes(spec.package_bytes, scale))
}

/// Reads the payload (the cold-start cost of a large package).
fn load_payload(spec: &FunctionSpec) -> Result<(), Failure> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/hf-fn"));
    let env = std::env::var(PAYLOAD_ENV).ok();
    let bytes = payload_bytes(spec)?;
    match payload::payload_path(env.as_deref(), &exe) {
        Some(path) if bytes > 0 || path.exists() => payload::read_payload(&path, bytes)
            .map(|_| ())
            .map_err(|e| Failure(2, e.to_string())),
        _ => Ok(()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether `HF_FAIL_FUNCTION` names `spec` (read once per process: a warm
/// instance's environment does not change).
fn fails_on_purpose(spec: &FunctionSpec) -> bool {
    std::env::var("HF_FAIL_FUNCTION").ok().as_deref() == Some(spec.name.as_str())
}

/// The work of one call of `spec` with the shape in `query`.
fn call_work(spec: &FunctionSpec, query: &str) -> Result<CallWork, String> {
    let params = CallParams::parse(query).map_err(|e| e.to_string())?;
    CallWork::resolve(spec, &params, MAX_CALL_MEMORY_MB)
}

/// One call: the FunctionOutput JSON, or a failure message.
fn invoke(
    spec: &FunctionSpec,
    work: &CallWork,
    settings: &WorkloadSettings,
    seed: u64,
    fail: bool,
) -> Result<String, String> {
    if fail {
        return Err(format!(
            "function {} failed on purpose (HF_FAIL_FUNCTION)",
            spec.name
        ));
    }
    let start = now_ms();
    let body = workload::run_call(spec, work, settings, seed)?;
    let end = now_ms();
    let out = protocol::FunctionOutput {
        start_time: start,
        end_time: end,
        result: protocol::FunctionResult {
            status_code: 200,
            body,
        },
    };
    serde_json::to_string(&out).map_err(|e| e.to_string())
}

fn cmd_run_once(name: &str, query: &str) -> Result<(), Failure> {
    let spec = spec_of(name)?;
    let work = call_work(spec, query).map_err(usage)?;
    let settings = settings()?;
    load_payload(spec)?;
    let json = invoke(
        spec,
        &work,
        &settings,
        now_ms() as u64,
        fails_on_purpose(spec),
    )
    .map_err(|e| Failure(1, e))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")
        .and_then(|_| out.flush())
        .map_err(|e| Failure(1, format!("writing stdout: {e}")))
}

/// `--flag value` pairs after a subcommand.
fn flags(args: &[String], known: &[&str]) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !known.contains(&a.as_str()) {
            return Err(usage(format!("unknown argument {a:?}")));
        }
        let v = it
            .next()
            .ok_or_else(|| usage(format!("{a} needs a value")))?;
        out.push((a.clone(), v.clone()));
    }
    Ok(out)
}

fn cmd_serve(args: &[String]) -> Result<(), Failure> {
    let mut function = None;
    let mut host = "127.0.0.1".to_string();
    let mut port = 0u16;
    let exit_on_eof = args.iter().any(|a| a == "--exit-on-stdin-eof");
    let args: Vec<String> = args
        .iter()
        .filter(|a| *a != "--exit-on-stdin-eof")
        .cloned()
        .collect();
    for (k, v) in flags(&args, &["--function", "--host", "--port"])? {
        match k.as_str() {
            "--function" => function = Some(v),
            "--host" => host = v,
            _ => port = v.parse().map_err(|_| usage(format!("bad port {v:?}")))?,
        }
    }
    let name = function.ok_or_else(|| usage("serve needs --function <NAME>"))?;
    let spec = spec_of(&name)?;
    let settings = settings()?;
    let listener = TcpListener::bind((host.as_str(), port))
        .map_err(|e| Failure(2, format!("binding {host}:{port}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure(2, e.to_string()))?
        .port();
    load_payload(spec)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{{\"port\": {bound}}}")
            .and_then(|_| out.flush())
            .map_err(|e| Failure(2, format!("writing stdout: {e}")))?;
    }
    if exit_on_eof {
        // The parent holds our stdin open; when it goes (even killed), the
        // pipe closes and this instance ends instead of lingering.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let calls = Arc::new(AtomicU64::new(0));
    let seed_base = now_ms() as u64;
    let fail = fails_on_purpose(spec);
    // A call with no work (noop, or any function at time scale 0) is
    // answered on the event loop; any other runs on a thread of its own.
    serve::serve(listener, move |method, path, query| match (method, path) {
        ("GET", "/invoke") => {
            let work = match call_work(spec, query) {
                Ok(w) => w,
                Err(e) => return Handling::Now(Reply::json(400, serve::error_json(&e))),
            };
            let instant = work.is_instant(spec, &settings);
            let seed = seed_base.wrapping_add(calls.fetch_add(1, Ordering::Relaxed));
            let call = move || match invoke(spec, &work, &settings, seed, fail) {
                Ok(json) => Reply::json(200, json),
                Err(e) => {
                    eprintln!("hf-fn: {e}");
                    Reply::json(500, serve::error_json(&e))
                }
            };
            if instant {
                Handling::Now(call())
            } else {
                Handling::OnThread(Box::new(call))
            }
        }
        ("GET", "/health") => Handling::Now(Reply::json(
            200,
            serde_json::json!({
                "ok": true,
                "function": spec.name,
                "invocations": calls.load(Ordering::Relaxed),
            })
            .to_string(),
        )),
        (_, "/invoke" | "/health") => Handling::Now(Reply::json(405, serve::error_json("use GET"))),
        _ => Handling::Now(Reply::json(
            404,
            serve::error_json("not found: use /invoke or /health"),
        )),
    })
    .map_err(|e| Failure(2, format!("serving: {e}")))
}

fn cmd_stage(args: &[String]) -> Result<(), Failure> {
    let [name, dir] = args else {
        return Err(usage("stage needs <NAME> <DIR>"));
    };
    let spec = spec_of(name)?;
    let dir = Path::new(dir);
    let io = |what: &str, e: std::io::Error| Failure(2, format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let exe = std::env::current_exe().map_err(|e| io("locating this binary", e))?;
    std::fs::copy(&exe, dir.join("hf-fn")).map_err(|e| io("copying hf-fn", e))?;
    let p = dir.join(payload::PAYLOAD_FILE_NAME);
    let bytes = payload_bytes(spec)?;
    payload::write_payload_file(&p, bytes).map_err(|e| io(&p.display().to_string(), e))?;
    println!(
        "staged {} ({bytes} payload bytes) in {}",
        spec.name,
        dir.display()
    );
    Ok(())
}

/// CPU time of this thread in ns (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn cmd_calibrate(args: &[String]) -> Result<(), Failure> {
    let mut batch_ms = 100u64;
    for (_, v) in flags(args, &["--ms"])? {
        batch_ms = v.parse().map_err(|_| usage(format!("bad --ms {v:?}")))?;
    }
    // Find an iteration count that takes about `batch_ms`, then time 20
    // batches, by wall clock and by this thread's CPU time (the CPU-time rate
    // is what an idle core achieves even when the machine is busy).
    let mut n = 1_000_000u64;
    loop {
        let t = Instant::now();
        workload::cpu_loop(n, 1);
        let el = t.elapsed().as_secs_f64() * 1000.0;
        if el >= batch_ms as f64 / 2.0 {
            n = ((n as f64) * batch_ms as f64 / el) as u64;
            break;
        }
        n *= 2;
    }
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..20u64 {
        let c0 = thread_cpu_ns();
        let t = Instant::now();
        workload::cpu_loop(n, i + 1);
        wall.push(n as f64 / (t.elapsed().as_secs_f64() * 1000.0));
        if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
            cpu.push(n as f64 / ((b.saturating_sub(a)).max(1) as f64 / 1e6));
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{{\"iterationsPerMsCpuTime\": {:.0}, \"iterationsPerMsWall\": {:.0}, \"batches\": 20, \"batchIterations\": {n}, \"compiledConstant\": {}}}",
        median(&cpu),
        median(&wall),
        workload::ITERATIONS_PER_MS
    );
    Ok(())
}
