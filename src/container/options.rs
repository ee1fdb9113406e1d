//! The run options that shape a container's files and limits rather than
//! its command: `--tmpfs`, `--shm-size`, `--add-host`, `--dns*` and
//! `--ulimit`. Pure parsers, run at create, so a mistake is named (option
//! and value) before anything is made.

use std::net::IpAddr;

use super::ContainerError;

fn bad(option: &str, value: &str, why: impl std::fmt::Display) -> ContainerError {
    ContainerError::BadOption(format!("{option} {value:?}: {why}"))
}

pub use crate::parse::size;

/// `--shm-size`: the size of /dev/shm in bytes.
pub fn shm_size(s: &str) -> Result<i64, ContainerError> {
    size(s).map_err(|e| ContainerError::BadOption(format!("--shm-size: {e}")))
}

/// One `--tmpfs`, as the runtime mounts it.
#[derive(Debug, PartialEq)]
pub struct Tmpfs {
    pub destination: String,
    /// Mount options the runtime understands: flags (nosuid, nodev,
    /// noexec, ro) and tmpfs data (size in bytes, mode, uid, gid, nr_inodes).
    pub options: Vec<String>,
}

/// `--tmpfs /PATH[:OPTS]`, OPTS comma separated: size=64m, mode=1777,
/// uid=N, gid=N, nr_inodes=N, ro|rw, exec|noexec, suid|nosuid, dev|nodev.
/// As docker's, a tmpfs is noexec, nosuid and nodev unless told otherwise.
pub fn tmpfs(spec: &str) -> Result<Tmpfs, ContainerError> {
    let err = |why: String| bad("--tmpfs", spec, format!("{why}; expected /PATH[:OPTIONS] such as /run:size=64m,mode=1777"));
    let (dest, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !dest.starts_with('/') || dest.trim_end_matches('/').is_empty() {
        return Err(err(format!("the path {dest:?} must be absolute and not /")));
    }
    if dest.split('/').any(|c| c == "..") {
        return Err(err(format!("the path {dest:?} must not contain ..")));
    }
    let (mut exec, mut suid, mut dev, mut ro) = (false, false, false, false);
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            None => match o {
                "ro" => ro = true,
                "rw" => ro = false,
                "exec" => exec = true,
                "noexec" => exec = false,
                "suid" => suid = true,
                "nosuid" => suid = false,
                "dev" => dev = true,
                "nodev" => dev = false,
                _ => return Err(err(format!("unknown option {o:?}"))),
            },
            Some(("size", v)) => data.push(format!("size={}", size(v).map_err(&err)?)),
            Some(("mode", v)) => {
                if v.is_empty() || v.len() > 4 || !v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(err(format!("mode {v:?} must be octal such as 1777")));
                }
                data.push(format!("mode={v}"));
            }
            Some((k @ ("uid" | "gid" | "nr_inodes"), v)) => {
                v.parse::<u32>().map_err(|_| err(format!("{k} {v:?} must be a number")))?;
                data.push(format!("{k}={v}"));
            }
            Some((k, _)) => return Err(err(format!("unknown option {k:?}"))),
        }
    }
    let mut options: Vec<String> = [(!suid, "nosuid"), (!dev, "nodev"), (!exec, "noexec"), (ro, "ro")].into_iter().filter(|(on, _)| *on).map(|(_, f)| f.to_string()).collect();
    options.extend(data);
    Ok(Tmpfs { destination: dest.trim_end_matches('/').to_string(), options })
}

/// What an `--add-host` name points at.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum HostAddr {
    Ip(IpAddr),
    /// docker's `host-gateway`: the host as the container reaches it, the
    /// gateway of its first network.
    HostGateway,
}

/// `--add-host NAME:IP` (or NAME=IP, or NAME:host-gateway): the name and
/// address of one line of the container's /etc/hosts.
pub fn extra_host(spec: &str) -> Result<(String, HostAddr), ContainerError> {
    let err = |why: &str| bad("--add-host", spec, format!("{why}; expected NAME:IP such as db:10.0.0.5, or NAME:host-gateway"));
    let (name, ip) = match (spec.split_once('='), spec.split_once(':')) {
        (Some((n, i)), _) => (n, i),
        (None, Some((n, i))) => (n, i),
        (None, None) => return Err(err("no address")),
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#' || c == ':') {
        return Err(err("the name must be a host name without spaces"));
    }
    if ip == "host-gateway" {
        return Ok((name.to_string(), HostAddr::HostGateway));
    }
    // docker takes [::1] as well as ::1.
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.parse::<IpAddr>().map_err(|_| err(&format!("{ip:?} is not an IP address")))?;
    Ok((name.to_string(), HostAddr::Ip(ip)))
}

/// Does any `--add-host` ask for `host-gateway`?
pub fn wants_host_gateway(extra: &[String]) -> bool {
    extra.iter().any(|h| matches!(extra_host(h), Ok((_, HostAddr::HostGateway))))
}

