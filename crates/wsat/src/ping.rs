//! AT+PING's round trip, measured for real: an ICMP echo where the OS lets
//! us send one, else a TCP connect. Never an invented figure.
//!
//! The ways, in order: an unprivileged ICMP socket (Linux allows it to the
//! groups in `net.ipv4.ping_group_range`), a raw ICMP socket (needs
//! `CAP_NET_RAW`), a TCP connect to port 80, where a completed handshake
//! and a refusal (RST) are both an answer from the host.
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

/// The TCP fallback's port: open or closed, most hosts answer on it.
const TCP_PROBE_PORT: u16 = 80;

const ECHO_HEADER_LEN: usize = 8;
/// Random bytes in the request: the echo reply carries them back, which is
/// how an unprivileged socket (whose identifier the kernel rewrites) tells
/// its reply from another one.
const TOKEN_LEN: usize = 16;

/// One counter for the process: pings of different modems run at once, and
/// every raw ICMP socket sees every ICMP packet.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// Round trip to `host` (a name or an IP address): resolved with the host resolver, then
/// measured. Ok(Some(rtt)) on a reply, Ok(None) when nothing answered within `timeout`,
/// Err when the name does not resolve.
///
/// The whole call, resolving included, ends within `timeout`. A network
/// that says the host cannot be reached is `Ok(None)` at once; `Err` also
/// means no probe could be made at all (no socket of any kind).
pub(crate) async fn ping(host: &str, timeout: Duration) -> io::Result<Option<Duration>> {
    let deadline = Instant::now() + timeout;
    let addr = resolve(host, deadline).await?;
    for kind in [Type::DGRAM, Type::RAW] {
        match icmp_probe(addr, kind, deadline).await {
            Err(e) if not_allowed(&e) => continue,
            answer => return answer,
        }
    }
    tcp_probe(SocketAddr::new(addr, TCP_PROBE_PORT), deadline).await
}

async fn resolve(host: &str, deadline: Instant) -> io::Result<IpAddr> {
    let lookup = timeout_at(deadline, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("resolving {host} took longer than the timeout"),
            )
        })?;
    // The resolver's order (RFC 6724 in glibc) already puts the best first.
    lookup?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")))
}

/// One ICMP echo over a socket of `kind` (`DGRAM`: the unprivileged ICMP
/// socket; `RAW`). An error the caller may pass over is `not_allowed`.
async fn icmp_probe(addr: IpAddr, kind: Type, deadline: Instant) -> io::Result<Option<Duration>> {
    let (domain, protocol) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, kind, Some(protocol))?;
    socket.set_nonblocking(true)?;
    // Connected, the socket gets only packets from `addr`.
    if let Err(e) = socket.connect(&SocketAddr::new(addr, 0).into()) {
        return no_reply_or(e);
    }
    // Tokio's UDP socket only calls send(2) and recv(2), which is all an
    // ICMP socket needs, and registers it safely (`AsyncFd` takes `unsafe`).
    let socket = UdpSocket::from_std(socket.into())?;

    let mut id = [0; 2];
    let mut token = [0; TOKEN_LEN];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut token))
        .map_err(io::Error::other)?;
    let echo = Echo {
        v6: addr.is_ipv6(),
        // A DGRAM socket's identifier is the kernel's, whatever we write.
        id: (kind == Type::RAW).then(|| u16::from_be_bytes(id)),
        sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        token,
    };
    let request = echo.request(u16::from_be_bytes(id));

    let exchange = async {
        let start = std::time::Instant::now();
        socket.send(&request).await?;
        // Bigger than our reply with the largest IPv4 header; anything
        // longer is not ours and may be cut.
        let mut packet = [0; 128];
        // IPv4 raw sockets get the IP header too; IPv6 ones never do.
        let raw_v4 = kind == Type::RAW && addr.is_ipv4();
        loop {
            let read = socket.recv(&mut packet).await?;
            let rtt = start.elapsed();
            if echo.is_reply(&packet[..read], raw_v4) {
                return Ok(rtt);
            }
        }
    };
    match timeout_at(deadline, exchange).await {
        Ok(Ok(rtt)) => Ok(Some(rtt)),
        Ok(Err(e)) => no_reply_or(e),
        Err(_elapsed) => Ok(None),
    }
}

