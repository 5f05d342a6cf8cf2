//! The modem fed bytes and events, asserting exact AT output and exact frames.
//!
//! The rig is [`crate::testing::Sim`] with a network the test answers by hand.
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::testing::{self, Read, Sim, SIM_LOCAL, SIM_PEER_IP};

/// A connection came up (its addresses matter only to socket links).
const CONNECTED: NetEvent<'static> = NetEvent::Connected {
    local: SIM_LOCAL,
    remote: SocketAddr::new(SIM_PEER_IP, 80),
};
use crate::ws;

mod faults;
mod firmware;
mod sockets;

/// A modem with its `ready` read, driven by the simulator.
struct Rig {
    sim: Sim,
}

/// A frame the client sent, unmasked.
#[derive(Debug, PartialEq, Eq)]
struct ClientFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> ClientFrame {
    ClientFrame {
        fin,
        opcode,
        payload: payload.to_vec(),
    }
}

use testing::server_frame;

/// Parses masked client frames; panics (test failure) on anything else.
fn parse_client_frames(bytes: &[u8]) -> Vec<ClientFrame> {
    let frames = testing::parse_frames(bytes).expect("whole frames");
    frames
        .into_iter()
        .map(|f| {
            assert_eq!(f.header.rsv, 0, "RSV bits");
            assert!(f.header.mask.is_some(), "client frames are masked");
            ClientFrame {
                fin: f.header.fin,
                opcode: f.header.opcode.into(),
                payload: f.payload,
            }
        })
        .collect()
}

impl Rig {
    fn new() -> Self {
        let mut rig = Rig { sim: Sim::new() };
        assert_eq!(rig.output(), testing::BOOT);
        rig
    }

    /// A modem with echo off, so outputs are just the answers.
    fn quiet() -> Self {
        let mut rig = Rig::new();
        assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
        rig
    }

    fn output(&mut self) -> Vec<u8> {
        self.sim.host_read()
    }

    /// Feeds bytes; asserts the modem acted on all of them; returns the output.
    fn input(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.sim.host_write(bytes);
        assert_eq!(self.sim.unread_input(), 0, "input not acted on");
        self.output()
    }

    /// Feeds bytes the modem may not act on at once (they wait in it).
    fn type_ahead(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.sim.host_write(bytes);
        self.output()
    }

    fn at(&mut self, line: &str) -> Vec<u8> {
        self.input(format!("{line}\r\n").as_bytes())
    }

    fn actions(&mut self) -> Vec<NetAction> {
        self.sim.network.actions.drain(..).collect()
    }

    fn event(&mut self, link: LinkId, event: NetEvent<'_>) -> Vec<u8> {
        self.sim.net_event(Link::Ws(link), event);
        self.output()
    }

    /// Advances the clock to `ms` and fires what is due.
    fn advance_to(&mut self, ms: u64) -> Vec<u8> {
        self.sim.advance_to(ms);
        self.output()
    }

    /// The frames of every `Send` action for `link` (acknowledging each).
    fn sent_frames(&mut self, link: LinkId) -> Vec<ClientFrame> {
        let mut frames = Vec::new();
        for action in self.actions() {
            if let NetAction::Send { link: l, bytes } = action {
                assert_eq!(l, Link::Ws(link));
                frames.extend(parse_client_frames(&bytes));
                self.sim.net_event(Link::Ws(link), NetEvent::Sent);
            }
        }
        frames
    }

    /// Runs `AT+WSOPEN` on `link` through a successful handshake.
    fn open(&mut self, link: LinkId) {
        let out = self.at(&format!(
            "AT+WSOPEN={link},\"ws://example.com:8080/chat?x=1\""
        ));
        assert_eq!(out, b"");
        let actions = self.actions();
        assert_eq!(
            actions,
            vec![NetAction::Connect {
                link: Link::Ws(link),
                host: "example.com".into(),
                port: 8080,
                transport: Transport::Tcp,
                keep_alive_s: 0,
            }]
        );
        assert_eq!(self.event(link, CONNECTED), b"");
        let request = self.handshake_request(link);
        let response = handshake_response(&request);
        let out = self.event(link, NetEvent::Received(&response));
        assert_eq!(
            out,
            format!("+WS_CONNECTED:{link}\r\n\r\nOK\r\n").as_bytes()
        );
    }

    /// The handshake request the modem sent on `link`.
    fn handshake_request(&mut self, link: LinkId) -> String {
        let actions = self.actions();
        let [NetAction::Send { link: l, bytes }] = &actions[..] else {
            panic!("expected the handshake request, got {actions:?}");
        };
        assert_eq!(*l, Link::Ws(link));
        self.sim.net_event(Link::Ws(link), NetEvent::Sent);
        String::from_utf8(bytes.clone()).unwrap()
    }

    fn server_sends(&mut self, link: LinkId, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        self.event(
            link,
            NetEvent::Received(&server_frame(fin, opcode, payload)),
        )
    }

    /// A reset command: its answer, and `ready` once the restart delay
    /// (500 ms by default) is over, with nothing between.
    /// `line`, its answer, `ready` after the restart delay and the join
    /// of the stored AP (if any) after the join delay.
    fn reset(&mut self, line: &str) -> Vec<u8> {
        let mut out = self.at(line);
        let start = self.sim.now;
        assert_eq!(self.advance_to(start + 499), b"", "ready too early");
        out.extend(self.advance_to(start + 500));
        assert_eq!(self.advance_to(start + 999), b"", "joined too early");
        out.extend(self.advance_to(start + 1000));
        out
    }

    /// Bytes of reports held back for the host.
    fn held(&self) -> usize {
        self.sim.modem.held.len()
    }
}

/// The reports of a join.
const JOINED: &[u8] = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n";

/// `answer`, then `ready` and the join of the stored AP.
/// `len` bytes that do not repeat per send or per chunk (251 is prime), so
/// a lost, doubled or reordered piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn ok_then_boot(answer: &[u8]) -> Vec<u8> {
    [answer, testing::BOOT].concat()
}

fn header<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    request.lines().find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        key.eq_ignore_ascii_case(name).then_some(value)
    })
}

fn handshake_response(request: &str) -> Vec<u8> {
    testing::handshake_response(request.as_bytes()).expect("a handshake request")
}

// --- the AT port ---------------------------------------------------------

#[test]
fn echo_is_on_at_start_and_ate0_turns_it_off() {
    let mut rig = Rig::new();
    assert_eq!(rig.at("AT"), b"AT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(rig.at("ATE1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT"), b"AT\r\n\r\nOK\r\n");
}

#[test]
fn any_terminator_ends_a_line_once() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.input(b"AT\r"), b"\r\nOK\r\n");
    // The LF of that CR LF arrives late: it is not a second, empty line.
    assert_eq!(rig.input(b"\nAT\n"), b"\r\nOK\r\n");
    assert_eq!(
        rig.input(b"AT\r\nAT\rAT\n"),
        b"\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n"
    );
    // Empty lines are ignored.
    assert_eq!(rig.input(b"\r\n\r\n\n"), b"");
}

#[test]
fn echo_is_byte_for_byte_as_received() {
    let mut rig = Rig::new();
    assert_eq!(rig.input(b"A"), b"A");
    // CR and LF in separate reads: the LF's echo comes before the answer,
    // as on a module (the line waits briefly for it).
    assert_eq!(rig.input(b"T\r"), b"T\r");
    assert_eq!(rig.input(b"\n"), b"\n\r\nOK\r\n");
    // A lone CR with nothing after it ends the line after a short wait.
    assert_eq!(rig.input(b"AT\r"), b"AT\r");
    assert_eq!(rig.advance_to(101), b"");
    assert_eq!(rig.advance_to(102), b"\r\nOK\r\n");
    // Its LF, should it come late after all, is skipped; a CR followed by
    // anything else ends its line at once.
    assert_eq!(
        rig.input(b"\nAT\rAT\r\n"),
        b"AT\r\r\nOK\r\nAT\r\n\r\nOK\r\n"
    );
}

#[test]
fn lines_longer_than_256_bytes_are_errors_and_the_modem_stays_in_sync() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+SYSLOG=1"), b"\r\nOK\r\n");
    let exactly_256 = format!("AT+{}", "X".repeat(253));
    assert_eq!(
        rig.at(&exactly_256),
        b"ERR CODE:0x01090000\r\n\r\nERROR\r\n"
    );
    let long = "A".repeat(10 * 1024);
    assert_eq!(rig.input(long.as_bytes()), b"");
    assert_eq!(rig.input(b"\r\n"), b"ERR CODE:0x01040000\r\n\r\nERROR\r\n");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
}

#[test]
fn garbage_gets_errors_and_never_panics() {
    let mut rig = Rig::quiet();
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    rig.input(&garbage);
    rig.input(b"\r\n");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(rig.at("at"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("XYZ"), b"\r\nERROR\r\n");
}

#[test]
fn syslog_codes_for_each_kind_of_error() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+SYSLOG?"), b"+SYSLOG:0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSLOG=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSLOG?"), b"+SYSLOG:1\r\n\r\nOK\r\n");
    let cases = [
        ("AT+NOPE", 0x0109_0000),
        ("at", 0x0103_0000),
        ("AT+WSCLOSE?", 0x010C_0000),
        ("AT+WSCLOSE=3", 0x0107_0001),
        ("AT+WSCLOSE=\"0\"", 0x0105_0001),
        ("AT+WSCLOSE=0,1", 0x0106_0002),
        ("AT+WSOPEN=0,\"ws://h", 0x0108_0002),
        ("AT+WSCLOSE=", 0x0106_0001),
    ];
    for (line, code) in cases {
        let expected = format!("ERR CODE:0x{code:08x}\r\n\r\nERROR\r\n");
        assert_eq!(String::from_utf8(rig.at(line)).unwrap(), expected, "{line}");
    }
}

#[test]
fn basic_commands() {
    let mut rig = Rig::quiet();
    let gmr = String::from_utf8(rig.at("AT+GMR")).unwrap();
    assert!(
        gmr.starts_with("AT version:5.1.0.0-dev(0000000 - ESP32C3 - "),
        "{gmr}"
    );
    // A chip tag drivers know (lwesp), and wsat named on the next line.
    assert!(gmr.contains("\r\nSDK version:wsat v") && gmr.contains("\r\ncompile time(0000000):"));
    assert!(gmr.contains("\r\nBin version:v5.1.0.0-dev(wsat)\r\n"));
    assert!(gmr.ends_with("\r\n\r\nOK\r\n"));
    let cmd = String::from_utf8(rig.at("AT+CMD?")).unwrap();
    assert!(cmd.starts_with("+CMD:0,\"AT\",0,0,0,1\r\n+CMD:1,\"ATE0\",0,0,0,1\r\n"));
    assert!(cmd.contains("\"AT+WSOPEN\",0,1,1,0\r\n"));
    assert!(cmd.contains("\"AT+WSSEND\",0,0,1,0\r\n"));
    assert!(cmd.ends_with("\r\nOK\r\n"));
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:2,\"wsat\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWMODE=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWMODE?"), b"+CWMODE:1\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWMODE=4"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+SYSSTORE=0"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSNTPCFG=1,8,\"ntp.example\""),
        b"\r\nOK\r\n+TIME_UPDATED\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSNTPTIME?"),
        b"+CIPSNTPTIME:Tue Oct 19 04:12:27 2021\r\n\r\nOK\r\n"
    );
}

