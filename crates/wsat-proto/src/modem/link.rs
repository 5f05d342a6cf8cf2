//! The links: connection life cycle, keepalive, and `+WS_...` reports.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Direction, Input, Log, Modem, Wait, LOG_PREVIEW};
use crate::at::{self, AtError};
use crate::modem::{LinkId, NetAction, NetEvent, TlsParams};
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
    pub tls: TlsParams,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ping_interval_ms: 10_000,
            pong_timeout_ms: 120_000,
            buffer_size: 1024,
            tls: TlsParams::default(),
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

/// One of the three links.
#[derive(Default)]
pub(super) struct LinkSlot {
    /// From `AT+WSCFG`; used by the next open, dropped at clean-up.
    pub pending_config: Option<LinkConfig>,
    pub format: DataFormat,
    pub client: Option<Client>,
}

impl LinkSlot {
    /// The link's next deadline. While `paused` (flow control stopped
    /// reading its socket) the pong timeout does not run.
    pub fn deadline(&self, paused: bool) -> Option<u64> {
        let client = self.client.as_ref()?;
        match &client.state {
            State::Connecting { deadline, .. }
            | State::Lost {
                reconnect_at: deadline,
            }
            | State::Closing { deadline, .. } => Some(*deadline),
            State::Open => match client.conn.pong_deadline {
                Some(pong) if !paused => Some(pong.min(client.conn.next_ping_at)),
                _ => Some(client.conn.next_ping_at),
            },
        }
    }
}

/// A link's WebSocket client: what `AT+WSOPEN` asked for, and where it is.
pub(super) struct Client {
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
    /// failure cleans the link up instead of retrying.
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

impl Modem {
    fn client(&self, link: LinkId) -> Option<&Client> {
        self.links.get(usize::from(link))?.client.as_ref()
    }

    fn client_mut(&mut self, link: LinkId) -> Option<&mut Client> {
        self.links.get_mut(usize::from(link))?.client.as_mut()
    }

    /// `(state code, uri)` for `AT+WSOPEN?`, if the link has a client.
    pub(super) fn link_summary(&self, link: LinkId) -> Option<(u8, Vec<u8>)> {
        let client = self.client(link)?;
        let code = match client.state {
            State::Connecting { .. } => 1,
            State::Open => 2,
            State::Lost { .. } => 3,
            State::Closing { .. } => 4,
        };
        Some((code, client.uri_text.clone()))
    }

    pub(super) fn open_link(
        &mut self,
        link: LinkId,
        uri_text: Vec<u8>,
        uri: WsUri,
        subprotocol: Option<Vec<u8>>,
        auth: Option<Vec<u8>>,
        connect_timeout_ms: u64,
    ) {
        let slot = &mut self.links[usize::from(link)];
        let config = slot.pending_config.clone().unwrap_or_default();
        slot.client = Some(Client {
            uri_text,
            uri,
            subprotocol,
            auth,
            connect_timeout_ms,
            conn: Conn::new(config.buffer_size),
            config,
            state: State::Lost { reconnect_at: 0 },
        });
        self.connect(link, true);
    }

    /// Starts a connection attempt.
    fn connect(&mut self, link: LinkId, first: bool) {
        let now = self.now;
        let Some(client) = self.client_mut(link) else {
            return;
        };
        client.conn = Conn::new(client.config.buffer_size);
        client.state = State::Connecting {
            deadline: now.saturating_add(client.connect_timeout_ms),
            first,
            handshake: None,
        };
        let action = NetAction::Connect {
            link,
            host: client.uri.host.clone(),
            port: client.uri.port,
            tls: client.uri.tls.then(|| client.config.tls.clone()),
        };
        self.actions.push_back(action);
    }

    /// Whether `AT+WSSEND` may send on `link` now; `Ok(true)` while the host
    /// is in the middle of a fragmented message.
    pub(super) fn can_send(&self, link: LinkId) -> Result<bool, AtError> {
        match self.client(link) {
            Some(Client {
                state: State::Open,
                conn,
                ..
            }) => Ok(conn.tx_message_open),
            _ => Err(AtError::exec()),
        }
    }

