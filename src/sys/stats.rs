//! Container resource figures for `berth stats`: docker's columns (CPU %,
//! MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS) read from cgroup v1
//! or v2 files and /proc. A missing file reads as 0, never an error: the
//! container may be stopping while we look.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cgroup::{self, Cgroup};

/// One reading. CPU % needs two of them (see [`cpu_percent`]).
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    /// CPU time used by the cgroup, ns.
    pub cpu_ns: u64,
    /// Host CPU time over all cpus from /proc/stat, ns.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Usage minus inactive page cache, as docker shows it.
    pub memory_bytes: u64,
    /// The cgroup limit, or host RAM when unlimited.
    pub memory_limit: u64,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

/// Reads the figures of `cg`; `net_pid` is any process inside the
/// container, whose /proc/<pid>/net/dev shows the container's netns.
pub fn sample(cg: &Cgroup, net_pid: Option<i32>) -> Sample {
    collect(|c| cg.dir_of(c), cgroup::is_v2(), net_pid)
}

/// `dir(controller)` gives the cgroup's directory for that controller.
fn collect(dir: impl Fn(&str) -> Option<PathBuf>, v2: bool, net_pid: Option<i32>) -> Sample {
    let read = |ctl: &str, file: &str| dir(ctl).and_then(|d| read_file(&d.join(file))).unwrap_or_default();
    let num = |ctl: &str, file: &str| read(ctl, file).trim().parse::<u64>().unwrap_or(0);
    let (system_ns, online_cpus) = parse_proc_stat(&read_file(Path::new("/proc/stat")).unwrap_or_default());
    let host_mem = keyed(&read_file(Path::new("/proc/meminfo")).unwrap_or_default(), "MemTotal:") * 1024;
    let (net_rx, net_tx) = net_pid.and_then(|p| read_file(Path::new(&format!("/proc/{p}/net/dev")))).map_or((0, 0), |s| parse_net_dev(&s));
    let (cpu_ns, usage, inactive, limit, (block_read, block_write)) = if v2 {
        (
            keyed(&read("cpu", "cpu.stat"), "usage_usec") * 1000,
            num("memory", "memory.current"),
            keyed(&read("memory", "memory.stat"), "inactive_file"),
            read("memory", "memory.max"),
            parse_io_stat(&read("io", "io.stat")),
        )
    } else {
        // Older kernels lack the recursive throttle file.
        let blkio = Some(read("blkio", "blkio.throttle.io_service_bytes_recursive"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| read("blkio", "blkio.throttle.io_service_bytes"));
        (
            num("cpuacct", "cpuacct.usage"),
            num("memory", "memory.usage_in_bytes"),
            keyed(&read("memory", "memory.stat"), "total_inactive_file"),
            read("memory", "memory.limit_in_bytes"),
            parse_blkio(&blkio),
        )
    };
    Sample {
        at: Instant::now(),
        cpu_ns,
        system_ns,
        online_cpus,
        memory_bytes: usage.saturating_sub(inactive),
        memory_limit: effective_limit(&limit, host_mem),
        pids: num("pids", "pids.current"),
        block_read,
        block_write,
        net_rx,
        net_tx,
    }
}

fn read_file(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// v2 says "max", v1 a near-i64::MAX number; either way (or any limit
/// above host RAM) the host's memory is the real ceiling.
fn effective_limit(raw: &str, host_mem: u64) -> u64 {
    raw.trim().parse::<u64>().ok().filter(|&l| l < host_mem).unwrap_or(host_mem)
}

/// The value of `key` in "key value" lines (memory.stat, cpu.stat,
/// /proc/meminfo).
fn keyed(s: &str, key: &str) -> u64 {
    s.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(key)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// USER_HZ: /proc/stat counts in ticks, 100 a second on every Linux ABI.
const TICK_NS: u64 = 1_000_000_000 / 100;

/// (host cpu time in ns, online cpus) from /proc/stat. Like docker: the
/// first seven fields of the "cpu" line (user..softirq; steal and guest
/// left out), and one cpu per "cpuN" line.
fn parse_proc_stat(s: &str) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for l in s.lines() {
        if let Some(rest) = l.strip_prefix("cpu ") {
            total = rest.split_whitespace().take(7).filter_map(|v| v.parse::<u64>().ok()).sum::<u64>() * TICK_NS;
        } else if l.strip_prefix("cpu").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())) {
            cpus += 1;
        }
    }
    (total, cpus)
}