#[test]
fn other_start_up_commands_drivers_send() {
    let mut rig = Rig::quiet();
    for (name, default, good, bad) in [
        ("SYSSTORE", 1, 0, 2),
        ("SYSMSG", 0, 7, 8),
        ("SLEEP", 0, 3, 4),
        ("CWAUTOCONN", 1, 0, 2),
        ("CIPMUX", 0, 1, 2),
    ] {
        let query = format!("AT+{name}?");
        let answer = |v| format!("+{name}:{v}\r\n\r\nOK\r\n").into_bytes();
        assert_eq!(rig.at(&query), answer(default), "{name}");
        assert_eq!(rig.at(&format!("AT+{name}={good}")), b"\r\nOK\r\n");
        assert_eq!(rig.at(&query), answer(good), "{name}");
        assert_eq!(rig.at(&format!("AT+{name}={bad}")), b"\r\nERROR\r\n");
        assert_eq!(rig.at(&format!("AT+{name}")), b"\r\nERROR\r\n");
    }
    assert_eq!(
        rig.at("AT+CIFSR"),
        b"+CIFSR:STAIP,\"127.0.0.1\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSTA?"),
        b"+CIPSTA:ip:\"127.0.0.1\"\r\n+CIPSTA:gateway:\"127.0.0.1\"\r\n\
          +CIPSTA:netmask:\"255.0.0.0\"\r\n\r\nOK\r\n"
    );
    // Leaving the AP: OK, then the report; no address any more.
    assert_eq!(rig.at("AT+CWQAP"), b"\r\nOK\r\nWIFI DISCONNECT\r\n");
    assert_eq!(rig.at("AT+CWQAP"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIFSR"),
        b"+CIFSR:STAIP,\"0.0.0.0\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n"
    );
    // AT+RST forgets them (but AT+CWAUTOCONN=0, kept in flash, means no
    // join after `ready`); AT+RESTORE too, and answers like AT+RST.
    assert_eq!(rig.reset("AT+RST"), b"\r\nOK\r\n\r\nready\r\n");
    assert_eq!(
        rig.at("AT+CIPMUX?"),
        b"AT+CIPMUX?\r\n+CIPMUX:0\r\n\r\nOK\r\n"
    );
    // AT+RESTORE erases the flash: autoconnect is on again, but there is
    // no stored AP any more to join after `ready` (esp-at-tcpip.md §1.3).
    assert_eq!(
        rig.reset("AT+RESTORE"),
        b"AT+RESTORE\r\n\r\nOK\r\n\r\nready\r\n"
    );
    assert_eq!(
        rig.at("AT+CWAUTOCONN?"),
        b"AT+CWAUTOCONN?\r\n+CWAUTOCONN:1\r\n\r\nOK\r\n"
    );
}

#[test]
fn basic_commands_drivers_read_their_values_from() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+SYSRAM?"), b"+SYSRAM:166096,147832\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSRAM"), b"\r\nERROR\r\n");
    let partitions = String::from_utf8(rig.at("AT+SYSFLASH?")).unwrap();
    assert!(
        partitions.starts_with("+SYSFLASH:\"ble_data\",64,1,0x1f000,0x6000\r\n"),
        "{partitions}"
    );
    assert!(partitions.contains("\r\n+SYSFLASH:\"client_ca\",64,7,0x2f000,0x2000\r\n"));
    assert!(partitions.ends_with("+SYSFLASH:\"mqtt_ca\",64,14,0x3c000,0x2000\r\n\r\nOK\r\n"));
    assert_eq!(
        rig.at("AT+SYSFLASH=2,\"client_ca\",0,100"),
        b"\r\nERROR\r\n"
    );
    // AT+RFPOWER: kept and read back, BLE levels optional.
    assert_eq!(rig.at("AT+RFPOWER?"), b"+RFPOWER:78,11,11,11\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+RFPOWER=40"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+RFPOWER?"), b"+RFPOWER:40,11,11,11\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+RFPOWER=84,0,15,7"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+RFPOWER?"), b"+RFPOWER:84,0,15,7\r\n\r\nOK\r\n");
    for bad in [
        "AT+RFPOWER=39",
        "AT+RFPOWER=85",
        "AT+RFPOWER=80,16",
        "AT+RFPOWER=80,1,2,3,4",
        "AT+RFPOWER",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    assert_eq!(rig.at("AT+RFPOWER?"), b"+RFPOWER:84,0,15,7\r\n\r\nOK\r\n");
}

#[test]
fn systimestamp_moves_the_clock_until_sntp_sets_it() {
    let mut rig = Rig::quiet();
    // The host's clock (the simulator's: 2021-10-18 20:12:27 UTC).
    assert_eq!(
        rig.at("AT+SYSTIMESTAMP?"),
        b"+SYSTIMESTAMP:1634587947\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+SYSTIMESTAMP=1565853509"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+SYSTIMESTAMP?"),
        b"+SYSTIMESTAMP:1565853509\r\n\r\nOK\r\n"
    );
    // One clock: AT+CIPSNTPTIME? reads it too (timezone 0 by default).
    assert_eq!(
        rig.at("AT+CIPSNTPTIME?"),
        b"+CIPSNTPTIME:Thu Aug 15 07:18:29 2019\r\n\r\nOK\r\n"
    );
    for bad in [
        "AT+SYSTIMESTAMP=-1",
        "AT+SYSTIMESTAMP=4294967296",
        "AT+SYSTIMESTAMP=\"1\"",
        "AT+SYSTIMESTAMP=1,2",
        "AT+SYSTIMESTAMP",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    // The RTC keeps running through a reset.
    assert_eq!(rig.reset("AT+RST"), ok_then_boot(b"\r\nOK\r\n"));
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+SYSTIMESTAMP?"),
        b"+SYSTIMESTAMP:1565853509\r\n\r\nOK\r\n"
    );
    // An SNTP sync puts it right again.
    assert_eq!(rig.at("AT+CIPSNTPCFG=1,0"), b"\r\nOK\r\n+TIME_UPDATED\r\n");
    assert_eq!(
        rig.at("AT+SYSTIMESTAMP?"),
        b"+SYSTIMESTAMP:1634587947\r\n\r\nOK\r\n"
    );
}

#[test]
fn reset_answers_ok_then_ready_and_restores_defaults() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.input(b"AT+WSHEAD=6\r\n"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"X-A: 1"), b"\r\nOK\r\n");
    assert_eq!(rig.reset("AT+RST"), ok_then_boot(b"\r\nOK\r\n"));
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    // Echo is back on, the link and the headers are gone.
    assert_eq!(rig.at("AT+WSOPEN?"), b"AT+WSOPEN?\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSHEAD?"), b"AT+WSHEAD?\r\n\r\nOK\r\n");
}

// --- AT+WSCFG / AT+WSHEAD ------------------------------------------------

#[test]
fn wscfg_validates_every_parameter() {
    let mut rig = Rig::quiet();
    for good in [
        "AT+WSCFG=0,30,60,4096",
        "AT+WSCFG=2,1,1,1",
        "AT+WSCFG=1,7200,7200,16384",
        "AT+WSCFG=0,30,60",
        "AT+WSCFG=0,,,",
        "AT+WSCFG=0,30,60,,0",
        "AT+WSCFG=0,30,60,1024,0,0,0",
    ] {
        assert_eq!(rig.at(good), b"\r\nOK\r\n", "{good}");
    }
    for bad in [
        "AT+WSCFG=3,30,60",
        "AT+WSCFG=-1,30,60",
        "AT+WSCFG=0,0,60",
        "AT+WSCFG=0,7201,60",
        "AT+WSCFG=0,30,0",
        "AT+WSCFG=0,30,7201",
        "AT+WSCFG=0,30,60,0",
        "AT+WSCFG=0,30,60,16385",
        "AT+WSCFG=0,30,60,1024,4,0,0",
        "AT+WSCFG=0,30,60,1024,2",
        "AT+WSCFG=0,30",
        "AT+WSCFG=0,30,60,1024,0,0,0,9",
        "AT+WSCFG=0,\"30\",60",
        "AT+WSCFG",
        "AT+WSCFG?",
        "AT+WSCFG=?",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

#[test]
fn wscfg_with_certificates_reports_what_is_missing() {
    let mut rig = Rig::quiet();
    assert_eq!(
        rig.at("AT+WSCFG=0,30,60,4096,2,0,0"),
        b"NO CA FOUND\r\n\r\nERROR\r\n"
    );
    assert_eq!(
        rig.at("AT+WSCFG=0,30,60,4096,1,0,0"),
        b"NO CERT FOUND\r\n\r\nERROR\r\n"
    );
}

// --- AT+SYSMFG and the TLS material of AT+WSCFG ------------------------

/// A PEM-looking value with everything that could trip a text path: CR LF,
/// quotes, commas, backslashes, NUL and bytes that are not UTF-8.
fn awkward_pem() -> Vec<u8> {
    let mut pem = b"-----BEGIN CERTIFICATE-----\r\nMIIB,\"x\"\\y\n".to_vec();
    pem.extend_from_slice(&[0, 0xFF, 0xFE, b'\r', b'\n', b'>']);
    pem.extend_from_slice(b"-----END CERTIFICATE-----\r\n");
    pem
}

impl Rig {
    /// Writes `value` with `AT+SYSMFG=2`, asserting the prompt and the `OK`.
    fn sysmfg_write(&mut self, namespace: &str, key: &str, value: &[u8]) {
        let line = format!("AT+SYSMFG=2,\"{namespace}\",\"{key}\",8,{}", value.len());
        assert_eq!(self.at(&line), b"\r\nOK\r\n\r\n>", "{line}");
        assert_eq!(self.input(value), b"\r\nOK\r\n");
    }

    fn stored(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.sim.store.lock().unwrap();
        store.entries.get(&(namespace.into(), key.into())).cloned()
    }
}

#[test]
fn sysmfg_round_trips_a_binary_value_byte_for_byte() {
    let mut rig = Rig::new();
    let pem = awkward_pem();
    // Echo on: the command line is echoed, the value after `>` never is.
    let line = format!("AT+SYSMFG=2,\"wss_ca\",\"wss_ca.0\",8,{}\r\n", pem.len());
    let mut expected = line.clone().into_bytes();
    expected.extend_from_slice(b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(line.as_bytes()), expected);
    // In two pieces, to show the value may arrive in any chunks.
    assert_eq!(rig.input(&pem[..10]), b"");
    assert_eq!(rig.input(&pem[10..]), b"\r\nOK\r\n");
    assert_eq!(rig.stored("wss_ca", "wss_ca.0"), Some(pem.clone()));

    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    let mut expected = format!("+SYSMFG:\"wss_ca\",\"wss_ca.0\",8,{},", pem.len()).into_bytes();
    expected.extend_from_slice(&pem);
    expected.extend_from_slice(b"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSMFG=1,\"wss_ca\",\"wss_ca.0\""), expected);

    // Writing again replaces the value.
    rig.sysmfg_write("wss_ca", "wss_ca.0", b"new");
    assert_eq!(
        rig.at("AT+SYSMFG=1,\"wss_ca\",\"wss_ca.0\""),
        b"+SYSMFG:\"wss_ca\",\"wss_ca.0\",8,3,new\r\n\r\nOK\r\n"
    );
}

#[test]
fn sysmfg_reads_part_of_a_value() {
    let mut rig = Rig::quiet();
    rig.sysmfg_write("wss_cert", "wss_cert.1", b"0123456789");
    let read = |rig: &mut Rig, offset: u32, length: u32| {
        rig.at(&format!(
            "AT+SYSMFG=1,\"wss_cert\",\"wss_cert.1\",{offset},{length}"
        ))
    };
    assert_eq!(
        read(&mut rig, 2, 3),
        b"+SYSMFG:\"wss_cert\",\"wss_cert.1\",8,3,234\r\n\r\nOK\r\n"
    );
    // The last part is shorter: a host can read in fixed steps.
    assert_eq!(
        read(&mut rig, 8, 4),
        b"+SYSMFG:\"wss_cert\",\"wss_cert.1\",8,2,89\r\n\r\nOK\r\n"
    );
    assert_eq!(read(&mut rig, 10, 1), b"\r\nERROR\r\n");
    assert_eq!(read(&mut rig, 0, 0), b"\r\nERROR\r\n");
    // An offset needs a length.
    assert_eq!(
        rig.at("AT+SYSMFG=1,\"wss_cert\",\"wss_cert.1\",2"),
        b"\r\nERROR\r\n"
    );
}

#[test]
fn sysmfg_lists_namespaces_and_keys() {
    let mut rig = Rig::quiet();
    let namespaces: &[u8] =
        b"+SYSMFG:\"wss_cert\"\r\n+SYSMFG:\"wss_key\"\r\n+SYSMFG:\"wss_ca\"\r\n\
        +SYSMFG:\"client_cert\"\r\n+SYSMFG:\"client_key\"\r\n+SYSMFG:\"client_ca\"\r\n\r\nOK\r\n";
    assert_eq!(rig.at("AT+SYSMFG?"), namespaces);
    assert_eq!(rig.at("AT+SYSMFG=1"), namespaces);
    assert_eq!(rig.at("AT+SYSMFG=1,\"wss_cert\""), b"\r\nOK\r\n");
    rig.sysmfg_write("wss_cert", "wss_cert.10", b"a");
    rig.sysmfg_write("wss_cert", "wss_cert.2", b"b");
    rig.sysmfg_write("wss_key", "wss_key.0", b"c");
    // By index, not by text.
    assert_eq!(
        rig.at("AT+SYSMFG=1,\"wss_cert\""),
        b"+SYSMFG:\"wss_cert\",\"wss_cert.2\",8\r\n\
          +SYSMFG:\"wss_cert\",\"wss_cert.10\",8\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+SYSMFG?"), namespaces);
}