    /// Frames `data` as asked, hands it to the runtime, and returns the wait
    /// for its `SEND OK`.
    pub(super) fn send_data(&mut self, request: SendRequest, data: &[u8]) -> Wait {
        let SendRequest {
            link,
            opcode: op,
            fin,
            timeout_ms,
        } = request;
        let buffer_size = self.client(link).map_or(1024, |c| c.config.buffer_size);
        let mut bytes = Vec::with_capacity(data.len() + 14 * (data.len() / buffer_size + 1));
        if opcode::is_control(op) || data.len() <= buffer_size {
            self.encode(link, &mut bytes, fin, op, data);
        } else {
            let mut pieces = data.chunks(buffer_size).peekable();
            let mut frame_op = op;
            while let Some(piece) = pieces.next() {
                let last = pieces.peek().is_none();
                self.encode(link, &mut bytes, fin && last, frame_op, piece);
                frame_op = opcode::CONTINUATION;
            }
        }
        let now = self.now;
        if let Some(client) = self.client_mut(link) {
            if matches!(op, opcode::CONTINUATION | opcode::TEXT | opcode::BINARY) {
                client.conn.tx_message_open = !fin;
            }
            if op == opcode::CLOSE {
                client.state = State::Closing {
                    deadline: now.saturating_add(CLOSE_WAIT_MS),
                    cause: CloseCause::HostFrame,
                };
            }
        }
        let until = self.queue_send(link, bytes);
        Wait::Send {
            link,
            until,
            deadline: now.saturating_add(timeout_ms),
        }
    }

    /// Appends one masked frame with a fresh key.
    fn encode(&mut self, link: LinkId, out: &mut Vec<u8>, fin: bool, op: u8, payload: &[u8]) {
        let mut mask = [0u8; 4];
        self.platform.fill_random(&mut mask);
        ws::encode_frame(out, fin, op, payload, mask);
        if self.options.log_frames {
            let header = Header::new(fin, Opcode::from(op), payload.len() as u64, Some(mask));
            self.log_frame(link, Direction::Tx, header, payload);
        }
    }

    fn log_frame(&mut self, link: LinkId, dir: Direction, header: Header, payload: &[u8]) {
        let preview = payload[..payload.len().min(LOG_PREVIEW)].to_vec();
        self.log(Log::Frame {
            link,
            dir,
            header,
            preview,
        });
    }

    /// Asks the runtime to write `bytes`; returns the send's number.
    fn queue_send(&mut self, link: LinkId, bytes: Vec<u8>) -> u64 {
        let Some(client) = self.client_mut(link) else {
            return 0;
        };
        client.conn.sends_queued += 1;
        let number = client.conn.sends_queued;
        self.actions.push_back(NetAction::Send { link, bytes });
        number
    }

    fn send_control(&mut self, link: LinkId, op: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 6);
        self.encode(link, &mut frame, true, op, payload);
        self.queue_send(link, frame);
    }

    fn send_close(&mut self, link: LinkId, code: u16) {
        self.send_control(link, opcode::CLOSE, &code.to_be_bytes());
    }

    /// `AT+WSSEND` did not get its data written in time: ERROR, and the
    /// connection, with half a frame maybe written, is lost.
    pub(super) fn send_timed_out(&mut self) {
        let Input::Busy(Wait::Send { link, .. }) = self.input else {
            return;
        };
        self.log(Log::SendTimeout { link });
        self.finish_wait(Err(AtError::exec()));
        self.connection_lost(link);
    }

    /// `AT+WSCLOSE`: returns the wait when a close handshake has to run first.
    pub(super) fn close_link(&mut self, link: LinkId) -> Option<Wait> {
        let now = self.now;
        let client = self.client_mut(link)?;
        if !matches!(client.state, State::Open) {
            self.clean_up(link);
            return None;
        }
        client.state = State::Closing {
            deadline: now.saturating_add(CLOSE_WAIT_MS),
            cause: CloseCause::HostCommand,
        };
        self.send_close(link, close_code::NORMAL);
        Some(Wait::Close(link))
    }

    /// Asks the runtime to drop the link's connection.
    pub(super) fn drop_connection(&mut self, link: LinkId) {
        self.actions.push_back(NetAction::Close { link });
    }

