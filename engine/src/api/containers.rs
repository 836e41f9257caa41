//! `/containers/...`: create, start, attach (hijacked), wait, logs, list, inspect, stop, kill,
//! restart, remove.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::{model::ZERO_TIME, spec, Container, Entry, RunState, Status};
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{channel_body, json as reply_json, status, strings, Query, Reply};
use crate::monitor::{self, AttachRequest, MonitorConfig};

fn blocking_err(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Merge the image's config under the user's, as Docker does at create.
fn merge_config(user: &mut Value, image: &Value) {
    let img = &image["config"];
    let obj = match user.as_object_mut() {
        Some(o) => o,
        None => return,
    };
    let empty = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.is_null() || v.as_array().is_some_and(|a| a.is_empty()) || v.as_str() == Some("")
        })
    };
    // Env: image first, user values override by key
    let mut env: Vec<String> = img["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for e in obj
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.to_owned());
    }
    obj.insert("Env".into(), json!(env));
    let user_entry = !empty(obj.get("Entrypoint"));
    if empty(obj.get("Cmd")) && !user_entry {
        obj.insert("Cmd".into(), img["Cmd"].clone());
    }
    if !user_entry {
        obj.insert("Entrypoint".into(), img["Entrypoint"].clone());
    }
    for k in ["WorkingDir", "User", "StopSignal"] {
        if empty(obj.get(k)) {
            obj.insert(k.into(), img[k].clone());
        }
    }
    for k in ["ExposedPorts", "Volumes", "Labels"] {
        let mut m = img[k].as_object().cloned().unwrap_or_default();
        if let Some(u) = obj.get(k).and_then(Value::as_object) {
            m.extend(u.clone());
        }
        obj.insert(
            k.into(),
            if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            },
        );
    }
}

/// What dockerd fills in and checks in a new container's HostConfig (an object): the log
/// driver (json-file or none, with their options) and the runtime's name (any other name
/// is taken and ignored).
fn host_config_defaults(hc: &mut Value) -> Result<(), ApiError> {
    // the driver and its options are checked by the log writer's own parser
    crate::logfile::LogOpts::from_host_config(hc).map_err(ApiError::bad_request)?;
    if hc["LogConfig"]["Type"].as_str().unwrap_or("").is_empty() {
        let config = match &hc["LogConfig"]["Config"] {
            c @ Value::Object(_) => c.clone(),
            _ => json!({}),
        };
        hc["LogConfig"] = json!({"Type": "json-file", "Config": config});
    }
    if hc["Runtime"].as_str().unwrap_or("").is_empty() {
        hc["Runtime"] = json!(super::system::DEFAULT_RUNTIME);
    }
    Ok(())
}

/// A create request after the checks that need nothing but its body and the image's
/// config: what `create` then makes a container of.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub config: Value,
    pub host_config: Value,
    /// Entrypoint + Cmd, never empty.
    pub command: Vec<String>,
    pub mounts: Vec<crate::volumes::MountRequest>,
    /// The network mode (`bridge`, `host`, a network name, `container:ID`).
    pub network: String,
}