#[test]
fn sysmfg_erases_a_key_or_a_namespace() {
    let mut rig = Rig::quiet();
    rig.sysmfg_write("wss_ca", "wss_ca.0", b"zero");
    rig.sysmfg_write("wss_ca", "wss_ca.1", b"one");
    rig.sysmfg_write("wss_key", "wss_key.0", b"key");
    assert_eq!(rig.at("AT+SYSMFG=0,\"wss_ca\",\"wss_ca.0\""), b"\r\nOK\r\n");
    assert_eq!(rig.stored("wss_ca", "wss_ca.0"), None);
    // Gone: reading or erasing it again fails, as in ESP-AT.
    assert_eq!(
        rig.at("AT+SYSMFG=1,\"wss_ca\",\"wss_ca.0\""),
        b"\r\nERROR\r\n"
    );
    assert_eq!(
        rig.at("AT+SYSMFG=0,\"wss_ca\",\"wss_ca.0\""),
        b"\r\nERROR\r\n"
    );
    assert_eq!(rig.at("AT+SYSMFG=0,\"wss_ca\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSMFG=1,\"wss_ca\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSMFG=0,\"wss_ca\""), b"\r\nOK\r\n");
    // Other namespaces keep their entries.
    assert_eq!(rig.stored("wss_key", "wss_key.0"), Some(b"key".to_vec()));
}

#[test]
fn sysmfg_rejects_bad_parameters_and_failed_writes() {
    let mut rig = Rig::quiet();
    rig.sysmfg_write("wss_ca", "wss_ca.0", b"ca");
    for bad in [
        "AT+SYSMFG",
        "AT+SYSMFG=?",
        "AT+SYSMFG=",
        "AT+SYSMFG=3,\"wss_ca\"",
        "AT+SYSMFG=-1,\"wss_ca\"",
        "AT+SYSMFG=\"1\"",
        // Namespaces and keys outside the WebSocket and SSL client store.
        "AT+SYSMFG=1,\"server_ca\"",
        "AT+SYSMFG=1,\"client_ca\",\"wss_ca.0\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_cert.0\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_ca.256\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_ca.00\"",
        "AT+SYSMFG=1,\"wss_ca\",\"../wss_ca.0\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_ca.0/..\"",
        "AT+SYSMFG=1,wss_ca",
        "AT+SYSMFG=1,,\"wss_ca.0\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_ca.9\"",
        "AT+SYSMFG=1,\"wss_ca\",\"wss_ca.0\",0,1,2",
        "AT+SYSMFG=0",
        "AT+SYSMFG=0,\"wss_ca\",\"wss_ca.0\",1",
        "AT+SYSMFG=0,\"nope\"",
        // Writes: binary only, a length in range, every field given.
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",7,4",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",1,4",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",9,4",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",8,0",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",8,65537",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",8",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\"",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_x.1\",8,4",
        "AT+SYSMFG=2,\"wss_ca\",\"wss_ca.1\",8,\"4\"",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    assert_eq!(rig.stored("wss_ca", "wss_ca.1"), None);
    assert_eq!(rig.stored("wss_ca", "wss_ca.0"), Some(b"ca".to_vec()));
    // With the error log on, a bad namespace names parameter 2.
    assert_eq!(rig.at("AT+SYSLOG=1"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+SYSMFG=1,\"server_ca\""),
        b"ERR CODE:0x01070002\r\n\r\nERROR\r\n"
    );
    assert_eq!(rig.at("AT+SYSLOG=0"), b"\r\nOK\r\n");

    // A store that cannot write: the value is taken, then ERROR.
    rig.sim.store.lock().unwrap().broken = true;
    assert_eq!(
        rig.at("AT+SYSMFG=2,\"wss_ca\",\"wss_ca.0\",8,3"),
        b"\r\nOK\r\n\r\n>"
    );
    assert_eq!(rig.input(b"new"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+SYSMFG=0,\"wss_ca\""), b"\r\nERROR\r\n");
    assert_eq!(rig.stored("wss_ca", "wss_ca.0"), Some(b"ca".to_vec()));
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
}

#[test]
fn wscfg_names_the_first_missing_material() {
    let mut rig = Rig::quiet();
    let cases: &[(&str, &[u8])] = &[
        ("AT+WSCFG=0,30,60,4096,1,0,0", b"NO CERT FOUND\r\n"),
        ("AT+WSCFG=0,30,60,4096,3,0,0", b"NO CERT FOUND\r\n"),
        ("AT+WSCFG=0,30,60,4096,2,0,0", b"NO CA FOUND\r\n"),
    ];
    for (line, missing) in cases {
        let mut expected = missing.to_vec();
        expected.extend_from_slice(b"\r\nERROR\r\n");
        assert_eq!(rig.at(line), expected, "{line}");
    }
    rig.sysmfg_write("wss_cert", "wss_cert.1", b"cert");
    for mode in [1, 3] {
        assert_eq!(
            rig.at(&format!("AT+WSCFG=0,30,60,4096,{mode},1,0")),
            b"NO PRVT_KEY FOUND\r\n\r\nERROR\r\n"
        );
    }
    rig.sysmfg_write("wss_key", "wss_key.1", b"key");
    assert_eq!(rig.at("AT+WSCFG=0,30,60,4096,1,1,0"), b"\r\nOK\r\n");
    // The CA number is its own: CA 1 is not there, CA 2 is.
    rig.sysmfg_write("wss_ca", "wss_ca.2", b"ca");
    assert_eq!(
        rig.at("AT+WSCFG=0,30,60,4096,3,1,1"),
        b"NO CA FOUND\r\n\r\nERROR\r\n"
    );
    assert_eq!(rig.at("AT+WSCFG=0,30,60,4096,3,1,2"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSCFG=0,30,60,4096,2,9,2"), b"\r\nOK\r\n");
    // Modes 1 and 2 ignore the number they do not use.
    assert_eq!(rig.at("AT+WSCFG=0,30,60,4096,1,1,9"), b"\r\nOK\r\n");
    // With the error log on, the line comes first, then the code.
    assert_eq!(rig.at("AT+SYSLOG=1"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+WSCFG=0,30,60,4096,2,0,0"),
        b"NO CA FOUND\r\nERR CODE:0x010a0000\r\n\r\nERROR\r\n"
    );
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
}

#[test]
fn wscfg_reads_the_material_when_it_runs() {
    let mut rig = Rig::quiet();
    rig.sysmfg_write("wss_cert", "wss_cert.0", b"CERT");
    rig.sysmfg_write("wss_key", "wss_key.0", b"KEY");
    rig.sysmfg_write("wss_ca", "wss_ca.0", b"CA");
    assert_eq!(rig.at("AT+WSCFG=1,30,60,4096,3,0,0"), b"\r\nOK\r\n");
    // Changing the store afterwards does not change this configuration.
    assert_eq!(rig.at("AT+SYSMFG=0,\"wss_ca\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSOPEN=1,\"wss://example.com/\""), b"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Connect {
            link: Link::Ws(1),
            host: "example.com".into(),
            port: 443,
            transport: Transport::Tls(TlsPolicy {
                server: ServerVerification::Ca(b"CA".to_vec()),
                client: Some(ClientIdentity {
                    cert: b"CERT".to_vec(),
                    key: b"KEY".to_vec(),
                }),
                ..TlsPolicy::default()
            }),
            keep_alive_s: 0,
        }]
    );
}

#[test]
fn each_auth_mode_maps_to_its_tls_policy() {
    let identity = ClientIdentity {
        cert: b"CERT".to_vec(),
        key: b"KEY".to_vec(),
    };
    let ca = ServerVerification::Ca(b"CA".to_vec());
    let cases = [
        (0, ServerVerification::None, None),
        (1, ServerVerification::None, Some(identity.clone())),
        (2, ca.clone(), None),
        (3, ca, Some(identity)),
    ];
    for (mode, server, client) in cases {
        let mut rig = Rig::quiet();
        rig.sysmfg_write("wss_cert", "wss_cert.0", b"CERT");
        rig.sysmfg_write("wss_key", "wss_key.0", b"KEY");
        rig.sysmfg_write("wss_ca", "wss_ca.0", b"CA");
        let line = format!("AT+WSCFG=0,30,60,4096,{mode},0,0");
        assert_eq!(rig.at(&line), b"\r\nOK\r\n", "{line}");
        assert_eq!(rig.at("AT+WSOPEN=0,\"wss://example.com/\""), b"");
        let actions = rig.actions();
        let [NetAction::Connect { transport, .. }] = &actions[..] else {
            panic!("mode {mode}: {actions:?}");
        };
        let policy = TlsPolicy {
            server,
            client,
            ..TlsPolicy::default()
        };
        assert_eq!(transport, &Transport::Tls(policy), "mode {mode}");
    }
}

#[test]
fn wshead_set_query_clear_and_bad_headers() {
    let mut rig = Rig::quiet();
    let header = b"AUTHORIZATION: Basic QTIzMzIyMDE5OTk6MTIzNDU2Nzg=";
    assert_eq!(rig.at("AT+WSHEAD=49"), b"\r\nOK\r\n\r\n>");
    // Raw: no echo, no unescaping, CR/LF count as data until the length is met.
    assert_eq!(rig.input(header), b"\r\nOK\r\n");
    assert_eq!(
        rig.input(b"AT+WSHEAD=9\r\nX-Two:\\,2"),
        b"\r\nOK\r\n\r\n>\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+WSHEAD?"),
        b"+WSHEAD:0,\"X-Two:\\,2\"\r\n+WSHEAD:1,\"AUTHORIZATION: Basic QTIzMzIyMDE5OTk6MTIzNDU2Nzg=\"\r\n\r\nOK\r\n"
    );
    for bad in [&b"no colon"[..], b"A: b\r\n", b"A: \0b", b": value"] {
        let line = format!("AT+WSHEAD={}", bad.len());
        assert_eq!(rig.at(&line), b"\r\nOK\r\n\r\n>");
        assert_eq!(rig.input(bad), b"\r\nERROR\r\n", "{bad:?}");
    }
    assert_eq!(rig.at("AT+WSHEAD=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSHEAD?"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSHEAD=4097"), b"\r\nERROR\r\n");
}

#[test]
fn bytes_after_prompt_data_are_the_next_command() {
    let mut rig = Rig::quiet();
    assert_eq!(
        rig.input(b"AT+WSHEAD=3\r\nA:bAT\r\n"),
        b"\r\nOK\r\n\r\n>\r\nOK\r\n\r\nOK\r\n"
    );
}

// --- AT+WSOPEN ---------------------------------------------------------------

#[test]
fn open_sends_a_correct_handshake_and_reports_connected_before_ok() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.input(b"AT+WSHEAD=14\r\n"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"X-Token:  abc1"), b"\r\nOK\r\n");
    rig.at("AT+WSOPEN=1,\"WS://h.example/p?q=1\",\"chat\",5000,\"Bearer t\\,k\"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Connect {
            link: Link::Ws(1),
            host: "h.example".into(),
            port: 80,
            transport: Transport::Tcp,
            keep_alive_s: 0,
        }]
    );
    rig.event(1, CONNECTED);
    let request = rig.handshake_request(1);
    assert!(
        request.starts_with("GET /p?q=1 HTTP/1.1\r\nHost: h.example:80\r\n"),
        "{request}"
    );
    assert_eq!(header(&request, "Upgrade"), Some("websocket"));
    assert_eq!(header(&request, "Sec-WebSocket-Version"), Some("13"));
    assert_eq!(header(&request, "Sec-WebSocket-Protocol"), Some("chat"));
    assert_eq!(header(&request, "Authorization"), Some("Bearer t,k"));
    assert_eq!(header(&request, "X-Token"), Some("abc1"));
    let mut response = String::from_utf8(handshake_response(&request)).unwrap();
    response = response.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
    // The first frame rides in the same read as the response.
    let mut bytes = response.into_bytes();
    bytes.extend(server_frame(true, 1, b"hi"));
    assert_eq!(
        rig.event(1, NetEvent::Received(&bytes)),
        b"+WS_CONNECTED:1\r\n\r\nOK\r\n+WS_DATA:1,2,hi\r\n"
    );
    assert_eq!(
        rig.at("AT+WSOPEN?"),
        b"+WSOPEN:1,2,\"WS://h.example/p?q=1\"\r\n\r\nOK\r\n"
    );
}

