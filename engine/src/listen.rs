//! Where the daemon listens, and who may connect: unix sockets are 0660 and owned by root and
//! the socket group (`berth`, created when missing, as Docker's packages create `docker`); TCP
//! carries TLS with client certificates verified against the operator's CA, and plain TCP only
//! when the operator asks for it by name. Parsing, the group and the TLS configuration live
//! here; `daemon` accepts on every endpoint and serves them all through one path. This module
//! never answers requests.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The group that owns the daemon's unix sockets unless `--group` says otherwise.
pub const DEFAULT_SOCKET_GROUP: &str = "berth";
/// Docker's ports: 2376 for TLS, 2375 for plain TCP.
pub const TLS_PORT: u16 = 2376;
pub const PLAIN_PORT: u16 = 2375;

/// One `-H` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port` as given (a name is resolved when binding).
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Errors of listening: addresses, the socket group, certificates.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("invalid host {host:?}: {reason}")]
    Host { host: String, reason: &'static str },
    #[error(
        "refusing to listen on tcp://{0} without TLS: anyone who can reach it would control the \
         host; pass --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY (or --insecure-tcp \
         if you really mean it)"
    )]
    PlainTcp(String),
    #[error("socket group {group:?}: {reason}")]
    Group { group: String, reason: String },
    #[error("TLS {what} {path}: {reason}")]
    Tls {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
}

/// Parse a `-H` value as dockerd does: `unix:///path`, a bare `/path`, `tcp://host:port`
/// (`tcp://:port` is loopback; a missing port is 2376 with TLS, 2375 without).
pub fn parse_host(host: &str, tls: bool) -> Result<Endpoint, ListenError> {
    let bad = |reason| ListenError::Host {
        host: host.to_owned(),
        reason,
    };
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(bad("no socket path"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(p)));
    }
    if host.starts_with('/') {
        return Ok(Endpoint::Unix(PathBuf::from(host)));
    }
    let Some(rest) = host.strip_prefix("tcp://") else {
        return Err(bad("expected unix:///path or tcp://host:port"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad("a tcp address has no path"));
    }
    let default_port = if tls { TLS_PORT } else { PLAIN_PORT };
    // [v6]:port, [v6], host:port, host, :port
    let (h, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (format!("[{h}]"), p),
            None if after.is_empty() => (format!("[{h}]"), ""),
            None => return Err(bad("junk after ']'")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(bad("put IPv6 addresses in brackets")),
            Some((h, p)) => (h.to_owned(), p),
            None => (rest.to_owned(), ""),
        }
    };
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse::<u16>().map_err(|_| bad("invalid port"))?
    };
    let h = if h.is_empty() {
        "127.0.0.1".to_owned()
    } else {
        h
    };
    Ok(Endpoint::Tcp(format!("{h}:{port}")))
}

/// Whether `addr` is a loopback address (for the warning about plain TCP).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The gid of `name` in an `/etc/group` style text.
pub fn gid_in(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.trim().parse().ok()
    })
}

