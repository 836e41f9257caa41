//! The seam in front of the kernel's networking: network namespaces, links, addresses,
//! routes and sysctls. [`linux::LinuxNetlink`] speaks rtnetlink directly (never the `ip`
//! binary); [`fake::RecordingNetlink`] records the calls so the manager's logic is tested
//! without root.

pub mod fake;
pub mod linux;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::NetError;
use crate::subnet::Subnet;

/// A bridge as it should be: created if missing, with its gateway address, up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    pub mac: [u8; 6],
}

/// One container interface: a veth pair whose host end joins `bridge` (up, hairpin on) and
/// whose peer is created directly inside the netns at `netns`, named `ifname`, with its
/// address and (when `default_route`) the default route via `gateway`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    pub host_name: String,
    pub bridge: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub default_route: bool,
    pub mtu: u32,
}

/// Kernel networking operations `Networks` needs.
pub trait Netlink: Send + Sync {
    /// Create a new netns pinned by a bind mount at `path`, its loopback up.
    fn create_netns(&self, path: &Path) -> Result<(), NetError>;
    /// Unmount and remove a netns file; the kernel reaps its veths in the background.
    /// A missing or already unmounted file is not an error.
    fn release_netns(&self, path: &Path) -> Result<(), NetError>;
    /// Pin the netns pinned at `from` at `to` too (`from` stays pinned: releasing it is an
    /// unmount, whose wait for an RCU grace period the caller may do later).
    fn pin_netns(&self, from: &Path, to: &Path) -> Result<(), NetError>;
    /// Create the bridge if it does not exist, give it its address, bring it up.
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<(), NetError>;
    /// Delete a bridge; a missing one is not an error.
    fn delete_bridge(&self, name: &str) -> Result<(), NetError>;
    /// Create and configure one container interface.
    fn add_veth(&self, veth: &VethSpec) -> Result<(), NetError>;
    /// Delete a container-side interface (and so its pair) inside a netns; a netns that
    /// no longer exists is not an error.
    fn delete_container_link(&self, netns: &Path, ifname: &str) -> Result<(), NetError>;
    /// Destinations of the host's IPv4 routes in the main table, the default route excluded.
    fn routes(&self) -> Result<Vec<Subnet>, NetError>;
    /// Write a sysctl, `key` as a path under /proc/sys (`net/ipv4/ip_forward`).
    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetError>;
}
