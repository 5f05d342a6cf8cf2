//! The measurements, each done by the modem path (a host on wsat's AT port)
//! and by its peers (a raw TCP client, a direct tokio-tungstenite client, the
//! same client through a relay process, a raw stop-and-wait client) against
//! the same server process.
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use crate::at::{AtPort, Event, WAIT};
use crate::server::SEND_OK;

/// Settings of the link for every WebSocket measurement: no keepalive pings
/// during a run, and frames as large as a 16 KiB message (one frame per
/// message, as the direct client sends).
const LINK_CONFIG: &str = "AT+WSCFG=0,7200,7200,16384";

/// Bounds any await so that a stuck peer fails the bench instead of hanging it.
async fn within<T, E>(what: &str, future: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(WAIT, future).await {
        Ok(result) => result.with_context(|| format!("{what} failed")),
        Err(_) => bail!("{what} timed out"),
    }
}

// ---------------------------------------------------------------- AT round trip

/// `AT\r\n` → `\r\nOK\r\n` on a modem with echo off, `n` times.
pub struct AtRoundTrip {
    port: AtPort,
}

impl AtRoundTrip {
    pub async fn new(modem: SocketAddr) -> anyhow::Result<Self> {
        Ok(AtRoundTrip {
            port: AtPort::connect_quiet(modem).await?,
        })
    }

    pub async fn sample(&mut self, samples: &mut Vec<Duration>, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let start = Instant::now();
            self.port.write(b"AT\r\n").await?;
            self.port.expect_exact(b"\r\nOK\r\n").await?;
            samples.push(start.elapsed());
        }
        Ok(())
    }
}

/// 4 bytes to the raw TCP echo and back, `n` times.
pub struct TcpEcho {
    stream: TcpStream,
}

impl TcpEcho {
    pub async fn new(server: SocketAddr) -> anyhow::Result<Self> {
        let stream = within("connecting to the TCP echo", TcpStream::connect(server)).await?;
        stream.set_nodelay(true)?;
        Ok(TcpEcho { stream })
    }

