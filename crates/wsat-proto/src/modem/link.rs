//! A WebSocket link: its state machine ([`WsLink`]), which does the
//! protocol and says what happened as [`Signal`]s, and the modem's side,
//! which turns signals into AT bytes (`+WS_...` reports, answers of the
//! commands waiting on the link).
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Direction, Input, Log, LogQueue, Modem, Wait, LOG_PREVIEW};
use crate::at::{self, AtError};
use crate::modem::{Link, LinkId, NetAction, NetEvent, Platform, TlsPolicy, Transport, LINK_COUNT};
use crate::ws::{self, close_code, opcode, ChunkRef, FrameDecoder, Header, Opcode, WsUri};

/// A lost link tries to reconnect after this long (ESP-AT's 10 s).
const RECONNECT_DELAY_MS: u64 = 10_000;
/// How long a closing link waits for the peer's close frame or TCP close.
const CLOSE_WAIT_MS: u64 = 1_000;
/// Pongs are not queued while this many sends are unwritten: a server that
/// pings without reading our answers must not grow our send queue. The
/// latest ping is kept and answered once the queue drains (RFC 6455 §5.5.3
/// lets a pong answer only the latest of several pings).
const MAX_UNWRITTEN_SENDS_FOR_PONG: u64 = 16;
/// The `User-Agent` of our handshakes.
const USER_AGENT: &str = concat!("wsat/", env!("CARGO_PKG_VERSION"));

/// `AT+WSCFG` settings of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LinkConfig {
    pub ping_interval_ms: u64,
    pub pong_timeout_ms: u64,
    pub buffer_size: usize,
    pub tls: TlsPolicy,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ping_interval_ms: 10_000,
            pong_timeout_ms: 120_000,
            buffer_size: 1024,
            tls: TlsPolicy::default(),
        }
    }
}

/// `AT+WSDATAFMT` settings of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DataFormat {
    /// 0 per chunk, 1 per frame, 2 per message.
    pub level: u8,
    /// Which header fields, and whether the `\r\n` trailer, are written.
    pub mask: u8,
}

impl Default for DataFormat {
    fn default() -> Self {
        DataFormat { level: 0, mask: 48 }
    }
}

/// Bits of the `AT+WSDATAFMT` mask.
mod field {
    pub const OPCODE: u8 = 1;
    pub const FIN: u8 = 2;
    pub const PAYLOAD_LEN: u8 = 4;
    pub const PAYLOAD_OFFSET: u8 = 8;
    pub const DATA_LEN: u8 = 16;
    pub const TRAILER: u8 = 32;
}

/// What `AT+WSSEND` asked for, kept while its data is typed.
#[derive(Clone, Copy, Debug)]
pub(super) struct SendRequest {
    pub link: LinkId,
    pub opcode: u8,
    pub fin: bool,
    pub timeout_ms: u64,
}

/// What a link tells the modem; the modem turns it into AT bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Signal {
    /// The handshake succeeded: `+WS_CONNECTED`, and an open's `OK`.
    Connected,
    /// An open link was lost (network error, pong timeout, protocol
    /// violation, send timeout): a waiting command fails, then
    /// `+WS_DISCONNECTED`; a reconnect follows.
    Lost,
    /// A connection attempt failed: `+WS_DISCONNECTED`.
    AttemptFailed,
    /// The server closed: `+WS_CLOSED`.
    Closed,
    /// Send number `n` of this connection was written.
    SendDone(u64),
    /// The link is over: it is to be freed; a waiting `AT+WSCLOSE` gets
    /// `OK`, any other waiting command `ERROR`.
    Gone,
}

/// What a link needs from the modem to act: the time, randomness, and
/// where its actions, log entries and signals go.
pub(super) struct Ctx<'a> {
    pub link: LinkId,
    pub now: u64,
    pub platform: &'a mut (dyn Platform + Send),
    pub actions: &'a mut VecDeque<NetAction>,
    pub log: &'a mut LogQueue,
    pub log_frames: bool,
    pub signals: &'a mut Vec<Signal>,
}

