//! `wsat peer`: a WebSocket server that a test drives through an HTTP+JSON
//! control API ([`api`]): it echoes by default, and on request pushes
//! messages of a given size and fragmentation, pings, closes with a code and
//! reason, stalls, drops TCP, or answers the next handshakes wrongly.
//!
//! Each accepted TCP connection gets an id (1, 2, …) and a task. The
//! task owns the socket; the API reaches it through a channel of actions
//! (answered once done) and through [`State`], which both share. tungstenite
//! (an implementation independent of wsat's core) does the handshake and the
//! frames; pushed messages are written as frames built here, so their
//! fragmentation is exact.
mod api;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::http_api::{self, ApiError};

/// Messages kept per connection for `GET /log`.
const LOG_KEPT: usize = 100;
/// Bytes of each logged message shown (as text and as hex).
const LOG_HEAD: usize = 64;
/// Ended connections are forgotten, oldest first, beyond this many.
const CONNECTIONS_KEPT: usize = 1000;
/// How long a close we started waits for the client's, and a refused
/// handshake for the client to hang up, before the socket is closed anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// A handshake request longer than this is not read to its end.
const REQUEST_LIMIT: usize = 16 * 1024;

/// Binds the WebSocket port and the control port, printing
/// `peer listening on <addr>` and `peer control on <addr>` once bound.
pub async fn bind(ws: SocketAddr, control: SocketAddr) -> io::Result<(TcpListener, TcpListener)> {
    let ws = crate::transport::tcp_listener(ws)?;
    let control = TcpListener::bind(control).await?;
    eprintln!("peer listening on {}", ws.local_addr()?);
    http_api::announce(&control, "peer")?;
    Ok((ws, control))
}

/// Serves both until the process ends.
pub async fn serve(ws: TcpListener, control: TcpListener) -> io::Result<()> {
    let peer = Peer::default();
    let api = http_api::serve(control, api::router(peer.clone()));
    tokio::select! {
        result = api => result,
        result = accept_loop(ws, peer) => result,
    }
}

async fn accept_loop(listener: TcpListener, peer: Peer) -> io::Result<()> {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: the next accept may work.
            Err(error) => {
                tracing::warn!(%error, "peer accept failed");
                sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(error) = peer.start(stream, remote) {
            tracing::warn!(%error, %remote, "peer connection not started");
        }
    }
}

/// How the next handshakes are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handshake {
    Accept,
    /// The request is read and not answered: for `ms` then accepted, or
    /// (without) never.
    Stall(Option<u64>),
    /// An HTTP response with this status instead of `101`.
    Status(u16),
    /// `101` with a `Sec-WebSocket-Accept` for another key.
    BadAccept,
}

impl Handshake {
    fn to_json(self) -> Value {
        match self {
            Handshake::Accept => json!({ "mode": "accept" }),
            Handshake::Stall(ms) => json!({ "mode": "stall", "ms": ms }),
            Handshake::Status(status) => json!({ "mode": "status", "status": status }),
            Handshake::BadAccept => json!({ "mode": "bad_accept" }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Waiting for the request, or answering it.
    Handshake,
    /// The handshake is stalled on purpose.
    Stalled,
    Open,
    /// A close frame went one way or the other.
    Closing,
    Closed,
}

impl ConnState {
    fn name(self) -> &'static str {
        match self {
            ConnState::Handshake => "handshake",
            ConnState::Stalled => "stalled",
            ConnState::Open => "open",
            ConnState::Closing => "closing",
            ConnState::Closed => "closed",
        }
    }
}

/// Bytes each way on a connection's socket, handshake included.
#[derive(Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
}

/// One received message (data or control), as `GET /log` shows it.
struct Entry {
    seq: u64,
    kind: &'static str,
    len: usize,
    head: Vec<u8>,
    close: Option<(u16, String)>,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "seq": self.seq,
            "type": self.kind,
            "len": self.len,
            "hex": hex(&self.head),
        });
        if self.kind == "text" {
            entry["text"] = String::from_utf8_lossy(&self.head).into();
        }
        if let Some((code, reason)) = &self.close {
            entry["code"] = (*code).into();
            entry["reason"] = reason.as_str().into();
        }
        entry
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the API asks a live connection to do.
enum Action {
    /// Write these frames (one message), each flushed on its own.
    Send(Vec<Frame>, Value),
    Ping(Vec<u8>),
    Close(Option<CloseFrame>),
    /// Neither read nor write for this long.
    Stall(Duration),
}

type Reply = oneshot::Sender<Result<Value, ApiError>>;

struct Conn {
    remote: SocketAddr,
    state: ConnState,
    /// How its handshake was answered.
    handshake: Handshake,
    path: Option<String>,
    echo: bool,
    counters: Arc<Counters>,
    messages_in: u64,
    messages_out: u64,
    log: VecDeque<Entry>,
    received: u64,
    /// Why it ended.
    ended: Option<String>,
    actions: mpsc::UnboundedSender<(Action, Reply)>,
    /// A second descriptor of the socket, so a drop can reset it even while
    /// the task is blocked in a write.
    socket: Option<std::net::TcpStream>,
    task: Option<tokio::task::AbortHandle>,
}