#[test]
fn open_rejects_bad_parameters() {
    let mut rig = Rig::quiet();
    for bad in [
        "AT+WSOPEN=3,\"ws://h\"",
        "AT+WSOPEN=0,\"http://h\"",
        "AT+WSOPEN=0,\"ws://\"",
        "AT+WSOPEN=0,\"nonsense\"",
        "AT+WSOPEN=0",
        "AT+WSOPEN=0,ws://h",
        "AT+WSOPEN=0,\"ws://h\",,180001",
        "AT+WSOPEN=0,\"ws://h\",,-1",
        "AT+WSOPEN=0,\"ws://h\",,,\"a\0\"",
        "AT+WSOPEN=0,\"ws://h\",1",
        "AT+WSOPEN=0,\"ws://h\",\"p\",1,\"a\",6",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    assert!(rig.actions().is_empty());
}

#[test]
fn open_on_an_open_link_is_an_error() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSOPEN=0,\"ws://h\""), b"\r\nERROR\r\n");
    assert!(rig.actions().is_empty());
}

#[test]
fn input_during_open_gets_busy_and_is_discarded() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSOPEN=0,\"ws://h\"");
    assert_eq!(rig.input(b"AT\r\n"), b"\r\nbusy p...\r\n");
    assert_eq!(rig.input(b"AT+WSOPEN?\r"), b"\r\nbusy p...\r\n");
    assert_eq!(rig.input(b"\n"), b"");
    rig.actions();
    assert_eq!(
        rig.event(0, NetEvent::Failed("refused".into())),
        b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n"
    );
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+WSOPEN?"), b"\r\nOK\r\n");
}

#[test]
fn a_bad_handshake_response_fails_the_open() {
    for response in [
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "garbage\0\r\n\r\n",
    ] {
        let mut rig = Rig::quiet();
        rig.at("AT+WSOPEN=0,\"ws://h\"");
        rig.actions();
        rig.event(0, CONNECTED);
        rig.handshake_request(0);
        assert_eq!(
            rig.event(0, NetEvent::Received(response.as_bytes())),
            b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n",
            "{response}"
        );
        assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
        assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    }
}

#[test]
fn open_times_out() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSOPEN=0,\"ws://h\",,2000");
    rig.actions();
    assert_eq!(rig.advance_to(1999), b"");
    assert_eq!(rig.advance_to(2000), b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
}

// --- AT+WSSEND ---------------------------------------------------------------

#[test]
fn send_prompts_takes_exact_data_and_waits_for_the_network() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSSEND=0,4"), b"\r\nOK\r\n\r\n>");
    // The data is not echoed; SEND OK waits for the write.
    assert_eq!(rig.input(b"test"), b"");
    let actions = rig.actions();
    let [NetAction::Send {
        link: Link::Ws(0),
        bytes,
    }] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(parse_client_frames(bytes), vec![frame(true, 1, b"test")]);
    // Pipelined input waits in the modem until SEND OK, then runs.
    assert_eq!(rig.type_ahead(b"AT\r\n"), b"");
    assert_eq!(rig.sim.unread_input(), 4);
    assert_eq!(rig.event(0, NetEvent::Sent), b"\r\nSEND OK\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(
        rig.server_sends(0, true, 1, b"test"),
        b"+WS_DATA:0,4,test\r\n"
    );
}

#[test]
fn send_carries_every_byte_value_raw() {
    let mut rig = Rig::quiet();
    rig.open(0);
    let data: Vec<u8> = (0..=255u8).chain(*b"\r\n+++\\\"").collect();
    let line = format!("AT+WSSEND=0,{},2", data.len());
    assert_eq!(rig.at(&line), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(&data), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 2, &data)]);
    assert_eq!(rig.output(), b"\r\nSEND OK\r\n");
    let mut expected = format!("+WS_DATA:0,{},", data.len()).into_bytes();
    expected.extend(&data);
    expected.extend(b"\r\n");
    assert_eq!(rig.server_sends(0, true, 2, &data), expected);
}

#[test]
fn send_splits_at_buffer_size() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSCFG=0,30,60,1000");
    rig.open(0);
    let data = pattern(16384);
    rig.at("AT+WSSEND=0,16384,2");
    rig.input(&data);
    let frames = rig.sent_frames(0);
    assert_eq!(frames.len(), 17);
    assert_eq!((frames[0].opcode, frames[0].fin), (2, false));
    for f in &frames[1..16] {
        assert_eq!((f.opcode, f.fin, f.payload.len()), (0, false, 1000));
    }
    assert_eq!(
        (frames[16].opcode, frames[16].fin, frames[16].payload.len()),
        (0, true, 384)
    );
    let joined: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
    assert_eq!(joined, data);
    assert_eq!(rig.output(), b"\r\nSEND OK\r\n");
}

#[test]
fn send_rejects_what_it_cannot_send() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+WSSEND=0,4"), b"\r\nERROR\r\n");
    rig.open(0);
    for bad in [
        "AT+WSSEND=3,4",
        "AT+WSSEND=1,4",
        "AT+WSSEND=0,16385",
        "AT+WSSEND=0,-1",
        "AT+WSSEND=0,4,16",
        "AT+WSSEND=0,4,1,60001",
        "AT+WSSEND=0,4,1,,2",
        "AT+WSSEND=0,126,9",
        "AT+WSSEND=0,126,8",
        "AT+WSSEND=0,4,9,,0",
        "AT+WSSEND=0,4,3,,0",
        "AT+WSSEND=0,4,0",
        "AT+WSSEND=0",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    assert!(rig.actions().is_empty());
}

#[test]
fn send_of_length_zero_has_no_prompt() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSSEND=0,0"), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 1, b"")]);
    assert_eq!(rig.output(), b"\r\nSEND OK\r\n");
}

#[test]
fn send_fragments_control_frames_and_reserved_opcodes() {
    let mut rig = Rig::quiet();
    rig.open(0);
    let mut send = |line: &str, data: &[u8]| {
        let out = rig.at(line);
        if !data.is_empty() {
            assert_eq!(out, b"\r\nOK\r\n\r\n>");
            rig.input(data);
        }
        let frames = rig.sent_frames(0);
        assert_eq!(rig.output(), b"\r\nSEND OK\r\n", "{line}");
        frames
    };
    assert_eq!(
        send("AT+WSSEND=0,3,1,,0", b"abc"),
        vec![frame(false, 1, b"abc")]
    );
    assert_eq!(
        send("AT+WSSEND=0,2,0,,0", b"de"),
        vec![frame(false, 0, b"de")]
    );
    assert_eq!(send("AT+WSSEND=0,1,0", b"f"), vec![frame(true, 0, b"f")]);
    assert_eq!(send("AT+WSSEND=0,2,9", b"hi"), vec![frame(true, 9, b"hi")]);
    assert_eq!(send("AT+WSSEND=0,0,10", b""), vec![frame(true, 10, b"")]);
    assert_eq!(send("AT+WSSEND=0,1,3", b"r"), vec![frame(true, 3, b"r")]);
}

