//! Fuzz harnesses for the sans-IO core. Each takes arbitrary bytes, drives
//! a [`Modem`] (or a codec) with them and panics only when an invariant
//! breaks. The cargo-fuzz targets in `fuzz/` call these, and
//! `tests/regressions.rs` replays every input kept in `regressions/`.
//!
//! Invariants checked everywhere: no panic; a deadline handled is never
//! handed out again (a runtime would spin); reports held for the host stay
//! bounded; after any input the modem still answers `AT` with `OK`.

use wsat_proto::testing::{self, Sim};
use wsat_proto::ws;
use wsat_proto::{Fault, Link, NetEvent, HOST_OUTPUT_BOUND};

/// Output and held reports may pass [`HOST_OUTPUT_BOUND`] by what one
/// command or one read adds: an `AT+SYSMFG` read of a 64 KiB entry, a
/// read framed at buffer_size 1.
const OUTPUT_SLACK: usize = 80 * 1024;

/// A modem and a well-behaved simulated network: connects succeed, the
/// handshake is answered correctly, every send is acknowledged.
fn sim() -> Sim {
    let mut sim = Sim::new();
    sim.network.auto = true;
    sim.network.answer_pings = false;
    sim.run();
    sim
}

/// What every harness checks after every step.
fn check_bounds(sim: &Sim) {
    let backlog = sim.modem.host_output().len() + sim.held_reports();
    assert!(
        backlog <= HOST_OUTPUT_BOUND + OUTPUT_SLACK,
        "host output grew to {backlog}"
    );
}

fn host(sim: &mut Sim, bytes: &[u8]) {
    sim.host_write(bytes);
    check_bounds(sim);
}

fn net(sim: &mut Sim, link: Link, event: NetEvent<'_>) {
    sim.net_event(link, event);
    check_bounds(sim);
}

/// Ends whatever the modem is in the middle of and checks `AT` answers `OK`.
fn assert_usable(sim: &mut Sim) {
    sim.host_reading = true;
    // Waits for the network end by their timeouts (≤ 180 s).
    sim.advance(200_000);
    wake(sim);
    // Leaves passthrough or an `AT+CIPSENDL` (a `+++` alone between
    // silences), which no amount of data ends.
    host(sim, b"+++");
    sim.advance(1_000);
    // Fills any data prompt (≤ 16384 bytes... or 64 KiB), then overflows the line.
    host(sim, &[b'x'; 70_000]);
    sim.advance(200_000);
    host(sim, b"\r\n");
    sim.host_read();
    host(sim, b"AT\r\n");
    let out = sim.host_read();
    assert!(
        out.ends_with(b"\r\nOK\r\n"),
        "modem unusable: {:?}",
        String::from_utf8_lossy(&out)
    );
}

/// A module in deep sleep (`AT+GSLP`, up to 24 days or for ever) is woken
/// as a host would: by its reset pin.
fn wake(sim: &mut Sim) {
    if sim.modem.restarting() {
        sim.modem.inject(Fault::Reboot, sim.now);
        sim.advance(10_000);
    }
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
    let mut sim = sim();
    for (tag, chunk) in records(data) {
        let index = chunk.first().map_or(0, |b| usize::from(*b) % Link::COUNT);
        let link = Link::from_index(index).unwrap_or(Link::Ws(0));
        let payload = chunk.get(1..).unwrap_or_default();
        match tag % 12 {
            0..=5 => host(&mut sim, chunk),
            6 => net(&mut sim, link, NetEvent::Received(payload)),
            7 => sim.advance(u64::from(le16(chunk)) * 16),
            8 => net(&mut sim, link, NetEvent::Closed),
            9 => net(
                &mut sim,
                link,
                NetEvent::Datagram {
                    from: testing::SIM_LOCAL,
                    bytes: payload,
                },
            ),
            10 => net(&mut sim, link, NetEvent::Sent),
            _ => net(&mut sim, link, NetEvent::Failed(String::from("fuzz"))),
        }
    }
    assert_usable(&mut sim);
}

/// The first two bytes of `chunk`, little-endian (missing bytes are 0).
fn le16(chunk: &[u8]) -> u16 {
    u16::from_le_bytes([
        chunk.first().copied().unwrap_or(0),
        chunk.get(1).copied().unwrap_or(0),
    ])
}

