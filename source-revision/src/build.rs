//! The build-script half: [`emit`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Called from a crate's build script: sets `HF_SOURCE_COMMIT` (the full
/// commit of `HEAD`) and `HF_SOURCE_DIRTY` (`1` if one of the crate's
/// sources differed from it) for the crate, or neither outside a git
/// checkout or without `git`; and tells Cargo to rerun the script when
/// those sources or `HEAD` change.
///
/// The crate's sources: what its folder and those of the workspace crates
/// it depends on (`[dependencies]` naming a crate by `path`, its own or
/// the root manifest's `[workspace.dependencies]`), transitively, compile
/// (`src/` and the files beside it), plus the root
/// `Cargo.toml` and `Cargo.lock`.
pub fn emit() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return;
    };
    let root = manifest
        .ancestors()
        .skip(1)
        .find(|dir| is_workspace_root(dir))
        .unwrap_or(&manifest)
        .to_path_buf();
    let sources = sources_of(&root, &manifest);
    for path in &sources {
        watch(&root.join(path));
    }
    let Some(commit) = head_commit(&root) else {
        return;
    };
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
    let dirty = crate::status::status_is_dirty(&status);
    println!("cargo:rustc-env=HF_SOURCE_COMMIT={commit}");
    println!("cargo:rustc-env=HF_SOURCE_DIRTY={}", u8::from(dirty));
}

/// The full commit of `HEAD` of the checkout holding `dir`, or `None`
/// outside one or without `git` (also what tests compare a recorded
/// revision with).
pub fn head_commit(dir: &Path) -> Option<String> {
    let commit = git(dir, &["rev-parse", "HEAD"])?;
    let commit = String::from_utf8_lossy(&commit).trim().to_string();
    (commit.len() >= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())).then_some(commit)
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// The paths, relative to `root`, a crate at `manifest` is built from:
/// the root manifest and lock file, and what [`compiled_paths`] keeps of
/// its folder and of those of the workspace crates it links.
fn sources_of(root: &Path, manifest: &Path) -> Vec<String> {
    let Ok(own) = manifest.strip_prefix(root) else {
        return vec![".".to_string()];
    };
    let own = own.to_string_lossy().into_owned();
    if own.is_empty() {
        return vec![".".to_string()];
    }
    let members = read(&root.join("Cargo.toml"))
        .map(|t| workspace_paths(&t))
        .unwrap_or_default();
    let mut crates = vec![own];
    let mut next = 0;
    while let Some(dir) = crates.get(next).cloned() {
        next += 1;
        let deps = read(&root.join(&dir).join("Cargo.toml"))
            .map(|t| dependencies(&t))
            .unwrap_or_default();
        for (name, path) in deps {
            let path = match path {
                Some(p) => normalize(&format!("{dir}/{p}")),
                None => members.get(&name).cloned(),
            };
            if let Some(path) = path {
                if !crates.contains(&path) {
                    crates.push(path);
                }
            }
        }
    }
    crates.sort();
    let mut paths = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for dir in crates {
        paths.extend(compiled_paths(root, &dir));
    }
    paths
}

/// What of a crate's folder goes into its binary: `src/` and the files
/// beside it (manifest, build script, a table `include_str!` reads), not
/// its tests, benches or Markdown: editing those changes no binary, so it
/// neither reruns the script (which would rebuild the crate) nor makes
/// the revision dirty.
fn compiled_paths(root: &Path, dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return vec![dir.to_string()];
    };
    let mut paths: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = if entry.file_type().ok()?.is_dir() {
                name == "src"
            } else {
                !name.ends_with(".md")
            };
            wanted.then(|| match dir {
                "." => name,
                _ => format!("{dir}/{name}"),
            })
        })
        .collect();
    paths.sort();
    paths
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `name = { path = "dir", ... }` lines of `[workspace.dependencies]`.
pub(crate) fn workspace_paths(manifest: &str) -> BTreeMap<String, String> {
    section_entries(manifest, "workspace.dependencies")
        .filter_map(|(name, path)| Some((name, path?)))
        .collect()
}

/// What `[dependencies]` lists: each name (`name = ...` or
/// `name.workspace = true`), with its `path` if it gives one.
pub(crate) fn dependencies(manifest: &str) -> Vec<(String, Option<String>)> {
    section_entries(manifest, "dependencies").collect()
}

