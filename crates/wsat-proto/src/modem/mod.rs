//! The modem: the command table, the three WebSocket links and the five
//! socket links.
//!
//! # Driving a `Modem`
//!
//! The modem owns both byte queues of the AT port; the runtime owns the port
//! itself, the links' sockets and one timer, and loops:
//!
//! 1. Feed what happened, each with the time: [`Modem::host_input`] (bytes
//!    read from the AT port, all of them), [`Modem::advance_host_output`]
//!    (how many bytes of [`Modem::host_output`] were written),
//!    [`Modem::net_event`] (a link's connection did something),
//!    [`Modem::net_answer`] (a lookup, ping or listen is done),
//!    [`Modem::accept`] (a connection reached the server) and
//!    [`Modem::handle_timeout`] (the deadline passed).
//! 2. Then ask, in any order: [`Modem::host_output`] (write what it holds),
//!    [`Modem::poll_uart_change`] (apply it before writing on),
//!    [`Modem::poll_net_action`] until `None`, [`Modem::poll_log`] until
//!    `None`, [`Modem::poll_timeout`] (re-arm the timer),
//!    [`Modem::wants_host_input`] (read the AT port only while true) and
//!    [`Modem::net_input_room`] (read at most that much from a link's socket).
//!
//! Every answer of step 2 can change only by a call of step 1, so a runtime
//! that asks again after each such call misses nothing. There is no other
//! rule: the modem buffers what it cannot take yet, withholds output past a
//! line-settings change until the change is taken, and bounds its memory
//! (see [`HOST_OUTPUT_BOUND`], [`HOST_INPUT_BOUND`]).
//!
//! [`crate::testing::Sim`] (feature `testing`) is this loop over a simulated
//! clock, host and network.

mod commands;
mod fault;
mod firmware;
mod link;
mod socket;
mod sysmfg;
#[cfg(test)]
mod tests;
mod uart;
mod wifi;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use crate::at::line::{Line, LineReader};
use crate::at::{self, AtError, ErrorKind};
use crate::ws::{self, HandshakeError, ProtocolError};
pub use fault::{Fault, FaultAnswer, ReportTime};
pub use firmware::Firmware;
use link::{LinkSlot, SendRequest};
pub use uart::UartConfig;
pub use wifi::{AccessPoint, WifiOptions};

/// ESP-AT's three WebSocket links, ids 0..=2.
pub const LINK_COUNT: usize = 3;

/// ESP-AT's five socket links (`AT+CIPSTART`), ids 0..=4.
pub const SOCKET_COUNT: usize = 5;

/// A link id of one kind: `0..LINK_COUNT` or `0..SOCKET_COUNT`.
pub type LinkId = u8;

/// What the core needs from its surroundings besides bytes and time.
pub trait Platform {
    /// Fill `buf` with unpredictable bytes (masking keys, `Sec-WebSocket-Key`).
    fn fill_random(&mut self, buf: &mut [u8]);
    /// Seconds since the Unix epoch, UTC, if the wall clock is known.
    fn unix_time(&self) -> Option<i64>;

    // The certificate store behind `AT+SYSMFG`, read by `AT+WSCFG`. The
    // modem only ever passes a namespace from [`crate::pki::NAMESPACES`] and
    // a key accepted by [`crate::pki::key_index`]. The defaults are an empty
    // store that refuses writes, for platforms without one.