/// The fallback: the time a TCP handshake takes to be answered, by a
/// SYN-ACK or a RST.
async fn tcp_probe(addr: SocketAddr, deadline: Instant) -> io::Result<Option<Duration>> {
    let start = std::time::Instant::now();
    let connect = timeout_at(deadline, TcpStream::connect(addr)).await;
    let rtt = start.elapsed();
    match connect {
        Ok(Ok(_)) => Ok(Some(rtt)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(Some(rtt)),
        Ok(Err(e)) => no_reply_or(e),
        Err(_elapsed) => Ok(None),
    }
}

/// What we sent, to recognise its reply.
struct Echo {
    v6: bool,
    /// `None` where the kernel picks it (DGRAM sockets).
    id: Option<u16>,
    sequence: u16,
    token: [u8; TOKEN_LEN],
}

impl Echo {
    fn request(&self, id: u16) -> [u8; ECHO_HEADER_LEN + TOKEN_LEN] {
        let mut packet = [0; ECHO_HEADER_LEN + TOKEN_LEN];
        packet[0] = if self.v6 { 128 } else { 8 };
        packet[4..6].copy_from_slice(&id.to_be_bytes());
        packet[6..8].copy_from_slice(&self.sequence.to_be_bytes());
        packet[ECHO_HEADER_LEN..].copy_from_slice(&self.token);
        // ICMPv6's checksum covers a pseudo-header with our source address,
        // so the kernel always writes it for ICMPv6 sockets.
        if !self.v6 {
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        packet
    }

    fn is_reply(&self, packet: &[u8], with_ip_header: bool) -> bool {
        let skip = if with_ip_header {
            usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4
        } else {
            0
        };
        let Some(icmp) = packet.get(skip..) else {
            return false;
        };
        icmp.len() == ECHO_HEADER_LEN + TOKEN_LEN
            && icmp[0] == if self.v6 { 129 } else { 0 }
            && icmp[1] == 0
            && self.id.is_none_or(|id| icmp[4..6] == id.to_be_bytes())
            && icmp[6..8] == self.sequence.to_be_bytes()
            && icmp[ECHO_HEADER_LEN..] == self.token
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The socket kind is refused (`ping_group_range`, no `CAP_NET_RAW`, a
/// firewall on sending, a kernel without it): the next way may work.
fn not_allowed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        || matches!(
            e.raw_os_error().map(Errno::from_raw),
            Some(Errno::EPROTONOSUPPORT | Errno::ESOCKTNOSUPPORT)
        )
}

/// The network said nothing will answer (no route, host down): that is no
/// reply, not a failure of ours.
fn no_reply_or(e: io::Error) -> io::Result<Option<Duration>> {
    let unreachable = matches!(
        e.kind(),
        io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::TimedOut
    ) || e.raw_os_error() == Some(Errno::EHOSTDOWN as i32);
    if unreachable {
        Ok(None)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::net::{TcpListener, TcpSocket};

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const TIMEOUT: Duration = Duration::from_secs(2);

    fn deadline() -> Instant {
        Instant::now() + TIMEOUT
    }

    #[tokio::test]
    async fn loopback_answers_within_the_timeout() {
        let rtt = ping("127.0.0.1", TIMEOUT).await.unwrap().expect("a reply");
        assert!(rtt < TIMEOUT, "{rtt:?}");
    }

    #[tokio::test]
    async fn loopback_answers_over_ipv6() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("skipped: no ::1 here");
            return;
        }
        let rtt = ping("::1", TIMEOUT).await.unwrap().expect("a reply");
        assert!(rtt < TIMEOUT, "{rtt:?}");
    }

    /// The empty label cannot go into a DNS query, so the resolver fails
    /// without asking a server (`no-such-host.invalid` would ask one).
    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_error() {
        assert!(ping("no-such-host..invalid", TIMEOUT).await.is_err());
    }

    /// Each ICMP way on its own, where this machine allows it.
    #[tokio::test]
    async fn each_icmp_socket_kind_measures_loopback() {
        for (kind, name) in [(Type::DGRAM, "unprivileged ICMP"), (Type::RAW, "raw ICMP")] {
            match icmp_probe(LOCALHOST, kind, deadline()).await {
                Err(e) if not_allowed(&e) => eprintln!("skipped {name}: {e}"),
                answer => {
                    let rtt = answer.unwrap().expect("a reply");
                    assert!(rtt < TIMEOUT, "{name}: {rtt:?}");
                }
            }
        }
    }

    #[tokio::test]
    async fn an_accepted_tcp_connect_is_a_reply() {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rtt = tcp_probe(addr, deadline()).await.unwrap();
        assert!(rtt.is_some_and(|rtt| rtt < TIMEOUT), "{rtt:?}");
    }

    #[tokio::test]
    async fn a_refused_tcp_connect_is_a_reply() {
        let addr = TcpListener::bind((LOCALHOST, 0))
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let rtt = tcp_probe(addr, deadline()).await.unwrap();
        assert!(rtt.is_some_and(|rtt| rtt < TIMEOUT), "{rtt:?}");
    }

    /// Linux drops a SYN while the listener's accept queue is full: a host
    /// that never answers, without leaving loopback.
    #[tokio::test]
    async fn no_answer_is_none_by_the_timeout() {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((LOCALHOST, 0).into()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        while let Ok(stream) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            queued.push(stream.unwrap());
            assert!(queued.len() < 16, "the accept queue never filled");
        }

        let bound = Duration::from_millis(300);
        let start = std::time::Instant::now();
        assert_eq!(tcp_probe(addr, Instant::now() + bound).await.unwrap(), None);
        let took = start.elapsed();
        assert!(
            took >= bound && took < bound + Duration::from_millis(500),
            "{took:?}"
        );
    }

    #[test]
    fn the_checksum_of_a_packet_with_its_checksum_is_zero() {
        let echo = Echo {
            v6: false,
            id: Some(0x1234),
            sequence: 7,
            token: [0xab; TOKEN_LEN],
        };
        assert_eq!(checksum(&echo.request(0x1234)), 0);
        // RFC 1071's example, folded and complemented.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }
}
