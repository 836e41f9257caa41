//! Test harness: Debian's `docker-registry` on 127.0.0.1 (plain, TLS + htpasswd, token auth),
//! a token issuer, certificates made with openssl, and small images built in memory. Every
//! process is killed by a Drop guard; all traffic stays on loopback.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use image_store::Digest;
use serde_json::json;

/// The one place the tests run external programs. A missing program fails the test with
/// what to install: these tests must never pass silently.
pub fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e} (install it: {})",
                package_of(program)
            )
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn package_of(program: &str) -> &'static str {
    match program {
        "docker-registry" => "apt-get install docker-registry",
        "htpasswd" => "apt-get install apache2-utils",
        "skopeo" => "apt-get install skopeo",
        _ => "apt-get install openssl",
    }
}

pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed; these tests need it ({})",
        package_of(program)
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Certificates for one test: a CA, a server certificate for 127.0.0.1/localhost signed by it,
/// and a certs.d directory trusting the CA for `host_port`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    let p = |n: &str| dir.join(n);
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    let (ca, ca_key) = (p("ca.crt"), p("ca.key"));
    let (ca_s, ca_key_s) = (s(&ca), s(&ca_key));
    args.extend([
        "-days",
        "2",
        "-keyout",
        &ca_key_s,
        "-out",
        &ca_s,
        "-subj",
        "/CN=berth test CA",
    ]);
    run("openssl", &args);
    let (key, csr, cert, ext) = (
        p("domain.key"),
        p("domain.csr"),
        p("domain.crt"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (key_s, csr_s, cert_s, ext_s) = (s(&key), s(&csr), s(&cert), s(&ext));
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", "/CN=127.0.0.1"]);
    run("openssl", &args);
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            &ca_s,
            "-CAkey",
            &ca_key_s,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert_s,
            "-extfile",
            &ext_s,
        ],
    );
    Certs { ca, cert, key }
}

/// A certs.d directory trusting `ca` for `host_port`.
pub fn certs_d(dir: &Path, host_port: &str, ca: &Path) -> PathBuf {
    let root = dir.join("certs.d");
    std::fs::create_dir_all(root.join(host_port)).unwrap();
    std::fs::copy(ca, root.join(host_port).join("ca.crt")).unwrap();
    root
}

pub enum Auth<'a> {
    None,
    /// TLS with this server certificate, and htpasswd users.
    TlsBasic {
        certs: &'a Certs,
        users: &'a [(&'a str, &'a str)],
    },
    /// Bearer tokens from `realm`, verified against `signing_cert`.
    Token {
        realm: &'a str,
        signing_cert: &'a Path,
    },
}

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Registry {
    pub fn start(auth: Auth<'_>) -> Self {
        require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        let mut cfg = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n  cache: {{blobdescriptor: inmemory}}\nhttp:\n  addr: {host}\n  secret: berth-test-secret\n",
            data.display()
        );
        match auth {
            Auth::None => {}
            Auth::TlsBasic { certs, users } => {
                require("htpasswd");
                let mut lines = String::new();
                for (u, p) in users {
                    let out = run("htpasswd", &["-Bbn", u, p]);
                    lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                    lines.push('\n');
                }
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, lines).unwrap();
                cfg.push_str(&format!(
                    "  tls: {{certificate: {}, key: {}}}\nauth:\n  htpasswd: {{realm: basic-realm, path: {}}}\n",
                    certs.cert.display(),
                    certs.key.display(),
                    htpasswd.display()
                ));
            }
            Auth::Token {
                realm,
                signing_cert,
            } => {
                cfg.push_str(&format!(
                    "auth:\n  token: {{realm: \"{realm}\", service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {}}}\n",
                    signing_cert.display()
                ));
            }
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.path().join("registry.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let mut r = Registry {
            child,
            host,
            _dir: dir,
            log,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small image: an OCI manifest, its config and one gzipped tar layer.
pub struct TestImage {
    pub config: Bytes,
    pub config_digest: Digest,
    pub layers: Vec<(Digest, Bytes)>,
    pub manifest: Bytes,
    pub manifest_digest: Digest,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn gzip_tar(files: &[(&str, &[u8])]) -> (Bytes, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of_bytes(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (Bytes::from(gz.finish().unwrap()), diff_id)
}

pub fn image(arch: &str, content: &[u8]) -> TestImage {
    let (layer, diff_id) = gzip_tar(&[("hello.txt", content)]);
    let layer_digest = Digest::of_bytes(&layer);
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        }))
        .unwrap(),
    );
    let config_digest = Digest::of_bytes(&config);
    let manifest = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest.to_string(), "size": layer.len()}],
        }))
        .unwrap(),
    );
    TestImage {
        manifest_digest: Digest::of_bytes(&manifest),
        manifest,
        config,
        config_digest,
        layers: vec![(layer_digest, layer)],
    }
}

impl TestImage {
    pub fn blobs(&self) -> Vec<(Digest, Bytes)> {
        let mut v = vec![(self.config_digest.clone(), self.config.clone())];
        v.extend(self.layers.iter().cloned());
        v
    }
}

/// Deterministic, incompressible-looking bytes.
pub fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}
