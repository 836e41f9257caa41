//! Seccomp: `linux.seccomp` compiled to classic BPF in the runtime's main process (by
//! [`bpf`]'s search over ranges when it covers the profile, else by libseccomp), cached by
//! the sha256 of the profile (in memory and on disk), and loaded by the init with
//! `seccomp(2)` just before exec. Compiling a large profile costs ~20 ms of CPU; the cache
//! makes that a one-time cost per profile.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};
use sha2::{Digest, Sha256};

use crate::plan::SpecError;

mod bpf;
pub mod moby;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp: compiling: {0}")]
    Compile(String),
    #[error("loading the seccomp filter: {0}")]
    Load(nix::errno::Errno),
}

/// A compiled filter, ready to load: BPF instructions (8 bytes each) plus `seccomp(2)` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub bpf: Vec<u8>,
    pub flags: u32,
    /// sha256 of the profile JSON it was compiled from.
    pub digest: String,
}

fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SpecError> {
    let name = json_name(&a);
    let bad = |reason: String| SpecError::Invalid {
        field: field.to_string(),
        reason,
    };
    match name.as_str() {
        "SCMP_ACT_NOTIFY" => Err(SpecError::Unsupported {
            field: field.to_string(),
            reason: "SCMP_ACT_NOTIFY (seccomp user notification)".into(),
        }),
        "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE" => {
            let v = errno.or(default_errno).unwrap_or(libc::EPERM as u32);
            let v = i32::try_from(v).map_err(|_| bad(format!("errno {v} out of range")))?;
            ScmpAction::from_str(&name, Some(v)).map_err(|e| bad(e.to_string()))
        }
        _ => ScmpAction::from_str(&name, None).map_err(|e| bad(format!("{name}: {e}"))),
    }
}

/// Validate what the plan can without compiling: actions, architectures, operators.
pub fn check(seccomp: Option<&LinuxSeccomp>) -> Result<(), SpecError> {
    let Some(s) = seccomp else { return Ok(()) };
    if s.listener_path().is_some() {
        return Err(SpecError::Unsupported {
            field: "linux.seccomp.listenerPath".into(),
            reason: "seccomp user notification".into(),
        });
    }
    action(
        s.default_action(),
        None,
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = json_name(a);
        name.parse::<ScmpArch>().map_err(|_| SpecError::Invalid {
            field: format!("linux.seccomp.architectures[{i}]"),
            reason: format!("unknown architecture {name:?}"),
        })?;
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        action(
            sc.action(),
            sc.errno_ret(),
            s.default_errno_ret(),
            &format!("linux.seccomp.syscalls[{i}].action"),
        )?;
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            let op = json_name(&arg.op());
            op.parse::<ScmpCompareOp>()
                .map_err(|_| SpecError::Invalid {
                    field: format!("linux.seccomp.syscalls[{i}].args[{j}].op"),
                    reason: format!("unknown operator {op:?}"),
                })?;
            if arg.index() > 5 {
                return Err(SpecError::Invalid {
                    field: format!("linux.seccomp.syscalls[{i}].args[{j}].index"),
                    reason: format!("{} is above 5", arg.index()),
                });
            }
        }
    }
    Ok(())
}

pub fn digest(s: &LinuxSeccomp) -> String {
    let json = serde_json::to_vec(s).unwrap_or_default();
    let mut h = Sha256::new();
    // how we compile is part of the cached program's name (3: ranges, else libseccomp's
    // binary tree)
    h.update(b"berth-seccomp-3\n");
    h.update(&json);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compile `s`, or take it from the in-memory cache, or from `cache_dir/<digest>.bpf`.
pub fn compile_cached(s: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program, SeccompError> {
    static MEM: OnceLock<Mutex<HashMap<String, Program>>> = OnceLock::new();
    let mem = MEM.get_or_init(|| Mutex::new(HashMap::new()));
    let d = digest(s);
    let file = cache_dir.map(|c| c.join(format!("{d}.bpf")));
    let store = |p: &Program| {
        if let (Some(dir), Some(f)) = (cache_dir, &file) {
            if f.exists() {
                return;
            }
            // Best effort: a cache that cannot be written only costs time.
            let _ = std::fs::create_dir_all(dir);
            let tmp = f.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &p.bpf).is_ok() {
                let _ = std::fs::rename(&tmp, f);
            }
        }
    };
    if let Some(p) = mem.lock().ok().and_then(|m| m.get(&d).cloned()) {
        store(&p);
        return Ok(p);
    }
    let cached = file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .filter(|b| !b.is_empty() && b.len().is_multiple_of(8));
    let prog = match cached {
        Some(bpf) => Program {
            bpf,
            flags: filter_flags(s),
            digest: d.clone(),
        },
        None => {
            let p = compile(s)?;
            store(&p);
            p
        }
    };
    if let Ok(mut m) = mem.lock() {
        m.insert(d, prog.clone());
    }
    Ok(prog)
}

fn filter_flags(s: &LinuxSeccomp) -> u32 {
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // TSYNC is meaningless for the single-threaded init; the rest are notify-related.
            _ => 0,
        } as u32;
    }
    flags
}