/// The body of `POST /containers/create` and the image it names.
pub(crate) fn decode_create_body(bytes: &[u8]) -> Result<(Value, String), ApiError> {
    let body: Value = serde_json::from_slice(bytes)?;
    let image = body["Image"].as_str().unwrap_or("").to_owned();
    if image.is_empty() {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    Ok((body, image))
}

/// Check and complete a create body against the image's config (`image_cfg`, the whole
/// config document): HostConfig defaults, networking aliases and address, MAC address,
/// the merged config, the command, mount requests and log options. Pure: no daemon state.
pub(crate) fn prepare_create(
    mut body: Value,
    image_cfg: &Value,
) -> Result<CreateRequest, ApiError> {
    let mut host_config = match body.get("HostConfig") {
        None | Some(Value::Null) => json!({}),
        Some(hc @ Value::Object(_)) => hc.clone(),
        Some(_) => return Err(ApiError::bad_request("HostConfig must be an object")),
    };
    host_config_defaults(&mut host_config)?;
    // NetworkingConfig (compose puts the service name there as an alias).
    let net_name = crate::network::mode(&host_config);
    let endpoint = &body["NetworkingConfig"]["EndpointsConfig"][&net_name];
    if let Some(a) = endpoint["Aliases"].as_array() {
        host_config["NetworkingAliases"] = json!(a);
    }
    if let Some(ip) = endpoint["IPAMConfig"]["IPv4Address"].as_str() {
        host_config["BerthIPv4Address"] = json!(ip);
    }
    // Config.MacAddress (API 1.41), or the endpoint's (newer clients)
    let mac = [&body["MacAddress"], &endpoint["MacAddress"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|m| !m.is_empty())
        .map(str::to_owned);
    if let Some(m) = mac {
        let parsed = netbridge::ipam::parse_mac(&m).map_err(ApiError::bad_request)?;
        if net_name == "host" || net_name.starts_with("container:") {
            return Err(ApiError::bad_request(
                "conflicting options: mac-address and the network mode",
            ));
        }
        body["MacAddress"] = json!(netbridge::ipam::mac_string(&parsed));
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
    }
    merge_config(&mut body, image_cfg);
    let mut command = strings(&body["Entrypoint"]);
    command.extend(strings(&body["Cmd"]));
    if command.is_empty() {
        return Err(ApiError::bad_request("No command specified"));
    }
    let mounts = crate::volumes::requests(&host_config, &body)?;
    crate::logfile::LogOpts::from_host_config(&host_config).map_err(ApiError::bad_request)?;
    Ok(CreateRequest {
        network: crate::network::mode(&host_config),
        config: body,
        host_config,
        command,
        mounts,
    })
}

pub async fn create(d: &Arc<Daemon>, q: &Query, body: Incoming) -> Result<Reply, ApiError> {
    runtime::trace::mark("d create");
    let bytes = crate::http::read_body(body).await?;
    let (body, image) = decode_create_body(&bytes)?;
    let rec = d.store.resolve(&image).map_err(|e| match e {
        image_store::StoreError::ImageNotFound(n) => {
            ApiError::not_found(format!("No such image: {n}"))
        }
        other => other.into(),
    })?;
    let image_cfg: Value =
        serde_json::from_slice(&d.store.config_bytes(&rec.id)?).unwrap_or(Value::Null);
    runtime::trace::mark("d image read");
    let CreateRequest {
        config: body,
        host_config,
        command: full,
        mounts: mount_reqs,
        network: net,
    } = prepare_create(body, &image_cfg)?;
    if crate::network::is_bridged(&net) && net != netbridge::DEFAULT_NETWORK {
        match &d.networks {
            Some(nets) => {
                nets.inspect(&net)
                    .map_err(|_| ApiError::not_found(format!("network {net} not found")))?;
            }
            None => return Err(ApiError::not_found(format!("network {net} not found"))),
        }
    }
    let links = if host_config["Links"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        if net == "host" {
            return Err(ApiError::bad_request(
                "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
            ));
        }
        crate::links::resolve(&d.containers, &host_config["Links"])?
    } else {
        Vec::new()
    };
    let c = Container::new(
        image.clone(),
        rec.id.to_string(),
        &full,
        body,
        host_config,
        links,
    );
    let e = d
        .containers
        .insert(c, q.get("name").filter(|n| !n.is_empty()))?;
    runtime::trace::mark("d inserted");
    let c = e.snapshot();
    let made = write_etc_files(d, &c).and_then(|()| {
        runtime::trace::mark("d etc written");
        let mounts = super::volumes::prepare_mounts(d, &c, mount_reqs)?;
        d.containers.update(&e, |c| c.mounts = mounts)
    });
    let c = match made {
        Ok(c) => c,
        Err(err) => {
            // nothing of a container that could not be made stays behind
            let _ = super::volumes::remove_container_async(d, &e, true).await;
            return Err(err);
        }
    };
    d.events.container(&c, "create", &[]);
    Ok(reply_json(
        StatusCode::CREATED,
        &json!({"Id": c.id, "Warnings": []}),
    ))
}

pub(crate) fn write_etc_files(d: &Daemon, c: &Container) -> Result<(), ApiError> {
    let dir = d.containers.dir_of(&c.id);
    let hostname = c.config["Hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(c.short_id())
        .to_owned();
    let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_owned();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, content) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        std::fs::write(dir.join(name), content)
            .map_err(|e| ApiError::internal(format!("writing {name}: {e}")))?;
    }
    Ok(())
}

/// What every container's runtime mounts over in its root: the mount points of /proc, /sys
/// and /dev, and the targets of the files berth binds in (`write_etc_files`).
const INIT_ENTRIES: &[image_store::layers::InitEntry] = {
    use image_store::layers::InitEntry::{Dir, File};
    &[
        Dir("proc"),
        Dir("sys"),
        Dir("dev"),
        File("etc/hosts"),
        File("etc/hostname"),
        File("etc/resolv.conf"),
    ]
};

/// The overlay that makes `c`'s root filesystem: its image's layers (under their init
/// layer) under its upper dir.
pub(crate) fn rootfs_overlay(
    d: &Daemon,
    c: &Container,
) -> Result<image_store::layers::OverlayMount, ApiError> {
    let dir = d.containers.dir_of(&c.id);
    Ok(match &c.rootfs_layers {
        Some(chains) => {
            let chains = chains
                .iter()
                .map(|c| image_store::Digest::parse(c))
                .collect::<Result<Vec<_>, _>>()?;
            d.store
                .layers()
                .overlay_with_init(&chains, &dir, INIT_ENTRIES)?
        }
        None => d.store.overlay_with_init(
            &image_store::Digest::parse(&c.image_id)?,
            &dir,
            INIT_ENTRIES,
        )?,
    })
}

fn monitor_config(
    d: &Daemon,
    c: &Container,
    netns: Option<std::path::PathBuf>,
    link_env: Vec<String>,
    overlay: image_store::layers::OverlayMount,
) -> Result<MonitorConfig, ApiError> {
    let dir = d.containers.dir_of(&c.id);
    let run = d.containers.run_dir_of(&c.id);
    let hc = &c.host_config;
    let cfg = &c.config;
    let net = hc["NetworkMode"].as_str().unwrap_or("default");
    let hostname = c.config["Hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(c.short_id())
        .to_owned();
    // link variables first: the container's own win (Docker's order)
    let mut env = link_env;
    env.extend(strings(&cfg["Env"]));
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    env.insert(0, format!("HOSTNAME={hostname}"));
    let mut binds = Vec::new();
    let mut tmpfs: Vec<(String, String)> = hc["Tmpfs"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    for m in &c.mounts {
        match m.kind.as_str() {
            "tmpfs" => tmpfs.push((m.destination.clone(), m.tmpfs_options.clone())),
            _ => binds.push((m.source.clone(), m.destination.clone(), !m.rw)),
        }
    }
    let input = spec::SpecInput {
        id: c.id.clone(),
        hostname,
        args: std::iter::once(c.path.clone())
            .chain(c.args.iter().cloned())
            .collect(),
        env,
        cwd: cfg["WorkingDir"].as_str().unwrap_or("").to_owned(),
        tty: c.tty(),
        rootfs: monitor::rootfs(&run).display().to_string(),
        etc_files: ["hostname", "hosts", "resolv.conf"]
            .iter()
            .map(|f| (format!("/etc/{f}"), dir.join(f).display().to_string()))
            .collect(),
        host_network: net == "host",
        netns_path: netns.map(|p| p.display().to_string()),
        readonly_rootfs: hc["ReadonlyRootfs"].as_bool().unwrap_or(false),
        memory: hc["Memory"].as_i64().unwrap_or(0),
        nano_cpus: hc["NanoCpus"].as_i64().unwrap_or(0),
        cpu_shares: hc["CpuShares"].as_i64().unwrap_or(0),
        pids_limit: hc["PidsLimit"].as_i64().unwrap_or(0),
        cap_add: strings(&hc["CapAdd"]),
        cap_drop: strings(&hc["CapDrop"]),
        binds,
        cgroup_parent: hc["CgroupParent"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or(&d.config.cgroup_parent)
            .to_owned(),
        tmpfs,
        ulimits: ulimits(&hc["Ulimits"])?,
        privileged: hc["Privileged"].as_bool().unwrap_or(false),
        devices: if hc["Privileged"].as_bool().unwrap_or(false) {
            crate::containers::hostdev::host_devices(std::path::Path::new("/dev"))
        } else {
            Vec::new()
        },
        init: hc["Init"].as_bool().unwrap_or(false),
        bounding: own_bounding_set(),
        ..Default::default()
    };
    let mut input = input;
    for opt in strings(&hc["SecurityOpt"]) {
        let (k, v) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), ""), |(k, v)| (k, v));
        match (k, v) {
            ("no-new-privileges", "" | "true") => input.no_new_privileges = true,
            ("no-new-privileges", "false") => input.no_new_privileges = false,
            ("seccomp", "unconfined") => input.seccomp = spec::Seccomp::Unconfined,
            ("seccomp", profile) if profile.trim_start().starts_with('{') => {
                let caps = spec::capabilities(&input.cap_add, &input.cap_drop);
                input.seccomp = spec::Seccomp::Profile(
                    spec::seccomp_profile(profile, &caps).map_err(ApiError::bad_request)?,
                );
            }
            ("label" | "apparmor", _) => {} // no LSM here: accepted and ignored, as on hosts without one
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    Ok(MonitorConfig {
        id: c.id.clone(),
        dir: run,
        lowerdirs: overlay
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        upperdir: overlay.upperdir.display().to_string(),
        workdir: overlay.workdir.display().to_string(),
        mount_chdir: overlay.chdir.map(|p| p.display().to_string()),
        spec: spec::build(&input),
        user: cfg["User"].as_str().unwrap_or("").to_owned(),
        runtime_root: d.containers.runtime_root.clone(),
        log_path: d.containers.log_path(&c.id),
        open_stdin: cfg["OpenStdin"].as_bool().unwrap_or(false),
        stdin_once: cfg["StdinOnce"].as_bool().unwrap_or(false),
        tty: c.tty(),
        console_size: console_size(&hc["ConsoleSize"]),
        log_opts: crate::logfile::LogOpts::from_host_config(hc).map_err(ApiError::bad_request)?,
        group_add: strings(&hc["GroupAdd"]),
        volatile_rootfs: c.auto_remove(),
        // the store takes one at the start
        cgroup_ahead: None,
        premounted: false,
    })
}

/// This process's capability bounding set, from /proc/self/status.
fn own_bounding_set() -> u64 {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0)
    })
}

