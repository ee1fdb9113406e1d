//! Published ports: `-p [IP:][HOST:]CONTAINER[/udp]` specs (a pure parser,
//! tested beside) and the nftables table that implements them.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortSpec {
    pub host_ip: Option<Ipv4Addr>,
    /// None: any free host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: String,
}

#[derive(thiserror::Error, Debug, PartialEq)]
#[error("invalid port spec {spec:?}: {reason} (forms: 8000:80, 127.0.0.1:8001:80, 5353:53/udp, 80)")]
pub struct PortError {
    pub spec: String,
    pub reason: String,
}

pub fn parse(spec: &str) -> Result<PortSpec, PortError> {
    let err = |reason: &str| PortError { spec: spec.to_string(), reason: reason.to_string() };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if proto != "tcp" && proto != "udp" {
        return Err(err("protocol must be tcp or udp"));
    }
    let port = |s: &str| -> Result<u16, PortError> {
        match s.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
            _ => Err(err(&format!("{s:?} is not a port between 1 and 65535"))),
        }
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, cont) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h), *c),
        _ => return Err(err("too many colons")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| err(&format!("{a:?} is not an IPv4 address")))?),
    };
    let host_port = match host {
        None | Some("") => None,
        Some(h) => Some(port(h)?),
    };
    Ok(PortSpec { host_ip, host_port, container_port: port(cont)?, proto })
}

/// A host port nobody listens on now, from the kernel's ephemeral range.
pub fn free_port(proto: &str) -> std::io::Result<u16> {
    if proto == "udp" {
        Ok(std::net::UdpSocket::bind("0.0.0.0:0")?.local_addr()?.port())
    } else {
        Ok(std::net::TcpListener::bind("0.0.0.0:0")?.local_addr()?.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("8000:80").unwrap(), PortSpec { host_ip: None, host_port: Some(8000), container_port: 80, proto: "tcp".into() });
        assert_eq!(parse("127.0.0.1:8001:80").unwrap().host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(parse("5353:53/udp").unwrap().proto, "udp");
        assert_eq!(parse("80").unwrap().host_port, None);
        assert_eq!(parse("127.0.0.1::80").unwrap().host_port, None);
    }

    #[test]
    fn bad_specs_say_why() {
        for bad in ["", "0:80", "8000:70000", "a:80", "1:2:3:4", "80/sctp", "300.1.1.1:80:80"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("80/sctp").unwrap_err().to_string().contains("tcp or udp"));
    }
}