#[test]
fn send_times_out_when_the_network_does_not_take_the_data() {
    let mut rig = Rig::quiet();
    rig.open(0);
    rig.at("AT+WSSEND=0,2,1,500");
    rig.input(b"hi");
    rig.actions();
    assert_eq!(rig.advance_to(499), b"");
    assert_eq!(rig.advance_to(500), b"\r\nERROR\r\n+WS_DISCONNECTED:0\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(
        rig.at("AT+WSOPEN?"),
        b"+WSOPEN:0,3,\"ws://example.com:8080/chat?x=1\"\r\n\r\nOK\r\n"
    );
}

#[test]
fn reports_wait_for_a_prompt_and_a_half_typed_line() {
    let mut rig = Rig::new();
    rig.at("ATE0");
    rig.open(0);
    rig.at("ATE1");
    assert_eq!(
        rig.input(b"AT+WSSEND=0,2\r\n"),
        b"AT+WSSEND=0,2\r\n\r\nOK\r\n\r\n>"
    );
    assert_eq!(rig.server_sends(0, true, 1, b"x"), b"");
    assert_eq!(rig.held(), 16);
    assert_eq!(rig.input(b"h"), b"");
    assert_eq!(rig.input(b"i"), b"");
    rig.sent_frames(0);
    assert_eq!(rig.output(), b"\r\nSEND OK\r\n+WS_DATA:0,1,x\r\n");
    assert_eq!(rig.input(b"AT"), b"AT");
    assert_eq!(rig.server_sends(0, true, 1, b"y"), b"");
    assert_eq!(rig.input(b"\r\n"), b"\r\n\r\nOK\r\n+WS_DATA:0,1,y\r\n");
}

// --- receiving -----------------------------------------------------------

#[test]
fn pings_are_answered_and_produce_no_output() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.server_sends(0, true, 9, b"p1"), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 10, b"p1")]);
    assert_eq!(rig.server_sends(0, true, 10, b"x"), b"");
    assert!(rig.actions().is_empty());
}

#[test]
fn pongs_do_not_pile_up_while_the_server_reads_nothing() {
    let mut rig = Rig::quiet();
    rig.open(0);
    for i in 0..100u8 {
        rig.server_sends(0, true, 9, &[i]);
    }
    // 16 pongs queued, none acknowledged as written: the rest are skipped...
    let pongs: Vec<NetAction> = rig.actions();
    assert_eq!(pongs.len(), 16);
    for _ in &pongs {
        rig.event(0, NetEvent::Sent);
    }
    // ...but not the latest: it is answered once the socket takes them
    // (RFC 6455 §5.5.3).
    assert_eq!(rig.sent_frames(0), vec![frame(true, 10, &[99])]);
    rig.server_sends(0, true, 9, b"late");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 10, b"late")]);
}

#[test]
fn empty_frames_and_chunks_of_buffer_size() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSCFG=0,30,60,4");
    rig.open(0);
    assert_eq!(rig.server_sends(0, true, 1, b""), b"+WS_DATA:0,0,\r\n");
    assert_eq!(
        rig.server_sends(0, true, 2, b"abcdefghij"),
        b"+WS_DATA:0,4,abcd\r\n+WS_DATA:0,4,efgh\r\n+WS_DATA:0,2,ij\r\n"
    );
}

#[test]
fn data_format_levels_and_masks() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSCFG=0,30,60,4");
    rig.open(0);
    assert_eq!(rig.at("AT+WSDATAFMT=0,0,63"), b"\r\nOK\r\n");
    assert_eq!(
        rig.server_sends(0, true, 2, b"abcdef"),
        b"+WS_DATA:0,2,1,6,0,4,abcd\r\n+WS_DATA:0,2,1,6,4,2,ef\r\n"
    );
    rig.at("AT+WSDATAFMT=0,1,63");
    assert_eq!(
        rig.server_sends(0, true, 2, b"abcdef"),
        b"+WS_DATA:0,2,1,6,0,4,abcdef\r\n"
    );
    rig.at("AT+WSDATAFMT=0,2,36");
    assert_eq!(
        rig.server_sends(0, false, 1, b"abcde"),
        b"+WS_DATA:0,5,abcde"
    );
    assert_eq!(rig.server_sends(0, true, 9, b""), b"");
    assert_eq!(rig.server_sends(0, true, 0, b"xy"), b"xy\r\n");
    rig.at("AT+WSDATAFMT=0");
    assert_eq!(rig.server_sends(0, true, 1, b"z"), b"+WS_DATA:0,1,z\r\n");
    for bad in [
        "AT+WSDATAFMT=0,3",
        "AT+WSDATAFMT=0,0,0",
        "AT+WSDATAFMT=0,0,64",
        "AT+WSDATAFMT=3",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

// --- closing, loss, keepalive ------------------------------------------------

#[test]
fn wsclose_runs_the_close_handshake() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSCLOSE=0"), b"");
    assert_eq!(
        rig.sent_frames(0),
        vec![frame(true, 8, &1000u16.to_be_bytes())]
    );
    assert_eq!(rig.input(b"AT\r\n"), b"\r\nbusy p...\r\n");
    assert_eq!(
        rig.server_sends(0, true, 8, &1000u16.to_be_bytes()),
        b"\r\nOK\r\n"
    );
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(rig.at("AT+WSOPEN?"), b"\r\nOK\r\n");
    // Closing a link with no client is fine too.
    assert_eq!(rig.at("AT+WSCLOSE=1"), b"\r\nOK\r\n");
}

#[test]
fn wsclose_gives_up_waiting_after_a_second() {
    let mut rig = Rig::quiet();
    rig.open(0);
    rig.at("AT+WSCLOSE=0");
    rig.sent_frames(0);
    assert_eq!(rig.advance_to(999), b"");
    assert_eq!(rig.advance_to(1000), b"\r\nOK\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
}

#[test]
fn server_close_is_reported_and_echoed() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSCFG=0,30,60,512");
    rig.open(0);
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend(b"bye");
    assert_eq!(rig.server_sends(0, true, 8, &payload), b"+WS_CLOSED:0\r\n");
    assert_eq!(
        rig.sent_frames(0),
        vec![frame(true, 8, &4000u16.to_be_bytes())]
    );
    assert_eq!(
        rig.at("AT+WSOPEN?"),
        b"+WSOPEN:0,4,\"ws://example.com:8080/chat?x=1\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+WSSEND=0,1"), b"\r\nERROR\r\n");
    assert_eq!(rig.event(0, NetEvent::Closed), b"");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(rig.at("AT+WSOPEN?"), b"\r\nOK\r\n");
}

#[test]
fn keepalive_pings_and_pong_timeout_loses_the_link_which_reconnects() {
    let mut rig = Rig::quiet();
    rig.at("AT+WSCFG=0,10,25");
    rig.open(0);
    assert_eq!(rig.advance_to(10_000), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 9, b"")]);
    rig.server_sends(0, true, 10, b"");
    assert_eq!(rig.advance_to(20_000), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 9, b"")]);
    assert_eq!(rig.advance_to(30_000), b"");
    rig.sent_frames(0);
    assert_eq!(rig.advance_to(44_999), b"");
    assert_eq!(rig.sent_frames(0), vec![frame(true, 9, b"")]);
    assert_eq!(rig.advance_to(45_000), b"+WS_DISCONNECTED:0\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(rig.at("AT+WSSEND=0,1"), b"\r\nERROR\r\n");
    assert_eq!(rig.advance_to(55_000), b"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Connect {
            link: Link::Ws(0),
            host: "example.com".into(),
            port: 8080,
            transport: Transport::Tcp,
            keep_alive_s: 0,
        }]
    );
    assert_eq!(
        rig.at("AT+WSOPEN?"),
        b"+WSOPEN:0,1,\"ws://example.com:8080/chat?x=1\"\r\n\r\nOK\r\n"
    );
    // A failed attempt reports again and waits for the next one.
    assert_eq!(
        rig.event(0, NetEvent::Failed("refused".into())),
        b"+WS_DISCONNECTED:0\r\n"
    );
    rig.actions();
    rig.advance_to(65_000);
    rig.actions();
    rig.event(0, CONNECTED);
    let request = rig.handshake_request(0);
    let out = rig.event(0, NetEvent::Received(&handshake_response(&request)));
    assert_eq!(out, b"+WS_CONNECTED:0\r\n");
    assert_eq!(rig.at("AT+WSCLOSE=0"), b"");
}

#[test]
fn protocol_violations_fail_the_link_with_a_close_code() {
    let cases: [(&[u8], u16); 3] = [
        (&[0x81, 0x81, 0, 0, 0, 0, b'a'], 1002),
        (&[0xC1, 0x01, b'a'], 1002),
        (&[0x81, 0x02, 0xC3, 0x28], 1007),
    ];
    for (bytes, code) in cases {
        let mut rig = Rig::quiet();
        rig.open(0);
        assert_eq!(
            rig.event(0, NetEvent::Received(bytes)),
            b"+WS_DISCONNECTED:0\r\n"
        );
        let actions = rig.actions();
        let [NetAction::Send { bytes, .. }, NetAction::Close { link: Link::Ws(0) }] = &actions[..]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(
            parse_client_frames(bytes),
            vec![frame(true, 8, &code.to_be_bytes())]
        );
        // As for any loss: state 3, a reconnect after 10 s (spec §4).
        assert_eq!(
            rig.at("AT+WSOPEN?"),
            b"+WSOPEN:0,3,\"ws://example.com:8080/chat?x=1\"\r\n\r\nOK\r\n"
        );
        assert_eq!(rig.advance_to(9_999), b"");
        rig.advance_to(10_000);
        assert!(matches!(
            &rig.actions()[..],
            [NetAction::Connect {
                link: Link::Ws(0),
                ..
            }]
        ));
    }
}

