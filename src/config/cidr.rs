//! Networks in CIDR notation, for access rules (`registration.allow_from`).

/// Parse `addr/prefix` (or a bare address) into a network.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.parse::<std::net::IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<std::net::IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

/// Whether `ip` is inside any of `nets` (CIDR strings; ones that do not
/// parse match nothing, and config validation refuses them).
pub fn in_networks(nets: &[String], ip: std::net::IpAddr) -> bool {
    nets.iter().filter_map(|n| parse_cidr(n)).any(|n| cidr_contains(n, ip))
}

/// Config validation: every entry of `key` is a network.
pub fn check_networks<'a>(key: &str, nets: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    for net in nets {
        parse_cidr(net).ok_or_else(|| format!("key `{key}`: `{net}` is not a network like 127.0.0.0/8"))?;
    }
    Ok(())
}

/// Whether `ip` is inside the network `(net, prefix)`.
pub fn cidr_contains(net: (std::net::IpAddr, u8), ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if net.1 == 0 { 0 } else { u32::MAX << (32 - net.1) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if net.1 == 0 { 0 } else { u128::MAX << (128 - net.1) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cidr() {
        let n = super::parse_cidr("127.0.0.0/8").unwrap();
        assert!(super::cidr_contains(n, "127.1.2.3".parse().unwrap()));
        assert!(!super::cidr_contains(n, "10.0.0.1".parse().unwrap()));
        assert!(super::cidr_contains(n, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(super::parse_cidr("1.2.3.4/33").is_none());
        assert!(super::parse_cidr("nonsense").is_none());
    }
}
