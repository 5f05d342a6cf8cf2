//! A deterministic simulator of a modem's surroundings: a clock, a host on
//! the AT port and a network of WebSocket servers, driving a [`Modem`] with
//! the same loop a runtime runs over real I/O (see [`crate::modem`]).
//!
//! The unit tests, the fuzz harnesses and the crate's example use it. No
//! sleeps, no sockets: time moves only when [`Sim::advance`] moves it.
//!
//! ```
//! use wsat_proto::testing::Sim;
//!
//! let mut sim = Sim::new();
//! sim.network.auto = true; // servers that answer handshakes and take every send
//! assert_eq!(sim.host_read(), wsat_proto::testing::BOOT); // `ready`, then the stored AP's join
//! sim.host_write(b"ATE0\r\nAT+WSOPEN=0,\"ws://example.com/\"\r\n");
//! assert!(sim.host_read().ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"));
//! sim.server_send(wsat_proto::Link::Ws(0), &wsat_proto::testing::server_frame(true, 1, b"hi"));
//! assert_eq!(sim.host_read(), b"+WS_DATA:0,2,hi\r\n");
//! ```
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::modem::{
    Link, Log, Modem, ModemOptions, NetAction, NetAnswer, NetEvent, Platform, UartConfig,
};
use crate::ws::{self, Header, Opcode};

/// What a modem with default options prints at start-up and after each
/// reset: `ready`, then the join of its stored AP.
pub const BOOT: &[u8] = b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n";

/// The address every simulated connection has on the modem's side.
pub const SIM_LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 49152);
/// What a simulated connection to an IP address reports as its peer when
/// the host named it by a name: the documentation address 192.0.2.1.
pub const SIM_PEER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Steps [`Sim::run`] takes before it decides the modem spins.
const RUN_LIMIT: usize = 1_000_000;

/// The certificate store of a [`TestPlatform`], shared with the test so it
/// can look inside and break it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// `(namespace, key)` → value.
    pub entries: BTreeMap<(String, String), Vec<u8>>,
    /// Every write and erase fails, like a full or read-only disk.
    pub broken: bool,
}

/// Deterministic "randomness", a fixed wall clock (Mon Oct 18 20:12:27
/// 2021 UTC) and an in-memory certificate store.
pub struct TestPlatform {
    seed: u32,
    store: Arc<Mutex<MemoryStore>>,
}

impl TestPlatform {
    /// Randomness from `seed`, certificates in `store`.
    pub fn new(seed: u32, store: Arc<Mutex<MemoryStore>>) -> Self {
        TestPlatform { seed, store }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, MemoryStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Platform for TestPlatform {
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (self.seed >> 16) as u8;
        }
    }

    fn unix_time(&self) -> Option<i64> {
        Some(1_634_587_947)
    }

    fn store_read(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.store()
            .entries
            .get(&(namespace.into(), key.into()))
            .cloned()
    }

    fn store_write(&mut self, namespace: &str, key: &str, data: &[u8]) -> bool {
        let mut store = self.store();
        if store.broken {
            return false;
        }
        store
            .entries
            .insert((namespace.into(), key.into()), data.to_vec());
        true
    }

    fn store_erase(&mut self, namespace: &str, key: Option<&str>) -> bool {
        let mut store = self.store();
        if store.broken {
            return false;
        }
        match key {
            Some(key) => store
                .entries
                .remove(&(namespace.into(), key.into()))
                .is_some(),
            None => {
                store.entries.retain(|(ns, _), _| ns != namespace);
                true
            }
        }
    }