impl Ctx<'_> {
    fn signal(&mut self, signal: Signal) {
        self.signals.push(signal);
    }

    fn act(&mut self, action: NetAction) {
        self.actions.push_back(action);
    }

    /// Appends one masked frame with a fresh key.
    fn encode(&mut self, out: &mut Vec<u8>, fin: bool, op: u8, payload: &[u8]) {
        let mut mask = [0u8; 4];
        self.platform.fill_random(&mut mask);
        ws::encode_frame(out, fin, op, payload, mask);
        if self.log_frames {
            let header = Header::new(fin, Opcode::from(op), payload.len() as u64, Some(mask));
            self.log_frame(Direction::Tx, header, payload);
        }
    }

    fn log_frame(&mut self, dir: Direction, header: Header, payload: &[u8]) {
        let preview = payload[..payload.len().min(LOG_PREVIEW)].to_vec();
        let link = Link::Ws(self.link);
        self.log.push(Log::Frame {
            link,
            dir,
            header,
            preview,
        });
    }
}

/// A link's WebSocket client: what `AT+WSOPEN` asked for, and where it is.
pub(super) struct WsLink {
    /// The URI as the host typed it, for `AT+WSOPEN?`.
    uri_text: Vec<u8>,
    uri: WsUri,
    subprotocol: Option<Vec<u8>>,
    auth: Option<Vec<u8>>,
    connect_timeout_ms: u64,
    config: LinkConfig,
    state: State,
    conn: Conn,
}

enum State {
    /// TCP/TLS, then the handshake. `first`: the `AT+WSOPEN` itself, whose
    /// failure ends the link instead of retrying.
    Connecting {
        deadline: u64,
        first: bool,
        handshake: Option<Handshake>,
    },
    Open,
    /// Lost; the next attempt starts at `reconnect_at`.
    Lost {
        reconnect_at: u64,
    },
    /// The close handshake is under way.
    Closing {
        deadline: u64,
        cause: CloseCause,
    },
}

/// The handshake request is out; the response is being read.
struct Handshake {
    response: Vec<u8>,
    expected_accept: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CloseCause {
    /// The server sent a close frame and we answered it: wait for TCP to end.
    Server,
    /// `AT+WSCLOSE` sent close 1000 and waits for the reply.
    HostCommand,
    /// The host sent a close frame itself with `AT+WSSEND` opcode 8.
    HostFrame,
}

/// What belongs to one connection attempt; a reconnect starts afresh.
struct Conn {
    decoder: FrameDecoder,
    /// Sends asked of the runtime, and how many it has reported written.
    sends_queued: u64,
    sends_done: u64,
    next_ping_at: u64,
    /// Set when a ping is out without its pong.
    pong_deadline: Option<u64>,
    /// The host started a fragmented message it has not finished.
    tx_message_open: bool,
    /// The payload of the latest ping not answered yet (the send queue was
    /// full when it came).
    unanswered_ping: Option<Vec<u8>>,
}

impl Conn {
    fn new(buffer_size: usize) -> Self {
        Conn {
            decoder: FrameDecoder::new(buffer_size.max(1)),
            sends_queued: 0,
            sends_done: 0,
            next_ping_at: u64::MAX,
            pong_deadline: None,
            tx_message_open: false,
            unanswered_ping: None,
        }
    }
}

/// What `AT+WSOPEN` asked for.
pub(super) struct OpenRequest {
    pub uri_text: Vec<u8>,
    pub uri: WsUri,
    pub subprotocol: Option<Vec<u8>>,
    pub auth: Option<Vec<u8>>,
    pub connect_timeout_ms: u64,
}

impl WsLink {
    /// A link that starts its first connection attempt.
    pub fn open(ctx: &mut Ctx<'_>, request: OpenRequest, config: LinkConfig) -> WsLink {
        let OpenRequest {
            uri_text,
            uri,
            subprotocol,
            auth,
            connect_timeout_ms,
        } = request;
        let mut link = WsLink {
            uri_text,
            uri,
            subprotocol,
            auth,
            connect_timeout_ms,
            conn: Conn::new(config.buffer_size),
            config,
            state: State::Lost { reconnect_at: 0 },
        };
        link.connect(ctx, true);
        link
    }

    /// `(state code, uri)` for `AT+WSOPEN?`.
    pub fn summary(&self) -> (u8, &[u8]) {
        let code = match self.state {
            State::Connecting { .. } => 1,
            State::Open => 2,
            State::Lost { .. } => 3,
            State::Closing { .. } => 4,
        };
        (code, &self.uri_text)
    }

