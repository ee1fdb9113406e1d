//! Checkpoint and restore through CRIU (Debian's 3.17). It works in the VM
//! (Debian's 6.1 kernel); CRIU before 4.0 fails on kernels from 6.13, and
//! there the test checks berth's refusal instead, with the container left
//! running.

use std::time::Duration;

use crate::util::*;

/// Whether CRIU can work here; else asserts berth's refusal on `c`.
fn criu_works_or_refused(env: &Env, c: &str) -> bool {
    let v = std::process::Command::new("criu").arg("--version").output().expect("criu (Debian's criu package; scripts/deps installs it)");
    let text = String::from_utf8_lossy(&v.stdout).to_string();
    let major: u32 = text.lines().find_map(|l| l.strip_prefix("Version:")).and_then(|v| v.trim().split('.').next()?.parse().ok()).unwrap();
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut k = rel.trim().split(['.', '-']).map(|x| x.parse::<u32>().unwrap_or(0));
    let kernel = (k.next().unwrap(), k.next().unwrap());
    if major >= 4 || kernel < (6, 13) {
        return true;
    }
    let o = env.berth(&["checkpoint", "create", c, "cp1"]);
    assert!(!o.ok() && o.stderr.contains("cannot checkpoint on this kernel") && o.stderr.contains("CRIU 4.0"), "the refusal names the CRIU version it needs: {o}");
    assert_eq!(env.status(c), "running", "refused before touching the container");
    assert!(env.ok(&["checkpoint", "ls", c]).lines().count() <= 1, "no checkpoint made");
    false
}

// /count is replaced whole (a rename), so a reader never sees it empty.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i; echo $i > /count.new; mv /count.new /count; sleep 0.05; done";

fn count(env: &Env, c: &str) -> u64 {
    env.ok(&["exec", c, "cat", "/count"]).trim().parse().unwrap()
}

/// The counter's numbers in a log.
fn numbers(logs: &str) -> Vec<u64> {
    logs.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The highest number a container has logged so far.
fn logged(env: &Env, c: &str) -> Option<u64> {
    numbers(&env.ok(&["logs", c])).into_iter().max()
}

/// The log's numbers run on by one: never back to 1, never a repeat.
fn continuous(logs: &str) -> bool {
    let n = numbers(logs);
    !n.is_empty() && n.windows(2).all(|w| w[1] == w[0] + 1)
}

#[test]
fn a_checkpointed_counter_keeps_counting_after_its_restore() {
    let env = Env::new("checkpoint");
    let net = env.name("net");
    env.ok(&["network", "create", &net]);
    let c = env.name("cnt");
    env.run_detached(&c, &["--network", &net, "-v", &format!("{}:/v", env.name("vol")), "busybox", "sh", "-c", &format!("echo kept > /v/f; echo layer > /layer; {COUNTER}")]);
    assert!(wait_until(Duration::from_secs(10), || count(&env, &c) > 5));
    if !criu_works_or_refused(&env, &c) {
        env.ok(&["rm", "-f", &c]);
        return;
    }
    let ip = env.inspect_f(&c, &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"));
    let created = env.inspect_f(&c, "{{.Created}}");

    // --leave-running: a checkpoint, and it goes on.
    let before = count(&env, &c);
    env.ok(&["checkpoint", "create", "--leave-running", &c, "early"]);
    assert_eq!(env.status(&c), "running");
    assert!(wait_until(Duration::from_secs(5), || count(&env, &c) > before + 3), "it keeps counting");

    // A checkpoint that stops it, then a restore.
    env.ok(&["checkpoint", "create", &c, "cp1"]);
    assert_eq!(env.status(&c), "exited", "checkpointed without --leave-running, it stops");
    let at = logged(&env, &c).unwrap();
    let ls = env.ok(&["checkpoint", "ls", &c]);
    assert!(ls.contains("early") && ls.contains("cp1"), "{ls}");
    env.ok(&["start", "--checkpoint", "cp1", &c]);
    assert_eq!(env.status(&c), "running");
    assert!(wait_until(Duration::from_secs(5), || count(&env, &c) > at + 3), "the counter counts on from {at}");
    let logs = env.ok(&["logs", &c]);
    assert!(continuous(&logs), "the same shell, its variable kept: no reset, no gap in\n{logs}");
    assert_eq!(env.inspect_f(&c, &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}")), ip, "its address is kept");
    assert_eq!(env.inspect_f(&c, "{{.Created}}"), created, "its creation time is kept");
    assert_eq!(env.ok(&["exec", &c, "sh", "-c", "cat /v/f /layer"]).split_whitespace().collect::<Vec<_>>(), ["kept", "layer"]);
    // A peer on the network still reaches it by name.
    let out = env.ok(&["run", "--rm", "--network", &net, "busybox", "ping", "-c1", "-W2", &c]);
    assert!(out.contains("1 packets received"), "{out}");

    // Export, and a new container from the archive under another name.
    let archive = env.dir.join("cp.tar.zst");
    env.ok(&["container", "checkpoint", "--export", archive.to_str().unwrap(), &c]);
    assert_eq!(env.status(&c), "exited");
    let at = logged(&env, &c).unwrap();
    let c2 = env.name("copy");
    env.ok(&["container", "restore", "--import", archive.to_str().unwrap(), "--name", &c2]);
    assert_eq!(env.status(&c2), "running");
    assert!(wait_until(Duration::from_secs(5), || count(&env, &c2) > at + 3), "the copy counts on from {at}");

    // A corrupted archive is refused and changes nothing.
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = env.dir.join("bad.tar.zst");
    std::fs::write(&bad, &bytes).unwrap();
    let before = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let c3 = env.name("bad");
    let o = env.berth(&["container", "restore", "--import", bad.to_str().unwrap(), "--name", &c3]);
    assert!(!o.ok() && o.stderr.contains("nothing was changed"), "{o}");
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]), before, "no container was made");

    env.ok(&["checkpoint", "rm", &c, "early"]);
    assert!(!env.ok(&["checkpoint", "ls", &c]).contains("early"));
    env.ok(&["rm", "-f", &c, &c2]);
    env.ok(&["network", "rm", &net]);
}

