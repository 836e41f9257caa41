//! TLS trust for one registry host: the system roots plus the CA certificates Docker's
//! `certs.d` convention puts in `<certs_dir>/<host[:port]>/*.crt` (usually `ca.crt`).
//! The certs directory is a parameter; nothing here reads `/etc/docker` by itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{RegistryError, Result};

/// The CA files for `host_port` under `certs_dir`, sorted so trust does not depend on
/// directory order. A missing directory means no extra CAs.
pub fn ca_files(certs_dir: &Path, host_port: &str) -> Vec<PathBuf> {
    let dir = certs_dir.join(host_port);
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// System roots, read once per process: loading them costs a few milliseconds each time.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::warn!("loading system certificates: {e}");
        }
        loaded.certs
    })
}

/// A rustls client configuration trusting the system roots and `host_port`'s certs.d CAs.
pub fn client_config(
    certs_dir: Option<&Path>,
    host_port: &str,
) -> Result<Arc<rustls::ClientConfig>> {
    let tls_err = |reason: String| RegistryError::Tls {
        host: host_port.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    // Some system bundles hold certificates rustls cannot parse; skipping them is what every
    // client does.
    let _ = roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(dir) = certs_dir {
        for file in ca_files(dir, host_port) {
            let certs = CertificateDer::pem_file_iter(&file)
                .map_err(|e| tls_err(format!("{}: {e}", file.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| tls_err(format!("{}: {e}", file.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("{}: {e}", file.display())))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_lookup_uses_host_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("127.0.0.1:5443");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ca.crt"), "x").unwrap();
        std::fs::write(d.join("extra.crt"), "x").unwrap();
        std::fs::write(d.join("client.cert"), "x").unwrap();
        std::fs::write(d.join("client.key"), "x").unwrap();
        let files = ca_files(dir.path(), "127.0.0.1:5443");
        assert_eq!(files, vec![d.join("ca.crt"), d.join("extra.crt")]);
        assert!(ca_files(dir.path(), "127.0.0.1").is_empty());
        assert!(ca_files(dir.path(), "other:5443").is_empty());
    }

    #[test]
    fn a_bad_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("reg.example");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(Some(dir.path()), "reg.example").unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert!(client_config(Some(dir.path()), "none.example").is_ok());
    }
}