    /// The next deadline. While `paused` (flow control stopped reading the
    /// socket) the pong timeout does not run.
    pub fn deadline(&self, paused: bool) -> Option<u64> {
        match &self.state {
            State::Connecting { deadline, .. }
            | State::Lost {
                reconnect_at: deadline,
            }
            | State::Closing { deadline, .. } => Some(*deadline),
            State::Open => match self.conn.pong_deadline {
                Some(pong) if !paused => Some(pong.min(self.conn.next_ping_at)),
                _ => Some(self.conn.next_ping_at),
            },
        }
    }

    /// Starts a connection attempt.
    fn connect(&mut self, ctx: &mut Ctx<'_>, first: bool) {
        self.conn = Conn::new(self.config.buffer_size);
        self.state = State::Connecting {
            deadline: ctx.now.saturating_add(self.connect_timeout_ms),
            first,
            handshake: None,
        };
        ctx.act(NetAction::Connect {
            link: Link::Ws(ctx.link),
            host: self.uri.host.clone(),
            port: self.uri.port,
            transport: match self.uri.tls {
                true => Transport::Tls(self.config.tls.clone()),
                false => Transport::Tcp,
            },
            keep_alive_s: 0,
        });
    }

    /// Whether `AT+WSSEND` may send now; `Ok(true)` while the host is in
    /// the middle of a fragmented message.
    pub fn can_send(&self) -> Result<bool, AtError> {
        match self.state {
            State::Open => Ok(self.conn.tx_message_open),
            _ => Err(AtError::exec()),
        }
    }

    /// Frames `data` as `AT+WSSEND` asked and hands it to the runtime;
    /// returns the send's number, for [`Signal::SendDone`].
    pub fn send(&mut self, ctx: &mut Ctx<'_>, request: &SendRequest, data: &[u8]) -> u64 {
        let SendRequest {
            opcode: op, fin, ..
        } = *request;
        let buffer_size = self.config.buffer_size;
        let mut bytes = Vec::with_capacity(data.len() + 14 * (data.len() / buffer_size + 1));
        if opcode::is_control(op) || data.len() <= buffer_size {
            ctx.encode(&mut bytes, fin, op, data);
        } else {
            let mut pieces = data.chunks(buffer_size).peekable();
            let mut frame_op = op;
            while let Some(piece) = pieces.next() {
                let last = pieces.peek().is_none();
                ctx.encode(&mut bytes, fin && last, frame_op, piece);
                frame_op = opcode::CONTINUATION;
            }
        }
        if matches!(op, opcode::CONTINUATION | opcode::TEXT | opcode::BINARY) {
            self.conn.tx_message_open = !fin;
        }
        if op == opcode::CLOSE {
            self.state = State::Closing {
                deadline: ctx.now.saturating_add(CLOSE_WAIT_MS),
                cause: CloseCause::HostFrame,
            };
        }
        self.queue_send(ctx, bytes)
    }

    /// Asks the runtime to write `bytes`; returns the send's number.
    fn queue_send(&mut self, ctx: &mut Ctx<'_>, bytes: Vec<u8>) -> u64 {
        self.conn.sends_queued += 1;
        ctx.act(NetAction::Send {
            link: Link::Ws(ctx.link),
            bytes,
        });
        self.conn.sends_queued
    }

    fn send_control(&mut self, ctx: &mut Ctx<'_>, op: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 6);
        ctx.encode(&mut frame, true, op, payload);
        self.queue_send(ctx, frame);
    }

    fn send_close(&mut self, ctx: &mut Ctx<'_>, code: u16) {
        self.send_control(ctx, opcode::CLOSE, &code.to_be_bytes());
    }

    /// `AT+WSCLOSE`: `true` when a close handshake runs first (the link
    /// signals [`Signal::Gone`] when it is over); else the link is gone now.
    pub fn close(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if !matches!(self.state, State::Open) {
            self.end(ctx);
            return false;
        }
        self.state = State::Closing {
            deadline: ctx.now.saturating_add(CLOSE_WAIT_MS),
            cause: CloseCause::HostCommand,
        };
        self.send_close(ctx, close_code::NORMAL);
        true
    }

    /// `AT+RST`: the connection is dropped, without a word.
    pub fn drop_quietly(&mut self, ctx: &mut Ctx<'_>) {
        ctx.act(NetAction::Close {
            link: Link::Ws(ctx.link),
        });
    }