/// An established TCP connection from a client container to a server on
/// the same network survives the client's checkpoint and restore.
#[test]
fn a_tcp_connection_survives_a_checkpoint_with_tcp_established() {
    let env = Env::new("checkpoint-tcp");
    let net = env.name("net");
    env.ok(&["network", "create", &net]);
    let srv = env.name("srv");
    env.run_detached(&srv, &["--network", &net, "busybox", "sh", "-c", "sleep 100000 | nc -l -p 7000 > /got"]);
    let cli = env.name("cli");
    env.run_detached(&cli, &["--network", &net, "busybox", "sh", "-c", &format!("sleep 0.5; i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done | nc {srv} 7000")]);
    let got = |env: &Env| -> u64 { env.ok(&["exec", &srv, "sh", "-c", "tail -n1 /got"]).trim().parse().unwrap_or(0) };
    assert!(wait_until(Duration::from_secs(10), || got(&env) > 5), "the client sends");
    if !criu_works_or_refused(&env, &cli) {
        env.ok(&["rm", "-f", &cli, &srv]);
        return;
    }
    env.ok(&["checkpoint", "create", "--tcp-established", &cli, "t1"]);
    let at = got(&env);
    env.ok(&["start", "--checkpoint", "t1", &cli]);
    assert!(wait_until(Duration::from_secs(10), || got(&env) > at + 5), "the same connection carries on past {at}");
    let all = env.ok(&["exec", &srv, "cat", "/got"]);
    assert!(continuous(&all), "one connection, nothing lost or repeated:\n{all}");
    assert_eq!(env.status(&srv), "running", "the server's nc never saw the connection close");
    env.ok(&["rm", "-f", &cli, &srv]);
    env.ok(&["network", "rm", &net]);
}

