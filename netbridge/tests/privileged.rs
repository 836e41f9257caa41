//! Privileged tests: real bridges, veths, nft rules and DNS. Each test re-executes itself in
//! a fresh network and mount namespace (`unshare --net --mount`), so nothing it does reaches
//! the host's network: the "host" of these tests is that private netns, with only `lo`, and
//! the "containers" are netns files made by `Networks::create_netns`. They are ignored by a
//! plain `cargo test`; run them as root with `cargo test -p netbridge -- --include-ignored`
//! (or `cargo xtask test`).

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use netbridge::{
    parse_port_spec, Config, ConnectRequest, CreateOptions, DnsOptions, LinuxNetlink, Networks, Nft,
};
use nix::sched::CloneFlags;

const INSIDE: &str = "NETBRIDGE_TEST_INSIDE";

/// Run the test `name` in a private netns and mount namespace: the parent re-executes the
/// test binary for just this test under `unshare`, with `lo` up and a sysfs of the new netns.
fn in_private_netns(name: &str, body: impl FnOnce()) {
    if std::env::var(INSIDE).as_deref() == Ok(name) {
        body();
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged test {name} needs root (it is ignored unless --include-ignored)"
    );
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .args(["/bin/busybox", "sh", "-c"])
        .arg("/bin/busybox ip link set lo up && mount -t sysfs sysfs /sys && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, name)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{name} failed inside its netns:\n{text}"
    );
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

/// Run `f` on a thread that has joined the netns at `ns`.
fn in_ns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(ns).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A TCP server in `ns` on `port` that answers `reply` to exactly `n` connections.
fn serve(ns: &Path, port: u16, reply: &'static str, n: usize) -> std::thread::JoinHandle<()> {
    let file = File::open(ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
        tx.send(()).unwrap();
        for _ in 0..n {
            let (mut c, _) = l.accept().unwrap();
            let _ = c.write_all(reply.as_bytes());
        }
    });
    rx.recv().unwrap();
    h
}

fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

fn networks(root: &Path, dns: Option<DnsOptions>) -> Networks {
    let mut cfg = Config::under(root, &root.join("run"));
    cfg.dns = dns;
    let nets = Networks::open(
        cfg,
        Arc::new(LinuxNetlink::default()),
        Arc::new(Nft::default()),
    )
    .unwrap();
    nets.reconcile(&|_| true).unwrap();
    nets
}

fn req(net: &str, id: &str, ns: &Path) -> ConnectRequest {
    ConnectRequest {
        network: net.into(),
        container_id: id.into(),
        container_name: id.into(),
        aliases: vec![],
        netns: ns.to_path_buf(),
        ip: None,
        mac: None,
        ports: vec![],
        links: vec![],
    }
}

fn links() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn nft_tables() -> String {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything is gone: links (the kernel reaps veths after the netns is released, so wait
/// for it a little), the nft table, the netns files and their mounts.
fn assert_clean(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while links() != ["lo"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(links(), ["lo"]);
    assert!(!nft_tables().contains("berth"), "{}", nft_tables());
    let netns_dir = root.join("run/netns");
    let left: Vec<PathBuf> = std::fs::read_dir(&netns_dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&netns_dir.to_string_lossy().into_owned()),
        "{mounts}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn connectivity_published_ports_isolation_teardown() {
    in_private_netns("connectivity_published_ports_isolation_teardown", || {
        let dir = tempfile::tempdir().unwrap();
        let nets = networks(dir.path(), None);
        let app = nets
            .create(&CreateOptions {
                name: "app".into(),
                ..Default::default()
            })
            .unwrap();
        let ns1 = nets.create_netns("c1").unwrap();
        let ns2 = nets.create_netns("c2").unwrap();
        let ns3 = nets.create_netns("c3").unwrap();
        let e1 = nets
            .connect(&ConnectRequest {
                ports: parse_port_spec("8080").unwrap(),
                ..req("app", "c1", &ns1)
            })
            .unwrap();
        let e2 = nets.connect(&req("app", "c2", &ns2)).unwrap();
        let e3 = nets.connect(&req("bridge", "c3", &ns3)).unwrap();
        assert_eq!(e1.ip, app.subnet.nth(2).unwrap());
        assert_eq!(e2.ip, app.subnet.nth(3).unwrap());
        let host_port = e1.ports[0].host_port;

        // ICMP between the two containers, by a real ping
        let ping = Command::new("nsenter")
            .arg(format!("--net={}", ns2.display()))
            .args(["/bin/busybox", "ping", "-c", "1", "-W", "2"])
            .arg(e1.ip.to_string())
            .output()
            .unwrap();
        assert!(ping.status.success(), "{ping:?}");

        let server = serve(&ns1, 8080, "hello from c1", 4);
        // container to container by IP
        let peer = SocketAddr::from((e1.ip, 8080));
        assert_eq!(in_ns(&ns2, || fetch(peer)).unwrap(), "hello from c1");
        // the published port from the host's 127.0.0.1 and from the bridge address
        assert_eq!(
            fetch((Ipv4Addr::LOCALHOST, host_port).into()).unwrap(),
            "hello from c1"
        );
        assert_eq!(
            fetch((app.gateway, host_port).into()).unwrap(),
            "hello from c1"
        );
        // hairpin: the container through its own published port
        let own = SocketAddr::from((app.gateway, host_port));
        assert_eq!(in_ns(&ns1, || fetch(own)).unwrap(), "hello from c1");
        server.join().unwrap();

        // isolation: the default network cannot reach the user network directly
        let err = in_ns(&ns3, || {
            TcpStream::connect_timeout(&peer, Duration::from_millis(300))
        });
        assert!(err.is_err(), "c3 on {} reached {peer}", e3.network_name);

        for c in ["c1", "c2", "c3"] {
            nets.release(c).unwrap();
        }
        nets.remove("app").unwrap();
        nets.teardown().unwrap();
        assert_clean(dir.path());
    });
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn reconcile_restores_flushed_rules_and_restarts() {
    in_private_netns("reconcile_restores_flushed_rules_and_restarts", || {
        let dir = tempfile::tempdir().unwrap();
        let nets = networks(dir.path(), None);
        let ns = nets.create_netns("web").unwrap();
        let e = nets
            .connect(&ConnectRequest {
                ports: parse_port_spec("127.0.0.1::80").unwrap(),
                ..req("bridge", "web", &ns)
            })
            .unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, e.ports[0].host_port));
        let server = serve(&ns, 80, "ok", 2);
        assert_eq!(fetch(addr).unwrap(), "ok");

        // something flushes nftables
        let st = Command::new("nft")
            .args(["flush", "ruleset"])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(fetch(addr).is_err());
        nets.reconcile(&|_| true).unwrap();

        // the daemon dies and comes back on the same state: same port, same address
        drop(nets);
        let nets = networks(dir.path(), None);
        let again = nets.endpoints("web");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].ip, e.ip);
        assert_eq!(again[0].ports, e.ports);
        assert_eq!(fetch(addr).unwrap(), "ok");
        server.join().unwrap();
        // the port is held again: a stranger cannot take it
        assert!(TcpListener::bind(addr).is_err());

        nets.release("web").unwrap();
        nets.teardown().unwrap();
        assert_clean(dir.path());
    });
}

