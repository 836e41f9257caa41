//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`, vendored as
//! data beside this file, see NOTICE), resolved into a plain OCI `linux.seccomp` for one
//! capability set, architecture and kernel, as dockerd does before handing a spec to its
//! runtime. The engine calls [`default_for`]; nothing here touches the kernel except
//! reading the host's release once.

use std::sync::OnceLock;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg};
use serde::Deserialize;

const PROFILE: &str = include_str!("moby-default.json");

/// A profile in moby's format: OCI fields plus `archMap` and per-rule conditions.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

/// moby's conditions: `includes` must all hold, any one of `excludes` drops the rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    /// Go architecture names (`amd64`, `arm64`, `s390x`, …).
    #[serde(default)]
    pub arches: Vec<String>,
    /// "major.minor"
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a profile is resolved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Go's name for the architecture (`amd64`, `arm64`, …), as moby's profile uses it.
    pub arch: String,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
}

impl Target {
    /// The machine this process runs on.
    pub fn host() -> Target {
        static HOST: OnceLock<Target> = OnceLock::new();
        HOST.get_or_init(|| Target {
            arch: go_arch(std::env::consts::ARCH).to_string(),
            kernel: nix::sys::utsname::uname()
                .ok()
                .and_then(|u| u.release().to_str().and_then(parse_kernel))
                .unwrap_or((0, 0)),
        })
        .clone()
    }
}

/// Rust's architecture name to Go's (moby's profile and archMap keys follow Go).
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "mips64" => "mips64le",
        other => other,
    }
}

/// The libseccomp name of a Go architecture, as used in `archMap`.
fn scmp_arch(go: &str) -> Option<&'static str> {
    Some(match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => return None,
    })
}

/// "6.18.44-foo" → (6, 18)
pub fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The vendored moby default profile, parsed once.
pub fn profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| {
        // The file is part of this crate and covered by a unit test: it always parses.
        serde_json::from_str(PROFILE).unwrap_or_else(|e| panic!("moby-default.json: {e}"))
    })
}

impl Filter {
    fn includes(&self, caps: &[String], t: &Target) -> bool {
        self.caps.iter().all(|c| caps.contains(c))
            && (self.arches.is_empty() || self.arches.contains(&t.arch))
            && self
                .min_kernel
                .as_deref()
                .and_then(parse_kernel)
                .is_none_or(|min| t.kernel >= min)
    }

    fn excludes(&self, caps: &[String], t: &Target) -> bool {
        self.caps.iter().any(|c| caps.contains(c))
            || self.arches.contains(&t.arch)
            || self
                .min_kernel
                .as_deref()
                .and_then(parse_kernel)
                .is_some_and(|min| t.kernel >= min)
    }
}

impl Profile {
    /// Resolve for `caps` (the bounding set, `CAP_*` names) on `t`: keep the rules whose
    /// conditions hold, and list the architecture with its sub-architectures.
    pub fn resolve(&self, caps: &[String], t: &Target) -> LinuxSeccomp {
        let mut arches = Vec::new();
        if let Some(native) = scmp_arch(&t.arch) {
            if let Some(m) = self.arch_map.iter().find(|m| m.architecture == native) {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.iter().flatten().cloned());
            }
        }
        let syscalls: Vec<serde_json::Value> = self
            .syscalls
            .iter()
            .filter(|r| r.includes.includes(caps, t) && !r.excludes.excludes(caps, t))
            .map(|r| {
                let mut v = serde_json::json!({"names": r.names, "action": r.action});
                if let Some(e) = r.errno_ret {
                    v["errnoRet"] = e.into();
                }
                if !r.args.is_empty() {
                    v["args"] = serde_json::json!(r.args);
                }
                v
            })
            .collect();
        let mut v = serde_json::json!({
            "defaultAction": self.default_action,
            "syscalls": syscalls,
        });
        if let Some(e) = self.default_errno_ret {
            v["defaultErrnoRet"] = e.into();
        }
        if !arches.is_empty() {
            v["architectures"] = serde_json::json!(arches);
        }
        // Every value came from a typed field or a libseccomp name in the archMap.
        serde_json::from_value(v).unwrap_or_else(|e| panic!("resolved seccomp profile: {e}"))
    }
}

/// moby's default profile for a container whose bounding set is `caps`, on this host.
pub fn default_for<S: AsRef<str>>(caps: &[S]) -> LinuxSeccomp {
    let caps: Vec<String> = caps.iter().map(|c| c.as_ref().to_string()).collect();
    profile().resolve(&caps, &Target::host())
}

