//! Socket addresses as text, byte for byte what `std` writes
//! (`127.0.0.1:51234`, `[::1]:80`), without the formatting machinery for
//! IPv4: `std` formats an IPv4 address into a buffer first (for padding),
//! ≈ 2k instructions, twice per connection in a join storm (the log's
//! `peer`, the session's `ip`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Up to `255.255.255.255:65535`.
struct V4Text {
    buf: [u8; 21],
    len: usize,
}

impl V4Text {
    fn new(ip: Ipv4Addr, port: Option<u16>) -> V4Text {
        let mut t = V4Text {
            buf: [0; 21],
            len: 0,
        };
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            t.number(u32::from(octet));
        }
        if let Some(port) = port {
            t.push(b':');
            t.number(u32::from(port));
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn number(&mut self, n: u32) {
        for &d in crate::digits::decimal(n.into(), &mut [0; 20]) {
            self.push(d);
        }
    }

    fn as_str(&self) -> &str {
        // ASCII digits, dots and a colon.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// An IP address as text.
pub(crate) fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => V4Text::new(v4, None).as_str().to_owned(),
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// A socket address that displays as `std` displays it (padding and
/// width are not honoured: it is written plain).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => f.write_str(V4Text::new(*a.ip(), Some(a.port())).as_str()),
            SocketAddr::V6(a) => fmt::Display::fmt(&a, f),
        }
    }
}

/// A socket address kept in 24 bytes instead of `SocketAddr`'s 32: the
/// log identity of every connection, parked ones included, holds one
/// (`perf16r`). IPv6's flow label is not kept (`std` does not display
/// it); the scope is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedAddr {
    ip: [u8; 16],
    scope: u32,
    port: u16,
    v6: bool,
}

impl From<SocketAddr> for PackedAddr {
    fn from(a: SocketAddr) -> PackedAddr {
        match a {
            SocketAddr::V4(a) => PackedAddr {
                ip: a.ip().to_ipv6_mapped().octets(),
                scope: 0,
                port: a.port(),
                v6: false,
            },
            SocketAddr::V6(a) => PackedAddr {
                ip: a.ip().octets(),
                scope: a.scope_id(),
                port: a.port(),
                v6: true,
            },
        }
    }
}

impl PackedAddr {
    /// The address (a V6 one with flow label 0).
    pub fn get(&self) -> SocketAddr {
        let ip = Ipv6Addr::from(self.ip);
        match ip.to_ipv4_mapped().filter(|_| !self.v6) {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, self.port)),
            None => SocketAddr::V6(SocketAddrV6::new(ip, self.port, 0, self.scope)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_std_writes_them() {
        let ips = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.9",
            "255.255.255.255",
            "1.0.255.7",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ];
        for ip in ips {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
            for port in [0, 7, 80, 6667, 51234, 65535] {
                let a = SocketAddr::new(ip, port);
                assert_eq!(Peer(a).to_string(), a.to_string());
            }
        }
    }

    #[test]
    fn a_packed_address_is_the_address_and_smaller() {
        for text in [
            "127.0.0.1:51234",
            "[::1]:80",
            "[::ffff:10.0.0.1]:7",
            "[fe80::1%3]:9000",
        ] {
            let a: SocketAddr = text.parse().unwrap();
            assert_eq!(PackedAddr::from(a).get(), a, "{text}");
            assert_eq!(Peer(PackedAddr::from(a).get()).to_string(), text);
        }
        assert!(std::mem::size_of::<PackedAddr>() <= 24);
    }
}
