//! Builds `static_echo.rs` (beside this file) into a statically linked
//! executable, once per test binary. Included with `#[path]` by
//! worker-front's user-function tests (`mod.rs`: `static_user_fn`) and by
//! the balancer's (`load-balancer/tests/slim_queue.rs`), so both run the
//! same test function.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The built executable (`rustc -O -C target-feature=+crt-static`; it
/// uses the standard library only, so it builds alone in seconds).
pub fn static_echo() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // `CARGO_MANIFEST_DIR` is worker-front's or the balancer's.
            let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../worker-front/tests/user_functions_support/static_echo.rs");
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("static-echo");
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let built = std::process::Command::new(rustc)
                .args([
                    "--edition",
                    "2021",
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                ])
                .arg(&source)
                .arg("-o")
                .arg(&out)
                .output()
                .expect("running rustc");
            assert!(
                built.status.success(),
                "rustc {}: {}",
                source.display(),
                String::from_utf8_lossy(&built.stderr)
            );
            out
        })
        .clone()
}
