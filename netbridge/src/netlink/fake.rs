//! A [`Netlink`] that records each call as one line and changes nothing, for tests of the
//! manager without root. Host routes to report can be set up front.

use std::path::Path;
use std::sync::Mutex;

use super::{BridgeSpec, Netlink, VethSpec};
use crate::error::NetError;
use crate::ipam::mac_string;
use crate::subnet::Subnet;

#[derive(Debug, Default)]
pub struct RecordingNetlink {
    pub calls: Mutex<Vec<String>>,
    pub host_routes: Vec<Subnet>,
}

impl RecordingNetlink {
    pub fn with_routes(host_routes: Vec<Subnet>) -> Self {
        RecordingNetlink {
            calls: Mutex::default(),
            host_routes,
        }
    }

    /// The calls so far, one a line, and forget them.
    pub fn take(&self) -> String {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let out = calls.join("\n");
        calls.clear();
        out
    }

    fn record(&self, line: String) -> Result<(), NetError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        Ok(())
    }
}

/// Paths in the record are shown by file name only, so they do not depend on temp dirs.
fn short(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Netlink for RecordingNetlink {
    fn create_netns(&self, path: &Path) -> Result<(), NetError> {
        self.record(format!("create_netns {}", short(path)))
    }
    fn release_netns(&self, path: &Path) -> Result<(), NetError> {
        self.record(format!("release_netns {}", short(path)))
    }
    fn pin_netns(&self, from: &Path, to: &Path) -> Result<(), NetError> {
        self.record(format!("pin_netns {} {}", short(from), short(to)))
    }
    fn ensure_bridge(&self, b: &BridgeSpec) -> Result<(), NetError> {
        self.record(format!(
            "ensure_bridge {} {}/{} mtu {} mac {}",
            b.name,
            b.gateway,
            b.prefix,
            b.mtu,
            mac_string(&b.mac)
        ))
    }
    fn delete_bridge(&self, name: &str) -> Result<(), NetError> {
        self.record(format!("delete_bridge {name}"))
    }
    fn add_veth(&self, v: &VethSpec) -> Result<(), NetError> {
        self.record(format!(
            "add_veth {} master {} peer {}:{} {}/{} mac {} gw {}{} mtu {}",
            if v.host_name.starts_with("veth") && v.host_name.len() == 11 {
                "veth*"
            } else {
                &v.host_name
            },
            v.bridge,
            short(&v.netns),
            v.ifname,
            v.ip,
            v.prefix,
            mac_string(&v.mac),
            v.gateway,
            if v.default_route { " (default)" } else { "" },
            v.mtu
        ))
    }
    fn delete_container_link(&self, netns: &Path, ifname: &str) -> Result<(), NetError> {
        self.record(format!("delete_container_link {}:{ifname}", short(netns)))
    }
    fn routes(&self) -> Result<Vec<Subnet>, NetError> {
        Ok(self.host_routes.clone())
    }
    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        self.record(format!("sysctl {key}={value}"))
    }
}