/// The /etc/hosts lines of the `--add-host` options; `gateway` is the
/// address of `host-gateway` (create refuses it without a bridge network).
pub fn hosts_lines(extra: &[String], gateway: Option<IpAddr>) -> String {
    extra
        .iter()
        .filter_map(|h| extra_host(h).ok())
        .filter_map(|(n, a)| match a {
            HostAddr::Ip(ip) => Some((n, ip)),
            HostAddr::HostGateway => gateway.map(|g| (n, g)),
        })
        .map(|(n, ip)| format!("{ip}\t{n}\n"))
        .collect()
}

/// Checks `--dns`, `--dns-search` and `--dns-option` values.
pub fn check_dns(dns: &[String], search: &[String], options: &[String]) -> Result<(), ContainerError> {
    for d in dns {
        d.parse::<IpAddr>().map_err(|_| bad("--dns", d, "not an IP address (a name server is given by address, e.g. 10.0.0.2)"))?;
    }
    for (flag, list) in [("--dns-search", search), ("--dns-option", options)] {
        for v in list {
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                return Err(bad(flag, v, "must be one word without spaces"));
            }
        }
    }
    Ok(())
}

/// The container's /etc/resolv.conf: the host's (`host`, already without
/// loopback servers), with each kind of line the user gave replaced by
/// theirs, as docker does. `--dns-search .` means no search domains.
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    let word = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let mut out: String = host
        .lines()
        .filter(|l| match word(l).as_str() {
            "nameserver" => dns.is_empty(),
            "search" | "domain" => search.is_empty(),
            "options" => options.is_empty(),
            _ => true,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    let search: Vec<&str> = search.iter().map(String::as_str).filter(|s| *s != ".").collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The resource names `--ulimit` takes, as docker's.
pub use crate::sys::proc::RLIMITS as ULIMITS;

/// One `--ulimit NAME=SOFT[:HARD]`; unlimited (or -1) is RLIM_INFINITY.
#[derive(Debug, PartialEq, Clone)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    pub fn resource(&self) -> i32 {
        ULIMITS.iter().find(|(n, _)| *n == self.name).map(|(_, r)| *r).unwrap_or(-1)
    }
    /// docker's inspect shape: -1 for unlimited.
    pub fn to_docker(&self) -> serde_json::Value {
        let n = |v: u64| if v == u64::MAX { -1 } else { v as i64 };
        serde_json::json!({ "Name": self.name, "Soft": n(self.soft), "Hard": n(self.hard) })
    }
}

