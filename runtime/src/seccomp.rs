//! Seccomp: turning `linux.seccomp` into a BPF program and loading it just before exec.
//! (Compilation arrives in a later step; until then a spec with seccomp is refused.)

use crate::plan::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("loading the filter: {0}")]
    Load(std::io::Error),
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    _private: (),
}

pub fn check(seccomp: Option<&oci_spec::runtime::LinuxSeccomp>) -> Result<(), SpecError> {
    match seccomp {
        None => Ok(()),
        Some(_) => Err(SpecError::Unsupported {
            field: "linux.seccomp".into(),
            reason: "seccomp filters are not implemented yet".into(),
        }),
    }
}

pub fn load(_prog: &Program) -> Result<(), SeccompError> {
    Ok(())
}
