//! A link's connection as the modem's driver owns it: connecting (TCP, then
//! TLS for `wss://` and SSL; a bound socket for UDP) runs as a small task
//! of its own; once up, the driver polls the stream or socket itself, so a
//! send the kernel takes at once is reported in the same wake-up and
//! received bytes go from the socket read straight into the core.
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wsat_proto::{Link, Transport};

use crate::shape::{Shape, ShapeHandle, Shaped};
use crate::tls::{self, TlsOptions};

/// How long a closed connection may take to write what was queued before
/// its `Close`; a server that stops reading must not keep it alive.
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// A send this large, with nothing queued before it, is taken at once: its
/// `SEND OK` goes to the host before the write, so the host's next request
/// overlaps the kernel's copy of this one (the send throughput of large
/// messages). Smaller sends are written first: for them the host is more
/// likely waiting on the answer from the server (echo latency). One such send
/// at most is held, as a TCP send buffer holds data ESP-AT's `SEND OK`
/// already counted as sent.
const EARLY_SEND: usize = 4096;

/// A byte stream a link runs over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a connection goes and how.
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// TCP keep-alive idle seconds; 0: off.
    pub keep_alive_s: u16,
    pub tls_options: TlsOptions,
}

/// A connection that is up, with its two ends.
pub(crate) struct Opened {
    pub conn: Conn,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A stream (TCP, TLS) or a UDP socket.
pub(crate) enum Conn {
    Stream(Box<dyn Io>),
    Udp(UdpSocket),
}

/// A connect attempt's outcome, tagged with the attempt, so that the result
/// of a replaced attempt is recognised and dropped.
pub(crate) struct Connected {
    pub link: Link,
    pub attempt: u64,
    /// Boxed: the channel's blocks hold 32 of these per modem.
    pub result: io::Result<Box<Opened>>,
}

/// Starts connecting; the outcome goes to `results`.
pub(crate) fn connect(
    link: Link,
    attempt: u64,
    target: Target,
    results: mpsc::UnboundedSender<Connected>,
) -> AbortHandle {
    tokio::spawn(async move {
        let result = open(&target).await.map(Box::new);
        let _ = results.send(Connected {
            link,
            attempt,
            result,
        });
    })
    .abort_handle()
}

async fn open(target: &Target) -> io::Result<Opened> {
    let local_port = match target.transport {
        Transport::Udp { local_port } => local_port,
        _ => return open_stream(target).await,
    };
    // `0.0.0.0` (or `::`) names no peer: datagrams come from anyone.
    let remote = match target.host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, target.port),
        Err(_) => resolve(&target.host, target.port).await?,
    };
    let any = match remote {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind((any, local_port)).await?;
    Ok(Opened {
        local: socket.local_addr()?,
        remote,
        conn: Conn::Udp(socket),
    })
}

async fn open_stream(target: &Target) -> io::Result<Opened> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    if target.keep_alive_s > 0 {
        // ESP-AT's keep-alive: idle time, then 3 probes a second apart.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(target.keep_alive_s)))
            .with_interval(Duration::from_secs(1))
            .with_retries(3);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
    }
    let (local, remote) = (tcp.local_addr()?, tcp.peer_addr()?);
    let conn = match &target.transport {
        Transport::Tls(policy) => {
            let stream = tls::connect(tcp, &target.host, policy, &target.tls_options).await?;
            Conn::Stream(Box::new(stream))
        }
        _ => Conn::Stream(Box::new(tcp)),
    };
    Ok(Opened {
        conn,
        local,
        remote,
    })
}

/// The first address of `host` (IPv4 first, as ESP-AT prefers).
/// The resolver's IPv4 name servers in `resolv_conf` (the text of
/// `/etc/resolv.conf`), at most three, as `AT+CIPDNS?` lists the servers
/// DHCP gave the module.
pub fn resolver_servers(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|address| address.parse::<Ipv4Addr>().ok())
        .map(|address| address.to_string())
        .take(3)
        .collect()
}

async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address")))
}

/// Every address of `host`, for `AT+CIPDOMAIN`; empty when it has none.
pub(crate) async fn lookup(host: String) -> Vec<IpAddr> {
    match tokio::net::lookup_host((host.as_str(), 0)).await {
        Ok(addrs) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in addrs {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            ips
        }
        Err(error) => {
            tracing::info!(%host, %error, "lookup failed");
            Vec::new()
        }
    }
}

/// An open UDP link: the socket and the datagrams not yet sent.
pub(crate) struct Datagrams {
    socket: UdpSocket,
    sends: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl Datagrams {
    pub(crate) fn new(socket: UdpSocket) -> Datagrams {
        Datagrams {
            socket,
            sends: VecDeque::new(),
        }
    }

    pub(crate) fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.sends.push_back((to, bytes));
    }

    /// Sends queued datagrams as far as the socket takes them; returns how
    /// many went. A datagram the system refuses (unreachable, too big) is
    /// lost, as UDP allows: it counts as gone, the link stays.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> usize {
        let mut done = 0;
        while let Some((to, bytes)) = self.sends.front() {
            match self.socket.poll_send_to(cx, bytes, *to) {
                Poll::Pending => break,
                Poll::Ready(result) => {
                    if let Err(error) = result {
                        tracing::info!(%error, %to, "datagram not sent");
                    }
                    self.sends.pop_front();
                    done += 1;
                }
            }
        }
        done
    }

    /// One datagram into `buf` (cut to its size), and its sender.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        loop {
            let mut read = ReadBuf::new(buf);
            match self.socket.poll_recv_from(cx, &mut read) {
                Poll::Ready(Ok(from)) => return Some((read.filled().len(), from)),
                // An ICMP error for an earlier send: nothing to read.
                Poll::Ready(Err(_)) => continue,
                Poll::Pending => return None,
            }
        }
    }
}

