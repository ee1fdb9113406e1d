//! `berth save` / `berth load`: docker-archive and OCI layout tarballs,
//! round trips, shared layers, tampering, hostile archives, and interop with
//! skopeo in both directions.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

use crate::util::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn image_id(env: &Env, name: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Id}}", name])
}

fn manifest_digest(env: &Env, name: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Metadata.Manifest}}", name])
}

/// Every entry of a (small) tarball: name, type, content.
fn entries(path: &Path) -> Vec<(String, EntryType, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut v = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        v.push((name, kind, data));
    }
    v
}

fn entry<'a>(all: &'a [(String, EntryType, Vec<u8>)], name: &str) -> &'a [u8] {
    &all.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("no entry {name} in the archive")).2
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Nothing may stay under root/tmp after a load, whatever happened.
fn assert_tmp_clean(env: &Env) {
    let left = list_dir(&env.root.join("tmp"));
    assert!(left.is_empty(), "left under {}: {left:?}", env.root.join("tmp").display());
}

/// Unpacked layer directories of a root (`layers/l` holds only short links).
fn layer_dirs(env: &Env) -> Vec<String> {
    list_dir(&env.root.join("layers")).into_iter().filter(|n| n != "l").collect()
}

fn skopeo(args: &[&str]) -> Out {
    let child = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running skopeo (apt-get install skopeo)");
    collect(child, Duration::from_secs(120))
}

fn skopeo_ok(args: &[&str]) -> String {
    let o = skopeo(args);
    assert!(o.ok(), "`skopeo {}` failed: {o}", args.join(" "));
    o.stdout
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A raw ustar header whose name (and link name) is written as given, so
/// that names the tar crate would refuse (`..`, absolute) can be made.
fn raw(name: &str, kind: EntryType, size: u64, link: &str) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    let u = h.as_ustar_mut().unwrap();
    u.name.fill(0);
    u.name[..name.len()].copy_from_slice(name.as_bytes());
    u.linkname.fill(0);
    u.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    h
}

fn hostile(path: &Path, f: impl FnOnce(&mut Builder<std::fs::File>)) {
    let mut b = Builder::new(std::fs::File::create(path).unwrap());
    f(&mut b);
    b.finish().unwrap();
}

fn add(b: &mut Builder<std::fs::File>, name: &str, data: &[u8]) {
    b.append(&raw(name, EntryType::Regular, data.len() as u64, ""), data).unwrap();
}