/// The gid of the socket group, creating the group (a system group, as `groupadd --system`)
/// when it is missing. `group_file` is `/etc/group` outside tests.
pub fn ensure_group(name: &str, group_file: &Path) -> Result<u32, ListenError> {
    let err = |reason: String| ListenError::Group {
        group: name.to_owned(),
        reason,
    };
    let read = || {
        let mut s = String::new();
        std::fs::File::open(group_file)
            .and_then(|mut f| f.read_to_string(&mut s))
            .map(|_| s)
            .map_err(|e| err(format!("reading {}: {e}", group_file.display())))
    };
    if let Some(gid) = gid_in(&read()?, name) {
        return Ok(gid);
    }
    if name.is_empty() || name.starts_with('-') || name.contains([':', '/', '\n']) {
        return Err(err("not a valid group name".to_owned()));
    }
    let out = std::process::Command::new("groupadd")
        .arg("--system")
        .arg(name)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            err(format!(
                "it does not exist and groupadd could not run ({e}); create it, or pass \
                 --group with an existing group"
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "it does not exist and `groupadd --system {name}` failed ({}): {}; create it, or \
             pass --group with an existing group",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tracing::info!("created the socket group {name:?}");
    gid_in(&read()?, name).ok_or_else(|| {
        err(format!(
            "groupadd succeeded but {} has no such group",
            group_file.display()
        ))
    })
}

/// Certificate files for a TLS endpoint (dockerd's `--tlscacert`, `--tlscert`, `--tlskey`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA that client certificates must chain to.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A server configuration that requires every client to present a certificate issued by the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ListenError> {
    let tls_err = |what, path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| ListenError::Tls {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&files.ca).map_err(tls_err("CA", &files.ca))? {
        let c = c.map_err(tls_err("CA", &files.ca))?;
        roots.add(c).map_err(|e| ListenError::Tls {
            what: "CA",
            path: files.ca.clone(),
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(ListenError::Tls {
            what: "CA",
            path: files.ca.clone(),
            reason: "no certificate in the file".to_owned(),
        });
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ListenError::TlsConfig(e.to_string()))?;
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(tls_err("certificate", &files.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(tls_err("certificate", &files.cert))?;
    if certs.is_empty() {
        return Err(ListenError::Tls {
            what: "certificate",
            path: files.cert.clone(),
            reason: "no certificate in the file".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(tls_err("key", &files.key))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::TlsConfig(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ListenError::Tls {
            what: "certificate and key",
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_dockerd_does() {
        let ok = |h, tls| {
            parse_host(h, tls)
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(ok("unix:///run/b.sock", false), "unix:///run/b.sock");
        assert_eq!(ok("/run/b.sock", false), "unix:///run/b.sock");
        assert_eq!(ok("tcp://127.0.0.1:1234", true), "tcp://127.0.0.1:1234");
        assert_eq!(ok("tcp://127.0.0.1", true), "tcp://127.0.0.1:2376");
        assert_eq!(ok("tcp://127.0.0.1", false), "tcp://127.0.0.1:2375");
        assert_eq!(ok("tcp://:9", true), "tcp://127.0.0.1:9");
        assert_eq!(ok("tcp://[::1]:9/", true), "tcp://[::1]:9");
        assert_eq!(ok("tcp://[::1]", true), "tcp://[::1]:2376");
        assert_eq!(ok("tcp://localhost:9", true), "tcp://localhost:9");
        for bad in [
            "unix://",
            "tcp://1.2.3.4:x",
            "tcp://1.2.3.4:99999",
            "tcp://::1:9",
            "tcp://[::1",
            "tcp://h:1/path",
            "fd://",
            "ssh://host",
            "",
        ] {
            assert!(parse_host(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_lookup() {
        let f = "root:x:0:\n# comment\nberthx:x:5:\nberth:x:998:alice,bob\nbad\n";
        assert_eq!(gid_in(f, "berth"), Some(998));
        assert_eq!(gid_in(f, "root"), Some(0));
        assert_eq!(gid_in(f, "nobody"), None);
        assert_eq!(gid_in(f, "bad"), None);
    }

    #[test]
    fn missing_group_file_is_a_clear_error() {
        let e = ensure_group("x", Path::new("/nonexistent/group"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/group"), "{e}");
    }

    #[test]
    fn tls_files_that_are_missing_or_empty_are_named() {
        let dir = tempfile::tempdir().map(|d| d.keep()).unwrap_or_default();
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "");
        let files = TlsFiles {
            ca: dir.join("missing.pem"),
            cert: empty.clone(),
            key: empty.clone(),
        };
        let e = server_config(&files)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("TLS CA") && e.contains("missing.pem"), "{e}");
        let files = TlsFiles {
            ca: empty.clone(),
            ..files
        };
        let e = server_config(&files)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
