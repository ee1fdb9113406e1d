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
/// Here each copy is berth alone, which then runs its monitor and exec
/// helper itself.
#[test]
fn exec_cannot_overwrite_the_host_berth_binary() {
    let env = Env::new("esc_exe");
    let a = env.dir.join("berth-a");
    let b = env.dir.join("berth-b");
    std::fs::copy(BERTH, &a).unwrap();
    std::fs::copy(BERTH, &b).unwrap();
    overwrite_attempt(&env, &a, &b, &[]);
}

/// The same with berth-monitor installed beside each copy: the monitor
/// and the exec helper are that small binary, which may not change either.
#[test]
fn exec_cannot_overwrite_the_host_monitor_binary() {
    let env = Env::new("esc_mon");
    let small = Path::new(BERTH).with_file_name("berth-monitor");
    let mut watched = Vec::new();
    let mut bins = Vec::new();
    for d in ["a", "b"] {
        let dir = env.dir.join(d);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(BERTH, dir.join("berth")).unwrap();
        std::fs::copy(&small, dir.join("berth-monitor")).unwrap();
        bins.push(dir.join("berth"));
        watched.push(dir.join("berth-monitor"));
    }
    overwrite_attempt(&env, &bins[0], &bins[1], &watched);
}

/// Runs the attack in a container of copy `a`, entered by `b`'s exec;
/// neither copy, nor any of `more`, may change.
fn overwrite_attempt(env: &Env, a: &Path, b: &Path, more: &[std::path::PathBuf]) {
    let (fa, fb) = (fingerprint(a), fingerprint(b));
    let fmore: Vec<u64> = more.iter().map(|p| fingerprint(p)).collect();
    let c = env.name("c");
    let o = berth_at(env, a, &["run", "-d", "--name", &c, "busybox", "sh", "-c", "while [ ! -e /attack.sh ]; do usleep 50000; done; sh /attack.sh; sleep 1000"]);
    assert!(o.ok(), "{o}");
    if let Some(small) = more.first() {
        // The monitor (init's parent) runs the small binary, not berth.
        let pid = berth_at(env, a, &["inspect", "-f", "{{.State.Pid}}", &c]).stdout.trim().to_string();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().to_string();
        let size = std::fs::metadata(format!("/proc/{ppid}/exe")).unwrap().len();
        assert_eq!(size, std::fs::metadata(small).unwrap().len(), "the monitor runs {}", small.display());
    }
    for lib in libraries(b) {
        let dir = Path::new(&lib).parent().unwrap().to_str().unwrap().to_string();
        assert!(berth_at(env, a, &["exec", &c, "mkdir", "-p", &dir]).ok());
        let real = std::fs::canonicalize(&lib).unwrap();
        let o = berth_at(env, a, &["cp", real.to_str().unwrap(), &format!("{c}:{lib}")]);
        assert!(o.ok(), "{o}");
    }
    let script = env.dir.join("attack.sh");
    std::fs::write(&script, ATTACK).unwrap();
    assert!(berth_at(env, a, &["cp", script.to_str().unwrap(), &format!("{c}:/attack.sh")]).ok());
    // Read with cp, not exec: an exec of copy A would put a berth process
    // in the container for the attacker to catch first, and copy A is kept
    // busy by the monitor, so its write would be refused for that reason.
    let out = env.dir.join("result");
    let result = || {
        let _ = std::fs::remove_file(&out);
        berth_at(env, a, &["cp", &format!("{c}:/result"), out.to_str().unwrap()]);
        std::fs::read_to_string(&out).unwrap_or_default()
    };
    assert!(wait_until(Duration::from_secs(10), || result().contains("waiting")), "the attacker did not start: {}", result());
    // Catching a process that lives a few ms is a race: try a few times.
    let mut tries = 0;
    while tries < 30 && result().contains("waiting") {
        tries += 1;
        berth_at(env, b, &["exec", &c, "/pwn"]);
    }
    assert!(!result().contains("waiting"), "the attacker never saw berth inside the container in {tries} tries: the test tried nothing");
    assert!(wait_until(Duration::from_secs(10), || result().lines().count() > 1), "attack unfinished: {}", result());
    let r = result();
    assert_eq!(fingerprint(b), fb, "the container overwrote the host's berth binary: {r}");
    assert_eq!(fingerprint(a), fa, "the container overwrote the monitor's berth binary: {r}");
    for (p, f) in more.iter().zip(&fmore) {
        assert_eq!(fingerprint(p), *f, "the container overwrote {}: {r}", p.display());
    }
    assert!(r.contains("write refused"), "{r}");
    berth_at(env, a, &["rm", "-f", &c]);
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

// Hostile archives. Each must end, in bounded memory and time, with the
// image stored or a clear error, and leave nothing behind on failure.

/// What one berth run cost: its output, peak resident memory (VmHWM, KiB,
/// sampled while it runs) and wall time.
struct Cost {
    out: Out,
    peak_kib: u64,
    secs: f64,
}

fn berth_measured(env: &Env, args: &[&str], vars: &[(&str, &str)], timeout: Duration) -> Cost {
    let mut cmd = env.cmd(args);
    cmd.envs(vars.iter().copied());
    let start = std::time::Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while stop_rx.try_recv().is_err() {
            if let Some(kib) = std::fs::read_to_string(&status).ok().as_deref().and_then(|s| status_field(s, "VmHWM")).and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok()) {
                peak = peak.max(kib);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let out = collect(child, timeout);
    let secs = start.elapsed().as_secs_f64();
    stop_tx.send(()).unwrap();
    let peak_kib = sampler.join().unwrap();
    eprintln!("berth {}: {secs:.1} s, peak RSS {} MiB", args.join(" "), peak_kib / 1024);
    Cost { out, peak_kib, secs }
}

/// Nothing of a refused archive may stay: no layer, no scratch directory.
fn assert_left_nothing(env: &Env) {
    for sub in ["layers", "tmp"] {
        let d = env.root.join(sub);
        let left: Vec<_> = std::fs::read_dir(&d).map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{} keeps {left:?}", d.display());
    }
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_mtime(1_700_000_000);
    h
}

/// Gzip members of `n` MiB of zeros, written one compressed MiB at a time:
/// berth reads multi-member gzip, so a bomb of GBs is a few MB on disk and
/// costs the test one compression.
fn zero_members(w: &mut impl std::io::Write, mib: u64) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = gz.finish().unwrap();
    for _ in 0..mib {
        w.write_all(&member).unwrap();
    }
}

fn gzip_member(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A layer of 200,000 empty files in 200 directories: unpacked as a
/// stream, so memory stays flat whatever the count.
#[test]
fn a_layer_of_many_tiny_files_unpacks_in_bounded_memory() {
    let env = Env::bare("esc_many");
    let path = env.dir.join("many.tar.gz");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
        for d in 0..200 {
            b.append_data(&mut header(tar::EntryType::Directory, 0), format!("d{d}/"), std::io::empty()).unwrap();
            for i in 0..1000 {
                b.append_data(&mut header(tar::EntryType::Regular, 0), format!("d{d}/f{i}"), std::io::empty()).unwrap();
            }
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    let c = berth_measured(&env, &["import", path.to_str().unwrap(), "many"], &[], Duration::from_secs(300));
    assert!(c.out.ok(), "{}", c.out);
    assert!(c.peak_kib < 128 * 1024, "berth peaked at {} MiB for 200k files", c.peak_kib / 1024);
    let layers: Vec<_> = std::fs::read_dir(env.root.join("layers")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("diff").is_dir()).collect();
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert_eq!(std::fs::read_dir(layers[0].join("diff/d199")).unwrap().count(), 1000);
}

/// A 2 GiB file of zeros, 2 MB compressed, and the same zeros hidden after
/// the end-of-archive marker (read only to hash the layer). With a 256 MiB
/// limit both are refused before writing the file or inflating it all.
#[test]
fn a_gzip_bomb_is_refused_at_the_layer_size_limit() {
    let env = Env::bare("esc_bomb");
    let limit = [("BERTH_MAX_LAYER_SIZE", "256m")];
    let one_file = env.dir.join("bomb.tar.gz");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&one_file).unwrap());
        let mut h = header(tar::EntryType::Regular, 2 << 30);
        h.set_path("bomb").unwrap();
        h.set_cksum();
        std::io::Write::write_all(&mut f, &gzip_member(h.as_bytes())).unwrap();
        zero_members(&mut f, 2048 + 1);
    }
    assert!(std::fs::metadata(&one_file).unwrap().len() < 8 << 20);
    let c = berth_measured(&env, &["import", one_file.to_str().unwrap(), "bomb"], &limit, Duration::from_secs(60));
    assert!(!c.out.ok(), "a 2 GiB layer passed a 256 MiB limit");
    assert!(c.out.stderr.contains("\"bomb\" holds 2 GiB while the layer may unpack to 256 MiB") && c.out.stderr.contains("BERTH_MAX_LAYER_SIZE"), "{}", c.out);
    assert!(c.secs < 10.0 && c.peak_kib < 64 * 1024, "{:.1} s, {} KiB", c.secs, c.peak_kib);
    assert_left_nothing(&env);

    let trailing = env.dir.join("trailing.tar.gz");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&trailing).unwrap());
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(tar::EntryType::Regular, 2), "ok", &b"ok"[..]).unwrap();
        std::io::Write::write_all(&mut f, &gzip_member(&b.into_inner().unwrap())).unwrap();
        zero_members(&mut f, 2048);
    }
    let c = berth_measured(&env, &["import", trailing.to_str().unwrap(), "trailing"], &limit, Duration::from_secs(120));
    assert!(!c.out.ok(), "2 GiB after the end of the archive passed a 256 MiB limit");
    assert!(c.out.stderr.contains("more than 256 MiB uncompressed") && c.out.stderr.contains("BERTH_MAX_LAYER_SIZE"), "{}", c.out);
    assert!(c.peak_kib < 64 * 1024, "{} KiB", c.peak_kib);
    assert_left_nothing(&env);

    // Many files that are each small but together pass the limit: refused
    // (by the stream count, which also counts headers, or by the entry that
    // would pass it) having written no more than the limit.
    let many = env.dir.join("many.tar.gz");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&many).unwrap());
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
        for i in 0..64 {
            b.append_data(&mut header(tar::EntryType::Regular, 1 << 20), format!("z{i}"), std::io::repeat(0).take(1 << 20)).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    let c = berth_measured(&env, &["import", many.to_str().unwrap(), "many"], &[("BERTH_MAX_LAYER_SIZE", "16m")], Duration::from_secs(60));
    assert!(!c.out.ok() && c.out.stderr.contains("16 MiB") && c.out.stderr.contains("BERTH_MAX_LAYER_SIZE"), "{}", c.out);
    assert_left_nothing(&env);

    // `berth load` of a docker-archive whose layer is the bomb: refused
    // while hashing the layer, before anything is unpacked.
    let archive = env.dir.join("bomb-save.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let manifest = br#"[{"Config":"config.json","RepoTags":["bomb:1"],"Layers":["layer.tar.gz"]}]"#;
        b.append_data(&mut header(tar::EntryType::Regular, config.len() as u64), "config.json", &config[..]).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, manifest.len() as u64), "manifest.json", &manifest[..]).unwrap();
        let bomb = std::fs::read(&one_file).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, bomb.len() as u64), "layer.tar.gz", &bomb[..]).unwrap();
        b.finish().unwrap();
    }
    let c = berth_measured(&env, &["load", "-i", archive.to_str().unwrap()], &limit, Duration::from_secs(120));
    assert!(!c.out.ok(), "{}", c.out);
    assert!(c.out.stderr.contains("more than 256 MiB uncompressed"), "{}", c.out);
    assert!(c.peak_kib < 64 * 1024, "{} KiB", c.peak_kib);
    assert!(env.berth(&["image", "inspect", "bomb:1"]).code != 0);
}

