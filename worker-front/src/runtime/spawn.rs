//! Starting a function's program, past a busy executable (`ETXTBSY`).
//!
//! The worker writes executables (a staged copy of `hf-fn`, a user
//! function's unpacked package) on some threads while it starts programs
//! on others. A child forked on one thread inherits every descriptor open
//! at that moment, including one another thread holds for writing an
//! executable; close-on-exec closes it only when the child execs, a few
//! microseconds later. If, in that window, anyone execs the file being
//! written, the kernel refuses with `ETXTBSY` ("Text file busy"), although
//! the file was complete and closed by its writer. This is the well-known
//! fork/exec race of multithreaded programs (Go's `os/exec` and Cargo meet
//! it too, and retry); `reproduce hotfunctions` saw it once in 2,217 calls
//! (`spawning hf-w1: Text file busy (os error 26)`, a 500 to the caller).
//!
//! [`spawn`] retries such a refusal a few times, a little later each
//! time; any other error, or a file still busy after the retries, is
//! returned as it is.
//!
//! It also starts the program under the Linux scheduling policy the
//! worker gives its functions ([`FunctionSched`], `--function-sched`).
//! Under [`FunctionSched::Batch`] the fork is made by a short-lived thread
//! of the worker that first puts itself under `SCHED_BATCH`: a child
//! inherits its forking thread's policy and nice value, and every thread
//! the child makes inherits them in turn, so the function is under the
//! policy from its first instruction, with no race against the threads it
//! starts (a policy set from outside after the start would miss those
//! made before). The nice value is kept as it is. That thread costs tens
//! of microseconds per start, next to the millisecond of a fork and exec
//! (a one-shot function pays it on every call).

use std::time::Duration;

use tokio::process::{Child, Command};

/// How Linux schedules the function processes a worker starts
/// (`--function-sched`; process runtime: the Docker engine starts
/// containers' processes itself).
///
/// - `Normal` (the default): `SCHED_OTHER`, as every process is.
/// - `Batch`: `SCHED_BATCH` (sched(7)): the same CPU share by nice value,
///   but the scheduler takes the process as CPU-bound and a wake-up of
///   one of its threads does not preempt the thread running on that CPU.
///   When the worker hands a call to a function's thread, the worker's
///   own thread then goes on (reads the next request, writes the next
///   call) instead of being switched out at once and back later. On a
///   loaded machine with fewer cores than busy threads this saves two
///   context switches per call (bench/user-functions.sh measures both);
///   the cost is that a woken function may wait up to the running
///   thread's time slice before it runs, which adds to its latency when
///   every core is busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionSched {
    #[default]
    Normal,
    Batch,
}

impl FunctionSched {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionSched::Normal => "normal",
            FunctionSched::Batch => "batch",
        }
    }
}

impl std::str::FromStr for FunctionSched {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(FunctionSched::Normal),
            "batch" => Ok(FunctionSched::Batch),
            other => Err(format!(
                "unknown function scheduling policy {other:?} (normal or batch)"
            )),
        }
    }
}

/// `ETXTBSY` on Linux.
const TEXT_FILE_BUSY: i32 = 26;

/// Waits before each retry (about 0.3 s in all: far longer than the
/// fork-to-exec window).
const RETRY_DELAYS_MS: [u64; 5] = [2, 8, 25, 75, 200];

/// One attempt: under [`FunctionSched::Batch`], from a thread of its own
/// put under that policy first (module doc).
fn spawn_once(cmd: &mut Command, sched: FunctionSched) -> std::io::Result<Child> {
    match sched {
        FunctionSched::Normal => cmd.spawn(),
        FunctionSched::Batch => {
            // The child's pipes and its reaping belong to this runtime.
            let runtime = tokio::runtime::Handle::current();
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        enter_batch()?;
                        let _runtime = runtime.enter();
                        cmd.spawn()
                    })
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")))
            })
        }
    }
}

/// Puts the calling thread under `SCHED_BATCH` (`sched_setscheduler(0,
/// ..)` names the calling thread; its nice value is not changed).
fn enter_batch() -> std::io::Result<()> {
    scheduler::set_self_policy(scheduler::Policy::Batch, 0).map_err(|()| {
        let e = std::io::Error::last_os_error();
        std::io::Error::new(e.kind(), format!("entering SCHED_BATCH: {e}"))
    })
}

