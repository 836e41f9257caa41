use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::context_tar;

/// One tar entry as the tests look at it.
#[derive(Debug)]
struct Entry {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    content: String,
    link: Option<String>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let header = entry.header().clone();
        assert_eq!(header.uid().expect("uid"), 0);
        assert_eq!(header.gid().expect("gid"), 0);
        assert_eq!(header.username_bytes().unwrap_or_default(), b"");
        assert_eq!(header.groupname_bytes().unwrap_or_default(), b"");
        let name = String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8 name");
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).expect("utf-8 link"));
        let mut content = String::new();
        entry.read_to_string(&mut content).expect("content");
        out.push(Entry {
            name,
            kind: header.entry_type(),
            mode: header.mode().expect("mode"),
            mtime: header.mtime().expect("mtime"),
            content,
            link,
        });
    }
    out
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not in {:?}", names(entries)))
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, content).expect("write");
}

fn build(dir: &Path, dockerfile: Option<&Path>) -> (String, Vec<Entry>) {
    let mut out = Vec::new();
    let name = context_tar(dir, dockerfile, &mut out).expect("context tar");
    (name, entries(&out))
}

#[test]
fn sends_the_tree_with_modes_mtimes_and_symlinks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, "src/main.rs", "fn main() {}\n");
    write(root, "run.sh", "#!/bin/sh\n");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).expect("chmod");
    let stamp = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(root.join("src/main.rs"))
        .and_then(|f| f.set_modified(stamp))
        .expect("set mtime");
    symlink("src/main.rs", root.join("link")).expect("symlink");

    let (name, entries) = build(root, None);
    assert_eq!(name, "Dockerfile");
    assert_eq!(
        names(&entries),
        ["Dockerfile", "link", "run.sh", "src/", "src/main.rs"]
    );
    assert_eq!(find(&entries, "run.sh").mode, 0o750);
    assert_eq!(find(&entries, "src/main.rs").mtime, 1_600_000_000);
    assert_eq!(find(&entries, "src/main.rs").content, "fn main() {}\n");
    assert_eq!(find(&entries, "src/").kind, tar::EntryType::Directory);
    let link = find(&entries, "link");
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link.as_deref(), Some("src/main.rs"));
}

#[test]
fn dockerignore_excludes_and_reincludes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(
        root,
        ".dockerignore",
        "# build output\nnode_modules\n/build\n!build/keep.txt\n*.md\n!README*.md\nDockerfile\n.dockerignore\n",
    );
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, "node_modules/a/index.js", "x");
    write(root, "build/out.o", "x");
    write(root, "build/keep.txt", "kept");
    write(root, "CHANGES.md", "x");
    write(root, "README.md", "readme");
    write(root, "README-dev.md", "readme");
    write(root, "docs/guide.md", "nested: `*.md` is top-level only");

    let (name, entries) = build(root, None);
    assert_eq!(name, "Dockerfile");
    // The excluded `build/` has no entry of its own; what was re-included below it does.
    assert_eq!(
        names(&entries),
        [
            ".dockerignore",
            "Dockerfile",
            "README-dev.md",
            "README.md",
            "build/keep.txt",
            "docs/",
            "docs/guide.md",
        ]
    );
    assert_eq!(find(&entries, "build/keep.txt").content, "kept");
}

#[test]
fn dockerfile_under_an_excluded_directory_is_sent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(root, ".dockerignore", "ci\n");
    write(root, "ci/Dockerfile.ci", "FROM scratch\n");
    write(root, "ci/secret", "x");
    let (name, entries) = build(root, Some(&root.join("ci/Dockerfile.ci")));
    assert_eq!(name, "ci/Dockerfile.ci");
    assert_eq!(names(&entries), [".dockerignore", "ci/Dockerfile.ci"]);
}

#[test]
fn lowercase_dockerfile_is_the_fallback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "dockerfile", "FROM scratch\n");
    let (name, _) = build(tmp.path(), None);
    assert_eq!(name, "dockerfile");
}

#[test]
fn outside_dockerfile_travels_under_a_random_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ctx = tmp.path().join("ctx");
    write(&ctx, "app.txt", "app");
    write(
        tmp.path(),
        "elsewhere/Dockerfile",
        "FROM scratch\nCOPY . /\n",
    );

    let (name, entries) = build(&ctx, Some(&tmp.path().join("elsewhere/Dockerfile")));
    let suffix = name.strip_prefix(".dockerfile.").expect("random name");
    assert_eq!(suffix.len(), 12, "{name}");
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{name}"
    );
    assert_eq!(names(&entries), ["app.txt", ".dockerignore", name.as_str()]);
    let dockerfile = find(&entries, &name);
    assert_eq!(dockerfile.content, "FROM scratch\nCOPY . /\n");
    assert_eq!(dockerfile.mode, 0o600);
    // As docker does, `.dockerignore` lists the file so that `COPY .` leaves it out.
    assert_eq!(
        find(&entries, ".dockerignore").content,
        format!(".dockerignore\n{name}\n")
    );

    // An existing `.dockerignore` keeps its place and gets the name appended.
    write(&ctx, ".dockerignore", "*.log");
    let (name, entries) = build(&ctx, Some(&tmp.path().join("elsewhere/Dockerfile")));
    assert_eq!(names(&entries), [".dockerignore", "app.txt", name.as_str()]);
    assert_eq!(
        find(&entries, ".dockerignore").content,
        format!("*.log\n{name}\n")
    );
}

#[test]
fn clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let error = |dir: &Path, dockerfile: Option<&Path>| {
        let err = context_tar(dir, dockerfile, Vec::new()).expect_err("should fail");
        format!("{err:#}")
    };
    let missing = error(&tmp.path().join("nope"), None);
    assert!(
        missing.starts_with("unable to prepare context: path"),
        "{missing}"
    );
    assert!(missing.contains("nope"), "{missing}");

    let no_dockerfile = error(tmp.path(), None);
    assert!(
        no_dockerfile.starts_with("unable to prepare context: cannot read Dockerfile"),
        "{no_dockerfile}"
    );

    write(tmp.path(), "Dockerfile", "FROM scratch\n");
    write(tmp.path(), ".dockerignore", "ok\nsrc/[\n");
    let bad_ignore = error(tmp.path(), None);
    assert!(
        bad_ignore.contains("line 2: invalid pattern \"src/[\""),
        "{bad_ignore}"
    );
}
