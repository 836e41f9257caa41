//! Published ports: parsing docker's `-p [ip:][hostPort:]containerPort[/proto]` specs, and
//! reserving host ports by binding them, as Docker does, so that a port in use is reported
//! up front and nothing else can take a published port while it is published.
//!
//! The reservation socket is bound but never listens: the DNAT rules divert all traffic for
//! the port before it could reach it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use serde::{Deserialize, Serialize};

use crate::error::NetError;

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Proto, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("unsupported protocol {other:?} (tcp or udp)")),
        }
    }
}

/// A port to publish, as asked: `host_port: None` means "any free port", `host_ip: None`
/// means every host address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

/// A published port as set up: the host port is always known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `0.0.0.0` for every host address.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// Parse one `-p` value: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
/// `8080:80/udp`, and equal-length ranges `8000-8001:80-81`.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>, NetError> {
    let bad = |reason: &str| NetError::PortSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.parse::<Proto>().map_err(|e| bad(&e))?),
        None => (spec, Proto::Tcp),
    };
    if rest.starts_with('[') {
        return Err(bad("IPv6 host addresses are not supported"));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, "", *c),
        [h, c] => (None, *h, *c),
        [i, h, c] => (Some(*i), *h, *c),
        _ => return Err(bad("expected [ip:][hostPort:]containerPort[/proto]")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(i) => {
            let ip: Ipv4Addr = i
                .parse()
                .map_err(|_| bad("host ip is not an IPv4 address"))?;
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    let ctr = parse_range(ctr).map_err(|r| bad(&format!("container port: {r}")))?;
    let host = if host.is_empty() {
        None
    } else {
        Some(parse_range(host).map_err(|r| bad(&format!("host port: {r}")))?)
    };
    let count = ctr.1 - ctr.0 + 1;
    if let Some(h) = host {
        if h.1 - h.0 + 1 != count {
            return Err(bad("host and container port ranges differ in length"));
        }
    }
    Ok((0..count)
        .map(|i| PortMapping {
            host_ip,
            host_port: host.map(|h| h.0 + i),
            container_port: ctr.0 + i,
            proto,
        })
        .collect())
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port number (1-65535)")),
        Ok(n) => Ok(n),
    };
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("range {s:?} is reversed"));
            }
            Ok((a, b))
        }
    }
}

/// A host port held for a published port: the bound socket lives as long as this value.
#[derive(Debug)]
pub struct Reservation {
    pub port: PublishedPort,
    _socket: OwnedFd,
}

/// Bind the host side of `m` (port 0 picks a free one) and return what was published.
pub fn reserve(m: &PortMapping) -> Result<Reservation, NetError> {
    let host_ip = m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let want = m.host_port.unwrap_or(0);
    let err = |source: Errno| match source {
        Errno::EADDRINUSE => NetError::PortInUse {
            host_ip,
            port: want,
            proto: m.proto,
        },
        e => NetError::PortBind {
            host_ip,
            port: want,
            proto: m.proto,
            source: e.into(),
        },
    };
    let ty = match m.proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None).map_err(err)?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(host_ip, want)),
    )
    .map_err(err)?;
    let bound: SockaddrIn = socket::getsockname(fd.as_raw_fd()).map_err(err)?;
    Ok(Reservation {
        port: PublishedPort {
            host_ip,
            host_port: bound.port(),
            container_port: m.container_port,
            proto: m.proto,
        },
        _socket: fd,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use expect_test::expect;

    fn show(spec: &str) -> String {
        match parse_port_spec(spec) {
            Ok(v) => v
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}:{}/{}",
                        m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                        m.host_port.map(|i| i.to_string()).unwrap_or_default(),
                        m.container_port,
                        m.proto
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn specs() {
        let all = [
            "80",
            "8080:80",
            "127.0.0.1:8080:80",
            "127.0.0.1::80",
            "0.0.0.0:53:53/udp",
            "8000-8001:80-81/tcp",
            "80-81",
            "8080:80/sctp",
            "8000-8002:80-81",
            "[::1]:80:80",
            "a:b:c:d",
            "0:80",
            "x.y:80:80",
            "81-80",
        ]
        .map(|s| format!("{s:24} {}", show(s)))
        .join("\n");
        expect![[r#"
            80                       ::80/tcp
            8080:80                  :8080:80/tcp
            127.0.0.1:8080:80        127.0.0.1:8080:80/tcp
            127.0.0.1::80            127.0.0.1::80/tcp
            0.0.0.0:53:53/udp        :53:53/udp
            8000-8001:80-81/tcp      :8000:80/tcp :8001:81/tcp
            80-81                    ::80/tcp ::81/tcp
            8080:80/sctp             error: invalid port spec "8080:80/sctp": unsupported protocol "sctp" (tcp or udp)
            8000-8002:80-81          error: invalid port spec "8000-8002:80-81": host and container port ranges differ in length
            [::1]:80:80              error: invalid port spec "[::1]:80:80": IPv6 host addresses are not supported
            a:b:c:d                  error: invalid port spec "a:b:c:d": expected [ip:][hostPort:]containerPort[/proto]
            0:80                     error: invalid port spec "0:80": host port: "0" is not a port number (1-65535)
            x.y:80:80                error: invalid port spec "x.y:80:80": host ip is not an IPv4 address
            81-80                    error: invalid port spec "81-80": container port: range "81-80" is reversed"#]]
        .assert_eq(&all);
    }

    #[test]
    fn reserve_reports_a_port_in_use() {
        let any = PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: None,
            container_port: 80,
            proto: Proto::Tcp,
        };
        let first = reserve(&any).unwrap();
        assert_ne!(first.port.host_port, 0);
        let again = PortMapping {
            host_port: Some(first.port.host_port),
            ..any
        };
        let err = reserve(&again).unwrap_err();
        assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
        assert!(err.to_string().contains("already in use"), "{err}");
        // a listener elsewhere cannot take it either
        assert!(std::net::TcpListener::bind(("127.0.0.1", first.port.host_port)).is_err());
        drop(first);
        reserve(&again).unwrap();
    }
}
