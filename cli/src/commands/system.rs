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
}

pub fn daemon(host: Option<&str>, a: DaemonArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let socket =
        crate::connect::socket_path(host.unwrap_or(&format!("unix://{}", crate::DEFAULT_SOCKET)))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let d = engine::Daemon::open(engine::DaemonConfig {
            cgroup_parent: a.cgroup_parent,
            insecure_registries: a.insecure_registries,
            certs_dir: Some(a.certs_dir),
            bridge: a.bridge != "none",
            ..engine::DaemonConfig::new(a.data_root, socket)
        })?;
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
