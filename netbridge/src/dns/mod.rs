//! Name resolution for user-defined networks: which names a network knows (container names,
//! aliases, short ids), answering a query from them, and the responder that serves them on
//! the network's gateway address. Names it does not know go to the host's resolvers.
//!
//! Answering is a pure function of the query and the [`Records`], tested without sockets.

pub mod server;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::subnet::Subnet;

/// Answers are short-lived: containers come and go.
const TTL: u32 = 600;

/// The names one network answers for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Lowercase name without trailing dot → addresses.
    pub names: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Address → the container's name, for reverse lookups.
    pub reverse: BTreeMap<Ipv4Addr, String>,
    /// The network's subnet: reverse lookups inside it are answered here, never forwarded.
    pub subnet: Option<Subnet>,
    /// Names answered only to queries from one address (a container on this network):
    /// its links' aliases, and the names of the other networks it is on.
    pub per_source: BTreeMap<Ipv4Addr, SourceNames>,
}

/// The names one querying container sees beyond its network's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceNames {
    /// Before the network's names: `--link` aliases.
    pub first: BTreeMap<String, Vec<Ipv4Addr>>,
    /// After them: names on the container's other networks.
    pub last: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl SourceNames {
    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.last.is_empty()
    }
}

/// Add `ip` under the lowercase `name` (once).
pub fn add_name(map: &mut BTreeMap<String, Vec<Ipv4Addr>>, name: &str, ip: Ipv4Addr) {
    let name = name.trim_start_matches('/');
    if name.is_empty() {
        return;
    }
    let ips = map.entry(name.to_ascii_lowercase()).or_default();
    if !ips.contains(&ip) {
        ips.push(ip);
    }
}

impl Records {
    /// Add a container: its name (answered for PTR too) and other names.
    pub fn add(&mut self, ip: Ipv4Addr, name: &str, others: &[String]) {
        let name = name.trim_start_matches('/');
        for n in std::iter::once(name).chain(others.iter().map(String::as_str)) {
            add_name(&mut self.names, n, ip);
        }
        if !name.is_empty() {
            self.reverse.insert(ip, name.to_string());
        }
    }
}

/// What to do with a query.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Reply with this message.
    Reply(Message),
    /// Not ours: send the query to the upstream resolvers.
    Forward,
}

/// Answer `query` (sent from `source`) from `records`, or say it should be forwarded.
pub fn answer(query: &Message, records: &Records, source: Option<Ipv4Addr>) -> Answer {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.iter().cloned());
    let Some(q) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return Answer::Reply(reply);
    };
    if query.metadata.message_type != MessageType::Query || query.metadata.op_code != OpCode::Query
    {
        reply.metadata.response_code = ResponseCode::NotImp;
        return Answer::Reply(reply);
    }
    let qname = q.name().to_ascii();
    let key = qname.trim_end_matches('.').to_ascii_lowercase();

    if let Some(ip) = arpa_v4(&key) {
        if !records.subnet.is_some_and(|s| s.contains(ip)) {
            return Answer::Forward;
        }
        reply.metadata.authoritative = true;
        match (q.query_type(), records.reverse.get(&ip)) {
            (RecordType::PTR, Some(name)) => match Name::from_ascii(format!("{name}.")) {
                Ok(target) => {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                }
                Err(_) => reply.metadata.response_code = ResponseCode::ServFail,
            },
            (_, Some(_)) => {}
            (_, None) => reply.metadata.response_code = ResponseCode::NXDomain,
        }
        return Answer::Reply(reply);
    }

    let own = source.and_then(|s| records.per_source.get(&s));
    let found = own
        .and_then(|o| o.first.get(&key))
        .or_else(|| records.names.get(&key))
        .or_else(|| own.and_then(|o| o.last.get(&key)));
    let Some(ips) = found else {
        return Answer::Forward;
    };
    reply.metadata.authoritative = true;
    if q.query_type() == RecordType::A {
        for ip in ips {
            reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
        }
    }
    // Other types for a known name (AAAA, MX, …): no data, not NXDOMAIN, so clients go on
    // with the A answer.
    Answer::Reply(reply)
}

/// `d.c.b.a.in-addr.arpa` → a.b.c.d
fn arpa_v4(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
}

