//! IPv4 subnets as plain values: parsing `a.b.c.d/n`, containment, overlap, and the
//! address arithmetic IPAM needs. No I/O.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::NetError;

/// An IPv4 network: its first address and prefix length. The address always has its host
/// bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix` (host bits are dropped).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Subnet, NetError> {
        if prefix > 32 {
            return Err(NetError::BadSubnet {
                value: format!("{addr}/{prefix}"),
                reason: "prefix length above 32".into(),
            });
        }
        Ok(Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// A subnet from literal octets, for constants; `None` if the prefix is above 32.
    pub const fn from_octets(o: [u8; 4], prefix: u8) -> Option<Subnet> {
        if prefix > 32 {
            return None;
        }
        let raw = u32::from_be_bytes(o);
        let m = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        };
        Some(Subnet {
            addr: Ipv4Addr::from_bits(raw & m),
            prefix,
        })
    }

    /// Parse `a.b.c.d/n`, keeping the address as given (for `--bip 10.1.0.1/24`, where the
    /// address is the gateway) next to the subnet.
    pub fn parse_with_addr(s: &str) -> Result<(Ipv4Addr, Subnet), NetError> {
        let bad = |reason: &str| NetError::BadSubnet {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (a, p) = s.split_once('/').ok_or_else(|| bad("expected a.b.c.d/n"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        Ok((addr, Subnet::new(addr, prefix)?))
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The last address (the broadcast address for prefixes below 31).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address of the subnet (0 is the network address), if inside it.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Whether `ip` can be given to a host: inside, and neither the network nor the
    /// broadcast address (for prefixes up to /30).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.last()))
    }

    /// Split into consecutive subnets of `prefix` (which must not be shorter than ours).
    pub fn split(&self, prefix: u8) -> impl Iterator<Item = Subnet> + '_ {
        let count = if prefix >= self.prefix && prefix <= 32 {
            1u64 << (prefix - self.prefix)
        } else {
            0
        };
        let step = 1u64 << (32 - u32::from(prefix.min(32)));
        (0..count).map(move |i| Subnet {
            addr: Ipv4Addr::from((u64::from(u32::from(self.addr)) + i * step) as u32),
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Subnet, NetError> {
        Subnet::parse_with_addr(s).map(|(_, n)| n)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_and_math() {
        let (gw, n) = Subnet::parse_with_addr("172.17.0.1/16").unwrap();
        assert_eq!(gw, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(n.to_string(), "172.17.0.0/16");
        assert_eq!(n.last(), Ipv4Addr::new(172, 17, 255, 255));
        assert!(n.contains(Ipv4Addr::new(172, 17, 3, 4)));
        assert!(!n.contains(Ipv4Addr::new(172, 18, 0, 1)));
        assert!(n.overlaps(&"172.17.5.0/24".parse().unwrap()));
        assert!(!n.overlaps(&"172.18.0.0/16".parse().unwrap()));
        assert!(!n.is_host(n.addr()) && !n.is_host(n.last()));
        assert_eq!(n.nth(2), Some(Ipv4Addr::new(172, 17, 0, 2)));
        assert!("1.2.3.4".parse::<Subnet>().is_err());
        assert!("1.2.3.4/33".parse::<Subnet>().is_err());
        let blocks: Vec<String> = "192.168.0.0/16"
            .parse::<Subnet>()
            .unwrap()
            .split(20)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(blocks.len(), 16);
        assert_eq!(blocks[1], "192.168.16.0/20");
        assert_eq!(blocks[15], "192.168.240.0/20");
    }
}
