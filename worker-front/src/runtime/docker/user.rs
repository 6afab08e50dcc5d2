//! Users' own functions (issue 14) in the Docker runtime, without a
//! registry: images built `FROM scratch` on this machine, warm containers
//! started with the same ownership and network rules as the sample
//! functions' (the module doc of `docker` gives them).
//!
//! - A **native** function (manifest runtime `http`) is its package under
//!   `/fn` in a `FROM scratch` image; its entry must be a statically linked
//!   executable (the deploy checks it: `context::check_static_elf`).
//! - A **Node.js** function (runtime `node`, or a Glambdar zip) is its
//!   package under `/fn` and the worker's bootstrap at `/hf/bootstrap.js`,
//!   on a Node.js runtime image made once per runtime from the host's own
//!   `node` ([`DockerRuntime::node_runtime_image`]): the binary at
//!   `/hf/node`, and every shared library the dynamic loader says it loads
//!   (the loader named by its `PT_INTERP`, run as `<loader> --list node`,
//!   which is what `ldd` does), each at its own path, with the loader
//!   itself; `LD_LIBRARY_PATH` names their directories (a scratch image has
//!   no `ld.so.cache`).
//! - The instances run as `nobody` (65534) with their stdin held open
//!   (`OpenStdin`: the bootstrap and `hf-user-fn` end when it closes), in
//!   the network of warm instances ([`super::DockerSettings::warm_network`]),
//!   listening on the worker's 127.0.0.1 at the `$PORT` the worker gives.
//!
//! Labels: the runtime's [`LABEL_INSTANCE`] (ownership, clean-up, the
//! orphan sweep), [`crate::runtime::LABEL_WORKER`], [`LABEL_FUNCTION`] (the function's
//! name: sample names are reserved, so it is unambiguous), [`LABEL_KIND`]
//! ([`KIND_USER_IMAGE`], [`KIND_USER_INSTANCE`], [`KIND_NODE_RUNTIME`]: the
//! worker's `/clear` leaves these alone) and [`LABEL_USER_DEPLOY`] (one
//! deploy of one version: `v<version>.<n>`, unique in the runtime, so that
//! removing a replaced version never touches a later deploy of the same
//! version number, as after a delete).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use bollard::container::{Config, CreateContainerOptions, ListContainersOptions, LogOutput};
use bollard::image::{BuildImageOptions, ListImagesOptions};
use bollard::models::HostConfig;
use futures_util::StreamExt;

use super::{DockerRuntime, EngineFailure};
use crate::runtime::{
    Instance, InstanceKind, Removed, RuntimeError, LABEL_FUNCTION, LABEL_INSTANCE, LABEL_KIND,
};

/// [`LABEL_KIND`] of a user function's image.
pub const KIND_USER_IMAGE: &str = "user-image";
/// [`LABEL_KIND`] of a user function's warm container.
pub const KIND_USER_INSTANCE: &str = "user-instance";
/// [`LABEL_KIND`] of the Node.js runtime image.
pub const KIND_NODE_RUNTIME: &str = "user-node-runtime";
/// Label naming one deploy of a user function's version.
pub const LABEL_USER_DEPLOY: &str = "hotfunctions.user-deploy";
/// The user id the instances run as (`nobody`).
const RUN_AS: &str = "65534:65534";

/// Whether a [`LABEL_KIND`] value is one of the user functions' (left
/// alone by `/clear`).
pub fn is_user_kind(kind: Option<&String>) -> bool {
    kind.is_some_and(|k| k.starts_with("user-"))
}

/// What runs a user function's image.
#[derive(Debug, Clone, Copy)]
pub enum UserImage<'a> {
    /// A static executable of the package (its path in the package) and
    /// its arguments.
    Native { entry: &'a str, args: &'a [String] },
    /// A Node.js handler file of the package, run by `bootstrap` (a file of
    /// the worker) on the host's `node`.
    Node {
        entry: &'a str,
        node: &'a Path,
        bootstrap: &'a Path,
    },
}

/// One file (or directory, or symlink) of a build context.
struct Item {
    path: String,
    kind: ItemKind,
}

enum ItemKind {
    /// A directory of this mode.
    Dir(u32),
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    Symlink(PathBuf),
}

