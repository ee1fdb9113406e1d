//! The tarball importer: refusals of entries that climb out, symlinks
//! resolved inside the target, stdin and gzip input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use crate::util::*;

/// A header whose name and link name are written raw, so that hostile
/// paths (with `..`) the tar crate would refuse can be expressed.
fn raw_header(name: &str, kind: EntryType, size: u64, link: Option<&str>) -> Header {
    let mut h = Header::new_old();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    {
        let old = h.as_old_mut();
        old.name.fill(0);
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname.fill(0);
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_cksum();
    h
}

fn add_file(b: &mut Builder<impl Write>, name: &str, data: &[u8], mode: u32) {
    let mut h = raw_header(name, EntryType::Regular, data.len() as u64, None);
    h.set_mode(mode);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn add_dir(b: &mut Builder<impl Write>, name: &str) {
    b.append(&raw_header(name, EntryType::Directory, 0, None), std::io::empty()).unwrap();
}

fn add_symlink(b: &mut Builder<impl Write>, name: &str, target: &str) {
    b.append(&raw_header(name, EntryType::Symlink, 0, Some(target)), std::io::empty()).unwrap();
}

fn add_hardlink(b: &mut Builder<impl Write>, name: &str, target: &str) {
    b.append(&raw_header(name, EntryType::Link, 0, Some(target)), std::io::empty()).unwrap();
}

/// Writes a tarball at `path` with the entries `f` adds.
fn make_tar(path: &Path, f: impl FnOnce(&mut Builder<std::fs::File>)) {
    let mut b = Builder::new(std::fs::File::create(path).unwrap());
    f(&mut b);
    b.finish().unwrap();
}

/// Copies every entry of the busybox rootfs tarball into `b`.
fn add_busybox_rootfs(b: &mut Builder<impl Write>) {
    let mut a = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        let mut h = e.header().clone();
        match h.entry_type() {
            EntryType::Symlink | EntryType::Link => {
                let target = e.link_name().unwrap().unwrap().into_owned();
                b.append_link(&mut h, &path, &target).unwrap();
            }
            _ => {
                b.append_data(&mut h, &path, &mut e).unwrap();
            }
        }
    }
}

/// The static busybox binary inside the rootfs tarball.
fn busybox_binary() -> Vec<u8> {
    let mut a = tar::Archive::new(std::fs::File::open(busybox_tar()).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().into_owned();
        if p.ends_with("bin/busybox") && e.header().entry_type() == EntryType::Regular {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("bin/busybox not found in {}", busybox_tar().display());
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every path under `dir` (not following symlinks) whose file name is `name`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name() == name {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}

/// What an import may leave behind, to compare before and after.
#[derive(Debug, PartialEq)]
struct StoreSnapshot {
    images: String,
    layers: Vec<String>,
    layer_links: Vec<String>,
    blobs: Vec<String>,
    tmp: Vec<String>,
}

fn snapshot(env: &Env) -> StoreSnapshot {
    StoreSnapshot {
        images: env.ok(&["images", "-q"]),
        layers: list_dir(&env.root.join("layers")),
        layer_links: list_dir(&env.root.join("layers/l")),
        blobs: list_dir(&env.root.join("blobs/sha256")),
        tmp: list_dir(&env.root.join("tmp")),
    }
}

#[test]
fn entry_climbing_out_is_refused_and_nothing_is_left() {
    let env = Env::new("entry_climbing_out_is_refused_and_nothing_is_left");
    let tar = env.dir.join("escape.tar");
    make_tar(&tar, |b| {
        add_dir(b, "etc/");
        add_file(b, "etc/ok.txt", b"fine\n", 0o644);
        add_file(b, "../../escape", b"escaped\n", 0o644);
        add_file(b, "etc/after.txt", b"after\n", 0o644);
    });
    let before = snapshot(&env);
    let o = env.berth(&["image", "import", tar.to_str().unwrap(), "evil:esc"]);
    assert_ne!(o.code, 0, "{o}");
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("../../escape"), "the error names the entry: {o}");
    assert!(!env.ok(&["image", "ls"]).contains("evil"), "no image listed");
    assert_eq!(snapshot(&env), before, "a refused import leaves nothing behind");
    assert!(list_dir(&env.root.join("tmp")).is_empty());
    assert!(find_named(&env.dir, "escape").is_empty(), "{:?}", find_named(&env.dir, "escape"));
    assert!(find_named(&env.dir, "ok.txt").is_empty(), "half-imported files remain: {:?}", find_named(&env.dir, "ok.txt"));

    // The same archive through stdin is refused the same way.
    let bytes = std::fs::read(&tar).unwrap();
    let o = env.berth_stdin(&["image", "import", "-", "evil:stdin"], &bytes);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("../../escape"), "{o}");
    assert_eq!(snapshot(&env), before);
}

#[test]
fn absolute_path_entries_stay_inside() {
    let env = Env::new("absolute_path_entries_stay_inside");
    let name = format!("berth-it-abs-{}", std::process::id());
    let tar = env.dir.join("abs.tar");
    make_tar(&tar, |b| {
        add_busybox_rootfs(b);
        add_file(b, &format!("/tmp/{name}"), b"abs\n", 0o644);
    });
    let o = env.berth(&["image", "import", tar.to_str().unwrap(), "abs"]);
    if o.ok() {
        let r = env.berth(&["run", "--rm", "abs", "cat", &format!("/tmp/{name}")]);
        assert_eq!(r.out(), "abs", "{r}");
    } else {
        assert_eq!(o.code, 125, "{o}");
    }
    assert!(!Path::new("/tmp").join(&name).exists(), "an absolute entry was written on the host");
}

#[test]
fn hardlink_to_outside_is_refused() {
    let env = Env::new("hardlink_to_outside_is_refused");
    // Something real to point at, next to the store.
    std::fs::write(env.root.join("outside"), "secret\n").unwrap();
    std::fs::write(env.dir.join("outside"), "secret\n").unwrap();
    let tar = env.dir.join("hl.tar");
    make_tar(&tar, |b| {
        add_file(b, "ok.txt", b"fine\n", 0o644);
        add_hardlink(b, "link", "../outside");
    });
    let before = snapshot(&env);
    let o = env.berth(&["image", "import", tar.to_str().unwrap(), "evil:hl"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("../outside"), "the error names the link target: {o}");
    assert!(o.stderr.contains("link"), "{o}");
    assert_eq!(snapshot(&env), before, "a refused import leaves nothing behind");
    assert!(!env.ok(&["image", "ls"]).contains("evil"));
    // The files pointed at are untouched and not linked to.
    for p in [env.root.join("outside"), env.dir.join("outside")] {
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret\n");
        let nlink = std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(&p).unwrap());
        assert_eq!(nlink, 1, "{} got a hard link", p.display());
    }
}

#[test]
fn hardlink_inside_the_archive_works() {
    let env = Env::new("hardlink_inside_the_archive_works");
    let tar = env.dir.join("hl-ok.tar");
    make_tar(&tar, |b| {
        add_busybox_rootfs(b);
        add_dir(b, "data/");
        add_file(b, "data/a", b"content-a\n", 0o644);
        add_hardlink(b, "data/b", "data/a");
    });
    let o = env.berth(&["image", "import", tar.to_str().unwrap(), "hlok"]);
    assert!(o.ok(), "{o}");
    let r = env.berth(&["run", "--rm", "hlok", "cat", "/data/a", "/data/b"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "content-a\ncontent-a\n"), "{r}");
}

#[test]
fn absolute_symlink_bin_sh_works() {
    let env = Env::bare("absolute_symlink_bin_sh_works");
    let bb = busybox_binary();
    let tar = env.dir.join("mini.tar");
    make_tar(&tar, |b| {
        add_dir(b, "bin/");
        add_file(b, "bin/busybox", &bb, 0o755);
        add_symlink(b, "bin/sh", "/bin/busybox");
        add_symlink(b, "bin/readlink", "/bin/busybox");
        add_dir(b, "etc/");
        add_dir(b, "tmp/");
    });
    let o = env.berth(&["image", "import", "-c", r#"CMD ["sh"]"#, tar.to_str().unwrap(), "mini:1"]);
    assert!(o.ok(), "{o}");
    let r = env.berth(&["run", "--rm", "mini:1", "/bin/sh", "-c", "echo abs-ok; readlink /bin/sh"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "abs-ok\n/bin/busybox\n"), "{r}");
    // The symlink is stored as it was in the layer.
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", "mini:1"])).unwrap();
    let chain = v[0]["RootFS"]["Layers"][0].as_str().unwrap().to_string();
    let link = env.root.join("layers").join(chain.trim_start_matches("sha256:")).join("diff/bin/sh");
    assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("/bin/busybox"));
    // The default command (CMD sh) runs through the symlink as well.
    let r = env.berth_stdin(&["run", "--rm", "-i", "mini:1"], b"echo from-stdin\n");
    assert_eq!((r.code, r.out()), (0, "from-stdin"), "{r}");
}

#[test]
fn writes_through_symlinks_stay_inside() {
    let env = Env::new("writes_through_symlinks_stay_inside");
    let tag = std::process::id();
    let pwn = format!("berth-it-pwn-{tag}");
    let up = format!("berth-it-up-{tag}");
    let tar = env.dir.join("sym.tar");
    make_tar(&tar, |b| {
        add_busybox_rootfs(b);
        add_symlink(b, "evil", "/etc");
        add_file(b, &format!("evil/{pwn}"), b"pwn\n", 0o644);
        add_symlink(b, "up", "../../../../../../..");
        add_file(b, &format!("up/{up}"), b"up\n", 0o644);
    });
    let o = env.berth(&["image", "import", tar.to_str().unwrap(), "sym"]);
    assert!(o.ok(), "a write through a symlink is resolved inside the target, not refused: {o}");
    assert!(!Path::new("/etc").join(&pwn).exists(), "/etc/{pwn} was written on the host!");
    for d in [Path::new("/"), Path::new("/tmp"), env.dir.as_path(), env.root.as_path()] {
        assert!(!d.join(&up).exists(), "{} was written outside the layer", d.join(&up).display());
    }
    let r = env.berth(&["run", "--rm", "sym", "sh", "-c", &format!("cat /etc/{pwn} /{up}; readlink /evil")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "pwn\nup\n/etc\n"), "{r}");
}

#[test]
fn import_from_stdin() {
    let env = Env::bare("import_from_stdin");
    let bytes = std::fs::read(busybox_tar()).unwrap();
    let o = env.berth_stdin(&["image", "import", "-c", r#"CMD ["sh"]"#, "-", "bbstdin:1"], &bytes);
    assert!(o.ok(), "{o}");
    assert!(o.out().starts_with("sha256:"), "{o}");
    assert!(env.ok(&["images"]).lines().any(|l| l.starts_with("bbstdin ") && l.contains(" 1 ")));
    let r = env.berth(&["run", "--rm", "bbstdin:1", "echo", "stdin-ok"]);
    assert_eq!((r.code, r.out()), (0, "stdin-ok"), "{r}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "bbstdin:1"]).replace(' ', ""), r#"["sh"]"#);
}

#[test]
fn import_gzip_tarball() {
    let env = Env::bare("import_gzip_tarball");
    let gz = env.dir.join("busybox.tar.gz");
    {
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(&std::fs::read(busybox_tar()).unwrap()).unwrap();
        e.finish().unwrap();
    }
    let o = env.berth(&["image", "import", gz.to_str().unwrap(), "bbgz"]);
    assert!(o.ok(), "{o}");
    let r = env.berth(&["run", "--rm", "bbgz", "sh", "-c", "echo gz-ok; ls /bin | grep -c ."]);
    assert!(r.ok(), "{r}");
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("gz-ok"));
    assert!(lines.next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) > 100, "busybox applets present: {r}");
    // Through stdin, compressed.
    let o = env.berth_stdin(&["image", "import", "-", "bbgz2"], &std::fs::read(&gz).unwrap());
    assert!(o.ok(), "{o}");
    let r = env.berth(&["run", "--rm", "bbgz2", "echo", "gz2-ok"]);
    assert_eq!(r.out(), "gz2-ok", "{r}");
}

#[test]
fn garbage_input_is_refused_cleanly() {
    let env = Env::new("garbage_input_is_refused_cleanly");
    let f = env.dir.join("junk.tar");
    std::fs::write(&f, vec![0x42u8; 3000]).unwrap();
    let before = snapshot(&env);
    let o = env.berth(&["image", "import", f.to_str().unwrap(), "junk"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(!o.stderr.is_empty());
    assert_eq!(snapshot(&env), before);
    let o = env.berth(&["image", "import", env.dir.join("missing.tar").to_str().unwrap(), "missing"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("missing.tar"), "{o}");
}
