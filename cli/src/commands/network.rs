//! network create, ls, inspect, rm, prune, connect, disconnect.

use anyhow::{bail, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{Client, Payload};
use crate::format::table;

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network
    Create {
        /// Driver to manage the network (bridge)
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Set metadata on a network
        #[arg(short, long)]
        label: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. name=foo)
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address (e.g., 172.30.100.104)
        #[arg(long)]
        ip: Option<String>,
        /// Add link to another container (NAME[:ALIAS])
        #[arg(long)]
        link: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn network(c: &Client, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            internal,
            label,
            name,
        } => {
            let labels: serde_json::Map<String, Value> = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_owned(), json!(v))
                })
                .collect();
            let mut ipam = json!({"Driver": "default", "Config": []});
            if subnet.is_some() || gateway.is_some() {
                ipam["Config"] = json!([{"Subnet": subnet.unwrap_or_default(), "Gateway": gateway.unwrap_or_default()}]);
            }
            let v = c
                .json(
                    Method::POST,
                    "/networks/create",
                    Payload::Json(json!({
                        "Name": name, "Driver": driver, "Internal": internal, "IPAM": ipam,
                        "Labels": labels, "CheckDuplicate": true,
                    })),
                )
                .await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
        }
        NetworkCmd::Ls { quiet, filter } => {
            let q = if filter.is_empty() {
                String::new()
            } else {
                format!(
                    "?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("filters", &crate::format::filters(&filter)?)
                        .finish()
                )
            };
            let v = c
                .json(Method::GET, &format!("/networks{q}"), Payload::None)
                .await?;
            let mut rows = Vec::new();
            for n in v.as_array().into_iter().flatten() {
                let id: String = n["Id"].as_str().unwrap_or("").chars().take(12).collect();
                if quiet {
                    println!("{id}");
                    continue;
                }
                rows.push(vec![
                    id,
                    n["Name"].as_str().unwrap_or("").to_owned(),
                    n["Driver"].as_str().unwrap_or("").to_owned(),
                    n["Scope"].as_str().unwrap_or("").to_owned(),
                ]);
            }
            if !quiet {
                print!(
                    "{}",
                    table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
                );
            }
        }
        NetworkCmd::Inspect { networks } => {
            let mut out = Vec::new();
            for n in &networks {
                out.push(
                    c.json(Method::GET, &format!("/networks/{n}"), Payload::None)
                        .await?,
                );
            }
            super::images::print_pretty(&Value::Array(out))?;
        }
        NetworkCmd::Rm { networks } => {
            let mut failed = Vec::new();
            for n in &networks {
                match c
                    .json(Method::DELETE, &format!("/networks/{n}"), Payload::None)
                    .await
                {
                    Ok(_) => println!("{n}"),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
        }
        NetworkCmd::Connect {
            alias,
            ip,
            link,
            network,
            container,
        } => {
            let mut ep = json!({"Aliases": alias, "Links": link});
            if let Some(ip) = ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            c.json(
                Method::POST,
                &format!("/networks/{network}/connect"),
                Payload::Json(json!({"Container": container, "EndpointConfig": ep})),
            )
            .await?;
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            c.json(
                Method::POST,
                &format!("/networks/{network}/disconnect"),
                Payload::Json(json!({"Container": container, "Force": force})),
            )
            .await?;
        }
        NetworkCmd::Prune { force: _ } => {
            let v = c
                .json(Method::POST, "/networks/prune", Payload::None)
                .await?;
            let names: Vec<&str> = v["NetworksDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !names.is_empty() {
                println!("Deleted Networks:");
                for n in names {
                    println!("{n}");
                }
            }
        }
    }
    Ok(())
}
