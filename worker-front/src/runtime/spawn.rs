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

use std::time::Duration;

use tokio::process::{Child, Command};

/// `ETXTBSY` on Linux.
const TEXT_FILE_BUSY: i32 = 26;

/// Waits before each retry (about 0.3 s in all: far longer than the
/// fork-to-exec window).
const RETRY_DELAYS_MS: [u64; 5] = [2, 8, 25, 75, 200];

/// Spawns `cmd`, retrying while its executable is busy (module doc).
pub async fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let mut delays = RETRY_DELAYS_MS.iter();
    loop {
        match cmd.spawn() {
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
        let status = spawn(&mut Command::new(&path))
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
        let e = spawn(&mut Command::new(&path)).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(TEXT_FILE_BUSY), "{e}");
        writer.flush().unwrap();
    }

    #[tokio::test]
    async fn other_errors_are_returned_at_once() {
        let e = spawn(&mut Command::new("/nonexistent/hf-no-such-program"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