#[test]
fn network_loss_while_open_reports_disconnected() {
    let mut rig = Rig::quiet();
    rig.open(2);
    assert_eq!(rig.event(2, NetEvent::Closed), b"+WS_DISCONNECTED:2\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(2) }]);
    // Events for links without a client, or out of range, are ignored.
    assert_eq!(rig.event(1, NetEvent::Received(b"x")), b"");
    assert_eq!(rig.event(7, NetEvent::Sent), b"");
}

#[test]
fn every_protocol_violation_fails_the_link_with_its_close_code() {
    let long_ping = [&[0x89u8, 126][..], &[b'p'; 126][..]].concat();
    let cases: Vec<(&str, Vec<u8>, &[u8], u16)> = vec![
        ("masked", vec![0x81, 0x81, 1, 2, 3, 4, b'a'], b"", 1002),
        ("rsv1", vec![0xC1, 0x01, b'a'], b"", 1002),
        ("rsv3", vec![0x92, 0x00], b"", 1002),
        ("reserved data opcode", vec![0x83, 0x00], b"", 1002),
        ("reserved control opcode", vec![0x8B, 0x00], b"", 1002),
        ("fragmented ping", vec![0x09, 0x00], b"", 1002),
        ("ping over 125", long_ping, b"", 1002),
        ("continuation first", vec![0x80, 0x01, b'a'], b"", 1002),
        (
            "new message inside one",
            vec![0x01, 0x01, b'a', 0x81, 0x01, b'b'],
            b"+WS_DATA:0,1,a\r\n",
            1002,
        ),
        ("close of 1 byte", vec![0x88, 0x01, 0x03], b"", 1002),
        ("close code 1005", vec![0x88, 0x02, 0x03, 0xED], b"", 1002),
        ("close code 999", vec![0x88, 0x02, 0x03, 0xE7], b"", 1002),
        ("close code 5000", vec![0x88, 0x02, 0x13, 0x88], b"", 1002),
        (
            "64-bit length with the top bit",
            vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1],
            b"",
            1002,
        ),
        (
            "invalid UTF-8 text",
            vec![0x81, 0x02, 0xC3, 0x28],
            b"",
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            vec![0x01, 0x01, 0xE2, 0x80, 0x01, 0x28],
            b"+WS_DATA:0,1,\xE2\r\n",
            1007,
        ),
    ];
    for (name, bytes, data_first, code) in cases {
        let closed_badly = name.starts_with("close");
        let mut rig = Rig::quiet();
        rig.open(0);
        let mut expected = data_first.to_vec();
        expected.extend(if closed_badly {
            &b"+WS_CLOSED:0\r\n"[..]
        } else {
            b"+WS_DISCONNECTED:0\r\n"
        });
        let out = rig.event(0, NetEvent::Received(&bytes));
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        let actions = rig.actions();
        let close = frame(true, 8, &code.to_be_bytes());
        if closed_badly {
            // The server did close: answered with 1002, state 4 until TCP
            // ends (≤ 1 s), then cleaned up; no reconnect.
            let [NetAction::Send { bytes, .. }] = &actions[..] else {
                panic!("{name}: {actions:?}")
            };
            assert_eq!(parse_client_frames(bytes), vec![close], "{name}");
            let state = rig.at("AT+WSOPEN?");
            assert!(state.starts_with(b"+WSOPEN:0,4,"), "{name}");
            rig.advance_to(1_000);
            assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
            assert_eq!(rig.at("AT+WSOPEN?"), b"\r\nOK\r\n", "{name}");
        } else {
            let [NetAction::Send { bytes, .. }, NetAction::Close { link: Link::Ws(0) }] =
                &actions[..]
            else {
                panic!("{name}: {actions:?}")
            };
            assert_eq!(parse_client_frames(bytes), vec![close], "{name}");
            let state = rig.at("AT+WSOPEN?");
            assert!(state.starts_with(b"+WSOPEN:0,3,"), "{name}");
        }
        assert_eq!(rig.at("AT"), b"\r\nOK\r\n", "{name}");
    }
}

#[test]
fn a_bad_close_frame_is_still_the_server_closing() {
    // Invalid UTF-8 in the reason, during AT+WSCLOSE's wait: the close
    // handshake is over.
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSCLOSE=0"), b"");
    rig.sent_frames(0);
    let out = rig.event(0, NetEvent::Received(&[0x88, 0x03, 0x03, 0xE8, 0xFF]));
    assert_eq!(out, b"\r\nOK\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    let log = &rig.sim.log;
    assert!(log.contains(&Log::ProtocolError {
        link: Link::Ws(0),
        error: ws::ProtocolError::BadCloseReason
    }));
}

/// A server frame in the tables: (fin, opcode, payload).
type Frame<'a> = (bool, u8, &'a [u8]);

/// Spec §3's receive format written out plainly, for the table below:
/// chunks of `buffer_size` per data frame; headers and trailers per level.
fn expected_reports(level: u8, mask: u8, buffer_size: usize, frames: &[Frame<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(fin, op, payload) in frames.iter().filter(|f| f.1 < 8) {
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(buffer_size).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let (first, last) = (i == 0, i + 1 == pieces.len());
            let header = match level {
                0 => true,
                1 => first,
                _ => first && op != 0,
            };
            let trailer = match level {
                0 => true,
                1 => last,
                _ => last && fin,
            };
            if header {
                out.extend(b"+WS_DATA:0,");
                let values = [
                    op as usize,
                    fin as usize,
                    payload.len(),
                    i * buffer_size,
                    piece.len(),
                ];
                for (bit, value) in values.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        out.extend(format!("{value},").as_bytes());
                    }
                }
            }
            out.extend(*piece);
            if trailer && mask & 32 != 0 {
                out.extend(b"\r\n");
            }
        }
    }
    out
}

#[test]
fn data_format_table() {
    const BUFFER: usize = 8;
    let long: Vec<u8> = (0..28u8).collect(); // 3.5 × buffer_size
    let scenarios: [(&str, Vec<Frame<'_>>); 4] = [
        ("small frame", vec![(true, 1, b"hello")]),
        ("3.5x buffer", vec![(true, 2, &long)]),
        ("empty frame", vec![(true, 1, b"")]),
        (
            "3 fragments with a ping between",
            vec![
                (false, 1, b"abc"),
                (true, 9, b"p"),
                (false, 0, b"defghijkl"),
                (true, 0, b"mn"),
            ],
        ),
    ];
    for level in 0..=2u8 {
        for mask in [1u8, 4, 16, 32, 48, 63] {
            for (name, frames) in &scenarios {
                let mut rig = Rig::quiet();
                rig.at(&format!("AT+WSCFG=0,30,60,{BUFFER}"));
                rig.open(0);
                assert_eq!(
                    rig.at(&format!("AT+WSDATAFMT=0,{level},{mask}")),
                    b"\r\nOK\r\n"
                );
                let mut out = Vec::new();
                for &(fin, op, payload) in frames {
                    out.extend(rig.server_sends(0, fin, op, payload));
                }
                let expected = expected_reports(level, mask, BUFFER, frames);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&expected),
                    "level {level} mask {mask}: {name}"
                );
                let pongs: Vec<_> = frames
                    .iter()
                    .filter(|f| f.1 == 9)
                    .map(|f| frame(true, 10, f.2))
                    .collect();
                assert_eq!(rig.sent_frames(0), pongs, "{name}");
            }
        }
    }
}

#[test]
fn data_format_anchors() {
    // Literal outputs, so the table's model is itself checked.
    let fragments: [Frame<'_>; 4] = [
        (false, 1, b"abc"),
        (true, 9, b"p"),
        (false, 0, b"defghijkl"),
        (true, 0, b"mn"),
    ];
    let cases: [(u8, u8, &[u8]); 4] = [
        (2, 63, b"+WS_DATA:0,1,0,3,0,3,abcdefghijklmn\r\n"),
        (
            1,
            63,
            b"+WS_DATA:0,1,0,3,0,3,abc\r\n+WS_DATA:0,0,0,9,0,8,defghijkl\r\n+WS_DATA:0,0,1,2,0,2,mn\r\n",
        ),
        (
            0,
            60,
            b"+WS_DATA:0,3,0,3,abc\r\n+WS_DATA:0,9,0,8,defghijk\r\n+WS_DATA:0,9,8,1,l\r\n+WS_DATA:0,2,0,2,mn\r\n",
        ),
        (0, 16, b"+WS_DATA:0,3,abc+WS_DATA:0,8,defghijk+WS_DATA:0,1,l+WS_DATA:0,2,mn"),
    ];
    for (level, mask, literal) in cases {
        assert_eq!(
            String::from_utf8_lossy(&expected_reports(level, mask, 8, &fragments)),
            String::from_utf8_lossy(literal)
        );
    }
}

// --- what the boundary guarantees (regressions) -------------------------