/// `Ulimits: [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]` as OCI rlimits.
pub(crate) fn ulimits(v: &Value) -> Result<Vec<(String, u64, u64)>, ApiError> {
    let mut out = Vec::new();
    for u in v.as_array().into_iter().flatten() {
        let name = u["Name"].as_str().unwrap_or("");
        const KNOWN: [&str; 16] = [
            "core",
            "cpu",
            "data",
            "fsize",
            "locks",
            "memlock",
            "msgqueue",
            "nice",
            "nofile",
            "nproc",
            "rss",
            "rtprio",
            "rttime",
            "sigpending",
            "stack",
            "as",
        ];
        if !KNOWN.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "invalid ulimit type: {name}"
            )));
        }
        let get = |k: &str| {
            u[k].as_i64()
                .map(|n| if n < 0 { u64::MAX } else { n as u64 })
        };
        let (soft, hard) = (get("Soft").unwrap_or(0), get("Hard").unwrap_or(0));
        if soft > hard {
            return Err(ApiError::bad_request(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        out.push((format!("RLIMIT_{}", name.to_ascii_uppercase()), soft, hard));
    }
    Ok(out)
}

/// `ConsoleSize: [rows, cols]` as the docker CLI sends it; none when absent or zero.
pub fn console_size(v: &Value) -> Option<(u16, u16)> {
    let h = u16::try_from(v.get(0)?.as_u64()?).ok()?;
    let w = u16::try_from(v.get(1)?.as_u64()?).ok()?;
    (h > 0 && w > 0).then_some((h, w))
}

/// Start `e` and watch it until it exits (then auto-remove when asked).
pub async fn start_entry(d: &Arc<Daemon>, e: &Arc<Entry>) -> Result<(), ApiError> {
    let c = e.snapshot();
    if c.state.status.is_live() {
        return Err(ApiError::new(StatusCode::NOT_MODIFIED, ""));
    }
    if c.removed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "container {} is marked for removal and cannot be started",
                c.id
            ),
        ));
    }
    runtime::trace::mark("d start_entry");
    // links on the default bridge: /etc/hosts lines and variables (nothing without links)
    let (link_hosts, link_env) = if !c.links.is_empty()
        && !c.off_primary
        && crate::network::mode(&c.host_config) == netbridge::DEFAULT_NETWORK
    {
        crate::links::for_start(&d.containers, &c)?
    } else {
        (String::new(), Vec::new())
    };
    let overlay = rootfs_overlay(d, &c)?;
    // the root filesystem is mounted meanwhile (see `Containers::premount`)
    let premount = {
        let (d2, e2, overlay) = (d.clone(), e.clone(), overlay.clone());
        tokio::task::spawn_blocking(move || d2.containers.premount(&e2, &overlay))
    };
    let undo_premount = |mounted: Result<bool, tokio::task::JoinError>| {
        if mounted.unwrap_or(false) {
            d.containers.unmount_premounted(e);
        }
    };
    let netns = match connect_network(d, e, &c, &link_hosts).await {
        Ok(n) => n,
        Err(err) => {
            undo_premount(premount.await);
            return Err(err);
        }
    };
    runtime::trace::mark("d network");
    let cfg = match monitor_config(d, &c, netns, link_env, overlay) {
        Ok(cfg) => cfg,
        Err(err) => {
            undo_premount(premount.await);
            release_network(d, &c.id).await;
            return Err(err);
        }
    };
    runtime::trace::mark("d monitor config");
    let premounted = premount.await.unwrap_or(false);
    let mut cfg = cfg;
    cfg.premounted = premounted;
    runtime::trace::mark("d premounted");
    let (d2, e2) = (d.clone(), e.clone());
    let started = tokio::task::spawn_blocking(move || d2.containers.start(&e2, cfg))
        .await
        .map_err(blocking_err)?;
    runtime::trace::mark("d started");
    // the next start finds a monitor waiting
    let d2 = d.clone();
    let delay = d.containers.spare_delay();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tokio::task::spawn_blocking(move || d2.containers.prepare_spare()).await;
    });
    if let Err(err) = started {
        if premounted {
            // (a monitor that failed unmounted it already; a start that lost a race to
            // another leaves the winner's alone)
            d.containers.unmount_premounted(e);
        }
        d.reaper.adopt(e.snapshot().state.monitor_pid);
        release_network(d, &c.id).await;
        if c.auto_remove() {
            // as dockerd: a container that cannot start is removed when --rm was asked
            let _ = super::volumes::remove_container_async(d, e, true).await;
        }
        return Err(err);
    }
    // The monitor re-parents to us when its first stage exits: reap it when it ends.
    d.reaper.adopt(e.snapshot().state.monitor_pid);
    d.events.container(&e.snapshot(), "start", &[]);
    spawn_watch(d.clone(), e.clone());
    Ok(())
}

/// Give a container on a bridge network its netns (connected), its NetworkSettings, and
/// the matching /etc/hosts and resolv.conf. `None` for `none`/`host`.
async fn connect_network(
    d: &Arc<Daemon>,
    e: &Arc<Entry>,
    c: &Container,
    link_hosts: &str,
) -> Result<Option<std::path::PathBuf>, ApiError> {
    let mode = crate::network::mode(&c.host_config);
    if mode == "none" {
        // an empty netns (loopback only): one the pool made ahead, when there is a pool;
        // released with the container's network when it stops
        let Some(nets) = d.networks.clone() else {
            return Ok(None); // the runtime makes one
        };
        let id = c.id.clone();
        let made = tokio::task::spawn_blocking(move || nets.create_netns(&id))
            .await
            .map_err(blocking_err)?;
        return Ok(Some(made?));
    }
    if !crate::network::is_bridged(&mode) {
        return Ok(None);
    }
    let Some(nets) = d.networks.clone() else {
        if mode == netbridge::DEFAULT_NETWORK {
            // No bridge here (not root): as --network none.
            return Ok(None);
        }
        return Err(ApiError::not_found(format!("network {mode} not found")));
    };
    let hostname = c.config["Hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(c.short_id())
        .to_owned();
    let c2 = c.clone();
    let att = tokio::task::spawn_blocking(move || crate::network::attach(&nets, &c2, &hostname))
        .await
        .map_err(blocking_err)??;
    let dir = d.containers.dir_of(&c.id);
    let written = (|| -> std::io::Result<()> {
        let hosts = std::fs::read_to_string(dir.join("hosts")).unwrap_or_default();
        let base: String = hosts
            .lines()
            .take_while(|l| !l.starts_with("# berth network"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            dir.join("hosts"),
            format!("{base}# berth network\n{}{link_hosts}", att.hosts),
        )?;
        if let Some(r) = &att.resolv {
            std::fs::write(dir.join("resolv.conf"), r)?;
        }
        Ok(())
    })();
    if let Err(err) = written {
        release_network(d, &c.id).await;
        return Err(ApiError::internal(format!("writing /etc files: {err}")));
    }
    let settings = att.settings.clone();
    if let Err(err) = d.containers.update(e, |c| c.network_settings = settings) {
        release_network(d, &c.id).await;
        return Err(err);
    }
    Ok(Some(att.netns))
}

/// Give back a container's netns, addresses and ports (never blocks on the kernel).
async fn release_network(d: &Arc<Daemon>, id: &str) {
    if let Some(nets) = d.networks.clone() {
        let id = id.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = nets.release(&id) {
                tracing::warn!("releasing the network of {id}: {e}");
            }
        })
        .await;
    }
}

