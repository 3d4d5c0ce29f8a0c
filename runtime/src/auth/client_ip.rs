//! Which address a request comes from. `X-Forwarded-For` is believed only when the connection itself comes from a
//! trusted proxy, and then only up to the first address that is not a trusted proxy: a client cannot choose its own
//! address (and so its rate-limit budget) by sending the header.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The client's address, put into every request's extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The address of the client behind `peer` (the TCP peer), given the proxies trusted to report it.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    // The rightmost entries were added by our own proxies; the first untrusted one from the right is the client.
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", forwarded.parse().unwrap());
        map
    }

    #[test]
    fn the_header_is_ignored_from_untrusted_peers() {
        let peer: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let ip = client_ip(peer, &headers("1.2.3.4"), &["10.0.0.1".parse().unwrap()]);
        assert_eq!(ip, peer.ip());
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_address_from_the_right_counts() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        // A client spoofing "6.6.6.6" gets appended to by our proxies: its real address is 198.51.100.7.
        let ip = client_ip(peer, &headers("6.6.6.6, 198.51.100.7, 10.0.0.2"), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer.ip());
        assert_eq!(client_ip(peer, &headers("garbage"), &trusted), peer.ip());
    }
}