/// A simulator whose servers answer everything, a quiet modem, link 0 open.
fn auto_sim(wscfg: &str) -> Sim {
    let mut sim = Sim::new();
    sim.network.auto = true;
    sim.host_write(b"ATE0\r\n");
    sim.host_write(format!("{wscfg}\r\n").as_bytes());
    sim.host_write(b"AT+WSOPEN=0,\"ws://example.com/\"\r\n");
    let out = sim.host_read();
    assert!(out.ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"), "{out:?}");
    sim
}

#[test]
fn input_typed_during_a_send_is_answered_when_the_send_times_out() {
    let mut sim = auto_sim("AT+WSCFG=0,30,60");
    sim.network.ack_sends = false;
    sim.network.complete_connects = false;
    sim.host_write(b"AT+WSSEND=0,2,1,500\r\nhiAT\r\n");
    assert_eq!(sim.host_read(), b"\r\nOK\r\n\r\n>");
    // The send times out: ERROR, the link is lost, and the pipelined AT is
    // answered at once, with no network event to wake the modem.
    sim.advance_to(sim.now + 500);
    assert_eq!(
        sim.host_read(),
        b"\r\nERROR\r\n+WS_DISCONNECTED:0\r\n\r\nOK\r\n"
    );
    // The reconnect never completes; the host can still close the link.
    sim.advance(10_000);
    sim.host_write(b"AT+WSCLOSE=0\r\n");
    assert_eq!(sim.host_read(), b"\r\nOK\r\n");
    assert_eq!(sim.unread_input(), 0);
}

#[test]
fn a_host_that_never_reads_cannot_grow_the_output() {
    let mut sim = Sim::new();
    sim.network.auto = true;
    sim.host_reading = false;
    let commands = 3000;
    for _ in 0..commands {
        sim.host_tx.extend(b"AT+CMD?\r\n");
    }
    sim.run();
    let backlog = sim.modem.host_output().len();
    assert!(backlog <= HOST_OUTPUT_BOUND + 4096, "{backlog}");
    assert!(sim.modem.buffered_host_input() <= HOST_INPUT_BOUND + sim.read_size);
    assert!(!sim.host_tx.is_empty(), "the port is no longer read");
    // Nothing is lost: once the host reads, every command is answered.
    sim.host_reading = true;
    let out = sim.host_read();
    let oks = out.windows(6).filter(|w| w == b"\r\nOK\r\n").count();
    assert_eq!(oks, commands, "every command answered");
}

#[test]
fn busy_answers_to_a_flood_during_an_open_stay_bounded() {
    let mut sim = Sim::new();
    sim.network.auto = true;
    sim.network.complete_connects = false;
    sim.host_write(b"ATE0\r\nAT+WSOPEN=0,\"ws://example.com/\"\r\n");
    sim.host_read();
    sim.host_reading = false;
    sim.host_tx.extend(core::iter::repeat_n(b'\r', 1 << 20));
    sim.run();
    assert!(sim.modem.host_output().len() <= HOST_OUTPUT_BOUND + 64);
    assert!(sim.host_tx.len() > 1 << 19, "the port is no longer read");
}

#[test]
fn a_slow_host_loses_nothing_to_the_pong_timeout() {
    // Pings every second, pongs due within 3 s.
    let mut sim = auto_sim("AT+WSCFG=0,1,3,1024");
    sim.host_reading = false;
    let message = pattern(4096);
    for _ in 0..256 {
        sim.network
            .reads
            .push_back((Link::Ws(0), Read::Bytes(server_frame(true, 2, &message))));
    }
    // The host reads nothing for 10 s: the pongs wait behind unread data.
    for _ in 0..100 {
        sim.advance(100);
    }
    let mut got = Vec::new();
    while !sim.network.reads.is_empty() || !sim.modem.host_output().is_empty() {
        got.extend(sim.host_read_some(64 * 1024));
        sim.advance(1);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("+WS_DISCONNECTED"), "a false pong timeout");
    let mut expected = Vec::new();
    for _ in 0..256 {
        for piece in message.chunks(1024) {
            expected.extend(format!("+WS_DATA:0,{},", piece.len()).as_bytes());
            expected.extend(piece);
            expected.extend(b"\r\n");
        }
    }
    assert!(got == expected, "every byte, in order");
    // Reading resumed, so a pong that never comes still ends the link.
    sim.host_reading = true;
    sim.network.answer_pings = false;
    sim.advance(5_000);
    assert!(sim.host_read().ends_with(b"+WS_DISCONNECTED:0\r\n"));
}

#[test]
fn the_latest_of_many_pings_is_answered() {
    let mut sim = auto_sim("AT+WSCFG=0,7200,7200");
    let pings: Vec<u8> = (0..40u8)
        .flat_map(|i| server_frame(true, 9, &[i]))
        .collect();
    sim.server_send(Link::Ws(0), &pings);
    let frames: Vec<ClientFrame> = sim
        .network
        .sent
        .iter()
        .flat_map(|(_, bytes)| parse_client_frames(bytes))
        .collect();
    assert!(frames.iter().all(|f| f.opcode == 10));
    assert_eq!(frames.last(), Some(&frame(true, 10, &[39])));
    assert!(frames.len() <= 17, "older pings may be skipped");
}

#[test]
fn the_log_says_why_an_open_failed() {
    let mut sim = Sim::new();
    sim.network.auto = true;
    sim.network.answer_handshakes = false;
    sim.host_write(b"ATE0\r\nAT+WSOPEN=0,\"ws://example.com/\"\r\n");
    sim.network.reads.push_back((
        Link::Ws(0),
        Read::Bytes(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec()),
    ));
    assert!(sim
        .host_read()
        .ends_with(b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n"));
    assert!(sim.log.contains(&Log::HandshakeFailed {
        link: Link::Ws(0),
        error: ws::HandshakeError::Status(404)
    }));
    assert!(sim.log.contains(&Log::Http {
        link: Link::Ws(0),
        dir: Direction::Rx,
        first_line: b"HTTP/1.1 404 Not Found".to_vec()
    }));
}

// --- start-up and reset (esp-at-tcpip.md §1) ----------------------------

#[test]
fn input_during_a_restart_is_lost_and_ready_comes_after_the_delay() {
    let mut rig = Rig::quiet();
    // The next command in the same write as the reset is lost with it.
    assert_eq!(rig.input(b"AT+RST\r\nAT\r\n"), b"\r\nOK\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 100), b"");
    assert_eq!(rig.input(b"AT\r\nATE0\r\n"), b"", "the chip is restarting");
    assert_eq!(rig.advance_to(start + 500), at::READY);
    // The stored AP's join takes the join delay after a reset.
    assert_eq!(rig.advance_to(start + 999), b"");
    assert_eq!(rig.advance_to(start + 1000), JOINED);
    // Echo is back on, and nothing of the lost input ran.
    assert_eq!(rig.at("AT"), b"AT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+RST=0"), b"AT+RST=0\r\n\r\nOK\r\n");
    rig.advance_to(start + 2_000);
    assert_eq!(rig.at("AT+RST=1"), b"AT+RST=1\r\n\r\nOK\r\n");
    rig.advance_to(start + 3_000);
    assert_eq!(rig.at("AT+RST=2"), b"AT+RST=2\r\n\r\nERROR\r\n");
}

#[test]
fn after_a_reset_the_boot_join_comes_later_and_a_station_command_cancels_it() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+RST"), b"\r\nOK\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 500), at::READY);
    // A command right after `ready` is answered on its own.
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:3,\"wsat\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP?"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTART=\"TCP\",\"h\",80"), b"\r\nERROR\r\n");
    assert_eq!(rig.advance_to(start + 1000), JOINED);
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:2,\"wsat\"\r\n\r\nOK\r\n");
    // AT+CWQAP before the join: no join at all.
    assert_eq!(rig.at("AT+RST"), b"\r\nOK\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 500), at::READY);
    assert_eq!(rig.at("AT+CWQAP"), b"AT+CWQAP\r\n\r\nOK\r\n");
    assert_eq!(rig.advance_to(start + 5_000), b"");
    assert_eq!(
        rig.at("AT+CWSTATE?"),
        b"AT+CWSTATE?\r\n+CWSTATE:4,\"wsat\"\r\n\r\nOK\r\n"
    );
}

#[test]
fn a_host_that_comes_after_the_boot_sees_none_of_it() {
    let mut sim = Sim::new();
    sim.modem.boot_unseen();
    assert_eq!(sim.host_read(), b"");
    // The module is up and joined all the same.
    sim.host_write(b"AT+CWSTATE?\r\n");
    assert_eq!(
        sim.host_read(),
        b"AT+CWSTATE?\r\n+CWSTATE:2,\"wsat\"\r\n\r\nOK\r\n"
    );
}

#[test]
fn the_restart_delay_is_an_option() {
    let mut sim = Sim::with_options(ModemOptions {
        restart_delay_ms: 0,
        ..ModemOptions::default()
    });
    sim.host_write(b"ATE0\r\n");
    sim.host_read();
    sim.host_write(b"AT+RST\r\n");
    sim.advance(0);
    assert_eq!(sim.host_read(), b"\r\nOK\r\n\r\nready\r\n");
    sim.advance(500);
    assert_eq!(sim.host_read(), JOINED);
}

#[test]
fn a_reset_typed_while_a_command_runs_forces_the_restart() {
    // During AT+WSOPEN's wait: other lines get busy p..., AT+RST restarts.
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+WSOPEN=0,\"ws://h.example/\""), b"");
    assert_eq!(rig.input(b"AT\r\n"), b"\r\nbusy p...\r\n");
    assert_eq!(
        rig.input(b"AT+RST\r\n"),
        b"\r\nWill force to restart!!!\r\n\r\nOK\r\n"
    );
    // The open is cut off: no ERROR, no report; its connection dropped.
    let actions = rig.actions();
    assert!(
        matches!(actions.last(), Some(NetAction::Close { link: Link::Ws(0) })),
        "{actions:?}"
    );
    assert_eq!(rig.advance_to(rig.sim.now + 1000), testing::BOOT);
    assert_eq!(rig.at("AT+WSOPEN?"), b"AT+WSOPEN?\r\n\r\nOK\r\n");
    // During AT+WSSEND's wait, where input waits for SEND OK.
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.at("AT+WSSEND=0,2"), b"\r\nOK\r\n\r\n>");
    assert_eq!(
        rig.type_ahead(b"hiAT\r\nAT+RST\r\n"),
        b"\r\nWill force to restart!!!\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.advance_to(rig.sim.now + 1000), testing::BOOT);
}

#[test]
fn a_host_opening_the_port_gets_ready_outside_any_line() {
    let mut rig = Rig::new();
    rig.sim.modem.host_opened(rig.sim.now);
    assert_eq!(rig.output(), b"\r\nready\r\n");
    // Half a line typed (echo on): the ready waits for its end.
    assert_eq!(rig.input(b"AT"), b"AT");
    rig.sim.modem.host_opened(rig.sim.now);
    assert_eq!(rig.output(), b"");
    assert_eq!(rig.input(b"\r\n"), b"\r\n\r\nOK\r\n\r\nready\r\n");
}

// --- the Wi-Fi station (esp-at-tcpip.md §2) ------------------------------

/// A quiet rig whose module sees a secured AP `lab` besides the stored
/// open `wsat`.
fn wifi_rig() -> Rig {
    let mut wifi = WifiOptions::default();
    wifi.access_points.push(AccessPoint {
        ssid: b"lab".to_vec(),
        password: b"secret".to_vec(),
        rssi: -62,
        channel: 11,
        bssid: [0x30, 0x7b, 0xac, 0x69, 0x41, 0x90],
    });
    let mut rig = Rig {
        sim: Sim::with_options(ModemOptions {
            wifi,
            ..ModemOptions::default()
        }),
    };
    assert_eq!(rig.output(), testing::BOOT);
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    rig
}

#[test]
fn joining_takes_the_join_delay_and_answers_as_a_module() {
    let mut rig = wifi_rig();
    // Associated: the old AP is left first; input meanwhile is busy.
    assert_eq!(
        rig.at("AT+CWJAP=\"lab\",\"secret\""),
        b"WIFI DISCONNECT\r\n"
    );
    assert_eq!(rig.at("AT+CWSTATE?"), b"\r\nbusy p...\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 499), b"");
    assert_eq!(
        rig.advance_to(start + 500),
        b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:2,\"lab\"\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWJAP?"),
        b"+CWJAP:\"lab\",\"30:7b:ac:69:41:90\",11,-62,1,1,3,0,1\r\n\r\nOK\r\n"
    );
    // A wrong password, an unknown SSID: +CWJAP:<code>, ERROR.
    for (line, code) in [
        ("AT+CWJAP=\"lab\",\"wrong\"", 2),
        ("AT+CWJAP=\"nope\",\"x\"", 3),
    ] {
        rig.at(line);
        let out = rig.advance_to(rig.sim.now + 500);
        assert_eq!(
            out,
            format!("+CWJAP:{code}\r\n\r\nERROR\r\n").as_bytes(),
            "{line}"
        );
    }
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:4,\"nope\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP?"), b"\r\nOK\r\n");
    // No AP, no network.
    assert_eq!(rig.at("AT+WSOPEN=0,\"ws://h.example/\""), b"\r\nERROR\r\n");
    // AT+CWJAP alone rejoins the stored AP.
    assert_eq!(rig.at("AT+CWJAP"), b"");
    assert_eq!(
        rig.advance_to(rig.sim.now + 500),
        b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
    );
    for bad in [
        "AT+CWJAP=",
        "AT+CWJAP=,\"x\"",
        "AT+CWJAP=\"abcdefghijabcdefghijabcdefghijabc\",\"x\"",
        "AT+CWJAP=\"lab\",\"secret\",\"x\",1,2,3,4,5,6,7",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

#[test]
fn a_join_under_sysstore_1_is_the_stored_ap_until_restore() {
    let mut rig = wifi_rig();
    let joined = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n";
    let boot_lab = b"\r\nOK\r\n\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n";
    // AT+SYSSTORE=1 (the default): the join goes into flash, and is the
    // AP joined after `ready`.
    rig.at("AT+CWJAP=\"lab\",\"secret\"");
    assert_eq!(rig.advance_to(rig.sim.now + 500), joined);
    assert_eq!(rig.reset("AT+RST"), boot_lab);
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:2,\"lab\"\r\n\r\nOK\r\n");
    // AT+SYSSTORE=0: the join is for now only.
    assert_eq!(rig.at("AT+SYSSTORE=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP=\"wsat\",\"\""), b"WIFI DISCONNECT\r\n");
    assert_eq!(rig.advance_to(rig.sim.now + 500), joined);
    assert_eq!(rig.reset("AT+RST"), boot_lab);
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:2,\"lab\"\r\n\r\nOK\r\n");
    // AT+RESTORE erases it: not associated after `ready`, nothing for
    // AT+CWJAP alone to rejoin, until a join stores one again.
    assert_eq!(rig.at("ATE1"), b"\r\nOK\r\n");
    assert_eq!(
        rig.reset("AT+RESTORE"),
        b"AT+RESTORE\r\n\r\nOK\r\n\r\nready\r\n"
    );
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:0,\"\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP"), b"\r\nERROR\r\n");
    rig.at("AT+CWJAP=\"lab\",\"secret\"");
    assert_eq!(rig.advance_to(rig.sim.now + 500), joined);
    assert_eq!(rig.reset("AT+RST"), boot_lab);
}

