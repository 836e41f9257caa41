//! Resolving `USER` (`name`, `uid`, `name:group`, `uid:gid`) against the container's own
//! /etc/passwd and /etc/group, read without following links out of the rootfs.

use std::path::Path;

fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let flags = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let fd = image_store::unpack::retry_eagain(|| {
        openat2(
            &dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            flags,
        )
    })
    .ok()?;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).ok()?;
    Some(s)
}

/// Returns (uid, gid, additional gids).
pub fn resolve(root: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), String> {
    let user = if user.is_empty() { "root" } else { user };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(root, "etc/passwd").unwrap_or_default();
    let group = read_in_root(root, "etc/group").unwrap_or_default();
    let mut uid_gid: Option<(u32, u32, String)> = None;
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && (f[0] == u || f[2] == u) {
            if let (Ok(a), Ok(b)) = (f[2].parse(), f[3].parse()) {
                uid_gid = Some((a, b, f[0].to_owned()));
                break;
            }
        }
    }
    let (uid, mut gid, name) = match (uid_gid, u.parse::<u32>()) {
        (Some(x), _) => x,
        (None, Ok(n)) => (n, 0, String::new()),
        // as runc: root needs no passwd entry (a scratch image has none)
        (None, Err(_)) if u == "root" => (0, 0, String::new()),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    let extra: Vec<u32> = if name.is_empty() {
        vec![]
    } else {
        group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|&x| x != gid)
            .collect()
    };
    Ok((uid, gid, extra))
}

/// `--group-add` entries (names from the root's /etc/group, or numbers) added to `extra`.
pub fn add_groups(root: &Path, names: &[String], extra: &mut Vec<u32>) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let group = read_in_root(root, "etc/group").unwrap_or_default();
    for n in names {
        let gid = match n.parse::<u32>() {
            Ok(g) => g,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == n)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("Unable to find group {n}: no matching entries in group file")
                })?,
        };
        if !extra.contains(&gid) {
            extra.push(gid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        assert_eq!(resolve(d.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve(d.path(), "app").unwrap(), (1000, 1000, vec![10]));
        assert_eq!(resolve(d.path(), "app:wheel").unwrap(), (1000, 10, vec![]));
        assert_eq!(resolve(d.path(), "4242:7").unwrap(), (4242, 7, vec![]));
        assert!(resolve(d.path(), "nobody")
            .unwrap_err()
            .contains("unable to find user nobody"));
        let mut extra = vec![10];
        add_groups(
            d.path(),
            &["app".into(), "1001".into(), "wheel".into()],
            &mut extra,
        )
        .unwrap();
        assert_eq!(extra, [10, 1000, 1001]);
        assert!(add_groups(d.path(), &["nosuch".into()], &mut extra)
            .unwrap_err()
            .contains("Unable to find group nosuch"));
    }
}
