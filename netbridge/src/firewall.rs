//! The nftables ruleset berth owns: one table, `ip berth`, computed as text from the saved
//! networks and replaced whole in one `nft -f -` transaction per change (each `nft` process
//! costs 5–20 ms, so never one per rule). Nothing here touches another tool's tables.
//!
//! What the rules do, per bridge network:
//! - outbound: masquerade traffic from the subnet leaving by another interface (not for
//!   internal networks, which cannot leave their bridge at all);
//! - published ports: DNAT in prerouting and output for destinations that are local
//!   addresses, so `127.0.0.1:port`, the host's addresses and the gateway all work;
//! - `127.0.0.1`: with `route_localnet=1` on the bridge, a masquerade of loopback sources
//!   into the bridge so replies come back; and a raw drop of 127.0.0.0/8 arriving *from* a
//!   bridge, so a container cannot reach the host's loopback services through the sysctl;
//! - hairpin: a masquerade of DNATed traffic from the subnet back into its own bridge (the
//!   bridge port is in hairpin mode too);
//! - isolation: no forwarding between two berth bridges, except for published ports; no
//!   direct access to a subnet from outside its bridge.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::NetError;
use crate::ports::{Proto, PublishedPort};
use crate::subnet::Subnet;

/// The table berth owns, in the `ip` family.
pub const TABLE: &str = "berth";

/// The firewall's inputs for one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
    /// Container address and what is published to it.
    pub published: Vec<(Ipv4Addr, PublishedPort)>,
}