/// The package `dir` as context items under `prefix` (symlinks kept as
/// symlinks: the package checks allow only links that stay inside it).
fn package_items(dir: &Path, prefix: &str, out: &mut Vec<Item>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}/{name}");
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.file_type().is_symlink() {
            out.push(Item {
                path,
                kind: ItemKind::Symlink(std::fs::read_link(e.path())?),
            });
        } else if meta.is_dir() {
            out.push(Item {
                path: path.clone(),
                kind: ItemKind::Dir(0o755),
            });
            package_items(&e.path(), &path, out)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.push(Item {
                path,
                kind: ItemKind::File {
                    bytes: std::fs::read(e.path())?,
                    mode: if executable { 0o755 } else { 0o644 },
                },
            });
        }
    }
    Ok(())
}

/// A build context (tar) of a Dockerfile and `items`.
fn context_tar(dockerfile: &str, items: &[Item]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut archive = tar::Builder::new(&mut out);
        let header = |size: u64, mode: u32, kind: tar::EntryType| {
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(mode);
            h.set_mtime(0);
            h.set_entry_type(kind);
            h
        };
        let mut h = header(dockerfile.len() as u64, 0o644, tar::EntryType::Regular);
        archive.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
        for item in items {
            match &item.kind {
                ItemKind::Dir(mode) => {
                    let mut h = header(0, *mode, tar::EntryType::Directory);
                    archive.append_data(&mut h, &item.path, std::io::empty())?;
                }
                ItemKind::File { bytes, mode } => {
                    let mut h = header(bytes.len() as u64, *mode, tar::EntryType::Regular);
                    archive.append_data(&mut h, &item.path, &bytes[..])?;
                }
                ItemKind::Symlink(target) => {
                    let mut h = header(0, 0o777, tar::EntryType::Symlink);
                    archive.append_link(&mut h, &item.path, target)?;
                }
            }
        }
        archive.finish()?;
    }
    Ok(out)
}

/// `program` as a path: itself if it names a file, else found on `PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return Some(program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// The shared libraries of `<loader> --list <program>`'s output (the
/// format `ldd` prints): `name => /path (0x...)` and `/path (0x...)` lines;
/// the vDSO (no path) is not a file. A library the loader cannot find is
/// an error naming it.
pub fn listed_libraries(listing: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in listing.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("the loader cannot find {}", name.trim()));
                }
                rest.split(" (").next().unwrap_or_default()
            }
            None => line.split(" (").next().unwrap_or_default(),
        };
        if path.starts_with('/') && !out.iter().any(|p| p == path) {
            out.push(path.to_string());
        }
    }
    Ok(out)
}

