//! Embeds the revision of the sources this build compiles, so that a run
//! records the code that ran, whatever directory it is started in.
//!
//! Sets `HF_SOURCE_COMMIT` (the full commit of `HEAD`) and
//! `HF_SOURCE_DIRTY` (`1` if a source of the workspace differed from it,
//! see `src/git_status.rs`), or neither outside a git checkout or without
//! `git`. [`utils::provenance::source_revision`] reads them.
//!
//! The script reruns when a workspace member's files, the root manifest or
//! lock file, or the checkout's `HEAD` change, so the flag cannot go stale:
//! a build after any edit or commit re-reads `git status`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/git_status.rs"]
mod git_status;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/git_status.rs");
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return;
    };
    // The workspace root, if this package sits in one; else the package.
    let root = manifest
        .parent()
        .filter(|p| is_workspace_root(p))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.clone());
    let sources = source_paths(&root);
    for path in &sources {
        watch(&root.join(path));
    }
    let Some(commit) = git(&root, &["rev-parse", "HEAD"]) else {
        return;
    };
    let commit = String::from_utf8_lossy(&commit).trim().to_string();
    if commit.len() < 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return;
    }
    // The files a commit, checkout or reset rewrites.
    for name in ["HEAD", "logs/HEAD", "packed-refs"] {
        watch_git_path(&root, name);
    }
    if let Some(head_ref) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        watch_git_path(&root, String::from_utf8_lossy(&head_ref).trim());
    }
    let mut args = vec![
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
    ];
    args.extend(sources.iter().map(String::as_str));
    let Some(status) = git(&root, &args) else {
        return;
    };
    let dirty = git_status::status_is_dirty(&status);
    println!("cargo:rustc-env=HF_SOURCE_COMMIT={commit}");
    println!("cargo:rustc-env=HF_SOURCE_DIRTY={}", u8::from(dirty));
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// What the workspace's binaries are built from, relative to `root`: the
/// root manifest and lock file and every member's folder (the members
/// named in the root manifest's `members = [...]`, or `.` alone).
fn source_paths(root: &Path) -> Vec<String> {
    let mut paths = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or("");
    let mut found = false;
    for item in members.split(',') {
        let name = item
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .collect::<String>();
        let name = name.trim_matches('"');
        if !name.is_empty() && root.join(name).is_dir() {
            paths.push(name.to_string());
            found = true;
        }
    }
    if !found {
        paths = vec![".".to_string()];
    }
    paths
}

/// Reruns the script when `path` (a file, or any file under a folder)
/// changes. Only existing paths: Cargo reruns on every build for a missing
/// one.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn watch_git_path(root: &Path, name: &str) {
    // Relative to `root` unless the git folder lies elsewhere.
    if let Some(p) = git(root, &["rev-parse", "--git-path", name]) {
        watch(&root.join(String::from_utf8_lossy(&p).trim()));
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}