/// Field `n` (1-based, as proc(5) numbers them; from 3 on) of a
/// `/proc/<pid>/stat` line. The command name (field 2, in parentheses)
/// may hold spaces and parentheses, so fields are counted from its last
/// `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3.
    rest.split_whitespace().nth(n.checked_sub(3)?)
}

/// Field 19 (nice) of a `/proc/<pid>/stat` line.
pub fn nice_of_stat(stat: &str) -> Option<i32> {
    stat_field(stat, 19)?.parse().ok()
}

/// Field 41 (policy: 0 `SCHED_OTHER`, 3 `SCHED_BATCH`) of a
/// `/proc/<pid>/stat` line.
pub fn policy_of_stat(stat: &str) -> Option<u32> {
    stat_field(stat, 41)?.parse().ok()
}

/// Spawns `cmd` under `sched`, retrying while its executable is busy
/// (module doc).
pub async fn spawn(cmd: &mut Command, sched: FunctionSched) -> std::io::Result<Child> {
    let mut delays = RETRY_DELAYS_MS.iter();
    loop {
        match spawn_once(cmd, sched) {
            Err(e) if e.raw_os_error() == Some(TEXT_FILE_BUSY) => match delays.next() {
                Some(&ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    /// An executable copy of `/bin/true` in a fresh directory, and the
    /// directory's guard.
    fn copy_of_true() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        std::fs::copy("/bin/true", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_busy_executable_is_started_once_its_writer_lets_go() {
        let (_dir, path) = copy_of_true();
        // A writer holds the file open, as a forked child briefly does.
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let e = Command::new(&path).spawn().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(TEXT_FILE_BUSY), "{e}");
        let (released_tx, released_rx) = std::sync::mpsc::channel();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(writer);
            released_tx.send(()).unwrap();
        });
        let status = spawn(&mut Command::new(&path), FunctionSched::Normal)
            .await
            .expect("started after the writer closed it")
            .wait()
            .await
            .unwrap();
        assert!(status.success());
        released_rx.recv().unwrap();
        releaser.join().unwrap();
    }

    #[tokio::test]
    async fn a_file_busy_for_good_is_an_error_after_the_retries() {
        let (_dir, path) = copy_of_true();
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let e = spawn(&mut Command::new(&path), FunctionSched::Normal)
            .await
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(TEXT_FILE_BUSY), "{e}");
        writer.flush().unwrap();
    }

    #[tokio::test]
    async fn other_errors_are_returned_at_once() {
        let e = spawn(
            &mut Command::new("/nonexistent/hf-no-such-program"),
            FunctionSched::Batch,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    /// What a child started under `sched` reads of itself in
    /// `/proc/self/stat`: (nice, policy).
    async fn child_sched(sched: FunctionSched) -> (i32, u32) {
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/stat")
            .stdout(std::process::Stdio::piped());
        let out = spawn(&mut cmd, sched)
            .await
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        let stat = String::from_utf8(out.stdout).unwrap();
        (nice_of_stat(&stat).unwrap(), policy_of_stat(&stat).unwrap())
    }

    #[tokio::test]
    async fn a_batch_child_is_under_sched_batch_with_the_workers_nice_value() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let nice = nice_of_stat(&own).unwrap();
        assert_eq!(child_sched(FunctionSched::Batch).await, (nice, 3));
        assert_eq!(child_sched(FunctionSched::Normal).await, (nice, 0));
        // The thread that spawns is not left under the policy.
        let this = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_eq!(policy_of_stat(&this), Some(0));
    }

    #[test]
    fn stat_fields_are_counted_from_the_command_names_end() {
        // Field 2 holds spaces and parentheses; 19 is nice, 41 the policy.
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[19 - 3] = "-5".into();
        fields[41 - 3] = "3".into();
        let line = format!("4242 (a) (b c) {}\n", fields.join(" "));
        assert_eq!(nice_of_stat(&line), Some(-5));
        assert_eq!(policy_of_stat(&line), Some(3));
        assert_eq!(nice_of_stat("4242 (short) R 1 2"), None);
        assert_eq!(stat_field(&line, 3), Some("3"));
        assert_eq!(stat_field(&line, 2), None);
        assert_eq!(policy_of_stat("no parenthesis"), None);
        assert_eq!("batch".parse::<FunctionSched>(), Ok(FunctionSched::Batch));
        assert!("fifo"
            .parse::<FunctionSched>()
            .unwrap_err()
            .contains("normal or batch"));
    }
}
