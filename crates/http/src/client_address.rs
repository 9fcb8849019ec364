//! Where a request comes from, as far as an address can say: the TCP peer,
//! or, when the peer is a proxy the server was told to trust
//! (`--trusted-proxies`), the nearest hop of `X-Forwarded-For` that is not
//! one of them. What bounds a client without a token (its seat streams)
//! is counted by this address. An IPv6 client counts by its /64: one host
//! is handed a whole /64, and would otherwise have 2^64 addresses.
//!
//! A client can write anything into `X-Forwarded-For`, but only to the
//! left of what the trusted proxies append: reading from the right and
//! skipping trusted hops, the first other entry is the one the outermost
//! trusted proxy saw connect. Without trusted proxies the header is
//! ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct ClientAddresses {
    trusted: Vec<IpNet>,
}

/// Most entries of `X-Forwarded-For` read: a longer chain of trusted
/// proxies is not a deployment, and the client wrote the rest.
const HOPS_MAX: usize = 16;

impl ClientAddresses {
    /// `list`: addresses or networks (`10.0.0.0/8`), comma-separated.
    pub fn parse(list: &str) -> Result<ClientAddresses, String> {
        let trusted = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is no address or network (10.0.0.0/8, fd00::/8)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClientAddresses { trusted })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, or behind trusted proxies the
    /// one they name. `None` only when the peer is unknown (not a TCP
    /// connection).
    pub fn of(&self, req: &HttpRequest) -> Option<IpAddr> {
        // An IPv4 peer of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = req.peer_addr()?.ip().to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev().take(HOPS_MAX) {
            let Some(ip) = parse_hop(hop) else {
                // Not what a proxy writes: believe no further.
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }

    /// What a client's streams are counted by: its address, or its /64.
    pub fn key(&self, req: &HttpRequest) -> Option<String> {
        self.of(req).map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let prefix = std::net::Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)));
                format!("{prefix}/64")
            }
        })
    }
}

/// An entry of `X-Forwarded-For`: an address, perhaps with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn from(peer: &str, forwarded: &[&str]) -> TestRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        for f in forwarded {
            r = r.insert_header(("X-Forwarded-For", *f));
        }
        r
    }

    #[test]
    fn the_peer_unless_it_is_a_trusted_proxy() {
        let none = ClientAddresses::default();
        let proxies = ClientAddresses::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        let r = from("203.0.113.7:5000", &["198.51.100.1"]).to_http_request();
        // An untrusted peer's header is the client's own word: ignored.
        assert_eq!(none.key(&r).as_deref(), Some("203.0.113.7"));
        assert_eq!(proxies.key(&r).as_deref(), Some("203.0.113.7"));
        // Behind the trusted proxies: the nearest hop not theirs. What the
        // client wrote to the left of it changes nothing.
        let r = from("10.1.2.3:5000", &["1.1.1.1, 198.51.100.9, 10.9.9.9"]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("198.51.100.9"));
        assert_eq!(none.key(&r).as_deref(), Some("10.1.2.3"));
        // Several headers read as one list, in order; ports are dropped.
        let r = from("192.0.2.1:80", &["1.1.1.1", "198.51.100.9:4711"]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("198.51.100.9"));
        // No header, or only trusted hops: the last hop named.
        let r = from("10.1.2.3:5000", &[]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("10.1.2.3"));
        let r = from("10.1.2.3:5000", &["10.4.4.4"]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("10.4.4.4"));
        // Garbage from a hop stops the walk at the last address believed.
        let r = from("10.1.2.3:5000", &["198.51.100.9, junk"]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let none = ClientAddresses::default();
        let key = |peer: &str| none.key(&from(peer, &[]).to_http_request());
        assert_eq!(key("[2001:db8::1]:1"), key("[2001:db8::ffff:2]:1"));
        assert_ne!(key("[2001:db8::1]:1"), key("[2001:db8:0:1::1]:1"));
        assert_eq!(key("[2001:db8::1]:1").as_deref(), Some("2001:db8::/64"));
        assert_eq!(key("[::ffff:192.0.2.1]:1").as_deref(), Some("192.0.2.1"));
        // A v4 proxy on a dual-stack listener is still the trusted one.
        let proxies = ClientAddresses::parse("10.0.0.0/8").unwrap();
        let r = from("[::ffff:10.1.2.3]:1", &["198.51.100.9"]).to_http_request();
        assert_eq!(proxies.key(&r).as_deref(), Some("198.51.100.9"));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(ClientAddresses::parse("").unwrap().trusted.is_empty());
        assert_eq!(
            ClientAddresses::parse("10.0.0.0/8,::1")
                .unwrap()
                .trusted
                .len(),
            2
        );
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0"] {
            assert!(ClientAddresses::parse(bad).is_err(), "{bad}");
        }
    }
}
