//! [`Networks`]: the crate's front door. It owns the saved state (one file per network),
//! the host-port reservations and the DNS responders, and drives the kernel through the
//! [`Netlink`] and [`Firewall`] seams. Every change is saved before the kernel is touched,
//! and the firewall is rebuilt in one batch only when what it depends on changed.
//!
//! All methods are blocking (netlink, `nft`, fsync): call them from `spawn_blocking`.
//! One lock serializes them; each takes a few milliseconds.
//!
//! Teardown never waits for `nft` (rule deletions cost an RCU grace period, 10–20 ms): the
//! ruleset is marked stale and a background thread rebuilds it from the state as it is when
//! it runs. Every batch carries a sequence number taken under the state lock, and a batch
//! older than the last one applied is dropped, so an older state never replaces a newer one;
//! the `nft` process itself runs outside the state lock.
//! Setup with published ports applies synchronously: the port works when `connect` returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::dns::server::{DnsOptions, Responder};
use crate::dns::{add_name, Records, SourceNames};
use crate::error::NetError;
use crate::firewall::{self, Firewall, NetworkRules};
use crate::id;
use crate::ipam;
use crate::netlink::{BridgeSpec, Netlink, VethSpec};
use crate::pool::NetnsPool;
use crate::ports::{self, PortMapping, PublishedPort, Reservation};
use crate::state::{EndpointRecord, LinkRecord, NetworkRecord, Store};
use crate::subnet::Subnet;

/// The default network's name, as Docker's.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Where state lives and how the default network looks.
#[derive(Debug, Clone)]
pub struct Config {
    /// Network files (`<name>.json`), e.g. `<data-root>/networks`.
    pub state_dir: PathBuf,
    /// Netns files (`<container-id>`): what a reboot voids, so under the daemon's exec-root
    /// (a tmpfs), e.g. `<exec-root>/net/netns`.
    pub netns_dir: PathBuf,
    /// The default network's bridge, `berth0`.
    pub default_bridge: String,
    /// `--bip`: the default bridge's gateway and subnet. `None`: 172.17.0.0/16, or the first
    /// free user pool when a host route overlaps it.
    pub bip: Option<(Ipv4Addr, Subnet)>,
    pub mtu: u32,
    /// Serve DNS on user networks. `None`: no responders (tests, or no runtime).
    pub dns: Option<DnsOptions>,
}

impl Config {
    /// Defaults: definitions and endpoints in `<data_root>/networks/`, netns files in
    /// `<run_dir>/netns`, `berth0`, MTU 1500, no DNS.
    pub fn under(data_root: &Path, run_dir: &Path) -> Config {
        Config {
            state_dir: data_root.join("networks"),
            netns_dir: run_dir.join("netns"),
            default_bridge: "berth0".into(),
            bip: None,
            mtu: 1500,
            dns: None,
        }
    }
}

/// `network create` options.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
}

/// Connect one container to one network.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Network name, id, or unique id prefix.
    pub network: String,
    pub container_id: String,
    pub container_name: String,
    /// `--network-alias` (and, for the engine's convenience, `--link` aliases).
    pub aliases: Vec<String>,
    /// The container's netns file, from [`Networks::create_netns`].
    pub netns: PathBuf,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address` (else Docker's 02:42 + the address), checked by [`ipam::parse_mac`].
    pub mac: Option<[u8; 6]>,
    pub ports: Vec<PortMapping>,
    /// `--link`s: (linked container's id, alias), resolved by this container only.
    pub links: Vec<(String, String)>,
}

/// One container on one network, as the engine reports it (Docker's `NetworkSettings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network_id: String,
    pub network_name: String,
    pub endpoint_id: String,
    pub container_id: String,
    pub container_name: String,
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// Inside the container: `eth0`, `eth1`, …
    pub ifname: String,
    pub ports: Vec<PublishedPort>,
    /// The resolver to write into the container's resolv.conf (user networks only).
    pub dns_server: Option<Ipv4Addr>,
}

/// A network, as `network ls` / `inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    /// Always `bridge`.
    pub driver: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub dns: bool,
    pub mtu: u32,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub endpoints: Vec<Endpoint>,
}

