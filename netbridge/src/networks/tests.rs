//! `Networks` against the recording netlink and firewall: what it asks of the kernel, what
//! it saves, and that addresses survive a restart.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use expect_test::expect;

use super::*;
use crate::firewall::RecordingFirewall;
use crate::netlink::fake::RecordingNetlink;
use crate::ports::{parse_port_spec, Proto};

struct Env {
    dir: tempfile::TempDir,
    nl: Arc<RecordingNetlink>,
    fw: Arc<RecordingFirewall>,
}

impl Env {
    fn new(routes: &[&str]) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            nl: Arc::new(RecordingNetlink::with_routes(
                routes.iter().map(|r| r.parse().unwrap()).collect(),
            )),
            fw: Arc::new(RecordingFirewall::default()),
        }
    }

    fn open(&self) -> Networks {
        let mut cfg = Config::under(self.dir.path(), &self.dir.path().join("run"));
        cfg.netns_dir = "/run/test/netns".into();
        Networks::open(cfg, self.nl.clone(), self.fw.clone()).unwrap()
    }
}

fn req(net: &str, id: &str, name: &str) -> ConnectRequest {
    ConnectRequest {
        network: net.into(),
        container_id: id.into(),
        container_name: name.into(),
        aliases: vec![],
        netns: format!("/run/test/netns/{id}").into(),
        ip: None,
        mac: None,
        ports: vec![],
        links: vec![],
    }
}

#[test]
fn default_network_avoids_host_routes() {
    let env = Env::new(&["172.17.0.0/16", "172.18.5.0/24"]);
    let nets = env.open();
    let b = nets.inspect("bridge").unwrap();
    assert_eq!(b.subnet.to_string(), "172.19.0.0/16");
    assert_eq!(b.gateway, Ipv4Addr::new(172, 19, 0, 1));
    assert_eq!(b.bridge, "berth0");
    assert!(!b.dns);

    let env = Env::new(&[]);
    let mut cfg = Config::under(env.dir.path(), &env.dir.path().join("run"));
    cfg.bip = Some(Subnet::parse_with_addr("10.20.0.1/24").unwrap());
    let nets = Networks::open(cfg, env.nl.clone(), env.fw.clone()).unwrap();
    assert_eq!(
        nets.inspect("bridge").unwrap().subnet.to_string(),
        "10.20.0.0/24"
    );
}

