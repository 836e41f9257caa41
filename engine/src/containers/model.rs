//! The container object: a typed state machine plus what Docker keeps per container.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Docker's container states. Transitions are guarded by the `can_*` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
    /// A process exists (restarting: it has exited and waits for its next start).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The mutable part: what `inspect` shows under `State`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    /// pid of the container's init on the host (0 when not running).
    pub pid: i32,
    /// pid of the monitor process holding the container's stdio.
    pub monitor_pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Size of the log when the current run started: attach replays from here.
    pub log_offset: u64,
    /// Bumped on every exit, so a waiter can tell "the next exit" from an old one.
    pub exits: u64,
    /// The container has been removed (the last state waiters see).
    #[serde(default)]
    pub removed: bool,
    /// `stop` was asked: the restart policy leaves it stopped until the next `start`.
    #[serde(default)]
    pub manually_stopped: bool,
    /// A commit paused it (or is about to) and has not resumed it yet: a daemon that died
    /// meanwhile resumes it when it starts again (a user's pause stays).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub commit_paused: bool,
}

impl Default for RunState {
    fn default() -> Self {
        Self {
            status: Status::Created,
            pid: 0,
            monitor_pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            manually_stopped: false,
            finished_at: ZERO_TIME.into(),
            log_offset: 0,
            exits: 0,
            removed: false,
            commit_paused: false,
        }
    }
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Everything persisted about one container (`containers/<id>/container.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:...` of the image config.
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    /// Docker's `Config` as received (with the image's defaults merged in).
    pub config: Value,
    /// Docker's `HostConfig` as received.
    pub host_config: Value,
    pub state: RunState,
    pub restart_count: u32,
    /// Set once a removal has started: the record is about to go.
    #[serde(default)]
    pub removed: bool,
    /// Docker's `NetworkSettings` of the current (or last) run.
    #[serde(default)]
    pub network_settings: Value,
    /// A build step's container runs on these layers (chain IDs, bottom first) rather than
    /// on a named image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_layers: Option<Vec<String>>,
    /// Binds, volumes and tmpfs mounts, resolved at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::volumes::MountPoint>,
    /// Networks joined by `network connect` beyond `HostConfig.NetworkMode`, in order
    /// (eth1, eth2, … at the next start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_networks: Vec<NetworkAttachment>,
    /// `network disconnect` took the container off its `NetworkMode` network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off_primary: bool,
    /// `HostConfig.Links`, resolved at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A network a container joined with `network connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's name.
    pub network: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A `--link NAME:ALIAS`: the linked container (its id, and its name when linked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub container_id: String,
    pub name: String,
    pub alias: String,
}

impl Container {
    /// A new container's record, not yet registered (no id or name) nor started: `command`
    /// (entrypoint and arguments, at least one word) of `image` with `config`/`host_config`.
    pub fn new(
        image: String,
        image_id: String,
        command: &[String],
        config: Value,
        host_config: Value,
        links: Vec<Link>,
    ) -> Container {
        Container {
            id: String::new(),
            name: String::new(),
            created: crate::monitor::now(),
            image,
            image_id,
            path: command.first().cloned().unwrap_or_default(),
            args: command.iter().skip(1).cloned().collect(),
            config,
            host_config,
            state: RunState::default(),
            restart_count: 0,
            removed: false,
            network_settings: Value::Null,
            rootfs_layers: None,
            mounts: Vec::new(),
            extra_networks: Vec::new(),
            off_primary: false,
            links,
        }
    }

    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }
    pub fn open_stdin(&self) -> bool {
        self.config["OpenStdin"].as_bool().unwrap_or(false)
    }
    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}