/// Thousands of nested directories: refused past the depth limit, quickly;
/// a tree just under it unpacks.
#[test]
fn deep_directories_end_at_the_depth_limit() {
    let env = Env::bare("esc_deep");
    let tree = |depth: usize, path: &Path| {
        let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
        for k in 1..=depth {
            b.append_data(&mut header(tar::EntryType::Directory, 0), "d/".repeat(k), std::io::empty()).unwrap();
        }
        b.append_data(&mut header(tar::EntryType::Regular, 4), format!("{}leaf", "d/".repeat(depth)), &b"leaf"[..]).unwrap();
        b.finish().unwrap();
    };
    let deep = env.dir.join("deep.tar");
    tree(5000, &deep);
    let c = berth_measured(&env, &["import", deep.to_str().unwrap(), "deep"], &[], Duration::from_secs(120));
    assert!(!c.out.ok(), "{}", c.out);
    assert!(c.out.stderr.contains("513 directories deep, more than berth's limit of 512"), "{}", c.out);
    assert!(c.out.stderr.len() < 600, "the error quotes too much: {}", c.out);
    assert!(c.secs < 30.0 && c.peak_kib < 64 * 1024, "{:.1} s, {} KiB", c.secs, c.peak_kib);
    assert_left_nothing(&env);

    // The same tree given to `load`, as if an image archive: refused at
    // its first too-deep name, long before the end.
    let c = berth_measured(&env, &["load", "-i", deep.to_str().unwrap()], &[], Duration::from_secs(60));
    assert!(!c.out.ok(), "{}", c.out);
    assert!(c.out.stderr.contains("is nested too deep for an image archive (more than 16 directories)"), "{}", c.out);
    assert!(c.out.stderr.len() < 600, "the error quotes too much: {}", c.out);
    assert_left_nothing(&env);

    let ok = env.dir.join("ok.tar");
    tree(500, &ok);
    let c = berth_measured(&env, &["import", ok.to_str().unwrap(), "ok"], &[], Duration::from_secs(120));
    assert!(c.out.ok(), "{}", c.out);
    assert!(c.secs < 60.0, "{:.1} s for 500 levels", c.secs);
}