/// The root file system of the Node.js runtime image: `node` at
/// `/hf/node`, its libraries and loader at their paths, an empty `/tmp`;
/// and the directories of the libraries (for `LD_LIBRARY_PATH`).
fn node_rootfs(node: &Path) -> Result<(Vec<Item>, Vec<String>), String> {
    let path = find_program(node)
        .ok_or_else(|| format!("{} is not on PATH (give --node)", node.display()))?;
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut items = vec![
        Item {
            path: "rootfs/hf".into(),
            kind: ItemKind::Dir(0o755),
        },
        Item {
            path: "rootfs/tmp".into(),
            kind: ItemKind::Dir(0o1777),
        },
    ];
    let mut libraries = Vec::new();
    if let Some(loader) = super::context::elf_interpreter(&bytes) {
        let listed = std::process::Command::new(&loader)
            .arg("--list")
            .arg(&path)
            .output()
            .map_err(|e| format!("running {loader} --list {}: {e}", path.display()))?;
        if !listed.status.success() {
            return Err(format!(
                "{loader} --list {} failed ({}): {}",
                path.display(),
                listed.status,
                String::from_utf8_lossy(&listed.stderr)
            ));
        }
        libraries = listed_libraries(&String::from_utf8_lossy(&listed.stdout))?;
        if !libraries.contains(&loader) {
            libraries.push(loader);
        }
    }
    let mut dirs: Vec<String> = Vec::new();
    for lib in &libraries {
        // Read through symlinks: the file's bytes at the path the loader
        // and `PT_INTERP` name.
        let bytes = std::fs::read(lib).map_err(|e| format!("reading {lib}: {e}"))?;
        if let Some(parent) = Path::new(lib).parent() {
            let mut at = String::from("rootfs");
            for part in parent.iter().skip(1) {
                at.push('/');
                at.push_str(&part.to_string_lossy());
                if !items.iter().any(|i| i.path == at) {
                    items.push(Item {
                        path: at.clone(),
                        kind: ItemKind::Dir(0o755),
                    });
                }
            }
            let dir = parent.display().to_string();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        items.push(Item {
            path: format!("rootfs{lib}"),
            kind: ItemKind::File { bytes, mode: 0o755 },
        });
    }
    items.push(Item {
        path: "rootfs/hf/node".into(),
        kind: ItemKind::File { bytes, mode: 0o755 },
    });
    Ok((items, dirs))
}

impl DockerRuntime {
    /// Labels of a user function's object (`deploy`: its
    /// [`LABEL_USER_DEPLOY`]).
    fn user_labels(&self, function: &str, kind: &str, deploy: &str) -> HashMap<String, String> {
        let mut labels = self.labels(function, kind);
        labels.insert(LABEL_USER_DEPLOY.into(), deploy.into());
        labels
    }

    /// Sends a build context and waits for the image `tag`.
    async fn build_tagged(
        &self,
        function: &str,
        tag: &str,
        labels: HashMap<String, String>,
        tar: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let docker = self.client().await.map_err(|e| e.build(function))?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: tag.to_string(),
            rm: true,
            forcerm: true,
            labels,
            ..Default::default()
        };
        let mut progress = docker.build_image(options, None, Some(tar.into()));
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| self.fail(e).build(function))?;
            if let Some(message) = info.error {
                return Err(RuntimeError::Build {
                    function: function.into(),
                    detail: message,
                });
            }
        }
        Ok(())
    }

    /// The Node.js runtime image (built on first use, once per runtime).
    pub async fn node_runtime_image(&self, node: &Path) -> Result<String, RuntimeError> {
        let mut slot = self.inner.node_runtime.lock().await;
        if let Some(tag) = slot.as_ref() {
            return Ok(tag.clone());
        }
        let what = "the Node.js runtime";
        let build_error = |detail: String| RuntimeError::Build {
            function: what.into(),
            detail,
        };
        let node = node.to_path_buf();
        let (items, dirs) = tokio::task::spawn_blocking(move || node_rootfs(&node))
            .await
            .map_err(|e| build_error(e.to_string()))?
            .map_err(build_error)?;
        let dockerfile = format!(
            "FROM scratch\nLABEL {LABEL_INSTANCE}=\"{}\" {LABEL_KIND}=\"{KIND_NODE_RUNTIME}\"\nCOPY rootfs/ /\nENV LD_LIBRARY_PATH={}\n",
            self.inner.instance_id,
            dirs.join(":")
        );
        let tar = tokio::task::spawn_blocking(move || context_tar(&dockerfile, &items))
            .await
            .map_err(|e| build_error(e.to_string()))?
            .map_err(|e| build_error(e.to_string()))?;
        let tag = format!(
            "hotfunctions-{}-node-runtime:{}",
            self.inner.name_part, self.inner.instance_id
        );
        let mut labels = self.labels("", KIND_NODE_RUNTIME);
        labels.remove(LABEL_FUNCTION);
        self.build_tagged(what, &tag, labels, tar).await?;
        *slot = Some(tag.clone());
        Ok(tag)
    }

    /// The tag of a user function's image for one deploy.
    fn user_image_tag(&self, function: &str, deploy: &str) -> String {
        format!(
            "hotfunctions-{}-user:f-{function}.{deploy}.{}",
            self.inner.name_part, self.inner.instance_id
        )
    }

    /// Builds the image of one deploy (`deploy`, see [`LABEL_USER_DEPLOY`])
    /// of `function` from its unpacked package `code_dir`; returns its tag.
    pub async fn build_user_image(
        &self,
        function: &str,
        deploy: &str,
        code_dir: &Path,
        what: UserImage<'_>,
    ) -> Result<String, RuntimeError> {
        let build_error = |detail: String| RuntimeError::Build {
            function: function.into(),
            detail,
        };
        let labels = format!(
            "LABEL {LABEL_INSTANCE}=\"{}\" {LABEL_KIND}=\"{KIND_USER_IMAGE}\" {LABEL_FUNCTION}=\"{function}\" {LABEL_USER_DEPLOY}=\"{deploy}\"",
            self.inner.instance_id
        );
        let json = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
        let (dockerfile, bootstrap) = match what {
            UserImage::Native { entry, args } => {
                let mut command = vec![format!("/fn/{entry}")];
                command.extend(args.iter().cloned());
                let command: Vec<&str> = command.iter().map(String::as_str).collect();
                (
                    format!(
                        "FROM scratch\n{labels}\nCOPY fn/ /fn/\nWORKDIR /fn\nUSER {RUN_AS}\nENTRYPOINT {}\n",
                        json(&command)
                    ),
                    None,
                )
            }
            UserImage::Node {
                entry,
                node,
                bootstrap,
            } => {
                let base = self.node_runtime_image(node).await?;
                let entry = format!("/fn/{entry}");
                (
                    format!(
                        "FROM {base}\n{labels}\nCOPY fn/ /fn/\nCOPY hf/bootstrap.js /hf/bootstrap.js\nWORKDIR /fn\nUSER {RUN_AS}\nENTRYPOINT {}\n",
                        json(&["/hf/node", "/hf/bootstrap.js", entry.as_str()])
                    ),
                    Some(bootstrap.to_path_buf()),
                )
            }
        };
        let code_dir = code_dir.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut items = vec![Item {
                path: "fn".into(),
                kind: ItemKind::Dir(0o755),
            }];
            package_items(&code_dir, "fn", &mut items)?;
            if let Some(b) = bootstrap {
                let mut bytes = Vec::new();
                std::fs::File::open(&b)?.read_to_end(&mut bytes)?;
                items.push(Item {
                    path: "hf".into(),
                    kind: ItemKind::Dir(0o755),
                });
                items.push(Item {
                    path: "hf/bootstrap.js".into(),
                    kind: ItemKind::File { bytes, mode: 0o644 },
                });
            }
            context_tar(&dockerfile, &items)
        })
        .await
        .map_err(|e| build_error(e.to_string()))?
        .map_err(|e| build_error(format!("making the build context: {e}")))?;
        let tag = self.user_image_tag(function, deploy);
        let labels = self.user_labels(function, KIND_USER_IMAGE, deploy);
        self.build_tagged(function, &tag, labels, tar).await?;
        Ok(tag)
    }

    /// Starts a warm container of the user function image `image` with
    /// `env`; what it writes goes to `output`, and `exited` is told how it
    /// ended once it has. Returns when it is started (not yet listening).
    pub async fn start_user_instance(
        &self,
        image: &str,
        function: &str,
        deploy: &str,
        env: Vec<String>,
        mut output: impl FnMut(&[u8]) + Send + 'static,
        exited: impl FnOnce(String) + Send + 'static,
    ) -> Result<Instance, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let n = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "hotfunctions-{}-user-{function}-{deploy}-{}-{n}",
            self.inner.name_part, self.inner.instance_id
        );
        let config = Config {
            image: Some(image.to_string()),
            env: Some(env),
            labels: Some(self.user_labels(function, KIND_USER_INSTANCE, deploy)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(self.inner.settings.warm_network.clone()),
                cgroup_parent: self.inner.settings.cgroup_parent.clone(),
                oom_score_adj: self.function_oom_score_adj(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: name.clone(),
                    platform: None,
                }),
                config,
            )
            .await
            .map_err(|e| self.fail(e).instance(&name))?;
        let instance = Instance {
            id: created.id,
            name,
            function: function.into(),
            kind: InstanceKind::Rest,
        };
        let attached = match self.attach_and_start(&instance).await {
            Ok(a) => a,
            Err(e) => {
                let _ = self.remove_container(&instance.id, &instance.name).await;
                return Err(e);
            }
        };
        let (runtime, id) = (self.clone(), instance.id.clone());
        tokio::spawn(async move {
            let mut stream = attached.output;
            while let Some(Ok(chunk)) = stream.next().await {
                match chunk {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => output(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
            let how = match runtime.client().await {
                Ok(docker) => match docker.inspect_container(&id, None).await {
                    Ok(c) => match c.state.and_then(|s| s.exit_code) {
                        Some(code) => format!("container exited with status {code}"),
                        None => "container ended".to_string(),
                    },
                    Err(_) => "container removed".to_string(),
                },
                Err(_) => "container ended (engine unreachable)".to_string(),
            };
            exited(how);
        });
        Ok(instance)
    }

    /// Removes a user function's container.
    pub async fn remove_user_instance(&self, instance: &Instance) -> Result<(), RuntimeError> {
        self.remove_container(&instance.id, &instance.name).await
    }

    /// Removes the user functions' containers, then images, of this
    /// runtime: of one deploy of `function`, of every deploy of it, or
    /// (`function` None) all of them and the Node.js runtime image.
    pub async fn remove_user_objects(
        &self,
        function: Option<&str>,
        deploy: Option<&str>,
    ) -> Result<Removed, RuntimeError> {
        let instance = self.inner.instance_id.clone();
        let removed = self.remove_user_of(&instance, function, deploy).await?;
        if function.is_none() {
            *self.inner.node_runtime.lock().await = None;
        }
        Ok(removed)
    }

    /// [`DockerRuntime::remove_user_objects`] of the runtime `instance`
    /// (this one's, or a dead one's in the orphan sweep).
    pub(super) async fn remove_user_of(
        &self,
        instance: &str,
        function: Option<&str>,
        deploy: Option<&str>,
    ) -> Result<Removed, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let filters = |kind: &str| {
            let mut f = self.instance_filters(instance);
            let labels = f.entry("label".to_string()).or_default();
            labels.push(format!("{LABEL_KIND}={kind}"));
            if let Some(name) = function {
                labels.push(format!("{LABEL_FUNCTION}={name}"));
            }
            if let Some(d) = deploy {
                labels.push(format!("{LABEL_USER_DEPLOY}={d}"));
            }
            f
        };
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: filters(KIND_USER_INSTANCE),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.fail(e).other())?;
        let mut removed = Removed::default();
        for c in containers {
            if let Some(id) = c.id {
                self.remove_container(&id, &id).await?;
                // A removal already under way (an instance killed just
                // before) answers 409 at once: an image removed while its
                // container still exists would only lose its tag.
                self.await_container_gone(&id).await?;
                removed.instances += 1;
            }
        }
        // The functions' images first: a Node.js function's is built on
        // the runtime image, which goes last.
        let mut kinds = vec![KIND_USER_IMAGE];
        if function.is_none() {
            kinds.push(KIND_NODE_RUNTIME);
        }
        for kind in kinds {
            let images = docker
                .list_images(Some(ListImagesOptions {
                    all: false,
                    filters: filters(kind),
                    digests: false,
                }))
                .await
                .map_err(|e| self.fail(e).other())?;
            for i in images {
                let what = i.labels.get(LABEL_FUNCTION).cloned().unwrap_or_default();
                let tag = super::removal_ref(i.repo_tags, i.id);
                self.remove_image_named(&what, &tag).await?;
                removed.images += 1;
            }
        }
        Ok(removed)
    }
}