/// A fake upstream resolver on the test netns' loopback: `example.test` is 192.0.2.7,
/// everything else NXDOMAIN.
fn fake_upstream() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.add_queries(q.queries.clone());
            let name = q.queries[0].name().clone();
            if name.to_ascii().trim_end_matches('.') == "example.test" {
                r.add_answer(Record::from_rdata(
                    name,
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer);
        }
    });
    addr
}

/// Ask `server` for the A records of `name` over UDP; returns the rcode and addresses.
fn lookup(server: Ipv4Addr, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    sock.send_to(&q.to_vec().unwrap(), (server, 53)).unwrap();
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).unwrap();
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id);
    let ips = r
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect();
    (r.metadata.response_code, ips)
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn dns_resolves_peers_and_forwards() {
    in_private_netns("dns_resolves_peers_and_forwards", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dns = DnsOptions {
            runtime: rt.handle().clone(),
            upstreams: vec![fake_upstream()],
            port: 53,
            timeout: Duration::from_secs(1),
        };
        let nets = networks(dir.path(), Some(dns));
        let app = nets
            .create(&CreateOptions {
                name: "app".into(),
                ..Default::default()
            })
            .unwrap();
        let ns_r = nets.create_netns("redis").unwrap();
        let ns_w = nets.create_netns("web").unwrap();
        let redis = nets
            .connect(&ConnectRequest {
                aliases: vec!["cache".into()],
                ..req("app", "redis", &ns_r)
            })
            .unwrap();
        let web = nets.connect(&req("app", "web", &ns_w)).unwrap();
        assert_eq!(web.dns_server, Some(app.gateway));
        let gw = app.gateway;

        let from_web = |name: &'static str| in_ns(&ns_w, move || lookup(gw, name));
        assert_eq!(from_web("redis"), (ResponseCode::NoError, vec![redis.ip]));
        assert_eq!(from_web("cache."), (ResponseCode::NoError, vec![redis.ip]));
        assert_eq!(from_web("web"), (ResponseCode::NoError, vec![web.ip]));
        assert_eq!(
            from_web("example.test"),
            (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 7)])
        );
        // a real client: busybox nslookup, over the network from the container
        let out = Command::new("nsenter")
            .arg(format!("--net={}", ns_w.display()))
            .args(["/bin/busybox", "nslookup", "redis"])
            .arg(gw.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&redis.ip.to_string()), "{out:?}");

        // the default bridge has no responder
        assert!(nets.inspect("bridge").unwrap().dns.eq(&false));

        nets.disconnect("app", "redis").unwrap();
        assert_eq!(from_web("redis").0, ResponseCode::NXDomain);

        nets.release("redis").unwrap();
        nets.release("web").unwrap();
        nets.remove("app").unwrap();
        nets.teardown().unwrap();
        assert_clean(dir.path());
    });
}
