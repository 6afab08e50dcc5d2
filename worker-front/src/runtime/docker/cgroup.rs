//! Which cgroup the Docker runtime puts its function containers under
//! (the worker's `--docker-cgroup-parent`), so that a worker running in a
//! container, with its functions as sibling containers through the mounted
//! engine socket, shares one CPU and memory budget with them: the node is
//! the worker container's `cpus` and `mem_limit`, functions included.
//!
//! How: the engine's `HostConfig.CgroupParent` places a new container's
//! cgroup under the one given. With the `cgroupfs` cgroup driver on cgroup
//! v1, a container's cgroup is `/docker/<full id>` in every controller
//! (`/proc/self/cgroup` inside it names that path: v1 gives containers no
//! cgroup namespace), and a parent's CPU quota (`cpu.cfs_quota_us`,
//! `cpus`) and memory limit (`memory.limit_in_bytes`, hierarchical when
//! `memory.use_hierarchy` is 1, as Docker sets it) bound all its children
//! together. So `auto` reads the worker's own cgroup from
//! `/proc/self/cgroup` and passes it as every function container's parent.
//!
//! Values ([`CgroupParent::parse`]):
//! - `none` (default): the engine's default place (`/docker`), today's
//!   behaviour: the worker's limits do not bound its functions.
//! - `auto`: the worker's own container's cgroup, found as above. Refused
//!   at start, with what to pass instead, when it cannot be found: not in
//!   a container (the root cgroup or a login session's), cgroup v2 only
//!   (a container's cgroup that holds the worker cannot take child
//!   cgroups with controllers: the v2 "no internal processes" rule; and a
//!   private cgroup namespace hides the path), or the engine's `systemd`
//!   driver (the parent must then be a slice, `NAME.slice`, and a
//!   container's scope is not one).
//! - a cgroup path (`/hf/node1`, or `NAME.slice` with the systemd driver):
//!   passed as it is; its limits are the operator's to set.
//!
//! The memory limit is then shared too: functions and the worker draw on
//! one `mem_limit`, and the kernel's OOM killer picks its victim among
//! them when they exceed it. So that it picks a function (whose call
//! fails) rather than the worker (the whole node), function containers
//! made under a parent get an OOM score adjustment of
//! [`FUNCTION_OOM_SCORE_ADJ`]: on the test machine, eight concurrent
//! first calls on a worker of `mem_limit: 512m` got the worker
//! OOM-killed without it.

/// The worker's `--docker-cgroup-parent` value for the engine's default.
pub const NONE: &str = "none";
/// The value for the worker's own container's cgroup.
pub const AUTO: &str = "auto";

/// The `OomScoreAdj` of function containers made under a cgroup parent
/// (from -1000 to 1000; the worker keeps 0): the OOM killer takes them
/// before the worker.
pub const FUNCTION_OOM_SCORE_ADJ: i64 = 500;

/// What `--docker-cgroup-parent` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupParent {
    /// The engine's default.
    None,
    /// The worker's own container's cgroup.
    Auto,
    /// This cgroup path or systemd slice.
    Path(String),
}

impl CgroupParent {
    /// Reads `none`, `auto` or a path (`/a/b`, or `NAME.slice`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim();
        match v {
            NONE | "" => Ok(Self::None),
            AUTO => Ok(Self::Auto),
            _ => {
                let valid_chars = v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-' | ':'));
                let shaped = (v.starts_with('/') && !v.contains("//") && !v.contains("/../"))
                    || (v.ends_with(".slice") && !v.contains('/'));
                if valid_chars && shaped && v.len() <= 4096 {
                    Ok(Self::Path(v.to_string()))
                } else {
                    Err(format!(
                        "--docker-cgroup-parent {value:?}: expected {NONE}, {AUTO}, a cgroup path \
                         (/parent/path, cgroupfs driver) or a systemd slice (NAME.slice)"
                    ))
                }
            }
        }
    }

    /// The engine's `CgroupParent` for function containers: `None` for the
    /// default; for [`CgroupParent::Auto`], the cgroup that
    /// `proc_self_cgroup` (the text of `/proc/self/cgroup`, `None` if it
    /// cannot be read) names for this process ([`own_container_cgroup`]).
    pub fn resolve(&self, proc_self_cgroup: Option<&str>) -> Result<Option<String>, String> {
        match self {
            Self::None => Ok(None),
            Self::Path(p) => Ok(Some(p.clone())),
            Self::Auto => {
                let text = proc_self_cgroup.ok_or_else(|| {
                    format!(
                        "--docker-cgroup-parent {AUTO}: cannot read /proc/self/cgroup (not Linux?); \
                         pass a cgroup path or {NONE}"
                    )
                })?;
                own_container_cgroup(text)
                    .map(Some)
                    .map_err(|e| format!("--docker-cgroup-parent {AUTO}: {e}"))
            }
        }
    }
}

