//! The default `config.json` written by `berth-runtime spec`: runc's example spec
//! (rootless variant aside), built on oci-spec's defaults.

use oci_spec::runtime::Spec;

/// Put moby's default seccomp profile, resolved for the spec's bounding set and this
/// host, into `spec.linux.seccomp`.
/// A bundle's `config.json`, as `Spec::load` reads it but parsed from memory: that one
/// has serde_json read the file through `from_reader`, a byte at a time, ~3 times the CPU
/// for Docker's spec (~0.1 ms of every container start here).
pub fn load(path: &std::path::Path) -> Result<Spec, oci_spec::OciSpecError> {
    let bytes = std::fs::read(path)?;
    Ok(serde_json::from_slice(&bytes)?)
}

pub fn add_default_seccomp(spec: &mut Spec) {
    let caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| {
            b.iter()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(crate::seccomp::moby::default_for(&caps)));
    spec.set_linux(Some(linux));
}

/// runc's `spec` output: `sh` in a terminal, rootfs `rootfs` read-only.
pub fn example() -> Spec {
    let mut spec = Spec::default();
    if let Some(mut p) = spec.process().clone() {
        p.set_terminal(Some(true));
        // No inheritable or ambient capabilities (CVE-2022-29162), as runc's example.
        if let Some(mut caps) = p.capabilities().clone() {
            caps.set_inheritable(None);
            caps.set_ambient(None);
            p.set_capabilities(Some(caps));
        }
        spec.set_process(Some(p));
    }
    spec.set_hostname(Some("berth".into()));
    spec
}