/// Compile `s`: with [`bpf`] when it covers the profile, else with libseccomp. Syscall
/// names libseccomp does not know are skipped, as runc does, so newer profiles work on
/// older hosts.
/// (The plan has `check`ed it; what the ranges compiler finds wrong, it leaves to
/// libseccomp, which names the error.)
pub fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    match bpf::compile(s) {
        Some(prog) => Ok(Program {
            bpf: bpf::to_bytes(&prog),
            flags: filter_flags(s),
            digest: digest(s),
        }),
        None => compile_libseccomp(s),
    }
}

/// Compile with libseccomp.
pub(crate) fn compile_libseccomp(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let err = |e: libseccomp::error::SeccompError| SeccompError::Compile(e.to_string());
    let spec_err = |e: SpecError| SeccompError::Compile(e.to_string());
    let default = action(
        s.default_action(),
        None,
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )
    .map_err(spec_err)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(err)?;
    // A binary tree over the syscall numbers instead of a linear list: fewer instructions
    // run per syscall, and the kernel loads the filter in about 60% of the time (it runs the
    // filter once per syscall number when it builds its allow cache). Older libseccomp: list.
    let _ = ctx.set_ctl_optimize(2);
    for a in s.architectures().iter().flatten() {
        let arch: ScmpArch = json_name(a).parse().map_err(err)?;
        ctx.add_arch(arch).map_err(err)?;
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(
            sc.action(),
            sc.errno_ret(),
            s.default_errno_ret(),
            &format!("linux.seccomp.syscalls[{i}].action"),
        )
        .map_err(spec_err)?;
        if act == default {
            continue;
        }
        let mut conds = Vec::new();
        for arg in sc.args().iter().flatten() {
            let op: ScmpCompareOp = json_name(&arg.op()).parse().map_err(err)?;
            let cmp = match op {
                ScmpCompareOp::MaskedEqual(_) => ScmpArgCompare::new(
                    arg.index() as u32,
                    ScmpCompareOp::MaskedEqual(arg.value()),
                    arg.value_two().unwrap_or(0),
                ),
                op => ScmpArgCompare::new(arg.index() as u32, op, arg.value()),
            };
            conds.push(cmp);
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conds.is_empty() {
                ctx.add_rule(act, nr).map_err(err)?;
            } else if conds.len() > 1
                && sc.args().iter().flatten().all(|a| {
                    a.index() == sc.args().iter().flatten().next().map_or(0, |f| f.index())
                })
            {
                // Several conditions on the same argument mean "any of" (as runc does).
                for c in &conds {
                    ctx.add_rule_conditional(act, nr, std::slice::from_ref(c))
                        .map_err(err)?;
                }
            } else {
                ctx.add_rule_conditional(act, nr, &conds).map_err(err)?;
            }
        }
    }
    let bpf = export(&ctx)?;
    Ok(Program {
        bpf,
        flags: filter_flags(s),
        digest: digest(s),
    })
}

/// libseccomp 2.5 only exports to an fd: go through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    use std::io::{Read, Seek};
    let io = |e: std::io::Error| SeccompError::Compile(format!("exporting BPF: {e}"));
    let fd = nix::sys::memfd::memfd_create("berth-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| io(e.into()))?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f)
        .map_err(|e| SeccompError::Compile(e.to_string()))?;
    f.rewind().map_err(io)?;
    let mut bpf = Vec::new();
    f.read_to_end(&mut bpf).map_err(io)?;
    Ok(bpf)
}

/// Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn load(prog: &Program) -> Result<(), SeccompError> {
    crate::sys::seccomp_load(&prog.bpf, prog.flags).map_err(SeccompError::Load)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const P: &str = r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        {"names": ["mkdir", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
      ]
    }"#;

    #[test]
    fn compiles_and_caches_by_digest() {
        let p = profile(P);
        let dir = tempfile::tempdir().unwrap();
        let a = compile_cached(&p, Some(dir.path())).unwrap();
        assert!(!a.bpf.is_empty() && a.bpf.len().is_multiple_of(8));
        assert_eq!(a.digest.len(), 64);
        let file = dir.path().join(format!("{}.bpf", a.digest));
        assert_eq!(std::fs::read(&file).unwrap(), a.bpf);
        assert_eq!(compile(&p).unwrap(), a);
    }

    #[test]
    fn check_names_bad_fields() {
        let e = check(Some(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        )))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.seccomp.syscalls[0].args[0].index: 9 is above 5"
        );
        let e = check(Some(&profile(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.seccomp.defaultAction: not supported"),
            "{e}"
        );
    }
}