/// Follow a running container to its exit, on a blocking thread.
pub fn spawn_watch(d: Arc<Daemon>, e: Arc<Entry>) {
    tokio::task::spawn_blocking(move || {
        // The network goes back before the container shows as exited, so that a start
        // right after (restart) never races this release.
        let watched = d.containers.watch_blocking(
            &e,
            &|id| {
                if let Some(nets) = &d.networks {
                    // one removed as it exits never starts again: its namespace may go later
                    let released = if e.snapshot().auto_remove() {
                        nets.release_gone(id)
                    } else {
                        nets.release(id)
                    };
                    if let Err(err) = released {
                        tracing::warn!("releasing the network of {id}: {err}");
                    }
                }
            },
            &|c| !c.auto_remove() && restart_delay(c).is_some(),
        );
        runtime::trace::mark("d watched exit");
        if let Ok(c) = watched {
            if c.state.oom_killed {
                d.events.container(&c, "oom", &[]);
            }
            let code = c.state.exit_code.to_string();
            d.events.container(&c, "die", &[("exitCode", &code)]);
            if c.auto_remove() {
                // `run --rm`: the attached client gets the run's output first
                e.streams.wait_idle(Duration::from_secs(5));
                if let Err(err) = super::volumes::remove_container(&d, &e, true) {
                    tracing::warn!("auto-remove of {}: {}", c.id, err.message);
                }
                runtime::trace::mark("d removed");
            } else if let (Status::Restarting, Some(delay)) = (c.state.status, restart_delay(&c)) {
                // "restarting" (since the exit was recorded) until the policy's next start,
                // unless stopped meanwhile
                let handle = tokio::runtime::Handle::current();
                handle.spawn(restart_later(d, e, delay));
            }
        }
    });
}

/// Whether the restart policy restarts `c` after this exit, and after how long: Docker's
/// backoff, 100 ms doubling per restart up to a minute, back to 100 ms after a run of 10 s.
fn restart_delay(c: &Container) -> Option<Duration> {
    let policy = &c.host_config["RestartPolicy"];
    let name = policy["Name"].as_str().unwrap_or("");
    let max = policy["MaximumRetryCount"].as_u64().unwrap_or(0);
    let restart = match name {
        "always" | "unless-stopped" => !c.state.manually_stopped,
        "on-failure" => {
            c.state.exit_code != 0
                && !c.state.manually_stopped
                && (max == 0 || u64::from(c.restart_count) < max)
        }
        _ => false,
    };
    if !restart {
        return None;
    }
    let ran = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let long_run = match (ran(&c.state.started_at), ran(&c.state.finished_at)) {
        (Some(a), Some(b)) => (b - a).num_seconds() >= 10,
        _ => false,
    };
    let steps = if long_run { 0 } else { c.restart_count.min(10) };
    Some(Duration::from_millis(100 << steps).min(Duration::from_secs(60)))
}

/// A container that was restarting when the daemon stopped: start it now.
pub fn resume_restart(d: Arc<Daemon>, e: Arc<Entry>) {
    tokio::spawn(restart_later(d, e, Duration::ZERO));
}

/// A restarting container taken out of its backoff by `stop`, `restart` or `rm`: exited.
fn end_restarting(d: &Daemon, e: &Entry) -> Result<bool, ApiError> {
    let c = d.containers.update(e, |c| {
        if c.state.status == Status::Restarting {
            c.state.status = Status::Exited;
        }
    })?;
    Ok(c.state.status == Status::Exited)
}

async fn restart_later(d: Arc<Daemon>, e: Arc<Entry>, delay: Duration) {
    tokio::time::sleep(delay).await;
    let c = e.snapshot();
    if c.removed
        || c.state.removed
        || c.state.manually_stopped
        || c.state.status != Status::Restarting
    {
        return;
    }
    if d.containers.update(&e, |c| c.restart_count += 1).is_err() {
        return;
    }
    if let Err(err) = start_entry(&d, &e).await {
        tracing::warn!("restarting {}: {}", c.id, err.message);
    }
}

pub async fn start(d: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    d.containers
        .update(&e, |c| c.state.manually_stopped = false)?;
    match start_entry(d, &e).await {
        Ok(()) => Ok(status(StatusCode::NO_CONTENT)),
        Err(err) if err.status == StatusCode::NOT_MODIFIED => Ok(status(StatusCode::NOT_MODIFIED)),
        Err(err) => Err(err),
    }
}

pub(crate) fn signal_number(s: &str) -> Result<i32, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid signal: {s}"));
    if s.is_empty() {
        return Ok(9);
    }
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let table = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(bad)
}

/// Freeze (`true`) or thaw a running container's processes (cgroup freezer).
pub fn set_paused(d: &Daemon, e: &Entry, paused: bool) -> Result<(), ApiError> {
    let c = e.snapshot();
    let conflict = |m: String| ApiError::new(StatusCode::CONFLICT, m);
    match (c.state.status, paused) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => {
            return Err(conflict(format!("Container {} is already paused", c.id)))
        }
        (Status::Running, false) => {
            return Err(conflict(format!("Container {} is not paused", c.id)))
        }
        _ => return Err(conflict(format!("Container {} is not running", c.id))),
    }
    let mut rc = runtime::Container::load(&d.containers.runtime_root, &c.id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let done = if paused { rc.pause() } else { rc.resume() };
    done.map_err(|e| ApiError::internal(e.to_string()))?;
    d.containers.update(e, |c| {
        c.state.status = if paused {
            Status::Paused
        } else {
            Status::Running
        };
    })?;
    Ok(())
}

/// At daemon start: a container whose record says it is not running but whose monitor
/// answers — the daemon died after the monitor started it and before it wrote so (an
/// auto-removed container's start is never written). It runs: record that (its pid from the
/// runtime's state, the monitor's from the socket's peer) so that it is watched, stopped and
/// removed like any other, never left behind unseen. One that is created by its record but
/// whose monitor has written an exit status ran and exited while the daemon was away:
/// recorded as exited (and then auto-removed if it was to be).
pub fn adopt_if_running(d: &Daemon, e: &Entry) {
    let c = e.snapshot();
    if c.state.status.is_live() || c.state.status == Status::Restarting || c.removed {
        return;
    }
    let Ok(sock) = crate::monitor::connect(&d.containers.run_dir_of(&c.id)) else {
        if c.state.status == Status::Created {
            if let Some(x) = d.containers.exit_status(&c.id) {
                tracing::info!(
                    "container {} exited ({}) while the daemon was away",
                    c.id,
                    x.code
                );
                let _ = d.containers.update(e, |c| {
                    c.state.status = Status::Exited;
                    c.state.exit_code = x.code;
                    c.state.finished_at = x.finished_at.clone();
                    c.state.oom_killed = x.oom_killed;
                    c.state.exits += 1;
                });
            }
        }
        return;
    };
    let monitor_pid = rustix::net::sockopt::socket_peercred(&sock)
        .map(|cred| cred.pid.as_raw_nonzero().get())
        .unwrap_or(0);
    drop(sock);
    let pid = runtime::Container::load(&d.containers.runtime_root, &c.id)
        .map(|rc| rc.pid())
        .unwrap_or(0);
    tracing::info!(
        "container {} runs (monitor {monitor_pid}) though its record said {}: adopted",
        c.id,
        c.state.status.as_str()
    );
    let _ = d.containers.update(e, |c| {
        c.state.status = Status::Running;
        c.state.pid = pid;
        c.state.monitor_pid = monitor_pid;
        c.state.exit_code = 0;
        c.state.error.clear();
        if c.state.started_at == crate::containers::model::ZERO_TIME {
            c.state.started_at = crate::monitor::now();
        }
    });
}

