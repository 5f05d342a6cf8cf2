//! Peers for the socket links of ESP-AT's TCP/IP commands
//! (`esp-at-tcpip.md` §3), all on 127.0.0.1 at ports the OS picks: a TCP
//! server that hands each connection to the test ([`TcpServer`]), a TCP
//! echo server ([`TcpEcho`]), a bulk sender whose progress shows whether
//! TCP holds it back ([`PatternSender`]), a UDP peer ([`UdpPeer`]), a host
//! that reads the AT port slowly and parses it as it goes ([`SlowHost`]),
//! the host's side of `AT+CIPSTART`/`AT+CIPSEND`, and the modem process's
//! resident memory as it runs ([`RssWatch`]).
//!
//! The TLS server for `"SSL"` links is [`crate::tls::TlsSocketServer`].
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Interval};

use crate::rig::Proc;
use crate::{Host, WAIT};

/// A UDP port on 127.0.0.1 that nothing was bound to a moment ago, for an
/// `AT+CIPSTART` `<local port>` (the modem binds it itself).
pub fn free_udp_port() -> u16 {
    let socket = StdUdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().unwrap().port()
}

/// Byte `i` of the test streams: a pattern that does not repeat per read or
/// per `+IPD` (251 is prime), so a lost, doubled or reordered piece shows.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// `len` bytes of [`pattern`] from stream offset `from`.
pub fn pattern_bytes(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(pattern).collect()
}

/// A TCP listener on 127.0.0.1:0 whose connections the test drives.
pub struct TcpServer {
    listener: TcpListener,
    pub port: u16,
}

impl TcpServer {
    pub async fn bind() -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        TcpServer { listener, port }
    }

    /// The next connection (bounded by [`WAIT`]).
    pub async fn accept(&self) -> TcpPeer {
        let (stream, remote) = timeout(WAIT, self.listener.accept())
            .await
            .expect("no connection came")
            .expect("accept");
        stream.set_nodelay(true).unwrap();
        TcpPeer { stream, remote }
    }
}

/// One end of a TCP connection with the modem: what a server accepted, or
/// a client of the modem's `AT+CIPSERVER`.
pub struct TcpPeer {
    pub stream: TcpStream,
    /// The modem's end of the connection.
    pub remote: SocketAddr,
}

impl TcpPeer {
    /// Connects to the modem's `AT+CIPSERVER` at `port` on 127.0.0.1.
    pub async fn connect(port: u16) -> TcpPeer {
        let stream = timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let remote = stream.peer_addr().unwrap();
        TcpPeer { stream, remote }
    }

    /// This end's port.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("peer write timed out")
            .expect("peer write");
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0u8; expected.len()];
        timeout(WAIT, self.stream.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("peer: timed out waiting for {expected:?}"))
            .expect("peer read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "what the peer received"
        );
    }

    /// Waits (bounded) until the modem has closed the connection; asserts
    /// nothing came before the end. A reset counts as an end.
    pub async fn expect_eof(&mut self) {
        let mut buf = [0u8; 4096];
        let n = timeout(WAIT, self.stream.read(&mut buf))
            .await
            .expect("the modem kept the connection open")
            .unwrap_or(0);
        assert_eq!(n, 0, "bytes before the end: {:?}", &buf[..n]);
    }
}

/// Waits (bounded by [`WAIT`], trying every 10 ms) until nothing listens
/// on 127.0.0.1:`port` any more; connections made meanwhile are dropped.
pub async fn wait_until_refused(port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = timeout(WAIT, TcpStream::connect(("127.0.0.1", port))).await;
        if let Ok(Err(_)) = attempt {
            return;
        }
        assert!(Instant::now() < deadline, "still listening on {port}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP echo server on 127.0.0.1:0: every connection gets back what it
/// sends, until it closes.
pub struct TcpEcho {
    pub port: u16,
    /// The modem's end of each connection, as they come.
    peers: tokio::sync::mpsc::UnboundedReceiver<SocketAddr>,
}

impl TcpEcho {
    pub async fn start() -> TcpEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, peers) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, remote)) = listener.accept().await {
                let _ = tx.send(remote);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        TcpEcho { port, peers }
    }

    /// The modem's end of the next connection (bounded by [`WAIT`]).
    pub async fn accepted(&mut self) -> SocketAddr {
        timeout(WAIT, self.peers.recv())
            .await
            .expect("no connection came")
            .expect("echo server gone")
    }
}

/// A UDP socket on 127.0.0.1:0 that sends every datagram back, serving
/// until the test ends.
pub async fn udp_echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// The server side of a bulk transfer: sends `total` bytes of [`pattern`]
/// on a connection as fast as the modem takes them, then shuts it down.
/// Its progress can be watched, to see whether TCP holds it back.
pub struct PatternSender {
    sent: Arc<AtomicUsize>,
    total: usize,
    task: JoinHandle<Duration>,
}

