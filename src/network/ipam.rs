//! Address management: subnets, gateways, free addresses. Pure functions,
//! unit-tested beside; the store keeps what is handed out.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: expected CIDR notation such as 192.168.13.0/24")]
    BadSubnet(String),
    #[error("invalid address {0:?}")]
    BadAddress(String),
    #[error("address {addr} is not in subnet {subnet}")]
    OutsideSubnet { addr: Ipv4Addr, subnet: String },
    #[error("address {0} is reserved (network, gateway or broadcast address)")]
    Reserved(Ipv4Addr),
    #[error("address {0} is already in use on this network")]
    InUse(Ipv4Addr),
    #[error("no free address left in subnet {0}")]
    Full(String),
    #[error("no free subnet: every candidate overlaps the host's routes or another network; give --subnet")]
    NoSubnet,
    #[error("subnet {subnet} overlaps {with}; choose another --subnet")]
    Overlap { subnet: String, with: String },
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) }
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, IpamError> {
        let bad = || IpamError::BadSubnet(s.to_string());
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(IpamError::BadSubnet(format!("{s} (prefix must be between /8 and /30)")));
        }
        // Normalise 192.168.13.7/24 to its network address, as docker does.
        Ok(Subnet { addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)), prefix })
    }
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & mask(self.prefix)
    }
    pub fn broadcast(&self) -> u32 {
        self.network() | !mask(self.prefix)
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.prefix) == self.network()
    }
    pub fn overlaps(&self, o: &Subnet) -> bool {
        let p = self.prefix.min(o.prefix);
        self.network() & mask(p) == o.network() & mask(p)
    }
    /// The first host address: docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() + 1)
    }
}

/// Checks a requested static address.
pub fn check_static(subnet: &Subnet, gateway: Ipv4Addr, addr: &str, used: &[Ipv4Addr]) -> Result<Ipv4Addr, IpamError> {
    let a: Ipv4Addr = addr.parse().map_err(|_| IpamError::BadAddress(addr.to_string()))?;
    if !subnet.contains(a) {
        return Err(IpamError::OutsideSubnet { addr: a, subnet: subnet.to_string() });
    }
    let n = u32::from(a);
    if n == subnet.network() || n == subnet.broadcast() || a == gateway {
        return Err(IpamError::Reserved(a));
    }
    if used.contains(&a) {
        return Err(IpamError::InUse(a));
    }
    Ok(a)
}

/// The lowest free host address (after the gateway), skipping `used`.
pub fn next_free(subnet: &Subnet, gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Result<Ipv4Addr, IpamError> {
    let mut n = subnet.network() + 1;
    while n < subnet.broadcast() {
        let a = Ipv4Addr::from(n);
        if a != gateway && !used.contains(&a) {
            return Ok(a);
        }
        n += 1;
    }
    Err(IpamError::Full(subnet.to_string()))
}

/// Picks a /24 (then a /16) that overlaps none of `taken` (the host's
/// routes and other networks), from docker's usual private pools.
pub fn pick_subnet(taken: &[Subnet]) -> Result<Subnet, IpamError> {
    let free = |s: &Subnet| !taken.iter().any(|t| t.overlaps(s));
    // 172.17-31.x.0/24 first, then 192.168.x.0/24, then 10.x.0.0/16.
    for second in 17..=31u8 {
        for third in 0..=255u8 {
            let s = Subnet { addr: Ipv4Addr::new(172, second, third, 0), prefix: 24 };
            if free(&s) {
                return Ok(s);
            }
        }
    }
    for third in 0..=255u8 {
        let s = Subnet { addr: Ipv4Addr::new(192, 168, third, 0), prefix: 24 };
        if free(&s) {
            return Ok(s);
        }
    }
    for second in 0..=255u8 {
        let s = Subnet { addr: Ipv4Addr::new(10, second, 0, 0), prefix: 16 };
        if free(&s) {
            return Ok(s);
        }
    }
    Err(IpamError::NoSubnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises() {
        let s = Subnet::parse("192.168.13.7/24").unwrap();
        assert_eq!(s.to_string(), "192.168.13.0/24");
        assert_eq!(s.first_host(), Ipv4Addr::new(192, 168, 13, 1));
        assert!(Subnet::parse("192.168.13.0").is_err());
        assert!(Subnet::parse("300.1.1.0/24").is_err());
        assert!(Subnet::parse("10.0.0.0/31").is_err());
    }

    #[test]
    fn static_addresses_are_checked() {
        let s = Subnet::parse("192.168.13.0/24").unwrap();
        let gw = s.first_host();
        assert_eq!(check_static(&s, gw, "192.168.13.4", &[]).unwrap(), Ipv4Addr::new(192, 168, 13, 4));
        assert!(matches!(check_static(&s, gw, "10.0.0.4", &[]), Err(IpamError::OutsideSubnet { .. })));
        assert!(matches!(check_static(&s, gw, "192.168.13.1", &[]), Err(IpamError::Reserved(_))));
        assert!(matches!(check_static(&s, gw, "192.168.13.255", &[]), Err(IpamError::Reserved(_))));
        let used = [Ipv4Addr::new(192, 168, 13, 4)];
        assert!(matches!(check_static(&s, gw, "192.168.13.4", &used), Err(IpamError::InUse(_))));
    }

    #[test]
    fn next_free_skips_gateway_and_used() {
        let s = Subnet::parse("10.9.0.0/30").unwrap();
        let gw = s.first_host();
        assert_eq!(next_free(&s, gw, &[]).unwrap(), Ipv4Addr::new(10, 9, 0, 2));
        assert!(matches!(next_free(&s, gw, &[Ipv4Addr::new(10, 9, 0, 2)]), Err(IpamError::Full(_))));
    }

    #[test]
    fn picked_subnets_avoid_what_is_taken() {
        let taken = [Subnet::parse("172.17.0.0/16").unwrap(), Subnet::parse("172.18.0.0/24").unwrap()];
        let s = pick_subnet(&taken).unwrap();
        assert_eq!(s.to_string(), "172.18.1.0/24");
        assert!(!taken.iter().any(|t| t.overlaps(&s)));
    }
}
