//! Who the client is behind a proxy: `X-Forwarded-For` is believed only from the
//! proxies an operator names (TRUSTED_PROXIES), so a client cannot pick its own address
//! to escape the per-address login limit.

use std::net::IpAddr;

/// Addresses, or CIDR blocks, whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let (address, bits) = entry.split_once('/').unwrap_or((entry, ""));
            let ip: IpAddr = address
                .parse()
                .map_err(|_| format!("TRUSTED_PROXIES: {entry:?} is not an IP address or CIDR block"))?;
            let width = if ip.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                width
            } else {
                bits.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= width)
                    .ok_or_else(|| format!("TRUSTED_PROXIES: {entry:?} has a bad prefix length"))?
            };
            blocks.push((ip, bits));
        }
        Ok(Self(blocks))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(block, bits)| match (block, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => prefix(u128::from(u32::from(*block)) << 96, u128::from(u32::from(ip)) << 96, *bits),
            (IpAddr::V6(block), IpAddr::V6(ip)) => prefix(u128::from(*block), u128::from(ip), *bits),
            _ => false,
        })
    }

    /// The client of a connection from `peer`: `peer` itself, or, when `peer` is a
    /// trusted proxy, the nearest address in `X-Forwarded-For` that is not one.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or_default().rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

fn prefix(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.5"), Some("1.2.3.4")), ip("10.0.0.5"));
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert_eq!(proxies.client(ip("10.0.0.5"), Some("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(
            proxies.client(ip("10.0.0.5"), Some("6.6.6.6, 1.2.3.4, 10.1.1.1")),
            ip("1.2.3.4"),
            "the client's own entries to the left are not believed"
        );
        assert_eq!(proxies.client(ip("192.168.1.1"), Some("1.2.3.4")), ip("192.168.1.1"));
        assert_eq!(proxies.client(ip("::1"), Some("not an ip")), ip("::1"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }
}