    pub async fn sample(&mut self, samples: &mut Vec<Duration>, n: usize) -> anyhow::Result<()> {
        let mut back = [0u8; 4];
        for _ in 0..n {
            let start = Instant::now();
            within("TCP echo write", self.stream.write_all(b"ping")).await?;
            within("TCP echo read", self.stream.read_exact(&mut back)).await?;
            samples.push(start.elapsed());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- echo latency

/// A modem with link 0 open to `path` on the WebSocket server.
async fn modem_link(modem: SocketAddr, ws: SocketAddr, path: &str) -> anyhow::Result<AtPort> {
    let mut port = AtPort::connect_quiet(modem).await?;
    port.command(LINK_CONFIG).await?;
    port.command(&format!("AT+WSOPEN=0,\"ws://{ws}{path}\""))
        .await
        .with_context(|| format!("opening ws://{ws}{path} through the modem"))?;
    Ok(port)
}

/// Reads events until both `SEND OK` and, if `want_data`, a `+WS_DATA` of
/// `len` bytes have arrived (in either order).
async fn send_ok_and_data(port: &mut AtPort, want_data: Option<usize>) -> anyhow::Result<()> {
    let mut sent = false;
    let mut data = want_data.is_none();
    while !(sent && data) {
        match port.event().await? {
            Event::Line(line) if line == "SEND OK" => sent = true,
            Event::Line(line) if line == "ERROR" => bail!("the modem answered ERROR"),
            Event::Data { len, .. } => {
                if Some(len) != want_data {
                    bail!("unexpected +WS_DATA of {len} bytes");
                }
                data = true;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A 64-byte binary message through the modem to the echo endpoint and back.
pub struct ModemEcho {
    port: AtPort,
    request: Vec<u8>,
    size: usize,
}

impl ModemEcho {
    pub async fn new(modem: SocketAddr, ws: SocketAddr, size: usize) -> anyhow::Result<Self> {
        let port = modem_link(modem, ws, "/echo").await?;
        Ok(ModemEcho {
            port,
            request: send_request(size, b'e'),
            size,
        })
    }

    pub async fn sample(&mut self, samples: &mut Vec<Duration>, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let start = Instant::now();
            self.port.write(&self.request).await?;
            send_ok_and_data(&mut self.port, Some(self.size)).await?;
            samples.push(start.elapsed());
        }
        Ok(())
    }
}

/// `AT+WSSEND=0,<size>,2\r\n` and `size` bytes of payload, for one write.
fn send_request(size: usize, fill: u8) -> Vec<u8> {
    let mut request = format!("AT+WSSEND=0,{size},2\r\n").into_bytes();
    request.resize(request.len() + size, fill);
    request
}

type Ws = WebSocketStream<TcpStream>;

/// A direct client of `ws://{ws}{path}`, over a TCP connection to `via`:
/// the server itself, or a relay in front of it.
async fn direct_connect(via: SocketAddr, ws: SocketAddr, path: &str) -> anyhow::Result<Ws> {
    let stream = within(
        "connecting to the WebSocket server",
        TcpStream::connect(via),
    )
    .await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{ws}{path}");
    let (socket, _) = within(
        "the direct client's handshake",
        tokio_tungstenite::client_async(url, stream),
    )
    .await?;
    Ok(socket)
}

async fn direct_close(mut socket: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = socket.close(None).await;
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// The next data message's payload length.
async fn direct_next(socket: &mut Ws) -> anyhow::Result<usize> {
    loop {
        let message = within("the direct client's read", async {
            socket
                .next()
                .await
                .unwrap_or(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
        })
        .await?;
        match message {
            Message::Binary(data) => return Ok(data.len()),
            Message::Text(text) => return Ok(text.len()),
            _ => {}
        }
    }
}

/// The same echo with a direct tokio-tungstenite client.
pub struct DirectEcho {
    socket: Ws,
    payload: Bytes,
}

impl DirectEcho {
    pub async fn new(ws: SocketAddr, size: usize) -> anyhow::Result<Self> {
        Ok(DirectEcho {
            socket: direct_connect(ws, ws, "/echo").await?,
            payload: Bytes::from(vec![b'e'; size]),
        })
    }

    pub async fn sample(&mut self, samples: &mut Vec<Duration>, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let start = Instant::now();
            let message = Message::Binary(self.payload.clone());
            within("the direct client's send", self.socket.send(message)).await?;
            let len = direct_next(&mut self.socket).await?;
            if len != self.payload.len() {
                bail!("echo of {len} bytes, sent {}", self.payload.len());
            }
            samples.push(start.elapsed());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- throughput

/// Who does the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// A host on the modem's AT port.
    Modem(SocketAddr),
    /// The direct client.
    Direct,
    /// The direct client, its TCP connection through the relay at this
    /// address: the receive floor (the same WebSocket bytes as the modem
    /// run, one process hop more than the direct client).
    Relay(SocketAddr),
    /// A raw TCP client of the stop-and-wait floor at this address: the
    /// send floor (the modem's `AT+WSSEND` requests and `SEND OK` answers,
    /// with no WebSocket behind them). Send only.
    StopAndWait(SocketAddr),
}

impl Path {
    /// Where the direct client's TCP connection goes, for paths that use it.
    fn direct_via(self, ws: SocketAddr) -> Option<SocketAddr> {
        match self {
            Path::Direct => Some(ws),
            Path::Relay(relay) => Some(relay),
            Path::Modem(_) | Path::StopAndWait(_) => None,
        }
    }
}

/// `count` messages of `size` bytes to the counting endpoint, waiting for its
/// acknowledgement; returns MB/s (10^6 bytes per second) of payload. For
/// [`Path::StopAndWait`], `count` requests answered by the floor instead.
pub async fn send_throughput(
    path: Path,
    ws: SocketAddr,
    size: usize,
    count: usize,
) -> anyhow::Result<f64> {
    let total = size * count;
    let endpoint = format!("/count?bytes={total}");
    let elapsed = match path {
        Path::StopAndWait(floor) => {
            let mut stream = within(
                "connecting to the stop-and-wait floor",
                TcpStream::connect(floor),
            )
            .await?;
            stream.set_nodelay(true)?;
            let request = send_request(size, b'c');
            let mut answer = [0u8; SEND_OK.len()];
            let start = Instant::now();
            for _ in 0..count {
                within("the stop-and-wait write", stream.write_all(&request)).await?;
                within("the stop-and-wait read", stream.read_exact(&mut answer)).await?;
                if answer != SEND_OK {
                    bail!(
                        "the stop-and-wait floor answered {:?}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            }
            start.elapsed()
        }
        Path::Modem(modem) => {
            let mut port = modem_link(modem, ws, &endpoint).await?;
            let request = send_request(size, b'c');
            let start = Instant::now();
            for _ in 0..count {
                port.write(&request).await?;
                send_ok_and_data(&mut port, None).await?;
            }
            let ack = loop {
                match port.event().await? {
                    Event::Data { data, .. } => break data,
                    Event::Line(line) if line == "ERROR" => bail!("the modem answered ERROR"),
                    _ => {}
                }
            };
            let elapsed = start.elapsed();
            check_ack(&ack, total)?;
            port.command("AT+WSCLOSE=0").await?;
            elapsed
        }
        Path::Direct | Path::Relay(_) => {
            let via = path.direct_via(ws).expect("a direct path");
            let mut socket = direct_connect(via, ws, &endpoint).await?;
            let payload = Bytes::from(vec![b'c'; size]);
            let start = Instant::now();
            for _ in 0..count {
                let message = Message::Binary(payload.clone());
                within("the direct client's send", socket.send(message)).await?;
            }
            let ack = loop {
                let message = within("the direct client's read", async {
                    socket
                        .next()
                        .await
                        .unwrap_or(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
                })
                .await?;
                if let Message::Text(text) = message {
                    break text.as_bytes().to_vec();
                }
            };
            let elapsed = start.elapsed();
            check_ack(&ack, total)?;
            direct_close(socket).await;
            elapsed
        }
    };
    Ok(total as f64 / elapsed.as_secs_f64() / 1e6)
}

fn check_ack(ack: &[u8], total: usize) -> anyhow::Result<()> {
    let counted: usize = std::str::from_utf8(ack)
        .ok()
        .and_then(|text| text.parse().ok())
        .with_context(|| format!("bad acknowledgement {:?}", String::from_utf8_lossy(ack)))?;
    if counted != total {
        bail!("the server counted {counted} bytes, {total} were sent");
    }
    Ok(())
}

/// The streaming endpoint sends `count` messages of `size` bytes; returns
/// MB/s of payload received.
pub async fn recv_throughput(
    path: Path,
    ws: SocketAddr,
    size: usize,
    count: usize,
) -> anyhow::Result<f64> {
    let total = size * count;
    let endpoint = format!("/stream?size={size}&count={count}");
    let elapsed = match path {
        Path::Modem(modem) => {
            let mut port = AtPort::connect_quiet(modem).await?;
            port.command("AT+WSDATAFMT=0,1,36").await?;
            port.command(LINK_CONFIG).await?;
            port.command(&format!("AT+WSOPEN=0,\"ws://{ws}{endpoint}\""))
                .await?;
            let start = Instant::now();
            port.write(b"AT+WSSEND=0,2,1\r\ngo").await?;
            let mut received = 0;
            while received < total {
                match port.event().await? {
                    Event::Data { len, .. } => received += len,
                    Event::Line(line) if line == "ERROR" => bail!("the modem answered ERROR"),
                    _ => {}
                }
            }
            let elapsed = start.elapsed();
            port.command("AT+WSCLOSE=0").await?;
            elapsed
        }
        Path::Direct | Path::Relay(_) => {
            let via = path.direct_via(ws).expect("a direct path");
            let mut socket = direct_connect(via, ws, &endpoint).await?;
            let start = Instant::now();
            within("the direct client's send", socket.send(Message::text("go"))).await?;
            let mut received = 0;
            while received < total {
                received += direct_next(&mut socket).await?;
            }
            let elapsed = start.elapsed();
            direct_close(socket).await;
            elapsed
        }
        Path::StopAndWait(_) => bail!("the stop-and-wait floor is a send floor only"),
    };
    Ok(total as f64 / elapsed.as_secs_f64() / 1e6)
}

// ---------------------------------------------------------------- memory

/// Opens link 0 of a new modem to the echo endpoint and checks one message
/// goes through; returns the port, to keep the modem and its link alive.
/// Default link settings, as a host that configures nothing has them.
pub async fn open_one_link(modem: SocketAddr, ws: SocketAddr) -> anyhow::Result<AtPort> {
    let mut port = AtPort::connect_quiet(modem).await?;
    port.command(&format!("AT+WSOPEN=0,\"ws://{ws}/echo\""))
        .await?;
    port.write(&send_request(4, b'm')).await?;
    send_ok_and_data(&mut port, Some(4)).await?;
    Ok(port)
}

/// Opens links 0, 1 and 2 of one modem to the echo endpoint, each used once.
pub async fn open_three_links(modem: SocketAddr, ws: SocketAddr) -> anyhow::Result<AtPort> {
    let mut port = AtPort::connect_quiet(modem).await?;
    for link in 0..3 {
        port.command(&format!("AT+WSOPEN={link},\"ws://{ws}/echo\""))
            .await?;
        port.write(format!("AT+WSSEND={link},4,2\r\nmmmm").as_bytes())
            .await?;
        send_ok_and_data(&mut port, Some(4)).await?;
    }
    Ok(port)
}
