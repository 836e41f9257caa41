//! images, image inspect/ls/rm/prune/tag/save/load/import/history, tag, rmi, import, save, load.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use http_body_util::BodyStream;
use hyper::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::client::{print_json_stream, Client, Payload};
use crate::format::{ago, human_size, table};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (dangling=true, reference=PATTERN, label=K[=V])
    #[arg(short, long)]
    filter: Vec<String>,
    /// Output format: "table" or "json"
    #[arg(long, default_value = "table")]
    format: String,
    /// Repository to list (and optionally tag)
    repository: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images
    Inspect { images: Vec<String> },
    /// Remove one or more images
    Rm(RmiArgs),
    /// Remove unused images
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Download an image from a registry
    Pull(super::registry::PullArgs),
    /// Upload an image to a registry
    Push(super::registry::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Show the history of an image
    History { image: String },
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// A tarball (tar, tar.gz, tar.zst) or "-" for standard input
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<std::path::PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_owned();
    }
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

pub async fn list(c: &Client, a: ListArgs) -> Result<()> {
    let mut filters = serde_json::Map::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        filters
            .entry(k.to_owned())
            .or_insert_with(|| Value::Object(Default::default()))[v] = Value::Bool(true);
    }
    if let Some(r) = &a.repository {
        filters
            .entry("reference".to_owned())
            .or_insert_with(|| Value::Object(Default::default()))[r.as_str()] = Value::Bool(true);
    }
    let f = Value::Object(filters).to_string();
    let all = if a.all { "1" } else { "0" };
    let imgs = c
        .json(
            Method::GET,
            &format!("/images/json?{}", query(&[("all", all), ("filters", &f)])),
            Payload::None,
        )
        .await?;
    let imgs = imgs.as_array().cloned().unwrap_or_default();
    if a.format == "json" {
        for i in &imgs {
            println!("{i}");
        }
        return Ok(());
    }
    if a.format != "table" {
        bail!("unknown format {:?}: use \"table\" or \"json\"", a.format);
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in &imgs {
        let id = short_id(i["Id"].as_str().unwrap_or(""), a.no_trunc);
        if a.quiet {
            if seen.insert(id.clone()) {
                println!("{id}");
            }
            continue;
        }
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        // As docker: an image known only by digest shows its repository with tag <none>.
        let digest_repo = i["RepoDigests"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|d| d.as_str())
            .and_then(|d| d.split_once('@'))
            .map(|(repo, _)| format!("{repo}:<none>"));
        let tags = if tags.is_empty() {
            vec![digest_repo.unwrap_or_else(|| "<none>:<none>".to_owned())]
        } else {
            tags
        };
        for t in tags {
            let slash = t.rfind('/').map_or(0, |i| i + 1);
            let (repo, tag) = match t[slash..].rfind(':') {
                Some(i) => (&t[..slash + i], &t[slash + i + 1..]),
                None => (t.as_str(), "<none>"),
            };
            rows.push(vec![
                repo.to_owned(),
                tag.to_owned(),
                id.clone(),
                ago(i["Created"].as_i64().unwrap_or(0)),
                human_size(i["Size"].as_u64().unwrap_or(0)),
            ]);
        }
    }
    if !a.quiet {
        print!(
            "{}",
            table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
        );
    }
    Ok(())
}

pub async fn image(c: &Client, cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Ls(a) => list(c, a).await,
        ImageCmd::Inspect { images } => inspect(c, &images).await,
        ImageCmd::Rm(a) => rmi(c, a).await,
        ImageCmd::Prune { all, force } => prune(c, all, force).await,
        ImageCmd::Tag { source, target } => tag(c, &source, &target).await,
        ImageCmd::History { image } => history(c, &image).await,
        ImageCmd::Save(a) => save(c, a).await,
        ImageCmd::Load(a) => load(c, a).await,
        ImageCmd::Import(a) => import(c, a).await,
        ImageCmd::Pull(a) => super::registry::pull(c, a).await,
        ImageCmd::Push(a) => super::registry::push(c, a).await,
    }
}

/// Docker's indentation for inspect output.
pub fn print_pretty(v: &Value) -> Result<()> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    out.push(b'\n');
    std::io::stdout().write_all(&out)?;
    Ok(())
}