    /// The bytes of entry `key`, or `None` when it does not exist or cannot
    /// be read (log why; the host only sees that it is missing).
    fn store_read(&self, _namespace: &str, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Replaces entry `key` with `data`. All or nothing: after a failure or
    /// a crash the old entry (or none) is there, never part of the new one.
    /// Returns whether the entry was written.
    fn store_write(&mut self, _namespace: &str, _key: &str, _data: &[u8]) -> bool {
        false
    }

    /// Erases entry `key`, or with `None` every entry of the namespace.
    /// Returns false when a named entry did not exist or anything could not
    /// be removed; erasing an empty namespace succeeds.
    fn store_erase(&mut self, _namespace: &str, _key: Option<&str>) -> bool {
        false
    }

    /// The keys of the namespace's entries, in any order.
    fn store_keys(&self, _namespace: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Settings the runtime chooses once, when it makes the modem.
#[derive(Clone, Debug)]
pub struct ModemOptions {
    /// Goes into `AT+GMR` (`compile time(<commit>)`); a short git hash.
    pub commit: String,
    /// Goes into `AT+GMR`; ESP-AT's `__DATE__ __TIME__` form, `Nov 23 2026 19:28:00`.
    pub build_time: String,
    /// The AT port's line settings at start (`AT+UART_CUR?`, `AT+UART_DEF?`).
    pub uart: UartConfig,
    /// From the `OK` of `AT+RST`/`AT+RESTORE` to `ready`; input meanwhile
    /// is lost, as on a restarting chip. ESP32s take 0.7–1.7 s; drivers
    /// need it well under 1 s.
    pub restart_delay_ms: u64,
    /// The access points around the module, and the one it joins at boot.
    pub wifi: WifiOptions,
    /// The ESP-AT release it is: its commands, ranges and `AT+GMR`.
    pub firmware: Firmware,
    /// Log every frame sent and received ([`Log::Frame`], [`Log::Http`]);
    /// failures are logged either way.
    pub log_frames: bool,
}

impl Default for ModemOptions {
    fn default() -> Self {
        ModemOptions {
            commit: String::from("0000000"),
            build_time: String::from("Jan  1 1970 00:00:00"),
            uart: UartConfig::DEFAULT,
            restart_delay_ms: 500,
            wifi: WifiOptions::default(),
            firmware: Firmware::default(),
            log_frames: false,
        }
    }
}

/// What a `wss://` link verifies and presents, from `AT+WSCFG` (or an SSL
/// socket, from `AT+CIPSSLCCONF` and its friends). The core
/// maps ESP-AT's auth_mode to it, once, so the runtime only carries it out:
///
/// | auth_mode | `server` | `client` |
/// |---|---|---|
/// | 0 (default) | [`ServerVerification::None`] | `None` |
/// | 1 | [`ServerVerification::None`] | `Some` |
/// | 2 | [`ServerVerification::Ca`] | `None` |
/// | 3 | [`ServerVerification::Ca`] | `Some` |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// How the server's certificate is checked.
    pub server: ServerVerification,
    /// The certificate shown to a server that asks for one; `None` shows none.
    pub client: Option<ClientIdentity>,
    /// The name sent as SNI (`AT+CIPSSLCSNI`); `None`: the host's name, if
    /// it is one.
    pub sni: Option<String>,
    /// The name the server's certificate must carry when it is verified
    /// (`AT+CIPSSLCCN`); `None`: the runtime's rule for the host name.
    pub common_name: Option<String>,
    /// ALPN protocols to offer (`AT+CIPSSLCALPN`), in order; none: no ALPN.
    pub alpn: Vec<Vec<u8>>,
}

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServerVerification {
    /// Not at all: any certificate is accepted (the handshake's signatures
    /// must still be made with its key).
    #[default]
    None,
    /// Its chain must lead to one of these CA certificates (PEM, several may
    /// follow each other; or one DER object) and be within its dates.
    Ca(Vec<u8>),
}

/// A client certificate and its private key, PEM (or each one DER object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate, or a chain starting with it.
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Vec<u8>,
}

/// A connection of the modem, as the runtime sees it: one of the
/// WebSocket links or one of the socket links (`AT+CIPSTART`), each kind
/// with its own ids, as on ESP-AT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// WebSocket link `0..LINK_COUNT`.
    Ws(LinkId),
    /// Socket link `0..SOCKET_COUNT`.
    Socket(LinkId),
}

impl Link {
    /// How many links there are; [`Link::index`] is below it.
    pub const COUNT: usize = LINK_COUNT + SOCKET_COUNT;

    /// A dense index, `0..Link::COUNT`, for the runtime's tables.
    pub fn index(self) -> usize {
        match self {
            Link::Ws(id) => usize::from(id),
            Link::Socket(id) => LINK_COUNT + usize::from(id),
        }
    }

    /// The link of [`Link::index`] `index`.
    pub fn from_index(index: usize) -> Option<Link> {
        match index {
            i if i < LINK_COUNT => Some(Link::Ws(i as LinkId)),
            i if i < Link::COUNT => Some(Link::Socket((i - LINK_COUNT) as LinkId)),
            _ => None,
        }
    }

    /// Every link, in index order.
    pub fn all() -> impl Iterator<Item = Link> {
        (0..Link::COUNT).filter_map(Link::from_index)
    }
}

impl core::fmt::Display for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Link::Ws(id) => write!(f, "link {id}"),
            Link::Socket(id) => write!(f, "socket {id}"),
        }
    }
}

/// Something that happened on a link's connection, reported by the runtime.
#[derive(Debug, PartialEq, Eq)]
pub enum NetEvent<'a> {
    /// The transport asked for by [`NetAction::Connect`] is up (TCP, and TLS
    /// for `wss://` and SSL; a bound socket for UDP). The WebSocket
    /// handshake is the core's job.
    Connected {
        /// The socket's own address.
        local: SocketAddr,
        /// The peer's address; for UDP the one the connect named (it may
        /// be unspecified: no default peer).
        remote: SocketAddr,
    },
    /// Bytes read from a stream connection, in order.
    Received(&'a [u8]),
    /// One datagram read from a UDP link.
    Datagram {
        /// Its sender.
        from: SocketAddr,
        /// Its payload.
        bytes: &'a [u8],
    },
    /// One [`NetAction::Send`] or [`NetAction::SendTo`] has been written to
    /// the socket in full. Reported once per send, in the order the sends
    /// were asked for.
    Sent,
    /// The peer closed the connection (EOF) or it broke; nothing more comes.
    Closed,
    /// Connecting failed (DNS, refused, TLS, ...). The text is for the log.
    Failed(String),
}

/// The answer to a [`NetAction`] that is not about a link, for
/// [`Modem::net_answer`].
#[derive(Debug, PartialEq, Eq)]
pub enum NetAnswer<'a> {
    /// [`NetAction::Resolve`]: the host's addresses; empty when it has none
    /// (or the lookup failed).
    Resolved(&'a [IpAddr]),
    /// [`NetAction::Ping`]: the round trip in milliseconds, or `None` when
    /// no reply came in time (or the name did not resolve).
    Pinged(Option<u32>),
    /// [`NetAction::Listen`]: the listening socket is up (`true`), or could
    /// not be made.
    Listening(bool),
}

/// How a [`NetAction::Connect`] reaches its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP stream.
    Tcp,
    /// TLS over a TCP stream, with these settings.
    Tls(TlsPolicy),
    /// A UDP socket bound to `local_port` (0: any) on every interface;
    /// datagrams go where [`NetAction::SendTo`] says, and come from anyone.
    Udp {
        /// The port to bind; 0 lets the system pick.
        local_port: u16,
    },
}