/// A commit's pause and resume. The record says a commit paused it before the container is
/// frozen, and until it is thawed, so that a daemon that dies in between resumes it at its
/// next start ([`resume_commit_pause`]).
pub fn commit_pause(d: &Daemon, e: &Entry, paused: bool) -> Result<(), ApiError> {
    if paused {
        d.containers.update(e, |c| c.state.commit_paused = true)?;
        let done = set_paused(d, e, true);
        if done.is_err() {
            let _ = d.containers.update(e, |c| c.state.commit_paused = false);
        }
        done
    } else {
        let done = set_paused(d, e, false);
        d.containers.update(e, |c| c.state.commit_paused = false)?;
        done
    }
}

/// At daemon start: thaw a container a commit left paused (or half-paused) when the daemon
/// died.
pub fn resume_commit_pause(d: &Daemon, e: &Entry) {
    let c = e.snapshot();
    if !c.state.commit_paused {
        return;
    }
    match runtime::Container::load(&d.containers.runtime_root, &c.id) {
        Ok(mut rc) => {
            if let Err(err) = rc.resume() {
                tracing::debug!("resuming {} after an interrupted commit: {err}", c.id);
            }
        }
        Err(err) => tracing::warn!("resuming {} after an interrupted commit: {err}", c.id),
    }
    let _ = d.containers.update(e, |c| {
        c.state.commit_paused = false;
        if c.state.status == Status::Paused {
            c.state.status = Status::Running;
        }
    });
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(d: &Arc<Daemon>, name: &str, paused: bool) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let (d2, e2) = (d.clone(), e.clone());
    tokio::task::spawn_blocking(move || set_paused(&d2, &e2, paused))
        .await
        .map_err(blocking_err)??;
    d.events
        .container(&e.snapshot(), if paused { "pause" } else { "unpause" }, &[]);
    Ok(status(StatusCode::NO_CONTENT))
}

/// A frozen process takes no signal until thawed: thaw first (as dockerd does for stop/kill).
fn thaw_for_signal(d: &Daemon, e: &Entry) {
    if e.snapshot().state.status == Status::Paused {
        if let Err(err) = set_paused(d, e, false) {
            tracing::warn!("unpausing before a signal: {}", err.message);
        }
    }
}

fn send_signal(c: &Container, sig: i32) -> Result<(), ApiError> {
    let pid = rustix::process::Pid::from_raw(c.state.pid)
        .ok_or_else(|| ApiError::internal("container has no pid"))?;
    let sig = rustix::process::Signal::from_named_raw(sig)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {sig}")))?;
    rustix::process::kill_process(pid, sig)
        .map_err(|e| ApiError::internal(format!("signalling the container: {e}")))
}

pub async fn kill(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    thaw_for_signal(d, &e);
    let c = e.snapshot();
    let sig = signal_number(q.get("signal").unwrap_or(""))?;
    if c.state.status == Status::Restarting {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            ),
        ));
    }
    if !c.state.status.is_running() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Cannot kill container: {name}: Container {} is not running",
                c.id
            ),
        ));
    }
    let exits = c.state.exits;
    send_signal(&c, sig)?;
    d.events
        .container(&c, "kill", &[("signal", &sig.to_string())]);
    // As dockerd: a SIGKILL (the default) returns once the container has stopped, so that
    // an inspect or a remove right after sees it stopped; other signals return at once.
    if sig == 9 {
        let stopped = wait_for(&e, |s| s.exits > exits);
        if tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .is_err()
        {
            tracing::warn!("{}: not stopped 10 s after SIGKILL", c.id);
        }
    }
    Ok(status(StatusCode::NO_CONTENT))
}

/// Wait (asynchronously) until `pred` holds for the entry's state.
pub(crate) async fn wait_for(e: &Entry, pred: impl Fn(&RunState) -> bool) -> RunState {
    let mut rx = e.changes.subscribe();
    loop {
        {
            let s = rx.borrow_and_update();
            if pred(&s) {
                return s.clone();
            }
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

/// SIGTERM (or the stop signal), then SIGKILL after `t` seconds.
pub async fn stop_entry(e: &Arc<Entry>, t: Option<u64>) -> Result<bool, ApiError> {
    let c = e.snapshot();
    if !c.state.status.is_live() {
        return Ok(false);
    }
    let stop_sig = signal_number(c.config["StopSignal"].as_str().unwrap_or("TERM")).unwrap_or(15);
    let t = t.or_else(|| c.config["StopTimeout"].as_u64()).unwrap_or(10);
    let exits = c.state.exits;
    let _ = send_signal(&c, stop_sig);
    let done = tokio::time::timeout(Duration::from_secs(t), wait_for(e, |s| s.exits > exits)).await;
    if done.is_err() {
        let c = e.snapshot();
        if c.state.status.is_live() {
            let _ = send_signal(&c, 9);
        }
        wait_for(e, |s| s.exits > exits).await;
    }
    Ok(true)
}

pub async fn stop(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    d.containers
        .update(&e, |c| c.state.manually_stopped = true)?;
    thaw_for_signal(d, &e);
    if e.snapshot().state.status == Status::Restarting && end_restarting(d, &e)? {
        d.events.container(&e.snapshot(), "stop", &[]);
        return Ok(status(StatusCode::NO_CONTENT));
    }
    let t = q.get("t").and_then(|t| t.parse().ok());
    Ok(status(if stop_entry(&e, t).await? {
        d.events.container(&e.snapshot(), "stop", &[]);
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

pub async fn restart(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    d.containers
        .update(&e, |c| c.state.manually_stopped = true)?;
    thaw_for_signal(d, &e);
    end_restarting(d, &e)?;
    let t = q.get("t").and_then(|t| t.parse().ok());
    if stop_entry(&e, t).await? {
        d.events.container(&e.snapshot(), "stop", &[]);
    }
    d.containers
        .update(&e, |c| c.state.manually_stopped = false)?;
    start_entry(d, &e).await?;
    d.events.container(&e.snapshot(), "restart", &[]);
    Ok(status(StatusCode::NO_CONTENT))
}

pub async fn remove(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    if c.state.status.is_running() && !q.flag("force") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("You cannot remove a {} container {}. Stop the container before attempting removal or force remove", c.state.status.as_str(), c.id),
        ));
    }
    // no restart policy may start it again while it goes
    d.containers
        .update(&e, |c| c.state.manually_stopped = true)?;
    end_restarting(d, &e)?;
    let c = e.snapshot();
    thaw_for_signal(d, &e);
    if c.state.status.is_live() {
        if !q.flag("force") {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("You cannot remove a running container {}. Stop the container before attempting removal or force remove", c.id),
            ));
        }
        let exits = c.state.exits;
        let _ = send_signal(&c, 9);
        wait_for(&e, |s| s.exits > exits).await;
    }
    super::volumes::remove_container_async(d, &e, q.flag("v")).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/LINKER/ALIAS?link=1`: forget a link (the containers stay).
pub async fn remove_link(d: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let name = name.trim_start_matches('/');
    let Some((linker, alias)) = name.rsplit_once('/') else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict, cannot remove the default link name of the container",
        ));
    };
    let e = d.containers.get(linker).map_err(|_| {
        ApiError::not_found(format!("Cannot get parent /{linker} for link /{name}"))
    })?;
    if !e.snapshot().links.iter().any(|l| l.alias == alias) {
        return Err(ApiError::not_found(format!("Could not find link /{name}")));
    }
    d.containers.update(&e, |c| {
        c.links.retain(|l| l.alias != alias);
        let left: Vec<String> = c
            .links
            .iter()
            .map(|l| format!("{}:{}", l.name, l.alias))
            .collect();
        c.host_config["Links"] = if left.is_empty() {
            Value::Null
        } else {
            json!(left)
        };
    })?;
    Ok(status(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`: headers now, the
/// exit code when the condition holds (also after an auto-remove).
pub async fn wait(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let cond = q.get("condition").unwrap_or("not-running").to_owned();
    if !matches!(cond.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad_request(format!(
            "invalid condition: {cond:?}"
        )));
    }
    let exits = e.snapshot().state.exits;
    let (w, reply) = channel_body("application/json");
    tokio::spawn(async move {
        let s = match cond.as_str() {
            "next-exit" => wait_for(&e, |s| s.exits > exits).await,
            // until the record is gone (auto-remove or rm); its last state keeps the code
            "removed" => wait_for(&e, |s| s.removed).await,
            // as dockerd: an exit ends the wait also when the restart policy makes it
            // "restarting" (which counts as running) at once
            _ => wait_for(&e, |s| !s.status.is_running() || s.exits > exits).await,
        };
        // A container that never ran reports its start error through start, not here.
        let err = if s.error.is_empty() || s.exits == 0 {
            Value::Null
        } else {
            json!({"Message": s.error})
        };
        let body = json!({"StatusCode": s.exit_code, "Error": err});
        let _ = w.json_line_async(&body).await;
    });
    Ok(reply)
}

fn status_text(c: &Container) -> String {
    let since = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
            .unwrap_or(0)
    };
    match c.state.status {
        Status::Running => format!("Up {}", human_duration(since(&c.state.started_at))),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(&c.state.started_at))),
        Status::Exited if c.state.finished_at != ZERO_TIME => {
            format!(
                "Exited ({}) {} ago",
                c.state.exit_code,
                human_duration(since(&c.state.finished_at))
            )
        }
        Status::Exited => format!("Exited ({})", c.state.exit_code),
        Status::Created => "Created".into(),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human_duration(since(&c.state.finished_at))
        ),
        other => other.as_str().to_owned(),
    }
}