impl Conn {
    fn to_json(&self, id: u64) -> Value {
        json!({
            "id": id,
            "remote": self.remote.to_string(),
            "state": self.state.name(),
            "handshake": self.handshake.to_json(),
            "path": self.path,
            "echo": self.echo,
            "bytes_in": self.counters.read.load(Ordering::Relaxed),
            "bytes_out": self.counters.written.load(Ordering::Relaxed),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "ended": self.ended,
        })
    }

    fn live(&self) -> bool {
        self.state != ConnState::Closed
    }

    /// Closes the second descriptor, so the socket closes with the task's.
    fn end(&mut self, why: String) {
        if self.live() {
            self.state = ConnState::Closed;
            self.ended = Some(why);
        }
        self.socket = None;
        self.task = None;
    }
}

struct State {
    next_id: u64,
    conns: BTreeMap<u64, Conn>,
    /// `echo` of new connections.
    echo: bool,
    handshake: Handshake,
    /// For the next connection only, before `handshake`.
    once: Option<Handshake>,
}

#[derive(Clone)]
struct Peer(Arc<Mutex<State>>);

impl Default for Peer {
    fn default() -> Peer {
        Peer(Arc::new(Mutex::new(State {
            next_id: 1,
            conns: BTreeMap::new(),
            echo: true,
            handshake: Handshake::Accept,
            once: None,
        })))
    }
}

impl Peer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the API down with it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on connection `id`, if it is still kept.
    fn with<R>(&self, id: u64, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        self.lock().conns.get_mut(&id).map(f)
    }

    /// Registers an accepted connection and starts its task.
    fn start(&self, stream: TcpStream, remote: SocketAddr) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let std = stream.into_std()?;
        let socket = std.try_clone()?;
        let stream = TcpStream::from_std(std)?;
        let counters = Arc::new(Counters::default());
        let (actions, receiver) = mpsc::unbounded_channel();
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let handshake = state.once.take().unwrap_or(state.handshake);
        let conn = Conn {
            remote,
            state: ConnState::Handshake,
            handshake,
            path: None,
            echo: state.echo,
            counters: counters.clone(),
            messages_in: 0,
            messages_out: 0,
            log: VecDeque::new(),
            received: 0,
            ended: None,
            actions,
            socket: Some(socket),
            task: None,
        };
        state.conns.insert(id, conn);
        if state.conns.len() > CONNECTIONS_KEPT {
            let ended: Vec<u64> = state
                .conns
                .iter()
                .filter(|(_, c)| !c.live())
                .map(|(id, _)| *id)
                .collect();
            let excess = state.conns.len() - CONNECTIONS_KEPT;
            for old in ended.into_iter().take(excess) {
                state.conns.remove(&old);
            }
        }
        let stream = Counted { stream, counters };
        let peer = self.clone();
        // Registered under the lock, so the task's end never comes first.
        let task = tokio::spawn(async move {
            let why = match run(&peer, id, stream, handshake, receiver).await {
                Ok(why) => why.to_string(),
                Err(error) => format!("error: {error}"),
            };
            tracing::debug!(id, %why, "peer connection ended");
            peer.with(id, |conn| conn.end(why));
        });
        if let Some(conn) = state.conns.get_mut(&id) {
            conn.task = Some(task.abort_handle());
        }
        Ok(())
    }

    /// Records a received message; true if it is to be echoed.
    fn received(&self, id: u64, message: &Message) -> bool {
        let (kind, payload): (&'static str, &[u8]) = match message {
            Message::Text(text) => ("text", text.as_bytes()),
            Message::Binary(data) => ("binary", data),
            Message::Ping(data) => ("ping", data),
            Message::Pong(data) => ("pong", data),
            Message::Close(_) => ("close", &[]),
            // tungstenite never reads one.
            Message::Frame(_) => return false,
        };
        let close = match message {
            Message::Close(Some(frame)) => Some((u16::from(frame.code), frame.reason.to_string())),
            _ => None,
        };
        // A close's payload as it was on the wire: the code, then the reason.
        let close_payload;
        let payload = match &close {
            Some((code, reason)) => {
                close_payload = [&code.to_be_bytes()[..], reason.as_bytes()].concat();
                &close_payload[..]
            }
            None => payload,
        };
        let len = payload.len();
        self.with(id, |conn| {
            conn.received += 1;
            if conn.log.len() == LOG_KEPT {
                conn.log.pop_front();
            }
            conn.log.push_back(Entry {
                seq: conn.received,
                kind,
                len,
                head: payload[..payload.len().min(LOG_HEAD)].to_vec(),
                close,
            });
            match message {
                Message::Text(_) | Message::Binary(_) => {
                    conn.messages_in += 1;
                    conn.echo && conn.state == ConnState::Open
                }
                Message::Close(_) => {
                    conn.state = ConnState::Closing;
                    false
                }
                _ => false,
            }
        })
        .unwrap_or(false)
    }

    fn set_state(&self, id: u64, state: ConnState) {
        self.with(id, |conn| conn.state = state);
    }
}