/// Components of 255 bytes (the most a name may have) piled beyond
/// PATH_MAX: refused with the limit named; a path of 15 of them (3839
/// bytes) unpacks.
#[test]
fn names_beyond_path_max_are_refused() {
    let env = Env::bare("esc_long");
    let comp = |i: usize| format!("{i:0>255}");
    let long = env.dir.join("long.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&long).unwrap());
        let mut p = String::new();
        for i in 0..20 {
            p.push_str(&comp(i));
            p.push('/');
            b.append_data(&mut header(tar::EntryType::Directory, 0), &p, std::io::empty()).unwrap();
        }
        b.finish().unwrap();
    }
    let c = berth_measured(&env, &["import", long.to_str().unwrap(), "long"], &[], Duration::from_secs(60));
    assert!(!c.out.ok(), "{}", c.out);
    assert!(c.out.stderr.contains("bytes long, more than the") && c.out.stderr.contains("in a Linux path (4095 bytes)"), "{}", c.out);
    assert!(c.out.stderr.len() < 600, "the error quotes too much: {}", c.out);
    assert_left_nothing(&env);

    // A GNU long name of 4 GiB (4 MB of gzip): the tar reader would buffer
    // it whole; berth refuses it at its header, in bounded memory.
    let bomb = env.dir.join("longname-bomb.tar.gz");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&bomb).unwrap());
        let mut h = header(tar::EntryType::GNULongName, 4 << 30);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        std::io::Write::write_all(&mut f, &gzip_member(h.as_bytes())).unwrap();
        zero_members(&mut f, 4096);
    }
    let c = berth_measured(&env, &["import", bomb.to_str().unwrap(), "bomb"], &[], Duration::from_secs(60));
    assert!(!c.out.ok(), "{}", c.out);
    assert!(c.out.stderr.contains("GNU long name header of 4 GiB, above berth's limit of 1 MiB"), "{}", c.out);
    assert!(c.secs < 10.0 && c.peak_kib < 64 * 1024, "{:.1} s, {} KiB", c.secs, c.peak_kib);
    assert_left_nothing(&env);

    let ok = env.dir.join("ok.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&ok).unwrap());
        let p: Vec<String> = (0..15).map(comp).collect();
        b.append_data(&mut header(tar::EntryType::Regular, 2), p.join("/"), &b"ok"[..]).unwrap();
        b.finish().unwrap();
    }
    let c = berth_measured(&env, &["import", ok.to_str().unwrap(), "ok"], &[], Duration::from_secs(60));
    assert!(c.out.ok(), "{}", c.out);
}

