//! Fuzz harnesses for the sans-IO core. Each takes arbitrary bytes, drives
//! a [`Modem`] (or a codec) with them and panics only when an invariant
//! breaks. The cargo-fuzz targets in `fuzz/` call these, and
//! `tests/regressions.rs` replays every input kept in `regressions/`.
//!
//! Invariants checked everywhere: no panic; a deadline handled is never
//! handed out again (a runtime would spin); reports held for the host stay
//! bounded; after any input the modem still answers `AT` with `OK`.

use std::collections::VecDeque;

use wsat_proto::ws::{self, opcode};
use wsat_proto::{LinkId, Modem, ModemOptions, NetAction, NetEvent, Platform, LINK_COUNT};

/// Deterministic randomness, so a crashing input always crashes.
struct FuzzPlatform(u32);

impl Platform for FuzzPlatform {
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (self.0 >> 16) as u8;
        }
    }
    fn unix_time(&self) -> Option<i64> {
        Some(1_700_000_000)
    }
}

/// Held reports may not outgrow what the network gave plus this.
const HELD_SLACK: usize = 64 * 1024;

/// A modem and a well-behaved simulated network: connects succeed, the
/// handshake is answered correctly, every send is acknowledged.
struct Sim {
    modem: Modem,
    now: u64,
    output: Vec<u8>,
    /// Events the simulated network will deliver.
    pending: VecDeque<(LinkId, SimEvent)>,
    /// Host bytes the modem has not taken yet.
    unconsumed: Vec<u8>,
    /// Frames the modem sent after its handshakes, per link.
    sent: Vec<(LinkId, Vec<u8>)>,
    received_total: usize,
    /// Whether handshake requests get a valid `101` from the network.
    answer_handshakes: bool,
}

enum SimEvent {
    Connected,
    Received(Vec<u8>),
    Sent,
}

impl Sim {
    fn new() -> Sim {
        let modem = Modem::new(ModemOptions::default(), Box::new(FuzzPlatform(7)), 0);
        let mut sim = Sim {
            modem,
            now: 0,
            output: Vec::new(),
            pending: VecDeque::new(),
            unconsumed: Vec::new(),
            sent: Vec::new(),
            received_total: 0,
            answer_handshakes: true,
        };
        sim.settle();
        sim
    }

    fn host(&mut self, bytes: &[u8]) {
        self.unconsumed.extend_from_slice(bytes);
        self.offer_input();
        self.settle();
    }

    fn offer_input(&mut self) {
        if self.unconsumed.is_empty() {
            return;
        }
        let used = self.modem.host_input(&self.unconsumed, self.now);
        assert!(used <= self.unconsumed.len());
        self.unconsumed.drain(..used);
    }

    fn net(&mut self, link: LinkId, event: NetEvent<'_>) {
        if let NetEvent::Received(bytes) = &event {
            self.received_total += bytes.len();
        }
        self.modem.net_event(link, event, self.now);
        self.offer_input();
        self.settle();
    }

    /// Moves the clock forward, firing deadlines as a runtime would.
    fn advance(&mut self, ms: u64) {
        let target = self.now.saturating_add(ms);
        while let Some(deadline) = self.modem.poll_timeout() {
            if deadline > target {
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
            self.offer_input();
            self.settle();
        }
        self.now = target;
    }

    /// Drains the modem, lets the simulated network answer, until quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.modem.poll_host_output(&mut self.output);
            // AT+UART_CUR and friends: no line here, the change applies at once.
            while self.modem.poll_uart_change().is_some() {
                self.modem.poll_host_output(&mut self.output);
            }
            while let Some(action) = self.modem.poll_net_action() {
                self.act(action);
            }
            let Some((link, event)) = self.pending.pop_front() else {
                break;
            };
            let event = match &event {
                SimEvent::Connected => NetEvent::Connected,
                SimEvent::Received(bytes) => NetEvent::Received(bytes),
                SimEvent::Sent => NetEvent::Sent,
            };
            self.modem.net_event(link, event, self.now);
            self.offer_input();
        }
        assert!(
            self.modem.held_output_len() <= self.received_total * 2 + HELD_SLACK,
            "held reports grew to {}",
            self.modem.held_output_len()
        );
    }

    fn act(&mut self, action: NetAction) {
        match action {
            NetAction::Connect { link, host, .. } => {
                assert!(usize::from(link) < LINK_COUNT && !host.is_empty());
                self.pending.push_back((link, SimEvent::Connected));
            }
            NetAction::Send { link, bytes } => {
                if let Some(response) = handshake_response(&bytes) {
                    if self.answer_handshakes {
                        self.pending.push_back((link, SimEvent::Received(response)));
                    }
                } else {
                    self.sent.push((link, bytes));
                }
                self.pending.push_back((link, SimEvent::Sent));
            }
            NetAction::Close { link } => {
                self.pending.retain(|(l, _)| *l != link);
            }
        }
    }

    /// Ends whatever the modem is in the middle of and checks `AT` answers `OK`.
    fn assert_usable(&mut self) {
        // Waits for the network end by their timeouts (≤ 180 s).
        self.advance(200_000);
        // Fills any data prompt (≤ 16384 bytes), then overflows the line.
        self.host(&[b'x'; 20_000]);
        self.advance(200_000);
        self.host(b"\r\n");
        self.output.clear();
        self.host(b"AT\r\n");
        assert!(
            self.output.ends_with(b"\r\nOK\r\n"),
            "modem unusable: {:?}",
            String::from_utf8_lossy(&self.output)
        );
    }
}

