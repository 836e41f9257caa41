//! daemon, version, info, system df/check/info.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::Value;

use crate::client::{Client, Payload};
use crate::format::{human_size, table};

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show berth disk usage
    Df,
    /// Verify every blob digest and every image reference in the store
    Check,
    /// Display system-wide information
    Info,
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Root of persistent state (images, containers)
    #[arg(long, env = "BERTH_DATA_ROOT", default_value = crate::DEFAULT_DATA_ROOT)]
    data_root: PathBuf,
    /// Root of state that a reboot voids (monitors, runtime state, root mounts)
    /// [default: /run/berth/<hash of the data root>, on /dev/shm where /run is no tmpfs]
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Parent cgroup for all containers
    #[arg(long, default_value = "berth")]
    cgroup_parent: String,
    /// Registry (host[:port]) that may be reached over plain HTTP (loopback always may)
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Directory of registry CA certificates: <dir>/<host[:port]>/ca.crt
    #[arg(long, default_value = "/etc/docker/certs.d")]
    certs_dir: PathBuf,
    /// "none": no bridge networks (containers get --network none), as dockerd --bridge=none
    #[arg(long, default_value = "berth0")]
    bridge: String,
    /// Group that owns the unix sockets (root and this group may use them) [default: berth,
    /// created if missing]
    #[arg(short = 'G', long = "group")]
    group: Option<String>,
    /// Allow -H tcp:// without TLS: anyone who can connect controls the host
    #[arg(long)]
    insecure_tcp: bool,
}

pub fn daemon(hosts: &[String], tls: &crate::connect::TlsArgs, a: DaemonArgs) -> Result<()> {
    engine::daemon::one_malloc_arena();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let default = [format!("unix://{}", crate::DEFAULT_SOCKET)];
    let hosts = if hosts.is_empty() {
        &default[..]
    } else {
        hosts
    };
    let hosts = hosts
        .iter()
        .map(|h| engine::listen::parse_host(h, tls.tlsverify))
        .collect::<Result<Vec<_>, _>>()?;
    if tls.any_file() && !tls.tlsverify {
        anyhow::bail!(
            "--tlscacert, --tlscert and --tlskey need --tlsverify: berth verifies every TCP \
             client's certificate"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut config = engine::DaemonConfig {
            cgroup_parent: a.cgroup_parent,
            insecure_registries: a.insecure_registries,
            certs_dir: Some(a.certs_dir),
            bridge: a.bridge != "none",
            hosts,
            tls: tls.tlsverify.then(|| tls.files()),
            insecure_tcp: a.insecure_tcp,
            socket_group: a.group,
            // the exec-root defaults (from the data root) in DaemonConfig::new
            ..engine::DaemonConfig::new(a.data_root, crate::DEFAULT_SOCKET)
        };
        if let Some(r) = a.exec_root {
            config.exec_root = r;
        }
        let d = engine::Daemon::open(config)?;
        d.serve().await?;
        Ok(())
    })
}

pub async fn version(c: &Client) -> Result<()> {
    println!("Client:");
    println!(" Version:           {}", engine::version::VERSION);
    println!(" API version:       {}", engine::version::API_VERSION);
    println!(" OS/Arch:           linux/{}", std::env::consts::ARCH);
    println!();
    let v = c.json(Method::GET, "/version", Payload::None).await?;
    println!("Server: berth");
    println!(" Engine:");
    println!(
        "  Version:          {}",
        v["Version"].as_str().unwrap_or("")
    );
    println!(
        "  API version:      {} (minimum version {})",
        v["ApiVersion"].as_str().unwrap_or(""),
        v["MinAPIVersion"].as_str().unwrap_or("")
    );
    println!(
        "  OS/Arch:          {}/{}",
        v["Os"].as_str().unwrap_or(""),
        v["Arch"].as_str().unwrap_or("")
    );
    println!(
        "  Kernel version:   {}",
        v["KernelVersion"].as_str().unwrap_or("")
    );
    Ok(())
}

pub async fn info(c: &Client) -> Result<()> {
    let v = c.json(Method::GET, "/info", Payload::None).await?;
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Logging Driver: {}", s("LoggingDriver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Live Restore Enabled: {}", s("LiveRestoreEnabled"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        human_size(v["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Name: {}", s("Name"));
    println!(" ID: {}", s("ID"));
    println!(" Berth Root Dir: {}", s("DockerRootDir"));
    Ok(())
}

