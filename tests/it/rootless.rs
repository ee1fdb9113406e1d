//! Rootless: berth run by a user without root, one the test makes with
//! subordinate ids (as `useradd` and /etc/subuid give a developer). Its
//! berth lives in its own namespace, held by a pause process that the test
//! stops at the end with the user's other processes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

pub(crate) struct User {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
    pub bin: PathBuf,
    /// The subid lines the test added, removed again at the end.
    subid_line: String,
}

impl User {
    pub fn new(env: &Env, tag: &str) -> User {
        // Unique per test run: user names are host-wide.
        let name = format!("brl{}{tag}", std::process::id() % 100000);
        let home = env.dir.join("home");
        let ok = Command::new("useradd").args(["-M", "-d", home.to_str().unwrap(), "-s", "/bin/sh", &name]).status().unwrap().success();
        assert!(ok, "useradd {name}");
        std::fs::create_dir_all(&home).unwrap();
        let uid: u32 = String::from_utf8(Command::new("id").args(["-u", &name]).output().unwrap().stdout).unwrap().trim().parse().unwrap();
        Command::new("chown").args([&format!("{name}:{name}"), home.to_str().unwrap()]).status().unwrap();
        // useradd may have given it ranges (SUB_UID_MIN in login.defs);
        // else its own, far from any other user's.
        let mut subid_line = String::new();
        let has = |f: &str| std::fs::read_to_string(f).unwrap_or_default().lines().any(|l| l.starts_with(&format!("{name}:")));
        if !has("/etc/subuid") || !has("/etc/subgid") {
            let start = 400_000 + (uid % 1000) * 65_536;
            subid_line = format!("{name}:{start}:65536\n");
            for f in ["/etc/subuid", "/etc/subgid"] {
                let mut t = std::fs::read_to_string(f).unwrap_or_default();
                t.push_str(&subid_line);
                std::fs::write(f, t).unwrap();
            }
        }
        // A copy of berth the user can run, which the pause process holds.
        let bin = env.dir.join("berth");
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
        for p in [&env.dir, &bin] {
            Command::new("chmod").args(["a+rx", p.to_str().unwrap()]).status().unwrap();
        }
        User { name, uid, home, bin, subid_line }
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        self.berth_env(&[], args)
    }

    /// `berth ARGS` with variables set (setpriv --reset-env drops ours).
    pub fn berth_env(&self, vars: &[(&str, &str)], args: &[&str]) -> Out {
        let child = Command::new("setpriv")
            .args(["--reuid", &self.uid.to_string(), "--regid", &self.uid.to_string(), "--init-groups", "--reset-env", "env"])
            .args(vars.iter().map(|(k, v)| format!("{k}={v}")))
            .arg(&self.bin)
            .args(args)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A whole `berth test` of three containers under TCG on a loaded
        // CI machine took over 60 s once; a hang still ends the test.
        collect(child, Duration::from_secs(180))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(o.ok(), "berth {} as {}: {o}", args.join(" "), self.name);
        o.stdout
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Its containers' monitors, its pause process, anything else.
        let _ = self.berth(&["system", "reset", "-f"]);
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).status();
        // userdel refuses a user with processes; killed ones take a moment.
        wait_until(Duration::from_secs(10), || Command::new("pgrep").args(["-u", &self.name]).stdout(Stdio::null()).status().is_ok_and(|s| !s.success()));
        let _ = Command::new("userdel").arg(&self.name).status();
        // Its runtime directory (it has no XDG_RUNTIME_DIR), which the
        // next user given the same uid must not inherit.
        let _ = std::fs::remove_dir_all(format!("/tmp/berth-{}", self.uid));
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(t) = std::fs::read_to_string(f)
                && !self.subid_line.is_empty()
            {
                let _ = std::fs::write(f, t.replace(&self.subid_line, ""));
            }
        }
        // Files the user's namespace made belong to its subordinate ids:
        // root removes them (Env's drop takes the directory).
        for m in mounts_under(&self.home).into_iter().rev() {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
    }
}