/// go-units HumanDuration (as the daemon formats `Status`).
fn human_duration(s: i64) -> String {
    match s {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn command_line(c: &Container) -> String {
    std::iter::once(c.path.as_str())
        .chain(c.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn list(d: &Arc<Daemon>, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let all = q.flag("all");
    let mut cs: Vec<Container> = d
        .containers
        .all()
        .iter()
        .map(|e| e.snapshot())
        .filter(|c| !c.removed)
        .collect();
    cs.sort_by(|a, b| b.created.cmp(&a.created));
    // As dockerd: a container a legacy `--link` points at is also named
    // `/<linking container>/<alias>`.
    let mut linked: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for l in &cs {
        for link in &l.links {
            linked
                .entry(link.container_id.as_str())
                .or_default()
                .push(format!("/{}/{}", l.name, link.alias));
        }
    }
    let mut out = Vec::new();
    for c in &cs {
        if !all && !c.state.status.is_running() && !filters.contains_key("status") {
            continue;
        }
        if !matches_filters(d, c, &filters)? {
            continue;
        }
        let created = chrono::DateTime::parse_from_rfc3339(&c.created)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let mut names = vec![format!("/{}", c.name)];
        names.extend(linked.get(c.id.as_str()).into_iter().flatten().cloned());
        out.push(json!({
            "Id": c.id, "Names": names, "Image": c.image, "ImageID": c.image_id,
            "Command": command_line(c), "Created": created, "Ports": crate::network::ps_ports(&c.network_settings), "Labels": c.config["Labels"].as_object().cloned().unwrap_or_default(),
            "State": c.state.status.as_str(), "Status": status_text(c),
            "HostConfig": {"NetworkMode": c.host_config["NetworkMode"].as_str().unwrap_or("default")},
            "NetworkSettings": {"Networks": c.network_settings.get("Networks").cloned().unwrap_or(json!({}))}, "Mounts": mounts_json(c),
        }));
    }
    if let Some(n) = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|n| *n > 0)
    {
        out.truncate(n as usize);
    }
    Ok(reply_json(StatusCode::OK, &out))
}

fn matches_filters(
    d: &Daemon,
    c: &Container,
    f: &HashMap<String, Vec<String>>,
) -> Result<bool, ApiError> {
    for (k, vals) in f {
        let ok = match k.as_str() {
            "status" => vals.iter().any(|v| v == c.state.status.as_str()),
            "name" => vals
                .iter()
                .any(|v| c.name.contains(v.trim_start_matches('/'))),
            "id" => vals.iter().any(|v| c.id.starts_with(v)),
            "label" => vals.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => c.config["Labels"][k].as_str() == Some(v),
                None => c.config["Labels"].get(l).is_some(),
            }),
            "ancestor" => vals.iter().any(|v| {
                v == &c.image
                    || d.store
                        .resolve(v)
                        .is_ok_and(|r| r.id.to_string() == c.image_id)
            }),
            "exited" => vals.iter().any(|v| {
                v.parse::<i32>().ok() == Some(c.state.exit_code) && c.state.status == Status::Exited
            }),
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn inspect(d: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let dir = d.containers.dir_of(&c.id);
    let s = &c.state;
    let body = json!({
        "Id": c.id, "Created": c.created, "Path": c.path, "Args": c.args,
        "State": {
            "Status": s.status.as_str(), "Running": s.status.is_running(), "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting, "OOMKilled": s.oom_killed, "Dead": s.status == Status::Dead,
            "Pid": s.pid, "ExitCode": s.exit_code, "Error": s.error, "StartedAt": s.started_at, "FinishedAt": s.finished_at,
        },
        "Image": c.image_id,
        "ResolvConfPath": dir.join("resolv.conf"), "HostnamePath": dir.join("hostname"), "HostsPath": dir.join("hosts"),
        "LogPath": d.containers.log_path(&c.id),
        "Name": format!("/{}", c.name), "RestartCount": c.restart_count, "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": null,
        "HostConfig": host_config_json(&d.containers, &c),
        "GraphDriver": {"Name": "overlay2", "Data": {"MergedDir": monitor::rootfs(&d.containers.run_dir_of(&c.id)), "UpperDir": dir.join("upper"), "WorkDir": dir.join("work")}},
        "Mounts": mounts_json(&c),
        "Config": c.config,
        "NetworkSettings": if c.network_settings.is_object() { c.network_settings.clone() } else { unstarted_network_settings(&c) },
    });
    Ok(reply_json(StatusCode::OK, &body))
}

/// Entries of the json-file log from byte `from`: (stream, time, bytes).
pub(crate) fn read_log(path: &std::path::Path, from: u64) -> (Vec<crate::logfile::Entry>, u64) {
    crate::logfile::read_from(path, from)
}

pub async fn logs(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let (want_out, want_err) = (q.flag("stdout"), q.flag("stderr"));
    if !want_out && !want_err {
        return Err(ApiError::bad_request("You must choose at least one stream"));
    }
    let follow = q.flag("follow");
    let timestamps = q.flag("timestamps");
    let tail: Option<usize> = q.get("tail").and_then(|t| t.parse().ok());
    // UNIX seconds, as the docker CLI sends them (`1700000000.123456789`); 0 or empty: none
    let bound = |k: &str| -> Result<Option<f64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .map(|t| (t > 0.0).then_some(t))
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let (since, until) = (bound("since")?, bound("until")?);
    let in_window = move |time: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(time)
            .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
            .unwrap_or(0.0);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    if crate::logfile::LogOpts::from_host_config(&c.host_config).is_ok_and(|o| o.none) {
        return Err(ApiError::bad_request(
            "configured logging driver does not support reading",
        ));
    }
    let path = d.containers.log_path(&c.id);
    // With a TTY the output is one raw stream, as Docker sends it.
    let raw = c.tty();
    let (mut w, mut reply) = channel_body("application/vnd.docker.raw-stream");
    *reply.status_mut() = StatusCode::OK;
    // opened before the reply: a removal that comes next (docker-py's `run` removes the
    // container, then reads its follow stream) cannot take what it holds away
    let mut follower = crate::logfile::Follower::open(&path);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let emit = |w: &mut crate::http::ChannelWriter,
                    entries: Vec<(u8, String, Vec<u8>)>|
         -> bool {
            for (stream, time, data) in entries {
                if (stream == 1 && !want_out) || (stream == 2 && !want_err) || !in_window(&time) {
                    continue;
                }
                let mut payload = Vec::new();
                if timestamps {
                    payload.extend_from_slice(time.as_bytes());
                    payload.push(b' ');
                }
                payload.extend_from_slice(&data);
                let out = if raw {
                    payload
                } else {
                    monitor::frame(stream, &payload)
                };
                if w.write_all(&out).is_err() {
                    return false;
                }
            }
            true
        };
        let mut entries = follower.read_all();
        entries.retain(|(_, time, _)| in_window(time));
        if let Some(n) = tail {
            let skip = entries.len().saturating_sub(n);
            entries.drain(..skip);
        }
        if !emit(&mut w, entries) || !follow {
            return;
        }
        loop {
            // following stops at `until`, as Docker's
            let now = chrono::Utc::now();
            let now = now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9;
            if until.is_some_and(|u| now > u) {
                return;
            }
            let running = e.snapshot().state.status.is_running();
            let more = follower.poll();
            let had = !more.is_empty();
            if !emit(&mut w, more) {
                return;
            }
            if !running && !had {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    Ok(reply)
}

/// `POST /containers/{id}/attach`: hijack the connection, then relay the monitor's stream.
pub async fn attach(
    d: &Arc<Daemon>,
    name: &str,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    // A stopped container may be attached to: the stream begins at its next start
    // (`start -a`). Paused and restarting ones are refused, as by dockerd.
    match c.state.status {
        Status::Paused => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "container {} is paused, unpause the container before attach",
                    c.id
                ),
            ))
        }
        Status::Restarting => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "container {} is restarting, wait until the container is running",
                    c.id
                ),
            ))
        }
        _ => {}
    }
    let keys = crate::detach::from_query(q.get("detachKeys")).map_err(ApiError::bad_request)?;
    let want = AttachRequest {
        replay_from: None,
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        resize: None,
    };
    let upgrade = hyper::upgrade::on(req);
    d.events.container(&c, "attach", &[]);
    let dir = d.containers.run_dir_of(&c.id);
    let log_path = d.containers.log_path(&c.id);
    let start_exits = c.state.exits;
    // As dockerd: a running container's past output only with `logs=1`; one attached to
    // before its start (`docker run`) gets all of this run's.
    let past_output = q.flag("logs") || !c.state.status.is_live();
    let tty = c.tty();
    // held from before the start the client asks next until the stream is sent
    let hold = e.streams.hold();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        // Attach comes before start in `docker run`: wait for this run to begin.
        let s = wait_for(&e, |s| {
            s.status.is_live() || s.exits > start_exits || s.removed
        })
        .await;
        if s.removed {
            let _ = client.shutdown().await;
            return;
        }
        let mut req = want.clone();
        req.replay_from = past_output.then_some(s.log_offset);
        match monitor::attach(&dir, &req).await {
            Ok(mon) => {
                let (mut mr, mut mw) = mon.into_split();
                let (mut cr, mut cw) = tokio::io::split(client);
                let to_client = async {
                    let _ = tokio::io::copy(&mut mr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                let from_client = async {
                    if req.stdin && tty {
                        // As dockerd: a terminal's input is watched for the detach keys,
                        // which end the attachment; its end does not end the input. Nor
                        // does it cut the output on its way (dockerd's does): a terminal
                        // that gave EOF before the program wrote (`script` without input)
                        // still shows what it writes, and the output's end ends it.
                        if crate::detach::copy_until_detach(&mut cr, &mut mw, keys).await {
                            return;
                        }
                        std::future::pending::<()>().await;
                    }
                    if req.stdin {
                        let _ = tokio::io::copy(&mut cr, &mut mw).await;
                        let _ = mw.shutdown().await;
                    }
                    // keep reading nothing: the output side decides when we are done
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    _ = to_client => {}
                    _ = from_client => {}
                }
                drop(hold); // all sent
                if !req.stdin {
                    return;
                }
                // What the client still sends (a terminal's last keys) is read, not left:
                // a socket closed with input unread resets the connection, and the client
                // would see an error after the output.
                let mut sink = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_millis(100), async {
                    while matches!(cr.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            }
            Err(_) => {
                // The container already finished: its output is in the log.
                let (entries, _) = read_log(&log_path, s.log_offset);
                for (stream, _, data) in entries {
                    let wanted = (stream == 1 && req.stdout) || (stream == 2 && req.stderr);
                    let out = if tty {
                        data
                    } else {
                        monitor::frame(stream, &data)
                    };
                    if wanted && client.write_all(&out).await.is_err() {
                        return;
                    }
                }
                let _ = client.shutdown().await;
                let mut sink = [0u8; 1024];
                let _ =
                    tokio::time::timeout(Duration::from_millis(10), client.read(&mut sink)).await;
            }
        }
    });
    Ok(crate::http::upgraded())
}

/// `POST /containers/{id}/resize?h=ROWS&w=COLS`: the monitor holds the pty; ask it.
pub async fn resize(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let (rows, cols) = resize_args(q)?;
    if !c.state.status.is_live() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", c.id),
        ));
    }
    if !c.tty() {
        // Docker accepts and ignores a resize of a container without a terminal.
        return Ok(crate::http::status(StatusCode::OK));
    }
    let dir = d.containers.run_dir_of(&c.id);
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::{BufRead, Write};
        let mut s = monitor::connect(&dir)?;
        let req = AttachRequest {
            resize: Some((rows, cols)),
            ..Default::default()
        };
        writeln!(s, "{}", serde_json::to_string(&req).unwrap_or_default())?;
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_owned())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("resizing the terminal: {e}")))?;
    if !answer.is_empty() {
        return Err(ApiError::internal(format!(
            "resizing the terminal: {answer}"
        )));
    }
    Ok(crate::http::status(StatusCode::OK))
}