    /// The link is over: its connection is dropped.
    fn end(&mut self, ctx: &mut Ctx<'_>) {
        ctx.act(NetAction::Close {
            link: Link::Ws(ctx.link),
        });
        ctx.signal(Signal::Gone);
    }

    /// A network error, read/write error, pong timeout, or a send that did
    /// not get written in time (half a frame may be out) on an open link.
    pub fn lose(&mut self, ctx: &mut Ctx<'_>) {
        self.state = State::Lost {
            reconnect_at: ctx.now.saturating_add(RECONNECT_DELAY_MS),
        };
        ctx.act(NetAction::Close {
            link: Link::Ws(ctx.link),
        });
        ctx.signal(Signal::Lost);
    }

    /// An attempt to connect failed: the first one ends the link, a
    /// reconnect waits for the next try.
    fn attempt_failed(&mut self, ctx: &mut Ctx<'_>) {
        let first = matches!(self.state, State::Connecting { first: true, .. });
        ctx.signal(Signal::AttemptFailed);
        if first {
            self.end(ctx);
        } else {
            self.state = State::Lost {
                reconnect_at: ctx.now.saturating_add(RECONNECT_DELAY_MS),
            };
            ctx.act(NetAction::Close {
                link: Link::Ws(ctx.link),
            });
        }
    }

    /// An event on the link's connection. Returns whether received bytes
    /// are frames for [`WsLink::next_chunk`] to decode where they are (the
    /// handshake's bytes, and what follows it in the same read, are taken
    /// here).
    pub fn event(&mut self, ctx: &mut Ctx<'_>, event: NetEvent<'_>, headers: &[Vec<u8>]) -> bool {
        match event {
            NetEvent::Connected { .. } => {
                if matches!(
                    self.state,
                    State::Connecting {
                        handshake: None,
                        ..
                    }
                ) {
                    self.send_handshake(ctx, headers);
                }
            }
            NetEvent::Received(bytes) => return self.received(ctx, bytes),
            // WebSocket links are streams.
            NetEvent::Datagram { .. } => {}
            NetEvent::Sent => {
                self.conn.sends_done += 1;
                let done = self.conn.sends_done;
                if self.conn.sends_queued - done < MAX_UNWRITTEN_SENDS_FOR_PONG {
                    if let Some(payload) = self.conn.unanswered_ping.take() {
                        self.send_control(ctx, opcode::PONG, &payload);
                    }
                }
                ctx.signal(Signal::SendDone(done));
            }
            NetEvent::Closed | NetEvent::Failed(_) => self.transport_ended(ctx),
        }
        false
    }

    fn send_handshake(&mut self, ctx: &mut Ctx<'_>, headers: &[Vec<u8>]) {
        let mut key = [0u8; 16];
        ctx.platform.fill_random(&mut key);
        let (request, expected_accept) = ws::build_request(&ws::RequestParams {
            uri: &self.uri,
            key,
            subprotocol: self.subprotocol.as_deref(),
            authorization: self.auth.as_deref(),
            extra_headers: headers,
            user_agent: USER_AGENT,
        });
        if let State::Connecting { handshake, .. } = &mut self.state {
            *handshake = Some(Handshake {
                response: Vec::new(),
                expected_accept,
            });
        }
        let link = Link::Ws(ctx.link);
        ctx.log.push(Log::Http {
            link,
            dir: Direction::Tx,
            first_line: first_line(&request),
        });
        self.queue_send(ctx, request);
    }

    fn transport_ended(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Connecting { .. } => self.attempt_failed(ctx),
            State::Open => self.lose(ctx),
            State::Lost { .. } => {}
            State::Closing { cause, .. } => self.close_finished(ctx, cause),
        }
    }

    /// The close handshake is over (or timed out): the link is gone.
    fn close_finished(&mut self, ctx: &mut Ctx<'_>, cause: CloseCause) {
        if cause == CloseCause::HostFrame {
            // The server never answered the host's close frame in kind.
            ctx.signal(Signal::Closed);
        }
        self.end(ctx);
    }

