//! The daemon's event log (`GET /events`, `docker events`): what happened to containers,
//! images, volumes and networks, in Docker's message shape. Recent events are kept in a
//! ring so `--since` can replay them; live ones go out through a broadcast channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// How many past events `since` can reach (Docker keeps 256 by default; a little more).
const KEEP: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`.
    pub kind: &'static str,
    pub action: String,
    /// The object's ID (a container's full ID, an image's reference or ID, a volume's name).
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// Docker's JSON for the event (with the legacy `status`/`id`/`from` of containers
    /// and images, which docker-py and compose still read).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        });
        if matches!(self.kind, "container" | "image") {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            if let Some(img) = self.attributes.get("image") {
                v["from"] = json!(img);
            }
        }
        v
    }
}

#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    ring: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(KEEP).0,
            ring: Mutex::new(VecDeque::with_capacity(KEEP)),
        }
    }
}

fn now_nano() -> i64 {
    let now = chrono::Utc::now();
    now.timestamp_nanos_opt().unwrap_or(0)
}

impl Events {
    /// Record and broadcast an event.
    pub fn emit(&self, kind: &'static str, action: &str, id: &str, attrs: &[(&str, &str)]) {
        let e = Event {
            kind,
            action: action.to_owned(),
            id: id.to_owned(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            time_nano: now_nano(),
        };
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            if ring.len() == KEEP {
                ring.pop_front();
            }
            ring.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }

    /// A container event, with the attributes Docker gives them (image, name, labels).
    pub fn container(
        &self,
        c: &crate::containers::Container,
        action: &str,
        extra: &[(&str, &str)],
    ) {
        let mut attrs: Vec<(&str, &str)> = vec![("image", &c.image), ("name", &c.name)];
        let labels: Vec<(String, String)> = c.config["Labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        attrs.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        attrs.extend_from_slice(extra);
        self.emit("container", action, &c.id, &attrs);
    }

    /// Past events from `since` (nanoseconds), and a receiver for what comes next. Taken
    /// under the ring's lock, so nothing falls between the two.
    pub fn subscribe(&self, since: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let past = match since {
            Some(s) => ring.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }
}

/// `filters` of `GET /events`: every key must match one of its values.
#[derive(Debug, Default, Clone)]
pub struct Filter(pub BTreeMap<String, Vec<String>>);

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        self.0.iter().all(|(k, vals)| {
            vals.iter().any(|want| match k.as_str() {
                "type" => e.kind == want,
                "event" | "action" => {
                    // `exec_start` also matches the full `exec_start: sh -c ...`
                    e.action == *want || e.action.split(':').next() == Some(want.as_str())
                }
                "container" | "image" | "volume" | "network" => {
                    let named = e.attributes.get("name").is_some_and(|n| n == want);
                    let image =
                        k == "image" && e.attributes.get("image").is_some_and(|i| i == want);
                    (e.kind == k && (e.id == *want || e.id.starts_with(want.as_str()) || named))
                        || image
                }
                "label" => match want.split_once('=') {
                    Some((lk, lv)) => e.attributes.get(lk).is_some_and(|x| x == lv),
                    None => e.attributes.contains_key(want.as_str()),
                },
                "scope" => want == "local",
                _ => false,
            })
        })
    }
}

/// Docker's time arguments: UNIX seconds with an optional fraction (`1700000000.5`), as the
/// docker CLI sends them after converting durations and dates. To nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &'static str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            time_nano: 5,
        }
    }

    #[test]
    fn filters_like_docker() {
        let e = ev(
            "container",
            "start",
            "abcdef123",
            &[("name", "web"), ("image", "busybox"), ("tier", "front")],
        );
        let f = |pairs: &[(&str, &[&str])]| {
            Filter(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                    .collect(),
            )
        };
        assert!(f(&[]).matches(&e));
        assert!(f(&[("type", &["container"])]).matches(&e));
        assert!(!f(&[("type", &["image"])]).matches(&e));
        assert!(f(&[("event", &["stop", "start"])]).matches(&e));
        assert!(f(&[("container", &["web"])]).matches(&e));
        assert!(f(&[("container", &["abcdef"])]).matches(&e));
        assert!(!f(&[("container", &["db"])]).matches(&e));
        assert!(f(&[("image", &["busybox"])]).matches(&e));
        assert!(f(&[("label", &["tier=front"])]).matches(&e));
        assert!(!f(&[("label", &["tier=back"])]).matches(&e));
        assert!(!f(&[("type", &["container"]), ("event", &["die"])]).matches(&e));
        let x = ev("container", "exec_start: sh -c true", "abc", &[]);
        assert!(f(&[("event", &["exec_start"])]).matches(&x));
    }

    #[test]
    fn ring_and_since() {
        let ev = Events::default();
        ev.emit("volume", "create", "v1", &[("driver", "local")]);
        let (past, mut rx) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        let (none, _) = ev.subscribe(None);
        assert!(none.is_empty());
        ev.emit("volume", "destroy", "v1", &[]);
        assert_eq!(rx.try_recv().unwrap().action, "destroy");
        let j = past[0].to_json();
        assert_eq!(j["Actor"]["Attributes"]["driver"], "local");
        assert!(j.get("status").is_none(), "volumes have no legacy fields");
        for _ in 0..KEEP + 5 {
            ev.emit("image", "tag", "x", &[]);
        }
        assert_eq!(ev.subscribe(Some(0)).0.len(), KEEP);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("12"), Some(12_000_000_000));
        assert_eq!(parse_time("12.5"), Some(12_500_000_000));
        assert_eq!(parse_time("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("1.x"), None);
    }
}