/// The same from a script: checkpoint(), restore(), restore_import().
#[test]
fn a_script_checkpoints_and_restores() {
    let env = Env::new("checkpoint-script");
    let c = env.name("s");
    env.run_detached(&c, &["busybox", "sh", "-c", COUNTER]);
    if !criu_works_or_refused(&env, &c) {
        env.ok(&["rm", "-f", &c]);
        return;
    }
    let archive = env.dir.join("s.tar.zst");
    let script = env.dir.join("t.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
let c = container("{c}");
let n = c.checkpoint(#{{ name: "one" }});
assert(n == "one");
assert(c.state == "exited");
c.restore("one");
assert(c.state == "running");
sleep(300);
let s = c.exec(["cat", "/count"]).stdout;
s.trim();
let a = parse_int(s);
c.checkpoint(#{{ name: "two", leave_running: true, export_to: "{archive}" }});
assert(c.state == "running");
assert(c.checkpoints() == ["one", "two"]);
let d = restore_import("{archive}", #{{ name: "{c}-2" }});
sleep(300);
let t = d.exec(["cat", "/count"]).stdout;
t.trim();
let b = parse_int(t);
assert(b > a);
print("counted on");
"#,
            archive = archive.display()
        ),
    )
    .unwrap();
    let o = env.berth(&["run", script.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("counted on"), "{o}");
    env.ok(&["rm", "-f", &c, &format!("{c}-2")]);
}

fn lab(env: &Env, name: &str, host: u32, args: &[&str]) -> Out {
    let h = format!("h{host}");
    let mut a = vec!["lab", "exec", name, &h, "berth"];
    a.extend_from_slice(args);
    env.berth_timeout(&a, Duration::from_secs(120))
}

fn lab_ok(env: &Env, name: &str, host: u32, args: &[&str]) -> String {
    let o = lab(env, name, host, args);
    assert!(o.ok(), "berth {} on h{host}: {o}", args.join(" "));
    o.stdout.trim_end().to_string()
}

/// `container migrate` between two lab hosts of a swarm: the counter goes
/// on over there with its address, its TCP connection to a peer on the
/// overlay stays open, and the peer reaches it by name.
#[test]
fn migrate_moves_a_running_container_to_another_node_with_its_overlay_address() {
    let env = Env::new("checkpoint-migrate");
    let c = env.name("mc");
    env.run_detached(&c, &["busybox", "sh", "-c", COUNTER]);
    let o = env.berth(&["container", "migrate", &c, "elsewhere"]);
    assert!(!o.ok() && o.stderr.contains("swarm"), "outside a swarm it says so: {o}");
    if !criu_works_or_refused(&env, &c) {
        env.ok(&["rm", "-f", &c]);
        return;
    }
    env.ok(&["rm", "-f", &c]);
    let name = env.name("dc");
    env.ok(&["lab", "hosts", &name, "2", "--image", "busybox", "--swarm"]);
    lab_ok(&env, &name, 0, &["network", "create", "-d", "overlay", "--attachable", "onet"]);
    // The peer stays on h0 and listens; mc keeps one TCP connection to it
    // open across the move, besides its counter.
    lab_ok(&env, &name, 0, &["run", "-d", "--network", "onet", "--name", "peer", "busybox", "sh", "-c", "sleep 100000 | nc -l -p 7000 > /got"]);
    let sender = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done | nc peer 7000";
    lab_ok(&env, &name, 0, &["run", "-d", "--network", "onet", "--name", "mc", "busybox", "sh", "-c", &format!("({sender}) & {COUNTER}")]);
    let got = || -> u64 { lab(&env, &name, 0, &["exec", "peer", "sh", "-c", "tail -n1 /got"]).stdout.trim().parse().unwrap_or(0) };
    assert!(wait_until(Duration::from_secs(10), || got() > 5), "mc sends to the peer over the overlay");
    let ip = lab_ok(&env, &name, 0, &["inspect", "-f", "{{(index .NetworkSettings.Networks \"onet\").IPAddress}}", "mc"]);
    let cnt = |h: u32| -> u64 { lab(&env, &name, h, &["exec", "mc", "cat", "/count"]).stdout.trim().parse().unwrap_or(0) };
    assert!(wait_until(Duration::from_secs(10), || cnt(0) > 5));
    let t0 = std::time::Instant::now();
    let out = lab_ok(&env, &name, 0, &["container", "migrate", "mc", &format!("{name}-h1")]);
    eprintln!("migrated in {:?}: {out}", t0.elapsed());
    assert!(!lab_ok(&env, &name, 0, &["ps", "-a", "--format", "{{.Names}}"]).lines().any(|l| l == "mc"), "gone from h0");
    assert_eq!(lab_ok(&env, &name, 1, &["inspect", "-f", "{{.State.Status}}", "mc"]), "running");
    assert_eq!(lab_ok(&env, &name, 1, &["inspect", "-f", "{{(index .NetworkSettings.Networks \"onet\").IPAddress}}", "mc"]), ip, "the same overlay address");
    let logs = lab_ok(&env, &name, 1, &["logs", "mc"]);
    let at = numbers(&logs).into_iter().min().unwrap_or(0);
    assert!(at > 5, "its log came along and counts on from before: starts at {at}");
    assert!(wait_until(Duration::from_secs(5), || cnt(1) > at + 5), "it counts on over there");
    assert!(continuous(&lab_ok(&env, &name, 1, &["logs", "mc"])), "no reset");
    // The connection from h1 to the peer on h0 carries on: same socket.
    let sent = got();
    assert!(wait_until(Duration::from_secs(10), || got() > sent + 5), "the TCP connection carries on past {sent} from h1");
    let all = lab_ok(&env, &name, 0, &["exec", "peer", "cat", "/got"]);
    assert!(continuous(&all), "one connection, nothing lost or repeated:\n{all}");
    assert_eq!(lab_ok(&env, &name, 0, &["inspect", "-f", "{{.State.Status}}", "peer"]), "running", "the peer's nc never saw the connection close");
    // The peer left behind on h0 reaches it by name, across the overlay.
    assert!(wait_until(Duration::from_secs(10), || lab(&env, &name, 0, &["exec", "peer", "ping", "-c1", "-W1", "mc"]).ok()), "the peer reaches mc on h1");
    env.ok(&["lab", "down", &name]);
}

/// A checkpoint CRIU cannot make leaves the container running; a restore
/// that fails leaves it stopped with its files as they were.
#[test]
fn a_failed_checkpoint_or_restore_leaves_the_container_as_it_was() {
    let env = Env::new("checkpoint-fail");
    let c = env.name("f");
    // An open file of 2 MB that was deleted: past CRIU's limit for such
    // "ghost" files (1 MB), so its dump fails.
    env.run_detached(&c, &["busybox", "sh", "-c", &format!("head -c 2000000 /dev/zero > /big; exec 3</big; rm /big; {COUNTER}")]);
    assert!(wait_until(Duration::from_secs(10), || count(&env, &c) > 2));
    if !criu_works_or_refused(&env, &c) {
        env.ok(&["rm", "-f", &c]);
        return;
    }
    let o = env.berth(&["checkpoint", "create", &c, "cp1"]);
    assert!(!o.ok() && o.stderr.contains("criu dump failed") && o.stderr.contains("goes on running"), "{o}");
    assert_eq!(env.status(&c), "running");
    let before = count(&env, &c);
    assert!(wait_until(Duration::from_secs(5), || count(&env, &c) > before + 3), "still counting");
    assert!(!env.ok(&["checkpoint", "ls", &c]).contains("cp1"), "no half-written checkpoint");
    env.ok(&["rm", "-f", &c]);

    // A restore from damaged images.
    env.run_detached(&c, &["busybox", "sh", "-c", COUNTER]);
    assert!(wait_until(Duration::from_secs(10), || count(&env, &c) > 2));
    env.ok(&["checkpoint", "create", &c, "cp2"]);
    env.ok(&["start", &c]);
    env.ok(&["exec", &c, "sh", "-c", "echo after > /after"]);
    env.ok(&["stop", "-t", "0", &c]);
    let id = env.full_id(&c);
    let images = env.root.join("containers").join(&id).join("checkpoints/cp2/criu");
    for e in std::fs::read_dir(&images).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("core-") {
            std::fs::write(e.path(), b"damaged").unwrap();
        }
    }
    let o = env.berth(&["start", "--checkpoint", "cp2", &c]);
    assert!(!o.ok(), "{o}");
    assert_eq!(env.status(&c), "exited", "not half restored");
    env.ok(&["start", &c]);
    assert_eq!(env.ok(&["exec", &c, "cat", "/after"]), "after", "its files as before the failed restore");
    env.ok(&["rm", "-f", &c]);
}

/// A container with a terminal (-t) keeps one: its output goes on through
/// the new monitor's pty into its log.
#[test]
fn a_container_with_a_terminal_keeps_it_across_a_restore() {
    let env = Env::new("checkpoint-tty");
    let c = env.name("t");
    env.run_detached(&c, &["-t", "busybox", "sh", "-c", COUNTER]);
    assert!(wait_until(Duration::from_secs(10), || count(&env, &c) > 2));
    if !criu_works_or_refused(&env, &c) {
        env.ok(&["rm", "-f", &c]);
        return;
    }
    env.ok(&["checkpoint", "create", &c, "cp1"]);
    let at = logged(&env, &c).unwrap();
    env.ok(&["start", "--checkpoint", "cp1", &c]);
    assert!(wait_until(Duration::from_secs(5), || logged(&env, &c).unwrap_or(0) > at + 5), "its output flows on past {at}");
    let logs = env.ok(&["logs", &c]);
    assert!(continuous(&logs), "{logs}");
    // Its init writes to a terminal (a pts, major 136), the monitor's new one.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(format!("/proc/{}/fd/1", env.pid(&c))).unwrap();
    assert!(md.file_type().is_char_device() && nix_major(md.rdev()) == 136, "fd 1 of init: rdev {:x}", md.rdev());
    assert_eq!(env.inspect_f(&c, "{{.Config.Tty}}"), "true");
    env.ok(&["rm", "-f", &c]);
}

fn nix_major(rdev: u64) -> u64 {
    ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)
}