    /// Received bytes; `true` when they are frames to decode.
    fn received(&mut self, ctx: &mut Ctx<'_>, bytes: &[u8]) -> bool {
        match &mut self.state {
            State::Connecting {
                handshake: Some(handshake),
                ..
            } => {
                handshake.response.extend_from_slice(bytes);
                let parsed = ws::parse_response(
                    &handshake.response,
                    &handshake.expected_accept,
                    self.subprotocol.as_deref(),
                );
                let link = Link::Ws(ctx.link);
                match parsed {
                    Ok(None) => {}
                    Ok(Some(len)) => {
                        let rest = handshake.response.split_off(len);
                        let head = first_line(&handshake.response);
                        self.conn.decoder.feed(&rest);
                        ctx.log.push(Log::Http {
                            link,
                            dir: Direction::Rx,
                            first_line: head,
                        });
                        self.established(ctx);
                    }
                    Err(error) => {
                        let head = first_line(&handshake.response);
                        ctx.log.push(Log::Http {
                            link,
                            dir: Direction::Rx,
                            first_line: head,
                        });
                        ctx.log.push(Log::HandshakeFailed { link, error });
                        self.attempt_failed(ctx);
                    }
                }
            }
            State::Connecting { .. } | State::Lost { .. } => {}
            State::Open | State::Closing { .. } => return true,
        }
        false
    }

    fn established(&mut self, ctx: &mut Ctx<'_>) {
        self.state = State::Open;
        self.conn.next_ping_at = ctx.now.saturating_add(self.config.ping_interval_ms);
        ctx.signal(Signal::Connected);
    }

    /// Handles the next complete chunk of `input[*used..]` (decoded where
    /// it is when the decoder holds nothing else; only a frame cut by the
    /// end of a read is copied) or of what the decoder holds, writing data
    /// as `+WS_DATA` straight into `sink`: the receive path's one copy in
    /// the core. Returns whether to call again.
    pub fn next_chunk(
        &mut self,
        ctx: &mut Ctx<'_>,
        input: &[u8],
        used: &mut usize,
        sink: &mut Vec<u8>,
        format: DataFormat,
    ) -> bool {
        let open = matches!(self.state, State::Open);
        let decoder = &mut self.conn.decoder;
        let next = if *used < input.len() && !decoder.holds_input() {
            decoder.next_chunk_from(input, used)
        } else {
            if *used < input.len() {
                decoder.feed(&input[*used..]);
                *used = input.len();
            }
            decoder.next_chunk_ref()
        };
        let chunk = match next {
            Ok(None) => return *used < input.len(),
            Ok(Some(chunk)) => chunk,
            Err(error) => {
                self.protocol_violation(ctx, error);
                return false;
            }
        };
        if ctx.log_frames && chunk.payload_offset == 0 {
            let header = Header::new(
                chunk.fin,
                Opcode::from(chunk.opcode),
                chunk.payload_len,
                None,
            );
            ctx.log_frame(Direction::Rx, header, chunk.data);
        }
        match chunk.opcode {
            op if op < opcode::CLOSE && open => write_data_report(sink, ctx.link, format, &chunk),
            opcode::PING if open => {
                let payload = chunk.data.to_vec();
                let unwritten = self.conn.sends_queued - self.conn.sends_done;
                if unwritten < MAX_UNWRITTEN_SENDS_FOR_PONG {
                    self.conn.unanswered_ping = None;
                    self.send_control(ctx, opcode::PONG, &payload);
                } else {
                    // Answered once the queue drains, unless a newer ping
                    // replaces it.
                    self.conn.unanswered_ping = Some(payload);
                }
            }
            opcode::PONG => self.conn.pong_deadline = None,
            opcode::CLOSE => {
                // Echo the status code (none if the server sent none).
                let code = chunk.data.get(..2).unwrap_or(&[]).to_vec();
                self.close_received(ctx, &code);
            }
            // Data or pings after a close frame are not answered.
            _ => {}
        }
        true
    }

    /// The server closed: answer with a close frame carrying `reply`.
    fn close_received(&mut self, ctx: &mut Ctx<'_>, reply: &[u8]) {
        let deadline = ctx.now.saturating_add(CLOSE_WAIT_MS);
        match self.state {
            State::Open => {
                self.state = State::Closing {
                    deadline,
                    cause: CloseCause::Server,
                };
                ctx.signal(Signal::Closed);
                self.send_control(ctx, opcode::CLOSE, reply);
            }
            State::Closing {
                cause: CloseCause::HostCommand,
                ..
            } => self.end(ctx),
            State::Closing {
                cause: CloseCause::HostFrame,
                ..
            } => {
                self.state = State::Closing {
                    deadline,
                    cause: CloseCause::Server,
                };
                ctx.signal(Signal::Closed);
            }
            _ => {}
        }
    }