    fn store_keys(&self, namespace: &str) -> Vec<String> {
        let store = self.store();
        store
            .entries
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

/// What the simulated network does with the modem's actions.
#[derive(Debug)]
pub struct Network {
    /// `true`: every link reaches a server that behaves as the fields below
    /// say. `false`: actions are only kept in [`Network::actions`] and the
    /// test answers them with [`Sim::net_event`].
    pub auto: bool,
    /// Connects complete (`Connected`); `false`: they never complete, nor fail.
    pub complete_connects: bool,
    /// Handshake requests get the right `101`.
    pub answer_handshakes: bool,
    /// Sends are written (`Sent`) at once; `false`: never.
    pub ack_sends: bool,
    /// Servers answer pings with pongs, queued behind what they sent before.
    pub answer_pings: bool,
    /// Every action, when not `auto`.
    pub actions: VecDeque<NetAction>,
    /// What the modem wrote on each link after its handshake, and each
    /// socket link's sends (auto).
    pub sent: Vec<(Link, Vec<u8>)>,
    /// Bytes the network has delivered to the modem, in all.
    pub received_total: usize,
    /// Events to deliver: reads wait while the modem does not want input
    /// from their link, the rest go at once.
    pub(crate) reads: VecDeque<(Link, Read)>,
    events: VecDeque<(Link, Event)>,
    /// Answers to listen, resolve and ping actions (auto).
    answers: VecDeque<Answer>,
}

#[derive(Debug)]
pub(crate) enum Read {
    Bytes(Vec<u8>),
    Datagram(SocketAddr, Vec<u8>),
    Eof,
}

#[derive(Debug)]
enum Event {
    Connected(SocketAddr),
    Sent,
}

#[derive(Debug)]
enum Answer {
    Listening,
    Resolved(IpAddr),
    Pinged,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            auto: false,
            complete_connects: true,
            answer_handshakes: true,
            ack_sends: true,
            answer_pings: true,
            actions: VecDeque::new(),
            sent: Vec::new(),
            received_total: 0,
            reads: VecDeque::new(),
            events: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }
}

/// A modem, its host and its network, on a simulated clock.
pub struct Sim {
    /// The modem under test.
    pub modem: Modem,
    /// Milliseconds since the start.
    pub now: u64,
    /// What the host wrote that the modem has not read yet.
    pub host_tx: VecDeque<u8>,
    /// What the host read from the modem and the test has not taken.
    pub host_rx: Vec<u8>,
    /// Whether the host reads the AT port. A host that does not leaves the
    /// output with the modem ([`Sim::host_read_some`] reads by hand).
    pub host_reading: bool,
    /// Bytes per read of the AT port, as a runtime's read buffer.
    pub read_size: usize,
    /// The simulated servers.
    pub network: Network,
    /// The modem's certificate store.
    pub store: Arc<Mutex<MemoryStore>>,
    /// Line settings changes, in the order the modem asked for them.
    pub uart_changes: Vec<UartConfig>,
    /// The modem's log, oldest first (bounded: the oldest go past 10 000).
    pub log: VecDeque<Log>,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// A fresh modem with default options; nothing has run yet.
    pub fn new() -> Sim {
        Sim::with_options(ModemOptions {
            log_frames: true,
            ..ModemOptions::default()
        })
    }

    /// A fresh modem made with `options`.
    pub fn with_options(options: ModemOptions) -> Sim {
        let store = Arc::new(Mutex::new(MemoryStore::default()));
        let platform = TestPlatform::new(7, store.clone());
        Sim {
            modem: Modem::new(options, Box::new(platform), 0),
            now: 0,
            host_tx: VecDeque::new(),
            host_rx: Vec::new(),
            host_reading: true,
            read_size: 16 * 1024,
            network: Network::default(),
            store,
            uart_changes: Vec::new(),
            log: VecDeque::new(),
        }
    }

    /// The host writes `bytes`; the loop runs until quiet.
    pub fn host_write(&mut self, bytes: &[u8]) {
        self.host_tx.extend(bytes);
        self.run();
    }

    /// Runs until quiet and takes what the host has read so far.
    pub fn host_read(&mut self) -> Vec<u8> {
        self.run();
        core::mem::take(&mut self.host_rx)
    }

    /// A host that is not [`Sim::host_reading`] reads up to `n` bytes.
    pub fn host_read_some(&mut self, n: usize) -> Vec<u8> {
        let out = self.modem.host_output();
        let n = n.min(out.len());
        let bytes = out[..n].to_vec();
        self.modem.advance_host_output(n, self.now);
        self.run();
        bytes
    }

    /// Host bytes not acted on yet: still with the host, or in the modem's
    /// input buffer.
    pub fn unread_input(&self) -> usize {
        self.host_tx.len() + self.modem.buffered_host_input()
    }

    /// Bytes of reports the modem holds back until the host finishes a line
    /// or a prompt.
    pub fn held_reports(&self) -> usize {
        self.modem.held.len()
    }

    /// An event on `link`, from the test (a network that is not `auto`).
    pub fn net_event(&mut self, link: Link, event: NetEvent<'_>) {
        if let NetEvent::Received(bytes) = &event {
            self.network.received_total += bytes.len();
        }
        self.modem.net_event(link, event, self.now);
        self.run();
    }

    /// The answer to a resolve, ping or listen, from the test.
    pub fn net_answer(&mut self, answer: NetAnswer<'_>) {
        self.modem.net_answer(answer, self.now);
        self.run();
    }