/// The right `101` for a handshake request, or `None` if `bytes` is not one.
fn handshake_response(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.starts_with("GET ") {
        return None;
    }
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))?;
    let accept = ws::accept_key(key.as_bytes());
    Some(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// Takes `(tag, chunk)` records from `data`: a tag byte, a length byte, then
/// that many bytes (fewer at the end).
fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first().unwrap_or((&0, rest));
        let len = usize::from(len).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        data = rest;
        Some((tag, chunk))
    })
}

/// Bytes on the AT port, interleaved with network events and time, against a
/// modem whose network works.
pub fn at_port(data: &[u8]) {
    let mut sim = Sim::new();
    for (tag, chunk) in records(data) {
        let link = chunk.first().map_or(0, |b| b % LINK_COUNT as u8);
        match tag % 10 {
            0..=5 => sim.host(chunk),
            6 => sim.net(link, NetEvent::Received(chunk.get(1..).unwrap_or_default())),
            7 => sim.advance(
                u64::from(u16::from_le_bytes([
                    chunk.first().copied().unwrap_or(0),
                    chunk.get(1).copied().unwrap_or(0),
                ])) * 16,
            ),
            8 => sim.net(link, NetEvent::Closed),
            _ => sim.net(link, NetEvent::Failed(String::from("fuzz"))),
        }
    }
    sim.assert_usable();
}

/// Bytes from the server on an open link (after a valid handshake), cut
/// into reads as the input says. With the default format the AT output
/// must parse as reports exactly.
pub fn net_frames(data: &[u8]) {
    let Some((&setup, data)) = data.split_first() else {
        return;
    };
    let mut sim = Sim::new();
    sim.host(b"ATE0\r\n");
    let default_format = setup & 0x80 == 0;
    let buffer_size = [1, 4, 125, 1024][usize::from(setup & 3)];
    sim.host(format!("AT+WSCFG=0,7200,7200,{buffer_size}\r\n").as_bytes());
    if !default_format {
        let level = (setup >> 2) % 3;
        let mask = ((setup >> 4) & 7) * 9 % 63 + 1;
        sim.host(format!("AT+WSDATAFMT=0,{level},{mask}\r\n").as_bytes());
    }
    sim.host(b"AT+WSOPEN=0,\"ws://fuzz.example/\"\r\n");
    assert!(
        sim.output.ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&sim.output)
    );
    sim.output.clear();
    for (cut, chunk) in records(data) {
        sim.net(0, NetEvent::Received(chunk));
        if cut & 1 == 1 {
            sim.advance(1);
        }
    }
    if default_format {
        check_reports(&sim.output, buffer_size);
    }
    for (_, bytes) in &sim.sent {
        check_client_frames(bytes);
    }
    sim.assert_usable();
}

/// Default-format output: `+WS_DATA:0,<n>,<n bytes>\r\n` with n ≤ buffer
/// size, and link reports, nothing else.
fn check_reports(mut out: &[u8], buffer_size: usize) {
    while !out.is_empty() {
        if let Some(rest) = out.strip_prefix(b"+WS_DATA:0,") {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let len: usize = std::str::from_utf8(&rest[..digits])
                .unwrap()
                .parse()
                .unwrap();
            assert!(len <= buffer_size, "chunk of {len} > {buffer_size}");
            let rest = rest[digits..]
                .strip_prefix(b",")
                .expect("comma after length");
            assert_eq!(&rest[len..len + 2], b"\r\n", "trailer");
            out = &rest[len + 2..];
        } else {
            let line = [&b"+WS_DISCONNECTED:0\r\n"[..], b"+WS_CLOSED:0\r\n"]
                .into_iter()
                .find(|l| out.starts_with(l))
                .unwrap_or_else(|| panic!("not a report: {:?}", String::from_utf8_lossy(out)));
            out = &out[line.len()..];
        }
    }
}