pub async fn system(c: &Client, cmd: SystemCmd) -> Result<()> {
    match cmd {
        SystemCmd::Info => info(c).await,
        SystemCmd::Df => {
            let v = c.json(Method::GET, "/system/df", Payload::None).await?;
            let images = v["Images"].as_array().cloned().unwrap_or_default();
            let active = images
                .iter()
                .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
                .count();
            let size = v["LayersSize"].as_u64().unwrap_or(0);
            let reclaim: u64 = images
                .iter()
                .filter(|i| i["Containers"].as_i64().unwrap_or(0) == 0)
                .map(|i| i["Size"].as_u64().unwrap_or(0))
                .sum::<u64>()
                .min(size);
            let pct = (reclaim * 100).checked_div(size).unwrap_or(0);
            let rows = vec![
                vec![
                    "Images".into(),
                    images.len().to_string(),
                    active.to_string(),
                    human_size(size),
                    format!("{} ({pct}%)", human_size(reclaim)),
                ],
                vec![
                    "Containers".into(),
                    "0".into(),
                    "0".into(),
                    "0B".into(),
                    "0B".into(),
                ],
                vec![
                    "Local Volumes".into(),
                    "0".into(),
                    "0".into(),
                    "0B".into(),
                    "0B".into(),
                ],
                vec![
                    "Build Cache".into(),
                    "0".into(),
                    "0".into(),
                    "0B".into(),
                    "0B".into(),
                ],
            ];
            print!(
                "{}",
                table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
            );
            Ok(())
        }
        SystemCmd::Check => {
            let v = c
                .json(Method::POST, "/berth/check", Payload::None)
                .await
                .context("system check")?;
            let problems: Vec<String> = v["Problems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            println!(
                "checked {} blobs, {} layers, {} images, {} refs",
                v["Blobs"], v["Layers"], v["Images"], v["Refs"]
            );
            if problems.is_empty() {
                println!("no problems found");
                return Ok(());
            }
            for p in &problems {
                println!("problem: {p}");
            }
            bail!("{} problem(s) found in the store", problems.len())
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp (UNIX time, RFC 3339 date, or a duration such as 10m)
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided (type=, event=, container=, image=, label=)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format: "json" (or '{{json .}}') prints one JSON object a line
    #[arg(long)]
    format: Option<String>,
}

/// A duration as the docker CLI reads them: `90s`, `10m`, `1h30m`, `1.5h`.
fn parse_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut seen = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
        seen = true;
    }
    (seen && num.is_empty()).then_some(total)
}

/// `--since`/`--until` as the Engine API wants them: UNIX seconds with nanoseconds.
pub fn api_time(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let secs: f64 = if let Ok(n) = s.parse::<f64>() {
        n
    } else if let Some(d) = parse_duration(s) {
        now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9 - d
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp()) as f64
    } else {
        bail!("invalid time {s:?}: use UNIX seconds, an RFC 3339 date or a duration such as 10m");
    };
    Ok(format!("{secs:.9}"))
}

/// Docker's line for an event: `TIME TYPE ACTION ID (k=v, ...)`.
fn event_line(v: &Value) -> String {
    let nanos = v["timeNano"].as_i64().unwrap_or(0);
    let time =
        chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default();
    let mut attrs: Vec<String> = v["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    attrs.sort();
    let mut line = format!(
        "{time} {} {} {}",
        v["Type"].as_str().unwrap_or(""),
        v["Action"].as_str().unwrap_or(""),
        v["Actor"]["ID"].as_str().unwrap_or("")
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

pub async fn events(c: &Client, a: EventsArgs) -> Result<()> {
    let now = chrono::Utc::now();
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = &a.since {
        q.append_pair("since", &api_time(s, now)?);
    }
    if let Some(u) = &a.until {
        q.append_pair("until", &api_time(u, now)?);
    }
    q.append_pair("filters", &crate::format::filters(&a.filter)?);
    let json = match a.format.as_deref() {
        None | Some("") => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => bail!("unsupported format {other:?}: use json"),
    };
    let resp = c
        .request(
            Method::GET,
            &format!("/events?{}", q.finish()),
            Payload::None,
        )
        .await?;
    crate::client::print_json_stream(resp, |v| {
        if json {
            println!("{v}");
        } else {
            println!("{}", event_line(v));
        }
    })
    .await
}

#[cfg(test)]
mod events_tests {
    use super::*;

    #[test]
    fn times_like_the_docker_cli() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(api_time("1700000000", now).unwrap(), "1700000000.000000000");
        assert_eq!(api_time("10s", now).unwrap(), "1767225600.000000000");
        assert_eq!(api_time("1m", now).unwrap(), "1767225550.000000000");
        assert_eq!(
            api_time("2026-01-01T00:00:00Z", now).unwrap(),
            "1767225600.000000000"
        );
        assert!(api_time("soon", now).is_err());
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("10"), None);
        let line = event_line(&serde_json::json!({
            "Type": "container", "Action": "start", "timeNano": 1_000_000_000_i64,
            "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "busybox"}},
        }));
        assert_eq!(
            line,
            "1970-01-01T00:00:01.000000000Z container start abc (image=busybox, name=x)"
        );
    }
}
