//! The real [`Netlink`]: a small synchronous rtnetlink client on netlink-packet-route.
//! Operations inside a container's netns run on a short-lived thread that has `setns`'d into
//! it (namespaces are per thread), so the caller's threads never change namespace.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::mount::{self, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::{BridgeSpec, Netlink, VethSpec};
use crate::error::NetError;
use crate::subnet::Subnet;

/// rtnetlink in the caller's netns, plus sysctls under `proc_sys`.
#[derive(Debug, Clone)]
pub struct LinuxNetlink {
    /// Where sysctls live, normally `/proc/sys`.
    pub proc_sys: PathBuf,
    inside: Inside,
}

impl Default for LinuxNetlink {
    fn default() -> Self {
        LinuxNetlink {
            proc_sys: PathBuf::from("/proc/sys"),
            inside: Inside::default(),
        }
    }
}

/// rtnetlink sockets opened inside the namespaces [`LinuxNetlink::create_netns`] made, by
/// netns path: a netlink socket stays in the netns it was opened in, so configuring the
/// container's side of its first veth needs no thread to join the netns. Taken by that use.
#[derive(Clone, Default)]
struct Inside(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, Rtnl>>>);

impl std::fmt::Debug for Inside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inside")
    }
}

impl Inside {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, Rtnl>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn take(&self, netns: &Path) -> Option<Rtnl> {
        self.lock().remove(netns)
    }
    fn keep(&self, netns: &Path, rt: Rtnl) {
        self.lock().insert(netns.to_path_buf(), rt);
    }
}

fn nl(op: &'static str, target: impl std::fmt::Display) -> impl FnOnce(io::Error) -> NetError {
    let target = target.to_string();
    move |source| NetError::Netlink { op, target, source }
}

fn ns_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetError {
    let path = path.to_path_buf();
    move |source| NetError::Netns { op, path, source }
}

/// One rtnetlink socket, bound to the netns of the thread that opened it.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Send one request and collect the replies until the kernel's ack (or the end of a
    /// dump). A negative ack becomes the matching `io::Error`.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off + 16 <= data.len() {
                let len =
                    u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                        as usize;
                if len < 16 || off + len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short netlink message",
                    ));
                }
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    // a dump ends with Done, a plain request with its ack
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    fn link_index(&mut self, name: &str) -> io::Result<u32> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc_enodev()))
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Add `ip/prefix` to a link; an address that is already there is fine.
    fn add_addr(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(ip)));
        if prefix < 31 {
            if let Ok(s) = Subnet::new(ip, prefix) {
                msg.attributes.push(AddressAttribute::Broadcast(s.last()));
            }
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r.map(drop),
        }
    }

    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

/// Run `f` on a fresh thread that has joined the netns at `path`; the caller's thread keeps
/// its own namespace.
fn in_netns<T: Send>(
    path: &Path,
    f: impl FnOnce(&mut Rtnl) -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let file = File::open(path).map_err(ns_err("open", path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| ns_err("setns", path)(e.into()))?;
            let mut rt = Rtnl::open().map_err(nl("open socket in", path.display()))?;
            f(&mut rt)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Netns {
                op: "thread",
                path: path.to_path_buf(),
                source: io::Error::other("netns thread panicked"),
            })
        })
    })
}

impl LinuxNetlink {
    fn host(&self) -> Result<Rtnl, NetError> {
        Rtnl::open().map_err(nl("open socket", "host"))
    }
}