/// The whole ruleset as one nft batch that replaces the table atomically.
pub fn ruleset(networks: &[NetworkRules]) -> String {
    let mut nets: Vec<&NetworkRules> = networks.iter().collect();
    nets.sort_by(|a, b| a.bridge.cmp(&b.bridge));
    let mut s = String::new();
    // Declaring the table first makes the delete succeed when it does not exist yet.
    let _ = writeln!(s, "table ip {TABLE}\ndelete table ip {TABLE}");
    if nets.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table ip {TABLE} {{");
    let bridges = set(nets.iter().map(|n| quote(&n.bridge)));

    s.push_str(
        "\tchain raw-prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n",
    );
    let _ = writeln!(s, "\t\tiifname {bridges} ip daddr 127.0.0.0/8 drop");
    for n in &nets {
        let _ = writeln!(
            s,
            "\t\tip daddr {} iifname != {} drop",
            n.subnet,
            quote(&n.bridge)
        );
    }
    s.push_str("\t}\n");

    s.push_str("\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tfib daddr type local jump published\n\t}\n");
    // nft 1.0.6 refuses the `dstnat` keyword on the output hook: -100 is its value.
    s.push_str("\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local jump published\n\t}\n");

    s.push_str("\tchain published {\n");
    for n in nets.iter().filter(|n| !n.internal) {
        let mut ports = n.published.clone();
        ports.sort();
        for (ip, p) in ports {
            let daddr = if p.host_ip.is_unspecified() {
                String::new()
            } else {
                format!("ip daddr {} ", p.host_ip)
            };
            let _ = writeln!(
                s,
                "\t\t{daddr}{} dport {} dnat to {ip}:{}",
                proto(p.proto),
                p.host_port,
                p.container_port
            );
        }
    }
    s.push_str("\t}\n");

    s.push_str("\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for n in &nets {
        let br = quote(&n.bridge);
        if !n.internal {
            let _ = writeln!(s, "\t\tip saddr {} oifname != {br} masquerade", n.subnet);
        }
        let _ = writeln!(s, "\t\toifname {br} ip saddr 127.0.0.0/8 masquerade");
        let _ = writeln!(
            s,
            "\t\toifname {br} ip saddr {} ct status dnat masquerade",
            n.subnet
        );
    }
    s.push_str("\t}\n");

    s.push_str(
        "\tchain filter-forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    s.push_str("\t\tct status dnat accept\n");
    for n in &nets {
        let br = quote(&n.bridge);
        if n.internal {
            let _ = writeln!(s, "\t\tiifname {br} oifname != {br} drop");
            let _ = writeln!(s, "\t\toifname {br} iifname != {br} drop");
        } else if nets.len() > 1 {
            let others = set(nets
                .iter()
                .filter(|o| o.bridge != n.bridge)
                .map(|o| quote(&o.bridge)));
            let _ = writeln!(s, "\t\tiifname {br} oifname {others} drop");
        }
    }
    s.push_str("\t}\n}\n");
    s
}

fn proto(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn set(items: impl Iterator<Item = String>) -> String {
    format!("{{ {} }}", items.collect::<Vec<_>>().join(", "))
}

/// The seam in front of nftables: apply one batch.
pub trait Firewall: Send + Sync {
    fn apply(&self, batch: &str) -> Result<(), NetError>;
}

/// The real firewall: `nft -f -` with the batch on stdin, one process per change.
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        let program = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nft"));
        Nft { program }
    }
}

impl Firewall for Nft {
    fn apply(&self, batch: &str) -> Result<(), NetError> {
        let spawn_err =
            |e: std::io::Error| NetError::Nft(format!("{}: {e}", self.program.display()));
        let mut child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(batch.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NetError::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }
}

/// A [`Firewall`] that keeps the batches it was given, for tests without root.
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    pub batches: std::sync::Mutex<Vec<String>>,
}

impl RecordingFirewall {
    /// How many batches were applied so far.
    pub fn count(&self) -> usize {
        self.batches.lock().map(|b| b.len()).unwrap_or_default()
    }

    pub fn last(&self) -> String {
        self.batches
            .lock()
            .ok()
            .and_then(|b| b.last().cloned())
            .unwrap_or_default()
    }
}

impl Firewall for RecordingFirewall {
    fn apply(&self, batch: &str) -> Result<(), NetError> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use expect_test::expect;

    fn port(host_ip: [u8; 4], host_port: u16, container_port: u16, proto: Proto) -> PublishedPort {
        PublishedPort {
            host_ip: Ipv4Addr::from(host_ip),
            host_port,
            container_port,
            proto,
        }
    }

    #[test]
    fn empty_ruleset_only_removes_the_table() {
        expect![[r#"
            table ip berth
            delete table ip berth
        "#]]
        .assert_eq(&ruleset(&[]));
    }

    #[test]
    fn ruleset_for_three_networks() {
        let nets = [
            NetworkRules {
                bridge: "berth0".into(),
                subnet: "172.17.0.0/16".parse().unwrap(),
                internal: false,
                published: vec![
                    (
                        Ipv4Addr::new(172, 17, 0, 2),
                        port([0, 0, 0, 0], 8080, 80, Proto::Tcp),
                    ),
                    (
                        Ipv4Addr::new(172, 17, 0, 3),
                        port([127, 0, 0, 1], 5353, 53, Proto::Udp),
                    ),
                ],
            },
            NetworkRules {
                bridge: "br-0123456789ab".into(),
                subnet: "172.18.0.0/16".parse().unwrap(),
                internal: false,
                published: vec![],
            },
            NetworkRules {
                bridge: "br-internal0000".into(),
                subnet: "192.168.0.0/20".parse().unwrap(),
                internal: true,
                published: vec![(
                    Ipv4Addr::new(192, 168, 0, 2),
                    port([0, 0, 0, 0], 9, 9, Proto::Tcp),
                )],
            },
        ];
        expect![[r#"
            table ip berth
            delete table ip berth
            table ip berth {
            	chain raw-prerouting {
            		type filter hook prerouting priority raw; policy accept;
            		iifname { "berth0", "br-0123456789ab", "br-internal0000" } ip daddr 127.0.0.0/8 drop
            		ip daddr 172.17.0.0/16 iifname != "berth0" drop
            		ip daddr 172.18.0.0/16 iifname != "br-0123456789ab" drop
            		ip daddr 192.168.0.0/20 iifname != "br-internal0000" drop
            	}
            	chain nat-prerouting {
            		type nat hook prerouting priority dstnat; policy accept;
            		fib daddr type local jump published
            	}
            	chain nat-output {
            		type nat hook output priority -100; policy accept;
            		fib daddr type local jump published
            	}
            	chain published {
            		tcp dport 8080 dnat to 172.17.0.2:80
            		ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.3:53
            	}
            	chain nat-postrouting {
            		type nat hook postrouting priority srcnat; policy accept;
            		ip saddr 172.17.0.0/16 oifname != "berth0" masquerade
            		oifname "berth0" ip saddr 127.0.0.0/8 masquerade
            		oifname "berth0" ip saddr 172.17.0.0/16 ct status dnat masquerade
            		ip saddr 172.18.0.0/16 oifname != "br-0123456789ab" masquerade
            		oifname "br-0123456789ab" ip saddr 127.0.0.0/8 masquerade
            		oifname "br-0123456789ab" ip saddr 172.18.0.0/16 ct status dnat masquerade
            		oifname "br-internal0000" ip saddr 127.0.0.0/8 masquerade
            		oifname "br-internal0000" ip saddr 192.168.0.0/20 ct status dnat masquerade
            	}
            	chain filter-forward {
            		type filter hook forward priority filter; policy accept;
            		ct status dnat accept
            		iifname "berth0" oifname { "br-0123456789ab", "br-internal0000" } drop
            		iifname "br-0123456789ab" oifname { "berth0", "br-internal0000" } drop
            		iifname "br-internal0000" oifname != "br-internal0000" drop
            		oifname "br-internal0000" iifname != "br-internal0000" drop
            	}
            }
        "#]]
        .assert_eq(&ruleset(&nets));
    }
}
