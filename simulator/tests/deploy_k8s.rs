//! The Kubernetes manifests (`deploy/k8s/*.yaml`), checked offline:
//!
//! - every manifest validates against the Kubernetes schemas with
//!   `kubernetes-validate --strict` (PyPI's `kubernetes-validate`, which
//!   ships them; `.ci/run` installs it). A missing validator FAILS the
//!   test: there is no silent skip. A manifest with an unknown field is
//!   rejected, so the validation is seen to bite;
//! - the containers run the images `deploy/build-images.sh` makes
//!   (`hotfunctions/<role>:<its default tag>`, every role used), and
//!   each container's command line (the image's ENTRYPOINT, then the
//!   manifest's `args` with its `$(VAR)` taken from the container's env,
//!   the ConfigMap and the Secret) is accepted by the real binary: the
//!   binary parses it, then `--help` stops it before it starts. The
//!   compose file's and the swarm stack's commands are checked the same
//!   way (their `${VAR:-default}` at the default). An unknown flag is
//!   refused, so that check bites too.
//!
//! The YAML is read with Python's PyYAML (a dependency of
//! kubernetes-validate, so present wherever the validator is) into JSON.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{build_testbed, workspace_root};

fn k8s_dir() -> PathBuf {
    workspace_root().join("deploy/k8s")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "manifests in deploy/k8s: {files:?}");
    files
}

/// `kubernetes-validate`, which must be installed.
fn validator() -> Command {
    let probe = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    match probe {
        Ok(out) if out.status.success() => Command::new("kubernetes-validate"),
        Ok(out) => panic!(
            "kubernetes-validate --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "kubernetes-validate is not installed ({e}): `python3 -m pip install \
             kubernetes-validate` (.ci/run does); the manifests must be validated"
        ),
    }
}

