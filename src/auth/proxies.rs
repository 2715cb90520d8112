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
    /// trusted proxy, the right-most address in `X-Forwarded-For` that is not one.
    /// `forwarded_for` is every line of the header in order: proxies that append a line
    /// of their own (HAProxy's `option forwardfor`) instead of extending the last one
    /// make one list of them all, so the client's own line, wherever it is, counts only
    /// as far left as the proxies vouch for.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        // Empty entries (an empty line, a trailing comma) name nobody and are skipped.
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .filter(|hop| !hop.trim().is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop_address(hop) else {
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

/// One entry of `X-Forwarded-For`: an address, perhaps with a port (`1.2.3.4:80`,
/// `[::1]:80`) as some proxies write it.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
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

    #[test]
    fn every_header_line_counts_and_the_right_most_untrusted_address_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        let peer = ip("127.0.0.1");
        // HAProxy appends a line: the attacker's own first line is not the client.
        assert_eq!(proxies.client(peer, ["6.6.6.6", "203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(
            proxies.client(peer, ["6.6.6.6, 7.7.7.7", "203.0.113.9, 10.1.2.3"]),
            ip("203.0.113.9")
        );
        assert_eq!(proxies.client(peer, ["203.0.113.9", "10.1.2.3", "10.4.5.6"]), ip("203.0.113.9"));
        // Empty lines and spaces are nothing; ports are dropped.
        assert_eq!(proxies.client(peer, ["", " 203.0.113.9 ", ""]), ip("203.0.113.9"));
        assert_eq!(proxies.client(peer, ["203.0.113.9:4711"]), ip("203.0.113.9"));
        assert_eq!(proxies.client(peer, ["[2001:db8::1]:443"]), ip("2001:db8::1"));
        // Garbage stops the walk at the nearest address the proxies vouch for.
        assert_eq!(proxies.client(peer, ["203.0.113.9", "garbage", "10.1.2.3"]), ip("10.1.2.3"));
        assert_eq!(proxies.client(peer, ["garbage, 198.51.100.2"]), ip("198.51.100.2"));
        // No header: the proxy itself.
        assert_eq!(proxies.client(peer, None::<&str>), peer);
        // Every line is ignored from a peer that is not a trusted proxy.
        assert_eq!(proxies.client(ip("198.51.100.2"), ["1.1.1.1", "2.2.2.2"]), ip("198.51.100.2"));
    }
}
