//! pull, push, login, logout, search: credentials come from the docker CLI's config.json and
//! travel to the daemon in `X-Registry-Auth`; progress is drawn as bars on a terminal and as
//! plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use engine::credentials::{self, DockerConfig};
use engine::Reference;

use crate::client::{print_json_stream, Client, Payload};
use crate::format::table;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST]
    pub name: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Image to push: NAME[:TAG]
    pub name: String,
    /// Push all tags of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (insecure: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Term to search for; REGISTRY/TERM searches that registry
    pub term: String,
    /// Max number of search results
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Filter output based on conditions provided (stars=N, is-official=true|false)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

const HUB_SERVER: &str = "https://index.docker.io/v1/";

fn config_path() -> Result<std::path::PathBuf> {
    credentials::default_config_path()
        .context("cannot find the credentials file: set HOME or DOCKER_CONFIG")
}

/// `X-Registry-Auth` for `registry` from config.json (none when not logged in).
fn auth_header(registry: &str) -> Vec<(&'static str, String)> {
    let creds = config_path().ok().and_then(|p| {
        match DockerConfig::load(&p).and_then(|c| c.get(registry)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("WARNING: {e}");
                None
            }
        }
    });
    match creds {
        Some(c) => {
            let v = json!({ "username": c.username, "password": c.password, "serveraddress": registry });
            vec![(
                "X-Registry-Auth",
                base64::engine::general_purpose::URL_SAFE.encode(v.to_string()),
            )]
        }
        None => Vec::new(),
    }
}

/// Draws Docker's progress stream: one bar per layer on a terminal, status changes as plain
/// lines otherwise.
struct ProgressView {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    last: HashMap<String, String>,
    stderr: bool,
    quiet: bool,
}

impl ProgressView {
    fn new(stderr: bool, quiet: bool) -> Self {
        let tty = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let multi = (tty && !quiet).then(|| {
            MultiProgress::with_draw_target(if stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            })
        });
        Self {
            multi,
            bars: HashMap::new(),
            last: HashMap::new(),
            stderr,
            quiet,
        }
    }

    fn print(&self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None if self.stderr => eprintln!("{s}"),
            None => println!("{s}"),
        }
    }

    fn line(&mut self, v: &Value) {
        let status = v["status"].as_str().unwrap_or("");
        let id = v["id"].as_str();
        let detail = v.get("progressDetail");
        match (id, detail) {
            (Some(id), Some(d)) => {
                let current = d["current"].as_u64();
                let total = d["total"].as_u64().filter(|t| *t > 0);
                if let Some(m) = &self.multi {
                    let bar = self.bars.entry(id.to_owned()).or_insert_with(|| {
                        let b = m.add(ProgressBar::new(0));
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix}: {msg:<18} {wide_bar} {bytes}/{total_bytes}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        b.set_prefix(id.to_owned());
                        b
                    });
                    bar.set_message(status.to_owned());
                    if let Some(t) = total {
                        bar.set_length(t);
                    }
                    if let Some(c) = current {
                        bar.set_position(c);
                    }
                    if is_final(status) {
                        bar.set_style(
                            ProgressStyle::with_template("{prefix}: {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.finish_with_message(status.to_owned());
                    }
                } else if current.is_none() && self.last.get(id).map(String::as_str) != Some(status)
                {
                    self.last.insert(id.to_owned(), status.to_owned());
                    self.print(&format!("{id}: {status}"));
                }
            }
            (Some(id), None) => self.print(&format!("{id}: {status}")),
            (None, _) if !status.is_empty() => self.print(status),
            _ => {}
        }
    }
}

fn is_final(status: &str) -> bool {
    matches!(
        status,
        "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
    ) || status.starts_with("Mounted from")
}

/// Pull `image` through the daemon, drawing progress (on stderr when `stderr`).
pub async fn pull_image(
    c: &Client,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
    stderr: bool,
) -> Result<Reference> {
    let r = Reference::parse(image)?;
    let (tag, digest) = (r.tag().map(str::to_owned), r.digest().cloned());
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("fromImage", &r.repository());
    q.append_pair(
        "tag",
        &digest
            .map(|d| d.to_string())
            .or(tag)
            .unwrap_or_else(|| "latest".into()),
    );
    if let Some(p) = platform {
        q.append_pair("platform", p);
    }
    let resp = c
        .request_with(
            Method::POST,
            &format!("/images/create?{}", q.finish()),
            Payload::None,
            &auth_header(r.domain()),
        )
        .await?;
    let mut view = ProgressView::new(stderr, quiet);
    let res = print_json_stream(resp, |v| view.line(v)).await;
    if let Some(m) = &view.multi {
        let _ = m.clear();
    }
    res?;
    Ok(r)
}

