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
//!    Once the host output got so far is written, [`Modem::poll_uart_change`]
//!    (apply the change, then poll the host output again).
//!
//! Nothing else changes the modem's answers, so a runtime that follows these
//! two steps never misses an action or a deadline.

mod commands;
mod link;
mod sysmfg;
#[cfg(test)]
mod tests;
mod uart;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::at::{self, AtError, ErrorKind};
use link::{LinkSlot, SendRequest};
pub use uart::UartConfig;

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
}

impl Default for ModemOptions {
    fn default() -> Self {
        ModemOptions {
            commit: String::from("0000000"),
            build_time: String::from("Jan  1 1970 00:00:00"),
            uart: UartConfig::DEFAULT,
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
    options: ModemOptions,
    platform: Box<dyn Platform + Send>,
    now: u64,
    input: Input,
    /// The command line being typed, without its terminator.
    line: Vec<u8>,
    /// The line went past [`at::MAX_LINE`]; it ends in `ERROR`.
    line_overflow: bool,
    /// The last byte ended a line with CR: an LF right after it is part of
    /// the same terminator.
    after_cr: bool,
    /// Bytes for the AT port, in order.
    out: Vec<u8>,
    /// Reports waiting for the host to finish a line or a data prompt.
    held: Vec<u8>,
    settings: Settings,
    links: [LinkSlot; LINK_COUNT],
    actions: VecDeque<NetAction>,
    uart: uart::UartState,
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
}

/// Where the bytes typed after a prompt go.
enum DataTarget {
    WsHead,
    WsSend(SendRequest),
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
    /// `AT+WSSEND` until the runtime has written send number `until` of the
    /// link's connection, or `deadline`. Input is not consumed meanwhile, so
    /// a host that pipelines its next command loses nothing.
    Send {
        link: LinkId,
        until: u64,
        deadline: u64,
    },
}

/// Settings that `AT+RST` puts back to their defaults.
struct Settings {
    echo: bool,
    syslog: bool,
    /// `AT+SYSSTORE`, `AT+SYSMSG`, ...: see `commands::KEPT_NUMBERS`.
    kept_numbers: [u8; 5],
    cwmode: u8,
    ssid: Vec<u8>,
    sntp_enabled: bool,
    /// `AT+CIPSNTPCFG` timezone: hours in [-12,14], or ±HHMM.
    timezone: i64,
    sntp_servers: Vec<Vec<u8>>,
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
            ssid: b"wsat".to_vec(),
            sntp_enabled: true,
            timezone: 0,
            sntp_servers: alloc::vec![b"pool.ntp.org".to_vec()],
            headers: Vec::new(),
        }
    }
}

impl Modem {
    /// A modem fresh from reset; its first output is `\r\nready\r\n`.
    pub fn new(options: ModemOptions, platform: Box<dyn Platform + Send>, now: u64) -> Self {
        Modem {
            uart: uart::UartState::new(options.uart),
            options,
            platform,
            now,
            input: Input::Line,
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            out: at::READY.to_vec(),
            held: Vec::new(),
            settings: Settings::default(),
            links: Default::default(),
            actions: VecDeque::new(),
        }
    }

    /// Bytes from the AT port. Returns how many were consumed; the rest must
    /// be offered again after the next event (the modem is waiting for the
    /// network to take an `AT+WSSEND`'s data).
    pub fn host_input(&mut self, bytes: &[u8], now: u64) -> usize {
        self.now = now;
        let mut consumed = 0;
        while consumed < bytes.len() {
            let rest = &bytes[consumed..];
            consumed += match self.input {
                Input::Line => self.line_input(rest),
                Input::Data { .. } => self.data_input(rest),
                Input::Busy(Wait::Send { .. }) => break,
                Input::Busy(_) => self.busy_input(rest),
            };
        }
        self.release_held();
        consumed
    }

    /// An event on `link`'s current connection.
    pub fn net_event(&mut self, link: LinkId, event: NetEvent<'_>, now: u64) {
        self.now = now;
        if usize::from(link) < LINK_COUNT {
            self.link_event(link, event);
        }
        self.release_held();
    }

