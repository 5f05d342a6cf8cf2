//! The socket links of ESP-AT's TCP/IP commands (`esp-at-tcpip.md` §3):
//! `AT+CIPSTART` clients over TCP, UDP and SSL, connections accepted by
//! `AT+CIPSERVER`, and what the host sees of them (`CONNECT`, `+IPD`,
//! `CLOSED`, passive receive). The runtime moves the bytes; everything the
//! host sees is decided here.
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::commands::{Form, KeptNumber, Reply};
use super::{DataTarget, Input, Link, LinkId, Modem, NetAction, NetEvent, Transport, Wait};
use crate::at::{self, Args, AtError, ErrorKind};
use crate::modem::SOCKET_COUNT;

/// Longest `AT+CIPSEND`/`AT+CIPSENDEX` data (esp-at 2.x+).
const MAX_SEND: i64 = 8192;
/// Largest `+IPD` report; a larger read becomes several (§3.8).
const IPD_CHUNK: usize = 2920;
/// What passive mode buffers per link (the socket's receive window); TCP
/// is not read beyond it, UDP datagrams that do not fit are dropped.
pub(super) const PASSIVE_BUFFER: usize = 5760;
/// A connect without `<timeout>` gives up after this long (§3.3: wsat caps
/// what lwIP would wait, as rt-esp-at-nal waits only 5 s).
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// `AT+CIPSEND`'s data must be taken by the socket within this long, or
/// the send ends with `SEND FAIL` [inference: SO_SNDTIMEO unset].
const SEND_TIMEOUT_MS: u64 = 10_000;
/// How long `AT+CIPDOMAIN` and `AT+PING` wait for the runtime's answer.
pub(super) const LOOKUP_TIMEOUT_MS: u64 = 10_000;
/// Longest remote host of `AT+CIPSTART`.
const MAX_HOST: usize = 64;
/// Longest name for `AT+CIPDOMAIN` and `AT+PING` (a DNS name's limit).
const MAX_NAME: usize = 253;
/// Passthrough: data is sent once this much is buffered …
const PASSTHROUGH_PACKET: usize = 2920;
/// … or this long after the last byte; `+++` needs this much silence
/// around it (`AT+TRANSINTVL`'s default).
const PASSTHROUGH_INTERVAL_MS: u64 = 20;
/// Passthrough stops reading the host while this many sends are unwritten.
const PASSTHROUGH_MAX_SENDS: u64 = 8;
/// The `+++` that leaves passthrough mode.
const ESCAPE: &[u8] = b"+++";
/// Longest `AT+CIPSENDL` data (2^31 − 1).
const MAX_LONG_SEND: i64 = i32::MAX as i64;
/// `AT+CIPSENDLCFG`'s `<report size>`: default and range.
const LONG_SEND_REPORT: u32 = 1024;
const LONG_SEND_REPORTS: core::ops::RangeInclusive<i64> = 100..=1 << 20;
/// `AT+CIPSENDLCFG`'s `<transmit size>`: default and range.
const LONG_SEND_TRANSMIT: u16 = 2920;
const LONG_SEND_TRANSMITS: core::ops::RangeInclusive<i64> = 100..=2920;

/// `"TCP"`, `"UDP"` or `"SSL"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Tcp,
    Udp,
    Ssl,
}

impl Kind {
    fn parse(text: &[u8]) -> Option<(Kind, bool)> {
        let upper: Vec<u8> = text.to_ascii_uppercase();
        Some(match &upper[..] {
            b"TCP" => (Kind::Tcp, false),
            b"UDP" => (Kind::Udp, false),
            b"SSL" => (Kind::Ssl, false),
            b"TCPV6" => (Kind::Tcp, true),
            b"UDPV6" => (Kind::Udp, true),
            b"SSLV6" => (Kind::Ssl, true),
            _ => return None,
        })
    }

    fn name(self, v6: bool) -> &'static str {
        match (self, v6) {
            (Kind::Tcp, false) => "TCP",
            (Kind::Udp, false) => "UDP",
            (Kind::Ssl, false) => "SSL",
            (Kind::Tcp, true) => "TCPv6",
            (Kind::Udp, true) => "UDPv6",
            (Kind::Ssl, true) => "SSLv6",
        }
    }
}

/// One socket link.
pub(super) struct Socket {
    kind: Kind,
    v6: bool,
    /// Accepted by our server (`<tetype>` 1) rather than opened by us.
    server_side: bool,
    /// Connecting until this deadline; `None` once up.
    connecting: Option<u64>,
    local: SocketAddr,
    remote: SocketAddr,
    /// UDP: 0 the peer is fixed, 1 it changes once to another sender, 2 it
    /// follows every sender. `peer` is where sends go (`None`: nowhere).
    udp_mode: u8,
    peer: Option<SocketAddr>,
    sends_queued: u64,
    sends_done: u64,
    /// Passive mode: what waits for `AT+CIPRECVDATA`, and its size.
    buffer: VecDeque<Chunk>,
    buffered: usize,
    /// A passive `+IPD` went out and no `AT+CIPRECVDATA` has followed.
    notified: bool,
    /// The peer closed while data was buffered: `CLOSED` waits for it.
    peer_closed: bool,
    /// For `AT+CIPSTO` (server links): the last time data moved.
    last_activity: u64,
    /// How `AT+CIPSTART` reached the peer, for passthrough's reconnects.
    origin: Option<Origin>,
}

/// What `AT+CIPSTART` asked the runtime for.
#[derive(Clone, Debug)]
struct Origin {
    host: String,
    port: u16,
    transport: Transport,
    keep_alive_s: u16,
    kind: Kind,
    v6: bool,
    udp_mode: u8,
}

struct Chunk {
    from: SocketAddr,
    data: Vec<u8>,
}

/// Per-link settings that outlive connections (`AT+CIPRECVTYPE`,
/// `AT+CIPSSLC*`); `AT+RST` puts them back.
#[derive(Clone, Debug, Default)]
pub(super) struct SocketConfig {
    passive: bool,
    /// `<data_len_report_mode>`: 0 total buffered, 1 next datagram.
    report_mode: u8,
    ssl_auth: u8,
    ssl_pki: u8,
    ssl_ca: u8,
    /// Boxed, and made only when set: most links never have any.
    names: Option<Box<SslNames>>,
}

/// `AT+CIPSSLCCN`, `AT+CIPSSLCSNI`, `AT+CIPSSLCALPN`, `AT+CIPSSLCPSK`.
#[derive(Clone, Debug, Default)]
struct SslNames {
    common_name: Option<Vec<u8>>,
    sni: Option<Vec<u8>>,
    alpn: Vec<Vec<u8>>,
    psk: Option<(Vec<u8>, Vec<u8>)>,
}

static NO_NAMES: SslNames = SslNames {
    common_name: None,
    sni: None,
    alpn: Vec::new(),
    psk: None,
};

impl SocketConfig {
    fn names(&self) -> &SslNames {
        self.names.as_deref().unwrap_or(&NO_NAMES)
    }

    fn names_mut(&mut self) -> &mut SslNames {
        self.names.get_or_insert_with(Default::default)
    }
}

/// `AT+CIPSERVER` while it runs.
#[derive(Clone, Copy, Debug)]
struct Server {
    port: u16,
    v6: bool,
}

/// Everything about the socket links; `AT+RST` makes it anew.
pub(super) struct Sockets {
    /// Boxed: a modem without socket links (most) keeps 8 bytes a slot.
    slots: [Option<Box<Socket>>; SOCKET_COUNT],
    config: [SocketConfig; SOCKET_COUNT],
    mux: bool,
    /// `AT+CIPMODE=1`.
    passthrough_mode: bool,
    dinfo: bool,
    server: Option<Server>,
    /// `AT+CIPSERVER=1` asked; waiting for the runtime's listener.
    pending_server: Option<Server>,
    max_conn: u8,
    /// `AT+CIPSTO` in seconds; 0: never.
    idle_timeout_s: u16,
    ipv6: bool,
    reconnect_interval: u16,
    /// A link was opened since the station joined (`STATUS:4` after it).
    ever_opened: bool,
    /// Passthrough lost its link: it connects again at this time.
    reconnect: Option<(Origin, u64)>,
    /// `AT+CIPSENDLCFG`.
    long_send_report: u32,
    long_send_transmit: u16,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            slots: Default::default(),
            config: Default::default(),
            mux: false,
            passthrough_mode: false,
            dinfo: false,
            server: None,
            pending_server: None,
            max_conn: 5,
            idle_timeout_s: 180,
            ipv6: false,
            reconnect_interval: 1,
            ever_opened: false,
            reconnect: None,
            long_send_report: LONG_SEND_REPORT,
            long_send_transmit: LONG_SEND_TRANSMIT,
        }
    }
}