/// A host that writes but reads only when the input says, against servers
/// that send data, ping and close: the output must stay within its bound,
/// and once the host reads, the modem must still answer.
pub fn host_flood(data: &[u8]) {
    let mut sim = sim();
    sim.network.answer_pings = true;
    host(
        &mut sim,
        b"AT+WSCFG=0,1,2,1\r\nAT+WSOPEN=0,\"ws://fuzz.example/\"\r\n",
    );
    host(&mut sim, b"AT+WSOPEN=1,\"ws://fuzz.example/\"\r\n");
    sim.host_reading = false;
    for (tag, chunk) in records(data) {
        let link = Link::Ws(chunk.first().map_or(0, |b| b % 2));
        match tag % 8 {
            // The host writes a chunk many times over.
            0..=2 => {
                let times = usize::from(tag >> 3) * 64 + 1;
                for _ in 0..times {
                    sim.host_tx.extend(chunk);
                }
                sim.run();
                check_bounds(&sim);
            }
            3 | 4 => {
                let times = usize::from(tag >> 3) + 1;
                let frame =
                    testing::server_frame(true, chunk.first().map_or(2, |b| b & 0xB), chunk);
                for _ in 0..times {
                    sim.server_send(link, &frame);
                    check_bounds(&sim);
                }
            }
            5 => {
                let read = sim.host_read_some(usize::from(le16(chunk)) * 64);
                drop(read);
                check_bounds(&sim);
            }
            6 => sim.advance(u64::from(le16(chunk))),
            _ => sim.host_reading = !sim.host_reading,
        }
        check_bounds(&sim);
        if sim.host_reading {
            sim.host_rx.clear();
        }
    }
    assert_usable(&mut sim);
}

