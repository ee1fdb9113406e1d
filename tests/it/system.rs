//! `berth system`: info, and the leak check finding what a crash left.

use crate::util::*;

fn links() -> String {
    String::from_utf8_lossy(&std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap().stdout).into_owned()
}

fn nft_has(family: &str, table: &str) -> bool {
    std::process::Command::new("nft").args(["list", "table", family, table]).output().unwrap().status.success()
}

#[test]
fn info_names_the_link_emulation_in_use() {
    let env = Env::new("info_names_the_link_emulation_in_use");
    let info = env.ok(&["system", "info"]);
    assert!(info.contains("Storage Driver: overlay") && info.contains("Images: 1"), "{info}");
    let config = std::process::Command::new("sh").args(["-c", "zcat /proc/config.gz 2>/dev/null | grep '^CONFIG_NET_SCH_NETEM='"]).output().unwrap();
    let netem = !config.stdout.is_empty() || std::path::Path::new("/sys/module/sch_netem").exists();
    let line = info.lines().find(|l| l.starts_with("Link Emulation: ")).unwrap_or_else(|| panic!("{info}"));
    if netem {
        assert!(line.contains("tc netem"), "{line}");
    } else {
        assert!(line.contains("user-space delay line") && line.contains("no sch_netem"), "{line}");
    }
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["system", "info", "--format", "json"])).unwrap();
    assert_eq!(v["images"], 1);
}

#[test]
fn check_finds_and_repairs_what_a_crash_left() {
    let env = Env::new("check_finds_and_repairs_what_a_crash_left");
    let net = env.name("n");
    let nid = env.ok(&["network", "create", &net]);
    let a = env.name("a");
    let b = env.name("b");
    let port = free_port().to_string();
    env.run_detached(&a, &["--network", &net, "-p", &format!("127.0.0.1:{port}:80"), "busybox", "httpd", "-f", "-p", "80"]);
    env.run_detached(&b, &["--network", &net, "busybox", "sleep", "600"]);
    env.ok(&["network", "impair", "--loss", "5", "--delay", "5ms", &net, &b]);
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");

    // A crash: the monitors die and the store forgets everything.
    let (ida, idb) = (env.full_id(&a), env.full_id(&b));
    for p in pids_with_env("BERTH_ROOT", &env.root) {
        let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default()).replace('\0', " ");
        if cmd.contains(&format!("monitor {ida}")) {
            kill(p);
        }
    }
    {
        let db = berth::store::Db::open(&berth::store::Paths::from_env(Some(env.root.clone()))).unwrap();
        db.conn.execute_batch("DELETE FROM containers; DELETE FROM endpoints; DELETE FROM ports; DELETE FROM networks;").unwrap();
    }
    let o = env.berth(&["system", "check"]);
    assert_eq!(o.code, 1, "{o}");
    let t = env.nft_table();
    for want in [
        format!("bridge br-{}", &nid[..12]),
        format!("veth vb{}0", &ida[..10]),
        format!("veth vb{}0", &idb[..10]),
        format!("tap vd{}0", &idb[..10]),
        format!("nftables table ip {t}"),
        format!("nftables table netdev {t}"),
        format!("mount {}/netns/{}", env.run.display(), &ida[..12]),
        format!("directory {}/containers/{ida}", env.root.display()),
        format!("(monitor {})", &idb[..12]),
        format!("(delay-line {})", &idb[..12]),
    ] {
        assert!(o.stdout.contains(&want), "the check reports {want:?}:\n{o}");
    }
    assert!(o.stdout.contains("--repair"), "{o}");

    let o = env.berth(&["system", "check", "--repair"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(!o.stdout.contains("repair failed"), "{o}");
    assert_eq!(env.ok(&["system", "check"]), "no leftovers");
    let l = links();
    assert!(!l.contains(&nid[..12]) && !l.contains(&ida[..10]) && !l.contains(&idb[..10]), "no link left: {l}");
    assert!(!nft_has("ip", &t) && !nft_has("netdev", &t), "no table left");
    assert!(mounts_under(&env.dir).is_empty(), "no mount left: {:?}", mounts_under(&env.dir));
    assert!(wait_until(std::time::Duration::from_secs(3), || pids_with_env("BERTH_ROOT", &env.root).is_empty()), "no process left");
    // The published port is closed again.
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
}