/// Docker's default capabilities (moby `oci/caps/defaults.go`): what the profile is
/// usually resolved for.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(extra: &[&str]) -> Vec<String> {
        DEFAULT_CAPS
            .iter()
            .chain(extra)
            .map(|c| c.to_string())
            .collect()
    }

    fn amd64() -> Target {
        Target {
            arch: "amd64".into(),
            kernel: (6, 1),
        }
    }

    /// Which rules of the resolved profile name `syscall`, as "action [args]" strings.
    fn rules_for(s: &LinuxSeccomp, syscall: &str) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == syscall))
            .map(|r| {
                let v = serde_json::to_value(r).unwrap();
                let mut out = v["action"].as_str().unwrap().to_string();
                if let Some(e) = v.get("errnoRet") {
                    out.push_str(&format!(" errno={e}"));
                }
                if let Some(a) = v.get("args") {
                    out.push_str(&format!(" {a}"));
                }
                out
            })
            .collect()
    }

    #[test]
    fn docker_defaults_on_amd64() {
        let s = profile().resolve(&caps(&[]), &amd64());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        // Namespaces and mounts stay closed without CAP_SYS_ADMIN.
        for denied in [
            "mount", "unshare", "setns", "keyctl", "bpf", "umount2", "reboot",
        ] {
            assert_eq!(rules_for(&s, denied), Vec::<String>::new(), "{denied}");
        }
        expect_test::expect![[r#"["SCMP_ACT_ALLOW [{\"index\":0,\"op\":\"SCMP_CMP_MASKED_EQ\",\"value\":2114060288}]"]"#]]
            .assert_eq(&format!("{:?}", rules_for(&s, "clone")));
        assert_eq!(rules_for(&s, "clone3"), ["SCMP_ACT_ERRNO errno=38"]);
        assert_eq!(
            rules_for(&s, "socket"),
            [r#"SCMP_ACT_ALLOW [{"index":0,"op":"SCMP_CMP_NE","value":40}]"#]
        );
        assert_eq!(rules_for(&s, "personality").len(), 5);
        assert_eq!(rules_for(&s, "arch_prctl"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(rules_for(&s, "chroot"), ["SCMP_ACT_ALLOW"]);
        assert_eq!(rules_for(&s, "ptrace"), ["SCMP_ACT_ALLOW"], "kernel >= 4.8");
        assert!(rules_for(&s, "s390_runtime_instr").is_empty());
    }

    #[test]
    fn sys_admin_opens_namespaces_and_lifts_the_clone_check() {
        let s = profile().resolve(&caps(&["CAP_SYS_ADMIN"]), &amd64());
        for allowed in ["mount", "unshare", "setns", "clone3", "sethostname"] {
            assert_eq!(rules_for(&s, allowed), ["SCMP_ACT_ALLOW"], "{allowed}");
        }
        assert_eq!(rules_for(&s, "clone"), ["SCMP_ACT_ALLOW"]);
    }

    #[test]
    fn old_kernels_and_other_arches() {
        let s = profile().resolve(
            &[],
            &Target {
                arch: "amd64".into(),
                kernel: (4, 4),
            },
        );
        assert!(rules_for(&s, "ptrace").is_empty());
        assert!(rules_for(&s, "chroot").is_empty(), "no CAP_SYS_CHROOT");
        let s = profile().resolve(
            &[],
            &Target {
                arch: "s390x".into(),
                kernel: (6, 1),
            },
        );
        assert_eq!(
            rules_for(&s, "clone"),
            [r#"SCMP_ACT_ALLOW [{"index":1,"op":"SCMP_CMP_MASKED_EQ","value":2114060288}]"#]
        );
        assert_eq!(rules_for(&s, "s390_runtime_instr"), ["SCMP_ACT_ALLOW"]);
        assert!(rules_for(&s, "arch_prctl").is_empty());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["architectures"],
            serde_json::json!(["SCMP_ARCH_S390X", "SCMP_ARCH_S390"])
        );
    }

    #[test]
    fn resolved_profile_passes_check_and_compiles() {
        let s = default_for(&caps(&[]));
        crate::seccomp::check(Some(&s)).unwrap();
        let p = crate::seccomp::compile(&s).unwrap();
        assert!(p.bpf.len() / 8 > 100, "{} instructions", p.bpf.len() / 8);
    }

    #[test]
    fn kernel_release_parsing() {
        assert_eq!(parse_kernel("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
    }
}