/// The keys of one section, each with the `path` of its inline table.
fn section_entries<'a>(
    manifest: &'a str,
    wanted: &'a str,
) -> impl Iterator<Item = (String, Option<String>)> + 'a {
    section_lines(manifest)
        .filter(move |(section, _)| *section == wanted)
        .filter_map(|(_, line)| {
            let (key, value) = line.split_once('=')?;
            let name = key.split('.').next()?.trim();
            // An inline table: `{ key = value, ... }`.
            let table = value.trim().trim_start_matches('{').trim_end_matches('}');
            let path = table.split(',').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key.trim() == "path").then(|| value.trim().trim_matches('"').to_string())
            });
            (!name.is_empty()).then(|| (name.to_string(), path))
        })
}

/// `a/../b/./c` as `b/c`; `None` if it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Each line that is neither blank, a comment nor a header, with the
/// header it is under.
fn section_lines(manifest: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut section = "";
    manifest.lines().filter_map(move |line| {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            return None;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim();
            return None;
        }
        Some((section, line))
    })
}

/// Reruns the script when `path` (a file, or any file under a folder)
/// changes. Only existing paths: Cargo reruns on every build for a
/// missing one.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_for_workspace_paths_and_dependencies() {
        let root = r#"
[workspace]
members = ["a", "b"]

[workspace.dependencies]
a = { path = "a" }
b = { path = "crates/b", default-features = false }  # a comment
serde = { version = "1", features = ["derive"] }
xpath = { version = "1", features = ["xpath"] }
"#;
        let paths = workspace_paths(root);
        assert_eq!(paths.get("a").map(String::as_str), Some("a"));
        assert_eq!(paths.get("b").map(String::as_str), Some("crates/b"));
        assert!(!paths.contains_key("serde"));
        assert!(!paths.contains_key("xpath"));
        let member = r#"
[package]
name = "c"

[dependencies]
a.workspace = true
# b is not a dependency
b = { workspace = true, features = ["x"] }
serde.workspace = true

[dev-dependencies]
tempfile.workspace = true
"#;
        let names: Vec<String> = dependencies(member).into_iter().map(|d| d.0).collect();
        assert_eq!(names, ["a", "b", "serde"]);
        let by_path = "[dependencies]\nu = { path = \"../u\" }\n";
        assert_eq!(
            dependencies(by_path),
            [("u".to_string(), Some("../u".to_string()))]
        );
        assert_eq!(normalize("sim/../u").as_deref(), Some("u"));
        assert_eq!(normalize("./a/./b").as_deref(), Some("a/b"));
        assert_eq!(normalize("../x"), None);
    }

    /// This crate's own sources: its `src/` and manifest, and the root
    /// manifests (it links no workspace crate); a crate that does gets
    /// what theirs compile too; tests, benches and Markdown are left out.
    #[test]
    fn a_crates_sources_are_what_it_and_its_workspace_dependencies_compile() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().unwrap();
        assert_eq!(
            sources_of(root, manifest),
            [
                "Cargo.toml",
                "Cargo.lock",
                "source-revision/Cargo.toml",
                "source-revision/src"
            ]
        );
        let has = |sources: &[String], path: &str| sources.iter().any(|s| s == path);
        let sources = sources_of(root, &root.join("utils"));
        for path in [
            "utils/src",
            "utils/build.rs",
            "protocol/src",
            "sample-functions/src",
            "sample-functions/catalog.csv",
            "source-revision/src",
        ] {
            assert!(has(&sources, path), "{path}: {sources:?}");
        }
        for path in ["utils/tests", "utils/benches", "des/src"] {
            assert!(!has(&sources, path), "{path}: {sources:?}");
        }
        // The simulator links every crate, `utils` by a path of its own.
        let sources = sources_of(root, &root.join("simulator"));
        for path in [
            "simulator/src",
            "utils/src",
            "des/src",
            "policy/src",
            "worker-front/src",
            "load-balancer/src",
        ] {
            assert!(has(&sources, path), "{path}: {sources:?}");
        }
        for path in ["simulator/tests", "worker-front/README.md"] {
            assert!(!has(&sources, path), "{path}: {sources:?}");
        }
    }
}