pub fn ulimit(spec: &str) -> Result<Ulimit, ContainerError> {
    let names = || ULIMITS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let (name, vals) = spec.split_once('=').ok_or_else(|| bad("--ulimit", spec, "expected NAME=SOFT[:HARD] such as nofile=1024:2048"))?;
    if !ULIMITS.iter().any(|(n, _)| *n == name) {
        return Err(bad("--ulimit", spec, format!("unknown limit {name:?}; known: {}", names())));
    }
    let num = |v: &str| -> Result<u64, ContainerError> {
        match v {
            "unlimited" | "-1" => Ok(u64::MAX),
            v => v.parse::<u64>().map_err(|_| bad("--ulimit", spec, format!("{v:?} is not a number (or unlimited)"))),
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(bad("--ulimit", spec, "the soft limit is above the hard limit"));
    }
    Ok(Ulimit { name: name.to_string(), soft, hard })
}

/// A limit above what this process may set is refused, never raised: the
/// container inherits berth's limits and lowering is all an unprivileged
/// (CAP_SYS_RESOURCE-less) root may do.
pub fn check_ulimit_fits(u: &Ulimit, host_hard: u64) -> Result<(), ContainerError> {
    if u.hard > host_hard {
        let show = |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
        return Err(ContainerError::BadOption(format!(
            "--ulimit {}: hard limit {} is above this host's hard limit {} for {}; berth cannot raise it (no CAP_SYS_RESOURCE), give at most {}",
            u.name,
            show(u.hard),
            show(host_hard),
            u.name,
            show(host_hard)
        )));
    }
    Ok(())
}

/// The current hard limit of resource `r` in this process.
pub fn host_hard_limit(r: i32) -> u64 {
    crate::sys::proc::get_rlimit(r).map(|(_, h)| h).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_specs() {
        let t = tmpfs("/run:size=64m,mode=1777").unwrap();
        assert_eq!(t.destination, "/run");
        assert_eq!(t.options, ["nosuid", "nodev", "noexec", "size=67108864", "mode=1777"]);
        assert_eq!(tmpfs("/x/").unwrap().options, ["nosuid", "nodev", "noexec"]);
        assert_eq!(tmpfs("/x:exec,ro,uid=1000").unwrap().options, ["nosuid", "nodev", "ro", "uid=1000"]);
        let e = |s: &str| tmpfs(s).unwrap_err().to_string();
        assert!(e("run").contains("absolute"), "{}", e("run"));
        assert!(e("/").contains("absolute"));
        assert!(e("/a/../etc").contains("must not contain .."));
        assert!(e("/x:size=lots").contains("invalid size \"lots\""), "{}", e("/x:size=lots"));
        assert!(e("/x:mode=999").contains("octal"));
        assert!(e("/x:colour=blue").contains("unknown option \"colour\""));
        assert!(e("/x:noatime").starts_with("--tmpfs \"/x:noatime\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(size("128m"), Ok(128 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("1.5k"), Ok(1536));
        for bad in ["", "m", "-1m", "0", "1e9", "inf", "12x"] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert!(shm_size("big").unwrap_err().to_string().starts_with("--shm-size: invalid size \"big\""));
    }

    #[test]
    fn extra_hosts() {
        let ip = |s: &str| HostAddr::Ip(s.parse().unwrap());
        assert_eq!(extra_host("db:10.0.0.5").unwrap(), ("db".to_string(), ip("10.0.0.5")));
        assert_eq!(extra_host("v6:::1").unwrap().1, ip("::1"));
        assert_eq!(extra_host("v6=[fe80::1]").unwrap().1, ip("fe80::1"));
        assert_eq!(extra_host("host.docker.internal:host-gateway").unwrap().1, HostAddr::HostGateway);
        assert!(extra_host("db").unwrap_err().to_string().contains("no address"));
        assert!(extra_host("db:nowhere").unwrap_err().to_string().contains("\"nowhere\" is not an IP address"));
        assert!(extra_host(":1.2.3.4").is_err());
        let extra = ["db:10.0.0.5".to_string(), "a=::1".into(), "gw:host-gateway".into()];
        assert!(wants_host_gateway(&extra) && !wants_host_gateway(&extra[..2]));
        assert_eq!(hosts_lines(&extra, Some("172.17.0.1".parse().unwrap())), "10.0.0.5\tdb\n::1\ta\n172.17.0.1\tgw\n");
        assert_eq!(hosts_lines(&extra, None), "10.0.0.5\tdb\n::1\ta\n");
    }

    #[test]
    fn resolv_conf_replaces_what_is_given() {
        let host = "# made by dhcp\nnameserver 192.0.2.1\nsearch corp.example\noptions edns0\n";
        assert_eq!(resolv_conf(host, &[], &[], &[]), host);
        let r = resolv_conf(host, &["10.0.0.2".into(), "10.0.0.3".into()], &["lab.test".into()], &["ndots:2".into()]);
        assert_eq!(r, "# made by dhcp\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch lab.test\noptions ndots:2\n");
        assert_eq!(resolv_conf(host, &[], &[".".into()], &[]), "# made by dhcp\nnameserver 192.0.2.1\noptions edns0\n");
        assert!(check_dns(&["10.0.0.2".into(), "fd00::53".into()], &["a.b".into()], &["ndots:1".into()]).is_ok());
        assert!(check_dns(&["dns.example".into()], &[], &[]).unwrap_err().to_string().starts_with("--dns \"dns.example\""));
        assert!(check_dns(&[], &["a b".into()], &[]).unwrap_err().to_string().starts_with("--dns-search"));
        assert!(check_dns(&[], &[], &["".into()]).unwrap_err().to_string().starts_with("--dns-option"));
    }

    #[test]
    fn ulimit_specs() {
        assert_eq!(ulimit("nofile=1024:2048").unwrap(), Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 });
        assert_eq!(ulimit("nproc=64").unwrap(), Ulimit { name: "nproc".into(), soft: 64, hard: 64 });
        assert_eq!(ulimit("core=0:unlimited").unwrap().hard, u64::MAX);
        assert_eq!(ulimit("core=-1").unwrap().to_docker(), serde_json::json!({"Name": "core", "Soft": -1, "Hard": -1}));
        let e = |s: &str| ulimit(s).unwrap_err().to_string();
        assert!(e("nofile").contains("NAME=SOFT[:HARD]"));
        assert!(e("files=10").contains("unknown limit \"files\""));
        assert!(e("nofile=ten").contains("\"ten\" is not a number"));
        assert!(e("nofile=2048:1024").contains("soft limit is above the hard"));
        let u = ulimit("nofile=100:30000").unwrap();
        assert!(check_ulimit_fits(&u, 30000).is_ok());
        let msg = check_ulimit_fits(&u, 20000).unwrap_err().to_string();
        assert!(msg.contains("hard limit 30000") && msg.contains("host's hard limit 20000 for nofile"), "{msg}");
        assert_eq!(ulimit("nofile=1:1").unwrap().resource(), libc::RLIMIT_NOFILE as i32);
    }
}