impl Sockets {
    fn open_count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// A link that is up (not connecting, not closed by its peer).
    fn connected(&self, id: LinkId) -> Option<&Socket> {
        self.slots
            .get(usize::from(id))?
            .as_deref()
            .filter(|s| s.connecting.is_none() && !s.peer_closed)
    }
}

/// The passthrough data phase of `AT+CIPSEND` under `AT+CIPMODE=1`.
pub(super) struct Passthrough {
    burst: Burst,
}

/// Host bytes of a data mode that a lone `+++` between silences ends
/// (passthrough, `AT+CIPSENDL`): what waits to be sent, and the timing of
/// the silences.
struct Burst {
    /// Bytes not sent yet.
    pending: Vec<u8>,
    /// When the last host bytes came.
    last_input: u64,
    /// A lone `+++` came at this time: it ends the mode after a silence.
    escape_at: Option<u64>,
}

impl Burst {
    fn new(now: u64) -> Burst {
        Burst {
            pending: Vec::new(),
            last_input: now,
            escape_at: None,
        }
    }

    /// Host bytes at `now`: true when they are a lone `+++` after a silence
    /// (and `may_escape`), held to see whether a silence follows; else the
    /// caller takes them as data. A held `+++` that more bytes follow too
    /// soon was data: it goes to `pending` first, and this returns its
    /// length in `revived`.
    fn escape(&mut self, bytes: &[u8], now: u64, may_escape: bool, revived: &mut usize) -> bool {
        if self.escape_at.take().is_some() {
            self.pending.extend_from_slice(ESCAPE);
            *revived = ESCAPE.len();
        }
        let quiet = now >= self.last_input.saturating_add(PASSTHROUGH_INTERVAL_MS);
        self.last_input = now;
        if bytes == ESCAPE && self.pending.is_empty() && quiet && may_escape {
            self.escape_at = Some(now);
            return true;
        }
        false
    }

    /// A held `+++` had its silence after it: the mode ends.
    fn escaped(&self, now: u64) -> bool {
        self.escape_at
            .is_some_and(|at| now >= at.saturating_add(PASSTHROUGH_INTERVAL_MS))
    }

    /// What waits has had a silence after it: send it.
    fn silent(&self, now: u64) -> bool {
        !self.pending.is_empty() && now >= self.last_input.saturating_add(PASSTHROUGH_INTERVAL_MS)
    }

    /// When [`Burst::escaped`] or [`Burst::silent`] may next turn true.
    fn deadline(&self) -> Option<u64> {
        self.escape_at
            .or((!self.pending.is_empty()).then_some(self.last_input))
            .map(|at| at.saturating_add(PASSTHROUGH_INTERVAL_MS))
    }
}

/// The data phase of `AT+CIPSENDL`: host bytes go to the link as they come,
/// in sends of `<transmit size>` (a shorter one after a silence, or at the
/// end), with `+CIPSENDL:<had sent len>,<port recv len>` every
/// `<report size>` bytes written. The host is read only while the link keeps
/// up, so nothing is lost where a module without flow control would.
pub(super) struct LongSend {
    id: LinkId,
    to: Option<SocketAddr>,
    /// Bytes the host has still to send.
    left: u64,
    /// Host bytes not queued yet, and the `+++` that cancels.
    burst: Burst,
    /// Queued sends not written yet: the link's send count that completes
    /// each, and its size.
    unsent: VecDeque<(u64, usize)>,
    /// `<port recv len>` and `<had sent len>`.
    received: u64,
    sent: u64,
    /// The last `<had sent len>` reported.
    reported: u64,
    /// The link went: the rest is taken and dropped; it ends in SEND FAIL.
    failed: bool,
}

impl LongSend {
    /// The link has as many unwritten sends as passthrough allows.
    pub(super) fn link_full(&self) -> bool {
        self.unsent.len() as u64 >= PASSTHROUGH_MAX_SENDS
    }

    /// Whether host bytes are taken now (else they wait in the buffer).
    pub(super) fn takes_input(&self) -> bool {
        self.left > 0 && !self.link_full()
    }
}

/// `+CIPSENDL:<had sent len>,<port recv len>`.
fn long_send_progress(out: &mut Vec<u8>, sent: u64, received: u64) {
    out.extend_from_slice(format!("+CIPSENDL:{sent},{received}\r\n").as_bytes());
}

fn invalid(param: u16) -> AtError {
    AtError::new(ErrorKind::ParamInvalid, param)
}