    /// A client connects to the modem's server from `remote`: the link it
    /// got, if any.
    pub fn accept(&mut self, remote: SocketAddr) -> Option<Link> {
        let link = self.modem.accept(SIM_LOCAL, remote, self.now);
        self.run();
        link
    }

    /// The server of `link` sends `bytes`; they arrive when the modem reads
    /// (as much at a time as it has room for).
    pub fn server_send(&mut self, link: Link, bytes: &[u8]) {
        self.network
            .reads
            .push_back((link, Read::Bytes(bytes.to_vec())));
        self.run();
    }

    /// A datagram from `from` for UDP link `link`.
    pub fn datagram(&mut self, link: Link, from: SocketAddr, bytes: &[u8]) {
        self.network
            .reads
            .push_back((link, Read::Datagram(from, bytes.to_vec())));
        self.run();
    }

    /// The server of `link` closes TCP (after what it sent before).
    pub fn server_eof(&mut self, link: Link) {
        self.network.reads.push_back((link, Read::Eof));
        self.run();
    }

    /// Moves the clock to `ms`, firing every deadline on the way as a
    /// runtime's timer would. Panics if the modem hands out a deadline it
    /// has just handled (a runtime would spin).
    pub fn advance_to(&mut self, ms: u64) {
        self.run();
        while let Some(deadline) = self.modem.poll_timeout() {
            if deadline > ms {
                break;
            }
            self.now = self.now.max(deadline);
            self.modem.handle_timeout(self.now);
            if let Some(next) = self.modem.poll_timeout() {
                assert!(
                    next > self.now,
                    "deadline {next} handed out again at {}",
                    self.now
                );
            }
            self.run();
        }
        self.now = self.now.max(ms);
        self.run();
    }

    /// [`Sim::advance_to`] `ms` from now.
    pub fn advance(&mut self, ms: u64) {
        self.advance_to(self.now.saturating_add(ms));
    }

    /// The loop of a runtime, until nothing moves: read the host while the
    /// modem wants input, write its output while the host reads, take line
    /// settings changes, carry out actions, collect the log, deliver
    /// network events (reads only while the modem wants them).
    pub fn run(&mut self) {
        for _ in 0..RUN_LIMIT {
            let mut moved = false;
            if self.modem.wants_host_input() && !self.host_tx.is_empty() {
                let n = self.read_size.min(self.host_tx.len());
                let pending = self.host_tx.make_contiguous();
                self.modem.host_input(&pending[..n], self.now);
                self.host_tx.drain(..n);
                moved = true;
            }
            if self.host_reading && !self.modem.host_output().is_empty() {
                let out = self.modem.host_output();
                let n = out.len();
                self.host_rx.extend_from_slice(out);
                self.modem.advance_host_output(n, self.now);
                moved = true;
            }
            if let Some(change) = self.modem.poll_uart_change() {
                self.uart_changes.push(change);
                moved = true;
            }
            while let Some(action) = self.modem.poll_net_action() {
                self.act(action);
                moved = true;
            }
            while let Some(entry) = self.modem.poll_log() {
                if self.log.len() >= 10_000 {
                    self.log.pop_front();
                }
                self.log.push_back(entry);
            }
            moved |= self.deliver();
            if !moved {
                return;
            }
        }
        panic!("the modem never settles");
    }

    /// Delivers one network event; returns whether there was one.
    fn deliver(&mut self) -> bool {
        if let Some((link, event)) = self.network.events.pop_front() {
            let event = match event {
                Event::Connected(remote) => NetEvent::Connected {
                    local: SIM_LOCAL,
                    remote,
                },
                Event::Sent => NetEvent::Sent,
            };
            self.modem.net_event(link, event, self.now);
            return true;
        }
        if let Some(answer) = self.network.answers.pop_front() {
            let answer = match answer {
                Answer::Listening => NetAnswer::Listening(true),
                Answer::Resolved(ip) => {
                    self.modem.net_answer(NetAnswer::Resolved(&[ip]), self.now);
                    return true;
                }
                Answer::Pinged => NetAnswer::Pinged(Some(1)),
            };
            self.modem.net_answer(answer, self.now);
            return true;
        }
        // EOF comes after the data, so it waits for room too.
        let Some(at) = self
            .network
            .reads
            .iter()
            .position(|(link, _)| self.modem.net_input_room(*link) > 0)
        else {
            return false;
        };
        let Some((link, read)) = self.network.reads.remove(at) else {
            return false;
        };
        match read {
            Read::Bytes(mut bytes) => {
                let room = self.modem.net_input_room(link);
                if bytes.len() > room {
                    // A read takes what fits; the rest waits its turn.
                    let rest = bytes.split_off(room);
                    self.network.reads.insert(at, (link, Read::Bytes(rest)));
                }
                self.network.received_total += bytes.len();
                self.modem
                    .net_event(link, NetEvent::Received(&bytes), self.now);
            }
            Read::Datagram(from, bytes) => {
                self.network.received_total += bytes.len();
                let event = NetEvent::Datagram {
                    from,
                    bytes: &bytes,
                };
                self.modem.net_event(link, event, self.now);
            }
            Read::Eof => self.modem.net_event(link, NetEvent::Closed, self.now),
        }
        true
    }