struct Inner {
    nets: BTreeMap<String, NetworkRecord>,
    /// Open host-port sockets by (network name, container id).
    reserved: HashMap<(String, String), Vec<Reservation>>,
    dns: HashMap<String, Responder>,
    /// Sequence number of the last batch computed.
    fw_seq: u64,
    /// The ruleset no longer matches the state: the background thread will rebuild it.
    fw_stale: bool,
    closing: bool,
}

/// The last batch `nft` accepted and its sequence number.
#[derive(Default)]
struct Applied {
    seq: u64,
    batch: Option<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
    /// Lock order: `inner` before `applied`, never the reverse.
    applied: Mutex<Applied>,
}

/// Bridge networks of one daemon.
pub struct Networks {
    cfg: Config,
    netlink: Arc<dyn Netlink>,
    firewall: Arc<dyn Firewall>,
    store: Store,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    /// Namespaces made ahead for [`Networks::create_netns`], once enabled.
    pool: std::sync::OnceLock<Arc<NetnsPool>>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks")
            .field("state_dir", &self.cfg.state_dir)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128
}

impl Networks {
    /// Load the saved networks and create the default one's record if missing. Changes
    /// nothing in the kernel: call [`Networks::reconcile`] next.
    pub fn open(
        cfg: Config,
        netlink: Arc<dyn Netlink>,
        firewall: Arc<dyn Firewall>,
    ) -> Result<Networks, NetError> {
        let store = Store::open(&cfg.state_dir)?;
        let nets: BTreeMap<String, NetworkRecord> = store
            .load_all()?
            .into_iter()
            .map(|n| (n.name.clone(), n))
            .collect();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                nets,
                reserved: HashMap::new(),
                dns: HashMap::new(),
                fw_seq: 0,
                fw_stale: false,
                closing: false,
            }),
            wake: Condvar::new(),
            applied: Mutex::default(),
        });
        let worker = {
            let (shared, firewall) = (shared.clone(), firewall.clone());
            std::thread::Builder::new()
                .name("netbridge-fw".into())
                .spawn(move || firewall_worker(&shared, firewall.as_ref()))
                .map_err(|source| {
                    NetError::Nft(format!("starting the firewall thread: {source}"))
                })?
        };
        let me = Networks {
            cfg,
            netlink,
            firewall,
            store,
            shared,
            worker: Some(worker),
            pool: std::sync::OnceLock::new(),
        };
        {
            let mut inner = me.lock();
            if !inner.nets.contains_key(DEFAULT_NETWORK) {
                let rec = me.default_record(&inner)?;
                me.store.save(&rec)?;
                inner.nets.insert(rec.name.clone(), rec);
            }
        }
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leave the ruleset rebuild to the background thread.
    fn firewall_later(&self, inner: &mut Inner) {
        inner.fw_stale = true;
        self.shared.wake.notify_one();
    }

    /// Make sure the live ruleset matches the state now, waiting for a background rebuild
    /// in flight (tests; before reading the live rules).
    pub fn flush_firewall(&self) -> Result<(), NetError> {
        let mut inner = self.lock();
        self.apply_firewall(&mut inner, false)
    }

    fn default_record(&self, inner: &Inner) -> Result<NetworkRecord, NetError> {
        let (gateway, subnet, user_subnet) = match self.cfg.bip {
            Some((gw, s)) => (gw, s, true),
            None => {
                let taken = self.taken(inner)?;
                let s = ipam::pick_pool(
                    std::iter::once(ipam::DEFAULT_BRIDGE_SUBNET).chain(ipam::user_pools()),
                    &taken,
                )
                .ok_or(NetError::NoFreePool)?;
                (s.nth(1).unwrap_or(s.addr()), s, false)
            }
        };
        Ok(NetworkRecord {
            id: id::random_hex(32),
            name: DEFAULT_NETWORK.into(),
            bridge: self.cfg.default_bridge.clone(),
            subnet,
            gateway,
            user_subnet,
            internal: false,
            dns: false,
            mtu: self.cfg.mtu,
            labels: BTreeMap::new(),
            created: now(),
            endpoints: BTreeMap::new(),
        })
    }

    /// Subnets a new network must not overlap: other networks' and host routes (except the
    /// routes of our own bridges, which are our networks).
    fn taken(&self, inner: &Inner) -> Result<Vec<Subnet>, NetError> {
        let mut taken: Vec<Subnet> = inner.nets.values().map(|n| n.subnet).collect();
        taken.extend(self.netlink.routes()?);
        Ok(taken)
    }

    fn find<'a>(inner: &'a Inner, key: &str) -> Result<&'a NetworkRecord, NetError> {
        if let Some(n) = inner.nets.get(key) {
            return Ok(n);
        }
        let mut by_id = inner
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_id.next(), by_id.next()) {
            (Some(n), None) => Ok(n),
            _ => Err(NetError::NotFound(key.to_string())),
        }
    }

    /// Create a user-defined bridge network (with DNS when the config has it).
    pub fn create(&self, opts: &CreateOptions) -> Result<NetworkInfo, NetError> {
        if !valid_name(&opts.name) {
            return Err(NetError::BadName(opts.name.clone()));
        }
        let mut inner = self.lock();
        if inner.nets.contains_key(&opts.name) {
            return Err(NetError::Exists(opts.name.clone()));
        }
        let subnet = match opts.subnet {
            Some(s) => {
                if let Some(other) = inner.nets.values().find(|n| n.subnet.overlaps(&s)) {
                    return Err(NetError::Overlap {
                        subnet: s.to_string(),
                        other: format!("network {} ({})", other.name, other.subnet),
                    });
                }
                s
            }
            None => ipam::pick_pool(ipam::user_pools(), &self.taken(&inner)?)
                .ok_or(NetError::NoFreePool)?,
        };
        let gateway = match opts.gateway {
            Some(gw) if subnet.is_host(gw) => gw,
            Some(gw) => {
                return Err(NetError::BadAddress {
                    ip: gw,
                    network: opts.name.clone(),
                    reason: format!("gateway must be a host address of {subnet}"),
                })
            }
            None => subnet.nth(1).ok_or_else(|| NetError::BadSubnet {
                value: subnet.to_string(),
                reason: "too small".into(),
            })?,
        };
        let id = id::random_hex(32);
        let rec = NetworkRecord {
            bridge: format!("br-{}", &id[..12]),
            id,
            name: opts.name.clone(),
            subnet,
            gateway,
            user_subnet: opts.subnet.is_some(),
            internal: opts.internal,
            dns: self.cfg.dns.is_some(),
            mtu: opts.mtu.unwrap_or(self.cfg.mtu),
            labels: opts.labels.clone(),
            created: now(),
            endpoints: BTreeMap::new(),
        };
        self.store.save(&rec)?;
        inner.nets.insert(rec.name.clone(), rec.clone());
        let made = self.bring_up(&mut inner, &rec);
        if let Err(e) = made {
            let mut errs = vec![e];
            inner.nets.remove(&rec.name);
            inner.dns.remove(&rec.name);
            errs.extend(self.netlink.delete_bridge(&rec.bridge).err());
            errs.extend(self.store.delete(&rec.name).err());
            errs.extend(self.apply_firewall(&mut inner, false).err());
            return Err(NetError::from_list(errs));
        }
        Ok(info(&rec))
    }

    /// Bridge, sysctls, firewall, DNS for one network.
    fn bring_up(&self, inner: &mut Inner, rec: &NetworkRecord) -> Result<(), NetError> {
        self.netlink.ensure_bridge(&BridgeSpec {
            name: rec.bridge.clone(),
            gateway: rec.gateway,
            prefix: rec.subnet.prefix(),
            mtu: rec.mtu,
            mac: ipam::mac_for(rec.gateway),
        })?;
        self.netlink.set_sysctl("net/ipv4/ip_forward", "1")?;
        self.netlink
            .set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", rec.bridge), "1")?;
        self.apply_firewall(inner, false)?;
        self.start_dns(inner, rec)
    }

    fn start_dns(&self, inner: &mut Inner, rec: &NetworkRecord) -> Result<(), NetError> {
        if let (true, Some(opts)) = (rec.dns, &self.cfg.dns) {
            if !inner.dns.contains_key(&rec.name) {
                let r = Responder::start(opts, rec.gateway, records(&inner.nets, rec))?;
                inner.dns.insert(rec.name.clone(), r);
            }
        }
        Ok(())
    }

    /// Refresh the names of network `name`, and of the networks that share a container
    /// with it (their containers see `name`'s names too). `was_on`: containers that just
    /// left `name`, whose other networks change as well.
    fn update_dns(inner: &Inner, name: &str, was_on: &[&str]) {
        let Some(rec) = inner.nets.get(name) else {
            return;
        };
        for n in inner.nets.values() {
            let related = n.name == name
                || (n.dns
                    && n.endpoints
                        .keys()
                        .any(|c| rec.endpoints.contains_key(c) || was_on.contains(&c.as_str())));
            if let (true, Some(r)) = (related, inner.dns.get(&n.name)) {
                r.set_records(records(&inner.nets, n));
            }
        }
    }

    /// All networks, by name.
    pub fn list(&self) -> Vec<NetworkInfo> {
        self.lock().nets.values().map(info).collect()
    }

    /// One network by name, id or unique id prefix.
    pub fn inspect(&self, network: &str) -> Result<NetworkInfo, NetError> {
        Self::find(&self.lock(), network).map(info)
    }

    /// Remove a user network that no container is connected to.
    pub fn remove(&self, network: &str) -> Result<(), NetError> {
        let mut inner = self.lock();
        let rec = Self::find(&inner, network)?.clone();
        if rec.name == DEFAULT_NETWORK {
            return Err(NetError::Predefined(rec.name));
        }
        if !rec.endpoints.is_empty() {
            return Err(NetError::InUse {
                name: rec.name,
                containers: rec
                    .endpoints
                    .values()
                    .map(|e| e.container_name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        inner.dns.remove(&rec.name);
        self.store.delete(&rec.name)?;
        inner.nets.remove(&rec.name);
        let mut errs = Vec::new();
        errs.extend(self.apply_firewall(&mut inner, false).err());
        errs.extend(self.netlink.delete_bridge(&rec.bridge).err());
        NetError::collect(errs)
    }

    /// Remove every user network without endpoints; returns their names.
    pub fn prune(&self) -> Result<Vec<String>, NetError> {
        let unused: Vec<String> = self
            .lock()
            .nets
            .values()
            .filter(|n| n.name != DEFAULT_NETWORK && n.endpoints.is_empty())
            .map(|n| n.name.clone())
            .collect();
        let mut removed = Vec::new();
        let mut errs = Vec::new();
        for name in unused {
            match self.remove(&name) {
                Ok(()) => removed.push(name),
                // connected meanwhile: not unused any more
                Err(NetError::InUse { .. }) | Err(NetError::NotFound(_)) => {}
                Err(e) => errs.push(e),
            }
        }
        NetError::collect(errs).map(|()| removed)
    }

    /// The netns file path for a container (whether or not it exists).
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.cfg.netns_dir.join(container_id)
    }

    /// Create the container's network namespace (loopback up) and return its path, to be
    /// given to the OCI runtime as the network namespace. With the pool enabled, one made
    /// ahead of time is taken.
    pub fn create_netns(&self, container_id: &str) -> Result<PathBuf, NetError> {
        let path = self.netns_path(container_id);
        match self.pool.get() {
            Some(pool) => pool.take(&path)?,
            None => self.netlink.create_netns(&path)?,
        }
        Ok(path)
    }

    /// From now on keep network namespaces made ahead of time (see [`crate::pool`]); what
    /// an earlier daemon left in the pool is released.
    pub fn enable_netns_pool(&self) {
        let pool = self
            .pool
            .get_or_init(|| NetnsPool::new(&self.cfg.netns_dir, self.netlink.clone()));
        pool.refill();
    }

    /// Release the namespaces waiting in the pool (at shutdown).
    pub fn release_netns_pool(&self) {
        if let Some(pool) = self.pool.get() {
            pool.close();
        }
    }

    /// Connect a container's netns to a network: address, veth, ports, DNS name.
    pub fn connect(&self, req: &ConnectRequest) -> Result<Endpoint, NetError> {
        let mut inner = self.lock();
        let net = Self::find(&inner, &req.network)?.clone();
        if net.endpoints.contains_key(&req.container_id) {
            return Err(NetError::AlreadyConnected {
                network: net.name,
                container: req.container_name.clone(),
            });
        }
        let used: BTreeSet<Ipv4Addr> = net.endpoints.values().map(|e| e.ip).collect();
        let ip = match req.ip {
            Some(ip) => {
                ipam::check_fixed(ip, &net.subnet, net.gateway, &used).map_err(|reason| {
                    NetError::BadAddress {
                        ip,
                        network: net.name.clone(),
                        reason,
                    }
                })?;
                ip
            }
            None => ipam::allocate(&net.subnet, net.gateway, &used).ok_or_else(|| {
                NetError::Exhausted {
                    network: net.name.clone(),
                    subnet: net.subnet.to_string(),
                }
            })?,
        };
        // Ports are bound first: a port in use fails the connect before anything is saved.
        let reservations = if net.internal {
            Vec::new()
        } else {
            req.ports
                .iter()
                .map(ports::reserve)
                .collect::<Result<Vec<_>, _>>()?
        };
        let other_ifs: BTreeSet<String> = inner
            .nets
            .values()
            .filter_map(|n| n.endpoints.get(&req.container_id))
            .map(|e| e.ifname.clone())
            .collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !other_ifs.contains(n))
            .unwrap_or_default();
        let mac = req.mac.unwrap_or_else(|| ipam::mac_for(ip));
        let ep = EndpointRecord {
            id: id::random_hex(32),
            container_name: req.container_name.trim_start_matches('/').to_string(),
            aliases: req.aliases.clone(),
            ip,
            fixed_ip: req.ip.is_some(),
            mac: ipam::mac_string(&mac),
            ifname: ifname.clone(),
            host_veth: id::veth_name(),
            netns: req.netns.clone(),
            ports: reservations.iter().map(|r| r.port).collect(),
            links: req
                .links
                .iter()
                .map(|(container_id, alias)| LinkRecord {
                    container_id: container_id.clone(),
                    alias: alias.clone(),
                })
                .collect(),
        };
        let mut rec = net.clone();
        rec.endpoints.insert(req.container_id.clone(), ep.clone());
        self.store.save_endpoints(&rec)?;
        inner.nets.insert(rec.name.clone(), rec.clone());
        let key = (rec.name.clone(), req.container_id.clone());
        let has_ports = !reservations.is_empty();
        inner.reserved.insert(key.clone(), reservations);

        let spec = VethSpec {
            host_name: ep.host_veth.clone(),
            bridge: rec.bridge.clone(),
            netns: req.netns.clone(),
            ifname,
            mac,
            ip,
            prefix: rec.subnet.prefix(),
            gateway: rec.gateway,
            default_route: other_ifs.is_empty(),
            mtu: rec.mtu,
        };
        let mut wired = self.netlink.add_veth(&spec);
        if wired.is_ok() && has_ports {
            wired = self.apply_firewall(&mut inner, false);
        }
        if let Err(e) = wired {
            // Roll back: forget the endpoint and its ports; the engine releases the netns,
            // which takes the veth with it.
            let mut errs = vec![e];
            inner.reserved.remove(&key);
            rec.endpoints.remove(&req.container_id);
            errs.extend(self.store.save_endpoints(&rec).err());
            inner.nets.insert(rec.name.clone(), rec);
            if has_ports {
                errs.extend(self.apply_firewall(&mut inner, false).err());
            }
            return Err(NetError::from_list(errs));
        }
        Self::update_dns(&inner, &rec.name, &[]);
        Ok(endpoint(&rec, &req.container_id, &ep))
    }

    /// Disconnect a container from one network. While the container runs (its netns file
    /// exists), its interface is deleted inside its netns (synchronously: ~30 ms, rare).
    pub fn disconnect(&self, network: &str, container_id: &str) -> Result<(), NetError> {
        let mut inner = self.lock();
        let mut rec = Self::find(&inner, network)?.clone();
        let Some(ep) = rec.endpoints.remove(container_id) else {
            return Err(NetError::NotConnected {
                network: rec.name,
                container: container_id.to_string(),
            });
        };
        self.store.save_endpoints(&rec)?;
        inner.nets.insert(rec.name.clone(), rec.clone());
        inner
            .reserved
            .remove(&(rec.name.clone(), container_id.to_string()));
        Self::update_dns(&inner, &rec.name, &[container_id]);
        let mut errs = Vec::new();
        if !ep.ports.is_empty() {
            self.firewall_later(&mut inner);
        }
        errs.extend(
            self.netlink
                .delete_container_link(&ep.netns, &ep.ifname)
                .err(),
        );
        NetError::collect(errs)
    }

    /// A container stopped: forget its endpoints on every network, close its ports, and
    /// release its netns (the kernel reaps the veths; nothing waits for that).
    pub fn release(&self, container_id: &str) -> Result<(), NetError> {
        let mut inner = self.lock();
        let mut errs = Vec::new();
        let mut netns: BTreeSet<PathBuf> = BTreeSet::new();
        netns.insert(self.netns_path(container_id));
        let mut ports_changed = false;
        let names: Vec<String> = inner
            .nets
            .values()
            .filter(|n| n.endpoints.contains_key(container_id))
            .map(|n| n.name.clone())
            .collect();
        for name in names {
            let Some(mut rec) = inner.nets.get(&name).cloned() else {
                continue;
            };
            if let Some(ep) = rec.endpoints.remove(container_id) {
                ports_changed |= !ep.ports.is_empty();
                netns.insert(ep.netns);
            }
            errs.extend(self.store.save_endpoints(&rec).err());
            inner.nets.insert(name.clone(), rec);
            inner
                .reserved
                .remove(&(name.clone(), container_id.to_string()));
            Self::update_dns(&inner, &name, &[]);
        }
        if ports_changed {
            self.firewall_later(&mut inner);
        }
        for p in netns {
            errs.extend(self.netlink.release_netns(&p).err());
        }
        NetError::collect(errs)
    }

    /// [`Self::release`] for a container that is going away for good (removed as it
    /// exits): one on no network (`none`) has only its namespace to unpin, which the pool's
    /// thread does (the unmount waits for an RCU grace period: ~0.3 ms of the exit here).
    /// Not for a container that may start again: its next namespace is pinned at the same
    /// path, which a late release would unpin.
    pub fn release_gone(&self, container_id: &str) -> Result<(), NetError> {
        let on_network = self
            .lock()
            .nets
            .values()
            .any(|n| n.endpoints.contains_key(container_id));
        match self.pool.get() {
            Some(pool) if !on_network => {
                pool.release_later(self.netns_path(container_id));
                Ok(())
            }
            _ => self.release(container_id),
        }
    }

    /// At daemon start, after [`Self::reconcile`]: release the netns files no endpoint
    /// records and whose container `alive` says is gone — a daemon that died between
    /// creating a container's netns and saving its endpoint left them (with the veth inside).
    /// Not while containers start: one being set up has a netns and no endpoint yet.
    pub fn release_orphan_netns(&self, alive: &dyn Fn(&str) -> bool) -> Result<(), NetError> {
        let inner = self.lock();
        let recorded: BTreeSet<PathBuf> = inner
            .nets
            .values()
            .flat_map(|n| n.endpoints.values().map(|e| e.netns.clone()))
            .collect();
        let Ok(rd) = std::fs::read_dir(&self.cfg.netns_dir) else {
            return Ok(()); // no container ever had a netns here
        };
        let mut errs = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            let id = e.file_name().to_string_lossy().into_owned();
            if id == crate::pool::POOL_DIR {
                continue; // the pool's own, released by the pool
            }
            if !recorded.contains(&path) && !alive(&id) {
                errs.extend(self.netlink.release_netns(&path).err());
            }
        }
        NetError::collect(errs)
    }

    /// A container's endpoints on every network.
    pub fn endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        self.lock()
            .nets
            .values()
            .filter_map(|n| {
                n.endpoints
                    .get(container_id)
                    .map(|e| endpoint(n, container_id, e))
            })
            .collect()
    }

    /// Make the kernel match the saved state: at daemon start, and whenever something may
    /// have flushed the rules (`berth network reconcile`). Endpoints of containers that
    /// `alive` says are gone are dropped and their netns released; bridges, sysctls, host
    /// port reservations, DNS responders and the whole nft table are re-applied.
    pub fn reconcile(&self, alive: &dyn Fn(&str) -> bool) -> Result<(), NetError> {
        let mut inner = self.lock();
        let mut errs = Vec::new();
        let names: Vec<String> = inner.nets.keys().cloned().collect();
        for name in names {
            let Some(mut rec) = inner.nets.get(&name).cloned() else {
                continue;
            };
            let dead: Vec<String> = rec
                .endpoints
                .keys()
                .filter(|c| !alive(c))
                .cloned()
                .collect();
            if !dead.is_empty() {
                for c in &dead {
                    if let Some(ep) = rec.endpoints.remove(c) {
                        errs.extend(self.netlink.release_netns(&ep.netns).err());
                    }
                    inner.reserved.remove(&(name.clone(), c.clone()));
                }
                errs.extend(self.store.save_endpoints(&rec).err());
                inner.nets.insert(name.clone(), rec.clone());
            }
            for (c, ep) in &rec.endpoints {
                let key = (name.clone(), c.clone());
                if !inner.reserved.contains_key(&key) && !ep.ports.is_empty() {
                    let mut held = Vec::new();
                    for p in &ep.ports {
                        let m = PortMapping {
                            host_ip: Some(p.host_ip),
                            host_port: Some(p.host_port),
                            container_port: p.container_port,
                            proto: p.proto,
                        };
                        match ports::reserve(&m) {
                            Ok(r) => held.push(r),
                            Err(e) => errs.push(e),
                        }
                    }
                    inner.reserved.insert(key, held);
                }
            }
            if let Err(e) = self.netlink.ensure_bridge(&BridgeSpec {
                name: rec.bridge.clone(),
                gateway: rec.gateway,
                prefix: rec.subnet.prefix(),
                mtu: rec.mtu,
                mac: ipam::mac_for(rec.gateway),
            }) {
                errs.push(e);
                continue;
            }
            errs.extend(
                self.netlink
                    .set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", rec.bridge), "1")
                    .err(),
            );
            errs.extend(self.start_dns(&mut inner, &rec).err());
            Self::update_dns(&inner, &name, &[]);
        }
        errs.extend(self.netlink.set_sysctl("net/ipv4/ip_forward", "1").err());
        errs.extend(self.apply_firewall(&mut inner, true).err());
        NetError::collect(errs)
    }

    /// Remove everything this daemon set up in the kernel (bridges, the nft table, DNS),
    /// keeping the saved state. For tests and uninstall; a daemon stop keeps it all.
    pub fn teardown(&self) -> Result<(), NetError> {
        let mut inner = self.lock();
        inner.dns.clear();
        inner.reserved.clear();
        inner.fw_stale = false;
        let mut errs = Vec::new();
        inner.fw_stale = false;
        inner.fw_seq += 1;
        let empty = firewall::ruleset(&[]);
        errs.extend(
            apply_batch(
                &self.shared,
                self.firewall.as_ref(),
                inner.fw_seq,
                empty,
                true,
            )
            .err(),
        );
        for rec in inner.nets.values() {
            for ep in rec.endpoints.values() {
                errs.extend(self.netlink.release_netns(&ep.netns).err());
            }
            errs.extend(self.netlink.delete_bridge(&rec.bridge).err());
        }
        NetError::collect(errs)
    }

    /// The nft batch for the current state (what `reconcile` applies).
    pub fn ruleset(&self) -> String {
        firewall::ruleset(&rules(&self.lock()))
    }

    /// Apply the current state's ruleset now, holding the state lock.
    fn apply_firewall(&self, inner: &mut Inner, force: bool) -> Result<(), NetError> {
        let (seq, batch) = next_batch(inner);
        apply_batch(&self.shared, self.firewall.as_ref(), seq, batch, force)
    }
}