    /// The link forgets its client and pending configuration; its connection
    /// is dropped and any command waiting on it gets its answer.
    fn clean_up(&mut self, link: LinkId) {
        self.drop_connection(link);
        let slot = &mut self.links[usize::from(link)];
        slot.client = None;
        slot.pending_config = None;
        self.settle_waits(link);
    }

    /// Answers a command waiting on `link` whose client has gone or dropped.
    fn settle_waits(&mut self, link: LinkId) {
        match self.input {
            Input::Busy(Wait::Close(l)) if l == link => self.finish_wait(Ok(at::OK)),
            Input::Busy(Wait::Send { link: l, .. }) | Input::Busy(Wait::Open(l)) if l == link => {
                self.finish_wait(Err(AtError::exec()))
            }
            _ => {}
        }
    }

    fn report_link(&mut self, what: &str, link: LinkId) {
        self.report(format!("+WS_{what}:{link}\r\n").as_bytes());
    }

    /// A network error, read/write error or pong timeout on an open link.
    fn connection_lost(&mut self, link: LinkId) {
        let reconnect_at = self.now.saturating_add(RECONNECT_DELAY_MS);
        let Some(client) = self.client_mut(link) else {
            return;
        };
        client.state = State::Lost { reconnect_at };
        self.drop_connection(link);
        self.settle_waits(link);
        self.report_link("DISCONNECTED", link);
    }

    /// An attempt to connect failed: the first one ends the open with ERROR,
    /// a reconnect waits for the next try.
    fn connect_failed(&mut self, link: LinkId) {
        let Some(client) = self.client(link) else {
            return;
        };
        let first = matches!(client.state, State::Connecting { first: true, .. });
        self.report_link("DISCONNECTED", link);
        if first {
            self.clean_up(link);
        } else {
            self.connection_lost_quietly(link);
        }
    }

    fn connection_lost_quietly(&mut self, link: LinkId) {
        let reconnect_at = self.now.saturating_add(RECONNECT_DELAY_MS);
        if let Some(client) = self.client_mut(link) {
            client.state = State::Lost { reconnect_at };
        }
        self.drop_connection(link);
    }

    pub(super) fn link_event(&mut self, link: LinkId, event: NetEvent<'_>) {
        let Some(client) = self.client_mut(link) else {
            return;
        };
        match event {
            NetEvent::Connected => {
                if matches!(
                    client.state,
                    State::Connecting {
                        handshake: None,
                        ..
                    }
                ) {
                    self.send_handshake(link);
                }
            }
            NetEvent::Received(bytes) => self.received(link, bytes),
            NetEvent::Sent => {
                client.conn.sends_done += 1;
                let done = client.conn.sends_done;
                let unwritten = client.conn.sends_queued - done;
                if unwritten < MAX_UNWRITTEN_SENDS_FOR_PONG {
                    if let Some(payload) = client.conn.unanswered_ping.take() {
                        self.send_control(link, opcode::PONG, &payload);
                    }
                }
                if let Input::Busy(Wait::Send { link: l, until, .. }) = self.input {
                    if l == link && done >= until {
                        self.finish_wait(Ok(at::SEND_OK));
                    }
                }
            }
            NetEvent::Closed | NetEvent::Failed(_) => self.transport_ended(link),
        }
    }

    fn send_handshake(&mut self, link: LinkId) {
        let mut key = [0u8; 16];
        self.platform.fill_random(&mut key);
        let headers = &self.settings.headers;
        let Some(client) = self.links[usize::from(link)].client.as_mut() else {
            return;
        };
        let (request, expected_accept) = ws::build_request(&ws::RequestParams {
            uri: &client.uri,
            key,
            subprotocol: client.subprotocol.as_deref(),
            authorization: client.auth.as_deref(),
            extra_headers: headers,
            user_agent: USER_AGENT,
        });
        if let State::Connecting { handshake, .. } = &mut client.state {
            *handshake = Some(Handshake {
                response: Vec::new(),
                expected_accept,
            });
        }
        self.log(Log::Http {
            link,
            dir: Direction::Tx,
            first_line: first_line(&request),
        });
        self.queue_send(link, request);
    }