    /// RFC 6455 §7.1.7: fail the connection, saying why in a close frame,
    /// then as for any loss. A bad close frame is still the server closing:
    /// `+WS_CLOSED`, answered with 1002.
    fn protocol_violation(&mut self, ctx: &mut Ctx<'_>, error: ws::ProtocolError) {
        let open = match self.state {
            State::Open => true,
            State::Closing { cause, .. } if cause != CloseCause::Server => false,
            // Connecting, lost, or already answering the server's close: a
            // dead decoder keeps failing, and there is nothing more to say.
            _ => return,
        };
        let link = Link::Ws(ctx.link);
        ctx.log.push(Log::ProtocolError { link, error });
        if error.in_close_frame() {
            self.close_received(ctx, &close_code::PROTOCOL_ERROR.to_be_bytes());
        } else if open {
            self.send_close(ctx, error.close_code());
            self.lose(ctx);
        } else {
            // Closing at the host's word: the close handshake is over.
            self.transport_ended(ctx);
        }
    }

    /// Flow control let the link be read again: a pong that was waiting
    /// behind unread data gets its full timeout from now.
    pub fn reads_resumed(&mut self, now: u64) {
        let timeout = self.config.pong_timeout_ms;
        if let Some(deadline) = self.conn.pong_deadline.as_mut() {
            *deadline = now.saturating_add(timeout);
        }
    }

    /// Whether the link is established (state 2).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The deadline from [`WsLink::deadline`] may have passed. Without a
    /// network (`online` false: no AP) a due reconnect fails at once.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>, paused: bool, online: bool) {
        let now = ctx.now;
        if self.deadline(paused).is_none_or(|d| now < d) {
            return;
        }
        let link = Link::Ws(ctx.link);
        match self.state {
            State::Connecting { .. } => {
                ctx.log.push(Log::ConnectTimeout { link });
                self.attempt_failed(ctx)
            }
            State::Lost { .. } if online => self.connect(ctx, false),
            State::Lost { .. } => {
                ctx.signal(Signal::AttemptFailed);
                self.state = State::Lost {
                    reconnect_at: now.saturating_add(RECONNECT_DELAY_MS),
                };
            }
            State::Closing { cause, .. } => self.close_finished(ctx, cause),
            State::Open => {
                if !paused && self.conn.pong_deadline.is_some_and(|d| now >= d) {
                    ctx.log.push(Log::PongTimeout { link });
                    return self.lose(ctx);
                }
                if now >= self.conn.next_ping_at {
                    self.conn.next_ping_at = now.saturating_add(self.config.ping_interval_ms);
                    let timeout = self.config.pong_timeout_ms;
                    self.conn
                        .pong_deadline
                        .get_or_insert(now.saturating_add(timeout));
                    self.send_control(ctx, opcode::PING, &[]);
                }
            }
        }
    }
}

// --- the modem's side --------------------------------------------------

/// One of the three links.
#[derive(Default)]
pub(super) struct LinkSlot {
    /// From `AT+WSCFG`; used by the next open, dropped when the link goes.
    pub pending_config: Option<LinkConfig>,
    pub format: DataFormat,
    /// Boxed: a modem keeps three slots, most of them empty.
    pub client: Option<Box<WsLink>>,
}

