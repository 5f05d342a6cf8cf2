//! A tiny HTTP/1.1 client for the JSON APIs under test (`--control`):
//! one request per connection, `Connection: close`, the whole answer read.
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::WAIT;

/// An answer: the status code and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, "").await
}

/// `POST path` with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, json: &str) -> Answer {
    request(addr, "POST", path, json).await
}

/// `method path` with a JSON body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let text = raw(addr, request.as_bytes()).await;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no end of head in {text:?}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Answer {
        status,
        body: body.to_string(),
    }
}

/// Writes `request` (any bytes, well-formed or not) to `addr` and reads the
/// answer to its end.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
        stream.write_all(request).await.expect("write request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read answer");
        String::from_utf8(answer).expect("a UTF-8 answer")
    };
    timeout(WAIT, exchange)
        .await
        .expect("the API did not answer")
}
