//! Debian's docker-registry (CNCF distribution 2.8) run inside a test daemon's network
//! namespace on its loopback: plain, or TLS with htpasswd users.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ok, require, TestDaemon};

pub struct TestRegistry {
    pub host: String,
    /// With TLS: the CA certificate clients must trust.
    pub ca: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    /// Plain HTTP on 127.0.0.1 (loopback: berth allows it without --insecure-registry).
    pub fn plain(d: &TestDaemon, port: u16) -> Self {
        Self::start(d, port, &[])
    }

    /// TLS with a self-signed certificate for 127.0.0.1, and basic auth for `users`.
    pub fn tls(d: &TestDaemon, port: u16, users: &[(&str, &str)]) -> Self {
        Self::start(d, port, users)
    }

    fn start(d: &TestDaemon, port: u16, users: &[(&str, &str)]) -> Self {
        require("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
        let mut cfg = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {host}\n  secret: berth-e2e\n",
            dir.path().join("data").display()
        );
        let mut ca = None;
        if !users.is_empty() {
            require("openssl");
            require("htpasswd");
            // A CA, and a server certificate for 127.0.0.1 signed by it (a self-signed CA
            // certificate cannot serve as the end entity).
            let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
            let (ca_crt, ca_key, key, csr, cert, ext) = (
                p("ca.crt"),
                p("ca.key"),
                p("key.pem"),
                p("csr.pem"),
                p("cert.pem"),
                p("ext.cnf"),
            );
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ];
            ok(Command::new("openssl")
                .args(["req", "-x509"])
                .args(ec)
                .args([
                    "-days",
                    "2",
                    "-subj",
                    "/CN=berth e2e CA",
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca_crt,
                ]));
            std::fs::write(
                &ext,
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            ok(Command::new("openssl").arg("req").args(ec).args([
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ]));
            ok(Command::new("openssl").args([
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext,
            ]));
            let mut lines = String::new();
            for (u, p) in users {
                lines.push_str(ok(Command::new("htpasswd").args(["-Bbn", u, p])).trim());
                lines.push('\n');
            }
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, lines).unwrap();
            cfg.push_str(&format!(
                "  tls: {{certificate: {}, key: {}}}\nauth:\n  htpasswd: {{realm: berth-e2e, path: {}}}\n",
                cert,
                key,
                htpasswd.display()
            ));
            ca = Some(PathBuf::from(ca_crt));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = d
            .in_netns("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Self {
            host,
            ca,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = d
                .in_netns("bash")
                .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if probe.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Lay out Docker's certs.d for this registry under `dir`; returns `dir`.
    pub fn certs_d(&self, dir: &std::path::Path) -> PathBuf {
        let ca = self.ca.as_ref().expect("a TLS registry");
        let d = dir.join(&self.host);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(ca, d.join("ca.crt")).unwrap();
        dir.to_owned()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
