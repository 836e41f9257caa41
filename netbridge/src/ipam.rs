//! Address management as pure functions over the saved state: which pool a new network
//! takes, which address a new endpoint gets, Docker-style MACs. Persistence is the
//! caller's (`Networks` writes the record before it touches the kernel).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::subnet::Subnet;

/// The default bridge's subnet when the caller gives none (Docker's docker0).
pub const DEFAULT_BRIDGE_SUBNET: Subnet = match Subnet::from_octets([172, 17, 0, 0], 16) {
    Some(s) => s,
    None => unreachable!(),
};

/// The pools user networks take from, in order: 172.18.0.0/16 … 172.31.0.0/16, then
/// 192.168.0.0/16 in /20 blocks (Docker's local address pools).
pub fn user_pools() -> impl Iterator<Item = Subnet> {
    let big = (18u8..=31).filter_map(|b| Subnet::from_octets([172, b, 0, 0], 16));
    let small = Subnet::from_octets([192, 168, 0, 0], 16)
        .into_iter()
        .flat_map(|s| s.split(20).collect::<Vec<_>>());
    big.chain(small)
}

/// The first candidate that overlaps none of `taken` (other networks and host routes).
pub fn pick_pool(mut candidates: impl Iterator<Item = Subnet>, taken: &[Subnet]) -> Option<Subnet> {
    candidates.find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// The lowest free host address of `subnet`, never the gateway nor one in `used`.
pub fn allocate(subnet: &Subnet, gateway: Ipv4Addr, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    (1..u32::MAX)
        .map_while(|n| subnet.nth(n))
        .find(|ip| subnet.is_host(*ip) && *ip != gateway && !used.contains(ip))
}

/// Why `ip` cannot be given out in `subnet`, if it cannot.
pub fn check_fixed(
    ip: Ipv4Addr,
    subnet: &Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<(), String> {
    if !subnet.contains(ip) {
        Err(format!("outside {subnet}"))
    } else if !subnet.is_host(ip) {
        Err("network or broadcast address".into())
    } else if ip == gateway {
        Err("it is the gateway".into())
    } else if used.contains(&ip) {
        Err("already in use".into())
    } else {
        Ok(())
    }
}

/// Docker's MAC for an address: 02:42 followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A MAC address as `--mac-address` takes it (six hex bytes, `:` or `-` between). One a
/// container's interface can have: not multicast, not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = |why: &str| format!("invalid MAC address {s}: {why}");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad("six hexadecimal bytes expected, as 02:42:ac:11:00:02"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad("six hexadecimal bytes expected, as 02:42:ac:11:00:02"));
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| bad("six hexadecimal bytes expected, as 02:42:ac:11:00:02"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(bad("a multicast address cannot be an interface's"));
    }
    if mac == [0; 6] {
        return Err(bad("the all-zero address cannot be an interface's"));
    }
    Ok(mac)
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_mac_addresses() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:99").unwrap(),
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x99]
        );
        assert_eq!(parse_mac("92-00-00-00-00-01").unwrap()[0], 0x92);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:9",
            "02:42:ac:11:00:zz",
            "02:42:ac:11:00:99:00",
        ] {
            assert!(
                parse_mac(bad)
                    .unwrap_err()
                    .starts_with("invalid MAC address"),
                "{bad}"
            );
        }
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00").is_err());
    }

    #[test]
    fn pools_skip_taken_ranges() {
        let all: Vec<Subnet> = user_pools().collect();
        assert_eq!(all.len(), 14 + 16);
        assert_eq!(all[0].to_string(), "172.18.0.0/16");
        assert_eq!(all[14].to_string(), "192.168.0.0/20");
        let taken: Vec<Subnet> = ["172.18.0.0/16", "172.19.5.0/24", "10.0.0.0/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            pick_pool(user_pools(), &taken).unwrap().to_string(),
            "172.20.0.0/16"
        );
        // a host route covering all of 172.16/12 sends us to 192.168/20 blocks
        let wide = [
            "172.16.0.0/12".parse().unwrap(),
            "192.168.0.0/24".parse().unwrap(),
        ];
        assert_eq!(
            pick_pool(user_pools(), &wide).unwrap().to_string(),
            "192.168.16.0/20"
        );
        let everything = ["0.0.0.0/1".parse().unwrap(), "128.0.0.0/1".parse().unwrap()];
        assert!(pick_pool(user_pools(), &everything).is_none());
    }

    #[test]
    fn addresses_are_never_handed_out_twice() {
        let subnet: Subnet = "10.9.0.0/29".parse().unwrap();
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut used = BTreeSet::new();
        let mut got = vec![];
        while let Some(ip) = allocate(&subnet, gw, &used) {
            used.insert(ip);
            got.push(ip.to_string());
        }
        // .0 network, .1 gateway, .7 broadcast
        assert_eq!(
            got,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
        );
        used.remove(&Ipv4Addr::new(10, 9, 0, 4));
        assert_eq!(
            allocate(&subnet, gw, &used),
            Some(Ipv4Addr::new(10, 9, 0, 4))
        );
        assert_eq!(
            check_fixed(Ipv4Addr::new(10, 9, 0, 3), &subnet, gw, &used).unwrap_err(),
            "already in use"
        );
        assert!(check_fixed(Ipv4Addr::new(10, 9, 0, 1), &subnet, gw, &used).is_err());
        assert!(check_fixed(Ipv4Addr::new(10, 9, 0, 7), &subnet, gw, &used).is_err());
        assert!(check_fixed(Ipv4Addr::new(10, 9, 1, 2), &subnet, gw, &used).is_err());
        assert!(check_fixed(Ipv4Addr::new(10, 9, 0, 4), &subnet, gw, &used).is_ok());
    }

    #[test]
    fn docker_macs() {
        assert_eq!(
            mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
