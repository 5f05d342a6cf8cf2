//! The peer server, run as a process of its own (`wsat-bench server`): a raw
//! TCP echo on one port, the stop-and-wait floor on a second and, on a third,
//! WebSocket endpoints (tungstenite) chosen by the request path:
//!
//! - `/echo`: every data message comes back as it came.
//! - `/count?bytes=N`: counts the payload bytes of received data messages;
//!   once `N` have arrived, answers one text message with the count.
//! - `/stream?size=S&count=N`: after the first message from the client,
//!   sends `N` binary messages of `S` bytes as fast as it can.
//!
//! The stop-and-wait floor is the modem's send protocol with nothing behind
//! it: it reads one `AT+WSSEND=<link>,<len>[,<opcode>]\r\n` line and `len`
//! bytes, answers `\r\nSEND OK\r\n`, and so on until the client closes.
//!
//! It prints `tcp-echo <addr>`, `stop-and-wait <addr>` and `ws <addr>` on
//! stdout once listening.
use std::io::Write as _;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{Bytes, Message};

type WsResult = Result<(), tokio_tungstenite::tungstenite::Error>;

pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let stop_and_wait = TcpListener::bind("127.0.0.1:0").await?;
    let ws = TcpListener::bind("127.0.0.1:0").await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "tcp-echo {}", tcp.local_addr()?)?;
        writeln!(stdout, "stop-and-wait {}", stop_and_wait.local_addr()?)?;
        writeln!(stdout, "ws {}", ws.local_addr()?)?;
        stdout.flush()?;
    }
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            tokio::spawn(tcp_echo(stream));
        }
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = stop_and_wait.accept().await {
            tokio::spawn(send_ok(stream));
        }
    });
    loop {
        let (stream, _) = ws.accept().await?;
        tokio::spawn(async move {
            let _ = websocket(stream).await;
        });
    }
}

async fn tcp_echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// The answer to every request of the stop-and-wait floor.
pub const SEND_OK: &[u8] = b"\r\nSEND OK\r\n";

/// The stop-and-wait floor: reads an `AT+WSSEND` line and its data, answers
/// [`SEND_OK`], repeatedly. Requests may arrive in any number of reads.
async fn send_ok(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut buf = vec![0u8; 64 * 1024];
    // Unread input is buf[start..end].
    let (mut start, mut end) = (0, 0);
    loop {
        // The line, then its length.
        let line_end = loop {
            if let Some(at) = buf[start..end].windows(2).position(|w| w == b"\r\n") {
                break start + at + 2;
            }
            if end - start > 64 {
                return Err(invalid("no AT+WSSEND line"));
            }
            if end == buf.len() {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            let n = stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        let len: usize = std::str::from_utf8(&buf[start..line_end - 2])
            .ok()
            .and_then(|line| line.strip_prefix("AT+WSSEND="))
            .and_then(|args| args.split(',').nth(1))
            .and_then(|len| len.parse().ok())
            .ok_or_else(|| invalid("not an AT+WSSEND line"))?;
        // The data: what is buffered, then reads of up to a buffer each.
        start = line_end;
        let mut missing = len;
        loop {
            let have = (end - start).min(missing);
            start += have;
            missing -= have;
            if missing == 0 {
                break;
            }
            // All that was buffered is taken: read afresh.
            start = 0;
            end = stream.read(&mut buf).await?;
            if end == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        if start == end {
            (start, end) = (0, 0);
        }
        stream.write_all(SEND_OK).await?;
    }
}

async fn websocket(stream: TcpStream) -> WsResult {
    stream.set_nodelay(true)?;
    let mut target = String::new();
    // The error type is tungstenite's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        target = request.uri().to_string();
        Ok::<_, ErrorResponse>(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |name: &str| -> u64 {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0)
    };
    match path {
        "/echo" => {
            while let Some(message) = ws.next().await {
                if let message @ (Message::Text(_) | Message::Binary(_)) = message? {
                    ws.send(message).await?;
                }
            }
        }
        "/count" => {
            let expected = param("bytes");
            let mut count = 0u64;
            let mut acknowledged = false;
            while let Some(message) = ws.next().await {
                match message? {
                    Message::Binary(data) => count += data.len() as u64,
                    Message::Text(text) => count += text.len() as u64,
                    _ => continue,
                }
                if !acknowledged && count >= expected {
                    acknowledged = true;
                    ws.send(Message::text(count.to_string())).await?;
                }
            }
        }
        "/stream" => {
            let size = param("size") as usize;
            let count = param("count");
            let payload = Bytes::from(vec![b's'; size]);
            // Wait for the client's go.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(_) | Message::Binary(_))) => break,
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                }
            }
            for _ in 0..count {
                ws.feed(Message::Binary(payload.clone())).await?;
            }
            ws.flush().await?;
            // Until the client closes.
            while let Some(message) = ws.next().await {
                message?;
            }
        }
        _ => {
            ws.close(None).await?;
        }
    }
    Ok(())
}
