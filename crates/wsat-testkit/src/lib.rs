//! Test support for wsat, in one place: the real `wsat` binary on
//! `--tcp 127.0.0.1:0` ([`Wsat`], launched by [`rig::Proc`]), a host talking
//! to it byte for byte ([`Host`]), and servers on 127.0.0.1:0: wsat's echo
//! server ([`echo_server`]), a raw-frame server ([`raw`]), TLS servers
//! with certificates made at test time ([`tls`]), the TCP, UDP, echo and
//! slow-host peers of the socket links ([`sockets`]), tshark to read
//! captures back ([`tshark`]), `wsat peer`
//! with a client for its control API and a raw WebSocket client
//! ([`peer`]), and an HTTP client for the JSON APIs ([`http`]).
//!
//! A dev-dependency of `wsat`: its integration tests and its TLS unit tests
//! use it. Nothing here is published.

pub mod http;
pub mod peer;
pub mod raw;
pub mod rig;
pub mod sockets;
pub mod tls;
pub mod tshark;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use rig::Proc;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `wsat --tcp 127.0.0.1:0`, killed on drop.
pub struct Wsat {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Wsat {
    pub fn start() -> Wsat {
        Wsat::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Wsat {
        Wsat::launch(&rig::Launch::default(), args)
    }

    /// [`Wsat::start_with`] with a certificate store of its own
    /// (`--pki-dir` in a temporary directory, removed when it is dropped),
    /// so a test never touches the user's store.
    pub fn start_with_store(args: &[&str]) -> (Wsat, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut all = vec!["--pki-dir", dir.path().to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        (Wsat::start_with(&all), dir)
    }

    /// [`Wsat::start_with`] as `launch` says (fd limit, environment, stderr).
    pub fn launch(launch: &rig::Launch, args: &[&str]) -> Wsat {
        let (proc, addr) = Proc::tcp_launch(launch, args);
        Wsat { proc, addr }
    }

    /// A new host connection: a fresh modem, found running (no `ready`).
    pub async fn host(&self) -> Host {
        Host::connect(self.addr).await
    }

    /// A host with echo off (`ATE0` answered).
    pub async fn quiet_host(&self) -> Host {
        Host::connect_quiet(self.addr).await
    }
}

/// The host side of the AT port.
pub struct Host {
    pub stream: TcpStream,
}

impl Host {
    /// Connects to a `--tcp` port at `addr`: a fresh modem, found running
    /// as by a host that opens the port of a booted module (no `ready`).
    pub async fn connect(addr: SocketAddr) -> Host {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Host { stream }
    }

    /// [`Host::connect`], then echo off (`ATE0` answered).
    pub async fn connect_quiet(addr: SocketAddr) -> Host {
        let mut host = Host::connect(addr).await;
        host.send(b"ATE0\r\n").await;
        host.expect(b"ATE0\r\n\r\nOK\r\n").await;
        host
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        self.expect_within(WAIT, expected).await;
    }

    /// [`Host::expect`] for something that takes longer than [`WAIT`] (a
    /// reconnect 10 s after a loss).
    pub async fn expect_within(&mut self, limit: Duration, expected: &[u8]) {
        let got = self.read_exact_within(limit, expected.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "AT port output"
        );
        assert_eq!(got, expected);
    }

    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        self.read_exact_within(WAIT, n).await
    }

    async fn read_exact_within(&mut self, limit: Duration, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        match timeout(limit, self.stream.read_exact(&mut got)).await {
            Ok(Ok(_)) => got,
            Ok(Err(error)) => panic!("AT port read failed: {error}"),
            Err(_) => panic!("timed out waiting for {n} bytes"),
        }
    }

    /// Reads until `needle` has arrived; returns everything read.
    pub async fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(needle.len()).any(|w| w == needle) {
            let n = timeout(WAIT, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {:?}; got {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&got)
                    )
                })
                .expect("read");
            assert!(
                n > 0,
                "AT port closed; got {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// A command line with echo off, and its exact answer.
    pub async fn at(&mut self, line: &str, answer: &[u8]) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.expect(answer).await;
    }