impl Drop for Networks {
    /// Stops the background thread after it applied what is pending.
    fn drop(&mut self) {
        self.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The ruleset of the current state and its sequence number.
fn next_batch(inner: &mut Inner) -> (u64, String) {
    inner.fw_stale = false;
    inner.fw_seq += 1;
    (inner.fw_seq, firewall::ruleset(&rules(inner)))
}

fn apply_batch(
    shared: &Shared,
    fw: &dyn Firewall,
    seq: u64,
    batch: String,
    force: bool,
) -> Result<(), NetError> {
    let mut applied = shared.applied.lock().unwrap_or_else(|e| e.into_inner());
    if seq < applied.seq || (!force && applied.batch.as_deref() == Some(batch.as_str())) {
        return Ok(()); // a newer state is already in place, or this one is
    }
    applied.batch = None;
    fw.apply(&batch)?;
    *applied = Applied {
        seq,
        batch: Some(batch),
    };
    Ok(())
}

/// Rebuild the ruleset whenever it is marked stale, from the state as it is then; `nft`
/// runs after the state lock is released.
fn firewall_worker(shared: &Shared, fw: &dyn Firewall) {
    loop {
        let (seq, batch) = {
            let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
            while !inner.fw_stale && !inner.closing {
                inner = shared.wake.wait(inner).unwrap_or_else(|e| e.into_inner());
            }
            if !inner.fw_stale {
                return; // closing, nothing pending
            }
            next_batch(&mut inner)
        };
        if let Err(e) = apply_batch(shared, fw, seq, batch, false) {
            // the next change or reconcile tries again
            tracing::warn!(error = %e, "rebuilding the berth nftables table");
        }
    }
}

fn rules(inner: &Inner) -> Vec<NetworkRules> {
    inner
        .nets
        .values()
        .map(|n| NetworkRules {
            bridge: n.bridge.clone(),
            subnet: n.subnet,
            internal: n.internal,
            published: n
                .endpoints
                .values()
                .flat_map(|e| e.ports.iter().map(move |p| (e.ip, *p)))
                .collect(),
        })
        .collect()
}

/// The names network `rec` answers: its containers' names, aliases and short ids for
/// everyone; for each of its containers, that container's link aliases and the names on the
/// other DNS networks it is on.
fn records(nets: &BTreeMap<String, NetworkRecord>, rec: &NetworkRecord) -> Records {
    let mut r = Records {
        subnet: Some(rec.subnet),
        ..Records::default()
    };
    for (cid, ep) in &rec.endpoints {
        r.add(ep.ip, &ep.container_name, &names_of(cid, ep));
        let mut mine = SourceNames::default();
        for l in &ep.links {
            if let Some(target) = rec.endpoints.get(&l.container_id) {
                add_name(&mut mine.first, &l.alias, target.ip);
            }
        }
        let others = nets
            .values()
            .filter(|n| n.name != rec.name && n.dns && n.endpoints.contains_key(cid));
        for other in others {
            for (oc, oep) in &other.endpoints {
                add_name(&mut mine.last, &oep.container_name, oep.ip);
                for n in names_of(oc, oep) {
                    add_name(&mut mine.last, &n, oep.ip);
                }
            }
        }
        if !mine.is_empty() {
            r.per_source.insert(ep.ip, mine);
        }
    }
    r
}

/// A container's other names on a network: its aliases and short id.
fn names_of(container_id: &str, ep: &EndpointRecord) -> Vec<String> {
    let mut others = ep.aliases.clone();
    if let Some(short) = container_id.get(..12) {
        others.push(short.to_string());
    }
    others
}

fn endpoint(net: &NetworkRecord, container_id: &str, ep: &EndpointRecord) -> Endpoint {
    Endpoint {
        network_id: net.id.clone(),
        network_name: net.name.clone(),
        endpoint_id: ep.id.clone(),
        container_id: container_id.to_string(),
        container_name: ep.container_name.clone(),
        aliases: ep.aliases.clone(),
        ip: ep.ip,
        prefix_len: net.subnet.prefix(),
        gateway: net.gateway,
        mac: ep.mac.clone(),
        ifname: ep.ifname.clone(),
        ports: ep.ports.clone(),
        dns_server: net.dns.then_some(net.gateway),
    }
}

fn info(n: &NetworkRecord) -> NetworkInfo {
    NetworkInfo {
        id: n.id.clone(),
        name: n.name.clone(),
        driver: "bridge".into(),
        bridge: n.bridge.clone(),
        subnet: n.subnet,
        gateway: n.gateway,
        internal: n.internal,
        dns: n.dns,
        mtu: n.mtu,
        labels: n.labels.clone(),
        created: n.created,
        endpoints: n.endpoints.iter().map(|(c, e)| endpoint(n, c, e)).collect(),
    }
}

#[cfg(test)]
mod tests;
