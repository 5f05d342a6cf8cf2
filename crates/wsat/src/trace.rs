//! `--trace FILE`: a log a person can read of every byte on the AT port and
//! every WebSocket frame on each link, for debugging host drivers.
//!
//! One line per event:
//!
//! ```text
//! 2026-12-01T12:00:01.123456Z m1 at-rx "AT+WSSEND=0,4\r\n"    bytes from the host
//! 2026-12-01T12:00:01.123502Z m1 at-tx "\r\nOK\r\n\r\n>"       bytes to the host
//! 2026-12-01T12:00:01.124010Z m1 link0 connect 127.0.0.1:8765
//! 2026-12-01T12:00:01.124300Z m1 link0 tx http "GET / HTTP/1.1"
//! 2026-12-01T12:00:01.125001Z m1 link0 rx http "HTTP/1.1 101 Switching Protocols"
//! 2026-12-01T12:00:01.125900Z m1 link0 tx frame TEXT fin=1 len=4 masked "test"
//! ```
//!
//! Times are RFC 3339 UTC dates and times to the microsecond; `m<n>`
//! numbers the modems of this process (one per `--tcp` connection).
//! Printable ASCII is shown as is, `\r \n \t \\ \"` escaped and every other
//! byte as `\xNN`. Frame lines show the first bytes of the payload, unmasked.
//! The frames and HTTP heads are what the core logged ([`wsat_proto::Log`]):
//! nothing here parses the wire.
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use wsat_proto::ws::Header;
use wsat_proto::{Direction, Link, UartConfig, LOG_PREVIEW};

/// The trace file, shared by every modem of the process.
pub struct Tracer {
    file: Mutex<BufWriter<File>>,
}

impl Tracer {
    pub fn create(path: &Path) -> io::Result<Arc<Tracer>> {
        let file = File::create(path)?;
        Ok(Arc::new(Tracer {
            file: Mutex::new(BufWriter::new(file)),
        }))
    }

    /// The trace of modem `id` on `port` (e.g. `tcp 127.0.0.1:40000`).
    pub(crate) fn modem(self: &Arc<Self>, id: u64, port: &str) -> ModemTrace {
        let trace = ModemTrace {
            tracer: self.clone(),
            id,
        };
        trace.line(format_args!("start on {port}"));
        trace
    }

    fn write_line(&self, line: &str) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A trace that cannot be written must not stop the modem.
        let _ = file.write_all(line.as_bytes());
        let _ = file.flush();
    }
}

/// One modem's view of the trace.
pub(crate) struct ModemTrace {
    tracer: Arc<Tracer>,
    id: u64,
}

impl ModemTrace {
    /// Bytes from the host.
    pub(crate) fn at_rx(&self, bytes: &[u8]) {
        self.line(format_args!("at-rx {}", Escaped(bytes)));
    }

    /// Bytes written to the host.
    pub(crate) fn at_tx(&self, bytes: &[u8]) {
        self.line(format_args!("at-tx {}", Escaped(bytes)));
    }

    /// A line settings change and what became of it.
    pub(crate) fn uart(&self, config: UartConfig, outcome: &str) {
        let UartConfig {
            baudrate,
            data_bits,
            stop_bits,
            parity,
            flow_control,
        } = config;
        self.line(format_args!(
            "uart {baudrate} baud, {data_bits} data bits, stop bits {stop_bits}, parity {parity}, flow control {flow_control}: {outcome}"
        ));
    }

    /// A new connection for `link`; `kind` is empty (TCP), ` tls` or ` udp`.
    pub(crate) fn connect(&self, link: Link, host: &str, port: u16, kind: &str) {
        let link = Name(link);
        self.line(format_args!("{link} connect {host}:{port}{kind}"));
    }

    /// Something happened to `link`'s connection.
    pub(crate) fn link_note(&self, link: Link, what: &str) {
        let link = Name(link);
        self.line(format_args!("{link} {what}"));
    }

    /// Something about the modem's network that is no link's (its server).
    pub(crate) fn note(&self, what: &str) {
        self.line(format_args!("{what}"));
    }

