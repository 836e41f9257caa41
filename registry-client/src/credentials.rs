//! Credentials on disk in the docker CLI's `config.json` format: `auths.<key>.auth` is
//! base64(`user:pass`); Docker Hub's key is `https://index.docker.io/v1/`, others are
//! `host[:port]`. Fields we do not use (`credsStore`, `credHelpers`, `HttpHeaders`, ...) are
//! kept as they were. The file's path is always a parameter.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::auth::Credentials;
use crate::client::{api_host, Client, DOCKER_HUB_API_HOST};
use crate::error::{RegistryError, Result};

/// Docker Hub's key in `auths` (and the server address the docker CLI shows).
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The `auths` key for a registry, as the docker CLI writes it.
pub fn config_key(registry: &str) -> String {
    if api_host(registry) == DOCKER_HUB_API_HOST {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// `host[:port]` of an `auths` key written as a URL (`https://host/v1/`) or a bare host.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    config_path_from(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
}

/// [`default_config_path`] with the environment passed in.
pub fn config_path_from(
    docker_config: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    match docker_config.filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => home
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// A `config.json` loaded for reading and changing.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// Load `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self> {
        let err = |reason: String| RegistryError::Credentials {
            path: path.to_owned(),
            reason,
        };
        let doc = match std::fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b).map_err(|e| err(e.to_string()))? {
                Value::Object(m) => m,
                _ => return Err(err("not a JSON object".into())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self {
            path: path.to_owned(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// Keys in `auths` that mean `registry` (`https://host/v2/`, `host`, Hub's aliases).
    fn matching_keys(&self, registry: &str) -> Vec<String> {
        let want = key_host(&config_key(registry)).to_owned();
        let hub = want == key_host(DOCKER_HUB_KEY);
        self.auths()
            .map(|a| {
                a.keys()
                    .filter(|k| {
                        let h = key_host(k);
                        h == want || (hub && api_host(h) == DOCKER_HUB_API_HOST)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stored credentials for `registry`, exact key first.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let exact = config_key(registry);
        let mut keys = self.matching_keys(registry);
        keys.sort_by_key(|k| *k != exact);
        let Some(entry) = keys.first().and_then(|k| self.auths()?.get(k)) else {
            return Ok(None);
        };
        let field = |f: &str| {
            entry
                .get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(auth) = field("auth") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| self.err(format!("auths.{exact}.auth: {e}")))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| self.err(format!("auths.{exact}.auth is not utf-8")))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| self.err(format!("auths.{exact}.auth is not user:password")))?;
            return Ok(Some(Credentials::new(u, p)));
        }
        Ok(match (field("username"), field("password")) {
            (Some(u), Some(p)) => Some(Credentials::new(u, p)),
            _ => None,
        })
    }

    fn err(&self, reason: String) -> RegistryError {
        RegistryError::Credentials {
            path: self.path.clone(),
            reason,
        }
    }

    /// Store credentials under the docker CLI's key, replacing any alias entries.
    pub fn set(&mut self, registry: &str, creds: &Credentials) {
        self.remove(registry);
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(a) = auths {
            let mut entry = Map::new();
            entry.insert("auth".into(), Value::String(auth));
            a.insert(config_key(registry), Value::Object(entry));
        }
    }

    /// Forget `registry`'s credentials; `false` when there were none.
    pub fn remove(&mut self, registry: &str) -> bool {
        let keys = self.matching_keys(registry);
        match self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            Some(a) => keys.iter().filter(|k| a.remove(*k).is_some()).count() > 0,
            None => false,
        }
    }

    /// Write the file atomically (temp file, fsync, rename), mode 0600 in a 0700 directory
    /// when the directory is new: it holds passwords.
    pub fn save(&self) -> Result<()> {
        let err = |e: std::io::Error| self.err(e.to_string());
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode_0700()
                .create(dir)
                .map_err(err)?;
        }
        let mut text = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| self.err(e.to_string()))?;
        text.push(b'\n');
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode_0600()
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

trait Mode {
    fn mode_0600(&mut self) -> &mut Self;
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o700)
    }
}

impl Mode for std::fs::DirBuilder {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o600)
    }
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// `docker login`: check the credentials against the registry, then store them in
/// `config_path`. Nothing is written when the registry refuses them.
pub async fn login(
    client: &Client,
    config_path: &Path,
    registry: &str,
    creds: Credentials,
) -> Result<()> {
    client.login(registry, creds.clone()).await?;
    let mut cfg = DockerConfig::load(config_path)?;
    cfg.set(registry, &creds);
    cfg.save()
}

/// `docker logout`: remove the stored credentials; `false` when there were none.
pub fn logout(config_path: &Path, registry: &str) -> Result<bool> {
    let mut cfg = DockerConfig::load(config_path)?;
    let removed = cfg.remove(registry);
    if removed {
        cfg.save()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_like_the_docker_cli() {
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("index.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key_host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key_host("http://r.example:5000/v2/"), "r.example:5000");
    }

    #[test]
    fn paths_honour_docker_config() {
        assert_eq!(
            config_path_from(Some("/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/cfg/config.json"))
        );
        assert_eq!(
            config_path_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(config_path_from(None, None), None);
    }

    #[test]
    fn round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        // What docker CLI 20.10 writes, plus fields we must not lose.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
		"http://legacy.example:5000/v2/": {"username": "old", "password": "pw"}
	},
	"credHelpers": {"gcr.io": "gcloud"},
	"HttpHeaders": {"X-Meta": "1"}
}"#,
        )
        .unwrap();
        let mut cfg = DockerConfig::load(&path).unwrap();
        assert_eq!(
            cfg.get("docker.io").unwrap(),
            Some(Credentials::new("hub", "hubpass"))
        );
        assert_eq!(
            cfg.get("legacy.example:5000").unwrap(),
            Some(Credentials::new("old", "pw"))
        );
        assert_eq!(cfg.get("127.0.0.1:5000").unwrap(), None);

        cfg.set("127.0.0.1:5000", &Credentials::new("tester", "s3:cret"));
        assert!(cfg.remove("legacy.example:5000"));
        assert!(!cfg.remove("never.example"));
        cfg.save().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dGVzdGVyOnMzOmNyZXQ=");
        assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(v["HttpHeaders"]["X-Meta"], "1");
        assert!(v["auths"].get("http://legacy.example:5000/v2/").is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let again = DockerConfig::load(&path).unwrap();
        assert_eq!(
            again.get("127.0.0.1:5000").unwrap(),
            Some(Credentials::new("tester", "s3:cret"))
        );
        assert_eq!(
            again.get("index.docker.io").unwrap(),
            Some(Credentials::new("hub", "hubpass"))
        );
        assert!(logout(&path, "docker.io").unwrap());
        assert_eq!(
            DockerConfig::load(&path).unwrap().get("docker.io").unwrap(),
            None
        );
    }

    #[test]
    fn missing_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(cfg.get("docker.io").unwrap(), None);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[1]").unwrap();
        assert!(DockerConfig::load(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad.json"));
        std::fs::write(&bad, r#"{"auths":{"r.example":{"auth":"!!"}}}"#).unwrap();
        assert!(DockerConfig::load(&bad).unwrap().get("r.example").is_err());
    }
}