/// Something the modem asks the runtime to do.
#[derive(Debug, PartialEq, Eq)]
pub enum NetAction {
    /// Open a transport to `host:port` for `link`, replacing any it had.
    /// Answer with [`NetEvent::Connected`] or [`NetEvent::Failed`].
    Connect {
        /// The link the connection is for.
        link: Link,
        /// A host name or an IP address (for UDP, `0.0.0.0`: no peer).
        host: String,
        /// The peer's port.
        port: u16,
        /// TCP, TLS or UDP.
        transport: Transport,
        /// TCP keep-alive idle time in seconds; 0: off.
        keep_alive_s: u16,
    },
    /// Write these bytes to the link's stream, after earlier sends.
    /// Answer with [`NetEvent::Sent`] once they are written, or taken into a
    /// bounded send buffer of the runtime that will write them before the
    /// link's `Close` (as `SEND OK` counts data in a module's TCP buffer).
    Send {
        /// The link whose connection takes them.
        link: Link,
        /// Whole frames (or the handshake request), or socket data.
        bytes: Vec<u8>,
    },
    /// Send one datagram from the link's UDP socket, after earlier sends.
    /// Answer with [`NetEvent::Sent`] once it is sent (or dropped: UDP
    /// does not promise delivery).
    SendTo {
        /// The UDP link.
        link: Link,
        /// Where it goes.
        to: SocketAddr,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// Drop the link's connection (after writing the sends queued before
    /// this). No event is reported for it afterwards; a later `Connect` for
    /// the same link is a new connection.
    Close {
        /// The link whose connection goes.
        link: Link,
    },
    /// Listen for TCP connections on `port` (`AT+CIPSERVER`), replacing
    /// any listener. Answer with [`NetAnswer::Listening`]; offer every
    /// connection to [`Modem::accept`].
    Listen {
        /// The port the host asked for.
        port: u16,
    },
    /// Stop listening; connections already accepted stay.
    StopListening,
    /// Look up `host`'s addresses. Answer with [`NetAnswer::Resolved`].
    Resolve {
        /// A host name or an IP address.
        host: String,
    },
    /// Measure a round trip to `host`. Answer with [`NetAnswer::Pinged`].
    Ping {
        /// A host name or an IP address.
        host: String,
    },
}

/// Unwritten host output past which the modem stops taking host input (it
/// is not read while [`Modem::wants_host_input`] is false) and, counted
/// with reports held back for the host, stops reading the links' sockets
/// ([`Modem::net_input_room`]). What was already on its way still comes in
/// and is kept, so no byte is lost and memory stays bounded.
pub const HOST_OUTPUT_BOUND: usize = 256 * 1024;

/// Host input the modem buffers before [`Modem::wants_host_input`] says no.
/// Input waits there while a command runs (`AT+WSSEND` until its data is
/// written) or while the host output is past its bound.
pub const HOST_INPUT_BOUND: usize = 16 * 1024;

/// Written host output is dropped from the front of the buffer once this
/// much has gone, so a host that reads steadily but never catches up does
/// not make the buffer grow.
const COMPACT_AFTER: usize = 64 * 1024;

/// How long a line ended by a lone CR waits for an LF (with echo on), on
/// top of two byte times at the port's rate.
const LF_WAIT_MS: u64 = 100;

/// The silence before a lone `+++` that cancels a send's data.
const ESCAPE_GUARD_MS: u64 = 20;

/// What makes ESP-AT restart even while a command runs.
const FORCE_RESTART: &[u8] = b"AT+RST\r\n";

/// Where `needle` first starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Log entries kept for [`Modem::poll_log`]; older ones are dropped (and
/// counted) so a runtime that never asks cannot grow memory.
pub const LOG_BOUND: usize = 1024;

/// Which way a frame or an HTTP head went on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the modem to the server.
    Tx,
    /// From the server.
    Rx,
}

/// What the modem did on a link and why, from [`Modem::poll_log`], for the
/// runtime to format into its logs and traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Log {
    /// The first line of the handshake request or response.
    Http {
        /// The link.
        link: Link,
        /// Request (tx) or response (rx).
        dir: Direction,
        /// Without its CR LF, at most 256 bytes.
        first_line: Vec<u8>,
    },
    /// A WebSocket frame and the first [`LOG_PREVIEW`] bytes of its
    /// payload, unmasked. Received frames are logged when their first chunk
    /// is decoded.
    Frame {
        /// The link.
        link: Link,
        /// Sent or received.
        dir: Direction,
        /// The frame's header (received frames: no mask).
        header: ws::Header,
        /// The first bytes of the payload, unmasked.
        preview: Vec<u8>,
    },
    /// The server's handshake response was refused.
    HandshakeFailed {
        /// The link.
        link: Link,
        /// Why.
        error: HandshakeError,
    },
    /// The server broke RFC 6455: the connection failed (close 1002/1007),
    /// or for a bad close frame, was closed with 1002.
    ProtocolError {
        /// The link.
        link: Link,
        /// What the server did.
        error: ProtocolError,
    },
    /// No pong came within the link's pong timeout.
    PongTimeout {
        /// The link.
        link: Link,
    },
    /// TCP, TLS and the handshake did not complete within the timeout.
    ConnectTimeout {
        /// The link.
        link: Link,
    },
    /// `AT+WSSEND`'s data was not written within its timeout.
    SendTimeout {
        /// The link.
        link: Link,
    },
    /// This many older entries were dropped (nobody asked for them).
    Dropped(u64),
}

