//! Volumes: named, bind, anonymous, volumes-from, image VOLUME seeding,
//! in-use refusal, rm -v, prune; from the CLI and from a script.

use crate::util::*;

#[test]
fn named_volume_outlives_its_containers_and_refuses_removal_in_use() {
    let env = Env::new("named_volume_outlives_its_containers_and_refuses_removal_in_use");
    let v = env.name("data");
    assert_eq!(env.ok(&["volume", "create", &v]), v);
    env.ok(&["run", "--rm", "-v", &format!("{v}:/mntvol"), "busybox", "sh", "-c", "echo persisted > /mntvol/f"]);
    assert_eq!(env.ok(&["run", "--rm", "-v", &format!("{v}:/other"), "busybox", "cat", "/other/f"]), "persisted");
    // Created on first use, too.
    let fresh = env.name("fresh");
    env.ok(&["run", "--rm", "-v", &format!("{fresh}:/x"), "busybox", "true"]);
    assert!(env.ok(&["volume", "ls", "-q"]).lines().any(|l| l == fresh));
    // Read-only mount refuses writes.
    let o = env.berth(&["run", "--rm", "-v", &format!("{v}:/m:ro"), "busybox", "sh", "-c", "cat /m/f; echo x > /m/g"]);
    assert!(o.stdout.contains("persisted") && o.code != 0 && o.stderr.contains("Read-only file system"), "{o}");
    let holder = env.name("holder");
    env.run_detached(&holder, &["-v", &format!("{v}:/x"), "busybox", "sleep", "600"]);
    let o = env.berth(&["volume", "rm", &v]);
    assert!(o.code != 0 && o.stderr.contains(&format!("volume {v} is in use by container(s) {holder}")), "{o}");
    let insp: serde_json::Value = serde_json::from_str(&env.ok(&["volume", "inspect", &v])).unwrap();
    let mp = insp[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(mp.starts_with(env.root.to_str().unwrap()) && std::fs::read_to_string(format!("{mp}/f")).unwrap() == "persisted\n");
    env.ok(&["rm", "-f", &holder]);
    env.ok(&["volume", "rm", &v]);
    assert!(!std::path::Path::new(&mp).exists(), "its data is gone with it");
    let o = env.berth(&["volume", "rm", &v]);
    assert!(o.code != 0 && o.stderr.contains("no such volume"), "{o}");
}

#[test]
fn bind_mounts_anonymous_volumes_and_volumes_from() {
    let env = Env::new("bind_mounts_anonymous_volumes_and_volumes_from");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("h"), "from-host\n").unwrap();
    let spec = format!("{}:/mnt", host.display());
    assert_eq!(env.ok(&["run", "--rm", "-v", &spec, "busybox", "sh", "-c", "cat /mnt/h; echo back > /mnt/c"]), "from-host");
    assert_eq!(std::fs::read_to_string(host.join("c")).unwrap(), "back\n", "writes reach the host");
    let o = env.berth(&["run", "--rm", "-v", &format!("{spec}:ro"), "busybox", "touch", "/mnt/z"]);
    assert!(o.code != 0 && o.stderr.contains("Read-only"), "{o}");
    let file = format!("{}:/etc/motd:ro", host.join("h").display());
    assert_eq!(env.ok(&["run", "--rm", "-v", &file, "busybox", "cat", "/etc/motd"]), "from-host", "a single file binds too");
    let o = env.berth(&["run", "--rm", "-v", "/no/such/dir:/mnt", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("bind source path does not exist: /no/such/dir"), "{o}");
    let o = env.berth(&["run", "--rm", "-v", "data:relative", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("invalid volume specification"), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "a refused run leaves no container");
    let o = env.berth(&["run", "--rm", "-v", "/anon", "--ip", "10.255.255.9", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("not in subnet"), "{o}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "", "nor the volume made for it");

    // Anonymous volume, shared with --volumes-from, removed by rm -v.
    let u1 = env.name("ubu1");
    env.run_detached(&u1, &["-v", "/myvol", "busybox", "sh", "-c", "echo shared > /myvol/s; sleep 600"]);
    assert!(wait_until(std::time::Duration::from_secs(5), || env.berth(&["exec", &u1, "cat", "/myvol/s"]).stdout == "shared\n"));
    let anon = env.ok(&["volume", "ls", "-q"]);
    assert!(is_hex(&anon, 64), "a generated name: {anon}");
    let u2 = env.name("ubu2");
    env.run_detached(&u2, &["--volumes-from", &u1, "busybox", "sleep", "600"]);
    assert_eq!(env.ok(&["exec", &u2, "cat", "/myvol/s"]), "shared");
    env.ok(&["exec", &u2, "sh", "-c", "echo from-u2 > /myvol/t"]);
    assert_eq!(env.ok(&["exec", &u1, "cat", "/myvol/t"]), "from-u2");
    env.ok(&["rm", "-f", "-v", &u2]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), anon, "still used by ubu1");
    env.ok(&["rm", "-f", "-v", &u1]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "", "rm -v took the anonymous volume");
    // --rm takes anonymous volumes along, as docker does.
    env.ok(&["run", "--rm", "-v", "/scratch", "busybox", "true"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn image_volume_is_seeded_and_prune_keeps_what_is_used() {
    let env = Env::new("image_volume_is_seeded_and_prune_keeps_what_is_used");
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN mkdir -p /data && echo seeded > /data/seed && ln -s seed /data/link\nVOLUME /data\n").unwrap();
    let tag = format!("{}:1", env.name("vol"));
    env.ok(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()]);
    let c = env.name("c");
    env.run_detached(&c, &[&tag, "sleep", "600"]);
    assert_eq!(env.ok(&["exec", &c, "cat", "/data/link"]), "seeded", "the image's content at its VOLUME path is in the volume");
    let anon = env.ok(&["volume", "ls", "-q"]);
    assert!(is_hex(&anon, 64), "{anon}");
    // A named volume over the same path is seeded too when new.
    let named = env.name("named");
    assert_eq!(env.ok(&["run", "--rm", "-v", &format!("{named}:/data"), &tag, "cat", "/data/seed"]), "seeded");
    let unused = env.name("unused");
    env.ok(&["volume", "create", &unused]);
    // Plain prune: unused anonymous ones only (none here); -a: every unused one.
    let out = env.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    let left = env.ok(&["volume", "ls", "-q"]);
    assert!(left.contains(&anon) && left.contains(&named) && left.contains(&unused), "{left}");
    let out = env.ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains(&named) && out.contains(&unused) && !out.contains(&anon), "in use stays: {out}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), anon);
}

#[test]
fn volumes_from_a_script() {
    let env = Env::new("volumes_from_a_script");
    let p = env.name("s");
    let f = env.dir.join("vol.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
let v = volume("{p}data");
assert_eq(v.name, "{p}data");
assert(v.path.ends_with("/_data"), v.path);
run_once("busybox", ["sh", "-c", "echo kept > /d/k"], #{{ volumes: ["{p}data:/d"] }});
let c0 = run("busybox", #{{ name: "{p}c0", cmd: ["sleep", "600"], volumes: ["{p}data:/d"] }});
let c1 = run("busybox", #{{ name: "{p}c1", cmd: ["sleep", "600"], volumes_from: ["{p}c0"] }});
assert_eq(c1.exec(["cat", "/d/k"]).stdout, "kept\n");
assert_eq(v.users.len(), 2);
assert(volumes().len() >= 1);
let failed = false;
try {{ v.remove(); }} catch (e) {{ failed = true; assert(`${{e}}`.contains("in use"), `${{e}}`); }}
assert(failed);
c0.remove(#{{ force: true }});
c1.remove(#{{ force: true, volumes: true }});
v.remove();
assert_eq(volumes().len(), 0);
print("volumes ok");
"#
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("volumes ok"), "{o}");
}