    fn transport_ended(&mut self, link: LinkId) {
        let Some(client) = self.client(link) else {
            return;
        };
        match client.state {
            State::Connecting { .. } => self.connect_failed(link),
            State::Open => self.connection_lost(link),
            State::Lost { .. } => {}
            State::Closing { cause, .. } => self.close_finished(link, cause),
        }
    }

    /// The close handshake is over (or timed out): the link is cleaned up.
    fn close_finished(&mut self, link: LinkId, cause: CloseCause) {
        if cause == CloseCause::HostFrame {
            // The server never answered the host's close frame in kind.
            self.report_link("CLOSED", link);
        }
        self.clean_up(link);
    }

    fn received(&mut self, link: LinkId, bytes: &[u8]) {
        let Some(client) = self.client_mut(link) else {
            return;
        };
        match &mut client.state {
            State::Connecting {
                handshake: Some(handshake),
                ..
            } => {
                handshake.response.extend_from_slice(bytes);
                match ws::parse_response(
                    &handshake.response,
                    &handshake.expected_accept,
                    client.subprotocol.as_deref(),
                ) {
                    Ok(None) => return,
                    Ok(Some(len)) => {
                        let rest = handshake.response.split_off(len);
                        let head = first_line(&handshake.response);
                        client.conn.decoder.feed(&rest);
                        self.log(Log::Http {
                            link,
                            dir: Direction::Rx,
                            first_line: head,
                        });
                        self.established(link);
                    }
                    Err(error) => {
                        let head = first_line(&handshake.response);
                        self.log(Log::Http {
                            link,
                            dir: Direction::Rx,
                            first_line: head,
                        });
                        self.log(Log::HandshakeFailed { link, error });
                        return self.connect_failed(link);
                    }
                }
            }
            State::Connecting { .. } | State::Lost { .. } => return,
            State::Open | State::Closing { .. } => client.conn.decoder.feed(bytes),
        }
        self.drain_frames(link);
    }

    fn established(&mut self, link: LinkId) {
        let now = self.now;
        let Some(client) = self.client_mut(link) else {
            return;
        };
        client.state = State::Open;
        client.conn.next_ping_at = now.saturating_add(client.config.ping_interval_ms);
        self.report_link("CONNECTED", link);
        if matches!(self.input, Input::Busy(Wait::Open(l)) if l == link) {
            self.finish_wait(Ok(at::OK));
        }
    }

    /// Handles every complete chunk the decoder holds. Data goes from the
    /// decoder's buffer straight into the host output (the receive path's
    /// one copy in the core).
    fn drain_frames(&mut self, link: LinkId) {
        loop {
            self.release_held();
            let holding = self.holding_reports();
            let log_frames = self.options.log_frames;
            let Modem {
                links,
                out,
                held,
                log,
                log_dropped,
                ..
            } = self;
            let slot = &mut links[usize::from(link)];
            let format = slot.format;
            let Some(client) = slot.client.as_mut() else {
                return;
            };
            let open = matches!(client.state, State::Open);
            let chunk = match client.conn.decoder.next_chunk_ref() {
                Ok(None) => return,
                Ok(Some(chunk)) => chunk,
                Err(error) => return self.protocol_violation(link, error),
            };
            if log_frames && chunk.payload_offset == 0 {
                let header = Header::new(
                    chunk.fin,
                    Opcode::from(chunk.opcode),
                    chunk.payload_len,
                    None,
                );
                let preview = chunk.data[..chunk.data.len().min(LOG_PREVIEW)].to_vec();
                let entry = Log::Frame {
                    link,
                    dir: Direction::Rx,
                    header,
                    preview,
                };
                super::push_log(log, log_dropped, entry);
            }
            match chunk.opcode {
                op if op < opcode::CLOSE && open => {
                    write_data_report(if holding { held } else { out }, link, format, &chunk);
                }
                opcode::PING if open => {
                    let unwritten = client.conn.sends_queued - client.conn.sends_done;
                    if unwritten < MAX_UNWRITTEN_SENDS_FOR_PONG {
                        client.conn.unanswered_ping = None;
                        let payload = chunk.data.to_vec();
                        self.send_control(link, opcode::PONG, &payload);
                    } else {
                        // Answered once the queue drains, unless a newer
                        // ping replaces it.
                        client.conn.unanswered_ping = Some(chunk.data.to_vec());
                    }
                }
                opcode::PONG => client.conn.pong_deadline = None,
                opcode::CLOSE => {
                    // Echo the status code (none if the server sent none).
                    let code = chunk.data.get(..2).unwrap_or(&[]).to_vec();
                    self.close_received(link, &code);
                }
                // Data or pings after a close frame are not answered.
                _ => {}
            }
        }
    }