#[test]
fn connect_release_and_firewall_batches() {
    let env = Env::new(&["10.0.2.0/24"]);
    let nets = env.open();
    nets.reconcile(&|_| true).unwrap();
    expect![[r#"
        ensure_bridge berth0 172.17.0.1/16 mtu 1500 mac 02:42:ac:11:00:01
        sysctl net/ipv4/conf/berth0/route_localnet=1
        sysctl net/ipv4/ip_forward=1"#]]
    .assert_eq(&env.nl.take());
    assert_eq!(env.fw.count(), 1);

    let ns = nets.create_netns("c1").unwrap();
    assert_eq!(ns, Path::new("/run/test/netns/c1"));
    let a = nets
        .connect(&ConnectRequest {
            netns: ns,
            ..req("bridge", "c1", "/web")
        })
        .unwrap();
    assert_eq!(a.ip, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(a.mac, "02:42:ac:11:00:02");
    assert_eq!((a.prefix_len, a.ifname.as_str()), (16, "eth0"));
    assert_eq!(a.dns_server, None);
    assert_eq!(a.container_name, "web");
    // no published ports: no nft process
    assert_eq!(env.fw.count(), 1);

    let b = nets
        .connect(&ConnectRequest {
            ports: parse_port_spec("127.0.0.1::80").unwrap(),
            ..req("bridge", "c2", "db")
        })
        .unwrap();
    assert_eq!(b.ip, Ipv4Addr::new(172, 17, 0, 3));
    assert_eq!(b.ports.len(), 1);
    assert_eq!(env.fw.count(), 2);
    let port = b.ports[0].host_port;
    assert!(env.fw.last().contains(&format!(
        "ip daddr 127.0.0.1 tcp dport {port} dnat to 172.17.0.3:80"
    )));
    expect![[r#"
        create_netns c1
        add_veth veth* master berth0 peer c1:eth0 172.17.0.2/16 mac 02:42:ac:11:00:02 gw 172.17.0.1 (default) mtu 1500
        add_veth veth* master berth0 peer c2:eth0 172.17.0.3/16 mac 02:42:ac:11:00:03 gw 172.17.0.1 (default) mtu 1500"#]]
    .assert_eq(&env.nl.take());

    // the port stays bound while published
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    let err = nets
        .connect(&ConnectRequest {
            ports: parse_port_spec(&format!("127.0.0.1:{port}:81")).unwrap(),
            ..req("bridge", "c3", "late")
        })
        .unwrap_err();
    assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
    assert!(nets.endpoints("c3").is_empty());

    nets.release("c2").unwrap();
    nets.flush_firewall().unwrap();
    assert_eq!(env.fw.count(), 3);
    assert!(!env.fw.last().contains("dnat to"));
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    nets.release("c1").unwrap();
    expect![[r#"
        release_netns c2
        release_netns c1"#]]
    .assert_eq(&env.nl.take());
    assert_eq!(env.fw.count(), 3);
    assert!(nets.inspect("bridge").unwrap().endpoints.is_empty());
}

#[test]
fn user_networks_pools_fixed_ips_and_restart() {
    let env = Env::new(&[]);
    let nets = env.open();
    let n1 = nets
        .create(&CreateOptions {
            name: "app".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n1.subnet.to_string(), "172.18.0.0/16");
    assert_eq!(n1.bridge, format!("br-{}", &n1.id[..12]));
    let n2 = nets
        .create(&CreateOptions {
            name: "fixed".into(),
            subnet: Some("10.5.0.0/24".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(10, 5, 0, 254)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n2.gateway, Ipv4Addr::new(10, 5, 0, 254));
    let err = nets
        .create(&CreateOptions {
            name: "clash".into(),
            subnet: Some("10.5.0.128/25".parse().unwrap()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.5.0.128/25 overlaps with network fixed (10.5.0.0/24)"
    );
    assert!(matches!(
        nets.create(&CreateOptions {
            name: "app".into(),
            ..Default::default()
        }),
        Err(NetError::Exists(_))
    ));
    assert!(matches!(
        nets.create(&CreateOptions {
            name: "-bad".into(),
            ..Default::default()
        }),
        Err(NetError::BadName(_))
    ));
    // by id prefix
    assert_eq!(nets.inspect(&n2.id[..6]).unwrap().name, "fixed");

    let e = nets
        .connect(&ConnectRequest {
            ip: Some(Ipv4Addr::new(10, 5, 0, 1)),
            mac: None,
            ..req("fixed", "c1", "one")
        })
        .unwrap();
    assert_eq!(e.ip, Ipv4Addr::new(10, 5, 0, 1));
    let err = nets
        .connect(&ConnectRequest {
            ip: Some(Ipv4Addr::new(10, 5, 0, 1)),
            mac: None,
            ..req("fixed", "c2", "two")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.5.0.1 is not usable in network fixed (already in use)"
    );
    // second network of the same container: eth1, no default route
    nets.connect(&req("app", "c1", "one")).unwrap();
    let e2 = nets.connect(&req("fixed", "c2", "two")).unwrap();
    assert_eq!(e2.ip, Ipv4Addr::new(10, 5, 0, 2));
    assert!(matches!(
        nets.connect(&req("fixed", "c2", "two")),
        Err(NetError::AlreadyConnected { .. })
    ));
    env.nl.take();

    // A crash now: a new Networks on the same state hands out the next address.
    drop(nets);
    let nets = env.open();
    let e3 = nets.connect(&req("fixed", "c3", "three")).unwrap();
    assert_eq!(e3.ip, Ipv4Addr::new(10, 5, 0, 3));
    assert_eq!(nets.endpoints("c1").len(), 2);
    // the daemon restarts knowing c2 is gone: its endpoint and netns go
    nets.reconcile(&|c| c != "c2").unwrap();
    assert!(nets.endpoints("c2").is_empty());
    let calls = env.nl.take();
    assert!(calls.contains("release_netns c2"), "{calls}");

    assert!(matches!(nets.remove("app"), Err(NetError::InUse { .. })));
    assert!(matches!(
        nets.remove("bridge"),
        Err(NetError::Predefined(_))
    ));
    nets.disconnect("app", "c1").unwrap();
    expect![[r#"
        delete_container_link c1:eth1"#]]
    .assert_eq(&env.nl.take());
    assert_eq!(nets.prune().unwrap(), ["app"]);
    assert_eq!(
        nets.list()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["bridge", "fixed"]
    );
    let n = nets.inspect("fixed").unwrap();
    assert_eq!(n.endpoints.len(), 2);
    nets.release("c1").unwrap();
    nets.release("c3").unwrap();
    nets.remove("fixed").unwrap();
    assert!(env
        .nl
        .take()
        .ends_with(&format!("delete_bridge {}", n.bridge)));
    assert!(!env.fw.last().contains(&n.bridge));
    // only the default network's definition and endpoints are left
    let files = |d: &str| -> Vec<String> {
        std::fs::read_dir(env.dir.path().join(d))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect()
    };
    assert_eq!(files("networks"), ["bridge.json"]);
    let eps = files("networks/endpoints");
    assert!(eps.iter().all(|f| f.starts_with("bridge.")), "{eps:?}");
}

#[test]
fn protocols_in_ruleset() {
    let env = Env::new(&[]);
    let nets = env.open();
    nets.connect(&ConnectRequest {
        ports: vec![PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: None,
            container_port: 53,
            proto: Proto::Udp,
        }],
        ..req("bridge", "c1", "dns")
    })
    .unwrap();
    assert!(nets.ruleset().contains("udp dport"));
}

#[test]
fn names_across_networks_and_links() {
    let env = Env::new(&[]);
    let nets = env.open();
    for n in ["front", "back"] {
        nets.create(&CreateOptions {
            name: n.into(),
            ..CreateOptions::default()
        })
        .unwrap();
    }
    // records as a DNS network would answer them (the test config serves no DNS)
    for rec in nets.lock().nets.values_mut() {
        rec.dns = rec.name != DEFAULT_NETWORK;
    }
    let db = nets.connect(&req("back", "db0000000000", "db")).unwrap();
    let api_back = nets.connect(&req("back", "api000000000", "api")).unwrap();
    let api_front = nets.connect(&req("front", "api000000000", "api")).unwrap();
    assert_eq!(
        (api_front.ifname.as_str(), api_back.ifname.as_str()),
        ("eth1", "eth0")
    );
    let web = nets
        .connect(&ConnectRequest {
            links: vec![("api000000000".into(), "backend".into())],
            ..req("front", "web000000000", "web")
        })
        .unwrap();
    let inner = nets.lock();
    let front = records(&inner.nets, &inner.nets["front"]);
    let back = records(&inner.nets, &inner.nets["back"]);
    // api, on both, sees db through front's responder; web does not
    assert_eq!(front.per_source[&api_front.ip].last["db"], [db.ip]);
    assert!(
        !front.per_source.contains_key(&web.ip)
            || !front.per_source[&web.ip].last.contains_key("db")
    );
    // web's link alias, for web only
    assert_eq!(front.per_source[&web.ip].first["backend"], [api_front.ip]);
    assert!(!front.names.contains_key("backend"));
    // api sees web through back's responder
    assert_eq!(back.per_source[&api_back.ip].last["web"], [web.ip]);
    assert!(!back.per_source.contains_key(&db.ip));
    drop(inner);

    // off front: the names go, and eth1 is deleted inside the container's netns
    env.nl.take();
    nets.disconnect("front", "api000000000").unwrap();
    assert!(env.nl.take().contains("eth1"));
    let inner = nets.lock();
    let back = records(&inner.nets, &inner.nets["back"]);
    assert!(back.per_source.is_empty());
    let front = records(&inner.nets, &inner.nets["front"]);
    assert!(!front.per_source.contains_key(&web.ip));
}

/// A container removed as it exits (`run --rm`): on no network, its namespace is unpinned
/// on the pool's thread, off the exit; on a network, at once, with its endpoint.
#[test]
fn a_gone_container_on_no_network_is_unpinned_by_the_pool() {
    let env = Env::new(&[]);
    let nets = env.open();
    nets.reconcile(&|_| true).unwrap();
    nets.enable_netns_pool();
    nets.create_netns("c1").unwrap();
    nets.connect(&req("bridge", "c2", "two")).unwrap();
    // (the pool's thread writes its record meanwhile: only what releases counts)
    let released =
        |id: &str, calls: &str| calls.lines().any(|l| l == format!("release_netns {id}"));
    let mut calls = String::new();
    nets.release_gone("c2").unwrap();
    calls.push_str(&env.nl.take());
    assert!(released("c2", &calls), "{calls}");
    nets.release_gone("c1").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !released("c1", &calls) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        calls.push('\n');
        calls.push_str(&env.nl.take());
    }
    assert!(released("c1", &calls), "{calls}");
    assert!(nets.endpoints("c2").is_empty());
    nets.release_netns_pool();
}