/// Every YAML document of `path`, as JSON (via PyYAML).
fn documents(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs (PyYAML comes with kubernetes-validate)");
    assert!(
        out.status.success(),
        "reading {} with PyYAML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    let out = validator()
        .args(["--strict", "--quiet"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate --strict: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The same check refuses a misspelt field.
    let worker = std::fs::read_to_string(k8s_dir().join("worker.yaml")).unwrap();
    assert!(worker.contains("\n  replicas: "));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("worker.yaml");
    std::fs::write(&bad, worker.replacen("\n  replicas: ", "\n  replica: ", 1)).unwrap();
    let out = validator()
        .args(["--strict", "--quiet"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field must fail");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replica"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What `deploy/build-images.sh` makes: (default tag, role -> the
/// ENTRYPOINT of its Dockerfile).
fn built_images() -> (String, BTreeMap<String, Vec<String>>) {
    let script = std::fs::read_to_string(workspace_root().join("deploy/build-images.sh")).unwrap();
    let tag = script
        .lines()
        .find_map(|l| l.strip_prefix("tag="))
        .expect("build-images.sh sets a default tag")
        .to_string();
    let mut roles = BTreeMap::new();
    for line in script.lines() {
        // `build <role> <dockerfile> <files>...`
        let mut words = line.split_whitespace();
        if words.next() != Some("build") {
            continue;
        }
        let (Some(role), Some(dockerfile)) = (words.next(), words.next()) else {
            continue;
        };
        let text = std::fs::read_to_string(workspace_root().join("deploy/images").join(dockerfile))
            .unwrap();
        let entry = text
            .lines()
            .find_map(|l| l.strip_prefix("ENTRYPOINT "))
            .unwrap_or_else(|| panic!("{dockerfile} has no ENTRYPOINT"));
        let entry: Vec<String> = serde_json::from_str(entry).unwrap();
        roles.insert(role.to_string(), entry);
    }
    assert_eq!(roles.len(), 3, "{roles:?}");
    (tag, roles)
}

/// The binary of an image's ENTRYPOINT (`/bin/worker-front`), built for
/// this test, and the ENTRYPOINT's own arguments.
fn binary(entry: &[String]) -> (PathBuf, Vec<String>) {
    let name = Path::new(&entry[0]).file_name().unwrap().to_str().unwrap();
    let path = if name == "simulator" {
        PathBuf::from(env!("CARGO_BIN_EXE_simulator"))
    } else {
        build_testbed().join(name)
    };
    (path, entry[1..].to_vec())
}

/// Runs `program args... --help`: the binary must parse every argument
/// (clap refuses an unknown flag or a bad value before it reaches
/// `--help`).
fn accepts(program: &Path, args: &[String]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Replaces each `$(NAME)` (Kubernetes' expansion) with `vars[NAME]`.
fn expand_k8s(arg: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("$({k})"), v);
    }
    assert!(
        !out.contains("$("),
        "unexpanded variable in {arg:?}: {vars:?}"
    );
    out
}

/// Replaces each `${NAME:-default}` with its default and `${NAME:?...}`
/// with a stand-in (compose's and the stack's interpolation).
fn expand_compose(arg: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').map(|e| i + e).expect("closed ${");
        let inner = &rest[i + 2..end];
        match inner.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str("set-in-the-environment"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_manifests_run_the_built_images_with_flags_the_binaries_accept() {
    let (tag, roles) = built_images();
    let docs: Vec<Value> = manifests().iter().flat_map(|p| documents(p)).collect();
    let mut settings = BTreeMap::new();
    for doc in &docs {
        let data = match doc["kind"].as_str() {
            Some("ConfigMap") => &doc["data"],
            Some("Secret") => &doc["stringData"],
            _ => continue,
        };
        for (k, v) in data.as_object().unwrap() {
            settings.insert(
                (
                    doc["metadata"]["name"].as_str().unwrap().to_string(),
                    k.clone(),
                ),
                v.as_str().unwrap().to_string(),
            );
        }
    }

    let mut used = std::collections::BTreeSet::new();
    let mut checked = 0;
    for doc in &docs {
        let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array() else {
            continue;
        };
        for c in containers {
            let image = c["image"].as_str().unwrap();
            let (role, image_tag) = image
                .strip_prefix("hotfunctions/")
                .and_then(|r| r.split_once(':'))
                .unwrap_or_else(|| panic!("{image}: not a hotfunctions/<role>:<tag> image"));
            assert_eq!(image_tag, tag, "{image}: build-images.sh's default tag");
            let entry = roles
                .get(role)
                .unwrap_or_else(|| panic!("{image}: build-images.sh makes no {role} image"));
            used.insert(role.to_string());

            let mut vars = BTreeMap::new();
            for e in c["env"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap().to_string();
                let from = &e["valueFrom"];
                let value = if let Some(v) = e["value"].as_str() {
                    expand_k8s(v, &vars)
                } else if let Some(r) = from["configMapKeyRef"].as_object() {
                    settings[&(
                        r["name"].as_str().unwrap().to_string(),
                        r["key"].as_str().unwrap().to_string(),
                    )]
                        .clone()
                } else if let Some(r) = from["secretKeyRef"].as_object() {
                    settings[&(
                        r["name"].as_str().unwrap().to_string(),
                        r["key"].as_str().unwrap().to_string(),
                    )]
                        .clone()
                } else {
                    assert!(from["fieldRef"].is_object(), "{e}");
                    "pod-0".to_string()
                };
                vars.insert(name, value);
            }
            let (program, mut args) = binary(entry);
            for a in c["args"].as_array().into_iter().flatten() {
                args.push(expand_k8s(a.as_str().unwrap(), &vars));
            }
            accepts(&program, &args).unwrap();
            checked += 1;
        }
    }
    assert_eq!(
        used.len(),
        roles.len(),
        "every image build-images.sh makes is deployed: {used:?}"
    );
    assert_eq!(checked, 3);

    // The compose file's and the stack's commands, at their defaults.
    for file in [
        "deploy/compose/docker-compose.yml",
        "deploy/swarm/stack.yml",
    ] {
        let doc = &documents(&workspace_root().join(file))[0];
        for (name, service) in doc["services"].as_object().unwrap() {
            let image = expand_compose(service["image"].as_str().unwrap());
            let role = image
                .strip_prefix("hotfunctions/")
                .and_then(|r| r.split_once(':'))
                .map(|(r, _)| r)
                .unwrap_or_else(|| panic!("{file} {name}: image {image}"));
            let (program, mut args) = binary(&roles[role]);
            for a in service["command"].as_array().unwrap() {
                args.push(expand_compose(a.as_str().unwrap()));
            }
            accepts(&program, &args).unwrap_or_else(|e| panic!("{file} {name}: {e}"));
        }
    }

    // The check refuses what a binary does not take.
    let (program, mut args) = binary(&roles["worker"]);
    args.push("--no-such-flag".into());
    assert!(accepts(&program, &args).is_err());
}
