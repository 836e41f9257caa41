//! The default `config.json` written by `berth-runtime spec`: runc's example spec
//! (rootless variant aside), built on oci-spec's defaults.

use oci_spec::runtime::Spec;

/// runc's `spec` output: `sh` in a terminal, rootfs `rootfs` read-only.
pub fn example() -> Spec {
    let mut spec = Spec::default();
    if let Some(mut p) = spec.process().clone() {
        p.set_terminal(Some(true));
        spec.set_process(Some(p));
    }
    spec
}
