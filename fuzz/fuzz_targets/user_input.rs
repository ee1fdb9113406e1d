#![no_main]
//! What users type on the command line: durations, sizes, `-p` port specs,
//! `-v` volume specs, `--device`, `--restart`, `--tmpfs`, `--add-host`,
//! `--dns-search`/`--dns-option` and `--ulimit`. None may panic, and what
//! parses must keep the promises its users rely on.

use berth::network::ports;
use berth::volume::{self, VolumeSpec};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = berth::parse::duration(s, None);
    let _ = berth::parse::duration_ms(s);
    let _ = berth::parse::memory(s);
    let _ = berth::container::RestartPolicy::parse(s);

    if let Ok(p) = ports::parse(s) {
        // Written back in the long form, a spec reads as the same spec.
        let ip = p.host_ip.map(|a| a.to_string()).unwrap_or_default();
        let host = p.host_port.map(|h| h.to_string()).unwrap_or_default();
        let again = format!("{ip}:{host}:{}/{}", p.container_port, p.proto);
        assert_eq!(ports::parse(&again).as_ref(), Ok(&p), "{s:?} -> {again:?}");
        assert!(p.container_port != 0 && p.host_port != Some(0), "{s:?}: port 0 accepted");
    }

    if let Ok(v) = volume::parse_spec(s) {
        let target = match &v {
            VolumeSpec::Named { target, .. } | VolumeSpec::Bind { target, .. } | VolumeSpec::Anonymous { target, .. } => target,
        };
        // The target is where the mount lands inside: it must be a clean
        // absolute path other than the container's root.
        assert!(target.is_absolute() && target != std::path::Path::new("/"), "{s:?}: target {target:?}");
        assert!(!target.components().any(|c| matches!(c, std::path::Component::ParentDir)), "{s:?}: target {target:?} keeps ..");
        if let VolumeSpec::Bind { source, .. } = &v {
            assert!(source.is_absolute(), "{s:?}: bind source {source:?} is relative");
        }
        let _ = volume::check_bind(&v);
    }

    use berth::container::options;
    if let Ok(n) = options::size(s) {
        assert!(n > 0, "{s:?}: size {n}");
    }
    if let Ok(t) = options::tmpfs(s) {
        // A clean absolute mount point, and options the runtime knows:
        // flags, or one KEY=VALUE of tmpfs data each, with no comma to
        // smuggle another in.
        assert!(t.destination.starts_with('/') && t.destination != "/" && !t.destination.split('/').any(|c| c == ".."), "{s:?}: {t:?}");
        for o in &t.options {
            let key = o.split('=').next().unwrap_or("");
            assert!(!o.contains(',') && ["nosuid", "nodev", "noexec", "ro", "size", "mode", "uid", "gid", "nr_inodes"].contains(&key), "{s:?}: option {o:?}");
        }
    }
    // An --add-host is one line of /etc/hosts, never two.
    if options::extra_host(s).is_ok() {
        let lines = options::hosts_lines(&[s.to_string()], Some(std::net::Ipv4Addr::LOCALHOST.into()));
        assert_eq!(lines.matches('\n').count(), 1, "{s:?}: {lines:?}");
    }
    // A search domain or resolver option stays on its resolv.conf line.
    if options::check_dns(&[], &[s.to_string()], &[s.to_string()]).is_ok() {
        let conf = options::resolv_conf("", &[], &[s.to_string()], &[s.to_string()]);
        assert!(conf.lines().count() <= 2, "{s:?}: {conf:?}");
    }
    if let Ok(u) = options::ulimit(s) {
        assert!(u.soft <= u.hard && u.resource() >= 0, "{s:?}: {u:?}");
    }

    if let Ok((host, ctr, perms)) = berth::container::spec::parse_device(s) {
        assert!(host.starts_with('/') && ctr.starts_with('/') && !perms.is_empty(), "{s:?}");
    }
});
