//! Output formatting as the docker CLI does it: tables, human sizes, "2 hours ago".

/// Decimal sizes with 3 significant digits: `1.24MB`, `4.1kB`, `0B` (go-units HumanSize).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Go's %.3g: three significant digits, trailing zeros dropped.
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s2 = format!("{v:.digits$}");
    if s2.contains('.') {
        s2 = s2.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s2}{}", units[i])
}

/// go-units HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = (s as f64 / 3600.0).round() as i64;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", h / 24 / 365)
}

pub fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

/// A table like Go's tabwriter(minwidth 10, padding 3) as the docker CLI uses it.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let w = (widths[i] + 3).max(10);
                l.push_str(c);
                l.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// `-f key=value` flags as the Engine API's `filters` JSON: `{"key": {"value": true}}`.
pub fn filters(flags: &[String]) -> anyhow::Result<String> {
    let mut out = serde_json::Map::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("bad format of filter (expected name=value): {f}");
        };
        out.entry(k.to_owned())
            .or_insert_with(|| serde_json::json!({}))[v] = serde_json::json!(true);
    }
    Ok(serde_json::Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_100), "4.1kB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        let t = table(&["A", "LONGER HEADER"], &[vec!["x".into(), "y".into()]]);
        assert_eq!(t, "A         LONGER HEADER\nx         y\n");
    }
}
