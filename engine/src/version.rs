//! Versions the daemon reports and accepts.

/// The Engine API version we speak (moby api/docs/v1.41.yaml).
pub const API_VERSION: &str = "1.41";
/// The oldest API version we accept from clients.
pub const MIN_API_VERSION: &str = "1.24";
/// berth's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Compare dotted versions numerically (`1.9` < `1.41`).
pub fn cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a).cmp(&parse(b))
}
