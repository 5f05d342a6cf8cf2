//! A scriptable WebSocket server: it answers the handshake as told, then
//! reads and writes raw frames, so tests control every byte on the wire and
//! see every frame the client sends.
//!
//! The accept key comes from wsat-proto's handshake code; the frames are
//! written and read here, because the core only writes masked client
//! frames and only reads unmasked server frames.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wsat_proto::ws::{accept_key, apply_mask, Header};

use crate::WAIT;

/// How the server answers the opening handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Upgrade,
    /// `200 OK` instead of `101`.
    Status200,
    /// `101` with a wrong `Sec-WebSocket-Accept`.
    WrongAccept,
    /// The request is read, and never answered.
    Silent,
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
            Answer::WrongAccept => accept_key(b"not the key"),
            _ => accept_key(key.as_bytes()),
        };
        let response = match answer {
            Answer::Silent => return,
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
pub use wsat_proto::testing::server_frame;

/// The first frame in `bytes` and its length on the wire, once it is all
/// there (the core's frame header parses it); asserts it is masked and has
/// no RSV bits.
fn parse_client_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let (header, at) = Header::parse(bytes)?;
    assert_eq!(header.rsv, 0, "RSV bits set");
    let mask = header.mask.expect("client frame not masked");
    let len = usize::try_from(header.payload_len).ok()?;
    let mut payload = bytes.get(at..at.checked_add(len)?)?.to_vec();
    apply_mask(&mut payload, mask, 0);
    let frame = Frame {
        fin: header.fin,
        opcode: header.opcode.into(),
        payload,
    };
    Some((frame, at + len))
}

/// The test server's frame code against the core's: what one writes the
/// other reads, so neither side of a test speaks a dialect of its own.
#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use wsat_proto::ws::{encode_frame, parse_response, FrameDecoder, HandshakeError};

    use super::*;

    /// Payload lengths at the edges of the three length encodings.
    const LENGTHS: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 70000];

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn client_frames_from_the_core_encoder_parse_back() {
        for len in LENGTHS {
            for (fin, opcode) in [(true, 1), (false, 2), (true, 0), (true, 9)] {
                let payload = payload(len);
                let mut wire = Vec::new();
                encode_frame(&mut wire, fin, opcode, &payload, [0x12, 0x34, 0x56, 0x78]);
                // Incomplete until the last byte is in.
                assert!(parse_client_frame(&wire[..wire.len() - 1]).is_none());
                wire.extend_from_slice(b"next");
                let (frame, used) = parse_client_frame(&wire).expect("a whole frame");
                assert_eq!(used, wire.len() - 4, "length {len}");
                let expected = Frame {
                    fin,
                    opcode,
                    payload,
                };
                assert_eq!(frame, expected, "length {len}");
            }
        }
    }

    #[test]
    fn server_frames_decode_with_the_core_decoder() {
        for len in LENGTHS {
            let payload = payload(len);
            let mut decoder = FrameDecoder::new(1 << 20);
            decoder.feed(&server_frame(false, 2, &payload));
            decoder.feed(&server_frame(true, 9, b"ping"));
            decoder.feed(&server_frame(true, 0, b""));
            let chunk = decoder.next_chunk().unwrap().expect("the first frame");
            assert_eq!((chunk.opcode, chunk.fin), (2, false), "length {len}");
            assert_eq!(chunk.data, payload, "length {len}");
            let ping = decoder.next_chunk().unwrap().expect("the ping");
            assert_eq!(
                (ping.opcode, ping.fin, &ping.data[..]),
                (9, true, &b"ping"[..])
            );
            let last = decoder.next_chunk().unwrap().expect("the last frame");
            assert_eq!((last.opcode, last.fin, last.data.len()), (0, true, 0));
            assert_eq!(decoder.next_chunk(), Ok(None));
        }
    }

    /// Each [`Answer`] is what the core's response check says it is.
    #[tokio::test]
    async fn handshake_answers_as_the_core_sees_them() {
        // The example key of RFC 6455 §1.3 and its accept value.
        const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
        const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
        for (answer, expected) in [
            (Answer::Upgrade, Ok(())),
            (Answer::Status200, Err(HandshakeError::Status(200))),
            (Answer::WrongAccept, Err(HandshakeError::BadAccept)),
        ] {
            let server = RawListener::bind().await;
            let addr = server.uri.strip_prefix("ws://").unwrap().to_string();
            let client = tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let request = format!(
                    "GET /path HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n"
                );
                tcp.write_all(request.as_bytes()).await.unwrap();
                let mut response = Vec::new();
                loop {
                    let mut buf = [0u8; 1024];
                    let n = timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
                    assert!(n > 0, "EOF in the response");
                    response.extend_from_slice(&buf[..n]);
                    match parse_response(&response, ACCEPT, None) {
                        Ok(None) => continue,
                        Ok(Some(_)) => return Ok(()),
                        Err(error) => return Err(error),
                    }
                }
            });
            let conn = server.accept(answer).await;
            assert!(conn.request.starts_with("GET /path HTTP/1.1\r\n"));
            assert_eq!(conn.header("sec-websocket-key"), Some(KEY));
            assert_eq!(client.await.unwrap(), expected);
        }
    }
}