    /// The first line of a handshake request or response, as the core logged it.
    pub(crate) fn http(&self, link: Link, dir: Direction, first_line: &[u8]) {
        let (link, dir) = (Name(link), direction(dir));
        self.line(format_args!("{link} {dir} http {}", Escaped(first_line)));
    }

    /// A frame the core sent or received.
    pub(crate) fn frame(&self, link: Link, dir: Direction, header: &Header, preview: &[u8]) {
        let (link, dir) = (Name(link), direction(dir));
        self.line(format_args!("{link} {dir} {}", frame_line(header, preview)));
    }

    fn line(&self, what: std::fmt::Arguments<'_>) {
        let mut line = String::new();
        let _ = writeln!(line, "{} m{} {what}", Clock, self.id);
        self.tracer.write_line(&line);
    }
}

impl Drop for ModemTrace {
    fn drop(&mut self) {
        self.line(format_args!("end"));
    }
}

/// A link as the trace names it: `link0` (WebSocket), `socket0`.
struct Name(Link);

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Link::Ws(id) => write!(f, "link{id}"),
            Link::Socket(id) => write!(f, "socket{id}"),
        }
    }
}

fn direction(dir: Direction) -> &'static str {
    match dir {
        Direction::Tx => "tx",
        Direction::Rx => "rx",
    }
}

/// `frame TEXT fin=1 len=4 masked "test"`: `...` when the payload is longer
/// than the preview.
fn frame_line(header: &Header, preview: &[u8]) -> String {
    let masked = if header.mask.is_some() { " masked" } else { "" };
    let more = if header.payload_len > LOG_PREVIEW as u64 {
        "..."
    } else {
        ""
    };
    format!(
        "frame {} fin={} len={}{masked} {}{more}",
        header.opcode,
        u8::from(header.fin),
        header.payload_len,
        Escaped(preview)
    )
}

/// The RFC 3339 form of a trace line's time: UTC, microseconds.
const STAMP: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The time now, as [`STAMP`] says (`2026-12-01T12:00:01.123456Z`).
struct Clock;

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = OffsetDateTime::now_utc().format(STAMP);
        f.write_str(&now.map_err(|_| std::fmt::Error)?)
    }
}

/// Bytes as a quoted, escaped string: [`u8::escape_ascii`], except that `'`
/// stays as it is (`escape_ascii` writes `\'`, which a string quoted with
/// `"` does not need, and the trace never had).
pub(crate) struct Escaped<'a>(pub &'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_char('"')?;
        for (i, part) in self.0.split(|&b| b == b'\'').enumerate() {
            if i > 0 {
                f.write_char('\'')?;
            }
            write!(f, "{}", part.escape_ascii())?;
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsat_proto::ws::Opcode;

    #[test]
    fn escapes() {
        assert_eq!(
            Escaped(b"AT\r\n\"\\\x00\xff ok").to_string(),
            r#""AT\r\n\"\\\x00\xff ok""#
        );
        assert_eq!(
            Escaped(b"'it's'\t\x7f\x1b").to_string(),
            r#""'it's'\t\x7f\x1b""#
        );
    }

    #[test]
    fn clock_is_rfc_3339_utc_to_the_microsecond() {
        let stamp = Clock.to_string();
        let b = stamp.as_bytes();
        assert_eq!(stamp.len(), 27, "{stamp}");
        for (i, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
            assert_eq!(b[i], c, "{stamp}");
        }
        assert_eq!((b[19], b[26]), (b'.', b'Z'), "{stamp}");
        assert!(stamp[20..26].bytes().all(|c| c.is_ascii_digit()), "{stamp}");
    }

    #[test]
    fn frame_lines() {
        let header = Header::new(true, Opcode::Text, 4, Some([1, 2, 3, 4]));
        assert_eq!(
            frame_line(&header, b"test"),
            "frame TEXT fin=1 len=4 masked \"test\""
        );
        let header = Header::new(false, Opcode::Binary, 256, None);
        assert_eq!(
            frame_line(&header, &[7; 16]),
            format!("frame BINARY fin=0 len=256 \"{}\"...", "\\x07".repeat(16))
        );
    }
}
