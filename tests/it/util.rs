//! Shared helpers: a private berth root per test, command runners with
//! timeouts, and thorough cleanup.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The berth binary cargo built for this test run.
pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// The repository root.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Default time a single berth command may take before it counts as hung.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// stdout without the trailing newline(s).
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches(['\n', '\r'])
    }
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Waits for `child` for at most `timeout` while draining its stdout and
/// stderr; kills it on timeout (code -1, "TIMEOUT" appended to stderr).
pub fn collect(mut child: Child, timeout: Duration) -> Out {
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    if let Some(mut o) = child.stdout.take() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut b = Vec::new();
            let _ = o.read_to_end(&mut b);
            let _ = tx.send((1, b));
        });
    }
    if let Some(mut e) = child.stderr.take() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut b = Vec::new();
            let _ = e.read_to_end(&mut b);
            let _ = tx.send((2, b));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)),
            Ok(None) => {}
            Err(_) => break -1,
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break -1;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    // A process left behind that still holds our pipes (a leaked monitor)
    // must not hang the test: give the readers a moment, then move on.
    let grace = Instant::now() + Duration::from_secs(3);
    for _ in 0..2 {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((1, b)) => stdout = b,
            Ok((_, b)) => stderr = b,
            Err(_) => {
                stderr.extend_from_slice(b"\n[test harness: output pipe still held open by another process]");
                break;
            }
        }
    }
    let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
    if timed_out {
        stderr.push_str(&format!("\n[test harness: TIMEOUT after {timeout:?}, killed]"));
    }
    Out { code, stdout: String::from_utf8_lossy(&stdout).into_owned(), stderr }
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// Builds the busybox root filesystem tarball once per test binary with
/// `NO_IMPORT=1 scripts/base-images DIR`.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-it");
        std::fs::create_dir_all(&base).unwrap();
        // Drop leftovers of earlier runs whose process is gone.
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("images-").and_then(|p| p.parse::<u32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("images-{}", std::process::id()));
        let out = Command::new(Path::new(REPO).join("scripts/base-images"))
            .arg(&dir)
            .env("NO_IMPORT", "1")
            .env("BERTH", BERTH)
            .output()
            .expect("running scripts/base-images");
        assert!(
            out.status.success(),
            "NO_IMPORT=1 scripts/base-images failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tar = dir.join("busybox.tar");
        assert!(tar.is_file(), "scripts/base-images did not produce {}", tar.display());
        tar
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One private berth installation (BERTH_ROOT, BERTH_RUN) for one test.
pub struct Env {
    pub test: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Env {
    /// A fresh root with busybox:latest imported (CMD sh).
    pub fn new(test: &str) -> Env {
        let env = Env::bare(test);
        let tar = busybox_tar();
        let o = env.berth(&["image", "import", "-c", r#"CMD ["sh"]"#, tar.to_str().unwrap(), "busybox"]);
        assert!(o.ok(), "importing busybox failed: {o}");
        env
    }

    /// A fresh, empty root.
    pub fn bare(test: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Keep it short: unix socket paths live under run/.
        let dir = std::env::temp_dir().join(format!("bit-{}-{}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let run = dir.join("run");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        Env { test: test.to_string(), dir, root, run }
    }

    /// A container name unique to this test.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{}", self.test.replace('_', "-"), suffix)
    }

    /// A `berth` command with this root's environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        // Registry credentials stay in the test's own dir, never the user's.
        c.args(args)
            .env("BERTH_ROOT", &self.root)
            .env("BERTH_RUN", &self.run)
            .env("BERTH_REGISTRY_CONFIG", self.dir.join("auth.json"))
            .env_remove("BERTH_LOG");
        c
    }

    /// Runs berth with stdin closed; returns code, stdout and stderr.
    pub fn berth(&self, args: &[&str]) -> Out {
        self.berth_timeout(args, CMD_TIMEOUT)
    }

    pub fn berth_timeout(&self, args: &[&str], timeout: Duration) -> Out {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning berth");
        collect(child, timeout)
    }

    /// Runs berth feeding `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning berth");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let w = thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let o = collect(child, CMD_TIMEOUT);
        let _ = w.join();
        o
    }

    /// Runs berth and asserts it succeeded; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(o.ok(), "`berth {}` failed: {o}", args.join(" "));
        o.out().to_string()
    }

    /// `berth inspect -f FMT C`, trimmed.
    pub fn inspect_f(&self, c: &str, fmt: &str) -> String {
        self.ok(&["inspect", "-f", fmt, c])
    }

    /// `berth inspect C` parsed; the first (only) object.
    pub fn inspect(&self, c: &str) -> serde_json::Value {
        let s = self.ok(&["inspect", c]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {s}"));
        match v {
            serde_json::Value::Array(mut a) if !a.is_empty() => a.remove(0),
            other => other,
        }
    }

    pub fn status(&self, c: &str) -> String {
        self.inspect_f(c, "{{.State.Status}}")
    }

    pub fn inspect_network_subnet(&self, n: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["network", "inspect", n])).unwrap();
        v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or("").to_string()
    }

    /// The nftables table of this root (berth names it after the root).
    pub fn nft_table(&self) -> String {
        use sha2::Digest;
        format!("berth_{}", &hex::encode(sha2::Sha256::digest(self.root.to_string_lossy().as_bytes()))[..8])
    }

    /// The cgroup that holds this root's containers.
    pub fn cgroup_parent(&self) -> String {
        format!("berth-{}", &self.nft_table()["berth_".len()..])
    }

    pub fn full_id(&self, c: &str) -> String {
        self.inspect_f(c, "{{.Id}}")
    }

    pub fn pid(&self, c: &str) -> i32 {
        self.inspect_f(c, "{{.State.Pid}}").parse().expect("State.Pid is a number")
    }

    /// Waits until the container's status is `want`; panics with the last
    /// status seen otherwise.
    pub fn wait_status(&self, c: &str, want: &str, timeout: Duration) {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            let o = self.berth(&["inspect", "-f", "{{.State.Status}}", c]);
            last = o.out().to_string();
            last == want
        });
        assert!(ok, "container {c}: status stayed {last:?}, expected {want:?} within {timeout:?}");
    }

    /// Starts a detached container running `args` and waits until it runs.
    pub fn run_detached(&self, name: &str, args: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(args);
        let id = self.ok(&a);
        self.wait_status(name, "running", Duration::from_secs(10));
        id
    }

    /// Runs `cmdline` (a shell command line, the berth binary given as
    /// `berth`) under `script` so it has a terminal; the `inputs` are typed
    /// one after another with a pause before each. Returns script's exit
    /// code (the command's, thanks to -e) and the terminal output.
    pub fn script(&self, cmdline: &str, inputs: &[&str], timeout: Duration) -> Out {
        let cmdline = cmdline.replacen("berth", BERTH, 1);
        let mut child = Command::new("script")
            .args(["-qec", &cmdline, "/dev/null"])
            .env("BERTH_ROOT", &self.root)
            .env("BERTH_RUN", &self.run)
            // The REPL's history stays in the test's directory.
            .env("HOME", &self.dir)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning script (util-linux)");
        let mut stdin = child.stdin.take().unwrap();
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let w = thread::spawn(move || {
            for i in inputs {
                thread::sleep(Duration::from_millis(700));
                if stdin.write_all(i.as_bytes()).is_err() {
                    return;
                }
                let _ = stdin.flush();
            }
            // Keep the terminal open until the command is over: an early
            // EOF would end the session by itself.
            let _ = done_rx.recv();
            drop(stdin);
        });
        let o = collect(child, timeout);
        let _ = done_tx.send(());
        let _ = w.join();
        o
    }

    /// Reads a file of a running (or paused) container through `berth cp`.
    pub fn cp_out(&self, c: &str, path: &str) -> Option<String> {
        let dst = self.dir.join(format!("cp-out-{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let o = self.berth(&["cp", &format!("{c}:{path}"), dst.to_str().unwrap()]);
        if !o.ok() {
            return None;
        }
        let s = std::fs::read_to_string(&dst).ok();
        let _ = std::fs::remove_file(&dst);
        s
    }

    /// Container ids known to this root (from its containers/ directory).
    fn container_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("containers"))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }
}

