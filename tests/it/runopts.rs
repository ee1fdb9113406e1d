//! Run options that shape a container's files and limits: --read-only,
//! --tmpfs, --shm-size, --add-host, --dns*, --ulimit, seen from inside the
//! container, through the CLI, a script and the docker CLI on `berth serve`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// This process's hard limit of open files, which berth and its containers
/// inherit (from /proc/self/limits; "unlimited" as u64::MAX).
fn host_hard_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files in /proc/self/limits");
    let hard = line.split_whitespace().nth(4).unwrap();
    hard.parse().unwrap_or(u64::MAX)
}

/// The `df -k` size (1K blocks) of the mount at `path` in `out`, from
/// lines such as `tmpfs 131072 0 131072 0% /dev/shm`.
fn df_size(out: &str, path: &str) -> Option<u64> {
    out.lines().find(|l| l.split_whitespace().last() == Some(path)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[test]
fn read_only_root_keeps_tmpfs_shm_and_volumes_writable() {
    let env = Env::new("read_only_root_keeps_tmpfs_shm_and_volumes_writable");
    let probe = "touch /rootfile 2>/dev/null; echo root=$?; \
                 touch /tmp/x; echo tmp=$?; \
                 echo hi > /dev/shm/x; echo shm=$?; \
                 touch /data/x; echo data=$?; \
                 touch /etc/hosts; echo hosts=$?; \
                 head -c 2000000 /dev/zero > /tmp/big 2>/dev/null; echo big=$?; \
                 df -k /dev/shm /tmp; grep ' /tmp ' /proc/mounts";
    let o = env.berth_timeout(
        &["run", "--rm", "--read-only", "--tmpfs", "/tmp:size=1m,mode=1770", "--shm-size", "128m", "-v", "ro-data:/data", "busybox", "sh", "-c", probe],
        SECS(30),
    );
    assert_eq!(o.code, 0, "{o}");
    let out = &o.stdout;
    for want in ["root=1", "tmp=0", "shm=0", "data=0", "hosts=0", "big=1"] {
        assert!(out.lines().any(|l| l == want), "want {want}: {o}");
    }
    assert_eq!(df_size(out, "/dev/shm"), Some(128 * 1024), "{o}");
    assert_eq!(df_size(out, "/tmp"), Some(1024), "{o}");
    let tmp_line = out.lines().find(|l| l.contains(" /tmp tmpfs ")).unwrap_or_else(|| panic!("no /tmp in /proc/mounts: {o}"));
    for opt in ["rw", "nosuid", "nodev", "noexec", "mode=1770"] {
        assert!(tmp_line.split_whitespace().nth(3).unwrap().split(',').any(|x| x == opt), "{opt} missing on /tmp: {tmp_line}");
    }

    // Without --read-only the same write works, and /dev/shm has docker's 64m.
    let o = env.berth(&["run", "--rm", "busybox", "sh", "-c", "touch /rootfile && echo root=$?; df -k /dev/shm"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.lines().any(|l| l == "root=0"), "{o}");
    assert_eq!(df_size(&o.stdout, "/dev/shm"), Some(64 * 1024), "{o}");

    // An exec into a read-only container sees the same root; a workdir
    // that does not exist yet is made before the root turns read-only.
    let n = env.name("ro");
    env.ok(&["run", "-d", "--name", &n, "--read-only", "-w", "/work/dir", "--tmpfs", "/run", "--shm-size", "1m", "-v", "ro-data:/data", "busybox", "sleep", "60"]);
    let o = env.berth(&["exec", &n, "sh", "-c", "pwd; touch /x 2>&1; touch /run/y && echo run-ok"]);
    assert!(o.stdout.contains("/work/dir") && o.stdout.contains("Read-only file system") && o.stdout.contains("run-ok"), "{o}");

    // berth cp, as docker cp: not into the read-only root, into a volume yes.
    let f = env.dir.join("copied");
    std::fs::write(&f, "in the volume\n").unwrap();
    for dst in ["/etc/", "/data/../etc/"] {
        let o = env.berth(&["cp", f.to_str().unwrap(), &format!("{n}:{dst}")]);
        assert!(o.code != 0 && o.stderr.contains("root filesystem is read-only (--read-only)") && o.stderr.contains(&n), "cp into {dst}: {o}");
    }
    assert_ne!(env.berth(&["exec", &n, "ls", "/etc/copied"]).code, 0, "a refused cp wrote nothing");
    env.ok(&["cp", f.to_str().unwrap(), &format!("{n}:/data/")]);
    assert_eq!(env.ok(&["exec", &n, "cat", "/data/copied"]), "in the volume");
    let hc = &env.inspect(&n)["HostConfig"];
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(hc["Tmpfs"], serde_json::json!({"/run": ""}), "{hc}");
    assert_eq!(hc["ShmSize"], 1 << 20, "{hc}");
    env.ok(&["rm", "-f", &n]);

    // Mistakes are named with their option and value, and make nothing.
    refused(&env, &[
        (vec!["--tmpfs", "run"], "--tmpfs \"run\""),
        (vec!["--tmpfs", "/run:size=lots"], "invalid size \"lots\""),
        (vec!["--tmpfs", "/data", "-v", "ro-data:/data"], "duplicate mount point"),
        (vec!["--shm-size=0"], "--shm-size: invalid size \"0\""),
    ]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn add_host_and_dns_write_the_containers_hosts_and_resolv_conf() {
    let env = Env::new("add_host_and_dns_write_the_containers_hosts_and_resolv_conf");
    let o = env.berth(&[
        "run", "--rm", "--add-host", "db:10.0.0.5", "--add-host", "v6:fd00::5", "--dns", "10.0.0.2", "--dns", "10.0.0.3", "--dns-search", "lab.test",
        "--dns-option", "ndots:2", "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
    ]);
    assert_eq!(o.code, 0, "{o}");
    let (hosts, resolv) = o.stdout.split_once("---\n").unwrap_or_else(|| panic!("{o}"));
    assert!(hosts.lines().any(|l| l == "10.0.0.5\tdb"), "{o}");
    assert!(hosts.lines().any(|l| l == "fd00::5\tv6"), "{o}");
    assert!(hosts.lines().any(|l| l.starts_with("127.0.0.1")), "{o}");
    let servers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(servers, ["nameserver 10.0.0.2", "nameserver 10.0.0.3"], "the host's servers are replaced: {o}");
    assert_eq!(resolv.lines().filter(|l| l.starts_with("search")).collect::<Vec<_>>(), ["search lab.test"], "{o}");
    assert_eq!(resolv.lines().filter(|l| l.starts_with("options")).collect::<Vec<_>>(), ["options ndots:2"], "{o}");

    // The --add-host lines outlive the rewrites of /etc/hosts that peers
    // joining the network cause; the peer's own line is there too.
    let net = env.name("net");
    env.ok(&["network", "create", "--subnet", "10.213.141.0/24", &net]);
    let (a, b) = (env.name("a"), env.name("b"));
    env.ok(&["run", "-d", "--name", &a, "--network", &net, "--add-host", "db:10.0.0.5", "--add-host", "host.docker.internal:host-gateway", "busybox", "sleep", "60"]);
    env.ok(&["run", "-d", "--name", &b, "--network", &net, "busybox", "sleep", "60"]);
    let hosts = env.ok(&["exec", &a, "cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l == "10.0.0.5\tdb"), "{hosts}");
    // host-gateway: the host as the container reaches it, its network's gateway.
    let gw = env.inspect(&a)["NetworkSettings"]["Networks"][&net]["Gateway"].as_str().unwrap().to_string();
    assert!(gw.starts_with("10.213.141."), "{gw}");
    assert!(hosts.lines().any(|l| l == format!("{gw}\thost.docker.internal")), "{hosts}");
    assert_eq!(env.ok(&["exec", &a, "ping", "-c", "1", "-W", "2", "host.docker.internal"]).lines().next().map(|l| l.contains(&gw)), Some(true));
    assert!(hosts.lines().any(|l| l.starts_with("10.213.141.") && l.split_whitespace().any(|w| w == b)), "peer {b} missing: {hosts}");
    let hc = &env.inspect(&a)["HostConfig"];
    assert_eq!(hc["ExtraHosts"], serde_json::json!(["db:10.0.0.5", "host.docker.internal:host-gateway"]), "{hc}");
    assert_eq!((&hc["Dns"], &hc["Ulimits"], &hc["Tmpfs"]), (&serde_json::json!([]), &serde_json::Value::Null, &serde_json::Value::Null), "{hc}");
    env.ok(&["rm", "-f", &a, &b]);
    env.ok(&["network", "rm", &net]);

    refused(&env, &[
        (vec!["--add-host", "db"], "--add-host \"db\""),
        (vec!["--add-host", "db:nowhere"], "\"nowhere\" is not an IP address"),
        (vec!["--dns", "dns.example"], "--dns \"dns.example\""),
        (vec!["--network", "none", "--add-host", "gw:host-gateway"], "host-gateway needs a bridge network"),
    ]);
}

#[test]
fn ulimit_sets_limits_inside_and_never_raises_the_hosts() {
    let env = Env::new("ulimit_sets_limits_inside_and_never_raises_the_hosts");
    let o = env.berth(&["run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"]);
    assert_eq!((o.code, o.lines()), (0, vec!["512", "1024", "100"]), "{o}");

    // exec gets the container's limits too; inspect shows them as docker does.
    let n = env.name("c");
    env.ok(&["run", "-d", "--name", &n, "--ulimit", "nofile=256:256", "busybox", "sleep", "60"]);
    assert_eq!(env.ok(&["exec", &n, "sh", "-c", "ulimit -n"]), "256");
    assert_eq!(env.inspect(&n)["HostConfig"]["Ulimits"], serde_json::json!([{"Name": "nofile", "Soft": 256, "Hard": 256}]));
    env.ok(&["rm", "-f", &n]);

    // Above the host's hard limit: refused at create, naming both.
    let hard = host_hard_nofile();
    if hard != u64::MAX {
        let over = format!("nofile=100:{}", hard + 1);
        let o = env.berth(&["run", "--rm", "--ulimit", &over, "busybox", "true"]);
        assert_eq!(o.code, 125, "{o}");
        assert!(o.stderr.contains(&format!("hard limit {}", hard + 1)) && o.stderr.contains(&format!("host's hard limit {hard} for nofile")), "{o}");
        // At the host's hard limit it runs.
        let at = format!("nofile=100:{hard}");
        let o = env.berth(&["run", "--rm", "--ulimit", &at, "busybox", "sh", "-c", "ulimit -Hn"]);
        assert_eq!((o.code, o.out()), (0, hard.to_string().as_str()), "{o}");
    }

    // A container made under a higher limit and started by a berth with a
    // lower one: its init refuses, by name, rather than run it unlimited.
    let n = env.name("later");
    env.ok(&["create", "--name", &n, "--ulimit", "nofile=100:4500", "busybox", "true"]);
    let child = Command::new("sh")
        .args(["-c", "ulimit -n 4000 && ulimit -Hn 4000 && exec \"$0\" \"$@\"", BERTH, "start", "-a", &n])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = collect(child, SECS(30));
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("ulimit nofile: hard limit 4500 is above the host's hard limit 4000"), "{o}");
    env.ok(&["rm", "-f", &n]);

    for (spec, want) in [("files=10", "unknown limit \"files\""), ("nofile=2:1", "soft limit is above the hard"), ("nofile", "NAME=SOFT[:HARD]")] {
        let o = env.berth(&["run", "--rm", "--ulimit", spec, "busybox", "true"]);
        assert_eq!(o.code, 125, "{spec}: {o}");
        assert!(o.stderr.contains(want) && o.stderr.contains("--ulimit"), "{spec}: want {want:?}: {o}");
    }
}

#[test]
fn a_script_sets_the_same_options() {
    let env = Env::new("a_script_sets_the_same_options");
    let f = env.dir.join("runopts.rhai");
    std::fs::write(
        &f,
        r#"
let c = run("busybox", #{ cmd: ["sleep", "60"], read_only: true, tmpfs: ["/run:size=1m"], shm_size: "128m",
                         add_hosts: ["db:10.0.0.5"], dns: ["10.0.0.2"], dns_search: ["lab.test"], dns_options: ["ndots:3"],
                         ulimits: ["nofile=512:512"] });
let r = c.exec(["sh", "-c", "touch /x 2>/dev/null; echo root=$?; touch /run/y; echo run=$?; ulimit -n; df -k /dev/shm | tail -1; grep db /etc/hosts; cat /etc/resolv.conf"]);
print(r.stdout);
let hc = c.inspect().HostConfig;
print(`inspect ${hc.ReadonlyRootfs} ${hc.ShmSize} ${hc.Tmpfs["/run"]} ${hc.Ulimits[0].Soft}`);
c.remove(#{ force: true });
try {
    run("busybox", #{ shm_size: "lots" });
    print("no error");
} catch (e) {
    print(`error: ${e}`);
}
"#,
    )
    .unwrap();
    let o = env.berth_timeout(&["run", f.to_str().unwrap()], SECS(60));
    assert_eq!(o.code, 0, "{o}");
    let lines = o.lines();
    for want in ["root=1", "run=0", "512", "10.0.0.5\tdb", "nameserver 10.0.0.2", "search lab.test", "options ndots:3", "inspect true 134217728 size=1m 512"] {
        assert!(lines.contains(&want), "want {want:?}: {o}");
    }
    assert_eq!(df_size(&o.stdout, "/dev/shm"), Some(128 * 1024), "{o}");
    assert!(o.stdout.contains("error: ") && o.stdout.contains("shm_size") && o.stdout.contains("\"lots\""), "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_cli_on_serve_passes_the_options() {
    let env = Env::new("docker_cli_on_serve_passes_the_options");
    let s = crate::api::Served::start(&env);
    let o = s.docker(&[
        "run", "--rm", "--read-only", "--tmpfs", "/run:size=1m", "--shm-size", "32m", "--add-host", "db:10.0.0.5", "--dns", "10.0.0.2", "--ulimit", "nofile=300:400",
        "busybox", "sh", "-c", "touch /x 2>/dev/null; echo root=$?; touch /run/y; echo run=$?; df -k /dev/shm | tail -1; grep db /etc/hosts; grep nameserver /etc/resolv.conf; ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(o.code, 0, "{o}\n{}", s.log(&env));
    assert!(!o.stderr.contains("not supported"), "{o}");
    let lines = o.lines();
    for want in ["root=1", "run=0", "10.0.0.5\tdb", "nameserver 10.0.0.2", "300", "400"] {
        assert!(lines.contains(&want), "want {want:?}: {o}");
    }
    assert_eq!(df_size(&o.stdout, "/dev/shm"), Some(32 * 1024), "{o}");

    // docker inspect through the API shows them in its HostConfig.
    let n = env.name("c");
    s.docker_ok(&["create", "--name", &n, "--read-only", "--tmpfs", "/run:size=1m", "--shm-size", "32m", "--add-host", "db:10.0.0.5", "--dns", "10.0.0.2", "--dns-search", "lab.test", "--dns-option", "ndots:2", "--ulimit", "nofile=300:400", "busybox"]);
    let hc: serde_json::Value = serde_json::from_str(&s.docker_ok(&["inspect", "-f", "{{json .HostConfig}}", &n])).unwrap();
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(hc["Tmpfs"], serde_json::json!({"/run": "size=1m"}), "{hc}");
    assert_eq!(hc["ShmSize"], 32 << 20, "{hc}");
    assert_eq!(hc["ExtraHosts"], serde_json::json!(["db:10.0.0.5"]), "{hc}");
    assert_eq!((&hc["Dns"], &hc["DnsSearch"], &hc["DnsOptions"]), (&serde_json::json!(["10.0.0.2"]), &serde_json::json!(["lab.test"]), &serde_json::json!(["ndots:2"])), "{hc}");
    assert_eq!(hc["Ulimits"], serde_json::json!([{"Name": "nofile", "Soft": 300, "Hard": 400}]), "{hc}");
    // docker cp refuses a read-only root, as dockerd does.
    let f = env.dir.join("f");
    std::fs::write(&f, "x").unwrap();
    let o = s.docker(&["cp", f.to_str().unwrap(), &format!("{n}:/")]);
    assert!(o.code != 0 && o.stderr.contains("root filesystem is read-only"), "{o}");
    s.docker_ok(&["rm", &n]);
}

/// The same options for a user without root: the root is remounted
/// read-only and the limits lowered inside the user's own namespace.
#[test]
fn rootless_read_only_tmpfs_shm_hosts_and_ulimit() {
    let env = Env::bare("rootless_read_only_tmpfs_shm_hosts_and_ulimit");
    let u = crate::rootless::User::new(&env, "ro");
    let tar = env.dir.join("busybox.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    Command::new("chmod").args(["a+r", tar.to_str().unwrap()]).status().unwrap();
    u.ok(&["image", "import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "busybox:latest"]);
    let out = u.ok(&[
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:size=1m", "--shm-size", "16m", "--add-host", "db:10.0.0.5", "--dns", "10.0.0.2",
        "--ulimit", "nofile=100:200", "busybox", "sh", "-c",
        "touch /x 2>/dev/null; echo root=$?; touch /tmp/y; echo tmp=$?; df -k /dev/shm /tmp; grep db /etc/hosts; grep nameserver /etc/resolv.conf; ulimit -n; ulimit -Hn",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    for want in ["root=1", "tmp=0", "10.0.0.5\tdb", "nameserver 10.0.0.2", "100", "200"] {
        assert!(lines.contains(&want), "want {want:?}: {out}");
    }
    assert_eq!(df_size(&out, "/dev/shm"), Some(16 * 1024), "{out}");
    assert_eq!(df_size(&out, "/tmp"), Some(1024), "{out}");
}

/// The compose keys reach a stack's replicas.
#[test]
fn compose_keys_reach_a_stacks_replicas() {
    let env = Env::new("compose_keys_reach_a_stacks_replicas");
    let f = env.dir.join("compose.yaml");
    std::fs::write(
        &f,
        "services:\n  web:\n    image: busybox\n    command: sleep 600\n    read_only: true\n    tmpfs: [\"/run:size=1m\"]\n    shm_size: 16m\n    \
         extra_hosts: [\"db:10.0.0.5\"]\n    dns: [10.0.0.2]\n    dns_search: [lab.test]\n    ulimits:\n      nofile: {soft: 300, hard: 400}\n",
    )
    .unwrap();
    let st = env.name("st");
    let o = env.berth_timeout(&["stack", "deploy", "-c", f.to_str().unwrap(), &st], SECS(60));
    assert!(o.ok() && !o.stderr.contains("unknown key"), "{o}");
    let rep = format!("{st}_web.1");
    let o = env.berth(&[
        "exec", &rep, "sh", "-c", "touch /x 2>/dev/null; echo root=$?; touch /run/y; echo run=$?; df -k /dev/shm; grep db /etc/hosts; cat /etc/resolv.conf; ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(o.code, 0, "{o}");
    let lines = o.lines();
    for want in ["root=1", "run=0", "10.0.0.5\tdb", "nameserver 10.0.0.2", "search lab.test", "300", "400"] {
        assert!(lines.contains(&want), "want {want:?}: {o}");
    }
    assert_eq!(df_size(&o.stdout, "/dev/shm"), Some(16 * 1024), "{o}");
    env.ok(&["stack", "rm", &st]);
}

/// Each `run --rm ARGS busybox true` exits 125 and its error says `want`.
fn refused(env: &Env, cases: &[(Vec<&str>, &str)]) {
    for (args, want) in cases {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend(["busybox", "true"]);
        let o = env.berth(&a);
        assert_eq!(o.code, 125, "{a:?}: {o}");
        assert!(o.stderr.contains(want), "{a:?}: want {want:?}: {o}");
    }
}