/// A socket that counts its bytes.
struct Counted {
    stream: TcpStream,
    counters: Arc<Counters>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.counters.read.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connection's life; returns why it ended.
async fn run(
    peer: &Peer,
    id: u64,
    mut stream: Counted,
    handshake: Handshake,
    mut actions: mpsc::UnboundedReceiver<(Action, Reply)>,
) -> Result<&'static str, tungstenite::Error> {
    match handshake {
        Handshake::Stall(None) => {
            peer.set_state(id, ConnState::Stalled);
            // Read (and forget) only to see the client give up.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            return Ok("the client closed the stalled handshake");
        }
        Handshake::Stall(Some(ms)) => {
            peer.set_state(id, ConnState::Stalled);
            sleep(Duration::from_millis(ms)).await;
            peer.set_state(id, ConnState::Handshake);
        }
        Handshake::Status(status) => return refuse(stream, status).await,
        Handshake::Accept | Handshake::BadAccept => {}
    }
    let bad_accept = handshake == Handshake::BadAccept;
    let opened = peer.clone();
    // Runs before the 101 goes out: a client that has seen it finds the
    // connection open in `GET /connections`.
    // The error type is tungstenite's (an HTTP response), and never returned.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, mut response: Response| {
        opened.with(id, |conn| {
            conn.path = Some(request.uri().to_string());
            conn.state = ConnState::Open;
        });
        if bad_accept {
            let wrong = derive_accept_key(b"not the key the client sent");
            if let Ok(value) = HeaderValue::from_str(&wrong) {
                response
                    .headers_mut()
                    .insert(header::SEC_WEBSOCKET_ACCEPT, value);
            }
        }
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    let mut close_deadline = None;
    loop {
        tokio::select! {
            message = ws.next() => {
                let message = match message {
                    None | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                        return Ok("closed");
                    }
                    Some(Err(error)) => return Err(error),
                    Some(Ok(message)) => message,
                };
                if peer.received(id, &message) {
                    // Counted first: a client may see the echo before
                    // `send` returns.
                    peer.with(id, |conn| conn.messages_out += 1);
                    ws.send(message).await?;
                }
            }
            Some((action, reply)) = actions.recv() => {
                if let Action::Stall(time) = action {
                    let _ = reply.send(Ok(json!({ "stalled_ms": time.as_millis() as u64 })));
                    sleep(time).await;
                    continue;
                }
                let closing = matches!(action, Action::Close(_));
                match act(&mut ws, peer, id, action).await {
                    Ok(answer) => {
                        let _ = reply.send(Ok(answer));
                    }
                    Err(error) => {
                        let message = format!("connection {id}: {error}");
                        let _ = reply.send(Err(ApiError::conflict(message)));
                        return Err(error);
                    }
                }
                if closing {
                    close_deadline = Some(Instant::now() + CLOSE_WAIT);
                }
            }
            _ = tokio::time::sleep_until(close_deadline.unwrap_or_else(Instant::now)),
                if close_deadline.is_some() => {
                return Ok("the client did not answer the close");
            }
        }
    }
}

/// Carries out an action on an open connection.
async fn act(
    ws: &mut WebSocketStream<Counted>,
    peer: &Peer,
    id: u64,
    action: Action,
) -> Result<Value, tungstenite::Error> {
    match action {
        Action::Send(frames, answer) => {
            peer.with(id, |conn| conn.messages_out += 1);
            for frame in frames {
                ws.send(Message::Frame(frame)).await?;
            }
            Ok(answer)
        }
        Action::Ping(payload) => {
            let len = payload.len();
            ws.send(Message::Ping(payload.into())).await?;
            Ok(json!({ "ping": len }))
        }
        Action::Close(frame) => {
            let answer = match &frame {
                Some(frame) => {
                    json!({ "code": u16::from(frame.code), "reason": frame.reason.as_str() })
                }
                None => json!({ "code": null }),
            };
            peer.set_state(id, ConnState::Closing);
            ws.close(frame).await?;
            Ok(answer)
        }
        // Done by the loop, which is what it stops.
        Action::Stall(_) => Ok(Value::Null),
    }
}

/// Reads the handshake request and answers it with `status`, then waits
/// (bounded) for the client to hang up, so its request is not cut by a reset.
async fn refuse(mut stream: Counted, status: u16) -> Result<&'static str, tungstenite::Error> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_LIMIT {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok("the client closed before its request ended");
        }
        request.extend_from_slice(&buf[..n]);
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Refused");
    let body = format!("wsat peer: handshake refused with {status} as told\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    let _ = timeout(CLOSE_WAIT, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok("handshake refused")
}
