//! Child processes of an experiment (workers, balancer): started in their
//! own process group with their output in a file, found next to the running
//! executable, waited for over HTTP `/health`, and always stopped: SIGTERM
//! to the whole group (so a worker's function processes go too), then
//! SIGKILL after a grace period, on [`Drop`] as well (errors, Ctrl-C,
//! panics).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::ExperimentError;

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

/// A free TCP port on 127.0.0.1 (bound then released; the child binds it
/// right after).
pub fn free_port() -> Result<u16, ExperimentError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| ExperimentError::Io {
            what: "finding a free port".into(),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| ExperimentError::Io {
            what: "finding a free port".into(),
            source,
        })
}

/// A running child; stopped (with its process group) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    pub name: String,
    pub url: String,
    pub output: PathBuf,
    child: Child,
    stopped: bool,
}

impl ChildProcess {
    /// Starts `command` as `name` in a new process group, stdout and stderr
    /// appended to `output`, under `nice -n N` if `nice` is given. `url` is
    /// where it will serve.
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
        Ok(Self {
            name: name.to_string(),
            url,
            output: output.to_path_buf(),
            child,
            stopped: false,
        })
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

    /// SIGTERM to the process group, SIGKILL after `grace`, then reap.
    pub fn stop(&mut self, grace: Duration) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // The leader is gone; its group may still hold stragglers.
            let _ = killpg(self.pgid(), Signal::SIGKILL);
            return;
        }
        let _ = killpg(self.pgid(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