/// What polling an open link gave.
pub(crate) enum Polled {
    /// This many sends were written in full.
    Sent(usize),
    Received(usize),
    /// EOF, or reading or writing failed: nothing more comes.
    Ended,
    Nothing,
}

/// An open connection: the stream and the sends not yet written.
pub(crate) struct Stream {
    io: Box<dyn Io>,
    /// Set once a `shape` fault wrapped `io`.
    shape: Option<ShapeHandle>,
    sends: VecDeque<Vec<u8>>,
    /// Bytes of `sends[0]` already written.
    written: usize,
    /// Written bytes a TLS stream may still hold: flush them.
    unflushed: bool,
    /// EOF was read (writing may go on: the core may answer a close frame).
    read_done: bool,
    /// EOF or an error was reported; the stream is no longer used.
    ended: bool,
    /// `sends[0]` was taken at once (see [`Stream::send`]).
    front_taken: bool,
}

impl Stream {
    pub(crate) fn new(io: Box<dyn Io>) -> Stream {
        Stream {
            io,
            shape: None,
            sends: VecDeque::new(),
            written: 0,
            unflushed: false,
            read_done: false,
            ended: false,
            front_taken: false,
        }
    }

    /// Delays and paces the traffic from now on (the `shape` fault).
    pub(crate) fn shape(&mut self, shape: Shape) {
        if let Some(handle) = &self.shape {
            *handle.lock().unwrap_or_else(|e| e.into_inner()) = shape;
            return;
        }
        let handle = std::sync::Arc::new(std::sync::Mutex::new(shape));
        let placeholder: Box<dyn Io> =
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let io = std::mem::replace(&mut self.io, placeholder);
        self.io = Box::new(Shaped::new(io, handle.clone()));
        self.shape = Some(handle);
    }

    /// Queues `bytes` after earlier sends. True when the stream takes them
    /// at once: a send of at least [`EARLY_SEND`] bytes with nothing queued
    /// before it. Its `Sent` is then the caller's to report now, and
    /// [`Stream::poll_write`] does not count it again.
    pub(crate) fn send(&mut self, bytes: Vec<u8>) -> bool {
        if self.ended {
            return false;
        }
        let taken = self.sends.is_empty() && bytes.len() >= EARLY_SEND;
        if self.sends.is_empty() {
            self.front_taken = taken;
        }
        self.sends.push_back(bytes);
        taken
    }

    /// Writes queued sends as far as the socket takes them.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Polled {
        let mut done = 0;
        while !self.ended {
            let Some(front) = self.sends.front() else {
                if self.unflushed {
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.unflushed = false,
                        Poll::Ready(Err(_)) => return self.end(),
                        Poll::Pending => {}
                    }
                }
                break;
            };
            match Pin::new(&mut self.io).poll_write(cx, &front[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return self.end(),
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
                    self.written += n;
                    if self.written == front.len() {
                        self.sends.pop_front();
                        self.written = 0;
                        if !std::mem::take(&mut self.front_taken) {
                            done += 1;
                        }
                    }
                }
                Poll::Pending => break,
            }
        }
        if done > 0 {
            Polled::Sent(done)
        } else {
            Polled::Nothing
        }
    }

    /// One read into `buf`.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Polled {
        if self.ended || self.read_done {
            return Polled::Nothing;
        }
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                self.read_done = true;
                Polled::Ended
            }
            Poll::Ready(Ok(())) => Polled::Received(read.filled().len()),
            Poll::Ready(Err(error)) => {
                tracing::info!(%error, "read failed");
                self.end()
            }
            Poll::Pending => Polled::Nothing,
        }
    }

    /// EOF was read, or the stream failed, and has not been said yet.
    fn end(&mut self) -> Polled {
        let said = self.ended || self.read_done;
        self.ended = true;
        if said {
            Polled::Nothing
        } else {
            Polled::Ended
        }
    }

    /// Writes what was queued, then closes, in a task of its own that ends
    /// after [`CLOSE_FLUSH_LIMIT`] at the latest.
    pub(crate) fn close(mut self) {
        tokio::spawn(async move {
            let flush = async {
                if self.ended {
                    return;
                }
                if let Some(front) = self.sends.pop_front() {
                    if self.io.write_all(&front[self.written..]).await.is_err() {
                        return;
                    }
                }
                for bytes in self.sends.drain(..) {
                    if self.io.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = self.io.shutdown().await;
            };
            let _ = tokio::time::timeout(CLOSE_FLUSH_LIMIT, flush).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::resolver_servers;

    #[test]
    fn resolver_servers_are_the_first_three_ipv4_name_servers() {
        let conf = "# generated\nsearch example.org\nnameserver 10.0.0.1\n\
                    nameserver ::1\n  nameserver   192.0.2.53 # the second\n\
                    options edns0\nnameserver 198.51.100.1\nnameserver 203.0.113.1\n\
                    nameserver not-an-address\n";
        assert_eq!(
            resolver_servers(conf),
            ["10.0.0.1", "192.0.2.53", "198.51.100.1"]
        );
        assert!(resolver_servers("").is_empty());
    }
}