/// The cgroup of the container this process runs in, from the text of
/// `/proc/self/cgroup`: on cgroup v1, the path of the `cpu` controller,
/// which must be that of `memory` too, and be a container's under the
/// `cgroupfs` driver (its last part a 64-hex-digit id). Anything else is an
/// error saying why and what to pass instead (see the module doc).
pub fn own_container_cgroup(proc_self_cgroup: &str) -> Result<String, String> {
    let mut cpu = None;
    let mut memory = None;
    let mut unified = None;
    for line in proc_self_cgroup.lines() {
        // hierarchy-id:controller,list:path (the path may hold ':').
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path);
        }
        for c in controllers.split(',') {
            match c {
                "cpu" => cpu = Some(path),
                "memory" => memory = Some(path),
                _ => {}
            }
        }
    }
    let (cpu, memory) =
        match (cpu, memory) {
            (Some(c), Some(m)) => (c, m),
            _ if unified.is_some() => {
                return Err(format!(
                "this machine has cgroup v2 only (/proc/self/cgroup: {:?}), where the cgroup of a \
                 container that holds the worker cannot take its functions' cgroups with CPU and \
                 memory controllers; pass {NONE}, or a parent cgroup whose limits you set \
                 (and start the worker's container under it too, with compose's cgroup_parent)",
                unified.unwrap_or_default()
            ))
            }
            _ => return Err(
                "/proc/self/cgroup names no cpu and memory controllers; pass a cgroup path or none"
                    .into(),
            ),
        };
    if cpu != memory {
        return Err(format!(
            "the cpu controller's cgroup {cpu:?} differs from the memory controller's {memory:?}; \
             pass the cgroup to use"
        ));
    }
    let last = cpu.rsplit('/').next().unwrap_or_default();
    let hex_id = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let docker_scope = last
        .strip_prefix("docker-")
        .and_then(|s| s.strip_suffix(".scope"))
        .filter(|id| hex_id(id));
    if docker_scope.is_some() {
        return Err(format!(
            "this process is in the container scope {last:?} (the engine's systemd cgroup driver): \
             a function container's parent must then be a slice (NAME.slice), and a container's \
             scope is not one; start the worker's container with cgroup_parent NAME.slice, pass \
             --docker-cgroup-parent NAME.slice, and bound the slice (systemctl set-property \
             NAME.slice CPUQuota=... MemoryMax=...), or pass {NONE}"
        ));
    }
    if !hex_id(last) {
        return Err(format!(
            "this process's cgroup {cpu:?} is not a container's (a Docker container's is \
             /docker/<64 hex digits> with the cgroupfs driver): {AUTO} is for a worker running \
             in a container with the engine's socket mounted; pass a cgroup path or {NONE}"
        ));
    }
    Ok(cpu.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "23e28b15256565dc0a6ae2649c305ff2b6f7b4251897ea671f9a120029ee3457";

    /// `/proc/self/cgroup` in a container of a cgroupfs, cgroup v1 engine
    /// (as read on the test machine).
    fn v1(path: &str) -> String {
        format!(
            "9:name=systemd:{path}\n8:pids:{path}\n4:memory:{path}\n3:cpuset:{path}\n\
             2:cpuacct:{path}\n1:cpu:{path}\n0::{path}\n"
        )
    }

    #[test]
    fn values_are_none_auto_or_a_path() {
        assert_eq!(CgroupParent::parse("none").unwrap(), CgroupParent::None);
        assert_eq!(CgroupParent::parse(" auto ").unwrap(), CgroupParent::Auto);
        assert_eq!(
            CgroupParent::parse("/hf/node1").unwrap(),
            CgroupParent::Path("/hf/node1".into())
        );
        assert_eq!(
            CgroupParent::parse("hf-node1.slice").unwrap(),
            CgroupParent::Path("hf-node1.slice".into())
        );
        for bad in [
            "relative/path",
            "/a//b",
            "/a/../b",
            "/a b",
            "x.slice/y",
            "yes",
        ] {
            let e = CgroupParent::parse(bad).unwrap_err();
            assert!(e.contains("expected none, auto"), "{bad}: {e}");
        }
        assert_eq!(CgroupParent::None.resolve(None).unwrap(), None);
        assert_eq!(
            CgroupParent::Path("/p".into()).resolve(None).unwrap(),
            Some("/p".into())
        );
    }

    #[test]
    fn auto_finds_the_containers_cgroup_on_v1() {
        let path = format!("/docker/{ID}");
        assert_eq!(own_container_cgroup(&v1(&path)).unwrap(), path);
        // Controllers mounted together (`cpu,cpuacct`), a parent of its own.
        let nested = format!("/hf/node1/{ID}");
        let text = format!("5:memory:{nested}\n3:cpu,cpuacct:{nested}\n1:name=systemd:/x\n");
        assert_eq!(
            CgroupParent::Auto.resolve(Some(&text)).unwrap(),
            Some(nested)
        );
    }

    #[test]
    fn auto_says_why_it_cannot_find_one() {
        let cases: [(String, &str); 7] = [
            // On the host, or in a login session.
            (v1("/"), "is not a container's"),
            (
                v1("/user.slice/user-0.slice/session-3.scope"),
                "is not a container's",
            ),
            // The systemd driver's container scope.
            (
                v1(&format!("/system.slice/docker-{ID}.scope")),
                "NAME.slice",
            ),
            // cgroup v2 (a private cgroup namespace shows "/").
            ("0::/\n".into(), "cgroup v2 only"),
            (
                format!("0::/system.slice/docker-{ID}.scope\n"),
                "cgroup v2 only",
            ),
            (String::new(), "no cpu and memory"),
            (
                format!("4:memory:/docker/{ID}\n1:cpu:/elsewhere/{ID}\n"),
                "differs",
            ),
        ];
        for (text, expected) in &cases {
            let e = CgroupParent::Auto.resolve(Some(text)).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(e.starts_with("--docker-cgroup-parent auto: "), "{e}");
        }
        let e = CgroupParent::Auto.resolve(None).unwrap_err();
        assert!(e.contains("/proc/self/cgroup"), "{e}");
    }
}
