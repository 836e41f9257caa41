//! The DNS responder of one network: UDP and TCP on `gateway:53` in the daemon's netns
//! (the bridge lives there, so the daemon can bind the gateway address), served by tasks on
//! the caller's tokio runtime. Unknown names are forwarded over UDP to the upstream
//! resolvers, each tried with a timeout shorter than a client's (so a dead one is skipped).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::{answer, Answer, Records};
use crate::error::NetError;

/// How responders run and where they forward.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// The runtime that serves the sockets (the daemon's).
    pub runtime: Handle,
    /// Resolvers for names the network does not know (from the host's resolv.conf).
    pub upstreams: Vec<SocketAddr>,
    /// 53, except in tests.
    pub port: u16,
    /// Per upstream attempt; keep it below clients' 5 s.
    pub timeout: Duration,
}

impl DnsOptions {
    /// Port 53, upstreams from `/etc/resolv.conf`, 2 s per upstream.
    pub fn new(runtime: Handle) -> Self {
        DnsOptions {
            runtime,
            upstreams: super::upstreams_from_resolv_conf(std::path::Path::new("/etc/resolv.conf")),
            port: 53,
            timeout: Duration::from_secs(2),
        }
    }
}

/// A running responder; dropping it stops it and closes its sockets.
#[derive(Debug)]
pub struct Responder {
    records: Arc<RwLock<Records>>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    records: Arc<RwLock<Records>>,
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Responder {
    /// Bind `ip:port` (UDP and TCP) and start answering from `records`.
    pub fn start(opts: &DnsOptions, ip: Ipv4Addr, records: Records) -> Result<Responder, NetError> {
        let addr = SocketAddrV4::new(ip, opts.port);
        let err = |source| NetError::Dns {
            addr: addr.to_string(),
            source,
        };
        let udp = std::net::UdpSocket::bind(addr).map_err(err)?;
        udp.set_nonblocking(true).map_err(err)?;
        let tcp = std::net::TcpListener::bind(addr).map_err(err)?;
        tcp.set_nonblocking(true).map_err(err)?;
        let _enter = opts.runtime.enter();
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(err)?);
        let tcp = TcpListener::from_std(tcp).map_err(err)?;
        let records = Arc::new(RwLock::new(records));
        let shared = Arc::new(Shared {
            records: records.clone(),
            upstreams: opts.upstreams.clone(),
            timeout: opts.timeout,
        });
        let tasks = vec![
            opts.runtime.spawn(serve_udp(udp, shared.clone())),
            opts.runtime.spawn(serve_tcp(tcp, shared)),
        ];
        Ok(Responder { records, tasks })
    }

    /// Replace the names answered.
    pub fn set_records(&self, records: Records) {
        *self.records.write().unwrap_or_else(|e| e.into_inner()) = records;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Shared {
    /// The reply to one wire-format query, or `None` to stay silent (unparsable input).
    async fn reply(&self, query: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        let source = match source {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        let ans = {
            let records = self.records.read().unwrap_or_else(|e| e.into_inner());
            answer(&msg, &records, source)
        };
        match ans {
            Answer::Reply(m) => m.to_vec().ok(),
            Answer::Forward => match self.forward(query, msg.metadata.id).await {
                Some(r) => Some(r),
                None => {
                    let mut fail = Message::error_msg(
                        msg.metadata.id,
                        msg.metadata.op_code,
                        ResponseCode::ServFail,
                    );
                    fail.add_queries(msg.queries.iter().cloned());
                    fail.to_vec().ok()
                }
            },
        }
    }

    async fn forward(&self, query: &[u8], id: u16) -> Option<Vec<u8>> {
        for up in &self.upstreams {
            let local: SocketAddr = if up.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = UdpSocket::bind(local).await else {
                continue;
            };
            if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 65535];
            let got = tokio::time::timeout(self.timeout, async {
                loop {
                    let n = sock.recv(&mut buf).await.ok()?;
                    // ignore stray datagrams that are not the reply to this query
                    if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                        return Some(n);
                    }
                }
            })
            .await;
            if let Ok(Some(n)) = got {
                buf.truncate(n);
                return Some(buf);
            }
            tracing::debug!(upstream = %up, "dns upstream did not answer");
        }
        None
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, shared) = (sock.clone(), shared.clone());
        tokio::spawn(async move {
            if let Some(r) = shared.reply(&query, peer.ip()).await {
                let _ = sock.send_to(&r, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let serve = serve_conn(stream, peer.ip(), shared);
            let _ = tokio::time::timeout(Duration::from_secs(30), serve).await;
        });
    }
}

async fn serve_conn(
    mut stream: TcpStream,
    peer: IpAddr,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut query = vec![0u8; usize::from(len)];
        stream.read_exact(&mut query).await?;
        let Some(reply) = shared.reply(&query, peer).await else {
            return Ok(());
        };
        let Ok(rlen) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        stream.write_u16(rlen).await?;
        stream.write_all(&reply).await?;
    }
}
