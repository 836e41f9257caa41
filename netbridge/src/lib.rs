//! berth's networks: bridge networks with their veth pairs, addresses (IPAM, persisted),
//! NAT and published ports in one nftables table berth owns, a DNS responder for container
//! names on user-defined networks, and a `reconcile` that re-applies everything from the
//! saved state.
//!
//! This crate knows netlink and nftables and nothing of images, containers' processes or
//! the engine's bookkeeping: the engine hands it container ids, names and netns paths.
//! Kernel access goes through two seams, [`netlink::Netlink`] and [`firewall::Firewall`],
//! so the logic is tested without root.

pub mod dns;
pub mod error;
pub mod firewall;
mod id;
pub mod ipam;
pub mod netlink;
pub mod networks;
pub mod pool;
pub mod ports;
pub mod state;
pub mod subnet;

pub use dns::server::DnsOptions;
pub use error::NetError;
pub use firewall::{Firewall, Nft};
pub use netlink::linux::LinuxNetlink;
pub use netlink::Netlink;
pub use networks::{
    Config, ConnectRequest, CreateOptions, Endpoint, NetworkInfo, Networks, DEFAULT_NETWORK,
};
pub use ports::{parse_port_spec, PortMapping, Proto, PublishedPort};
pub use subnet::Subnet;