#[test]
fn a_user_without_root_runs_containers_in_its_own_namespace() {
    let env = Env::bare("rootless");
    let u = User::new(&env, "a");
    let info = u.ok(&["system", "info"]);
    assert!(info.contains("Rootless: true"), "{info}");
    assert!(info.contains(&format!("uid map 0 {} 1", u.uid)), "the user's subordinate ids are mapped: {info}");
    assert!(info.contains(&format!("Berth Root Dir: {}/.local/share/berth", u.home.display())), "{info}");

    // The image, imported by the user: files of uid 0 belong to the user.
    let tar = env.dir.join("busybox.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    Command::new("chmod").args(["a+r", tar.to_str().unwrap()]).status().unwrap();
    u.ok(&["image", "import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "busybox:latest"]);
    let out = u.ok(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", "id -u; stat -c %u /bin/busybox; echo x > /dev/null && echo null-ok"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "null-ok"], "{out}");

    // A container that keeps running, and exec into it.
    u.ok(&["run", "-d", "--network", "none", "--name", "keep", "busybox", "sleep", "300"]);
    assert_eq!(u.ok(&["exec", "keep", "cat", "/proc/1/cmdline"]).replace('\0', " ").trim(), "sleep 300");
    // As the host sees it: the container's root is the user.
    let pid: i32 = u.ok(&["inspect", "-f", "{{.State.Pid}}", "keep"]).trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(host_uid, u.uid.to_string(), "{status}");
    // Its monitor (init's parent) runs from a read-only clone of the
    // user's berth, not from a copy of it in memory, though berth entered
    // the user's mount namespace after its exec.
    let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().to_string();
    let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).unwrap();
    assert!(!exe.to_string_lossy().contains("memfd:"), "the monitor runs from {}", exe.display());

    // A volume with the user's files.
    u.ok(&["run", "--rm", "--network", "none", "-v", "data:/d", "busybox", "sh", "-c", "echo hi > /d/f; chown 1000 /d/f"]);
    let vol: serde_json::Value = serde_json::from_str(&u.ok(&["volume", "inspect", "data"])).unwrap();
    let mp = vol[0]["Mountpoint"].as_str().expect("a mountpoint").to_string();
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::metadata(PathBuf::from(mp).join("f")).unwrap();
    let start: u32 = std::fs::read_to_string("/etc/subuid").unwrap().lines().find_map(|l| l.strip_prefix(&format!("{}:", u.name))?.split(':').next()?.parse().ok()).unwrap();
    assert_eq!(f.uid(), start + 999, "uid 1000 inside is the user's subordinate id 999");

    // Limits cannot hold without cgroups here (v1): said, and ignored.
    let o = u.berth(&["run", "--rm", "--network", "none", "-m", "64m", "busybox", "true"]);
    assert!(o.ok() && o.stderr.contains("ignored"), "{o}");

    // Never more than the user: a root-owned file through a bind mount
    // cannot be written, nor root's home read.
    let secret = env.dir.join("root-only");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("f"), "root's\n").unwrap();
    Command::new("chmod").args(["0755", secret.to_str().unwrap()]).status().unwrap();
    Command::new("chmod").args(["0644", secret.join("f").to_str().unwrap()]).status().unwrap();
    let m = format!("{}:/m", secret.display());
    let o = u.berth(&["run", "--rm", "--network", "none", "-v", &m, "busybox", "sh", "-c", "echo evil >> /m/f"]);
    assert!(!o.ok(), "{o}");
    assert_eq!(std::fs::read_to_string(secret.join("f")).unwrap(), "root's\n");
    let o = u.berth(&["run", "--rm", "--network", "none", "-v", "/root:/r", "busybox", "ls", "/r"]);
    assert!(!o.ok(), "root's home stays closed: {o}");
    let o = u.berth(&["run", "--rm", "--network", "none", "busybox", "mount", "-t", "tmpfs", "t", "/mnt"]);
    assert!(!o.ok(), "no mounting inside: {o}");

    let _tun = networks(&env, &u);

    // A pull from a registry on loopback (pushed by rootful berth), run.
    let reg = crate::registry::Registry::start(&env, None);
    let name = format!("{}/lab/bb:1", reg.addr);
    env.ok(&["image", "import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), &name]);
    env.ok(&["push", &name]);
    u.ok(&["pull", &name]);
    assert_eq!(u.ok(&["run", "--rm", "--network", "none", &name, "echo", "pulled"]).trim(), "pulled");

    // A test script through the test runner, which cleans up after it.
    let t = u.home.join("t.rhai");
    std::fs::write(&t, r#"
let c = run("busybox", #{ network: "none", cmd: ["sleep", "30"] });
assert(c.exec(["echo", "in"]).stdout.contains("in"));
let n = network("tnet");
let a = run("busybox", #{ name: "sa", network: "tnet", cmd: ["sleep", "30"] });
let b = run("busybox", #{ network: "tnet", cmd: ["sleep", "30"] });
assert(b.exec(["ping", "-c1", "-W2", "sa"]).code == 0);
"#).unwrap();
    Command::new("chmod").args(["a+r", t.to_str().unwrap()]).status().unwrap();
    let o = u.berth(&["test", t.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    assert_eq!(u.ok(&["ps", "-q"]).lines().count(), 1, "only keep is left: {}", u.ok(&["ps"]));
    assert!(!u.ok(&["network", "ls"]).contains("tnet"), "the script's network is gone");

    u.ok(&["rm", "-f", "keep"]);
    // Rootful berth never sees the user's objects.
    assert!(!env.ok(&["ps", "-a"]).contains("keep"));
}

/// A device's mode for a test's run, put back afterwards. This host has
/// no udev and keeps /dev/net/tun and /dev/fuse 0600; distributions ship
/// them 0666.
struct DevMode(&'static str, u32);

impl DevMode {
    fn set(dev: &'static str, mode: u32) -> DevMode {
        use std::os::unix::fs::PermissionsExt;
        let was = std::fs::metadata(dev).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(dev, std::fs::Permissions::from_mode(mode)).unwrap();
        DevMode(dev, was)
    }
}

impl Drop for DevMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(self.1));
    }
}

/// A host-side address for egress: on a bridge the test makes, so that
/// nothing leaves the host. Removed when dropped.
struct Upstream {
    link: String,
    addr: String,
}

impl Upstream {
    fn new() -> Upstream {
        let n = std::process::id() % 200;
        let up = Upstream { link: format!("brlup{n}"), addr: format!("198.51.100.{}", 20 + n) };
        let ok = Command::new("ip").args(["link", "add", &up.link, "type", "bridge"]).status().unwrap().success()
            && Command::new("ip").args(["addr", "add", &format!("{}/32", up.addr), "dev", &up.link]).status().unwrap().success()
            && Command::new("ip").args(["link", "set", &up.link, "up"]).status().unwrap().success();
        assert!(ok, "making {}", up.link);
        up
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// User networks, egress and published ports, through the user's rootless
/// network namespace and slirp4netns.
fn networks(env: &Env, u: &User) -> DevMode {
    use std::io::{Read, Write};
    {
        let _tun = DevMode::set("/dev/net/tun", 0o600);
        let o = u.berth(&["run", "--rm", "busybox", "true"]);
        assert!(o.code == 125 && o.stderr.contains("/dev/net/tun") && o.stderr.contains("chmod 0666 /dev/net/tun"), "the error names the device and the fix: {o}");
    }
    let tun = DevMode::set("/dev/net/tun", 0o666);

    // The default network: an address, a route out.
    let out = u.ok(&["run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0; ip route"]);
    assert!(out.contains("inet ") && out.contains("default via"), "{out}");

    // A user network: two containers reach each other by name.
    u.ok(&["network", "create", "lab"]);
    u.ok(&["run", "-d", "--name", "web", "--network", "lab", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let out = u.ok(&["run", "--rm", "--network", "lab", "busybox", "sh", "-c", "ping -c1 -W2 web >/dev/null && echo reached; timeout 3 wget -qO- http://web/hostname"]);
    let web_id = u.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    assert!(out.contains("reached") && out.contains(&web_id.trim()[..12]), "{out}");

    // Egress: the container reaches an upstream host (here a bridge of
    // the host's, made by the test) as the user's own connection.
    let up = Upstream::new();
    let l = std::net::TcpListener::bind((up.addr.as_str(), 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, peer) = l.accept().unwrap();
        let mut b = [0u8; 512];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\negress-ok\n");
        peer
    });
    let out = u.ok(&["run", "--rm", "--network", "lab", "busybox", "sh", "-c", &format!("timeout 5 wget -qO- http://{}:{port}/", up.addr)]);
    assert_eq!(out.trim(), "egress-ok");
    let peer = server.join().unwrap();
    assert!(!peer.ip().is_loopback(), "the connection came from slirp4netns' socket: {peer}");

    // A published port answers on the host's loopback.
    let hp = free_port();
    u.ok(&["run", "-d", "--name", "pub", "--network", "lab", "-p", &format!("{hp}:80"), "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let pub_id = u.ok(&["inspect", "-f", "{{.Id}}", "pub"]);
    let get = || -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", hp)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n").ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        Some(r)
    };
    assert!(wait_until(Duration::from_secs(5), || get().is_some_and(|r| r.contains(&pub_id.trim()[..12]))), "127.0.0.1:{hp} reaches the container: {:?}", get());
    assert!(u.ok(&["port", "pub"]).contains(&hp.to_string()));
    // Removed, the port is closed again.
    u.ok(&["rm", "-f", "pub"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", hp)).is_err(), "port {hp} closed with its container");

    // Below net.ipv4.ip_unprivileged_port_start: refused, the sysctl named.
    let o = u.berth(&["run", "--rm", "--network", "lab", "-p", "80:80", "busybox", "true"]);
    assert!(o.code == 125 && o.stderr.contains("ip_unprivileged_port_start"), "{o}");

    // The host's network, as the user has it.
    let out = u.ok(&["run", "--rm", "--network", "host", "busybox", "cat", &format!("/sys/class/net/{}/operstate", up.link)]);
    assert!(!out.trim().is_empty(), "{out}");

    // A build whose RUN step runs in a container of the user's.
    let ctx = u.home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN id -u > /who && chown 1000 /who\n").unwrap();
    Command::new("chmod").args(["-R", "a+rX", ctx.to_str().unwrap()]).status().unwrap();
    u.ok(&["build", "-t", "built", ctx.to_str().unwrap()]);
    // (Builds never reach the network, rootful or not.)
    assert_eq!(u.ok(&["run", "--rm", "--network", "none", "built", "sh", "-c", "cat /who; stat -c %u /who"]).split_whitespace().collect::<Vec<_>>(), ["0", "1000"]);

    u.ok(&["rm", "-f", "web"]);
    u.ok(&["network", "rm", "lab"]);
    let _ = env;
    tun
}

/// Where the kernel refuses overlayfs in a user namespace (before 5.11),
/// fuse-overlayfs stands in: forced here, since this kernel allows it.
#[test]
fn a_users_containers_run_on_fuse_overlayfs_where_the_kernel_refuses_overlayfs() {
    let env = Env::bare("rootless-fuse");
    let u = User::new(&env, "f");
    let fuse = [("BERTH_ROOTLESS_OVERLAY", "fuse")];
    let tar = env.dir.join("busybox.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    Command::new("chmod").args(["a+r", tar.to_str().unwrap()]).status().unwrap();
    u.ok(&["image", "import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "busybox:latest"]);
    {
        let _fuse = DevMode::set("/dev/fuse", 0o600);
        let o = u.berth_env(&fuse, &["run", "--rm", "--network", "none", "busybox", "true"]);
        assert!(!o.ok() && o.stderr.contains("/dev/fuse") && o.stderr.contains("chmod 0666 /dev/fuse"), "the error names the device and the fix: {o}");
    }
    let _fuse = DevMode::set("/dev/fuse", 0o666);
    let ok = |args: &[&str]| {
        let o = u.berth_env(&fuse, args);
        assert!(o.ok(), "berth {}: {o}", args.join(" "));
        o.stdout
    };
    let out = ok(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", "grep ' / / ' /proc/self/mountinfo; stat -c %u /bin/busybox; echo hi > /f && chown 1000 /f && stat -c %u /f"]);
    assert!(out.contains("fuse-overlayfs"), "the root is fuse-overlayfs: {out}");
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ["0", "1000"], "{out}");

    // The writable layer survives a stop and a start.
    ok(&["run", "-d", "--name", "fz", "--network", "none", "busybox", "sleep", "300"]);
    ok(&["exec", "fz", "sh", "-c", "echo kept > /k"]);
    ok(&["stop", "-t", "0", "fz"]);
    ok(&["start", "fz"]);
    assert_eq!(ok(&["exec", "fz", "cat", "/k"]).trim(), "kept");
    ok(&["rm", "-f", "fz"]);

    // Each daemon goes with its container's mount.
    let daemons = || {
        let o = Command::new("pgrep").args(["-u", &u.name, "-x", "fuse-overlayfs"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert!(wait_until(Duration::from_secs(5), || daemons() == 0), "{} fuse-overlayfs left", daemons());
}
