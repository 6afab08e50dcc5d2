//! Child processes of an experiment (workers, balancer): started in their
//! own process group with their output in a file, found next to the running
//! executable, waited for over HTTP `/health`, and always stopped: SIGTERM
//! to the whole group (so a worker's function processes go too), then
//! SIGKILL after a grace period, on [`Drop`] as well (errors, Ctrl-C,
//! panics).
//!
//! A child must not outlive the experiment even when the experiment cannot
//! run its [`Drop`]s (`kill -9`, an OOM kill). The usual tool,
//! `PR_SET_PDEATHSIG`, has to be set in the child between `fork` and
//! `exec` (`pre_exec`, which is `unsafe`), and the workspace forbids
//! `unsafe`; it would also fire when the *thread* that forked exits, not
//! the process. So each child gets a **guard**: a small process (this
//! executable in its hidden `guard` mode, [`run_guard`]) in its own process
//! group, whose stdin is a pipe the experiment holds open. The kernel
//! closes that pipe whatever way the experiment ends; the guard reads EOF
//! and stops the child's process group (SIGTERM, then SIGKILL after
//! [`STOP_GRACE`]).
//! On an ordinary stop the experiment kills the guard first (SIGKILL, so it
//! never signals a group that may already be gone), then stops the child.
//! The guard runs only where this executable is the `simulator` binary (or
//! one sits next to it); elsewhere (a library caller) children are stopped
//! on [`Drop`] only.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::ExperimentError;

/// How long a child may take to exit after SIGTERM before SIGKILL: longer
/// than the servers' own graceful stop (`http_front::Settings`'
/// `shutdown_timeout`, 5 s, for calls in flight) plus their clean-up (a
/// balancer removes its temporary store of user functions, a worker its
/// work area and instances). With the 5 s it had before, a balancer still
/// draining was killed before its clean-up.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Worker settings read from the environment that the workers of an
/// experiment (or a reproduction) must not inherit from the caller's:
/// joining another balancer (`HF_JOIN`, `HF_ADVERTISE_URL`), one data
/// directory locked by every worker (`HF_DATA_DIR`), and how function
/// processes or containers are placed and scheduled (`HF_FUNCTION_SCHED`,
/// which the command line sets, `HF_DOCKER_INSTANCE_NETWORK`,
/// `HF_DOCKER_CGROUP_PARENT`). `HF_TIME_SCALE` and `HF_PACKAGE_SCALE` are
/// set by the caller for each worker.
const INHERITED_WORKER_SETTINGS: [&str; 6] = [
    "HF_JOIN",
    "HF_ADVERTISE_URL",
    "HF_DATA_DIR",
    "HF_FUNCTION_SCHED",
    "HF_DOCKER_INSTANCE_NETWORK",
    "HF_DOCKER_CGROUP_PARENT",
];

/// Removes from `cmd` (a worker's) every setting of
/// `INHERITED_WORKER_SETTINGS`: the workers this program starts are its
/// own, and say what they run by their command line.
pub fn scrub_worker_env(cmd: &mut Command) {
    for name in INHERITED_WORKER_SETTINGS {
        cmd.env_remove(name);
    }
}

/// Removes the work areas (`worker_front::runtime::ownership`) that this
/// experiment's workers left: a worker removes its own when it stops, but
/// not one killed after its grace period. Only areas whose owner is proven
/// gone (their lock is free, which
/// [`worker_front::runtime::ownership::claim_orphans`] checks)
/// and whose record names one of `ours` (the ids this experiment gave its
/// workers, which carry its pid; a worker's store of user functions is
/// `<id>+functions`); the engine objects of a Docker worker's area were
/// removed first (`live::remove_docker_leftovers`). Anything else is left to
/// whoever owns it. Failures are only reported: the results are written.
pub fn remove_work_areas(ours: &[String]) {
    use worker_front::runtime::ownership;
    if ours.is_empty() {
        return;
    }
    // The workers' work dir: their default, the system's temporary one.
    let orphans = match ownership::claim_orphans(&std::env::temp_dir(), Path::new("")) {
        Ok(o) => o,
        Err(e) => {
            crate::note!("experiment: cannot look for its workers' work areas: {e}");
            return;
        }
    };
    for o in orphans {
        let recorded = o.record.worker_id.clone();
        let id = recorded.strip_suffix("+functions").unwrap_or(&recorded);
        if !ours.iter().any(|o| o == id) {
            continue; // another's: its lock is let go unchanged
        }
        let dir = o.dir.clone();
        match o.remove() {
            Ok(()) => crate::note!(
                "experiment: removed {}, left by its worker {id}",
                dir.display()
            ),
            Err(e) => crate::note!("experiment: removing {}: {e}", dir.display()),
        }
    }
}

/// Where the testbed's binaries are: the directory of the running
/// executable (for a test harness in `target/<profile>/deps`, its parent).
pub fn default_bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        return dir.parent().map(Path::to_path_buf);
    }
    Some(dir)
}