    fn act(&mut self, action: NetAction) {
        let network = &mut self.network;
        if !network.auto {
            network.actions.push_back(action);
            return;
        }
        match action {
            NetAction::Connect {
                link, host, port, ..
            } => {
                assert!(!host.is_empty(), "connect without a host");
                network.reads.retain(|(l, _)| *l != link);
                network.events.retain(|(l, _)| *l != link);
                let ip = host.parse().unwrap_or(SIM_PEER_IP);
                let remote = SocketAddr::new(ip, port);
                if network.complete_connects {
                    network.events.push_back((link, Event::Connected(remote)));
                }
            }
            NetAction::Send {
                link: link @ Link::Socket(_),
                bytes,
            }
            | NetAction::SendTo { link, bytes, .. } => {
                network.sent.push((link, bytes));
                if network.ack_sends {
                    network.events.push_back((link, Event::Sent));
                }
            }
            NetAction::Listen { .. } => network.answers.push_back(Answer::Listening),
            NetAction::StopListening => {}
            NetAction::Resolve { host } => {
                let ip = host.parse().unwrap_or(SIM_PEER_IP);
                network.answers.push_back(Answer::Resolved(ip));
            }
            NetAction::Ping { .. } => network.answers.push_back(Answer::Pinged),
            NetAction::Send { link, bytes } => {
                match handshake_response(&bytes) {
                    Some(response) if network.answer_handshakes => {
                        network.reads.push_back((link, Read::Bytes(response)));
                    }
                    Some(_) => {}
                    None => {
                        if network.answer_pings {
                            for ping in parse_frames(&bytes)
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|f| f.header.opcode == Opcode::Ping)
                            {
                                let pong = server_frame(true, 0xA, &ping.payload);
                                network.reads.push_back((link, Read::Bytes(pong)));
                            }
                        }
                        network.sent.push((link, bytes));
                    }
                }
                if network.ack_sends {
                    network.events.push_back((link, Event::Sent));
                }
            }
            NetAction::Close { link } => {
                network.reads.retain(|(l, _)| *l != link);
                network.events.retain(|(l, _)| *l != link);
            }
        }
    }
}

/// The right `101` for a handshake request, or `None` if `bytes` is not one.
pub fn handshake_response(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = core::str::from_utf8(bytes).ok()?;
    if !text.starts_with("GET ") {
        return None;
    }
    let key = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("Sec-WebSocket-Key")
            .then(|| value.trim())
    })?;
    let accept = ws::accept_key(key.as_bytes());
    Some(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// An unmasked server frame.
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    Header::new(fin, Opcode::from(opcode), payload.len() as u64, None).write(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A frame as it was on the wire, unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// As it was on the wire.
    pub header: Header,
    /// Unmasked.
    pub payload: Vec<u8>,
}

/// Splits `bytes` into whole frames, unmasking payloads. `None` when the
/// bytes do not end at a frame's end.
pub fn parse_frames(mut bytes: &[u8]) -> Option<Vec<Frame>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, at) = Header::parse(bytes)?;
        let len = usize::try_from(header.payload_len).ok()?;
        let mut payload = bytes.get(at..at.checked_add(len)?)?.to_vec();
        if let Some(mask) = header.mask {
            ws::apply_mask(&mut payload, mask, 0);
        }
        frames.push(Frame { header, payload });
        bytes = &bytes[at + len..];
    }
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_one_header() {
        let mut bytes = server_frame(true, 1, b"hi");
        ws::encode_frame(&mut bytes, false, 2, &[7; 300], [1, 2, 3, 4]);
        let frames = parse_frames(&bytes).unwrap();
        assert_eq!(frames[0].payload, b"hi");
        assert_eq!(frames[0].header.mask, None);
        assert_eq!(frames[1].payload, [7; 300]);
        assert_eq!(frames[1].header.opcode, Opcode::Binary);
        assert!(!frames[1].header.fin);
        assert_eq!(parse_frames(&bytes[..bytes.len() - 1]), None);
    }
}