impl DockerRuntime {
    /// What the engine holds of a user function (tests, people): its
    /// containers and images, of this runtime.
    pub async fn user_objects(&self, function: &str) -> Result<(usize, usize), RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let mut f = self.instance_filters(&self.inner.instance_id);
        f.entry("label".to_string())
            .or_default()
            .push(format!("{LABEL_FUNCTION}={function}"));
        let c = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: f.clone(),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.fail(e).other())?;
        let i = docker
            .list_images(Some(ListImagesOptions {
                all: false,
                filters: f,
                digests: false,
            }))
            .await
            .map_err(|e| self.fail(e).other())?;
        Ok((c.len(), i.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaders_listing_gives_paths() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f36)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f36)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f36)\n";
        assert_eq!(
            listed_libraries(listing).unwrap(),
            vec![
                "/lib/x86_64-linux-gnu/libdl.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        let e = listed_libraries("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(e.contains("libfoo.so.1"), "{e}");
    }

    #[test]
    fn user_kinds_are_told_apart() {
        assert!(is_user_kind(Some(&KIND_USER_IMAGE.to_string())));
        assert!(is_user_kind(Some(&KIND_NODE_RUNTIME.to_string())));
        assert!(!is_user_kind(Some(&"image".to_string())));
        assert!(!is_user_kind(None));
    }
}
