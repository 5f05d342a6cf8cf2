//! A scriptable WebSocket server: it answers the handshake as told, then
//! reads and writes raw frames, so tests control every byte on the wire and
//! see every frame the client sends.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::WAIT;

/// How the server answers the opening handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Upgrade,
    /// `200 OK` instead of `101`.
    Status200,
    /// `101` with a wrong `Sec-WebSocket-Accept`.
    WrongAccept,
}

pub struct RawListener {
    listener: TcpListener,
    pub uri: String,
}

/// A frame as the client sent it, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawListener {
    pub async fn bind() -> RawListener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}", listener.local_addr().unwrap());
        RawListener { listener, uri }
    }

    /// Accepts one connection and answers its handshake.
    pub async fn accept(&self, answer: Answer) -> RawConn {
        self.accept_within(WAIT, answer).await
    }

    /// [`RawListener::accept`] for a connection that may take up to `limit`.
    pub async fn accept_within(&self, limit: Duration, answer: Answer) -> RawConn {
        let (stream, _) = timeout(limit, self.listener.accept())
            .await
            .expect("no connection came")
            .unwrap();
        // Small writes go out as written: tests control TCP segments.
        stream.set_nodelay(true).unwrap();
        let mut conn = RawConn {
            stream,
            buf: Vec::new(),
            request: String::new(),
        };
        conn.handshake(answer).await;
        conn
    }
}

pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The client's handshake request.
    pub request: String,
}

impl RawConn {
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .expect("server read timed out")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn handshake(&mut self, answer: Answer) {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(self.fill().await, "EOF in handshake");
        };
        self.request = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let key = self
            .header("Sec-WebSocket-Key")
            .expect("Sec-WebSocket-Key")
            .to_string();
        let accept = match answer {
            Answer::WrongAccept => derive_accept_key(b"not the key"),
            _ => derive_accept_key(key.as_bytes()),
        };
        let response = match answer {
            Answer::Status200 => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string(),
            _ => format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ),
        };
        self.send_raw(response.as_bytes()).await;
    }

    /// A header of the client's request (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("server write timed out")
            .unwrap();
    }

    /// Sends one unmasked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(&server_frame(fin, opcode, payload)).await;
    }

    /// The next frame the client sent; asserts it is masked and has no RSV bits.
    pub async fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((frame, used)) = parse_client_frame(&self.buf) {
                self.buf.drain(..used);
                return frame;
            }
            assert!(self.fill().await, "EOF while reading a frame");
        }
    }

    /// Waits for the client to close TCP; asserts no more frames came.
    pub async fn expect_eof(&mut self) {
        while self.fill().await {}
        assert!(self.buf.is_empty(), "bytes before EOF: {:?}", self.buf);
    }
}

/// One unmasked frame, as a server writes it.
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n < 65536 => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// The first frame in `bytes` and its length on the wire, once it is all
/// there; asserts it is masked and has no RSV bits.
fn parse_client_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, rest) = bytes.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    assert_eq!(b0 & 0x70, 0, "RSV bits set");
    assert!(b1 & 0x80 != 0, "client frame not masked");
    let (len, rest) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(rest.get(..2)?.try_into().unwrap()) as usize,
            &rest[2..],
        ),
        127 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().unwrap()) as usize,
            &rest[8..],
        ),
        n => (n as usize, rest),
    };
    let mask: [u8; 4] = rest.get(..4)?.try_into().unwrap();
    let payload: Vec<u8> = rest
        .get(4..4 + len)?
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    let used = bytes.len() - rest.len() + 4 + len;
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        payload,
    };
    Some((frame, used))
}
