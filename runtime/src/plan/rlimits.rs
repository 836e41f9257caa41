//! Rlimits: OCI names to kernel resources, and the host's hard limits the plan checks
//! against (a parameter, so tests need not read the process's limits).

use std::collections::BTreeMap;

use oci_spec::runtime::PosixRlimitType;

/// Facts about the host the plan depends on; a parameter so tests need not read /proc.
#[derive(Debug, Clone)]
pub struct HostLimits {
    /// Hard limits of the calling process, by resource; a missing entry means unlimited.
    pub hard: BTreeMap<PosixRlimitTypeKey, u64>,
}

/// `PosixRlimitType` as an orderable map key.
pub type PosixRlimitTypeKey = u8;

pub fn rlimit_key(t: PosixRlimitType) -> PosixRlimitTypeKey {
    t as u8
}

pub fn rlimit_name(t: PosixRlimitType) -> &'static str {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => "RLIMIT_CPU",
        RlimitFsize => "RLIMIT_FSIZE",
        RlimitData => "RLIMIT_DATA",
        RlimitStack => "RLIMIT_STACK",
        RlimitCore => "RLIMIT_CORE",
        RlimitRss => "RLIMIT_RSS",
        RlimitNproc => "RLIMIT_NPROC",
        RlimitNofile => "RLIMIT_NOFILE",
        RlimitMemlock => "RLIMIT_MEMLOCK",
        RlimitAs => "RLIMIT_AS",
        RlimitLocks => "RLIMIT_LOCKS",
        RlimitSigpending => "RLIMIT_SIGPENDING",
        RlimitMsgqueue => "RLIMIT_MSGQUEUE",
        RlimitNice => "RLIMIT_NICE",
        RlimitRtprio => "RLIMIT_RTPRIO",
        RlimitRttime => "RLIMIT_RTTIME",
    }
}

/// The `libc` resource number of an OCI rlimit type.
pub fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub const ALL_RLIMITS: [PosixRlimitType; 16] = {
    use PosixRlimitType::*;
    [
        RlimitCpu,
        RlimitFsize,
        RlimitData,
        RlimitStack,
        RlimitCore,
        RlimitRss,
        RlimitNproc,
        RlimitNofile,
        RlimitMemlock,
        RlimitAs,
        RlimitLocks,
        RlimitSigpending,
        RlimitMsgqueue,
        RlimitNice,
        RlimitRtprio,
        RlimitRttime,
    ]
};

impl HostLimits {
    /// Everything unlimited: for tests that do not care.
    pub fn unlimited() -> Self {
        HostLimits {
            hard: BTreeMap::new(),
        }
    }

    /// Read the calling process's hard limits.
    pub fn current() -> Self {
        let mut hard = BTreeMap::new();
        for t in ALL_RLIMITS {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if crate::sys::getrlimit(rlimit_resource(t), &mut rl)
                && rl.rlim_max != libc::RLIM_INFINITY
            {
                hard.insert(rlimit_key(t), rl.rlim_max);
            }
        }
        HostLimits { hard }
    }
}
