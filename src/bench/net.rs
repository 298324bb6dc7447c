//! The bench's side of the network: the loopback-only target check, spreading
//! source addresses over 127.0.0.0/8, raising the open-file limit, opening
//! one client socket, and naming the OS errors that stop a run.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Parses a target (`IP:PORT`, `[::1]:PORT` or `localhost:PORT`) and refuses
/// anything that is not a loopback address: the bench never sends traffic
/// off this machine. No DNS lookup is made.
pub fn parse_target(s: &str) -> Result<SocketAddr, String> {
    let addr = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match s.rsplit_once(':') {
            Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("bad port in target {s:?}"))?;
                SocketAddr::from((Ipv4Addr::LOCALHOST, port))
            }
            _ => {
                return Err(format!(
                    "bad target {s:?}: give IP:PORT on loopback, e.g. 127.0.0.1:7777"
                ))
            }
        },
    };
    check_loopback(addr)?;
    Ok(addr)
}

/// Refuses any address outside 127.0.0.0/8 and ::1.
pub fn check_loopback(addr: SocketAddr) -> Result<(), String> {
    let ok = match addr.ip() {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "refusing target {addr}: natter bench only targets loopback (127.0.0.0/8 or ::1)"
        ))
    }
}

/// The local address client `index` binds before connecting, so that many
/// connections do not share one source address's ephemeral ports.
/// `per_source` clients share each address, counting from 127.1.0.1 and
/// skipping .0 and .255. None: let the kernel choose (IPv6 targets, or
/// `per_source` 0).
pub fn source_addr(index: usize, per_source: usize, target: SocketAddr) -> Option<IpAddr> {
    if per_source == 0 || !target.is_ipv4() {
        return None;
    }
    let k = index / per_source;
    let d = 1 + (k % 254) as u8;
    let rest = k / 254;
    let c = (rest % 256) as u8;
    let b = 1 + ((rest / 256) % 255) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, b, c, d)))
}

/// Opens one client connection from `source` (if given) to `target`.
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub use crate::sys::{raise_nofile, Nofile};

/// A short name for an I/O error, and whether it means every further
/// connection attempt would fail too (so the run stops connecting).
pub fn classify(e: &io::Error) -> (String, bool) {
    match e.raw_os_error() {
        Some(libc::EMFILE) => (
            "EMFILE: too many open files in the bench (raise the hard RLIMIT_NOFILE: ulimit -Hn)"
                .into(),
            true,
        ),
        Some(libc::ENFILE) => (
            "ENFILE: system-wide open file limit reached (fs.file-max)".into(),
            true,
        ),
        Some(libc::EADDRNOTAVAIL) => (
            "EADDRNOTAVAIL: no free local port on a source address (lower --per-source)".into(),
            true,
        ),
        Some(libc::EADDRINUSE) => (
            "EADDRINUSE: local port exhausted (lower --per-source)".into(),
            true,
        ),
        Some(libc::ECONNREFUSED) => ("ECONNREFUSED: nothing listening on the target".into(), true),
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => (
            "ENOBUFS/ENOMEM: kernel out of memory for sockets".into(),
            true,
        ),
        _ => match e.kind() {
            io::ErrorKind::ConnectionReset => ("connection reset by the server".into(), false),
            io::ErrorKind::TimedOut => ("connect timed out".into(), false),
            io::ErrorKind::BrokenPipe => ("broken pipe (server closed)".into(), false),
            _ => (format!("I/O error: {e}"), false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(parse_target("127.0.0.1:7777").is_ok());
        assert!(parse_target("127.9.8.7:1").is_ok());
        assert!(parse_target("[::1]:7777").is_ok());
        assert!(parse_target("[::ffff:127.0.0.1]:7777").is_ok());
        assert_eq!(
            parse_target("localhost:99").unwrap(),
            "127.0.0.1:99".parse().unwrap()
        );
        for bad in [
            "10.0.0.1:7777",
            "192.168.1.1:7777",
            "8.8.8.8:53",
            "[2001:db8::1]:7777",
            "0.0.0.0:7777",
            "example.com:7777",
            "127.0.0.1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_target("10.0.0.1:7777")
            .unwrap_err()
            .contains("only targets loopback"));
    }

    #[test]
    fn sources_spread_over_loopback() {
        let t: SocketAddr = "127.0.0.1:7777".parse().unwrap();
        let ip = |i| source_addr(i, 50, t).unwrap();
        assert_eq!(ip(0), IpAddr::from([127, 1, 0, 1]));
        assert_eq!(ip(49), IpAddr::from([127, 1, 0, 1]));
        assert_eq!(ip(50), IpAddr::from([127, 1, 0, 2]));
        assert_eq!(ip(50 * 254), IpAddr::from([127, 1, 1, 1]));
        for i in (0..10_000_000).step_by(997) {
            let IpAddr::V4(v4) = ip(i) else { panic!("v6") };
            let o = v4.octets();
            assert!(v4.is_loopback() && o[3] != 0 && o[3] != 255 && o[1] != 0);
        }
        assert_eq!(source_addr(5, 0, t), None);
        assert_eq!(source_addr(5, 50, "[::1]:7".parse().unwrap()), None);
    }
}
