//! `--trace FILE`: a log a person can read of every byte on the AT port and
//! every WebSocket frame on each link, for debugging host drivers.
//!
//! One line per event:
//!
//! ```text
//! 12:00:01.123456 m1 at-rx "AT+WSSEND=0,4\r\n"        bytes from the host
//! 12:00:01.123502 m1 at-tx "\r\nOK\r\n\r\n>"           bytes to the host
//! 12:00:01.124010 m1 link0 connect 127.0.0.1:8765
//! 12:00:01.124300 m1 link0 tx http "GET / HTTP/1.1"
//! 12:00:01.125001 m1 link0 rx http "HTTP/1.1 101 Switching Protocols"
//! 12:00:01.125900 m1 link0 tx frame TEXT fin=1 len=4 masked "test"
//! ```
//!
//! Times are UTC; `m<n>` numbers the modems of this process (one per `--tcp`
//! connection). Printable ASCII is shown as is, `\r \n \t \\ \"` escaped and
//! every other byte as `\xNN`. Frame lines show the first bytes of the
//! payload, unmasked. The frames and HTTP heads are what the core logged
//! ([`wsat_proto::Log`]): nothing here parses the wire.
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use wsat_proto::ws::Header;
use wsat_proto::{Direction, LinkId, UartConfig, LOG_PREVIEW};

/// The trace file, shared by every modem of the process.
pub struct Tracer {
    file: Mutex<BufWriter<File>>,
    next_modem: AtomicU64,
}

impl Tracer {
    pub fn create(path: &Path) -> io::Result<Arc<Tracer>> {
        let file = File::create(path)?;
        Ok(Arc::new(Tracer {
            file: Mutex::new(BufWriter::new(file)),
            next_modem: AtomicU64::new(1),
        }))
    }

    /// The trace of a new modem on `port` (e.g. `tcp 127.0.0.1:40000`).
    pub fn modem(self: &Arc<Self>, port: &str) -> ModemTrace {
        let id = self.next_modem.fetch_add(1, Ordering::Relaxed);
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
pub struct ModemTrace {
    tracer: Arc<Tracer>,
    id: u64,
}

impl ModemTrace {
    /// Bytes from the host.
    pub fn at_rx(&self, bytes: &[u8]) {
        self.line(format_args!("at-rx {}", Escaped(bytes)));
    }

    /// Bytes written to the host.
    pub fn at_tx(&self, bytes: &[u8]) {
        self.line(format_args!("at-tx {}", Escaped(bytes)));
    }

    /// A line settings change and what became of it.
    pub fn uart(&self, config: UartConfig, outcome: &str) {
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

    /// A new connection for `link`.
    pub fn connect(&self, link: LinkId, host: &str, port: u16, tls: bool) {
        let tls = if tls { " tls" } else { "" };
        self.line(format_args!("link{link} connect {host}:{port}{tls}"));
    }

    /// Something happened to `link`'s connection.
    pub fn link_note(&self, link: LinkId, what: &str) {
        self.line(format_args!("link{link} {what}"));
    }

    /// The first line of a handshake request or response, as the core logged it.
    pub fn http(&self, link: LinkId, dir: Direction, first_line: &[u8]) {
        let dir = direction(dir);
        self.line(format_args!(
            "link{link} {dir} http {}",
            Escaped(first_line)
        ));
    }

    /// A frame the core sent or received.
    pub fn frame(&self, link: LinkId, dir: Direction, header: &Header, preview: &[u8]) {
        let dir = direction(dir);
        self.line(format_args!(
            "link{link} {dir} {}",
            frame_line(header, preview)
        ));
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

/// UTC time of day with microseconds.
struct Clock;

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() % 86_400;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:06}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            now.subsec_micros()
        )
    }
}

/// Bytes as a quoted, escaped string.
pub struct Escaped<'a>(pub &'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_char('"')?;
        for &b in self.0 {
            match b {
                b'\r' => f.write_str("\\r")?,
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' => f.write_str("\\\\")?,
                b'"' => f.write_str("\\\"")?,
                0x20..=0x7e => f.write_char(char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
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
