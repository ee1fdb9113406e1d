#![no_main]
//! What users type on the command line: durations, sizes, `-p` port specs,
//! `-v` volume specs, `--device` and `--restart`. None may panic, and what
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

    if let Ok((host, ctr, perms)) = berth::container::spec::parse_device(s) {
        assert!(host.starts_with('/') && ctr.starts_with('/') && !perms.is_empty(), "{s:?}");
    }
});
