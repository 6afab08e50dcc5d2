//! What the user-function tests of worker-front (`mod.rs`) and of the
//! balancer (`load-balancer/tests/slim_queue.rs`, with `#[path]`) share:
//! the static echo function (`static_echo.rs` beside this file, built
//! into a statically linked executable once per test binary) and the
//! `POST /deploy` form Glambdar's clients send.

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

/// `POST <base>/deploy` of `zip` (named `file_name`) as a multipart form
/// with the text `fields` (`funcName`, `rateLimit`) before it.
pub async fn post_deploy(
    client: &reqwest::Client,
    base: &str,
    fields: &[(&str, &str)],
    file_name: &str,
    zip: &[u8],
) -> reqwest::Response {
    let boundary = "hf-test-boundary-7c1e";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/zip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    client
        .post(format!("{base}/deploy"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}