/// Bytes from the server on an open link (after a valid handshake), cut
/// into reads as the input says. With the default format the AT output
/// must parse as reports exactly.
pub fn net_frames(data: &[u8]) {
    let Some((&setup, data)) = data.split_first() else {
        return;
    };
    let mut sim = sim();
    host(&mut sim, b"ATE0\r\n");
    let default_format = setup & 0x80 == 0;
    let buffer_size = [1, 4, 125, 1024][usize::from(setup & 3)];
    host(
        &mut sim,
        format!("AT+WSCFG=0,7200,7200,{buffer_size}\r\n").as_bytes(),
    );
    if !default_format {
        let level = (setup >> 2) % 3;
        let mask = ((setup >> 4) & 7) * 9 % 63 + 1;
        host(
            &mut sim,
            format!("AT+WSDATAFMT=0,{level},{mask}\r\n").as_bytes(),
        );
    }
    host(&mut sim, b"AT+WSOPEN=0,\"ws://fuzz.example/\"\r\n");
    let out = sim.host_read();
    assert!(
        out.ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    let mut out = Vec::new();
    for (cut, chunk) in records(data) {
        net(&mut sim, Link::Ws(0), NetEvent::Received(chunk));
        if cut & 1 == 1 {
            sim.advance(1);
        }
        out.extend(sim.host_read());
    }
    if default_format {
        check_reports(&out, buffer_size);
    }
    for (_, bytes) in &sim.network.sent {
        check_client_frames(bytes);
    }
    assert_usable(&mut sim);
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
fn check_client_frames(bytes: &[u8]) {
    let frames = testing::parse_frames(bytes).expect("whole frames");
    for frame in frames {
        let header = frame.header;
        assert_eq!(header.rsv, 0, "RSV bits");
        assert!(header.mask.is_some(), "unmasked client frame");
        if header.opcode.is_control() {
            assert!(
                frame.payload.len() <= 125 && header.fin,
                "bad control frame"
            );
        }
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
    let mut sim = sim();
    sim.network.answer_handshakes = false;
    host(&mut sim, b"ATE0\r\nAT+WSOPEN=1,\"ws://fuzz.example/\"\r\n");
    for (_, chunk) in records(data) {
        net(&mut sim, Link::Ws(1), NetEvent::Received(chunk));
    }
    assert_usable(&mut sim);
}

/// Command lines, one at a time, against a modem whose network works (and
/// sends nothing unasked). After each, the answer must be well-formed AT:
/// the echo (when on), information lines, exactly one final result code,
/// then only unsolicited reports. A prompt takes its data from the next
/// record (padded until the modem answers).
pub fn at_commands(data: &[u8]) {
    let mut sim = sim();
    sim.host_read();
    let mut echo = true;
    let mut records = records(data);
    while let Some((_, raw)) = records.next() {
        let line: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        host(&mut sim, &line);
        host(&mut sim, b"\r\n");
        // An empty line has no answer to wait for.
        let mut out = if line.is_empty() {
            sim.host_read()
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
        if prompt && line == b"AT+CIPSEND" {
            // Passthrough: everything is data until a lone `+++` between
            // silences, which answers nothing (or `+QUITT`).
            sim.advance(50);
            host(&mut sim, b"+++");
            sim.advance(50);
            let out = sim.host_read();
            assert!(
                out.is_empty() || out == b"\r\n+QUITT\r\n",
                "leaving passthrough: {:?}",
                String::from_utf8_lossy(&out)
            );
            continue;
        }
        if prompt && line.to_ascii_uppercase().starts_with(b"AT+CIPSENDL=") {
            // Up to 2^31 - 1 bytes: the next record's, byte by byte until it
            // ends, else a lone `+++` between silences cancels. Progress
            // lines are `+…` information.
            let (_, data) = records.next().unwrap_or((0, &[]));
            for &byte in data {
                if ends_in_result(&sim.host_rx) {
                    break;
                }
                host(&mut sim, &[byte]);
            }
            if !ends_in_result(&sim.host_rx) {
                sim.advance(50);
                host(&mut sim, b"+++");
                sim.advance(50);
            }
            let out = answer(&mut sim);
            let ends: [&[u8]; 3] = [
                b"\r\nSEND CANCELLED\r\n",
                b"\r\nSEND OK\r\n",
                b"\r\nSEND FAIL\r\n",
            ];
            let end = ends
                .iter()
                .filter_map(|e| {
                    out.windows(e.len())
                        .rposition(|w| w == *e)
                        .map(|at| at + e.len())
                })
                .max();
            let text = String::from_utf8_lossy(&out);
            let end = end.unwrap_or_else(|| panic!("AT+CIPSENDL did not end: {text:?}"));
            // With one or two bytes left, the `+++` was data and the rest
            // of it is a new line (echoed, with echo on; reports wait for
            // it to end): end that line. Reports that came before it stay.
            let mut tail = &out[end..];
            if !tail.ends_with(b"\r\n") {
                let typed = tail.iter().rev().take_while(|&&b| b == b'+').count();
                assert!(typed <= 2, "after AT+CIPSENDL: {text:?}");
                tail = &tail[..tail.len() - typed];
            }
            check_unsolicited(tail, || format!("after AT+CIPSENDL: {text:?}"));
            host(&mut sim, b"\r\n");
            answer(&mut sim);
            continue;
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
            while sim.host_rx.is_empty() {
                let Some(byte) = bytes.next() else { break };
                host(&mut sim, &[byte]);
            }
            let out = answer(&mut sim);
            let prompt_again = check_answer(&out, b"<prompt data>");
            assert!(!prompt_again, "a prompt answered with a prompt");
        }
    }
    assert_usable(&mut sim);
}

/// What the modem wrote since the last call, once any command waiting on
/// the network or a timer has finished.
fn answer(sim: &mut Sim) -> Vec<u8> {
    sim.run();
    if !ends_in_result(&sim.host_rx) {
        sim.advance(200_000);
    }
    // A reset's `ready` belongs to its answer; the next line must not be
    // typed into the restart.
    if sim.modem.restarting() {
        sim.advance(10_000);
    }
    wake(sim);
    sim.host_read()
}

/// The final result codes; the prompt and `ready` end their answers.
const FINALS: [&[u8]; 7] = [
    b"\r\nOK\r\n\r\n>",
    b"\r\nOK\r\n\r\nready\r\n",
    b"\r\nOK\r\n",
    b"\r\nERROR\r\n",
    b"\r\nSEND OK\r\n",
    b"\r\nSEND FAIL\r\n",
    b"\r\nbusy p...\r\n",
];

/// What ends an answer after information lines that ESP-AT prints without
/// their own CR LF (`AT+CWDHCP?`, `AT+CIPDINFO?`).
const BARE_OK: &[u8] = b"OK\r\n";

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
    // After a send's data: how much was taken, as a line of its own.
    if let Some(after) = rest.strip_prefix(b"\r\nRecv ") {
        let end = after
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("unterminated Recv: {}", what()));
        assert!(after[..end].ends_with(b" bytes"), "bad Recv: {}", what());
        rest = &after[end + 2..];
    }
    let mut lines = 0;
    loop {
        if lines > 0 && rest.starts_with(BARE_OK) {
            rest = &rest[BARE_OK.len()..];
            break;
        }
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
        lines += 1;
    }
    check_unsolicited(rest, what);
    false
}

/// What may follow a result code: unsolicited reports (`+…`, `WIFI …`),
/// whole lines.
fn check_unsolicited(mut rest: &[u8], what: impl Fn() -> String) {
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"+") || rest.starts_with(b"WIFI "),
            "not a report after the result: {}",
            what()
        );
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("unterminated report: {}", what()));
        rest = &rest[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_network_opens_links_and_carries_frames() {
        let mut sim = sim();
        host(&mut sim, b"ATE0\r\nAT+WSOPEN=0,\"ws://h.example/\"\r\n");
        assert!(sim.host_read().ends_with(b"+WS_CONNECTED:0\r\n\r\nOK\r\n"));
        net(&mut sim, Link::Ws(0), NetEvent::Received(b"\x81\x02hi"));
        assert_eq!(sim.host_read(), b"+WS_DATA:0,2,hi\r\n");
        host(&mut sim, b"AT+WSSEND=0,2\r\nyo");
        assert_eq!(sim.host_read(), b"\r\nOK\r\n\r\n>\r\nSEND OK\r\n");
        assert_eq!(sim.network.sent.len(), 1);
        check_client_frames(&sim.network.sent[0].1);
        assert_usable(&mut sim);
    }

    #[test]
    fn line_settings_changes_do_not_stall_output() {
        let mut sim = sim();
        host(&mut sim, b"ATE0\r\nAT+UART_CUR=9600,8,1,0,0\r\nAT\r\n");
        assert!(sim.host_read().ends_with(b"\r\nOK\r\n\r\nOK\r\n"));
        assert_usable(&mut sim);
    }

    #[test]
    fn answer_checks_accept_well_formed_at_only() {
        let good: [&[u8]; 8] = [
            b"\r\nOK\r\n",
            b"+CIPDINFO:false\r\nOK\r\n",
            b"\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n",
            b"0,CONNECT\r\n\r\nOK\r\n",
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
