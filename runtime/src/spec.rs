//! The default `config.json` written by `berth-runtime spec`: runc's example spec
//! (rootless variant aside), built on oci-spec's defaults.

use oci_spec::runtime::Spec;

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