    /// Call when `now` has reached the deadline from [`Modem::poll_timeout`].
    /// Calling it early or late is harmless.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        if let Input::Busy(Wait::Send { deadline, .. }) = self.input {
            if now >= deadline {
                self.send_timed_out();
            }
        }
        for link in 0..LINK_COUNT as LinkId {
            self.link_timeout(link);
        }
        self.release_held();
    }

    /// Appends the bytes waiting for the AT port to `out`.
    pub fn poll_host_output(&mut self, out: &mut Vec<u8>) {
        if self.uart.blocked() {
            // Only up to the next line-speed change; see `poll_uart_change`.
            let n = self.uart.releasable(self.out.len());
            out.extend(self.out.drain(..n));
            self.uart.released(n);
        } else if out.is_empty() {
            core::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
    }

    /// The next thing to do on the network.
    pub fn poll_net_action(&mut self) -> Option<NetAction> {
        self.actions.pop_front()
    }

    /// The earliest deadline (ms, same clock as `now`), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let send = match self.input {
            Input::Busy(Wait::Send { deadline, .. }) => Some(deadline),
            _ => None,
        };
        self.links
            .iter()
            .filter_map(LinkSlot::deadline)
            .chain(send)
            .min()
    }

    /// Bytes of reports held back (during a data prompt or a half-typed echoed
    /// line, or after a pending [`Modem::poll_uart_change`]) that
    /// `poll_host_output` has not returned yet. Count them with
    /// the runtime's own unwritten host output when deciding to stop reading
    /// the links' sockets.
    pub fn held_output_len(&self) -> usize {
        let withheld = if self.uart.blocked() {
            self.out.len()
        } else {
            0
        };
        self.held.len() + withheld
    }

    // --- the line discipline -------------------------------------------

    /// Command-line bytes: echo, collect, and run the line at its end.
    fn line_input(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        for &b in bytes {
            used += 1;
            let after_cr = core::mem::replace(&mut self.after_cr, false);
            if b == b'\n' && after_cr {
                // The LF of a CR LF whose CR already ran the line. Its echo
                // went out with the CR when both came together.
                continue;
            }
            if self.settings.echo {
                self.out.push(b);
            }
            match b {
                b'\r' | b'\n' => {
                    if b == b'\r' {
                        // Take the LF of a CR LF with it, so that it never
                        // lands in a prompt's data or waits behind a send.
                        if bytes.get(used) == Some(&b'\n') {
                            used += 1;
                            if self.settings.echo {
                                self.out.push(b'\n');
                            }
                        } else {
                            self.after_cr = true;
                        }
                    }
                    self.end_of_line();
                    return used;
                }
                _ if self.line.len() < at::MAX_LINE => self.line.push(b),
                _ => self.line_overflow = true,
            }
        }
        used
    }

    fn end_of_line(&mut self) {
        let line = core::mem::take(&mut self.line);
        if core::mem::take(&mut self.line_overflow) {
            self.error(AtError::new(ErrorKind::ParamLength, 0));
        } else if !line.is_empty() {
            self.run_line(&line);
        }
    }

    /// Raw bytes after a prompt: never echoed, never unescaped.
    fn data_input(&mut self, bytes: &[u8]) -> usize {
        let Input::Data { remaining, buf, .. } = &mut self.input else {
            return 0;
        };
        // The LF of the command's CR LF, come late: not data.
        if core::mem::take(&mut self.after_cr) && buf.is_empty() && bytes.first() == Some(&b'\n') {
            return 1;
        }
        let take = bytes.len().min(*remaining);
        buf.extend_from_slice(&bytes[..take]);
        *remaining -= take;
        if *remaining == 0 {
            if let Input::Data { buf, target, .. } =
                core::mem::replace(&mut self.input, Input::Line)
            {
                match target {
                    DataTarget::WsHead => self.wshead_data(buf),
                    DataTarget::WsSend(request) => self.wssend_data(request, buf),
                    DataTarget::SysMfg { namespace, key } => {
                        self.sysmfg_data(namespace, &key, &buf)
                    }
                }
            }
        }
        take
    }

    /// Input while `AT+WSOPEN`/`AT+WSCLOSE` run: discarded, one `busy p...`
    /// per line the host tried to send.
    fn busy_input(&mut self, bytes: &[u8]) -> usize {
        for &b in bytes {
            let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
            if b == b'\r' || (b == b'\n' && !after_cr) {
                self.out.extend_from_slice(at::BUSY);
            }
        }
        bytes.len()
    }

    // --- output ----------------------------------------------------------

    fn ok(&mut self) {
        self.out.extend_from_slice(at::OK);
    }

    fn error(&mut self, err: AtError) {
        at::write_error(&mut self.out, err, self.settings.syslog);
    }

    /// A command that was running has its answer; the port reads lines again.
    fn finish_wait(&mut self, result: Result<&[u8], AtError>) {
        self.input = Input::Line;
        match result {
            Ok(code) => self.out.extend_from_slice(code),
            Err(err) => self.error(err),
        }
    }

    /// Whether an unsolicited report would now land inside something the
    /// host is in the middle of: an echoed half line, a data prompt, or a
    /// send waiting for its `SEND OK`.
    fn holding_reports(&self) -> bool {
        match self.input {
            Input::Line => self.settings.echo && !self.line.is_empty(),
            Input::Data { .. } | Input::Busy(Wait::Send { .. }) => true,
            Input::Busy(_) => false,
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