    /// The server closed: answer with a close frame carrying `reply`.
    fn close_received(&mut self, link: LinkId, reply: &[u8]) {
        let now = self.now;
        let Some(client) = self.client_mut(link) else {
            return;
        };
        match client.state {
            State::Open => {
                client.state = State::Closing {
                    deadline: now.saturating_add(CLOSE_WAIT_MS),
                    cause: CloseCause::Server,
                };
                self.report_link("CLOSED", link);
                self.send_control(link, opcode::CLOSE, reply);
            }
            State::Closing {
                cause: CloseCause::HostCommand,
                ..
            } => self.clean_up(link),
            State::Closing {
                cause: CloseCause::HostFrame,
                ..
            } => {
                client.state = State::Closing {
                    deadline: now.saturating_add(CLOSE_WAIT_MS),
                    cause: CloseCause::Server,
                };
                self.report_link("CLOSED", link);
            }
            _ => {}
        }
    }

    /// RFC 6455 §7.1.7: fail the connection, saying why in a close frame,
    /// then as for any loss: `+WS_DISCONNECTED`, state 3, a reconnect. A bad
    /// close frame is still the server closing: `+WS_CLOSED`, close 1002.
    fn protocol_violation(&mut self, link: LinkId, error: ws::ProtocolError) {
        let Some(client) = self.client(link) else {
            return;
        };
        let open = match client.state {
            State::Open => true,
            State::Closing { cause, .. } if cause != CloseCause::Server => false,
            // Connecting, lost, or already answering the server's close: a
            // dead decoder keeps failing, and there is nothing more to say.
            _ => return,
        };
        self.log(Log::ProtocolError { link, error });
        if error.in_close_frame() {
            let code = close_code::PROTOCOL_ERROR.to_be_bytes();
            self.close_received(link, &code);
        } else if open {
            self.send_close(link, error.close_code());
            self.connection_lost(link);
        } else {
            // Closing at the host's word: the close handshake is over.
            self.transport_ended(link);
        }
    }

    /// Flow control let the links be read again: a pong that was waiting
    /// behind unread data gets its full timeout from now.
    pub(super) fn restart_pong_deadlines(&mut self) {
        let now = self.now;
        for slot in &mut self.links {
            if let Some(client) = slot.client.as_mut() {
                let timeout = client.config.pong_timeout_ms;
                if let Some(deadline) = client.conn.pong_deadline.as_mut() {
                    *deadline = now.saturating_add(timeout);
                }
            }
        }
    }

    pub(super) fn link_timeout(&mut self, link: LinkId) {
        let now = self.now;
        let paused = self.net_paused;
        let Some(deadline) = self.links[usize::from(link)].deadline(paused) else {
            return;
        };
        if now < deadline {
            return;
        }
        let Some(client) = self.client_mut(link) else {
            return;
        };
        match client.state {
            State::Connecting { .. } => {
                self.log(Log::ConnectTimeout { link });
                self.connect_failed(link)
            }
            State::Lost { .. } => self.connect(link, false),
            State::Closing { cause, .. } => self.close_finished(link, cause),
            State::Open => {
                if !paused && client.conn.pong_deadline.is_some_and(|d| now >= d) {
                    self.log(Log::PongTimeout { link });
                    return self.connection_lost(link);
                }
                if now >= client.conn.next_ping_at {
                    let interval = client.config.ping_interval_ms;
                    client.conn.next_ping_at = now.saturating_add(interval);
                    let timeout = client.config.pong_timeout_ms;
                    client
                        .conn
                        .pong_deadline
                        .get_or_insert(now.saturating_add(timeout));
                    self.send_control(link, opcode::PING, &[]);
                }
            }
        }
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
    out.extend_from_slice(chunk.data);
    if trailer && mask & field::TRAILER != 0 {
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` in decimal, without the allocation of `format!`: this
/// runs for every received chunk.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
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