#[test]
fn save_rmi_load_run_keeps_the_image_id() {
    let env = Env::new("arch-roundtrip");
    let id = image_id(&env, "busybox");
    let manifest = manifest_digest(&env, "busybox");
    let file = env.dir.join("bb.tar");
    env.ok(&["save", "-o", s(&file), "busybox"]);

    // The docker-archive layout.
    let all = entries(&file);
    let m = json(entry(&all, "manifest.json"));
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    let hex = id.trim_start_matches("sha256:");
    assert_eq!(m[0]["Config"], format!("{hex}.json"));
    let config = json(entry(&all, &format!("{hex}.json")));
    assert_eq!(sha256(entry(&all, &format!("{hex}.json"))), id, "the config is written byte for byte");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = m[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (l, d) in layers.iter().zip(diff_ids) {
        let d = d.as_str().unwrap();
        let dir = d.trim_start_matches("sha256:");
        assert_eq!(l.as_str().unwrap(), format!("{dir}/layer.tar"));
        assert_eq!(sha256(entry(&all, &format!("{dir}/layer.tar"))), d, "layer.tar is the uncompressed layer");
        assert_eq!(entry(&all, &format!("{dir}/VERSION")), b"1.0");
        json(entry(&all, &format!("{dir}/json")));
    }
    let repos = json(entry(&all, "repositories"));
    let top = diff_ids.last().unwrap().as_str().unwrap().trim_start_matches("sha256:");
    assert_eq!(repos["busybox"]["latest"], top);

    env.ok(&["rmi", "busybox"]);
    assert!(env.ok(&["images", "-q"]).is_empty());
    let o = env.ok(&["load", "-i", s(&file)]);
    assert_eq!(o, "Loaded image: busybox:latest");
    assert_eq!(image_id(&env, "busybox"), id, "same image id after the round trip");
    assert_eq!(manifest_digest(&env, "busybox"), manifest, "berth's own manifest is rebuilt identically");
    assert_eq!(env.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    assert_tmp_clean(&env);

    // Loading an image that is already there only (re)tags it, quietly
    // with -q, and adds no blob.
    let blobs = list_dir(&env.root.join("blobs/sha256"));
    assert_eq!(env.ok(&["load", "-q", "-i", s(&file)]), "");
    assert_eq!(list_dir(&env.root.join("blobs/sha256")), blobs);
    assert_eq!(image_id(&env, "busybox"), id);
    assert_tmp_clean(&env);
}

#[test]
fn shared_layer_is_written_once_and_tags_are_kept() {
    let env = Env::new("arch-shared");
    env.ok(&["tag", "busybox", "bb:two"]);
    // The same root filesystem with another config: a second image that
    // shares the layer.
    env.ok(&["image", "import", "-c", r#"CMD ["echo", "other"]"#, s(busybox_tar()), "other:1"]);
    let bb = image_id(&env, "busybox");
    let other = image_id(&env, "other:1");
    assert_ne!(bb, other);
    let file = env.dir.join("three.tar");
    env.ok(&["save", "-o", s(&file), "busybox", "bb:two", "other:1"]);

    let all = entries(&file);
    let layer_tars: Vec<&String> = all.iter().map(|(n, _, _)| n).filter(|n| n.ends_with("layer.tar")).collect();
    assert_eq!(layer_tars.len(), 1, "the shared layer is written once: {layer_tars:?}");
    let names: Vec<&String> = all.iter().map(|(n, _, _)| n).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".json") && !n.contains('/') && **n != "manifest.json").count(), 2, "{names:?}");
    let m = json(entry(&all, "manifest.json"));
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 2);
    let mut tags0: Vec<String> = m[0]["RepoTags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    tags0.sort();
    assert_eq!(tags0, ["bb:two", "busybox:latest"]);
    assert_eq!(m[1]["RepoTags"], serde_json::json!(["other:1"]));
    assert_eq!(m[0]["Layers"], m[1]["Layers"]);

    // By id: all of its tags.
    let by_id = env.dir.join("byid.tar");
    env.ok(&["save", "-o", s(&by_id), &bb[7..19]]);
    let m = json(entry(&entries(&by_id), "manifest.json"));
    assert_eq!(m[0]["RepoTags"].as_array().unwrap().len(), 2, "{m}");

    // Into an empty store: three tags, two images, one layer.
    let fresh = Env::bare("arch-shared-load");
    let o = fresh.ok(&["load", "-i", s(&file)]);
    let mut lines: Vec<&str> = o.lines().collect();
    lines.sort();
    assert_eq!(lines, ["Loaded image: bb:two", "Loaded image: busybox:latest", "Loaded image: other:1"]);
    assert_eq!(image_id(&fresh, "busybox"), bb);
    assert_eq!(image_id(&fresh, "bb:two"), bb);
    assert_eq!(image_id(&fresh, "other:1"), other);
    assert_eq!(layer_dirs(&fresh).len(), 1, "one unpacked layer: {:?}", layer_dirs(&fresh));
    assert_eq!(fresh.ok(&["run", "--rm", "other:1"]), "other");
    assert_tmp_clean(&fresh);
}

/// Imports a compressed root filesystem (`data`, written as `file_name`)
/// as `tag` and saves it docker-style; the saved layer must be a plain tar
/// whose digest is its diff id. Returns the image id and the archive.
fn import_compressed_and_save(env: &Env, file_name: &str, data: Vec<u8>, tag: &str) -> (String, PathBuf) {
    let src = env.dir.join(file_name);
    std::fs::write(&src, data).unwrap();
    env.ok(&["image", "import", "-c", r#"CMD ["sh"]"#, s(&src), tag]);
    let id = image_id(env, tag);
    let file = env.dir.join(format!("{}.tar", tag.replace(':', "-")));
    env.ok(&["save", "-o", s(&file), tag]);
    let all = entries(&file);
    let config = json(entry(&all, &format!("{}.json", &id[7..])));
    let diff = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    let layer = entry(&all, &format!("{}/layer.tar", &diff[7..]));
    assert_eq!(&layer[257..262], b"ustar", "layer.tar is a plain tar");
    assert_eq!(sha256(layer), diff);
    (id, file)
}

#[test]
fn gzip_layers_are_saved_uncompressed_and_gzip_archives_load() {
    let env = Env::bare("arch-gzip");
    let (id, file) = import_compressed_and_save(&env, "rootfs.tar.gz", gzip(&std::fs::read(busybox_tar()).unwrap()), "gz:1");

    // The whole archive gzip-compressed, on standard input.
    let fresh = Env::bare("arch-gzip-load");
    let o = fresh.berth_stdin(&["load"], &gzip(&std::fs::read(&file).unwrap()));
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), "Loaded image: gz:1");
    assert_eq!(image_id(&fresh, "gz:1"), id);
    assert_eq!(fresh.ok(&["run", "--rm", "gz:1", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}

#[test]
fn oci_format_round_trip_keeps_the_manifest() {
    let env = Env::new("arch-oci");
    env.ok(&["tag", "busybox", "127.0.0.1:5000/lab/bb:1"]);
    let id = image_id(&env, "busybox");
    let manifest = manifest_digest(&env, "busybox");
    let file = env.dir.join("oci.tar");
    env.ok(&["save", "--format", "oci", "-o", s(&file), "busybox", "127.0.0.1:5000/lab/bb:1"]);

    let all = entries(&file);
    assert_eq!(json(entry(&all, "oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = json(entry(&all, "index.json"));
    let descs = index["manifests"].as_array().unwrap();
    assert_eq!(descs.len(), 2, "one descriptor per tag: {index}");
    let names: Vec<&str> = descs.iter().map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap()).collect();
    assert!(names.contains(&"busybox:latest") && names.contains(&"127.0.0.1:5000/lab/bb:1"), "{names:?}");
    for d in descs {
        assert_eq!(d["digest"], manifest);
    }
    // Every blob is there once and matches its name.
    let blobs: Vec<&(String, EntryType, Vec<u8>)> = all.iter().filter(|(n, k, _)| n.starts_with("blobs/sha256/") && *k == EntryType::Regular).collect();
    assert_eq!(blobs.len(), 3, "manifest, config, one layer");
    for (n, _, data) in blobs {
        assert_eq!(sha256(data), format!("sha256:{}", &n["blobs/sha256/".len()..]));
    }

    let insp = skopeo_ok(&["inspect", &format!("oci-archive:{}:busybox:latest", s(&file))]);
    assert_eq!(json(insp.as_bytes())["Digest"], manifest);

    let fresh = Env::bare("arch-oci-load");
    let o = fresh.ok(&["load", "-i", s(&file)]);
    let mut lines: Vec<&str> = o.lines().collect();
    lines.sort();
    assert_eq!(lines, ["Loaded image: 127.0.0.1:5000/lab/bb:1", "Loaded image: busybox:latest"]);
    assert_eq!(image_id(&fresh, "busybox"), id);
    assert_eq!(manifest_digest(&fresh, "127.0.0.1:5000/lab/bb:1"), manifest, "the manifest is kept as it was");
    assert_eq!(fresh.ok(&["run", "--rm", "127.0.0.1:5000/lab/bb:1", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}

#[test]
fn skopeo_reads_what_berth_saves_and_the_store() {
    let env = Env::new("arch-skopeo-read");
    let file = env.dir.join("bb.tar");
    env.ok(&["save", "-o", s(&file), "busybox"]);
    let insp = json(skopeo_ok(&["inspect", &format!("docker-archive:{}", s(&file))]).as_bytes());
    assert_eq!(insp["Layers"].as_array().unwrap().len(), 1, "{insp}");
    // Picking the image by its tag works only if the tag is in the archive.
    let insp = json(skopeo_ok(&["inspect", &format!("docker-archive:{}:busybox:latest", s(&file))]).as_bytes());
    assert_eq!(insp["Name"], "docker.io/library/busybox");
    assert!(!skopeo(&["inspect", &format!("docker-archive:{}:busybox:nope", s(&file))]).ok());
    // The store itself is an OCI layout.
    let insp = json(skopeo_ok(&["inspect", &format!("oci:{}:busybox:latest", s(&env.root))]).as_bytes());
    assert_eq!(insp["Digest"], manifest_digest(&env, "busybox"));

    // skopeo copies the archive out (it reads every layer and checks it).
    let dir = env.dir.join("copied");
    skopeo_ok(&["copy", "--insecure-policy", &format!("docker-archive:{}", s(&file)), &format!("dir:{}", s(&dir))]);
    assert!(dir.join("manifest.json").is_file());
}

#[test]
fn an_oci_layout_made_by_skopeo_loads() {
    let env = Env::new("arch-skopeo-oci");
    let id = image_id(&env, "busybox");
    let file = env.dir.join("bb.tar");
    env.ok(&["save", "-o", s(&file), "busybox"]);
    let dir = env.dir.join("layout");
    skopeo_ok(&["copy", "--insecure-policy", &format!("docker-archive:{}", s(&file)), &format!("oci:{}:lab/bb:1", s(&dir))]);
    let tarball = env.dir.join("layout.tar");
    let o = Command::new("tar").args(["-C", s(&dir), "-cf", s(&tarball), "."]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let fresh = Env::bare("arch-skopeo-oci-load");
    assert_eq!(fresh.ok(&["load", "-i", s(&tarball)]), "Loaded image: lab/bb:1");
    assert_eq!(image_id(&fresh, "lab/bb:1"), id);
    assert_eq!(fresh.ok(&["run", "--rm", "lab/bb:1", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}

#[test]
fn a_docker_archive_made_by_skopeo_loads() {
    let env = Env::new("arch-skopeo-docker");
    let id = image_id(&env, "busybox");
    let file = env.dir.join("sk.tar");
    skopeo_ok(&[
        "copy",
        "--insecure-policy",
        &format!("oci:{}:busybox:latest", s(&env.root)),
        &format!("docker-archive:{}:busybox:latest", s(&file)),
    ]);
    let fresh = Env::bare("arch-skopeo-docker-load");
    assert_eq!(fresh.ok(&["load", "-i", s(&file)]), "Loaded image: busybox:latest");
    assert_eq!(image_id(&fresh, "busybox"), id);
    assert_eq!(fresh.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}

/// Flips one byte in the middle of the first entry whose name ends with `suffix`.
fn tamper(file: &Path, suffix: &str) -> PathBuf {
    let out = file.with_extension(format!("tampered-{}", suffix.replace(['/', '.'], "_")));
    std::fs::copy(file, &out).unwrap();
    let (pos, size) = {
        let mut a = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut found = None;
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            if e.path().unwrap().to_string_lossy().ends_with(suffix) {
                found = Some((e.raw_file_position(), e.size()));
                break;
            }
        }
        found.unwrap_or_else(|| panic!("no entry ending in {suffix}"))
    };
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&out).unwrap();
    let at = pos + size / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
    out
}

#[test]
fn a_tampered_archive_is_refused_and_leaves_nothing() {
    let env = Env::new("arch-tamper");
    let file = env.dir.join("bb.tar");
    env.ok(&["save", "-o", s(&file), "busybox"]);
    let oci = env.dir.join("oci.tar");
    env.ok(&["save", "--format", "oci", "-o", s(&oci), "busybox"]);
    let id = image_id(&env, "busybox");
    let fresh = Env::bare("arch-tamper-load");

    let bad_layer = tamper(&file, "/layer.tar");
    let o = fresh.berth(&["load", "-i", s(&bad_layer)]);
    assert!(!o.ok(), "a tampered layer must be refused: {o}");
    assert!(o.stderr.contains("digest") && o.stderr.contains("layer.tar"), "the error names the entry and the digest: {o}");

    let bad_config = tamper(&file, &format!("{}.json", &id[7..]));
    let o = fresh.berth(&["load", "-i", s(&bad_config)]);
    assert!(!o.ok(), "a tampered config must be refused: {o}");
    assert!(o.stderr.contains("digest") && o.stderr.contains(&id[7..]), "{o}");

    let bad_blob = tamper(&oci, &manifest_digest(&env, "busybox")[7..]);
    let o = fresh.berth(&["load", "-i", s(&bad_blob)]);
    assert!(!o.ok(), "a tampered OCI manifest must be refused: {o}");
    assert!(o.stderr.contains("digest"), "{o}");

    // Nothing was recorded, unpacked or left behind.
    assert_eq!(fresh.ok(&["images", "-q"]), "");
    assert!(layer_dirs(&fresh).is_empty(), "{:?}", layer_dirs(&fresh));
    assert!(list_dir(&fresh.root.join("blobs/sha256")).is_empty());
    assert_tmp_clean(&fresh);

    // The intact archive still loads there.
    assert_eq!(fresh.ok(&["load", "-i", s(&file)]), "Loaded image: busybox:latest");
}

#[test]
fn saving_an_unknown_image_fails_without_output() {
    let env = Env::new("arch-unknown");
    let file = env.dir.join("out.tar");
    let o = env.berth(&["save", "-o", s(&file), "busybox", "nosuch:1"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("nosuch"), "{o}");
    assert!(!file.exists());
    assert_eq!(list_dir(&env.dir), ["root", "run"], "no half-written file is left");
}

#[test]
fn hostile_or_foreign_archives_are_refused() {
    let env = Env::bare("arch-hostile");
    type Build = Box<dyn FnOnce(&mut Builder<std::fs::File>)>;
    let cases: Vec<(&str, Build, &str)> = vec![
        ("dotdot", Box::new(|b| add(b, "../evil", b"x")), "../evil"),
        ("absolute", Box::new(|b| add(b, "/tmp/evil", b"x")), "/tmp/evil"),
        (
            "abs-symlink",
            Box::new(|b| b.append(&raw("manifest.json", EntryType::Symlink, 0, "/etc/passwd"), std::io::empty()).unwrap()),
            "manifest.json",
        ),
        (
            "climbing-symlink",
            Box::new(|b| b.append(&raw("a/manifest.json", EntryType::Symlink, 0, "../../x"), std::io::empty()).unwrap()),
            "a/manifest.json",
        ),
        ("fifo", Box::new(|b| b.append(&raw("fifo", EntryType::Fifo, 0, ""), std::io::empty()).unwrap()), "fifo"),
        ("not-an-image", Box::new(|b| add(b, "hello.txt", b"hi")), "manifest.json"),
    ];
    for (tag, build, must_name) in cases {
        let file = env.dir.join(format!("{tag}.tar"));
        hostile(&file, build);
        let o = env.berth(&["load", "-i", s(&file)]);
        assert!(!o.ok(), "{tag}: must be refused: {o}");
        assert!(o.stderr.contains(must_name), "{tag}: the error names {must_name}: {o}");
        assert!(!env.root.join("tmp/evil").exists() && !env.root.join("evil").exists());
        assert_tmp_clean(&env);
    }
    let o = env.berth_stdin(&["load"], b"this is not a tar archive at all, just some text.");
    assert!(!o.ok(), "{o}");
    assert_tmp_clean(&env);
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn links_inside_an_archive_are_followed_by_name() {
    // docker before 25 and skopeo write a layer shared under several names
    // as a symlink to its first copy.
    let env = Env::new("arch-links");
    let id = image_id(&env, "busybox");
    let file = env.dir.join("bb.tar");
    env.ok(&["save", "-o", s(&file), "busybox"]);
    let all = entries(&file);
    let linked = env.dir.join("linked.tar");
    hostile(&linked, |b| {
        for (name, kind, data) in &all {
            if name == "manifest.json" {
                let mut m = json(data);
                let l = m[0]["Layers"][0].as_str().unwrap().to_string();
                m[0]["Layers"][0] = serde_json::json!("alias/layer.tar");
                let bytes = serde_json::to_vec(&m).unwrap();
                add(b, "manifest.json", &bytes);
                b.append(&raw("alias/layer.tar", EntryType::Symlink, 0, &format!("../{l}")), std::io::empty()).unwrap();
            } else if *kind == EntryType::Directory {
                b.append(&raw(name, EntryType::Directory, 0, ""), std::io::empty()).unwrap();
            } else {
                add(b, name, data);
            }
        }
    });
    let fresh = Env::bare("arch-links-load");
    assert_eq!(fresh.ok(&["load", "-i", s(&linked)]), "Loaded image: busybox:latest");
    assert_eq!(image_id(&fresh, "busybox"), id);
    assert_tmp_clean(&fresh);
}

#[test]
fn a_docker_25_archive_with_both_layouts_loads() {
    // docker 25+ writes an OCI layout and a manifest.json whose Config and
    // Layers point into blobs/sha256.
    let env = Env::new("arch-docker25");
    let id = image_id(&env, "busybox");
    let oci = env.dir.join("oci.tar");
    env.ok(&["save", "--format", "oci", "-o", s(&oci), "busybox"]);
    let all = entries(&oci);
    let config = json(entry(&all, &format!("blobs/sha256/{}", &id[7..])));
    let layers: Vec<String> = config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| format!("blobs/sha256/{}", &d.as_str().unwrap()[7..])).collect();
    let manifest = serde_json::json!([{ "Config": format!("blobs/sha256/{}", &id[7..]), "RepoTags": ["busybox:latest"], "Layers": layers }]);
    let both = env.dir.join("both.tar");
    hostile(&both, |b| {
        for (name, kind, data) in &all {
            if *kind == EntryType::Directory {
                b.append(&raw(name, EntryType::Directory, 0, ""), std::io::empty()).unwrap();
            } else {
                add(b, name, data);
            }
        }
        add(b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    });
    let fresh = Env::bare("arch-docker25-load");
    assert_eq!(fresh.ok(&["load", "-i", s(&both)]), "Loaded image: busybox:latest");
    assert_eq!(image_id(&fresh, "busybox"), id);
    assert_eq!(fresh.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}

#[test]
fn zstd_layers_are_saved_uncompressed() {
    let env = Env::bare("arch-zstd");
    import_compressed_and_save(&env, "rootfs.tar.zst", zstd::stream::encode_all(&std::fs::read(busybox_tar()).unwrap()[..], 3).unwrap(), "zs:1");

    // The OCI layout keeps the zstd blob; it loads back as it was.
    let oci = env.dir.join("zs-oci.tar");
    env.ok(&["save", "--format", "oci", "-o", s(&oci), "zs:1"]);
    let fresh = Env::bare("arch-zstd-load");
    assert_eq!(fresh.ok(&["load", "-i", s(&oci)]), "Loaded image: zs:1");
    assert_eq!(manifest_digest(&fresh, "zs:1"), manifest_digest(&env, "zs:1"));
    assert_eq!(fresh.ok(&["run", "--rm", "zs:1", "echo", "hi"]), "hi");
    assert_tmp_clean(&fresh);
}