/// The `nameserver` lines of a resolv.conf as port-53 addresses.
pub fn upstreams_from_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hickory_proto::op::Query;

    fn records() -> Records {
        let mut r = Records {
            subnet: Some("172.18.0.0/16".parse().unwrap()),
            ..Records::default()
        };
        r.add(
            Ipv4Addr::new(172, 18, 0, 2),
            "/redis",
            &["cache".into(), "0123456789ab".into()],
        );
        r.add(Ipv4Addr::new(172, 18, 0, 3), "web", &["Cache".into()]);
        r
    }

    fn ask(name: &str, ty: RecordType) -> String {
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        // through the wire format, as a client would send it
        let q = Message::from_vec(&q.to_vec().unwrap()).unwrap();
        match answer(&q, &records(), None) {
            Answer::Forward => "forward".into(),
            Answer::Reply(m) => {
                assert_eq!(m.metadata.id, q.metadata.id);
                let m = Message::from_vec(&m.to_vec().unwrap()).unwrap();
                let mut s = format!("{:?}", m.metadata.response_code);
                for a in &m.answers {
                    s.push_str(&format!(" {}", a.data));
                }
                s
            }
        }
    }

    #[test]
    fn answers_names_aliases_and_reverse() {
        let got = [
            ("redis.", RecordType::A),
            ("REDIS", RecordType::A),
            ("cache", RecordType::A),
            ("0123456789ab", RecordType::A),
            ("redis", RecordType::AAAA),
            ("example.org.", RecordType::A),
            ("2.0.18.172.in-addr.arpa.", RecordType::PTR),
            ("9.0.18.172.in-addr.arpa.", RecordType::PTR),
            ("1.1.168.192.in-addr.arpa.", RecordType::PTR),
        ]
        .map(|(n, t)| format!("{n} {t}: {}", ask(n, t)))
        .join("\n");
        expect_test::expect![[r#"
            redis. A: NoError 172.18.0.2
            REDIS A: NoError 172.18.0.2
            cache A: NoError 172.18.0.2 172.18.0.3
            0123456789ab A: NoError 172.18.0.2
            redis AAAA: NoError
            example.org. A: forward
            2.0.18.172.in-addr.arpa. PTR: NoError redis.
            9.0.18.172.in-addr.arpa. PTR: NXDomain
            1.1.168.192.in-addr.arpa. PTR: forward"#]]
        .assert_eq(&got);
    }

    #[test]
    fn names_seen_by_one_source_only() {
        let mut r = records();
        let me = Ipv4Addr::new(172, 18, 0, 3);
        let mut mine = SourceNames::default();
        add_name(&mut mine.first, "DB", Ipv4Addr::new(172, 18, 0, 2));
        add_name(&mut mine.first, "web", Ipv4Addr::new(172, 18, 0, 9));
        add_name(&mut mine.last, "other", Ipv4Addr::new(172, 19, 0, 5));
        add_name(&mut mine.last, "redis", Ipv4Addr::new(172, 19, 0, 6));
        r.per_source.insert(me, mine);
        let ask_from = |name: &str, src: Option<Ipv4Addr>| {
            let mut q = Message::query();
            q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
            match answer(&q, &r, src) {
                Answer::Forward => "forward".to_string(),
                Answer::Reply(m) => m
                    .answers
                    .iter()
                    .map(|a| a.data.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        };
        // a link alias wins over the network's names, the network's over other networks'
        assert_eq!(ask_from("db", Some(me)), "172.18.0.2");
        assert_eq!(ask_from("web", Some(me)), "172.18.0.9");
        assert_eq!(ask_from("redis", Some(me)), "172.18.0.2");
        assert_eq!(ask_from("other", Some(me)), "172.19.0.5");
        // nobody else sees them
        assert_eq!(
            ask_from("db", Some(Ipv4Addr::new(172, 18, 0, 2))),
            "forward"
        );
        assert_eq!(ask_from("other", None), "forward");
        assert_eq!(ask_from("web", None), "172.18.0.3");
    }

    #[test]
    fn resolv_conf_nameservers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(
            &p,
            "# x\nsearch example.org\nnameserver 10.0.0.53\nnameserver ::1\noptions ndots:2\n",
        )
        .unwrap();
        let got: Vec<String> = upstreams_from_resolv_conf(&p)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.53:53", "[::1]:53"]);
    }
}
