//! The modem: the command table and the state machine of the three links.
//!
//! # Driving a `Modem`
//!
//! The runtime owns the AT port, the sockets and one timer, and loops:
//!
//! 1. Feed what happened: [`Modem::host_input`] (bytes from the AT port),
//!    [`Modem::net_event`] (a link's connection did something) or
//!    [`Modem::handle_timeout`] (the deadline from [`Modem::poll_timeout`]
//!    passed).
//! 2. Drain what the modem wants, after *every* call of step 1:
//!    [`Modem::poll_host_output`] (bytes for the AT port),
//!    [`Modem::poll_net_action`] until it returns `None`, and
//!    [`Modem::poll_timeout`] to re-arm the timer. Input that `host_input`
//!    did not consume must be offered again after the next step-1 call.
//!
//! Nothing else changes the modem's answers, so a runtime that follows these
//! two steps never misses an action or a deadline.

use alloc::string::String;
use alloc::vec::Vec;

/// ESP-AT's three WebSocket links, ids 0..=2.
pub const LINK_COUNT: usize = 3;

/// A link id in `0..LINK_COUNT`.
pub type LinkId = u8;

/// What the core needs from its surroundings besides bytes and time.
pub trait Platform {
    /// Fill `buf` with unpredictable bytes (masking keys, `Sec-WebSocket-Key`).
    fn fill_random(&mut self, buf: &mut [u8]);
    /// Seconds since the Unix epoch, UTC, if the wall clock is known.
    fn unix_time(&self) -> Option<i64>;
}

/// Settings the runtime chooses once, when it makes the modem.
#[derive(Clone, Debug)]
pub struct ModemOptions {
    /// Goes into `AT+GMR` (`compile time(<commit>)`); a short git hash.
    pub commit: String,
    /// Goes into `AT+GMR`; ESP-AT's `__DATE__ __TIME__` form, `Nov 23 2026 19:28:00`.
    pub build_time: String,
}

impl Default for ModemOptions {
    fn default() -> Self {
        ModemOptions {
            commit: String::from("0000000"),
            build_time: String::from("Jan  1 1970 00:00:00"),
        }
    }
}

/// TLS material and policy for a `wss://` link, from `AT+WSCFG`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `AT+WSCFG` auth_mode 0..=3.
    pub auth_mode: u8,
    /// PEM client certificate (modes 1 and 3).
    pub client_cert: Option<Vec<u8>>,
    /// PEM private key (modes 1 and 3).
    pub client_key: Option<Vec<u8>>,
    /// PEM CA certificate(s) to verify the server against (modes 2 and 3).
    pub ca: Option<Vec<u8>>,
}

/// Something that happened on a link's connection, reported by the runtime.
#[derive(Debug, PartialEq, Eq)]
pub enum NetEvent<'a> {
    /// The transport asked for by [`NetAction::Connect`] is up (TCP, and TLS
    /// for `wss://`). The WebSocket handshake is the core's job.
    Connected,
    /// Bytes read from the connection, in order.
    Received(&'a [u8]),
    /// One [`NetAction::Send`] has been written to the socket in full.
    /// Reported once per `Send`, in the order the sends were asked for.
    Sent,
    /// The peer closed the connection (EOF) or it broke; nothing more comes.
    Closed,
    /// Connecting failed (DNS, refused, TLS, ...). The text is for the log.
    Failed(String),
}

/// Something the modem asks the runtime to do.
#[derive(Debug, PartialEq, Eq)]
pub enum NetAction {
    /// Open a transport to `host:port` for `link`, replacing any it had.
    /// Answer with [`NetEvent::Connected`] or [`NetEvent::Failed`].
    Connect {
        link: LinkId,
        host: String,
        port: u16,
        /// `Some` for `wss://`: wrap the TCP stream in TLS with these settings.
        tls: Option<TlsParams>,
    },
    /// Write these bytes to the link's connection, after earlier sends.
    /// Answer with [`NetEvent::Sent`] once they are written.
    Send { link: LinkId, bytes: Vec<u8> },
    /// Drop the link's connection (after writing the sends queued before
    /// this). No event is reported for it afterwards; a later `Connect` for
    /// the same link is a new connection.
    Close { link: LinkId },
}

/// One ESP-AT modem: its AT port state, settings and three links.
pub struct Modem {
    _private: (),
}

impl Modem {
    /// A modem fresh from reset; its first output is `\r\nready\r\n`.
    pub fn new(
        _options: ModemOptions,
        _platform: alloc::boxed::Box<dyn Platform + Send>,
        _now: u64,
    ) -> Self {
        todo!("modem")
    }

    /// Bytes from the AT port. Returns how many were consumed; the rest must
    /// be offered again after the next event (the modem is waiting on the
    /// network, e.g. for a `SEND OK`).
    pub fn host_input(&mut self, _bytes: &[u8], _now: u64) -> usize {
        todo!("modem")
    }

    /// An event on `link`'s current connection.
    pub fn net_event(&mut self, _link: LinkId, _event: NetEvent<'_>, _now: u64) {
        todo!("modem")
    }

    /// Call when `now` has reached the deadline from [`Modem::poll_timeout`].
    pub fn handle_timeout(&mut self, _now: u64) {
        todo!("modem")
    }

    /// Appends the bytes waiting for the AT port to `out`.
    pub fn poll_host_output(&mut self, _out: &mut Vec<u8>) {
        todo!("modem")
    }

    /// The next thing to do on the network.
    pub fn poll_net_action(&mut self) -> Option<NetAction> {
        todo!("modem")
    }

    /// The earliest deadline (ms, same clock as `now`), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        todo!("modem")
    }

    /// Bytes of reports held back (during a data prompt or a half-typed echoed
    /// line) that `poll_host_output` has not returned yet. Count them with
    /// the runtime's own unwritten host output when deciding to stop reading
    /// the links' sockets.
    pub fn held_output_len(&self) -> usize {
        todo!("modem")
    }
}