#[test]
fn leaving_station_mode_leaves_the_ap_and_joins_need_it() {
    let mut rig = wifi_rig();
    assert_eq!(rig.at("AT+CWMODE=2"), b"\r\nOK\r\nWIFI DISCONNECT\r\n");
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:0,\"\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP=\"wsat\",\"\""), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CWLAP"), b"\r\nERROR\r\n");
    // softAP mode: its lines only.
    assert_eq!(
        rig.at("AT+CIFSR"),
        b"+CIFSR:APIP,\"192.168.4.1\"\r\n+CIFSR:APMAC,\"24:0a:c4:00:00:02\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWMODE=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIFSR"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWMODE=1"), b"\r\nOK\r\n");
    // Not associated after a reset without autoconnect.
    assert_eq!(rig.at("AT+CWAUTOCONN=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWQAP"), b"\r\nOK\r\n");
}

#[test]
fn scans_list_the_configured_aps_as_the_print_mask_says() {
    let mut rig = wifi_rig();
    assert_eq!(
        rig.at("AT+CWLAP"),
        b"+CWLAP:(0,\"wsat\",-40,\"02:00:00:00:00:01\",6,0,0,0,0,7,0)\r\n\
          +CWLAP:(3,\"lab\",-62,\"30:7b:ac:69:41:90\",11,0,0,4,4,7,0)\r\n\r\nOK\r\n"
    );
    // Zephyr's mask (ecn, ssid, rssi, channel), in hex as lwesp writes it.
    assert_eq!(rig.at("AT+CWLAPOPT=1,0x17"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWLAP"),
        b"+CWLAP:(0,\"wsat\",-40,6)\r\n+CWLAP:(3,\"lab\",-62,11)\r\n\r\nOK\r\n"
    );
    // An RSSI filter, an authmode mask (only WPA2, bit 3), a channel.
    assert_eq!(rig.at("AT+CWLAPOPT=0,2,-50"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWLAP"), b"+CWLAP:(\"wsat\")\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWLAPOPT=0,2,-100,8"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWLAP"), b"+CWLAP:(\"lab\")\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWLAPOPT=0,2"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWLAP=\"lab\""),
        b"+CWLAP:(\"lab\")\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWLAP=,,6"), b"+CWLAP:(\"wsat\")\r\n\r\nOK\r\n");
    for bad in [
        "AT+CWLAPOPT=2,2",
        "AT+CWLAPOPT=0,0x800",
        "AT+CWLAPOPT=0,2,41",
        "AT+CWLAPOPT?",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

#[test]
fn station_settings_drivers_read() {
    let mut rig = wifi_rig();
    // No blank line before OK: the format has no trailing CR LF.
    assert_eq!(rig.at("AT+CWDHCP?"), b"+CWDHCP:3\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWDHCP=0,1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWDHCP?"), b"+CWDHCP:2\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWDHCP=1,5"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWDHCP?"), b"+CWDHCP:7\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWDHCP=2,1"), b"\r\nERROR\r\n");
    assert_eq!(
        rig.at("AT+CIPSTAMAC?"),
        b"+CIPSTAMAC:\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPSTAMAC=\"1A:2b:3c:4d:5e:6f\""), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSTAMAC?"),
        b"+CIPSTAMAC:\"1a:2b:3c:4d:5e:6f\"\r\n\r\nOK\r\n"
    );
    for bad in [
        "\"01:00:00:00:00:01\"",
        "\"00:00:00:00:00:00\"",
        "\"1a:2b:3c\"",
        "\"zz:2b:3c:4d:5e:6f\"",
    ] {
        assert_eq!(
            rig.at(&format!("AT+CIPSTAMAC={bad}")),
            b"\r\nERROR\r\n",
            "{bad}"
        );
    }
    assert_eq!(
        rig.at("AT+CWHOSTNAME?"),
        b"+CWHOSTNAME:espressif\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWHOSTNAME=\"my-board\""), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWHOSTNAME?"),
        b"+CWHOSTNAME:my-board\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at(&format!("AT+CWHOSTNAME=\"{}\"", "x".repeat(33))),
        b"\r\nERROR\r\n"
    );
}

#[test]
fn the_softap_and_other_settings_are_configuration_with_exact_replies() {
    let mut rig = wifi_rig();
    assert_eq!(rig.at("AT+CWSAP?"), b"\r\nERROR\r\n", "station mode only");
    assert_eq!(rig.at("AT+CWMODE=3"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWSAP?"),
        b"+CWSAP:\"ESP_000002\",\"\",1,0,10,0\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CWSAP=\"mine\",\"password1\",5,3,4"),
        b"\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CWSAP?"),
        b"+CWSAP:\"mine\",\"password1\",5,3,4,0\r\n\r\nOK\r\n"
    );
    for bad in [
        "AT+CWSAP=\"x\",\"password1\",5,1",
        "AT+CWSAP=\"x\",\"short\",5,3",
        "AT+CWSAP=\"x\",\"\",14,0",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    assert_eq!(
        rig.at("AT+CIPAP?"),
        b"+CIPAP:ip:\"192.168.4.1\"\r\n+CIPAP:gateway:\"192.168.4.1\"\r\n\
          +CIPAP:netmask:\"255.255.255.0\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPAP=\"10.0.0.1\""), b"\r\nOK\r\n");
    assert!(rig
        .at("AT+CIFSR")
        .starts_with(b"+CIFSR:APIP,\"10.0.0.1\"\r\n"));
    assert_eq!(rig.at("AT+CIPAP=\"10.0.0\""), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CWLIF"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWQIF"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWDHCPS?"),
        b"+CWDHCPS:120,192.168.4.2,192.168.4.101\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPAPMAC?"),
        b"+CIPAPMAC:\"24:0a:c4:00:00:02\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CWCOUNTRY?"),
        b"+CWCOUNTRY:0,\"CN\",1,13\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWCOUNTRY=1,\"DE\",1,13"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CWCOUNTRY?"),
        b"+CWCOUNTRY:1,\"DE\",1,13\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWCOUNTRY=1,\"DE\",5,13"), b"\r\nERROR\r\n");
    assert_eq!(
        rig.at("AT+CIPDNS?"),
        b"+CIPDNS:0,\"208.67.222.222\",\"114.114.114.114\",\"8.8.8.8\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPDNS=1,\"1.1.1.1\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPDNS?"), b"+CIPDNS:1,\"1.1.1.1\"\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPDNS=1,\"1.1.1.1\",\"1.1.1.1\""),
        b"\r\nERROR\r\n"
    );
    assert_eq!(rig.at("AT+CIPDNS=1"), b"\r\nERROR\r\n");
    // The network's servers, when the runtime knows them (the host's).
    let mut rig = Rig {
        sim: Sim::with_options(ModemOptions {
            wifi: WifiOptions {
                dhcp_dns: vec!["10.0.0.1".into(), "192.0.2.53".into()],
                ..WifiOptions::default()
            },
            ..ModemOptions::default()
        }),
    };
    rig.output();
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPDNS?"),
        b"+CIPDNS:0,\"10.0.0.1\",\"192.0.2.53\"\r\n\r\nOK\r\n"
    );
    // A static station address turns its DHCP off and is reported.
    assert_eq!(
        rig.at("AT+CIPSTA=\"192.168.1.50\",\"192.168.1.1\",\"255.255.255.0\""),
        b"\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSTA?"),
        b"+CIPSTA:ip:\"192.168.1.50\"\r\n+CIPSTA:gateway:\"192.168.1.1\"\r\n\
          +CIPSTA:netmask:\"255.255.255.0\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWDHCP?"), b"+CWDHCP:2\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSTA=\"192.168.1.50\",\"192.168.1.1\""),
        b"\r\nERROR\r\n"
    );
}

#[test]
fn link_status_follows_the_station() {
    let mut rig = wifi_rig();
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:2\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTATE?"), b"\r\nOK\r\n");
    rig.at("AT+CWJAP=\"nope\",\"x\"");
    rig.advance_to(rig.sim.now + 500);
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:5\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWMODE=2"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:0\r\n\r\nOK\r\n");
    // After a reset without autoconnect: initialised, nothing started.
    assert_eq!(rig.at("AT+CWMODE=1"), b"\r\nOK\r\n");
    let mut sim = Sim::with_options(ModemOptions {
        wifi: WifiOptions {
            stored: None,
            ..WifiOptions::default()
        },
        ..ModemOptions::default()
    });
    assert_eq!(sim.host_read(), b"\r\nready\r\n");
    sim.host_write(b"ATE0\r\nAT+CIPSTATUS\r\n");
    assert_eq!(sim.host_read(), b"ATE0\r\n\r\nOK\r\nSTATUS:1\r\n\r\nOK\r\n");
}

#[test]
fn autoconnect_survives_a_reset_and_decides_the_boot_join() {
    let mut rig = wifi_rig();
    assert_eq!(rig.at("AT+CWAUTOCONN=0"), b"\r\nOK\r\n");
    assert_eq!(rig.reset("AT+RST"), b"\r\nOK\r\n\r\nready\r\n");
    assert_eq!(
        rig.at("AT+CWAUTOCONN?"),
        b"AT+CWAUTOCONN?\r\n+CWAUTOCONN:0\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CWSTATE?"),
        b"AT+CWSTATE?\r\n+CWSTATE:0,\"\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CWAUTOCONN=1"), b"AT+CWAUTOCONN=1\r\n\r\nOK\r\n");
    assert_eq!(rig.reset("AT+RST"), ok_then_boot(b"AT+RST\r\n\r\nOK\r\n"));
}