/// `h` and `w` of a resize request.
pub fn resize_args(q: &Query) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .unwrap_or("0")
            .parse::<u16>()
            .map_err(|_| ApiError::bad_request(format!("invalid {k} for resize: {:?}", q.get(k))))
    };
    Ok((get("h")?, get("w")?))
}

/// `POST /containers/{id}/rename?name=NEW`.
pub async fn rename(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let new = q.get("name").unwrap_or("");
    if new.is_empty() {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    }
    let old = format!("/{}", e.snapshot().name);
    d.containers.rename(&e, new)?;
    d.events
        .container(&e.snapshot(), "rename", &[("oldName", &old)]);
    Ok(status(StatusCode::NO_CONTENT))
}

/// `GET /containers/{id}/changes`: what the container changed over its image, from its
/// overlay upper directory (Kind 0 modified, 1 added, 2 deleted), as Docker lists them.
pub async fn changes(d: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let upper = d.containers.dir_of(&c.id).join("upper");
    let lowers: Vec<std::path::PathBuf> = match &c.rootfs_layers {
        Some(_) => Vec::new(),
        None => match d.store.resolve(&c.image_id) {
            Ok(rec) => rec
                .chain_ids
                .iter()
                .rev()
                .map(|ch| d.store.layers().diff_dir(ch))
                .collect(),
            Err(_) => Vec::new(),
        },
    };
    // as dockerd: the files berth binds in and the mount points are not the container's
    // changes
    let mut mount_points: Vec<String> = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    mount_points.extend(c.mounts.iter().map(|m| m.destination.clone()));
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        walk_changes(&upper, std::path::Path::new("/"), &lowers, &mut out);
        let path = |v: &Value| v["Path"].as_str().unwrap_or("").to_owned();
        let (dropped, kept): (Vec<Value>, Vec<Value>) = out
            .into_iter()
            .partition(|v| v["Kind"] != 0 && mount_points.contains(&path(v)));
        // a directory shown as changed only for the mount points under it goes too
        let under = |dir: &str, list: &[Value]| {
            list.iter()
                .any(|v| path(v).starts_with(&format!("{}/", dir.trim_end_matches('/'))))
        };
        kept.iter()
            .filter(|v| v["Kind"] != 0 || !under(&path(v), &dropped) || under(&path(v), &kept))
            .cloned()
            .collect::<Vec<_>>()
    })
    .await
    .map_err(blocking_err)?;
    Ok(reply_json(StatusCode::OK, &out))
}