pub async fn pull(c: &Client, a: PullArgs) -> Result<()> {
    if !a.name.contains(':') && !a.name.contains('@') && !a.quiet {
        println!("Using default tag: latest");
    }
    let r = pull_image(c, &a.name, a.platform.as_deref(), a.quiet, false).await?;
    println!("{r}");
    Ok(())
}

pub async fn push(c: &Client, a: PushArgs) -> Result<()> {
    let r = Reference::parse_named(&a.name)?;
    if a.all_tags && r.tag().is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tag = match (a.all_tags, r.tag()) {
        (true, _) => String::new(),
        (false, Some(t)) => t.to_owned(),
        (false, None) => {
            if !a.quiet {
                println!("Using default tag: latest");
            }
            "latest".to_owned()
        }
    };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("tag", &tag);
    let path = format!("/images/{}/push?{}", r.repository(), q.finish());
    let resp = c
        .request_with(Method::POST, &path, Payload::None, &auth_header(r.domain()))
        .await?;
    let mut view = ProgressView::new(false, a.quiet);
    let res = print_json_stream(resp, |v| view.line(v)).await;
    if let Some(m) = &view.multi {
        let _ = m.clear();
    }
    res?;
    if a.quiet {
        println!("{}", r.familiar());
    }
    Ok(())
}

fn prompt(label: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("Cannot perform an interactive login from a non TTY device");
    }
    eprint!("{label}");
    std::io::stderr().flush()?;
    let fd = rustix::stdio::stdin();
    let saved = rustix::termios::tcgetattr(fd).ok();
    if let (false, Some(t)) = (echo, &saved) {
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let res = stdin.read_line(&mut line);
    if let (false, Some(t)) = (echo, &saved) {
        let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, t);
        eprintln!();
    }
    res?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn login(c: &Client, a: LoginArgs) -> Result<()> {
    let server = a.server.clone().unwrap_or_else(|| HUB_SERVER.to_owned());
    let registry = engine::registry::registry_host(&server);
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match a.username {
        Some(u) if !u.is_empty() => u,
        _ if a.password_stdin => bail!("Must provide --username with --password-stdin"),
        _ => prompt("Username: ", true)?,
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        prompt("Password: ", false)?
    };
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    c.json(
        Method::POST,
        "/auth",
        Payload::Json(
            json!({ "username": username, "password": password, "serveraddress": server }),
        ),
    )
    .await?;
    let path = config_path()?;
    let mut cfg = DockerConfig::load(&path)?;
    cfg.set(
        &registry,
        &engine::registry::Credentials::new(username, password),
    );
    cfg.save()?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(())
}

pub async fn logout(a: LogoutArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| HUB_SERVER.to_owned());
    let registry = engine::registry::registry_host(&server);
    let path = config_path()?;
    if credentials::logout(&path, &registry)? {
        println!(
            "Removing login credentials for {}",
            credentials::config_key(&registry)
        );
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}

pub async fn search(c: &Client, a: SearchArgs) -> Result<()> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("term", &a.term);
    q.append_pair("limit", &a.limit.to_string());
    if !a.filter.is_empty() {
        let mut f: HashMap<String, HashMap<String, bool>> = HashMap::new();
        for kv in &a.filter {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("bad format of filter (expected name=value): {kv}"))?;
            f.entry(k.to_owned())
                .or_default()
                .insert(v.to_owned(), true);
        }
        q.append_pair("filters", &serde_json::to_string(&f)?);
    }
    let registry = engine::registry::search_target(&a.term).0;
    let resp = c
        .request_with(
            Method::GET,
            &format!("/images/search?{}", q.finish()),
            Payload::None,
            &auth_header(&registry),
        )
        .await?;
    let resp = Client::ok(resp).await?;
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).context("daemon sent invalid JSON")?;
    let mut rows = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        let mut desc = r["description"].as_str().unwrap_or("").replace('\n', " ");
        if !a.no_trunc && desc.chars().count() > 45 {
            desc = desc.chars().take(42).collect::<String>() + "...";
        }
        rows.push(vec![
            r["name"].as_str().unwrap_or("").to_owned(),
            desc,
            r["star_count"].as_u64().unwrap_or(0).to_string(),
            if r["is_official"].as_bool().unwrap_or(false) {
                "[OK]".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    print!(
        "{}",
        table(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], &rows)
    );
    Ok(())
}
