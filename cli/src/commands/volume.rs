//! volume create, ls, inspect, rm, prune.

use anyhow::{bail, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{Client, Payload};
use crate::format::{human_size, table};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create {
        /// Volume driver name (local)
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(short, long)]
        label: Vec<String>,
        /// Specify volume name (also as the argument)
        #[arg(long = "name")]
        name_flag: Option<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. dangling=true)
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove all unused volumes
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. label=<key>=<value>)
        #[arg(long)]
        filter: Vec<String>,
    },
}

pub async fn volume(c: &Client, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create {
            driver,
            label,
            name_flag,
            name,
        } => {
            if name_flag.is_some() && name.is_some() && name_flag != name {
                bail!("conflicting options: either specify --name or provide positional arg, not both");
            }
            let labels: serde_json::Map<String, Value> = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_owned(), json!(v))
                })
                .collect();
            let v = c
                .json(
                    Method::POST,
                    "/volumes/create",
                    Payload::Json(json!({
                        "Name": name.or(name_flag).unwrap_or_default(),
                        "Driver": driver, "Labels": labels,
                    })),
                )
                .await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
        }
        VolumeCmd::Ls { quiet, filter } => {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("filters", &crate::format::filters(&filter)?)
                .finish();
            let v = c
                .json(Method::GET, &format!("/volumes?{q}"), Payload::None)
                .await?;
            let mut rows = Vec::new();
            for vol in v["Volumes"].as_array().into_iter().flatten() {
                let name = vol["Name"].as_str().unwrap_or("").to_owned();
                if quiet {
                    println!("{name}");
                } else {
                    rows.push(vec![vol["Driver"].as_str().unwrap_or("").to_owned(), name]);
                }
            }
            if !quiet {
                print!("{}", table(&["DRIVER", "VOLUME NAME"], &rows));
            }
        }
        VolumeCmd::Inspect { volumes } => {
            let mut out = Vec::new();
            let mut failed = Vec::new();
            for v in &volumes {
                match c
                    .json(Method::GET, &format!("/volumes/{v}"), Payload::None)
                    .await
                {
                    Ok(j) => out.push(j),
                    Err(e) => failed.push(format!("Error: {e}")),
                }
            }
            super::images::print_pretty(&Value::Array(out))?;
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
        }
        VolumeCmd::Rm { force, volumes } => {
            let mut failed = Vec::new();
            let q = if force { "?force=1" } else { "" };
            for v in &volumes {
                match c
                    .json(Method::DELETE, &format!("/volumes/{v}{q}"), Payload::None)
                    .await
                {
                    Ok(_) => println!("{v}"),
                    Err(e) => failed.push(format!("Error response from daemon: {e}")),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
        }
        VolumeCmd::Prune { force: _, filter } => {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("filters", &crate::format::filters(&filter)?)
                .finish();
            let v = c
                .json(Method::POST, &format!("/volumes/prune?{q}"), Payload::None)
                .await?;
            let names: Vec<&str> = v["VolumesDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !names.is_empty() {
                println!("Deleted Volumes:");
                for n in names {
                    println!("{n}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
        }
    }
    Ok(())
}
