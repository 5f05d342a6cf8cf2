//! `wsat peer` for tests: [`Peer`] launches it on ports the OS picks and
//! talks to its control API with a small HTTP/1.1 client of its own (one
//! request per connection, `Connection: close`), so tests need no HTTP
//! client crate; [`RawClient`] is a WebSocket client that shows every byte
//! and frame the peer writes.
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Duration, Instant};
use wsat_proto::ws::{accept_key, encode_frame, Header};

use crate::raw::Frame;
use crate::rig::{Launch, Proc};
use crate::WAIT;

/// A running `wsat peer 127.0.0.1:0 --control 127.0.0.1:0`, killed on drop.
pub struct Peer {
    pub proc: Proc,
    /// The WebSocket port.
    pub addr: SocketAddr,
    /// `ws://<addr>`.
    pub uri: String,
    /// The control API.
    pub control: SocketAddr,
}

impl Peer {
    pub async fn start() -> Peer {
        let launch = Launch {
            keep_stderr: true,
            ..Launch::default()
        };
        let args = ["peer", "127.0.0.1:0", "--control", "127.0.0.1:0"];
        let (mut proc, addr) = Proc::launch(&launch, &args, "peer listening on ");
        let addr: SocketAddr = addr.parse().expect("peer address");
        let line = timeout(WAIT, proc.stderr_line("peer control on "))
            .await
            .expect("no `peer control on` line");
        let control = line
            .strip_prefix("peer control on ")
            .and_then(|rest| rest.parse().ok())
            .unwrap_or_else(|| panic!("control address in {line:?}"));
        Peer {
            proc,
            addr,
            uri: format!("ws://{addr}"),
            control,
        }
    }

    /// One control request; its status and JSON body.
    pub async fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let answer = crate::http::request(self.control, method, path, body).await;
        let json = serde_json::from_str(&answer.body).unwrap_or_else(|error| {
            panic!(
                "{method} {path}: body {:?} is not JSON: {error}",
                answer.body
            )
        });
        (answer.status, json)
    }

    /// A request that must answer 200.
    pub async fn ok(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, json) = self.request(method, path, body).await;
        assert_eq!(status, 200, "{method} {path} {body}: {json}");
        json
    }

    pub async fn get(&self, path: &str) -> Value {
        self.ok("GET", path, "").await
    }

    pub async fn post(&self, path: &str, body: &str) -> Value {
        self.ok("POST", path, body).await
    }

    pub async fn put(&self, path: &str, body: &str) -> Value {
        self.ok("PUT", path, body).await
    }

    /// `GET /connections/{id}`.
    pub async fn connection(&self, id: u64) -> Value {
        self.get(&format!("/connections/{id}")).await
    }

    /// Polls `GET path` until `done` holds (bounded by [`WAIT`]); returns it.
    /// A 404 is waited out: a connection the client has made may not have
    /// been accepted yet.
    pub async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, json) = self.request("GET", path, "").await;
            assert!(matches!(status, 200 | 404), "GET {path}: {status} {json}");
            if status == 200 && done(&json) {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} never got there: {json}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for connection `id` to reach `state`.
    pub async fn wait_state(&self, id: u64, state: &str) -> Value {
        self.wait_for(&format!("/connections/{id}"), |c| c["state"] == state)
            .await
    }

    /// Waits for connection `id`'s log to have an entry of `kind`; returns it.
    pub async fn wait_logged(&self, id: u64, kind: &str) -> Value {
        let path = format!("/connections/{id}/log");
        let log = self
            .wait_for(&path, |log| log_entry(log, kind).is_some())
            .await;
        log_entry(&log, kind).cloned().unwrap()
    }
}

fn log_entry<'a>(log: &'a Value, kind: &str) -> Option<&'a Value> {
    log.as_array()?.iter().find(|entry| entry["type"] == kind)
}

/// The key every [`RawClient`] sends (RFC 6455 §1.3's example).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket client that writes its handshake and frames by hand and reads
/// the peer's byte for byte.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The response head, up to its blank line.
    pub response: String,
}

impl RawClient {
    /// Connects, sends the handshake request for `/path`, and reads the
    /// response head, whatever it says.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawClient {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
            response: String::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        client.send_raw(request.as_bytes()).await;
        let end = loop {
            if let Some(at) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(client.fill().await, "EOF in the handshake response");
        };
        client.response = String::from_utf8(client.buf.drain(..end).collect()).unwrap();
        client
    }

    /// [`RawClient::connect`] that must be upgraded with the right accept key.
    pub async fn open(addr: SocketAddr) -> RawClient {
        let client = RawClient::connect(addr, "/").await;
        assert!(
            client.response.starts_with("HTTP/1.1 101 "),
            "{}",
            client.response
        );
        assert_eq!(
            client.header("Sec-WebSocket-Accept"),
            Some(accept_key(KEY.as_bytes()).as_str())
        );
        client
    }

    /// A header of the response (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .expect("client read timed out")
            .expect("client read");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("client write timed out")
            .unwrap();
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut wire = Vec::new();
        encode_frame(&mut wire, fin, opcode, payload, [0xA1, 0xB2, 0xC3, 0xD4]);
        self.send_raw(&wire).await;
    }

    /// The next frame the peer sent; asserts it is unmasked with no RSV bits.
    pub async fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((header, at)) = Header::parse(&self.buf) {
                assert_eq!(header.rsv, 0, "RSV bits set");
                assert_eq!(header.mask, None, "server frame masked");
                let len = usize::try_from(header.payload_len).unwrap();
                if self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Frame {
                        fin: header.fin,
                        opcode: header.opcode.into(),
                        payload,
                    };
                }
            }
            assert!(self.fill().await, "EOF while reading a frame");
        }
    }

    /// Reads to the end of the connection: `Ok` at a FIN, the error at a
    /// reset. Asserts nothing else came first.
    pub async fn read_end(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let result = loop {
            match timeout(WAIT, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("the connection did not end"),
                Ok(Ok(0)) => break Ok(()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(error)) => break Err(error),
            }
        };
        assert!(self.buf.is_empty(), "bytes before the end: {:?}", self.buf);
        result
    }
}