impl PatternSender {
    /// Starts sending on `peer`; a single write may be blocked for up to
    /// `write_limit` (the host's stalls and slow phases) before it fails.
    pub fn start(mut peer: TcpPeer, total: usize, write_limit: Duration) -> PatternSender {
        const CHUNK: usize = 64 * 1024;
        let sent = Arc::new(AtomicUsize::new(0));
        let progress = sent.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            for offset in (0..total).step_by(CHUNK) {
                let chunk = pattern_bytes(offset, CHUNK.min(total - offset));
                timeout(write_limit, peer.stream.write_all(&chunk))
                    .await
                    .expect("the server was blocked too long")
                    .expect("server write");
                progress.store(offset + chunk.len(), Ordering::Relaxed);
            }
            peer.stream.shutdown().await.expect("server shutdown");
            started.elapsed()
        });
        PatternSender { sent, total, task }
    }

    /// Bytes the modem's socket has taken so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until everything is sent, or nothing more was taken for
    /// `idle` (TCP holds the server back); returns the bytes sent. Checks
    /// every 10 ms; bounded by [`WAIT`] plus `idle`.
    pub async fn done_or_held_back(&self, idle: Duration) -> usize {
        done_or_held_back(&self.sent, self.total, idle).await
    }

    /// Waits (bounded) for the end; returns how long sending took.
    pub async fn finish(self) -> Duration {
        timeout(WAIT, self.task)
            .await
            .expect("the server did not finish")
            .expect("the server failed")
    }
}

/// Waits until a writer whose progress is `sent` has written `total`
/// bytes, or wrote nothing more for `idle` (TCP holds it back); returns
/// what it wrote. Checks every 10 ms; bounded by [`WAIT`] plus `idle`.
pub async fn done_or_held_back(sent: &AtomicUsize, total: usize, idle: Duration) -> usize {
    let started = Instant::now();
    let (mut last, mut since) = (sent.load(Ordering::Relaxed), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = sent.load(Ordering::Relaxed);
        if now == total {
            return now;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= idle {
            return now;
        }
        assert!(
            started.elapsed() < WAIT + idle,
            "the writer neither finished nor was held back ({now} bytes written)"
        );
    }
}

/// A UDP socket on 127.0.0.1:0 playing the modem's peer.
pub struct UdpPeer {
    pub socket: UdpSocket,
    pub port: u16,
}

impl UdpPeer {
    pub async fn bind() -> UdpPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        UdpPeer { socket, port }
    }

    /// One datagram to 127.0.0.1:`port`.
    pub async fn send_to(&self, bytes: &[u8], port: u16) {
        let sent = timeout(WAIT, self.socket.send_to(bytes, ("127.0.0.1", port)))
            .await
            .expect("UDP send timed out")
            .expect("UDP send");
        assert_eq!(sent, bytes.len());
    }

    /// The next datagram and its sender (bounded by [`WAIT`]).
    pub async fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = timeout(WAIT, self.socket.recv_from(&mut buf))
            .await
            .expect("no datagram came")
            .expect("UDP receive");
        buf.truncate(n);
        (buf, from)
    }
}

/// The host's side of the socket commands (echo off).
impl Host {
    /// `AT+CIPSTART=<args>` answered by `<report>` (`CONNECT`,
    /// `<id>,CONNECT`, `+LINK_CONN:…`) and `OK`.
    pub async fn cipstart(&mut self, args: &str, report: &str) {
        let answer = format!("{report}\r\n\r\nOK\r\n");
        self.at(&format!("AT+CIPSTART={args}"), answer.as_bytes())
            .await;
    }

    /// `AT+CIPSEND=<params>`: the prompt `\r\nOK\r\n\r\n>`, then `data`,
    /// `Recv <n> bytes` and `SEND OK`.
    pub async fn cipsend(&mut self, params: &str, data: &[u8]) {
        self.at(&format!("AT+CIPSEND={params}"), b"\r\nOK\r\n\r\n>")
            .await;
        self.send(data).await;
        let done = format!("\r\nRecv {} bytes\r\n\r\nSEND OK\r\n", data.len());
        self.expect(done.as_bytes()).await;
    }

    /// Asserts the next output is the active-mode report
    /// `\r\n+IPD,<head>:<data>\r\n` (`head`: `[<id>,]<len>[,"<ip>",<port>]`).
    pub async fn expect_ipd(&mut self, head: &str, data: &[u8]) {
        let mut report = format!("\r\n+IPD,{head}:").into_bytes();
        report.extend_from_slice(data);
        report.extend_from_slice(b"\r\n");
        self.expect(&report).await;
    }
}

/// How a [`SlowHost`] reads at first: at most `step` bytes every `tick`
/// for `phase`, then at full speed.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub step: usize,
    pub tick: Duration,
    pub phase: Duration,
}

/// A host that reads the AT port slowly for a while, then at full speed,
/// and parses what it reads from its own buffer.
pub struct SlowHost {
    pub host: Host,
    /// What one read takes, before it joins `buf`.
    scratch: Vec<u8>,
    /// [`pattern`] from 0, long enough for any offset and read.
    template: Vec<u8>,
    buf: Vec<u8>,
    /// Where unparsed output starts in `buf`.
    at: usize,
    pace: Option<(Pace, Interval, Instant)>,
    /// Output bytes read so far.
    pub read: usize,
}