/// Processes whose environment has exactly `var=value`.
pub fn pids_with_env(var: &str, value: &Path) -> Vec<i32> {
    let want = format!("{var}={}", value.display()).into_bytes();
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return v };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|kv| kv == want.as_slice())
        {
            v.push(pid);
        }
    }
    v
}

/// The cgroup directories (one per v1 controller, or the v2 one) that the
/// given container id would own.
pub fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    // Under any root's parent (berth, berth-TAG), in every hierarchy.
    let mut v = Vec::new();
    for parent in cgroup_hierarchy_dirs("berth") {
        let p = parent.join(id);
        if p.is_dir() {
            v.push(p);
        }
    }
    v
}

/// Every cgroup directory whose name starts with `prefix`, directly under a
/// hierarchy's root (v1: /sys/fs/cgroup/CTRL/, v2: /sys/fs/cgroup/).
pub fn cgroup_hierarchy_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut tops = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        tops.extend(rd.flatten().map(|e| e.path()));
    }
    let mut v = Vec::new();
    for t in tops {
        for e in std::fs::read_dir(&t).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir() && !v.contains(&e.path()) {
                v.push(e.path());
            }
        }
    }
    v
}

/// The link emulation berth picked on this host: "netem" or "userspace".
pub fn impair_mechanism(env: &Env) -> &'static str {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["system", "info", "--format", "json"])).unwrap();
    if v["link_emulation"].as_str().unwrap_or("").starts_with("tc netem") { "netem" } else { "userspace" }
}