impl Modem {
    /// Runs `f` on `link`'s slot with a context and the buffer reports
    /// may go to right now (the host may be mid-line), then turns the
    /// signals it gave into AT bytes. The one place a link's context is made.
    fn on_link<T>(
        &mut self,
        link: LinkId,
        f: impl FnOnce(&mut LinkSlot, &mut Ctx<'_>, &mut Vec<u8>) -> Option<T>,
    ) -> Option<T> {
        let holding = self.holding_reports();
        let mut signals = Vec::new();
        let result = {
            let Modem {
                links,
                platform,
                actions,
                log,
                options,
                now,
                out,
                held,
                ..
            } = self;
            let slot = links.get_mut(usize::from(link))?;
            let mut ctx = Ctx {
                link,
                now: *now,
                platform: &mut **platform,
                actions,
                log,
                log_frames: options.log_frames,
                signals: &mut signals,
            };
            f(slot, &mut ctx, if holding { held } else { out })
        };
        for signal in signals {
            self.signal(link, signal);
        }
        result
    }

    /// [`Modem::on_link`] for a link that has a client.
    fn with_link<T>(
        &mut self,
        link: LinkId,
        f: impl FnOnce(&mut WsLink, &mut Ctx<'_>) -> T,
    ) -> Option<T> {
        self.on_link(link, |slot, ctx, _| Some(f(slot.client.as_mut()?, ctx)))
    }

    /// Turns what a link said into AT bytes.
    fn signal(&mut self, link: LinkId, signal: Signal) {
        match signal {
            Signal::Connected => {
                self.report_link("CONNECTED", link);
                if matches!(self.input, Input::Busy(Wait::Open(l)) if l == link) {
                    self.finish_wait(Ok(at::OK));
                }
            }
            Signal::Lost => {
                self.settle_waits(link, false);
                self.report_link("DISCONNECTED", link);
            }
            Signal::AttemptFailed => self.report_link("DISCONNECTED", link),
            Signal::Closed => self.report_link("CLOSED", link),
            Signal::SendDone(done) => {
                if let Input::Busy(Wait::Send { link: l, until, .. }) = self.input {
                    if l == Link::Ws(link) && done >= until {
                        self.finish_wait(Ok(at::SEND_OK));
                    }
                }
            }
            Signal::Gone => {
                let slot = &mut self.links[usize::from(link)];
                slot.client = None;
                slot.pending_config = None;
                self.settle_waits(link, true);
            }
        }
    }

    /// Answers a command waiting on `link`: it is over (`gone`: a waiting
    /// `AT+WSCLOSE` succeeded) or lost.
    fn settle_waits(&mut self, link: LinkId, gone: bool) {
        match self.input {
            Input::Busy(Wait::Close(l)) if l == link && gone => self.finish_wait(Ok(at::OK)),
            Input::Busy(Wait::Send { link: l, .. }) if l == Link::Ws(link) => {
                self.finish_wait(Err(AtError::exec()))
            }
            Input::Busy(Wait::Open(l)) if l == link => self.finish_wait(Err(AtError::exec())),
            _ => {}
        }
    }

    fn report_link(&mut self, what: &str, link: LinkId) {
        self.report(format!("+WS_{what}:{link}\r\n").as_bytes());
    }

    /// `(state code, uri)` for `AT+WSOPEN?`, if the link has a client.
    pub(super) fn link_summary(&self, link: LinkId) -> Option<(u8, Vec<u8>)> {
        let client = self.links.get(usize::from(link))?.client.as_ref()?;
        let (code, uri) = client.summary();
        Some((code, uri.to_vec()))
    }

    /// `AT+WSOPEN`: the link's first connection attempt starts.
    pub(super) fn open_link(&mut self, link: LinkId, request: OpenRequest) {
        self.on_link(link, |slot, ctx, _| {
            let config = slot.pending_config.clone().unwrap_or_default();
            slot.client = Some(Box::new(WsLink::open(ctx, request, config)));
            Some(())
        });
    }

    /// Whether `AT+WSSEND` may send on `link` now; `Ok(true)` while the host
    /// is in the middle of a fragmented message.
    pub(super) fn can_send(&self, link: LinkId) -> Result<bool, AtError> {
        match self
            .links
            .get(usize::from(link))
            .and_then(|s| s.client.as_ref())
        {
            Some(client) => client.can_send(),
            None => Err(AtError::exec()),
        }
    }

    /// Frames `data` as asked, hands it to the runtime, and returns the wait
    /// for its `SEND OK`.
    pub(super) fn send_data(&mut self, request: SendRequest, data: &[u8]) -> Wait {
        let until = self
            .with_link(request.link, |client, ctx| client.send(ctx, &request, data))
            .unwrap_or(0);
        Wait::Send {
            link: Link::Ws(request.link),
            until,
            deadline: self.now.saturating_add(request.timeout_ms),
        }
    }

    /// `AT+WSSEND` did not get its data written in time: ERROR, and the
    /// connection, with half a frame maybe written, is lost.
    pub(super) fn send_timed_out(&mut self) {
        let Input::Busy(Wait::Send {
            link: Link::Ws(link),
            ..
        }) = self.input
        else {
            return;
        };
        self.log(Log::SendTimeout {
            link: Link::Ws(link),
        });
        self.finish_wait(Err(AtError::exec()));
        self.with_link(link, |client, ctx| client.lose(ctx));
    }

    /// `AT+WSCLOSE`: returns the wait when a close handshake has to run first.
    pub(super) fn close_link(&mut self, link: LinkId) -> Option<Wait> {
        match self.with_link(link, |client, ctx| client.close(ctx)) {
            Some(true) => Some(Wait::Close(link)),
            _ => None,
        }
    }

    /// `AT+RST`: every connection dropped without reports.
    pub(super) fn drop_links(&mut self) {
        for link in 0..LINK_COUNT as LinkId {
            self.with_link(link, |client, ctx| client.drop_quietly(ctx));
        }
    }

    pub(super) fn link_event(&mut self, link: LinkId, event: NetEvent<'_>) {
        let input = match event {
            NetEvent::Received(bytes) => bytes,
            _ => &[],
        };
        let headers = core::mem::take(&mut self.settings.headers);
        let frames = self.with_link(link, |client, ctx| client.event(ctx, event, &headers));
        self.settings.headers = headers;
        self.drain_frames(link, if frames == Some(true) { input } else { &[] });
    }

    /// Handles every complete chunk the link's decoder holds; each goes
    /// where reports may go right now (the host may be mid-line), and what
    /// its signals say comes after it.
    fn drain_frames(&mut self, link: LinkId, input: &[u8]) {
        let mut used = 0;
        loop {
            self.release_held();
            let more = self.on_link(link, |slot, ctx, sink| {
                let format = slot.format;
                let client = slot.client.as_mut()?;
                Some(client.next_chunk(ctx, input, &mut used, sink, format))
            });
            if more != Some(true) {
                return;
            }
        }
    }

    pub(super) fn link_timeout(&mut self, link: LinkId) {
        let paused = self.net_paused;
        let online = self.associated();
        self.with_link(link, |client, ctx| client.timeout(ctx, paused, online));
    }

    /// The station left its AP: every open WebSocket link is lost.
    pub(super) fn lose_ws_links(&mut self) {
        for link in 0..LINK_COUNT as LinkId {
            self.with_link(link, |client, ctx| {
                if client.is_open() {
                    client.lose(ctx);
                }
            });
        }
    }

    /// Flow control let the links be read again: pong timeouts start over.
    pub(super) fn restart_pong_deadlines(&mut self) {
        let now = self.now;
        for slot in &mut self.links {
            if let Some(client) = slot.client.as_mut() {
                client.reads_resumed(now);
            }
        }
    }

    pub(super) fn link_deadlines(&self) -> impl Iterator<Item = u64> + '_ {
        let paused = self.net_paused;
        self.links
            .iter()
            .filter_map(move |slot| slot.client.as_ref()?.deadline(paused))
    }
}

/// The first line of an HTTP head (for the log).
fn first_line(head: &[u8]) -> Vec<u8> {
    let end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    head[..end.min(256)].to_vec()
}

/// Writes one received data chunk as `+WS_DATA` per `AT+WSDATAFMT`.
fn write_data_report(out: &mut Vec<u8>, link: LinkId, format: DataFormat, chunk: &ChunkRef<'_>) {
    let DataFormat { level, mask } = format;
    let first_of_frame = chunk.payload_offset == 0;
    let (header, trailer) = match level {
        0 => (true, true),
        1 => (first_of_frame, chunk.ends_frame()),
        _ => (
            first_of_frame && chunk.opcode != opcode::CONTINUATION,
            chunk.ends_frame() && chunk.fin,
        ),
    };
    if header {
        out.extend_from_slice(b"+WS_DATA:");
        push_decimal(out, u64::from(link));
        out.push(b',');
        let fields = [
            (field::OPCODE, u64::from(chunk.opcode)),
            (field::FIN, u64::from(chunk.fin)),
            (field::PAYLOAD_LEN, chunk.payload_len),
            (field::PAYLOAD_OFFSET, chunk.payload_offset),
            (field::DATA_LEN, chunk.data.len() as u64),
        ];
        for (bit, value) in fields {
            if mask & bit != 0 {
                push_decimal(out, value);
                out.push(b',');
            }
        }
    }
    crate::bytes::append(out, chunk.data);
    if trailer && mask & field::TRAILER != 0 {
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` in decimal (itoa: no allocation, this runs for every
/// received chunk).
fn push_decimal(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for value in [0, 7, 10, 125, 16384, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, value);
            assert_eq!(out, format!("x{value}").as_bytes());
        }
    }
}