/// A link as [`Modem::link_status`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Which.
    pub link: Link,
    /// `connecting`, `open`, `lost`, `closing` (WebSocket), `connecting`,
    /// `open`, `closed by peer` (sockets: data still to read).
    pub state: &'static str,
    /// The URI (WebSocket) or `TCP 192.0.2.7:80` (sockets).
    pub peer: String,
}

/// Payload bytes in a [`Log::Frame`].
pub const LOG_PREVIEW: usize = 16;

/// The entries for [`Modem::poll_log`]: bounded, dropping (and counting)
/// the oldest.
#[derive(Default)]
struct LogQueue {
    entries: VecDeque<Log>,
    dropped: u64,
}

impl LogQueue {
    fn push(&mut self, entry: Log) {
        if self.entries.len() >= LOG_BOUND {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(entry);
    }

    fn pop(&mut self) -> Option<Log> {
        if self.dropped > 0 {
            return Some(Log::Dropped(core::mem::take(&mut self.dropped)));
        }
        self.entries.pop_front()
    }
}

/// One ESP-AT modem: its AT port state, settings and three links.
pub struct Modem {
    options: ModemOptions,
    platform: Box<dyn Platform + Send>,
    now: u64,
    /// Host input not taken yet: `host_in[host_in_pos..]`.
    host_in: Vec<u8>,
    host_in_pos: usize,
    /// The current read of the AT port: its length, and when the one
    /// before it came (a lone `+++` needs a silence before it).
    read_len: usize,
    quiet_since: u64,
    last_host_input: u64,
    reader: LineReader,
    /// When a line ended by a lone CR stops waiting for its LF.
    lf_deadline: Option<u64>,
    input: Input,
    /// Bytes for the AT port; `out[written..]` is not written yet.
    out: Vec<u8>,
    written: usize,
    /// Reports waiting for the host to finish a line or a data prompt.
    pub(crate) held: Vec<u8>,
    settings: Settings,
    kept: Kept,
    links: [LinkSlot; LINK_COUNT],
    sockets: socket::Sockets,
    /// Faults waiting for their moment ([`Modem::inject`]).
    armed: fault::Armed,
    actions: VecDeque<NetAction>,
    uart: uart::UartState,
    /// Flow control: the links' sockets are not read (host backlog).
    net_paused: bool,
    log: LogQueue,
}

/// What the AT port is doing with the bytes it receives.
enum Input {
    /// Reading a command line.
    Line,
    /// After a `>` prompt: exactly `remaining` more raw bytes belong to `target`.
    Data {
        remaining: usize,
        buf: Vec<u8>,
        target: DataTarget,
    },
    /// A command is running; see [`Wait`].
    Busy(Wait),
    /// `AT+CIPSEND` in passthrough mode: every byte goes to socket link 0
    /// until a `+++` alone.
    Passthrough(socket::Passthrough),
    /// `AT+CIPSENDL`: host bytes go to a socket link as they come, until
    /// its length is in (or a `+++` alone).
    LongSend(Box<socket::LongSend>),
    /// Reset or deep sleep: input is discarded (the chip is restarting or
    /// asleep) until `ready` goes out at `until`; `None`: `AT+GSLP=0`, asleep
    /// until a hard reset ([`Fault::Reboot`]).
    Restarting { until: Option<u64> },
}

/// Where the bytes typed after a prompt go.
enum DataTarget {
    WsHead,
    WsSend(SendRequest),
    /// `AT+CIPSEND`/`AT+CIPSENDEX` data for a socket link.
    SocketSend(socket::SocketSend),
    /// `AT+SYSMFG` write of entry `key` of `namespace`.
    SysMfg {
        namespace: &'static str,
        key: String,
    },
}

/// A command still running after its line was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// `AT+WSOPEN` until the link is up or has failed. Input gets `busy p...`.
    Open(LinkId),
    /// `AT+WSCLOSE` until the close handshake ends (≤1 s). Input gets `busy p...`.
    Close(LinkId),
    /// `AT+CIPSTART` until socket link `id` is up or has failed (its
    /// deadline is the link's). Input gets `busy p...`.
    SocketOpen(LinkId),
    /// `AT+CIPSERVER=1` until the runtime's listener is up. Input gets `busy p...`.
    Listen,
    /// `AT+CIPDOMAIN` until the addresses come, or `deadline`.
    Resolve {
        /// 1 IPv4 first, 2 IPv4 only, 3 IPv6 only.
        family: u8,
        /// Every address, not just the first.
        all: bool,
        deadline: u64,
    },
    /// `AT+PING` until the runtime's measurement, or `deadline`.
    Ping { deadline: u64 },
    /// `AT+CWJAP` until `deadline`, when it ends as `outcome` says. Input
    /// gets `busy p...`.
    Join {
        outcome: wifi::JoinOutcome,
        deadline: u64,
    },
    /// `AT+WSSEND` or `AT+CIPSEND` until the runtime has written send
    /// number `until` of the link's connection, or `deadline`. Input waits
    /// meanwhile, so a host that pipelines its next command loses nothing.
    Send {
        link: Link,
        until: u64,
        deadline: u64,
    },
}