/// (rx, tx) bytes summed over every interface but lo.
fn parse_net_dev(s: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    // Two header lines; a long counter may touch the colon ("eth0:123").
    for (name, counters) in s.lines().skip(2).filter_map(|l| l.split_once(':')) {
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// (read, write) bytes from v1 blkio "MAJ:MIN Op bytes" lines.
fn parse_blkio(s: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let n = || f.get(2).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match f.get(1) {
            Some(&"Read") => r += n(),
            Some(&"Write") => w += n(),
            _ => {}
        }
    }
    (r, w)
}

/// (read, write) bytes from v2 io.stat "MAJ:MIN rbytes=N wbytes=N ..." lines.
fn parse_io_stat(s: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for (k, v) in s.split_whitespace().filter_map(|kv| kv.split_once('=')) {
        let v = v.parse::<u64>().unwrap_or(0);
        match k {
            "rbytes" => r += v,
            "wbytes" => w += v,
            _ => {}
        }
    }
    (r, w)
}

/// Docker's CPU %: the cgroup's share of host cpu time between two
/// samples, scaled so one busy cpu is 100%.
pub fn cpu_percent(prev: &Sample, cur: &Sample) -> f64 {
    let cpu = cur.cpu_ns.saturating_sub(prev.cpu_ns) as f64;
    let system = cur.system_ns.saturating_sub(prev.system_ns) as f64;
    if system == 0.0 {
        return 0.0;
    }
    cpu / system * cur.online_cpus as f64 * 100.0
}

/// Docker's MEM %.
pub fn mem_percent(s: &Sample) -> f64 {
    if s.memory_limit == 0 {
        return 0.0;
    }
    s.memory_bytes as f64 / s.memory_limit as f64 * 100.0
}

/// Memory as docker prints it (go-units BytesSize): "1.5MiB", "7.755GiB".
pub fn human_bytes(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], 4)
}

/// Net and block I/O as docker prints them (go-units
/// HumanSizeWithPrecision(n, 3)): "1.23kB", "3.4MB".
pub fn human_si(n: u64) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], 3)
}

fn scaled(n: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut x = n as f64;
    let mut i = 0;
    while x >= base && i < units.len() - 1 {
        x /= base;
        i += 1;
    }
    format!("{}{}", go_g(x, digits), units[i])
}