/// The path of binary `name` in `dir`, or an error naming the build to run.
pub fn locate(dir: &Path, name: &str, package: &str) -> Result<PathBuf, ExperimentError> {
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    Err(ExperimentError::MissingBinary {
        path,
        build: format!(
            "cargo build{} -p {package}",
            if release { " --release" } else { "" }
        ),
    })
}

/// The address in a child's start-up line: `... listening on ADDR ...`
/// (the worker prints `127.0.0.1:PORT`, the balancer
/// `http://127.0.0.1:PORT`), as a base URL.
pub fn listening_url(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ';' | '(' | ')'))
        .collect();
    let addr: std::net::SocketAddr = addr.trim_end_matches('/').parse().ok()?;
    (addr.port() != 0).then(|| format!("http://{addr}"))
}

/// A running child; stopped (with its process group) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    pub name: String,
    pub url: String,
    pub output: PathBuf,
    child: Child,
    /// The guard stopping the child's group if this process dies.
    guard: Option<Child>,
    stopped: bool,
    /// Where this child's output began in `output` (the file is appended
    /// to by reruns), for [`Self::wait_listening`].
    output_start: u64,
}

impl ChildProcess {
    /// Starts `command` as `name` in a new process group, stdout and stderr
    /// appended to `output`, under `nice -n N` if `nice` is given. `url` is
    /// where it will serve; empty when the child binds port 0 and tells
    /// ([`Self::wait_listening`]).
    pub fn spawn(
        name: &str,
        mut command: Command,
        url: String,
        output: &Path,
        nice: Option<i32>,
    ) -> Result<Self, ExperimentError> {
        use std::os::unix::process::CommandExt as _;
        let io = |source| ExperimentError::Io {
            what: format!("creating {}", output.display()),
            source,
        };
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .map_err(io)?;
        let output_start = out.metadata().map_err(io)?.len();
        let err = out.try_clone().map_err(io)?;
        let (command_out, command_err) =
            (out.try_clone().map_err(io)?, err.try_clone().map_err(io)?);
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if let Some(n) = nice {
            // Lower the child's priority (the replayer, on its own machine in
            // a real testbed, keeps precise dispatch); `nice` execs, so the
            // pid (and process group) is the child's.
            let program = command.get_program().to_owned();
            let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
            let envs: Vec<_> = command
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
                .collect();
            let mut wrapped = Command::new("nice");
            wrapped.arg("-n").arg(n.to_string()).arg(program).args(args);
            for (k, v) in envs {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            wrapped
                .stdin(Stdio::null())
                .stdout(command_out.try_clone().map_err(io)?)
                .stderr(command_err.try_clone().map_err(io)?)
                .process_group(0);
            command = wrapped;
        }
        let child = command.spawn().map_err(|source| ExperimentError::Spawn {
            name: name.to_string(),
            command: format!("{command:?}"),
            source,
        })?;
        let guard = spawn_guard(child.id(), output);
        Ok(Self {
            name: name.to_string(),
            url,
            output: output.to_path_buf(),
            child,
            guard,
            stopped: false,
            output_start,
        })
    }

    /// Waits until the child's start-up line (`... listening on ADDR`)
    /// appears in its output, and takes `ADDR` as its URL: a child started
    /// on port 0 picks its own port, so no other program can take the port
    /// between a parent's choice and the child's bind (issue 13 part 4).
    /// Fails when the child exits first, or after `timeout`.
    pub async fn wait_listening(&mut self, timeout: Duration) -> Result<(), ExperimentError> {
        use std::io::{Seek as _, SeekFrom};
        let deadline = Instant::now() + timeout;
        loop {
            let mut text = String::new();
            if let Ok(mut f) = File::open(&self.output) {
                if f.seek(SeekFrom::Start(self.output_start)).is_ok() {
                    // Bounded: the start-up line comes first, within the
                    // first lines of output.
                    let _ = f.take(1 << 20).read_to_string(&mut text);
                }
            }
            if let Some(url) = text.lines().find_map(listening_url) {
                self.url = url;
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ExperimentError::Unhealthy {
                    name: self.name.clone(),
                    detail: format!(
                        "it exited ({status}) before its start-up line; last output ({}):\n{}",
                        self.output.display(),
                        self.output_tail(15)
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(ExperimentError::Unhealthy {
                    name: self.name.clone(),
                    detail: format!(
                        "no start-up line (\"listening on ...\") within {} s; last output ({}):\n{}",
                        timeout.as_secs(),
                        self.output.display(),
                        self.output_tail(15)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pid of the guard watching this child, if one runs.
    pub fn guard_pid(&self) -> Option<u32> {
        self.guard.as_ref().map(Child::id)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the child's output (for error messages).
    pub fn output_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `GET <url>/health` until it answers 2xx, the child exits, or
    /// `timeout` passes.
    pub async fn wait_healthy(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), ExperimentError> {
        let deadline = Instant::now() + timeout;
        let health = format!("{}/health", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ExperimentError::Unhealthy {
                    name: self.name.clone(),
                    detail: format!(
                        "it exited ({status}) before answering {health}; last output ({}):\n{}",
                        self.output.display(),
                        self.output_tail(15)
                    ),
                });
            }
            let ok = client
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ExperimentError::Unhealthy {
                    name: self.name.clone(),
                    detail: format!(
                        "{health} did not answer within {} s; last output ({}):\n{}",
                        timeout.as_secs(),
                        self.output.display(),
                        self.output_tail(15)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM to the process group, SIGKILL after [`STOP_GRACE`], then
    /// reap. A child that had to be killed is reported on stderr (it had no
    /// time to remove what it made).
    pub fn stop(&mut self) {
        if !self.stop_within(STOP_GRACE) {
            crate::note!(
                "experiment: warning: {} (pid {}) did not exit within {} s of SIGTERM and was killed; \
                 it may have left temporary files behind (its output: {})",
                self.name,
                self.child.id(),
                STOP_GRACE.as_secs(),
                self.output.display()
            );
        }
    }

    /// SIGTERM to the process group, SIGKILL after `grace`, then reap:
    /// `false` when the child had to be killed.
    fn stop_within(&mut self, grace: Duration) -> bool {
        if std::mem::replace(&mut self.stopped, true) {
            return true;
        }
        // The guard first: once the child is reaped its group id may be
        // reused, and the guard must never signal it then.
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // The leader is gone; its group may still hold stragglers.
            let _ = killpg(self.pgid(), Signal::SIGKILL);
            return true;
        }
        let _ = killpg(self.pgid(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut exited = false;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        exited
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `simulator` executable for a guard: this one if it is `simulator`,
/// else a `simulator` next to it (a test harness in `deps/`), else none.
fn guard_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_stem().is_some_and(|n| n == "simulator") {
        return Some(exe);
    }
    let next = default_bin_dir()?.join("simulator");
    next.is_file().then_some(next)
}

/// Starts the guard of the child `pid` (see the module doc); `None` (with a
/// warning) if it cannot run.
fn spawn_guard(pid: u32, output: &Path) -> Option<Child> {
    use std::os::unix::process::CommandExt as _;
    let exe = guard_executable()?;
    let log = File::options().append(true).open(output).ok();
    let mut command = Command::new(exe);
    command
        .args(["guard", "--pgid", &pid.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::null, Stdio::from))
        .process_group(0);
    match command.spawn() {
        Ok(guard) => Some(guard),
        Err(e) => {
            crate::note!("experiment: warning: cannot start the guard of pid {pid} ({e}); it is stopped on a clean exit only");
            None
        }
    }
}

/// Arguments of the hidden `simulator guard` mode.
#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// The process group to stop when stdin closes.
    #[arg(long)]
    pub pgid: u32,
    /// How long the group may take to exit after SIGTERM before SIGKILL
    /// (the default is [`STOP_GRACE`]).
    #[arg(long, value_parser = crate::replay::parse_duration, default_value = "10s")]
    pub grace: Duration,
}

/// `simulator guard --pgid P`: waits until stdin reaches EOF (its parent,
/// the experiment, ended in any way), then stops process group `P`:
/// SIGTERM, then SIGKILL after the grace period. It runs in its own
/// process group, so a terminal's Ctrl-C reaches the experiment (which
/// stops the children itself and kills this guard), not the guard.
pub fn run_guard(args: GuardArgs) -> anyhow::Result<()> {
    let pgid = i32::try_from(args.pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| anyhow::anyhow!("bad process group {}", args.pgid))?;
    let pgid = Pid::from_raw(pgid);
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if killpg(pgid, Signal::SIGTERM).is_err() {
        return Ok(()); // the group is gone already
    }
    crate::note!("guard: the experiment is gone; stopped process group {pgid}");
    let deadline = Instant::now() + args.grace;
    while Instant::now() < deadline {
        if killpg(pgid, None).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::listening_url;

    #[test]
    fn start_up_lines_give_the_childs_own_address() {
        assert_eq!(
            listening_url(
                "worker-front 0.1.0 hfexp-1-0-0 listening on 127.0.0.1:40123 (process runtime, ...)"
            )
            .as_deref(),
            Some("http://127.0.0.1:40123")
        );
        assert_eq!(
            listening_url(
                "load-balancer 0.1.0 listening on http://127.0.0.1:40999 (algorithm rr, ...)"
            )
            .as_deref(),
            Some("http://127.0.0.1:40999")
        );
        assert_eq!(
            listening_url("x listening on [::1]:8222; more").as_deref(),
            Some("http://[::1]:8222")
        );
        for line in [
            "a warning before the start-up line",
            "listening on 127.0.0.1:0",
            "listening on nowhere",
        ] {
            assert_eq!(listening_url(line), None, "{line}");
        }
    }
}