impl Netlink for LinuxNetlink {
    fn create_netns(&self, path: &Path) -> Result<(), NetError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(ns_err("create dir for", path))?;
        }
        // An earlier run's file (a crash before release) is reused: unmount it first.
        let _ = mount::umount2(path, MntFlags::MNT_DETACH);
        File::create(path).map_err(ns_err("create", path))?;
        let made = std::thread::scope(|s| {
            s.spawn(|| -> Result<Rtnl, NetError> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ns_err("unshare for", path)(e.into()))?;
                mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| ns_err("bind mount", path)(e.into()))?;
                let mut rt = Rtnl::open().map_err(nl("open socket in", path.display()))?;
                // lo is always index 1 in a new netns
                rt.set_up(1).map_err(nl("set up", "lo"))?;
                Ok(rt)
            })
            .join()
            .unwrap_or_else(|_| Err(ns_err("create", path)(io::Error::other("thread panicked"))))
        });
        match made {
            Ok(rt) => {
                self.inside.keep(path, rt);
                Ok(())
            }
            Err(e) => {
                let _ = self.release_netns(path);
                Err(e)
            }
        }
    }

    fn pin_netns(&self, from: &Path, to: &Path) -> Result<(), NetError> {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(ns_err("create dir for", to))?;
        }
        let _ = mount::umount2(to, MntFlags::MNT_DETACH);
        File::create(to).map_err(ns_err("create", to))?;
        if let Err(e) = mount::mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
            let _ = std::fs::remove_file(to);
            return Err(ns_err("bind mount", to)(e.into()));
        }
        if let Some(rt) = self.inside.take(from) {
            self.inside.keep(to, rt);
        }
        Ok(())
    }

    fn release_netns(&self, path: &Path) -> Result<(), NetError> {
        drop(self.inside.take(path));
        match mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(ns_err("unmount", path)(e.into())),
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ns_err("remove", path)(e)),
            _ => Ok(()),
        }
    }

    fn ensure_bridge(&self, br: &BridgeSpec) -> Result<(), NetError> {
        let mut rt = self.host()?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(br.name.clone()));
        msg.attributes.push(LinkAttribute::Mtu(br.mtu));
        msg.attributes.push(LinkAttribute::Address(br.mac.to_vec()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match rt.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            r => r.map(drop).map_err(nl("create bridge", &br.name))?,
        }
        let index = rt.link_index(&br.name).map_err(nl("find", &br.name))?;
        rt.add_addr(index, br.gateway, br.prefix)
            .map_err(nl("add address to", &br.name))?;
        rt.set_up(index).map_err(nl("set up", &br.name))
    }

    fn delete_bridge(&self, name: &str) -> Result<(), NetError> {
        let mut rt = self.host()?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match rt.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.raw_os_error() == Some(libc_enodev()) => Ok(()),
            r => r.map(drop).map_err(nl("delete bridge", name)),
        }
    }

    fn add_veth(&self, v: &VethSpec) -> Result<(), NetError> {
        let ns = File::open(&v.netns).map_err(ns_err("open", &v.netns))?;
        let mut rt = self.host()?;
        let bridge = rt.link_index(&v.bridge).map_err(nl("find", &v.bridge))?;

        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(v.ifname.clone()));
        peer.attributes.push(LinkAttribute::Mtu(v.mtu));
        peer.attributes.push(LinkAttribute::Address(v.mac.to_vec()));
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes
            .push(LinkAttribute::IfName(v.host_name.clone()));
        msg.attributes.push(LinkAttribute::Mtu(v.mtu));
        msg.attributes.push(LinkAttribute::Controller(bridge));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        rt.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(nl("create veth", &v.host_name))?;

        let mut hairpin = LinkMessage::default();
        hairpin
            .attributes
            .push(LinkAttribute::IfName(v.host_name.clone()));
        hairpin.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
        rt.request(RouteNetlinkMessage::NewLink(hairpin), 0)
            .map_err(nl("set hairpin on", &v.host_name))?;

        let inside = |rt: &mut Rtnl| {
            let index = rt.link_index(&v.ifname).map_err(nl("find", &v.ifname))?;
            rt.add_addr(index, v.ip, v.prefix)
                .map_err(nl("add address to", &v.ifname))?;
            rt.set_up(index).map_err(nl("set up", &v.ifname))?;
            if v.default_route {
                rt.add_default_route(index, v.gateway)
                    .map_err(nl("add default route via", v.gateway))?;
            }
            Ok(())
        };
        match self.inside.take(&v.netns) {
            Some(mut rt) => inside(&mut rt),
            None => in_netns(&v.netns, inside),
        }
    }

    fn delete_container_link(&self, netns: &Path, ifname: &str) -> Result<(), NetError> {
        if !netns.exists() {
            return Ok(()); // the container stopped: its netns, and the link, are gone
        }
        in_netns(netns, |rt| {
            let mut msg = LinkMessage::default();
            msg.attributes
                .push(LinkAttribute::IfName(ifname.to_string()));
            match rt.request(RouteNetlinkMessage::DelLink(msg), 0) {
                Err(e) if e.raw_os_error() == Some(libc_enodev()) => Ok(()),
                r => r.map(drop).map_err(nl("delete", ifname)),
            }
        })
    }

    fn routes(&self) -> Result<Vec<Subnet>, NetError> {
        let mut rt = self.host()?;
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = rt
            .request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)
            .map_err(nl("list", "routes"))?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m)
                    if m.header.table == RouteHeader::RT_TABLE_MAIN
                        && m.header.destination_prefix_length > 0 =>
                {
                    m.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                            Subnet::new(*ip, m.header.destination_prefix_length).ok()
                        }
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        std::fs::write(self.proc_sys.join(key), value).map_err(|source| NetError::Sysctl {
            key: key.to_string(),
            source,
        })
    }
}