/// Go's `%.{p}g`: p significant digits, trailing zeros dropped, exponent
/// form once rounding reaches 10^p (so 999.9kB prints "1e+03kB", as docker).
fn go_g(x: f64, p: usize) -> String {
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() };
    if exp < -4 || exp >= p as i32 {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        trim(&format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cpu_ns: u64, system_ns: u64, online_cpus: u32) -> Sample {
        Sample {
            at: Instant::now(),
            cpu_ns,
            system_ns,
            online_cpus,
            memory_bytes: 0,
            memory_limit: 0,
            pids: 0,
            block_read: 0,
            block_write: 0,
            net_rx: 0,
            net_tx: 0,
        }
    }

    #[test]
    fn proc_stat() {
        let s = "cpu  100 1 50 800 10 2 3 99 7 0\ncpu0 50 0 25 400 5 1 1 0 0 0\ncpu1 50 1 25 400 5 1 2 99 7 0\nintr 12 3\nctxt 5\n";
        assert_eq!(parse_proc_stat(s), ((100 + 1 + 50 + 800 + 10 + 2 + 3) * TICK_NS, 2));
        assert_eq!(parse_proc_stat(""), (0, 0));
    }

    #[test]
    fn net_dev() {
        let s = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 18063320489  536968    0    0    0     0          0         0 18063320489  536968    0    0    0     0       0          0
  eth0: 428266552   19720    0    0    0     0          0         0  1196065   11534    0    0    0     0       0          0
  eth1:1000   2    0    0    0     0          0         0  20       1    0    0    0     0       0          0
";
        assert_eq!(parse_net_dev(s), (428266552 + 1000, 1196065 + 20));
        assert_eq!(parse_net_dev(""), (0, 0));
    }

    #[test]
    fn memory_and_cpu_stat() {
        let v1 = "cache 8192\nrss 4096\ninactive_file 111\nactive_file 7\ntotal_cache 9000\ntotal_inactive_file 438272\n";
        assert_eq!(keyed(v1, "total_inactive_file"), 438272);
        assert_eq!(keyed(v1, "inactive_file"), 111);
        let v2 = "anon 1\nfile 2\ninactive_anon 3\ninactive_file 4096\n";
        assert_eq!(keyed(v2, "inactive_file"), 4096);
        assert_eq!(keyed("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n", "usage_usec"), 1234);
        assert_eq!(keyed("MemTotal:       16384 kB\nMemFree: 1 kB\n", "MemTotal:"), 16384);
        assert_eq!(keyed("", "inactive_file"), 0);
    }

    #[test]
    fn limits() {
        assert_eq!(effective_limit("67108864\n", 8 << 30), 64 << 20);
        assert_eq!(effective_limit("9223372036854771712\n", 8 << 30), 8 << 30);
        assert_eq!(effective_limit("max\n", 8 << 30), 8 << 30);
        assert_eq!(effective_limit("", 8 << 30), 8 << 30);
    }

    #[test]
    fn blkio() {
        let s = "8:0 Read 4096\n8:0 Write 1024\n8:0 Sync 5120\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 5120\n8:16 Read 10\n8:16 Write 20\n8:16 Total 30\nTotal 5150\n";
        assert_eq!(parse_blkio(s), (4106, 1044));
        assert_eq!(parse_blkio("Total 0\n"), (0, 0));
    }

    #[test]
    fn io_stat() {
        let s = "8:0 rbytes=4096 wbytes=1024 rios=1 wios=1 dbytes=0 dios=0\n253:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(s), (4106, 1044));
        assert_eq!(parse_io_stat(""), (0, 0));
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1024), "1KiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5MiB");
        assert_eq!(human_bytes(64 << 20), "64MiB");
        assert_eq!(human_bytes(8_349_429_760), "7.776GiB");
        assert_eq!(human_si(0), "0B");
        assert_eq!(human_si(999), "999B");
        assert_eq!(human_si(1234), "1.23kB");
        assert_eq!(human_si(3_400_000), "3.4MB");
        assert_eq!(human_si(999_999), "1e+03kB");
        assert_eq!(human_si(u64::MAX), "18.4EB");
    }

    #[test]
    fn cpu() {
        // 0.5s of cgroup time over 2s of host time on 2 cpus: one cpu half busy.
        assert_eq!(cpu_percent(&at(1_000_000_000, 10_000_000_000, 2), &at(1_500_000_000, 12_000_000_000, 2)), 50.0);
        assert_eq!(cpu_percent(&at(1, 5, 2), &at(9, 5, 2)), 0.0);
    }

    /// Samples this test process's own cgroups (v1 per-controller paths
    /// from /proc/self/cgroup, or the unified one).
    #[test]
    fn own_cgroup() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let v2 = cgroup::is_v2();
        let dir = |ctl: &str| {
            own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctls, path) = (f.next()?, f.next()?, f.next()?.trim_start_matches('/'));
                if v2 {
                    return ctls.is_empty().then(|| PathBuf::from("/sys/fs/cgroup").join(path));
                }
                let d = PathBuf::from("/sys/fs/cgroup").join(ctls).join(path);
                (ctls.split(',').any(|c| c == ctl) && d.exists()).then_some(d)
            })
        };
        let s = collect(dir, v2, Some(std::process::id() as i32));
        assert!(s.system_ns > 0 && s.online_cpus > 0);
        assert!(s.cpu_ns > 0, "{s:?}");
        assert!(s.memory_bytes > 0 && s.memory_limit >= s.memory_bytes, "{s:?}");
    }
}