/// An address as ESP-AT prints it: IPv4 (also when mapped into IPv6).
fn ip_text(ip: IpAddr) -> String {
    format!("{}", ip.to_canonical())
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// What `AT+CIPSEND`'s data becomes once typed.
#[derive(Clone, Copy, Debug)]
pub(super) struct SocketSend {
    id: LinkId,
    to: Option<SocketAddr>,
    /// `AT+CIPSENDEX`: `Some(a backslash is pending)`.
    escape: Option<bool>,
}

impl SocketSend {
    /// Takes CIPSENDEX data from `bytes` into `buf`, unescaping, until
    /// `remaining` raw bytes are used or `\0` ends it. Returns the bytes
    /// used and whether the data is complete.
    pub(super) fn take_escaped(
        &mut self,
        bytes: &[u8],
        remaining: &mut usize,
        buf: &mut Vec<u8>,
    ) -> (usize, bool) {
        let Some(backslash) = self.escape.as_mut() else {
            return (0, false);
        };
        let mut used = 0;
        for &b in bytes {
            if *remaining == 0 {
                break;
            }
            used += 1;
            *remaining -= 1;
            if *backslash {
                *backslash = false;
                if b == b'0' {
                    return (used, true);
                }
                buf.push(b);
            } else if b == b'\\' {
                *backslash = true;
            } else {
                buf.push(b);
            }
        }
        (used, *remaining == 0)
    }

    pub(super) fn escaped(&self) -> bool {
        self.escape.is_some()
    }
}

impl Modem {
    fn sysmsg(&self, bit: u8) -> bool {
        self.settings.kept_numbers[KeptNumber::SysMsg as usize] & bit != 0
    }

    /// The link id of a command: parameter 0 in multi-connection mode (up
    /// to `max`), always 0 in single mode. Returns the id and the index of
    /// the next parameter.
    fn socket_id(&self, args: &Args, max: i64) -> Result<(LinkId, usize), AtError> {
        if self.sockets.mux {
            Ok((args.int(0, 0..=max)? as LinkId, 1))
        } else {
            Ok((0, 0))
        }
    }

    fn connect_report(&self, id: LinkId) -> Vec<u8> {
        let Some(s) = self.sockets.slots[usize::from(id)].as_ref() else {
            return Vec::new();
        };
        if self.sysmsg(2) {
            format!(
                "+LINK_CONN:0,{id},\"{}\",{},\"{}\",{},{}\r\n",
                s.kind.name(s.v6),
                u8::from(s.server_side),
                ip_text(s.remote.ip()),
                s.remote.port(),
                s.local.port()
            )
            .into_bytes()
        } else if self.sockets.mux {
            format!("{id},CONNECT\r\n").into_bytes()
        } else {
            b"CONNECT\r\n".to_vec()
        }
    }

    fn closed_report(&self, id: LinkId) -> Vec<u8> {
        if self.sockets.mux {
            format!("{id},CLOSED\r\n").into_bytes()
        } else {
            b"CLOSED\r\n".to_vec()
        }
    }

    fn in_passthrough(&self) -> bool {
        matches!(self.input, Input::Passthrough(_))
    }

    /// A link that ended: freed, its `CLOSED` reported (in passthrough only
    /// with `AT+SYSMSG` bit 2), a send waiting on it failed.
    fn socket_gone(&mut self, id: LinkId, report: bool) {
        let gone = self.sockets.slots[usize::from(id)].take();
        if self.in_passthrough() {
            // Passthrough says so (with AT+SYSMSG bit 2) at once, and
            // connects again every AT+CIPRECONNINTV × 100 ms.
            if let Some(origin) = gone.and_then(|s| s.origin) {
                self.schedule_reconnect(origin);
            }
            if report && self.sysmsg(4) {
                let text = self.closed_report(id);
                self.out.extend_from_slice(&text);
            }
            self.actions.push_back(NetAction::Close {
                link: Link::Socket(id),
            });
            return;
        }
        // The runtime lets go of the connection (a peer's EOF leaves it open).
        self.actions.push_back(NetAction::Close {
            link: Link::Socket(id),
        });
        if matches!(self.input, Input::Busy(Wait::Send { link: Link::Socket(l), .. }) if l == id) {
            self.finish_wait(Ok(b"\r\nSEND FAIL\r\n"));
        }
        if let Input::LongSend(l) = &mut self.input {
            if l.id == id {
                l.failed = true;
                l.unsent.clear();
                self.long_send_check_end();
            }
        }
        if report {
            let text = self.closed_report(id);
            self.report(&text);
        }
    }

    // --- commands ----------------------------------------------------------

    pub(super) fn cmd_cipmux(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            self.info_line(&[b"+CIPMUX:", digit(self.sockets.mux)]);
            return Ok(Reply::Ok);
        };
        let mux = Args::parse(p, 1)?.int(0, 0..=1)? == 1;
        let s = &self.sockets;
        if s.open_count() > 0 || s.passthrough_mode || (!mux && s.server.is_some()) {
            return Err(AtError::exec());
        }
        self.sockets.mux = mux;
        Ok(Reply::Ok)
    }

    pub(super) fn cmd_cipmode(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            self.info_line(&[b"+CIPMODE:", digit(self.sockets.passthrough_mode)]);
            return Ok(Reply::Ok);
        };
        let on = Args::parse(p, 1)?.int(0, 0..=1)? == 1;
        if on {
            let s = &self.sockets;
            let clients = s.open_count();
            let udp_moving = s
                .slots
                .iter()
                .flatten()
                .any(|l| l.kind == Kind::Udp && l.udp_mode != 0);
            if s.mux || s.server.is_some() || clients > 1 || udp_moving {
                return Err(AtError::exec());
            }
        }
        self.sockets.passthrough_mode = on;
        Ok(Reply::Ok)
    }

    pub(super) fn cmd_cipdinfo(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            let value: &[u8] = if self.sockets.dinfo {
                b"true"
            } else {
                b"false"
            };
            // `%s:%s` with no CR LF of its own: no blank line before OK.
            self.out.extend_from_slice(b"+CIPDINFO:");
            self.out.extend_from_slice(value);
            self.out.extend_from_slice(b"\r\nOK\r\n");
            return Ok(Reply::Done);
        };
        self.sockets.dinfo = Args::parse(p, 1)?.int(0, 0..=1)? == 1;
        Ok(Reply::Ok)
    }

    /// `AT+CIPSTART` (`ex`: `AT+CIPSTARTEX`, the lowest free id).
    pub(super) fn cmd_cipstart(&mut self, form: Form<'_>, ex: bool) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let args = Args::parse(p, 8)?;
        let (id, first) = if ex {
            let free = self.sockets.slots.iter().position(Option::is_none);
            let limit = if self.sockets.mux { SOCKET_COUNT } else { 1 };
            match free.filter(|&i| i < limit) {
                Some(i) => (i as LinkId, 0),
                None => return Err(AtError::exec()),
            }
        } else {
            self.socket_id(&args, SOCKET_COUNT as i64 - 1)?
        };
        let param = |i: usize| (first + i + 1) as u16;
        let (kind, v6) = Kind::parse(args.str(first)?).ok_or(invalid(param(0)))?;
        // The IPv6 types need AT+CIPV6=1 first, as on a module: a driver
        // that forgets it fails here, not only on hardware (§3.14).
        if v6 && !self.sockets.ipv6 {
            return Err(invalid(param(0)));
        }
        let host = host_arg(&args, first + 1, MAX_HOST)?;
        let min_port = if kind == Kind::Udp { 0 } else { 1 };
        let port = args.int(first + 2, min_port..=65535)? as u16;
        let rest = first + 3;
        let (keep_alive, local_port, udp_mode, timeout) = match kind {
            Kind::Udp => {
                // An empty local port with a mode (lwesp sends `,,<mode>`)
                // lets the system pick one.
                let local_port = args.opt_int(rest, 0..=65535)?;
                let mode = args.opt_int(rest + 1, 0..=2)?;
                local_ip(&args, rest + 2)?;
                let timeout = args.opt_int(rest + 3, 0..=60_000)?;
                (
                    0,
                    local_port.unwrap_or(0) as u16,
                    mode.unwrap_or(0) as u8,
                    timeout,
                )
            }
            _ => {
                let keep_alive = args.opt_int(rest, 0..=7200)?.unwrap_or(0) as u16;
                local_ip(&args, rest + 1)?;
                let timeout = args.opt_int(rest + 2, 0..=60_000)?;
                if args.len() > rest + 3 {
                    return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
                }
                (keep_alive, 0, 0, timeout)
            }
        };
        let s = &self.sockets;
        let busy = s.slots[usize::from(id)].is_some();
        let passthrough_conflict = s.passthrough_mode && s.server.is_some();
        if busy || passthrough_conflict || !self.associated() {
            return Err(AtError::exec());
        }
        let transport = match kind {
            Kind::Tcp => Transport::Tcp,
            Kind::Udp => Transport::Udp { local_port },
            Kind::Ssl => Transport::Tls(self.ssl_policy(id)?),
        };
        let timeout = match timeout {
            Some(ms) if ms > 0 => ms as u64,
            _ => CONNECT_TIMEOUT_MS,
        };
        let origin = Origin {
            host: host.clone(),
            port,
            transport: transport.clone(),
            keep_alive_s: keep_alive,
            kind,
            v6,
            udp_mode,
        };
        self.connect_socket(id, origin, timeout);
        Ok(Reply::Busy(Wait::SocketOpen(id)))
    }

    /// A new client link `id`, connecting until `timeout_ms` from now.
    fn connect_socket(&mut self, id: LinkId, origin: Origin, timeout_ms: u64) {
        let Origin {
            kind,
            v6,
            udp_mode,
            port,
            ..
        } = origin;
        let remote = origin
            .host
            .parse::<IpAddr>()
            .map_or(UNSPECIFIED, |ip| SocketAddr::new(ip, port));
        self.actions.push_back(NetAction::Connect {
            link: Link::Socket(id),
            host: origin.host.clone(),
            port,
            transport: origin.transport.clone(),
            keep_alive_s: origin.keep_alive_s,
        });
        self.sockets.slots[usize::from(id)] = Some(Box::new(Socket {
            kind,
            v6,
            server_side: false,
            connecting: Some(self.now.saturating_add(timeout_ms)),
            local: UNSPECIFIED,
            remote,
            udp_mode,
            peer: None,
            sends_queued: 0,
            sends_done: 0,
            buffer: VecDeque::new(),
            buffered: 0,
            notified: false,
            peer_closed: false,
            last_activity: self.now,
            origin: Some(origin),
        }));
    }

    /// The TLS settings of link `id`, its material read from the store now.
    fn ssl_policy(&mut self, id: LinkId) -> Result<super::TlsPolicy, AtError> {
        let config = self.sockets.config[usize::from(id)].clone();
        let mut policy = self.load_tls(
            crate::pki::CLIENT,
            config.ssl_auth,
            config.ssl_pki,
            config.ssl_ca,
        )?;
        let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
        let names = config.names.map(|n| *n).unwrap_or_default();
        policy.sni = text(names.sni);
        policy.common_name = text(names.common_name);
        policy.alpn = names.alpn;
        Ok(policy)
    }

    /// `AT+CIPSEND` (`ex`: `AT+CIPSENDEX`): the prompt, or passthrough.
    pub(super) fn cmd_cipsend(&mut self, form: Form<'_>, ex: bool) -> Result<Reply, AtError> {
        let p = match form {
            Form::Set(p) if !self.sockets.passthrough_mode => p,
            Form::Execute if self.sockets.passthrough_mode && !ex => {
                return self.start_passthrough();
            }
            _ => return Err(AtError::exec()),
        };
        let (id, len, to) = self.send_params(p, MAX_SEND)?;
        let send = SocketSend {
            id,
            to,
            escape: ex.then_some(false),
        };
        Ok(Reply::Prompt(len as usize, DataTarget::SocketSend(send)))
    }

    /// `[<id>,]<length>[,"<remote host>",<remote port>]` of the send
    /// commands, for a link that can send there now.
    fn send_params(
        &self,
        p: &[u8],
        max_len: i64,
    ) -> Result<(LinkId, u64, Option<SocketAddr>), AtError> {
        let args = Args::parse(p, 4)?;
        let (id, first) = self.socket_id(&args, SOCKET_COUNT as i64 - 1)?;
        let len = args.int(first, 1..=max_len)? as u64;
        let to = match args.opt_str(first + 1)? {
            None => None,
            Some(host) => {
                let ip = core::str::from_utf8(host)
                    .ok()
                    .and_then(|h| h.parse::<IpAddr>().ok())
                    .ok_or(invalid(first as u16 + 2))?;
                let port = args.int(first + 2, 0..=65535)? as u16;
                Some(SocketAddr::new(ip, port))
            }
        };
        if args.len() > first + 3 {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let socket = self.sockets.connected(id).ok_or(AtError::exec())?;
        match socket.kind {
            Kind::Udp if to.is_none() && socket.peer.is_none() => return Err(AtError::exec()),
            Kind::Tcp | Kind::Ssl if to.is_some() => return Err(AtError::exec()),
            _ => {}
        }
        Ok((id, len, to))
    }

    /// `AT+CIPSENDL=[<id>,]<length>[,"<remote host>",<remote port>]`: the
    /// prompt, then the data phase of [`LongSend`].
    pub(super) fn cmd_cipsendl(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let p = match form {
            Form::Set(p) if !self.sockets.passthrough_mode => p,
            _ => return Err(AtError::exec()),
        };
        let (id, left, to) = self.send_params(p, MAX_LONG_SEND)?;
        self.out.extend_from_slice(at::PROMPT);
        self.input = Input::LongSend(Box::new(LongSend {
            id,
            to,
            left,
            burst: Burst::new(self.now),
            unsent: VecDeque::new(),
            received: 0,
            sent: 0,
            reported: 0,
            failed: false,
        }));
        Ok(Reply::Done)
    }

    /// `AT+CIPSENDLCFG?` and `AT+CIPSENDLCFG=<report size>[,<transmit size>]`.
    pub(super) fn cmd_cipsendlcfg(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            self.info_line(&[
                b"+CIPSENDLCFG:",
                format!(
                    "{},{}",
                    self.sockets.long_send_report, self.sockets.long_send_transmit
                )
                .as_bytes(),
            ]);
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 2)?;
        let report = args.int(0, LONG_SEND_REPORTS)? as u32;
        let transmit = args.opt_int(1, LONG_SEND_TRANSMITS)?;
        self.sockets.long_send_report = report;
        if let Some(transmit) = transmit {
            self.sockets.long_send_transmit = transmit as u16;
        }
        Ok(Reply::Ok)
    }

    /// Host bytes of `AT+CIPSENDL` (only while [`LongSend::takes_input`]):
    /// at most what is left of its length; a `+++` alone between silences
    /// cancels it.
    pub(super) fn long_send_input(&mut self, bytes: &[u8]) -> usize {
        let now = self.now;
        self.long_send_timeout();
        let Input::LongSend(l) = &mut self.input else {
            return 0;
        };
        let mut revived = 0;
        let may_escape = l.left >= ESCAPE.len() as u64;
        let escape = l.burst.escape(bytes, now, may_escape, &mut revived);
        l.left -= revived as u64;
        l.received += revived as u64;
        if escape {
            return bytes.len();
        }
        // No more than the link's unwritten sends may still hold: the rest
        // waits in the input buffer, then with the host.
        let transmit = usize::from(self.sockets.long_send_transmit);
        let room = (PASSTHROUGH_MAX_SENDS as usize - l.unsent.len()) * transmit;
        let room = room.saturating_sub(l.burst.pending.len()).max(1);
        let take = bytes
            .len()
            .min(usize::try_from(l.left).unwrap_or(usize::MAX))
            .min(room);
        crate::bytes::append(&mut l.burst.pending, &bytes[..take]);
        l.left -= take as u64;
        l.received += take as u64;
        self.long_send_flush(false);
        take
    }

    /// Queues whole `<transmit size>` sends of what the host typed; the
    /// shorter rest too when `all`, or when the length is in.
    fn long_send_flush(&mut self, all: bool) {
        let transmit = usize::from(self.sockets.long_send_transmit);
        loop {
            let Input::LongSend(l) = &mut self.input else {
                return;
            };
            let all = all || l.left == 0;
            let n = match l.burst.pending.len() {
                0 => break,
                n if n >= transmit => transmit,
                n if all => n,
                _ => break,
            };
            let chunk: Vec<u8> = l.burst.pending.drain(..n).collect();
            if l.failed {
                continue;
            }
            let (id, to) = (l.id, l.to);
            let queued = self.queue_socket_send(id, to, chunk);
            let Input::LongSend(l) = &mut self.input else {
                return;
            };
            match queued {
                Some(until) => l.unsent.push_back((until, n)),
                None => {
                    l.failed = true;
                    l.unsent.clear();
                }
            }
        }
        self.long_send_check_end();
    }

    /// Sends of `AT+CIPSENDL` were written: the progress reports they pass.
    fn long_send_written(&mut self, id: LinkId, done: u64) {
        let report = u64::from(self.sockets.long_send_report);
        let Input::LongSend(l) = &mut self.input else {
            return;
        };
        if l.id != id {
            return;
        }
        while let Some(&(until, n)) = l.unsent.front() {
            if done < until {
                break;
            }
            l.unsent.pop_front();
            l.sent += n as u64;
        }
        while l.sent >= l.reported + report {
            l.reported += report;
            long_send_progress(&mut self.out, l.reported, l.received);
        }
        self.long_send_check_end();
    }

    /// `AT+CIPSENDL` ends once its length is in and written (or dropped):
    /// the last `<had sent len>`, then `SEND OK`, or `SEND FAIL` if the
    /// link went.
    fn long_send_check_end(&mut self) {
        let Input::LongSend(l) = &self.input else {
            return;
        };
        let burst = &l.burst;
        if l.left > 0
            || !burst.pending.is_empty()
            || !l.unsent.is_empty()
            || burst.escape_at.is_some()
        {
            return;
        }
        if l.sent != l.reported || l.sent == 0 {
            long_send_progress(&mut self.out, l.sent, l.received);
        }
        let end: &[u8] = if l.failed {
            b"\r\nSEND FAIL\r\n"
        } else {
            at::SEND_OK
        };
        self.finish_wait(Ok(end));
    }

    /// `AT+CIPSENDL`'s timers: send what waited a silence, or cancel after
    /// a `+++`.
    fn long_send_timeout(&mut self) {
        let now = self.now;
        let Input::LongSend(l) = &self.input else {
            return;
        };
        if l.burst.escaped(now) {
            self.finish_wait(Ok(b"\r\nSEND CANCELLED\r\n"));
        } else if l.burst.silent(now) {
            self.long_send_flush(true);
        }
    }

    /// The data of `AT+CIPSEND`/`AT+CIPSENDEX` is in: `Recv`, then the
    /// send, whose `SEND OK` comes once the runtime has written it.
    pub(super) fn socket_send_data(&mut self, send: SocketSend, data: &[u8]) {
        self.info_line(&[
            b"\r\nRecv ",
            format!("{}", data.len()).as_bytes(),
            b" bytes",
        ]);
        let queued = self.queue_socket_send(send.id, send.to, data.to_vec());
        match queued {
            Some(until) => {
                self.input = Input::Busy(Wait::Send {
                    link: Link::Socket(send.id),
                    until,
                    deadline: self.now.saturating_add(SEND_TIMEOUT_MS),
                });
            }
            // The link went while the host typed.
            None => self.out.extend_from_slice(b"\r\nSEND FAIL\r\n"),
        }
    }

    /// Hands `bytes` to the runtime for link `id`; returns the send's
    /// number, or `None` when the link cannot send.
    fn queue_socket_send(
        &mut self,
        id: LinkId,
        to: Option<SocketAddr>,
        bytes: Vec<u8>,
    ) -> Option<u64> {
        let link = Link::Socket(id);
        let socket = self.sockets.slots[usize::from(id)]
            .as_mut()
            .filter(|s| s.connecting.is_none() && !s.peer_closed)?;
        let action = match socket.kind {
            Kind::Udp => NetAction::SendTo {
                link,
                to: to.or(socket.peer)?,
                bytes,
            },
            _ => NetAction::Send { link, bytes },
        };
        socket.sends_queued += 1;
        socket.last_activity = self.now;
        self.actions.push_back(action);
        Some(socket.sends_queued)
    }

    /// `AT+CIPSEND`'s data was not taken in time.
    pub(super) fn socket_send_timed_out(&mut self) {
        self.finish_wait(Ok(b"\r\nSEND FAIL\r\n"));
    }

    pub(super) fn cmd_cipclose(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let ids: Vec<LinkId> = match (form, self.sockets.mux) {
            (Form::Execute, false) => alloc::vec![0],
            (Form::Set(p), true) => match Args::parse(p, 1)?.int(0, 0..=SOCKET_COUNT as i64)? {
                5 => (0..SOCKET_COUNT as LinkId).collect(),
                id => alloc::vec![id as LinkId],
            },
            _ => return Err(AtError::exec()),
        };
        for id in ids {
            self.close_for_host(id);
        }
        Ok(Reply::Ok)
    }

    /// A command of the host closes link `id`, if it exists: its `CLOSED`
    /// is part of the command's answer, before the `OK`.
    fn close_for_host(&mut self, id: LinkId) {
        if self.sockets.slots[usize::from(id)].take().is_some() {
            self.actions.push_back(NetAction::Close {
                link: Link::Socket(id),
            });
            let text = self.closed_report(id);
            self.out.extend_from_slice(&text);
        }
    }

    /// `+CIPSTATE:`/`+CIPSTATUS:` lines, one per link that is up.
    pub(super) fn socket_state_lines(&mut self, name: &str) {
        for id in 0..SOCKET_COUNT as LinkId {
            let Some(s) = self.sockets.connected(id) else {
                continue;
            };
            let line = format!(
                "+{name}:{id},\"{}\",\"{}\",{},{},{}\r\n",
                s.kind.name(s.v6),
                ip_text(s.remote.ip()),
                s.remote.port(),
                s.local.port(),
                u8::from(s.server_side)
            );
            self.out.extend_from_slice(line.as_bytes());
        }
    }

    /// The socket links for [`Modem::link_status`].
    pub(super) fn socket_status_list(&self) -> Vec<super::LinkStatus> {
        let mut links = Vec::new();
        for (id, s) in self.sockets.slots.iter().enumerate() {
            let Some(s) = s else { continue };
            let state = match (s.connecting, s.peer_closed) {
                (Some(_), _) => "connecting",
                (None, true) => "closed by peer",
                (None, false) => "open",
            };
            links.push(super::LinkStatus {
                link: Link::Socket(id as LinkId),
                state,
                peer: format!("{} {}", s.kind.name(s.v6), s.remote),
            });
        }
        links
    }

    /// `STATUS:3` while a link is up, `4` once all that were opened closed.
    pub(super) fn socket_status(&self) -> Option<u8> {
        if (0..SOCKET_COUNT as LinkId).any(|id| self.sockets.connected(id).is_some()) {
            Some(3)
        } else if self.sockets.ever_opened {
            Some(4)
        } else {
            None
        }
    }

    /// The station joined an AP: `STATUS:` starts over at 2.
    pub(super) fn sockets_joined(&mut self) {
        self.sockets.ever_opened = false;
    }

    /// The station lost its AP: every link closes, with its report.
    pub(super) fn sockets_lost_network(&mut self) {
        for id in 0..SOCKET_COUNT as LinkId {
            if self.sockets.slots[usize::from(id)].is_some() {
                self.socket_gone(id, true);
            }
        }
    }

    /// `AT+RST`: connections and the listener dropped without a word.
    pub(super) fn drop_sockets(&mut self) {
        for id in 0..SOCKET_COUNT as LinkId {
            if self.sockets.slots[usize::from(id)].is_some() {
                self.actions.push_back(NetAction::Close {
                    link: Link::Socket(id),
                });
            }
        }
        if self.sockets.server.is_some() || self.sockets.pending_server.is_some() {
            self.actions.push_back(NetAction::StopListening);
        }
    }

    // --- passive receive ---------------------------------------------------

    /// `AT+CIPRECVMODE=<mode>` (every link) and `AT+CIPRECVMODE?`.
    pub(super) fn cmd_ciprecvmode(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            self.info_line(&[b"+CIPRECVMODE:", digit(self.sockets.config[0].passive)]);
            return Ok(Reply::Ok);
        };
        let passive = Args::parse(p, 1)?.int(0, 0..=1)? == 1;
        for id in 0..SOCKET_COUNT as LinkId {
            self.set_receive_mode(id, passive, None);
        }
        Ok(Reply::Ok)
    }

    /// `AT+CIPRECVTYPE=[<id>,]<mode>[,<report mode>]` (id 5: all) and its query.
    pub(super) fn cmd_ciprecvtype(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            let count = if self.sockets.mux { SOCKET_COUNT } else { 1 };
            for id in 0..count {
                let c = &self.sockets.config[id];
                let line = format!(
                    "+CIPRECVTYPE:{id},{},{}\r\n",
                    u8::from(c.passive),
                    c.report_mode
                );
                self.out.extend_from_slice(line.as_bytes());
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 3)?;
        let (id, first) = self.socket_id(&args, SOCKET_COUNT as i64)?;
        let passive = args.int(first, 0..=1)? == 1;
        let report = args.opt_int(first + 1, 0..=1)?.map(|r| r as u8);
        if args.len() > first + 2 {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let ids = if id == 5 {
            0..SOCKET_COUNT as LinkId
        } else {
            id..id + 1
        };
        // What passive mode held goes out after the OK.
        self.ok();
        for id in ids {
            self.set_receive_mode(id, passive, report);
        }
        Ok(Reply::Done)
    }

    /// Switching to active mode hands over what passive mode buffered.
    fn set_receive_mode(&mut self, id: LinkId, passive: bool, report: Option<u8>) {
        let config = &mut self.sockets.config[usize::from(id)];
        config.passive = passive;
        if let Some(report) = report {
            config.report_mode = report;
        }
        if passive {
            return;
        }
        let Some(socket) = self.sockets.slots[usize::from(id)].as_mut() else {
            return;
        };
        let chunks = core::mem::take(&mut socket.buffer);
        socket.buffered = 0;
        socket.notified = false;
        let closed = socket.peer_closed;
        for chunk in chunks {
            self.ipd(id, chunk.from, &chunk.data);
        }
        if closed {
            self.socket_gone(id, true);
        }
    }

    /// `AT+CIPRECVDATA=[<id>,]<len>`: up to `len` buffered bytes (one
    /// datagram at most for UDP).
    pub(super) fn cmd_ciprecvdata(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let args = Args::parse(p, 3)?;
        let (id, first) = self.socket_id(&args, SOCKET_COUNT as i64 - 1)?;
        let len = args.int(first, 1..=0x7fff_ffff)? as usize;
        args.opt_int(first + 1, 0..=1)?;
        if !self.sockets.config[usize::from(id)].passive {
            return Err(AtError::exec());
        }
        let dinfo = self.sockets.dinfo;
        let socket = self.sockets.slots[usize::from(id)]
            .as_mut()
            .filter(|s| s.buffered > 0)
            .ok_or(AtError::exec())?;
        let from = socket.buffer.front().map_or(socket.remote, |c| c.from);
        let mut data = Vec::with_capacity(len.min(socket.buffered));
        if socket.kind == Kind::Udp {
            if let Some(chunk) = socket.buffer.pop_front() {
                socket.buffered -= chunk.data.len();
                data.extend_from_slice(&chunk.data[..len.min(chunk.data.len())]);
            }
        } else {
            while data.len() < len {
                let Some(chunk) = socket.buffer.front_mut() else {
                    break;
                };
                let take = (len - data.len()).min(chunk.data.len());
                data.extend_from_slice(&chunk.data[..take]);
                chunk.data.drain(..take);
                socket.buffered -= take;
                if chunk.data.is_empty() {
                    socket.buffer.pop_front();
                }
            }
        }
        let remaining = socket.buffered;
        let next = socket.buffer.front().map_or(0, |c| c.data.len());
        let closed = socket.peer_closed;
        socket.notified = remaining > 0;
        let mut head = format!("+CIPRECVDATA:{},", data.len());
        if dinfo {
            head += &format!("\"{}\",{},", ip_text(from.ip()), from.port());
        }
        self.out.extend_from_slice(head.as_bytes());
        crate::bytes::append(&mut self.out, &data);
        self.ok();
        if remaining > 0 {
            let count = match self.sockets.config[usize::from(id)].report_mode {
                1 => next,
                _ => remaining,
            };
            let text = self.passive_notice(id, count);
            self.report(&text);
        } else if closed {
            self.socket_gone(id, true);
        }
        Ok(Reply::Done)
    }

    fn passive_notice(&self, id: LinkId, count: usize) -> Vec<u8> {
        if self.sockets.mux {
            format!("\r\n+IPD,{id},{count}\r\n").into_bytes()
        } else {
            format!("\r\n+IPD,{count}\r\n").into_bytes()
        }
    }

    /// `AT+CIPRECVLEN?`: buffered bytes per link, `-1` for links that are
    /// not connected (2.x; §3.16).
    pub(super) fn cmd_ciprecvlen(&mut self) -> Result<Reply, AtError> {
        let count = if self.sockets.mux { SOCKET_COUNT } else { 1 };
        let values: Vec<String> = (0..count)
            .map(|id| match &self.sockets.slots[id] {
                Some(s) if s.connecting.is_none() => format!("{}", s.buffered),
                _ => String::from("-1"),
            })
            .collect();
        self.info_line(&[b"+CIPRECVLEN:", values.join(",").as_bytes()]);
        Ok(Reply::Ok)
    }

    // --- server --------------------------------------------------------------

    pub(super) fn cmd_cipserver(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            match self.sockets.server {
                Some(server) => {
                    let kind = Kind::Tcp.name(server.v6);
                    let line = format!("+CIPSERVER:1,{},\"{kind}\",0,0", server.port);
                    self.info_line(&[line.as_bytes()]);
                }
                None => self.info_line(&[b"+CIPSERVER:0"]),
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 5)?;
        if args.int(0, 0..=1)? == 0 {
            let close_all = args.opt_int(1, 0..=1)? == Some(1);
            if args.len() > 2 {
                return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
            }
            if self.sockets.server.take().is_none() {
                return Err(AtError::exec());
            }
            self.actions.push_back(NetAction::StopListening);
            if close_all {
                for id in 0..SOCKET_COUNT as LinkId {
                    self.close_for_host(id);
                }
            }
            return Ok(Reply::Ok);
        }
        let port = args.opt_int(1, 1..=65535)?.unwrap_or(333) as u16;
        let (kind, v6) = match args.opt_str(2)? {
            Some(text) => Kind::parse(text).ok_or(invalid(3))?,
            None => (Kind::Tcp, false),
        };
        args.opt_int(3, 0..=1)?;
        args.opt_int(4, 0..=2)?;
        // An SSL server needs a server certificate wsat has no store for.
        if kind != Kind::Tcp {
            return Err(invalid(3));
        }
        let s = &self.sockets;
        if !s.mux || s.passthrough_mode || s.server.is_some() {
            return Err(AtError::exec());
        }
        self.sockets.pending_server = Some(Server { port, v6 });
        self.actions.push_back(NetAction::Listen { port });
        Ok(Reply::Busy(Wait::Listen))
    }

    /// The runtime's listener is up, or could not be made.
    pub(super) fn listening(&mut self, up: bool) {
        let Some(server) = self.sockets.pending_server.take() else {
            return;
        };
        if !matches!(self.input, Input::Busy(Wait::Listen)) {
            return;
        }
        if up {
            self.sockets.server = Some(server);
            self.finish_wait(Ok(at::OK));
        } else {
            self.finish_wait(Err(AtError::exec()));
        }
    }

    pub(super) fn cmd_cipservermaxconn(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            let value = format!("{}", self.sockets.max_conn);
            self.info_line(&[b"+CIPSERVERMAXCONN:", value.as_bytes()]);
            return Ok(Reply::Ok);
        };
        let max = Args::parse(p, 1)?.int(0, 1..=SOCKET_COUNT as i64)? as u8;
        if self.sockets.server.is_some() {
            return Err(AtError::exec());
        }
        self.sockets.max_conn = max;
        Ok(Reply::Ok)
    }

    pub(super) fn cmd_cipsto(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            let value = format!("{}", self.sockets.idle_timeout_s);
            self.info_line(&[b"+CIPSTO:", value.as_bytes()]);
            return Ok(Reply::Ok);
        };
        self.sockets.idle_timeout_s = Args::parse(p, 1)?.int(0, 0..=7200)? as u16;
        Ok(Reply::Ok)
    }

    /// A `+<name>:<n>` setting kept as a number (`AT+CIPV6`, `AT+CIPRECONNINTV`).
    pub(super) fn cmd_socket_number(
        &mut self,
        form: Form<'_>,
        name: &str,
        range: core::ops::RangeInclusive<i64>,
    ) -> Result<Reply, AtError> {
        let value = match name {
            "CIPV6" => u16::from(self.sockets.ipv6),
            _ => self.sockets.reconnect_interval,
        };
        let Form::Set(p) = form else {
            let value = format!("{value}");
            self.info_line(&[b"+", name.as_bytes(), b":", value.as_bytes()]);
            return Ok(Reply::Ok);
        };
        let new = Args::parse(p, 1)?.int(0, range)? as u16;
        match name {
            "CIPV6" => self.sockets.ipv6 = new == 1,
            _ => self.sockets.reconnect_interval = new,
        }
        Ok(Reply::Ok)
    }

    /// The runtime offers a connection to our `AT+CIPSERVER`: it takes the
    /// lowest free link, unless the server is full or gone.
    pub(super) fn accept_socket(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Link> {
        let server = self.sockets.server?;
        let server_links = self
            .sockets
            .slots
            .iter()
            .flatten()
            .filter(|s| s.server_side)
            .count();
        if server_links >= usize::from(self.sockets.max_conn) {
            return None;
        }
        let id = self.sockets.slots.iter().position(Option::is_none)? as LinkId;
        self.sockets.slots[usize::from(id)] = Some(Box::new(Socket {
            kind: Kind::Tcp,
            v6: server.v6,
            server_side: true,
            connecting: None,
            local,
            remote,
            udp_mode: 0,
            peer: Some(remote),
            sends_queued: 0,
            sends_done: 0,
            buffer: VecDeque::new(),
            buffered: 0,
            notified: false,
            peer_closed: false,
            last_activity: self.now,
            origin: None,
        }));
        self.sockets.ever_opened = true;
        let text = self.connect_report(id);
        self.report(&text);
        Some(Link::Socket(id))
    }

    // --- the network's side ------------------------------------------------

    pub(super) fn socket_event(&mut self, id: LinkId, event: NetEvent<'_>) {
        let now = self.now;
        let Some(socket) = self.sockets.slots[usize::from(id)].as_mut() else {
            return;
        };
        match event {
            NetEvent::Connected { local, remote } => {
                if socket.connecting.take().is_none() {
                    return;
                }
                socket.local = local;
                socket.remote = remote;
                socket.last_activity = now;
                if socket.kind == Kind::Udp && !remote.ip().is_unspecified() {
                    socket.peer = Some(remote);
                }
                self.sockets.ever_opened = true;
                let text = self.connect_report(id);
                if !self.in_passthrough() {
                    self.report(&text);
                } else if self.sysmsg(4) {
                    // A reconnect in passthrough: said at once, or not at all.
                    self.out.extend_from_slice(&text);
                }
                if matches!(self.input, Input::Busy(Wait::SocketOpen(l)) if l == id) {
                    self.finish_wait(Ok(at::OK));
                }
            }
            NetEvent::Failed(_) => self.socket_connect_failed(id),
            NetEvent::Received(bytes) => {
                let from = socket.remote;
                self.socket_data(id, from, bytes);
            }
            NetEvent::Datagram { from, bytes } => {
                let take = match (socket.udp_mode, socket.peer) {
                    (0, None) => true,
                    // No peer yet: the first sender becomes it.
                    (mode, None) => {
                        socket.peer = Some(from);
                        if mode == 1 {
                            socket.udp_mode = 0;
                        }
                        true
                    }
                    (_, Some(peer)) if peer == from => true,
                    (0, Some(_)) => false,
                    (1, Some(_)) => {
                        // The peer changes once, then it is fixed.
                        socket.peer = Some(from);
                        socket.udp_mode = 0;
                        true
                    }
                    (_, Some(_)) => {
                        socket.peer = Some(from);
                        true
                    }
                };
                if take {
                    self.socket_data(id, from, bytes);
                }
            }
            NetEvent::Sent => {
                socket.sends_done += 1;
                let done = socket.sends_done;
                self.long_send_written(id, done);
                if let Input::Busy(Wait::Send {
                    link: Link::Socket(l),
                    until,
                    ..
                }) = self.input
                {
                    if l == id && done >= until {
                        self.finish_wait(Ok(at::SEND_OK));
                    }
                }
            }
            NetEvent::Closed => {
                if socket.connecting.is_some() {
                    return self.socket_connect_failed(id);
                }
                if socket.buffered > 0 {
                    // Passive data stays readable; CLOSED waits for it.
                    socket.peer_closed = true;
                    if matches!(self.input, Input::Busy(Wait::Send { link: Link::Socket(l), .. }) if l == id)
                    {
                        self.finish_wait(Ok(b"\r\nSEND FAIL\r\n"));
                    }
                } else {
                    self.socket_gone(id, true);
                }
            }
        }
    }

    /// `AT+CIPSTART` failed (refused, unresolvable, TLS, timeout): ERROR,
    /// and no report (esp-at 2.x+ prints no `CLOSED` there).
    fn socket_connect_failed(&mut self, id: LinkId) {
        let gone = self.sockets.slots[usize::from(id)].take();
        if self.in_passthrough() {
            if let Some(origin) = gone.and_then(|s| s.origin) {
                self.schedule_reconnect(origin);
            }
        }
        self.actions.push_back(NetAction::Close {
            link: Link::Socket(id),
        });
        if matches!(self.input, Input::Busy(Wait::SocketOpen(l)) if l == id) {
            self.finish_wait(Err(AtError::exec()));
        }
    }

    /// Data from the peer `from`: raw in passthrough, `+IPD` in active mode,
    /// buffered in passive mode.
    fn socket_data(&mut self, id: LinkId, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        if bytes.is_empty() {
            return;
        }
        if self.in_passthrough() {
            crate::bytes::append(&mut self.out, bytes);
            return;
        }
        let passive = self.sockets.config[usize::from(id)].passive;
        let report_mode = self.sockets.config[usize::from(id)].report_mode;
        let Some(socket) = self.sockets.slots[usize::from(id)].as_mut() else {
            return;
        };
        socket.last_activity = now;
        if !passive {
            return self.ipd(id, from, bytes);
        }
        if socket.kind == Kind::Udp && socket.buffered + bytes.len() > PASSIVE_BUFFER {
            // The receive window is full: the datagram is lost, as on a module.
            return;
        }
        socket.buffered += bytes.len();
        socket.buffer.push_back(Chunk {
            from,
            data: bytes.to_vec(),
        });
        if !socket.notified {
            socket.notified = true;
            let count = match report_mode {
                1 => socket.buffer.front().map_or(0, |c| c.data.len()),
                _ => socket.buffered,
            };
            let text = self.passive_notice(id, count);
            self.report(&text);
        }
    }

    /// Active receive: `+IPD` reports of at most [`IPD_CHUNK`] bytes each,
    /// written straight where reports go.
    fn ipd(&mut self, id: LinkId, from: SocketAddr, bytes: &[u8]) {
        let (mux, dinfo) = (self.sockets.mux, self.sockets.dinfo);
        for piece in bytes.chunks(IPD_CHUNK) {
            self.report_with(|out| {
                out.extend_from_slice(b"\r\n+IPD,");
                let mut number = itoa::Buffer::new();
                if mux {
                    out.extend_from_slice(number.format(id).as_bytes());
                    out.push(b',');
                }
                out.extend_from_slice(number.format(piece.len()).as_bytes());
                if dinfo {
                    let peer = format!(",\"{}\",{}", ip_text(from.ip()), from.port());
                    out.extend_from_slice(peer.as_bytes());
                }
                out.push(b':');
                crate::bytes::append(out, piece);
                out.extend_from_slice(b"\r\n");
            });
        }
    }

    /// How many bytes the runtime may read from socket link `id` now.
    pub(super) fn socket_input_room(&self, id: LinkId) -> usize {
        let Some(socket) = self
            .sockets
            .slots
            .get(usize::from(id))
            .and_then(Option::as_ref)
        else {
            return 0;
        };
        if self.net_paused {
            return 0;
        }
        let passive = self.sockets.config[usize::from(id)].passive;
        match socket.kind {
            Kind::Tcp | Kind::Ssl if passive && !self.in_passthrough() => {
                PASSIVE_BUFFER.saturating_sub(socket.buffered)
            }
            _ => usize::MAX,
        }
    }

    pub(super) fn socket_deadlines(&self) -> impl Iterator<Item = u64> + '_ {
        let idle_ms = u64::from(self.sockets.idle_timeout_s) * 1000;
        let links = self.sockets.slots.iter().flatten().filter_map(move |s| {
            s.connecting.or_else(|| {
                (s.server_side && idle_ms > 0).then(|| s.last_activity.saturating_add(idle_ms))
            })
        });
        let passthrough = match &self.input {
            Input::Passthrough(p) => p.burst.deadline(),
            Input::LongSend(l) => l.burst.deadline(),
            _ => None,
        };
        let reconnect = self.sockets.reconnect.as_ref().map(|(_, at)| *at);
        links.chain(passthrough).chain(reconnect)
    }

    /// Passthrough's link went: it is connected again after the interval.
    fn schedule_reconnect(&mut self, origin: Origin) {
        let interval = u64::from(self.sockets.reconnect_interval) * 100;
        self.sockets.reconnect = Some((origin, self.now.saturating_add(interval)));
    }

    pub(super) fn socket_timeouts(&mut self) {
        let now = self.now;
        let idle_ms = u64::from(self.sockets.idle_timeout_s) * 1000;
        for id in 0..SOCKET_COUNT as LinkId {
            let Some(socket) = self.sockets.slots[usize::from(id)].as_ref() else {
                continue;
            };
            if socket.connecting.is_some_and(|d| now >= d) {
                self.socket_connect_failed(id);
            } else if socket.server_side
                && idle_ms > 0
                && now >= socket.last_activity.saturating_add(idle_ms)
            {
                self.socket_gone(id, true);
            }
        }
        self.passthrough_timeout();
        self.long_send_timeout();
        let due = self.sockets.reconnect.take_if(|(_, at)| now >= *at);
        if let Some((origin, _)) = due.filter(|_| self.in_passthrough()) {
            if self.sockets.slots[0].is_none() && self.associated() {
                self.connect_socket(0, origin, CONNECT_TIMEOUT_MS);
            } else {
                self.schedule_reconnect(origin);
            }
        }
    }

    // --- passthrough ---------------------------------------------------------

    fn start_passthrough(&mut self) -> Result<Reply, AtError> {
        let socket = self.sockets.connected(0).ok_or(AtError::exec())?;
        if socket.kind == Kind::Udp && socket.peer.is_none() {
            return Err(AtError::exec());
        }
        self.out.extend_from_slice(at::PROMPT);
        self.input = Input::Passthrough(Passthrough {
            burst: Burst::new(self.now),
        });
        Ok(Reply::Done)
    }

    /// Host bytes in passthrough mode: all data, except a `+++` alone
    /// between silences.
    pub(super) fn passthrough_input(&mut self, bytes: &[u8]) -> usize {
        let now = self.now;
        self.passthrough_timeout();
        let Input::Passthrough(p) = &mut self.input else {
            return 0;
        };
        if p.burst.escape(bytes, now, true, &mut 0) {
            return bytes.len();
        }
        crate::bytes::append(&mut p.burst.pending, bytes);
        while let Input::Passthrough(p) = &mut self.input {
            if p.burst.pending.len() < PASSTHROUGH_PACKET {
                break;
            }
            let packet: Vec<u8> = p.burst.pending.drain(..PASSTHROUGH_PACKET).collect();
            self.queue_socket_send(0, None, packet);
        }
        bytes.len()
    }

    /// Passthrough's timers: send what waited a silence, or leave after `+++`.
    fn passthrough_timeout(&mut self) {
        let now = self.now;
        let Input::Passthrough(p) = &mut self.input else {
            return;
        };
        if p.burst.escaped(now) {
            let pending = core::mem::take(&mut p.burst.pending);
            self.input = Input::Line;
            self.sockets.reconnect = None;
            if !pending.is_empty() {
                self.queue_socket_send(0, None, pending);
            }
            if self.sysmsg(1) {
                self.out.extend_from_slice(b"\r\n+QUITT\r\n");
            }
            return;
        }
        if p.burst.silent(now) {
            let pending = core::mem::take(&mut p.burst.pending);
            self.queue_socket_send(0, None, pending);
        }
    }

    /// Passthrough reads the host only while the link keeps up.
    pub(super) fn passthrough_wants_input(&self) -> bool {
        match self.sockets.slots[0].as_ref() {
            Some(s) => s.sends_queued - s.sends_done < PASSTHROUGH_MAX_SENDS,
            None => true,
        }
    }

    // --- names and pings -----------------------------------------------------

    /// `AT+CIPDOMAIN="<name>"[,<ip network>][,<timeout>][,<show all>]`.
    pub(super) fn cmd_cipdomain(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let args = Args::parse(p, 4)?;
        let host = host_arg(&args, 0, MAX_NAME)?;
        let family = args.opt_int(1, 1..=3)?.unwrap_or(1) as u8;
        let timeout = args.opt_int(2, 0..=60_000)?.filter(|&t| t > 0);
        let all = args.opt_int(3, 0..=1)? == Some(1);
        if !self.associated() {
            return Err(AtError::exec());
        }
        self.actions.push_back(NetAction::Resolve { host });
        let wait = timeout.map_or(LOOKUP_TIMEOUT_MS, |t| t as u64);
        Ok(Reply::Busy(Wait::Resolve {
            family,
            all,
            deadline: self.now.saturating_add(wait),
        }))
    }

    pub(super) fn resolved(&mut self, addrs: &[IpAddr]) {
        let Input::Busy(Wait::Resolve { family, all, .. }) = self.input else {
            return;
        };
        let v4 = addrs.iter().filter(|a| a.to_canonical().is_ipv4());
        let v6 = addrs.iter().filter(|a| !a.to_canonical().is_ipv4());
        let chosen: Vec<&IpAddr> = match family {
            2 => v4.collect(),
            3 => v6.collect(),
            _ => v4.chain(v6).collect(),
        };
        if chosen.is_empty() {
            return self.finish_wait(Err(AtError::exec()));
        }
        let count = if all { chosen.len() } else { 1 };
        for ip in &chosen[..count] {
            let line = format!("+CIPDOMAIN:\"{}\"\r\n", ip_text(**ip));
            self.out.extend_from_slice(line.as_bytes());
        }
        self.finish_wait(Ok(at::OK));
    }

    /// `AT+PING="<host>"`: a real round trip, measured by the runtime.
    pub(super) fn cmd_ping(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let host = host_arg(&Args::parse(p, 1)?, 0, MAX_NAME)?;
        if !self.associated() {
            return Err(AtError::exec());
        }
        self.actions.push_back(NetAction::Ping { host });
        Ok(Reply::Busy(Wait::Ping {
            deadline: self.now.saturating_add(LOOKUP_TIMEOUT_MS),
        }))
    }

    pub(super) fn pinged(&mut self, rtt: Option<u32>) {
        if !matches!(self.input, Input::Busy(Wait::Ping { .. })) {
            return;
        }
        match rtt {
            Some(ms) => {
                let line = format!("+PING:{}\r\n", ms.max(1));
                self.out.extend_from_slice(line.as_bytes());
                self.finish_wait(Ok(at::OK));
            }
            None => {
                self.out.extend_from_slice(b"+PING:TIMEOUT\r\n");
                self.finish_wait(Err(AtError::exec()));
            }
        }
    }

    // --- SSL client settings -------------------------------------------------

    /// The links an `AT+CIPSSLC*` command names: parameter 0 in
    /// multi-connection mode (5: all), link 0 otherwise.
    fn ssl_ids(&self, args: &Args) -> Result<(core::ops::Range<usize>, usize), AtError> {
        let (id, next) = self.socket_id(args, SOCKET_COUNT as i64)?;
        let id = usize::from(id);
        Ok((if id == 5 { 0..SOCKET_COUNT } else { id..id + 1 }, next))
    }

    fn ssl_query_ids(&self) -> core::ops::Range<usize> {
        if self.sockets.mux {
            0..SOCKET_COUNT
        } else {
            0..1
        }
    }

    pub(super) fn cmd_cipsslcconf(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            for id in self.ssl_query_ids() {
                let c = &self.sockets.config[id];
                let line = format!(
                    "+CIPSSLCCONF:{id},{},{},{}\r\n",
                    c.ssl_auth, c.ssl_pki, c.ssl_ca
                );
                self.out.extend_from_slice(line.as_bytes());
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 4)?;
        let (ids, first) = self.ssl_ids(&args)?;
        let auth = args.int(first, 0..=3)? as u8;
        let max = i64::from(crate::pki::MAX_INDEX);
        let pki = args.opt_int(first + 1, 0..=max)?.unwrap_or(0) as u8;
        let ca = args.opt_int(first + 2, 0..=max)?.unwrap_or(0) as u8;
        // Missing material is said now, as ESP-AT does.
        self.load_tls(crate::pki::CLIENT, auth, pki, ca)?;
        for id in ids {
            let c = &mut self.sockets.config[id];
            (c.ssl_auth, c.ssl_pki, c.ssl_ca) = (auth, pki, ca);
        }
        Ok(Reply::Ok)
    }

    /// `AT+CIPSSLCCN` (`sni`: `AT+CIPSSLCSNI`): one name per link.
    pub(super) fn cmd_cipsslc_name(&mut self, form: Form<'_>, sni: bool) -> Result<Reply, AtError> {
        let name = if sni { "CIPSSLCSNI" } else { "CIPSSLCCN" };
        let Form::Set(p) = form else {
            for id in self.ssl_query_ids() {
                let c = self.sockets.config[id].names();
                let value = if sni { &c.sni } else { &c.common_name };
                let id_text = format!("+{name}:{id},");
                let value = value.clone().unwrap_or_default();
                self.info_line(&[id_text.as_bytes(), &value]);
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 2)?;
        let (ids, first) = self.ssl_ids(&args)?;
        let value = args.str(first)?;
        if value.is_empty() || value.len() > 64 || core::str::from_utf8(value).is_err() {
            return Err(invalid(first as u16 + 1));
        }
        for id in ids {
            let c = self.sockets.config[id].names_mut();
            let slot = if sni { &mut c.sni } else { &mut c.common_name };
            *slot = Some(value.to_vec());
        }
        Ok(Reply::Ok)
    }

    /// `AT+CIPSSLCALPN=[<id>,]<counts>[,"<alpn>"]...`.
    pub(super) fn cmd_cipsslcalpn(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            for id in self.ssl_query_ids() {
                let mut line = format!("+CIPSSLCALPN:{id}").into_bytes();
                for alpn in &self.sockets.config[id].names().alpn {
                    line.push(b',');
                    line.extend_from_slice(alpn);
                }
                self.info_line(&[&line]);
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 7)?;
        let (ids, first) = self.ssl_ids(&args)?;
        let count = args.int(first, 0..=5)? as usize;
        if args.len() != first + 1 + count {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let mut alpn = Vec::new();
        for i in 0..count {
            let value = args.str(first + 1 + i)?;
            if value.is_empty() || value.len() > 255 {
                return Err(invalid((first + 2 + i) as u16));
            }
            alpn.push(value.to_vec());
        }
        for id in ids {
            self.sockets.config[id].names_mut().alpn = alpn.clone();
        }
        Ok(Reply::Ok)
    }

    /// `AT+CIPSSLCPSK=[<id>,]"<psk>","<hint>"`: kept and shown; wsat's TLS
    /// has no PSK suites, so it changes no handshake.
    pub(super) fn cmd_cipsslcpsk(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            for id in self.ssl_query_ids() {
                let (psk, hint) = self.sockets.config[id]
                    .names()
                    .psk
                    .clone()
                    .unwrap_or_default();
                let head = format!("+CIPSSLCPSK:{id},");
                self.info_line(&[head.as_bytes(), &psk, b",", &hint]);
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 3)?;
        let (ids, first) = self.ssl_ids(&args)?;
        let psk = args.str(first)?;
        let hint = args.str(first + 1)?;
        if psk.len() > 32 || hint.len() > 32 {
            return Err(invalid(first as u16 + 1));
        }
        for id in ids {
            self.sockets.config[id].names_mut().psk = Some((psk.to_vec(), hint.to_vec()));
        }
        Ok(Reply::Ok)
    }
}

/// Parameter `i`, a host name or address: UTF-8, 1 to `max` bytes.
fn host_arg(args: &Args, i: usize, max: usize) -> Result<String, AtError> {
    let host = args.str(i)?;
    match core::str::from_utf8(host) {
        Ok(text) if !text.is_empty() && text.len() <= max => Ok(String::from(text)),
        _ => Err(invalid(i as u16 + 1)),
    }
}

/// A flag as a query prints it.
fn digit(on: bool) -> &'static [u8] {
    if on {
        b"1"
    } else {
        b"0"
    }
}

/// `<"local IP">`: empty or an address (which address the host's socket
/// uses is the host's business).
fn local_ip(args: &Args, i: usize) -> Result<(), AtError> {
    match args.opt_str(i)? {
        Some(ip) if !ip.is_empty() => core::str::from_utf8(ip)
            .ok()
            .and_then(|t| t.parse::<IpAddr>().ok())
            .map(|_| ())
            .ok_or(invalid(i as u16 + 1)),
        _ => Ok(()),
    }
}