/// The qdiscs on `dev` inside the network namespace of process `pid`.
pub fn qdiscs_in(pid: i32, dev: &str) -> String {
    let o = Command::new("nsenter").args(["-t", &pid.to_string(), "-n", "tc", "qdisc", "show", "dev", dev]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn kill(pid: i32) {
    // SAFETY: plain kill(2) on a pid we identified.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn umount_detach(p: &str) {
    if let Ok(c) = CString::new(p) {
        // SAFETY: umount2 with a valid C string.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Mount points (from /proc/self/mountinfo) under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v.dedup();
    v
}

impl Drop for Env {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        // 0a. Lab hosts hold roots, processes and links of their own.
        let labs = self.berth_timeout(&["lab", "ls"], Duration::from_secs(20));
        for lab in labs.stdout.lines().filter_map(|l| l.split('\t').next()).filter(|l| !l.is_empty()) {
            let o = self.berth_timeout(&["lab", "down", lab], Duration::from_secs(120));
            if !o.ok() {
                problems.push(format!("`berth lab down {lab}` failed: {o}"));
            }
        }
        // 0. Stacks and services hold networks (their VIPs): they go first,
        // whole, even when the test failed before removing them.
        let stacks = self.berth_timeout(&["stack", "ls"], Duration::from_secs(20));
        for st in stacks.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()) {
            let o = self.berth_timeout(&["stack", "rm", st], Duration::from_secs(60));
            if !o.ok() {
                problems.push(format!("`berth stack rm {st}` failed: {o}"));
            }
        }
        let svcs = self.berth_timeout(&["service", "ls", "-q"], Duration::from_secs(20));
        for sv in svcs.stdout.split_whitespace() {
            let o = self.berth_timeout(&["service", "rm", sv], Duration::from_secs(60));
            if !o.ok() {
                problems.push(format!("`berth service rm {sv}` failed: {o}"));
            }
        }
        // 1. Remove every container the usual way.
        let ids = self.berth_timeout(&["ps", "-a", "-q"], Duration::from_secs(20));
        let ids: Vec<String> = ids.stdout.split_whitespace().map(String::from).collect();
        if !ids.is_empty() {
            let mut a = vec!["rm", "-f"];
            a.extend(ids.iter().map(|s| s.as_str()));
            let o = self.berth_timeout(&a, Duration::from_secs(30));
            if !o.ok() {
                problems.push(format!("`berth rm -f {}` failed: {o}", ids.join(" ")));
            }
        }
        // 1b. Networks: their bridges must not outlive the test. The
        // default one refuses `network rm`, as docker's: `system reset`
        // takes it (and would take anything step 1 missed).
        let nets = self.berth_timeout(&["network", "ls"], Duration::from_secs(20));
        for n in nets.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).filter(|n| *n != "bridge") {
            let o = self.berth_timeout(&["network", "rm", n], Duration::from_secs(20));
            if !o.ok() {
                problems.push(format!("`berth network rm {n}` failed: {o}"));
            }
        }
        let o = self.berth_timeout(&["system", "reset", "-f"], Duration::from_secs(60));
        if !o.ok() {
            problems.push(format!("`berth system reset -f` failed: {o}"));
        }
        // With no network left, this root's nftables table must be gone.
        let t = self.nft_table();
        if std::process::Command::new("nft").args(["list", "table", "ip", &t]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false) {
            let _ = std::process::Command::new("nft").args(["delete", "table", "ip", &t]).status();
            problems.push(format!("nftables table {t} was left after its networks were removed"));
        }
        // 2. No monitor (or any other berth process) of this root may stay.
        let gone = wait_until(Duration::from_secs(5), || pids_with_env("BERTH_ROOT", &self.root).is_empty());
        if !gone {
            let left = pids_with_env("BERTH_ROOT", &self.root);
            let desc: Vec<String> = left
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
                })
                .collect();
            for p in &left {
                kill(*p);
            }
            problems.push(format!("processes of this root still alive after rm -f (killed): {desc:?}"));
        }
        // 2b. berth's own leak check must find nothing, nor its loss table.
        let o = self.berth_timeout(&["system", "check"], Duration::from_secs(20));
        if o.code != 0 {
            let _ = self.berth_timeout(&["system", "check", "--repair"], Duration::from_secs(20));
            problems.push(format!("`berth system check` found leftovers: {o}"));
        }
        if std::process::Command::new("nft").args(["list", "table", "netdev", &t]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false) {
            let _ = std::process::Command::new("nft").args(["delete", "table", "netdev", &t]).status();
            problems.push(format!("nftables table netdev {t} was left after its containers were removed"));
        }
        // 3. Processes left in our containers' cgroups, and the cgroups.
        for id in self.container_dirs() {
            for d in cgroup_dirs_of(&id) {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for p in procs.split_whitespace().filter_map(|s| s.parse::<i32>().ok()) {
                        kill(p);
                    }
                }
            }
            for d in cgroup_dirs_of(&id) {
                let _ = wait_until(Duration::from_secs(2), || std::fs::remove_dir(&d).is_ok() || !d.exists());
            }
        }
        // 3b. The root's own cgroup goes with `system reset`.
        let parent = self.cgroup_parent();
        let left = cgroup_hierarchy_dirs(&parent);
        if !left.is_empty() {
            for d in &left {
                let _ = std::fs::remove_dir(d);
            }
            problems.push(format!("cgroups of this root were left: {left:?}"));
        }
        // 4. Mounts under our directory.
        for m in mounts_under(&self.dir) {
            umount_detach(&m);
        }
        // 5. The directory itself.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            // A lazily detached mount may still be going away.
            thread::sleep(Duration::from_millis(200));
            if let Err(e2) = std::fs::remove_dir_all(&self.dir) {
                problems.push(format!("removing {}: {e} / {e2}", self.dir.display()));
            }
        }
        if !problems.is_empty() && !thread::panicking() {
            panic!("cleanup of test {} found problems:\n{}", self.test, problems.join("\n"));
        }
    }
}