    /// Asserts the modem still answers `AT` (echo off).
    pub async fn alive(&mut self) {
        self.at("AT", b"\r\nOK\r\n").await;
    }

    /// `AT+WSOPEN` that must succeed (echo off).
    pub async fn open(&mut self, link: u8, uri: &str) {
        let answer = format!("+WS_CONNECTED:{link}\r\n\r\nOK\r\n");
        self.at(&format!("AT+WSOPEN={link},\"{uri}\""), answer.as_bytes())
            .await;
    }

    /// ESP-AT's documented exchange with echo on: open link 0 to `uri`,
    /// send `test`, and read its echo from the server.
    pub async fn documented_open_send_echo(&mut self, uri: &str) {
        let open = format!("AT+WSOPEN=0,\"{uri}\"\r\n");
        self.send(open.as_bytes()).await;
        self.expect(open.as_bytes()).await;
        self.expect(b"+WS_CONNECTED:0\r\n\r\nOK\r\n").await;
        self.send(b"AT+WSSEND=0,4\r\n").await;
        self.expect(b"AT+WSSEND=0,4\r\n\r\nOK\r\n\r\n>").await;
        self.send(b"test").await;
        // The data is never echoed.
        self.expect(b"\r\nSEND OK\r\n").await;
        self.expect(b"+WS_DATA:0,4,test\r\n").await;
    }

    /// `AT+WSOPEN` of `link` to a raw server that accepts it (echo off).
    pub async fn open_raw(&mut self, link: u8, server: &raw::RawListener) -> raw::RawConn {
        self.send(format!("AT+WSOPEN={link},\"{}\"\r\n", server.uri).as_bytes())
            .await;
        let conn = server.accept(raw::Answer::Upgrade).await;
        let answer = format!("+WS_CONNECTED:{link}\r\n\r\nOK\r\n");
        self.expect(answer.as_bytes()).await;
        conn
    }

    /// `AT+WSSEND` with its data in one write, answered `SEND OK` (echo off).
    pub async fn send_data(&mut self, params: &str, data: &[u8]) {
        self.send(format!("AT+WSSEND={params}\r\n").as_bytes())
            .await;
        self.expect(b"\r\nOK\r\n\r\n>").await;
        self.send(data).await;
        self.expect(b"\r\nSEND OK\r\n").await;
    }
}

/// tokio-tungstenite's echo server (the one `wsat echo-server` runs) on
/// 127.0.0.1:0; returns its `ws://` URI. Its accept queue is as deep as
/// the modem's (wsat's `tcp_listener`): a thousand clients may connect at once.
pub async fn echo_server() -> String {
    let listener = wsat::transport::tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(wsat::echo_server::serve(listener));
    format!("ws://{addr}")
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// `wsat --tcp 127.0.0.1:0 --control 127.0.0.1:0 ARGS`: the modem port and
/// the control API's address.
pub struct Controlled {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub control: SocketAddr,
}

impl Controlled {
    pub async fn start(args: &[&str]) -> Controlled {
        let mut all = vec!["--tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let launch = rig::Launch {
            keep_stderr: true,
            ..rig::Launch::default()
        };
        let (mut proc, rest) = Proc::launch(&launch, &all, "control API on http://");
        let control = rest
            .split(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("the control address");
        let line = timeout(WAIT, proc.stderr_line("listening on "))
            .await
            .expect("the modem port");
        let addr = line["listening on ".len()..].parse().expect("address");
        Controlled {
            proc,
            addr,
            control,
        }
    }

    /// A fault for modem `id`; asserts the API took it.
    pub async fn fault(&self, id: u64, json: &str) {
        let answer = http::post(self.control, &format!("/modems/{id}/faults"), json).await;
        assert_eq!(answer.status, 200, "{json}: {}", answer.body);
    }
}