/// What `AT+RST` keeps: the module's flash and its RTC clock. (`AT+CWAUTOCONN`
/// is in flash too, but lives with the other kept numbers.)
struct Kept {
    /// The AP joined after `ready` while `AT+CWAUTOCONN` is 1, and by
    /// `AT+CWJAP` without parameters: [`WifiOptions::stored`] at start, then
    /// the last join under `AT+SYSSTORE=1`; none after `AT+RESTORE`.
    stored_ap: Option<usize>,
    /// Seconds `AT+SYSTIMESTAMP=` put the clock off the host's, until SNTP
    /// sets it right again.
    clock_offset: i64,
}

/// Settings that `AT+RST` puts back to their defaults.
struct Settings {
    echo: bool,
    syslog: bool,
    /// `AT+SYSSTORE`, `AT+SYSMSG`, ...: see `commands::KEPT_NUMBERS`.
    kept_numbers: [u8; 4],
    cwmode: u8,
    station: wifi::Station,
    /// The join of the stored AP after `ready`: the AP, and when it is
    /// associated.
    boot_join: Option<(usize, u64)>,
    /// The SSID of the last join (`AT+CWSTATE?` after leaving it).
    last_ssid: Vec<u8>,
    cwlap: wifi::ScanOptions,
    /// `AT+CWDHCP` bits: 1 station, 2 softAP, 4 Ethernet.
    dhcp: u8,
    /// Set by `AT+CIPSTAMAC=`; the default otherwise.
    station_mac: Option<Vec<u8>>,
    hostname: Vec<u8>,
    /// `AT+CIPSTA=`: ip, gateway, netmask.
    static_ip: Option<[Vec<u8>; 3]>,
    softap: wifi::SoftAp,
    country: wifi::Country,
    /// `AT+CIPDNS=1,…`; `None` while they come from DHCP.
    dns: Option<Vec<Vec<u8>>>,
    sntp_enabled: bool,
    /// `AT+CIPSNTPCFG` timezone: hours in [-12,14], or ±HHMM.
    timezone: i64,
    sntp_servers: Vec<Vec<u8>>,
    /// `AT+RFPOWER`: Wi-Fi (0.25 dBm), BLE advertising, scanning, connection.
    rf_power: [u8; 4],
    /// `AT+WSHEAD` headers, oldest first.
    headers: Vec<Vec<u8>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            echo: true,
            syslog: false,
            kept_numbers: commands::kept_number_defaults(),
            cwmode: 1,
            station: wifi::Station::default(),
            boot_join: None,
            last_ssid: Vec::new(),
            cwlap: wifi::ScanOptions::default(),
            dhcp: 3,
            station_mac: None,
            hostname: b"espressif".to_vec(),
            static_ip: None,
            softap: wifi::SoftAp::default(),
            country: wifi::Country::default(),
            dns: None,
            sntp_enabled: true,
            timezone: 0,
            sntp_servers: alloc::vec![b"pool.ntp.org".to_vec()],
            // 19.5 dBm (factory_param's max_tx_power) and BLE's default
            // level, +9 dBm [inference].
            rf_power: [78, 11, 11, 11],
            headers: Vec::new(),
        }
    }
}

impl Modem {
    /// A modem fresh from reset; its first output is `\r\nready\r\n` (and
    /// the join of the stored AP, see [`WifiOptions::stored`]).
    pub fn new(options: ModemOptions, platform: Box<dyn Platform + Send>, now: u64) -> Self {
        let stored_ap = options.wifi.stored;
        let mut modem = Modem {
            uart: uart::UartState::new(options.uart),
            options,
            platform,
            now,
            host_in: Vec::new(),
            host_in_pos: 0,
            read_len: 0,
            quiet_since: now,
            last_host_input: now,
            reader: LineReader::default(),
            lf_deadline: None,
            input: Input::Line,
            out: at::READY.to_vec(),
            written: 0,
            held: Vec::new(),
            settings: Settings::default(),
            kept: Kept {
                stored_ap,
                clock_offset: 0,
            },
            links: Default::default(),
            sockets: socket::Sockets::default(),
            armed: fault::Armed::default(),
            actions: VecDeque::new(),
            net_paused: false,
            log: LogQueue::default(),
        };
        modem.boot_join(false);
        modem
    }

    // --- step 1: what happened ---------------------------------------------

    /// Bytes read from the AT port. All of them are taken: what the modem
    /// cannot act on yet waits in its input buffer. Read the port only while
    /// [`Modem::wants_host_input`] is true, and that buffer stays within
    /// [`HOST_INPUT_BOUND`] plus one read.
    pub fn host_input(&mut self, bytes: &[u8], now: u64) {
        self.quiet_since = self.last_host_input;
        self.last_host_input = now;
        self.read_len = bytes.len();
        self.now = now;
        if self.host_in_pos == self.host_in.len() {
            // The usual case: act on the read in place, keep only the rest.
            let used = self.consume(bytes);
            self.host_in.clear();
            self.host_in_pos = 0;
            crate::bytes::append(&mut self.host_in, &bytes[used..]);
        } else {
            crate::bytes::append(&mut self.host_in, bytes);
            self.consume_buffered();
        }
        self.settle();
    }

    /// `n` bytes from the start of [`Modem::host_output`] were written to
    /// the AT port (`n` larger than what it held counts as all of it).
    pub fn advance_host_output(&mut self, n: usize, now: u64) {
        self.now = now;
        let n = n.min(self.host_output().len());
        self.written += n;
        if self.written == self.out.len() {
            self.uart.shift(self.written);
            self.out.clear();
            self.written = 0;
        } else if self.written >= COMPACT_AFTER {
            // The unwritten rest is about HOST_OUTPUT_BOUND at most: the
            // copy is cheap next to the writes that freed this much.
            self.uart.shift(self.written);
            self.out.drain(..self.written);
            self.written = 0;
        }
        self.consume_buffered();
        self.settle();
    }