fn walk_changes(
    dir: &std::path::Path,
    rel: &std::path::Path,
    lowers: &[std::path::PathBuf],
    out: &mut Vec<Value>,
) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for n in names {
        let path = rel.join(&n);
        let Ok(md) = std::fs::symlink_metadata(dir.join(&n)) else {
            continue;
        };
        let inner = path.strip_prefix("/").unwrap_or(&path);
        let kind = if md.file_type().is_char_device() && md.rdev() == 0 {
            2
        } else if lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(inner)).is_ok())
        {
            0
        } else {
            1
        };
        out.push(json!({"Path": path.display().to_string(), "Kind": kind}));
        if md.is_dir() {
            walk_changes(&dir.join(&n), &path, lowers, out);
        }
    }
}

/// `GET /containers/{id}/top?ps_args=-ef`: the host's `ps`, cut to the container's processes
/// (those in its init's PID namespace), as dockerd does it.
pub async fn top(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    if !c.state.status.is_live() || c.state.pid <= 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", c.id),
        ));
    }
    let args = q
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .unwrap_or("-ef")
        .to_owned();
    let init = c.state.pid;
    let out = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let want = ns(&init.to_string())
            .ok_or_else(|| ApiError::internal("the container's init is gone"))?;
        let pids: std::collections::HashSet<String> = std::fs::read_dir("/proc")
            .map_err(|e| ApiError::internal(e.to_string()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            .filter(|p| ns(p).as_ref() == Some(&want))
            .collect();
        let ps = std::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
        if !ps.status.success() {
            return Err(ApiError::internal(format!(
                "ps {args}: {}",
                String::from_utf8_lossy(&ps.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&ps.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let pid_col = header
            .iter()
            .position(|h| *h == "PID")
            .ok_or_else(|| ApiError::internal(format!("ps {args} printed no PID column")))?;
        let n = header.len();
        let mut procs = Vec::new();
        for l in lines {
            // the last column (the command) may hold spaces
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < n || !pids.contains(fields[pid_col]) {
                continue;
            }
            let mut row: Vec<String> = fields[..n - 1].iter().map(|s| (*s).to_owned()).collect();
            row.push(fields[n - 1..].join(" "));
            procs.push(row);
        }
        Ok(json!({"Titles": header, "Processes": procs}))
    })
    .await
    .map_err(blocking_err)??;
    Ok(reply_json(StatusCode::OK, &out))
}

/// `HostConfig` as received, with `Links` in Docker's inspect form.
fn host_config_json(containers: &crate::containers::Containers, c: &Container) -> Value {
    let mut hc = c.host_config.clone();
    if !c.links.is_empty() {
        hc["Links"] = crate::links::inspect_form(containers, &c.name, &c.links);
    }
    hc
}

/// `NetworkSettings` of a container that has not run yet: its networks named, without an
/// address (docker-py's `run` reads it right after create).
fn unstarted_network_settings(c: &Container) -> Value {
    let mode = crate::network::mode(&c.host_config);
    let endpoint = |aliases: Value| {
        json!({
            "IPAMConfig": null, "Links": null, "Aliases": aliases,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
        })
    };
    let mut networks = serde_json::Map::new();
    if !c.off_primary || !crate::network::is_bridged(&mode) {
        let aliases = c.host_config.get("NetworkingAliases").cloned();
        networks.insert(mode, endpoint(aliases.unwrap_or(Value::Null)));
    }
    for a in &c.extra_networks {
        networks.insert(a.network.clone(), endpoint(json!(a.aliases)));
    }
    json!({
        "Bridge": "", "SandboxID": "", "Ports": {}, "IPAddress": "", "Gateway": "", "MacAddress": "",
        "Networks": networks,
    })
}

fn mounts_json(c: &Container) -> Value {
    c.mounts.iter().map(|m| m.to_json()).collect()
}

/// `POST /containers/prune`: remove every stopped container.
pub async fn prune(d: &Arc<Daemon>) -> Result<Reply, ApiError> {
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for e in d.containers.all() {
        let c = e.snapshot();
        if c.state.status.is_running() || c.removed {
            continue;
        }
        let upper = d.containers.dir_of(&c.id).join("upper");
        let size = tokio::task::spawn_blocking(move || crate::volumes::tree_size(&upper))
            .await
            .unwrap_or(0);
        if super::volumes::remove_container_async(d, &e, false)
            .await
            .is_ok()
        {
            deleted.push(c.id);
            reclaimed += size;
        }
    }
    Ok(reply_json(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