/// Mount points seen from the test's own (the host's) mount namespace.
fn host_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter_map(|l| l.split(' ').nth(4).map(String::from)).collect()
}

/// Volume targets that an earlier run of the container turned into
/// symlinks (to /etc, to a host directory's path, to /): the volume goes
/// on the container's own path, never the host's, and a target that is
/// the root itself is refused. Then the racing form (CVE-2021-30465): a
/// second container swaps a directory of a shared volume for a symlink
/// while the first mounts a volume below it.
#[test]
fn volume_targets_never_follow_symlinks_to_the_host() {
    let env = Env::new("esc_vol");
    let host = env.dir.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let h = host.to_str().unwrap();
    let mounts_before = host_mount_points();
    let etc_before: Vec<_> = std::fs::read_dir("/etc").unwrap().map(|e| e.unwrap().file_name()).collect();
    let planter = env.name("planter");
    env.ok(&["run", "--name", &planter, "busybox", "sh", "-c", &format!("ln -s /etc /data && ln -s {h} /hostlink && ln -s / /top")]);
    let img = "esc-vol/planted:1";
    env.ok(&["commit", &planter, img]);

    let o = env.berth(&["run", "--rm", "-v", "esc-vol-etc:/data", img, "sh", "-c", "grep -c ' /etc ' /proc/self/mountinfo; echo in > /data/planted"]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), "1", "the volume is not mounted on the container's /etc: {o}");
    assert!(env.root.join("volumes/esc-vol-etc/_data/planted").exists(), "the write did not land in the volume");
    assert!(!Path::new("/etc/planted").exists());

    let o = env.berth(&["run", "--rm", "-v", "esc-vol-host:/hostlink/sub", img, "sh", "-c", &format!("grep -c ' {h}/sub ' /proc/self/mountinfo")]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), "1", "{o}");
    assert!(!host.join("sub").exists(), "init created the mount point on the host");

    let o = env.berth(&["run", "--rm", "-v", "esc-vol-top:/top", img, "true"]);
    assert!(!o.ok(), "a volume over the container's root was accepted: {o}");
    assert!(o.stderr.contains("/top") && o.stderr.contains("root directory itself"), "{o}");

    // The race: `swapper` flips /s/b between a directory and a symlink to
    // the host directory; each start of `victim` mounts a volume on
    // /a/b/c through the same volume.
    let swapper = env.name("swapper");
    env.run_detached(&swapper, &["-v", "esc-vol-shared:/s", "busybox", "sh", "-c", &format!("touch /s/ready; while :; do mkdir -p /s/b; rm -rf /s/b; ln -sfn {h} /s/b; rm -f /s/b; done")]);
    assert!(wait_until(Duration::from_secs(10), || env.root.join("volumes/esc-vol-shared/_data/ready").exists()));
    for i in 0..20 {
        let o = env.berth(&["run", "--rm", "-v", "esc-vol-shared:/a", "-v", "esc-vol-other:/a/b/c", "busybox", "true"]);
        let _ = o; // a start that lost the race may fail; it must not escape
        assert!(!host.join("c").exists(), "init created the mount point on the host (try {i})");
    }
    env.berth(&["rm", "-f", &swapper]);

    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0, "the host directory changed");
    let etc_after: Vec<_> = std::fs::read_dir("/etc").unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(etc_before, etc_after, "the host's /etc changed");
    // Only the paths the symlinks named: tests running beside this one
    // (and other roots on the machine) add their own mounts meanwhile.
    let named = |m: &str| m == "/" || m == "/etc" || m.starts_with("/etc/") || m.starts_with(h);
    let new: Vec<_> = host_mount_points().into_iter().filter(|m| !mounts_before.contains(m) && named(m)).collect();
    assert!(new.is_empty(), "mounts appeared on the host: {new:?}");
}