async fn inspect(c: &Client, images: &[String]) -> Result<()> {
    if images.is_empty() {
        bail!("\"image inspect\" requires at least 1 argument");
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for i in images {
        match c
            .json(Method::GET, &format!("/images/{i}/json"), Payload::None)
            .await
        {
            Ok(v) => out.push(v),
            Err(e) => failed.push(e.to_string()),
        }
    }
    print_pretty(&Value::Array(out))?;
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// Split `repo[:tag]` as the docker CLI does before calling the tag endpoint.
pub fn split_repo_tag(target: &str) -> (&str, &str) {
    let slash = target.rfind('/').map_or(0, |i| i + 1);
    match target[slash..].rfind(':') {
        Some(i) => (&target[..slash + i], &target[slash + i + 1..]),
        None => (target, ""),
    }
}

pub async fn tag(c: &Client, source: &str, target: &str) -> Result<()> {
    let (repo, tag) = split_repo_tag(target);
    c.json(
        Method::POST,
        &format!(
            "/images/{source}/tag?{}",
            query(&[("repo", repo), ("tag", tag)])
        ),
        Payload::None,
    )
    .await?;
    Ok(())
}

pub async fn rmi(c: &Client, a: RmiArgs) -> Result<()> {
    let mut errors = Vec::new();
    let force = if a.force { "1" } else { "0" };
    for i in &a.images {
        match c
            .json(
                Method::DELETE,
                &format!("/images/{i}?{}", query(&[("force", force)])),
                Payload::None,
            )
            .await
        {
            Ok(v) => print_removed(&v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

fn print_removed(v: &Value) {
    for item in v.as_array().into_iter().flatten() {
        if let Some(t) = item["Untagged"].as_str() {
            println!("Untagged: {t}");
        }
        if let Some(d) = item["Deleted"].as_str() {
            println!("Deleted: {d}");
        }
    }
}

async fn prune(c: &Client, all: bool, force: bool) -> Result<()> {
    if !force {
        let what = if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let filters = if all {
        r#"{"dangling":{"false":true}}"#
    } else {
        r#"{"dangling":{"true":true}}"#
    };
    let v = c
        .json(
            Method::POST,
            &format!("/images/prune?{}", query(&[("filters", filters)])),
            Payload::None,
        )
        .await?;
    if let Some(items) = v["ImagesDeleted"].as_array().filter(|a| !a.is_empty()) {
        println!("Deleted Images:");
        print_removed(&Value::Array(items.clone()));
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(())
}

async fn history(c: &Client, image: &str) -> Result<()> {
    let v = c
        .json(
            Method::GET,
            &format!("/images/{image}/history"),
            Payload::None,
        )
        .await?;
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("");
            vec![
                if id.starts_with("sha256:") {
                    short_id(id, false)
                } else {
                    id.to_owned()
                },
                ago(h["Created"].as_i64().unwrap_or(0)),
                h["CreatedBy"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(45)
                    .collect(),
                human_size(h["Size"].as_u64().unwrap_or(0)),
                h["Comment"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows
        )
    );
    Ok(())
}

async fn open_input(path: &str) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
    if path == "-" {
        if std::io::stdin().is_terminal() {
            bail!("refusing to read an archive from a terminal: pipe one in or give a file");
        }
        return Ok(Box::new(tokio::io::stdin()));
    }
    let f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("open {path}"))?;
    Ok(Box::new(f))
}

pub async fn import(c: &Client, a: ImportArgs) -> Result<()> {
    let body = open_input(&a.file).await?;
    let mut pairs: Vec<(&str, &str)> = vec![("fromSrc", "-")];
    let (repo, tag) = a
        .reference
        .as_deref()
        .map(split_repo_tag)
        .unwrap_or(("", ""));
    if !repo.is_empty() {
        pairs.push(("repo", repo));
        pairs.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        pairs.push(("message", m));
    }
    for ch in &a.change {
        pairs.push(("changes", ch));
    }
    let resp = c
        .request(
            Method::POST,
            &format!("/images/create?{}", query(&pairs)),
            Payload::Reader(body, "application/x-tar"),
        )
        .await?;
    print_json_stream(resp, |v| {
        if let Some(s) = v["status"].as_str() {
            println!("{s}");
        }
    })
    .await
}

pub async fn save(c: &Client, a: SaveArgs) -> Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let names: Vec<(&str, &str)> = a.images.iter().map(|n| ("names", n.as_str())).collect();
    let resp = Client::ok(
        c.request(
            Method::GET,
            &format!("/images/get?{}", query(&names)),
            Payload::None,
        )
        .await?,
    )
    .await?;
    // Write to a temp file and rename, so a failed save never leaves a partial archive under the name.
    let (mut out, tmp): (
        Box<dyn tokio::io::AsyncWrite + Unpin>,
        Option<std::path::PathBuf>,
    ) = match &a.output {
        Some(p) => {
            let tmp = p.with_extension("berth-partial");
            (
                Box::new(
                    tokio::fs::File::create(&tmp)
                        .await
                        .with_context(|| format!("create {}", tmp.display()))?,
                ),
                Some(tmp),
            )
        }
        None => (Box::new(tokio::io::stdout()), None),
    };
    let mut body = BodyStream::new(resp.into_body());
    while let Some(frame) = body.next().await {
        if let Ok(data) = frame
            .context("the daemon stopped sending the archive")?
            .into_data()
        {
            out.write_all(&data).await?;
        }
    }
    out.flush().await?;
    if let (Some(tmp), Some(p)) = (tmp, &a.output) {
        std::fs::rename(&tmp, p).with_context(|| format!("rename to {}", p.display()))?;
    }
    Ok(())
}

pub async fn load(c: &Client, a: LoadArgs) -> Result<()> {
    let body = match &a.input {
        Some(p) => open_input(&p.display().to_string()).await?,
        None => open_input("-").await?,
    };
    let q = if a.quiet { "?quiet=1" } else { "?quiet=0" };
    let resp = c
        .request(
            Method::POST,
            &format!("/images/load{q}"),
            Payload::Reader(body, "application/x-tar"),
        )
        .await?;
    let quiet = a.quiet;
    print_json_stream(resp, |v| {
        if let Some(s) = v["stream"].as_str() {
            if !quiet {
                print!("{s}");
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_repo_and_tag() {
        assert_eq!(split_repo_tag("a/b:c"), ("a/b", "c"));
        assert_eq!(split_repo_tag("127.0.0.1:5000/a"), ("127.0.0.1:5000/a", ""));
        assert_eq!(
            split_repo_tag("127.0.0.1:5000/a:v1"),
            ("127.0.0.1:5000/a", "v1")
        );
        assert_eq!(split_repo_tag("busybox"), ("busybox", ""));
    }
}