/// What the modem answered the server with: masked, well-formed frames.
fn check_client_frames(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        assert!(bytes.len() >= 6);
        let op = bytes[0] & 0x0F;
        assert_eq!(bytes[0] & 0x70, 0, "RSV bits");
        assert!(bytes[1] & 0x80 != 0, "unmasked client frame");
        let (len, header) = match bytes[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 8),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                14,
            ),
            n => (usize::from(n), 6),
        };
        if opcode::is_control(op) {
            assert!(len <= 125 && bytes[0] & 0x80 != 0, "bad control frame");
        }
        bytes = &bytes[header + len..];
    }
}

/// A server's handshake response, in any cut, against the validator and
/// the modem.
pub fn handshake(data: &[u8]) {
    let accept = ws::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    for subprotocol in [None, Some(&b"chat"[..])] {
        if let Ok(Some(n)) = ws::parse_response(data, &accept, subprotocol) {
            assert!(n <= data.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(uri) = ws::parse_ws_uri(text) {
            assert!(!uri.host.is_empty());
        }
    }
    // The same bytes as the response to a real open.
    let mut sim = Sim::new();
    sim.answer_handshakes = false;
    sim.host(b"ATE0\r\nAT+WSOPEN=1,\"ws://fuzz.example/\"\r\n");
    for (_, chunk) in records(data) {
        sim.net(1, NetEvent::Received(chunk));
    }
    sim.assert_usable();
}

/// Command lines, one at a time, against a modem whose network works (and
/// sends nothing unasked). After each, the answer must be well-formed AT:
/// the echo (when on), information lines, exactly one final result code,
/// then only unsolicited reports. A prompt takes its data from the next
/// record (padded until the modem answers).
pub fn at_commands(data: &[u8]) {
    let mut sim = Sim::new();
    sim.output.clear();
    let mut echo = true;
    let mut records = records(data);
    while let Some((_, raw)) = records.next() {
        let line: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        sim.host(&line);
        sim.host(b"\r\n");
        // An empty line has no answer to wait for.
        let mut out = if line.is_empty() {
            std::mem::take(&mut sim.output)
        } else {
            answer(&mut sim)
        };
        if echo {
            let mut echoed = line.clone();
            echoed.extend_from_slice(b"\r\n");
            assert!(
                out.starts_with(&echoed),
                "no echo of {:?}",
                String::from_utf8_lossy(&line)
            );
            out.drain(..echoed.len());
        }
        if line.is_empty() {
            assert!(
                out.is_empty(),
                "answer to an empty line: {:?}",
                String::from_utf8_lossy(&out)
            );
            continue;
        }
        let prompt = check_answer(&out, &line);
        if out.windows(9).any(|w| w == b"\r\nready\r\n") {
            echo = true;
        } else if out.starts_with(b"\r\nOK\r\n") && (line == b"ATE0" || line == b"ATE1") {
            echo = line == b"ATE1";
        }
        if prompt {
            // Exactly as many bytes as the prompt wants: the next record's,
            // padded with `x`. Byte by byte, since only the answer tells.
            let (_, data) = records.next().unwrap_or((0, &[]));
            let mut bytes = data
                .iter()
                .copied()
                .chain(std::iter::repeat(b'x'))
                .take(20_000);
            while sim.output.is_empty() {
                let Some(byte) = bytes.next() else { break };
                sim.host(&[byte]);
            }
            let out = answer(&mut sim);
            let prompt_again = check_answer(&out, b"<prompt data>");
            assert!(!prompt_again, "a prompt answered with a prompt");
        }
    }
    sim.assert_usable();
}

/// What the modem wrote since the last call, once any command waiting on
/// the network or a timer has finished.
fn answer(sim: &mut Sim) -> Vec<u8> {
    if !ends_in_result(&sim.output) {
        sim.advance(200_000);
    }
    std::mem::take(&mut sim.output)
}

/// The final result codes; the prompt and `ready` end their answers.
const FINALS: [&[u8]; 6] = [
    b"\r\nOK\r\n\r\n>",
    b"\r\nOK\r\n\r\nready\r\n",
    b"\r\nOK\r\n",
    b"\r\nERROR\r\n",
    b"\r\nSEND OK\r\n",
    b"\r\nbusy p...\r\n",
];

fn ends_in_result(out: &[u8]) -> bool {
    let mut rest = out;
    while !rest.is_empty() {
        if FINALS.iter().any(|f| rest.starts_with(f)) {
            return true;
        }
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(0) | None => return false,
            Some(end) => rest = &rest[end + 2..],
        }
    }
    false
}

/// Checks one answer: lines, one final code, then reports (`+...\r\n`).
/// Returns whether it ended in a data prompt.
fn check_answer(out: &[u8], line: &[u8]) -> bool {
    let what = || {
        format!(
            "answer to {:?}: {:?}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(out)
        )
    };
    let mut rest = out;
    loop {
        if let Some(final_code) = FINALS.iter().find(|f| rest.starts_with(f)) {
            rest = &rest[final_code.len()..];
            if final_code.ends_with(b">") {
                assert!(rest.is_empty(), "bytes after a prompt: {}", what());
                return true;
            }
            break;
        }
        assert!(!rest.is_empty(), "no result code: {}", what());
        assert!(!rest.starts_with(b"\r\n"), "not a line: {}", what());
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("unterminated line: {}", what()));
        rest = &rest[end + 2..];
    }
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"+"),
            "not a report after the result: {}",
            what()
        );
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("unterminated report: {}", what()));
        rest = &rest[end + 2..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_network_opens_links_and_carries_frames() {
        let mut sim = Sim::new();
        sim.host(b"ATE0\r\nAT+WSOPEN=0,\"ws://h.example/\"\r\n");
        assert!(sim.output.ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"));
        sim.output.clear();
        sim.net(0, NetEvent::Received(b"\x81\x02hi"));
        assert_eq!(sim.output, b"+WS_DATA:0,2,hi\r\n");
        sim.output.clear();
        sim.host(b"AT+WSSEND=0,2\r\nyo");
        assert_eq!(sim.output, b"\r\nOK\r\n\r\n>\r\nSEND OK\r\n");
        assert_eq!(sim.sent.len(), 1);
        check_client_frames(&sim.sent[0].1);
        sim.assert_usable();
    }

    #[test]
    fn line_settings_changes_do_not_stall_output() {
        let mut sim = Sim::new();
        sim.host(b"ATE0\r\nAT+UART_CUR=9600,8,1,0,0\r\nAT\r\n");
        assert!(sim.output.ends_with(b"\r\nOK\r\n\r\nOK\r\n"));
        sim.assert_usable();
    }

    #[test]
    fn answer_checks_accept_well_formed_at_only() {
        let good: [&[u8]; 5] = [
            b"\r\nOK\r\n",
            b"+CWSTATE:2,\"x\"\r\n\r\nOK\r\n+TIME_UPDATED\r\n",
            b"+WS_DISCONNECTED:0\r\nERR CODE:0x01070001\r\n\r\nERROR\r\n",
            b"\r\nOK\r\n\r\nready\r\n",
            b"\r\nSEND OK\r\n+WS_CONNECTED:1\r\n",
        ];
        for out in good {
            assert!(!check_answer(out, b"AT"), "{out:?}");
        }
        assert!(check_answer(b"\r\nOK\r\n\r\n>", b"AT"));
        let bad: [&[u8]; 6] = [
            b"",
            b"OK\r\n",
            b"\r\nOK\r\n\r\nOK\r\n",
            b"+X:1\r\n",
            b"\r\nOK\r\n\r\n>x",
            b"\r\nERROR\r\n+WS_DATA:0,1,x",
        ];
        for out in bad {
            let result = std::panic::catch_unwind(|| check_answer(out, b"AT"));
            assert!(result.is_err(), "{out:?} passed");
        }
    }

    #[test]
    fn report_checks_accept_reports_only() {
        check_reports(b"+WS_DATA:0,2,hi\r\n+WS_CLOSED:0\r\n+WS_DATA:0,0,\r\n", 4);
        for bad in [
            &b"+WS_DATA:0,5,hello\r\n"[..],
            b"OK\r\n",
            b"+WS_DATA:0,2,hix",
        ] {
            let result = std::panic::catch_unwind(|| check_reports(bad, 4));
            assert!(result.is_err(), "{bad:?} passed");
        }
    }
}