/// Hex digits only, of the given length.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of a `Key:\tvalue` line in a /proc/PID/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim()))
}

/// The host's hostname, as the kernel has it.
pub fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// True when no two elements are equal.
pub fn unique<T: std::hash::Hash + Eq + Clone>(v: &[T]) -> bool {
    let s: HashSet<T> = v.iter().cloned().collect();
    s.len() == v.len()
}

/// A program on a pseudo-terminal of its own, made its controlling one
/// with `setsid --ctty` (so Ctrl-C is a SIGINT and a resize a SIGWINCH),
/// as a user runs it. A thread collects what it writes.
pub struct Pty {
    pub child: Child,
    master: std::fs::File,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    /// Runs `base` (program, arguments and environment) with TERM=xterm
    /// and `env` on a `rows`×`cols` terminal.
    pub fn spawn(base: Command, rows: u16, cols: u16, env: &[(&str, &std::ffi::OsStr)]) -> Pty {
        let ws = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        // Other tests' children must not inherit the terminal and keep it open.
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).expect("FD_CLOEXEC on the pty");
        }
        let mut cmd = Command::new("setsid");
        cmd.arg("--ctty").arg(base.get_program()).args(base.get_args());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("TERM", "xterm");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let slave = || Stdio::from(pty.slave.try_clone().expect("dup pty"));
        let child = cmd.stdin(slave()).stdout(slave()).stderr(slave()).spawn().expect("spawning setsid --ctty");
        drop(pty.slave);
        let mut out = std::fs::File::from(pty.master.try_clone().expect("dup pty master"));
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        // Not joined: it ends with the terminal (EIO once everyone holding
        // it is gone), and a process left holding it must not hang a test.
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, master: std::fs::File::from(pty.master), output }
    }

    /// Everything written to the terminal so far.
    pub fn raw(&self) -> Vec<u8> {
        self.output.lock().unwrap().clone()
    }

    pub fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("typing into the terminal");
        self.master.flush().unwrap();
    }

    /// The user's window changes size: the kernel tells the program.
    pub fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a winsize on the stack, on our open master.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The program's exit code, or None when it did not end within `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