    /// An event on `link`'s current connection.
    pub fn net_event(&mut self, link: Link, event: NetEvent<'_>, now: u64) {
        self.now = now;
        match link {
            Link::Ws(id) if usize::from(id) < LINK_COUNT => self.link_event(id, event),
            Link::Socket(id) if usize::from(id) < SOCKET_COUNT => self.socket_event(id, event),
            _ => {}
        }
        self.consume_buffered();
        self.settle();
    }

    /// The answer to a [`NetAction::Resolve`], [`NetAction::Ping`] or
    /// [`NetAction::Listen`]. An answer nobody waits for any more (the
    /// command timed out, the modem was reset) is ignored.
    pub fn net_answer(&mut self, answer: NetAnswer<'_>, now: u64) {
        self.now = now;
        match answer {
            NetAnswer::Resolved(addrs) => self.resolved(addrs),
            NetAnswer::Pinged(rtt) => self.pinged(rtt),
            NetAnswer::Listening(up) => self.listening(up),
        }
        self.consume_buffered();
        self.settle();
    }

    /// A connection came in on the listener of [`NetAction::Listen`]: the
    /// link it becomes (carry it as that link's connection, already
    /// connected), or `None` to drop it (no server, or it is full).
    pub fn accept(&mut self, local: SocketAddr, remote: SocketAddr, now: u64) -> Option<Link> {
        self.now = now;
        let link = self.accept_socket(local, remote);
        self.consume_buffered();
        self.settle();
        link
    }

    /// The host arrives after the boot (a new `--tcp` client: a module that
    /// was running before the host opened its port): the boot's `ready` and
    /// join reports went to nobody and are dropped, as a UART keeps nothing
    /// for a host that is not listening (esp-at-tcpip.md §1.5). Call it right
    /// after [`Modem::new`], before any input.
    pub fn boot_unseen(&mut self) {
        self.out.clear();
        self.written = 0;
    }

    /// A host opened the AT port (a pty's slave, for hosts that wait for
    /// `ready` after opening): `\r\nready\r\n`, as an unsolicited report,
    /// so it never lands inside a half-typed line. Nothing else changes.
    pub fn host_opened(&mut self, now: u64) {
        self.now = now;
        if !self.restarting() {
            self.report(at::READY);
        }
        self.settle();
    }

