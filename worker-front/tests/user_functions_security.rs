//! Bad input to the Glambdar routes of the real `worker-front` binary
//! (issue 14 §3): each bad package is a 4xx JSON naming the problem and
//! the version deployed before keeps serving; a function that crashes,
//! hangs past its timeout or writes megabytes fails its call with a clear
//! 5xx, its instance is replaced, the worker stays healthy and the logs
//! stay bounded.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod user_functions_support;

use std::io::{Read, Write};
use user_functions_support::*;

/// Deploys `zip` as `f` and expects a 4xx whose message contains `needle`.
async fn refused(w: &Worker, zip: &[u8], status: u16, needle: &str) {
    let (s, v) = w.deploy("f.zip", zip, Some("f"), None).await;
    assert_eq!(s, status, "{needle}: {v}");
    assert_eq!(v["Error"], true, "{v}");
    let msg = v["Message"].as_str().unwrap();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    // The previous version keeps serving.
    let (s, h, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(h["x-echo"], "good", "{text}");
    assert_eq!(h["x-function-version"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packages_are_refused_and_the_previous_version_keeps_serving() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w
        .deploy("f.zip", &native_zip("good", None), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let manifest = br#"{"runtime": "http", "entry": "bin/fn"}"#;
    let bin = user_fn_binary();
    let with = |extra: Entry| {
        zip_of(&[
            Entry::File("hf-function.json", manifest, 0o644),
            Entry::File("bin/fn", &bin, 0o755),
            extra,
        ])
    };

    // Zip slip: a relative escape and an absolute path.
    refused(
        &w,
        &with(Entry::File("../../evil.txt", b"x", 0o644)),
        400,
        "zip slip",
    )
    .await;
    refused(
        &w,
        &with(Entry::File("/tmp/hf-evil.txt", b"x", 0o644)),
        400,
        "zip slip",
    )
    .await;
    assert!(!dirs.root.path().join("evil.txt").exists());
    assert!(!dirs.data().join("evil.txt").exists());

    // Symlinks out of the package.
    refused(
        &w,
        &with(Entry::Symlink("passwd", "/etc/passwd")),
        400,
        "symlink",
    )
    .await;
    refused(
        &w,
        &with(Entry::Symlink("up", "../../..")),
        400,
        "points outside",
    )
    .await;

    // Zip bombs: too many entries, too many bytes unpacked.
    let names: Vec<String> = (0..2001).map(|i| format!("f{i}")).collect();
    let many: Vec<Entry> = names.iter().map(|n| Entry::File(n, b"", 0o644)).collect();
    refused(&w, &zip_of(&many), 400, "more than 2000 entries").await;
    let zeros = vec![0u8; 65 * 1024 * 1024];
    let bomb = with(Entry::File("zeros.bin", &zeros, 0o644));
    assert!(
        bomb.len() < 8 * 1024 * 1024,
        "the bomb is small: {}",
        bomb.len()
    );
    refused(&w, &bomb, 400, "unpacks to more than").await;

    // Manifests: none, malformed, out of bounds; a missing entry file.
    refused(
        &w,
        &zip_of(&[Entry::File("main.py", b"print(1)", 0o644)]),
        400,
        "no manifest",
    )
    .await;
    let bad = |m: &'static str| zip_of(&[Entry::File("hf-function.json", m.as_bytes(), 0o644)]);
    refused(&w, &bad("{not json"), 400, "malformed manifest").await;
    refused(
        &w,
        &bad(r#"{"runtime": "python"}"#),
        400,
        "malformed manifest",
    )
    .await;
    refused(
        &w,
        &bad(r#"{"runtime": "node", "entry": "a.js", "x": 1}"#),
        400,
        "unknown field",
    )
    .await;
    refused(
        &w,
        &bad(r#"{"runtime": "http", "entry": "fn", "timeout_ms": 999999}"#),
        400,
        "timeout_ms",
    )
    .await;
    refused(&w, &bad(r#"{"runtime": "node"}"#), 400, "\"index.js\"").await;
    // A manifest is an object: serde's derive would read `["node"]` by
    // position, as `{"runtime": "node"}`, and deploy this zip.
    refused(
        &w,
        &zip_of(&[
            Entry::File("hf-function.json", br#"["node"]"#, 0o644),
            Entry::File(
                "index.js",
                b"exports.handler = async () => ({statusCode: 200});",
                0o644,
            ),
        ]),
        400,
        "invalid type: sequence, expected struct Manifest",
    )
    .await;
    refused(
        &w,
        &bad(r#"{"runtime": "http", "entry": "bin/missing"}"#),
        400,
        "bin/missing",
    )
    .await;
    refused(&w, b"this is not a zip", 400, "not a readable zip").await;

    // Names: invalid, and a sample function's.
    let (s, v) = w
        .deploy("x.zip", &native_zip("good", None), Some("no/slash"), None)
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = w
        .deploy("W1.zip", &native_zip("good", None), None, None)
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["Message"].as_str().unwrap().contains("reserved"), "{v}");
    let (s, v) = w
        .deploy("x.zip", &native_zip("good", None), Some("x"), Some("fast"))
        .await;
    assert_eq!(s, 400, "{v}");

    // An upload over the limit: refused from its Content-Length, before
    // its body is sent.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    write!(
        tcp,
        "POST /deploy HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        40 * 1024 * 1024
    )
    .unwrap();
    let mut reply = vec![0u8; 4096];
    let n = tcp.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("too large"), "{reply}");

    // Nothing half-made was left, and still only version 1.
    let tmp: Vec<_> = std::fs::read_dir(dirs.data().join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let (_, v) = w.json("GET", "/info/f", None).await;
    assert_eq!(v["Version"], 1, "{v}");
    assert_eq!(w.json("GET", "/info", None).await.1["Count"], 1);
    w.stop();
}

fn pid_of(text: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["pid"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_died_while_idle_is_replaced_and_the_next_call_served() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w.deploy("f.zip", &native_zip("ok", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    let first = pid_of(&text);
    // Killed while idle (this test's worker's own child), and reaped by
    // the worker.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let proc_dir = format!("/proc/{first}");
    await_true("the worker reaps the killed instance", || {
        !std::path::Path::new(&proc_dir).exists()
    })
    .await;
    // The next call is not a 502: it goes to a new instance.
    let (s, h, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    assert_ne!(pid_of(&text), first, "a new instance");
    assert!(h["x-meta"]
        .to_str()
        .unwrap()
        .contains("\"UsingExistingRestContainer\":false"));
    let (_, v) = w.json("GET", "/info/f", None).await;
    assert_eq!(
        (v["Calls"].as_u64(), v["Errors"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_hanging_and_flooding_functions_fail_their_call_and_are_replaced() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w
        .deploy("f.zip", &native_zip("ok", Some(1000)), None, None)
        .await;
    assert_eq!(s, 200, "{v}");

    // A crash: 502 with its exit status and stderr; the next call starts a
    // new instance.
    let (s, _, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    let first = pid_of(&text);
    let (s, _, text) = w.call("f", "/crash").await;
    assert_eq!(s, 502, "{text}");
    assert!(
        text.contains("crashed") && text.contains("exit status: 3"),
        "{text}"
    );
    assert!(
        text.contains("crashing on purpose"),
        "stderr in the message: {text}"
    );
    let (s, h, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    let second = pid_of(&text);
    assert_ne!(first, second, "a new instance");
    assert!(h["x-meta"]
        .to_str()
        .unwrap()
        .contains("\"UsingExistingRestContainer\":false"));

    // A hang past timeout_ms: 504, the instance killed and replaced.
    let (s, _, text) = w.call("f", "/hang").await;
    assert_eq!(s, 504, "{text}");
    assert!(text.contains("timeout of 1000 ms"), "{text}");
    await_true("the hung instance is killed", || !alive(second)).await;
    let (s, _, text) = w.call("f", "").await;
    assert_eq!(s, 200, "{text}");
    let third = pid_of(&text);

    // Megabytes: an 8 MiB reply is a 502; 2 MiB of stderr is kept bounded.
    let (s, _, text) = w.call("f", "/flood").await;
    assert_eq!(s, 502, "{text}");
    assert!(text.contains("more than 6291456 bytes"), "{text}");
    await_true("the flooding instance is killed", || !alive(third)).await;
    let (s, _, text) = w.call("f", "/noisy").await;
    assert_eq!((s, text.as_str()), (200, "ok"));
    let (s, v) = w.json("GET", "/logs/f", None).await;
    assert_eq!(s, 200);
    let logs = v["Logs"].as_array().unwrap();
    assert_eq!(logs[0]["Status"], 200);
    let noisy = logs[0]["Output"].as_str().unwrap();
    assert!(noisy.len() <= 4100, "{}", noisy.len());
    // What a warm instance wrote while the call ran (as far as the worker
    // had read it when the reply came), its last 4 KiB.
    assert!(noisy.contains("nnnn"), "{noisy:?}");
    for l in logs {
        assert!(l["Output"].as_str().unwrap().len() <= 4100);
    }
    assert_eq!(
        logs.iter()
            .map(|l| l["Status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [200, 502, 200, 504, 200, 502, 200]
    );
    let (_, v) = w.json("GET", "/info/f", None).await;
    assert_eq!(
        (v["Calls"].as_u64(), v["Errors"].as_u64()),
        (Some(7), Some(3)),
        "{v}"
    );

    // A Node.js handler that exits or hangs; a one-shot that crashes or hangs.
    let node = glambdar_zip(
        "exports.handler = async (req) => {\n\
           if (req.query.die) process.exit(7);\n\
           if (req.query.hang) await new Promise(() => {});\n\
           if (req.query.throw) throw new Error('bad input');\n\
           return { statusCode: 200, body: 'fine' };\n\
         };",
    );
    let (s, v) = w.deploy("n.zip", &node, None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("n", "?die=1").await;
    assert_eq!(s, 502, "{text}");
    assert!(text.contains("exit status: 7"), "{text}");
    let (s, _, text) = w.call("n", "?throw=1").await;
    assert_eq!(s, 500, "the handler's own error: {text}");
    assert!(text.contains("bad input"), "{text}");
    assert_eq!(w.call("n", "").await.0, 200);
    let manifest = br#"{"runtime": "node", "timeout_ms": 500}"#;
    let hang = zip_of(&[
        Entry::File("hf-function.json", manifest, 0o644),
        Entry::File(
            "index.js",
            b"exports.handler = () => new Promise(() => {});",
            0o644,
        ),
    ]);
    let (s, v) = w.deploy("n.zip", &hang, None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(w.call("n", "").await.0, 504);

    let once =
        br#"{"runtime": "oneshot", "entry": "fn", "args": ["--oneshot"], "timeout_ms": 500}"#;
    let zip = zip_of(&[
        Entry::File("hf-function.json", once, 0o644),
        Entry::File("fn", &user_fn_binary(), 0o755),
    ]);
    let (s, v) = w.deploy("o.zip", &zip, None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("o", "/crash").await;
    assert_eq!(s, 502, "{text}");
    assert!(text.contains("crashing on purpose"), "{text}");
    assert_eq!(w.call("o", "/hang").await.0, 504);
    assert_eq!(w.call("o", "/flood").await.0, 502);
    assert_eq!(w.call("o", "").await.0, 200);

    // The worker is healthy and serves its sample functions.
    let (s, v) = w.json("GET", "/health", None).await;
    assert_eq!(s, 200, "{v}");
    w.stop();
}