/// Read size at full speed.
const FAST_READ: usize = 256 * 1024;

impl SlowHost {
    /// Starts reading `host` as `pace` says (full speed at once if `None`).
    pub fn new(host: Host, pace: Option<Pace>) -> SlowHost {
        let pace = pace.map(|p| (p, tokio::time::interval(p.tick), Instant::now()));
        SlowHost {
            host,
            scratch: vec![0; FAST_READ],
            template: pattern_bytes(0, 251 + FAST_READ),
            buf: Vec::with_capacity(2 * FAST_READ),
            at: 0,
            pace,
            read: 0,
        }
    }

    /// Whether the slow phase is over.
    pub fn fast(&self) -> bool {
        self.pace.is_none()
    }

    /// One read of the port, paced. Every read is bounded by [`WAIT`].
    async fn fill(&mut self) {
        let mut limit = FAST_READ;
        if let Some((pace, tick, started)) = &mut self.pace {
            if started.elapsed() < pace.phase {
                tick.tick().await;
                limit = pace.step;
            } else {
                self.pace = None;
            }
        }
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at >= FAST_READ {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        let read = timeout(WAIT, self.host.stream.read(&mut self.scratch[..limit])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(error)) => panic!("AT port read failed after {} bytes: {error}", self.read),
            Err(_) => panic!(
                "AT port stalled after {} bytes; unparsed: {:?}",
                self.read,
                self.shown()
            ),
        };
        assert!(n > 0, "AT port closed after {} bytes", self.read);
        self.buf.extend_from_slice(&self.scratch[..n]);
        self.read += n;
    }

    /// What is unparsed, for messages.
    fn shown(&self) -> String {
        let rest = &self.buf[self.at..];
        String::from_utf8_lossy(&rest[..rest.len().min(80)]).into_owned()
    }

    /// Asserts the next output is `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        while self.buf.len() - self.at < expected.len() {
            let rest = &self.buf[self.at..];
            assert!(
                expected.starts_with(rest),
                "expected {:?}, got {:?}",
                String::from_utf8_lossy(expected),
                self.shown()
            );
            self.fill().await;
        }
        let got = &self.buf[self.at..self.at + expected.len()];
        assert!(
            got == expected,
            "expected {:?}, got {:?}",
            String::from_utf8_lossy(expected),
            self.shown()
        );
        self.at += expected.len();
    }

    /// A decimal number ended by `end` (taken too).
    pub async fn number(&mut self, end: u8) -> usize {
        loop {
            let rest = &self.buf[self.at..];
            if let Some(pos) = rest.iter().position(|&b| b == end) {
                let text = std::str::from_utf8(&rest[..pos]).unwrap_or("");
                let n = text.parse().unwrap_or_else(|_| {
                    panic!("no number before {:?}: {:?}", end as char, self.shown())
                });
                self.at += pos + 1;
                return n;
            }
            assert!(
                rest.len() < 12 && rest.iter().all(u8::is_ascii_digit),
                "no number before {:?}: {:?}",
                end as char,
                self.shown()
            );
            self.fill().await;
        }
    }

    /// The next `n` bytes, checked against [`pattern`] from stream offset
    /// `from`.
    pub async fn pattern(&mut self, from: usize, n: usize) {
        let mut done = 0;
        while done < n {
            if self.at == self.buf.len() {
                self.fill().await;
            }
            let take = (n - done).min(self.buf.len() - self.at).min(FAST_READ);
            let got = &self.buf[self.at..self.at + take];
            let offset = from + done;
            // The pattern repeats every 251 bytes: compare with a slice of
            // it (one comparison, not one per byte).
            let expected = &self.template[offset % 251..][..take];
            if got != expected {
                let k = got.iter().zip(expected).position(|(a, b)| a != b).unwrap();
                panic!(
                    "stream byte {} is {}, not {}: lost, doubled or reordered data",
                    offset + k,
                    got[k],
                    expected[k]
                );
            }
            self.at += take;
            done += take;
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.host.send(bytes).await;
    }

    /// Whether everything read has been parsed.
    pub fn drained(&self) -> bool {
        self.at == self.buf.len()
    }
}

/// The resident memory of the modem process, sampled while a test runs.
pub struct RssWatch {
    pid: u32,
    /// The highest VmRSS sampled, KiB.
    pub peak_kib: u64,
    pub samples: usize,
}

impl RssWatch {
    pub fn new(proc: &Proc) -> RssWatch {
        let mut watch = RssWatch {
            pid: proc.pid(),
            peak_kib: 0,
            samples: 0,
        };
        watch.sample();
        watch
    }

    /// Reads VmRSS now; returns it in KiB.
    pub fn sample(&mut self) -> u64 {
        let rss = crate::rig::status_kib(self.pid, "VmRSS:");
        self.peak_kib = self.peak_kib.max(rss);
        self.samples += 1;
        rss
    }
}