    /// Call when `now` has reached the deadline from [`Modem::poll_timeout`].
    /// Calling it early or late is harmless.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        self.boot_join_due();
        if self.lf_deadline.is_some_and(|d| now >= d) {
            self.lf_deadline = None;
            if let Some(line) = self.reader.flush() {
                self.end_of_line(line);
            }
        }
        match self.input {
            Input::Busy(Wait::Send {
                link: Link::Socket(_),
                deadline,
                ..
            }) if now >= deadline => self.socket_send_timed_out(),
            Input::Busy(Wait::Send { deadline, .. }) if now >= deadline => self.send_timed_out(),
            Input::Busy(Wait::Resolve { deadline, .. }) if now >= deadline => {
                self.finish_wait(Err(AtError::exec()))
            }
            Input::Busy(Wait::Ping { deadline }) if now >= deadline => self.pinged(None),
            Input::Restarting { until: Some(until) } if now >= until => {
                self.input = Input::Line;
                self.out.extend_from_slice(at::READY);
                self.boot_join(true);
            }
            Input::Busy(Wait::Join { outcome, deadline }) if now >= deadline => {
                self.join_done(outcome)
            }
            _ => {}
        }
        for link in 0..LINK_COUNT as LinkId {
            self.link_timeout(link);
        }
        self.socket_timeouts();
        self.consume_buffered();
        self.settle();
    }

    // --- step 2: what the modem wants ----------------------------------------

    /// The bytes waiting for the AT port, oldest first; write from here and
    /// report with [`Modem::advance_host_output`]. Output after a pending
    /// line-settings change is not in it until [`Modem::poll_uart_change`]
    /// has returned the change.
    ///
    /// May change after any call of step 1.
    pub fn host_output(&self) -> &[u8] {
        let end = self.uart.limit(self.out.len());
        &self.out[self.written..end]
    }

    /// Whether to read the AT port now: false while the host output is past
    /// [`HOST_OUTPUT_BOUND`] (a host that writes but never reads must not
    /// grow it) or the input buffer is at [`HOST_INPUT_BOUND`].
    ///
    /// May change after any call of step 1.
    pub fn wants_host_input(&self) -> bool {
        let passthrough_full =
            matches!(self.input, Input::Passthrough(_)) && !self.passthrough_wants_input();
        let long_send_full = matches!(&self.input, Input::LongSend(l) if l.link_full());
        self.out_backlog() <= HOST_OUTPUT_BOUND
            && self.host_in.len() - self.host_in_pos < HOST_INPUT_BOUND
            && !passthrough_full
            && !long_send_full
    }

    /// How many bytes to read from `link`'s socket now, at most (a read
    /// may take less; a datagram counts whole). 0 while the host output,
    /// with the reports held back for it, is past [`HOST_OUTPUT_BOUND`], so
    /// TCP pushes back on the server, and for a socket link in passive
    /// mode once its buffer is full. Bytes read anyway are kept. While
    /// reads are paused a WebSocket link's pong timeout does not run.
    ///
    /// May change after any call of step 1.
    pub fn net_input_room(&self, link: Link) -> usize {
        match link {
            Link::Ws(_) if self.net_paused => 0,
            Link::Ws(_) => usize::MAX,
            Link::Socket(id) => self.socket_input_room(id),
        }
    }

    /// The next thing to do on the network.
    ///
    /// May change after any call of step 1.
    pub fn poll_net_action(&mut self) -> Option<NetAction> {
        self.actions.pop_front()
    }

    /// The earliest deadline (ms, same clock as `now`), if any.
    ///
    /// May change after any call of step 1.
    pub fn poll_timeout(&self) -> Option<u64> {
        let send = match self.input {
            Input::Busy(
                Wait::Send { deadline, .. }
                | Wait::Join { deadline, .. }
                | Wait::Resolve { deadline, .. }
                | Wait::Ping { deadline },
            ) => Some(deadline),
            Input::Restarting { until } => until,
            _ => None,
        };
        self.link_deadlines()
            .chain(self.socket_deadlines())
            .chain(send)
            .chain(self.lf_deadline)
            .chain(self.settings.boot_join.map(|(_, at)| at))
            .min()
    }

    /// What the modem did and why (frames, handshake failures, protocol
    /// errors), oldest first, for logs and traces. Entries past
    /// the last [`LOG_BOUND`] are dropped; [`Log::Dropped`] says how many.
    ///
    /// May change after any call of step 1.
    pub fn poll_log(&mut self) -> Option<Log> {
        self.log.pop()
    }

    /// Whether a reset is under way (input is lost until `ready`).
    pub fn restarting(&self) -> bool {
        matches!(self.input, Input::Restarting { .. })
    }

    /// The links that exist now, for a control API (inspection only).
    ///
    /// May change after any call of step 1.
    pub fn link_status(&self) -> Vec<LinkStatus> {
        let mut links = Vec::new();
        for id in 0..LINK_COUNT as LinkId {
            if let Some((code, uri)) = self.link_summary(id) {
                let state = ["closed", "connecting", "open", "lost", "closing"][usize::from(code)];
                links.push(LinkStatus {
                    link: Link::Ws(id),
                    state,
                    peer: String::from_utf8_lossy(&uri).into_owned(),
                });
            }
        }
        links.extend(self.socket_status_list());
        links
    }

    /// The SSID of the AP the station is associated with, if it is.
    ///
    /// May change after any call of step 1.
    pub fn station_ssid(&self) -> Option<&[u8]> {
        match self.settings.station {
            wifi::Station::Associated(ap) => Some(&self.options.wifi.access_points[ap].ssid),
            _ => None,
        }
    }

    /// Host input taken but not acted on yet (for tests and metrics; the
    /// runtime needs nothing but [`Modem::wants_host_input`]).
    pub fn buffered_host_input(&self) -> usize {
        self.host_in.len() - self.host_in_pos
    }

    // --- the AT port -----------------------------------------------------

    fn log(&mut self, entry: Log) {
        self.log.push(entry);
    }

    /// Output not yet written, held reports not counted.
    fn out_backlog(&self) -> usize {
        self.out.len() - self.written
    }

    /// Acts on buffered host input, as far as the modem can now.
    fn consume_buffered(&mut self) {
        if self.host_in_pos == self.host_in.len() {
            return;
        }
        let buf = core::mem::take(&mut self.host_in);
        let used = self.consume(&buf[self.host_in_pos..]);
        self.host_in = buf;
        self.host_in_pos += used;
        if self.host_in_pos == self.host_in.len() {
            self.host_in.clear();
            self.host_in_pos = 0;
        } else if self.host_in_pos >= HOST_INPUT_BOUND {
            self.host_in.drain(..self.host_in_pos);
            self.host_in_pos = 0;
        }
    }

    /// Acts on `bytes` until they run out, a command waits for the network,
    /// or the host output is past its bound; returns how many were taken.
    fn consume(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() && self.out_backlog() <= HOST_OUTPUT_BOUND {
            let rest = &bytes[used..];
            used += match self.input {
                Input::Line => self.line_input(rest),
                Input::Data { .. } => self.data_input(rest),
                Input::Busy(Wait::Send { .. }) => match find(rest, FORCE_RESTART) {
                    // The input waits for the send, but a reset cuts in.
                    Some(at) => {
                        self.force_restart();
                        at + FORCE_RESTART.len()
                    }
                    None => break,
                },
                Input::Busy(_) => self.busy_input(rest),
                Input::Passthrough(_) => self.passthrough_input(rest),
                // Its length is in (the rest waits for it to end), or the
                // link has enough unwritten sends.
                Input::LongSend(ref l) if !l.takes_input() => break,
                Input::LongSend(_) => self.long_send_input(rest),
                Input::Restarting { .. } => rest.len(),
            };
        }
        used
    }

    /// After every call of step 1: held reports go out when they may, and
    /// the links' reads pause or resume.
    fn settle(&mut self) {
        self.release_held();
        let paused = self.out_backlog() + self.held.len() > HOST_OUTPUT_BOUND;
        if paused != self.net_paused {
            self.net_paused = paused;
            if !paused {
                self.restart_pong_deadlines();
            }
        }
    }

    /// Command-line bytes: echo, collect, and run the line at its end.
    fn line_input(&mut self, bytes: &[u8]) -> usize {
        let echoed_from = self.out.len();
        let echo = self.settings.echo.then_some(&mut self.out);
        let read = self.reader.read(bytes, echo);
        self.report_in_echo(echoed_from);
        if self.reader.pending() {
            let byte_ms = self.uart.current.byte_time_ns().div_ceil(1_000_000);
            self.lf_deadline = Some(self.now.saturating_add(LF_WAIT_MS + 2 * byte_ms));
        } else {
            self.lf_deadline = None;
        }
        if let Some(line) = read.line {
            self.end_of_line(line);
        }
        read.used
    }

    fn end_of_line(&mut self, line: Line) {
        match line {
            Line::TooLong => self.error(AtError::new(ErrorKind::ParamLength, 0)),
            Line::Text(line) if !line.is_empty() => self.run_line(&line),
            Line::Text(_) => {}
        }
    }

    /// Raw bytes after a prompt: never echoed, never unescaped.
    fn data_input(&mut self, bytes: &[u8]) -> usize {
        let Input::Data {
            remaining,
            buf,
            target,
        } = &mut self.input
        else {
            return 0;
        };
        // The LF of the command's CR LF, come late: not data.
        if self.reader.take_after_cr() && buf.is_empty() && bytes.first() == Some(&b'\n') {
            return 1;
        }
        if let DataTarget::SocketSend(send) = target {
            // A lone `+++` after a silence cancels the send (§3.4), as
            // ESP-AT's receive task compares whole packets with it.
            let quiet = self.now.saturating_sub(self.quiet_since) >= ESCAPE_GUARD_MS;
            if buf.is_empty() && bytes == b"+++" && self.read_len == 3 && *remaining > 3 && quiet {
                self.input = Input::Line;
                self.out.extend_from_slice(b"\r\nSEND Canceled\r\n");
                return bytes.len();
            }
            if send.escaped() {
                // `AT+CIPSENDEX`: unescaped byte by byte, `\0` may end it.
                let (used, done) = send.take_escaped(bytes, remaining, buf);
                if done {
                    if let Input::Data { buf, target, .. } =
                        core::mem::replace(&mut self.input, Input::Line)
                    {
                        self.prompt_data(target, &buf);
                    }
                }
                return used;
            }
        }
        let take = bytes.len().min(*remaining);
        if buf.is_empty() && take == *remaining {
            // All of it came in this read (the usual case): no copy.
            if let Input::Data { target, .. } = core::mem::replace(&mut self.input, Input::Line) {
                self.prompt_data(target, &bytes[..take]);
            }
            return take;
        }
        buf.reserve_exact(*remaining);
        buf.extend_from_slice(&bytes[..take]);
        *remaining -= take;
        if *remaining == 0 {
            if let Input::Data { buf, target, .. } =
                core::mem::replace(&mut self.input, Input::Line)
            {
                self.prompt_data(target, &buf);
            }
        }
        take
    }

    /// The data of a prompt is complete.
    fn prompt_data(&mut self, target: DataTarget, data: &[u8]) {
        match target {
            DataTarget::WsHead => self.wshead_data(data.to_vec()),
            DataTarget::WsSend(request) => self.wssend_data(request, data),
            DataTarget::SocketSend(send) => self.socket_send_data(send, data),
            DataTarget::SysMfg { namespace, key } => self.sysmfg_data(namespace, &key, data),
        }
    }

    /// Input while `AT+WSOPEN`/`AT+WSCLOSE` run: discarded, one `busy p...`
    /// per line the host tried to send.
    fn busy_input(&mut self, bytes: &[u8]) -> usize {
        let read = self.reader.read(bytes, None);
        match read.line {
            Some(Line::Text(line)) if line == b"AT+RST" => self.force_restart(),
            Some(_) => self.out.extend_from_slice(at::BUSY),
            None => {}
        }
        read.used
    }

    // --- output ----------------------------------------------------------

    fn ok(&mut self) {
        self.out.extend_from_slice(at::OK);
        self.after_ok();
    }

    fn error(&mut self, err: AtError) {
        at::write_error(&mut self.out, err, self.settings.syslog);
    }

    /// A command that was running has its answer; the port reads lines again.
    fn finish_wait(&mut self, result: Result<&[u8], AtError>) {
        self.input = Input::Line;
        match result {
            Ok(code) if code == at::OK => self.ok(),
            Ok(code) => self.out.extend_from_slice(code),
            Err(err) => self.error(err),
        }
        // Reports held for the send go before whatever input waited.
        self.release_held();
    }

    /// Whether an unsolicited report would now land inside something the
    /// host is in the middle of: an echoed half line, a data prompt, or a
    /// send waiting for its `SEND OK`. The one place this rule lives.
    fn holding_reports(&self) -> bool {
        match self.input {
            Input::Line => self.settings.echo && self.reader.in_line(),
            Input::Data { .. }
            | Input::Busy(Wait::Send { .. })
            | Input::Passthrough(_)
            | Input::LongSend(_) => true,
            Input::Busy(_) | Input::Restarting { .. } => false,
        }
    }

    /// An unsolicited report (`+WS_...`), now or once the host is done.
    fn report(&mut self, bytes: &[u8]) {
        self.report_with(|out| out.extend_from_slice(bytes));
    }

    /// Like [`Modem::report`], writing straight into the right buffer.
    fn report_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.release_held();
        if self.holding_reports() {
            write(&mut self.held);
        } else {
            write(&mut self.out);
        }
    }

    fn release_held(&mut self) {
        if !self.held.is_empty() && !self.holding_reports() {
            self.out.append(&mut self.held);
        }
    }
}
