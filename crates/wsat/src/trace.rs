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
//! payload, unmasked.
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use wsat_proto::{LinkId, UartConfig, LINK_COUNT};

/// Payload bytes shown per frame.
const PREVIEW: usize = 16;
/// An HTTP head longer than this is not waited for (it is shown cut).
const MAX_HTTP_HEAD: usize = 8 * 1024;

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
            links: Default::default(),
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
    /// Per link: what was sent, what was received.
    links: [(Scanner, Scanner); LINK_COUNT],
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

    /// A new connection for `link`: its byte streams start over.
    pub fn connect(&mut self, link: LinkId, host: &str, port: u16, tls: bool) {
        if let Some(scanners) = self.links.get_mut(usize::from(link)) {
            *scanners = Default::default();
        }
        let tls = if tls { " tls" } else { "" };
        self.line(format_args!("link{link} connect {host}:{port}{tls}"));
    }

    /// Something happened to `link`'s connection.
    pub fn link_note(&self, link: LinkId, what: &str) {
        self.line(format_args!("link{link} {what}"));
    }

    /// Bytes the modem sends on `link`.
    pub fn link_tx(&mut self, link: LinkId, bytes: &[u8]) {
        self.scan(link, true, bytes);
    }

    /// Bytes received on `link`.
    pub fn link_rx(&mut self, link: LinkId, bytes: &[u8]) {
        self.scan(link, false, bytes);
    }

    fn scan(&mut self, link: LinkId, tx: bool, bytes: &[u8]) {
        let Some((sent, received)) = self.links.get_mut(usize::from(link)) else {
            return;
        };
        let scanner = if tx { sent } else { received };
        let mut found = Vec::new();
        scanner.feed(bytes, &mut found);
        let dir = if tx { "tx" } else { "rx" };
        for event in found {
            self.line(format_args!("link{link} {dir} {event}"));
        }
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

/// Follows one direction of a link's byte stream: the HTTP head of the
/// handshake, then frame headers, skipping payloads.
#[derive(Default)]
struct Scanner {
    /// Past the HTTP head.
    framing: bool,
    /// The HTTP head so far, or the frame header so far.
    head: Vec<u8>,
    /// The frame whose payload is passing.
    frame: Option<Frame>,
    /// The stream could not be followed; it is no longer shown.
    lost: bool,
}

struct Frame {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    left: u64,
    preview: Vec<u8>,
    shown: bool,
}

impl Scanner {
    fn feed(&mut self, mut bytes: &[u8], found: &mut Vec<String>) {
        if self.lost {
            return;
        }
        if !self.framing {
            bytes = self.http_head(bytes, found);
        }
        while !bytes.is_empty() {
            if let Some(frame) = &mut self.frame {
                let take = bytes
                    .len()
                    .min(usize::try_from(frame.left).unwrap_or(usize::MAX));
                for &b in &bytes[..take] {
                    if frame.preview.len() >= PREVIEW {
                        break;
                    }
                    let i = frame.preview.len();
                    let key = frame.mask.map_or(0, |mask| mask[i % 4]);
                    frame.preview.push(b ^ key);
                }
                frame.left -= take as u64;
                bytes = &bytes[take..];
                self.show_frame(found);
                if self.frame.as_ref().is_some_and(|f| f.left == 0) {
                    self.frame = None;
                }
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            self.frame_header(found);
        }
    }

    /// Takes the HTTP head; returns what follows it.
    fn http_head<'a>(&mut self, bytes: &'a [u8], found: &mut Vec<String>) -> &'a [u8] {
        let before = self.head.len();
        self.head.extend_from_slice(bytes);
        let end = self.head.windows(4).position(|w| w == b"\r\n\r\n");
        let cut = self.head.len() > MAX_HTTP_HEAD;
        if end.is_none() && !cut {
            return &[];
        }
        let first_line = self.head.split(|&b| b == b'\r').next().unwrap_or(&[]);
        let mut event = format!("http {}", Escaped(first_line));
        if cut && end.is_none() {
            event.push_str(" (head too long, not followed)");
            found.push(event);
            self.head = Vec::new();
            // Give up on this stream rather than misreading it as frames.
            self.lost = true;
            return &[];
        }
        found.push(event);
        let used = end.unwrap_or(0) + 4 - before;
        self.head.clear();
        self.framing = true;
        &bytes[used.min(bytes.len())..]
    }

    fn frame_header(&mut self, found: &mut Vec<String>) {
        let h = &self.head;
        if h.len() < 2 {
            return;
        }
        let masked = h[1] & 0x80 != 0;
        let ext = match h[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < need {
            return;
        }
        let len = match ext {
            0 => u64::from(h[1] & 0x7f),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => h[2..10].iter().fold(0, |n, &b| (n << 8) | u64::from(b)),
        };
        let mask = masked.then(|| [h[2 + ext], h[3 + ext], h[4 + ext], h[5 + ext]]);
        self.frame = Some(Frame {
            fin: h[0] & 0x80 != 0,
            opcode: h[0] & 0x0f,
            len,
            mask,
            left: len,
            preview: Vec::new(),
            shown: false,
        });
        self.head.clear();
        self.show_frame(found);
        if len == 0 {
            self.frame = None;
        }
    }

    /// Shows the frame once its preview is complete.
    fn show_frame(&mut self, found: &mut Vec<String>) {
        let Some(frame) = &mut self.frame else {
            return;
        };
        let complete = frame.preview.len() as u64 >= frame.len.min(PREVIEW as u64);
        if frame.shown || !complete {
            return;
        }
        frame.shown = true;
        let name = match frame.opcode {
            0 => "CONT".to_string(),
            1 => "TEXT".to_string(),
            2 => "BINARY".to_string(),
            8 => "CLOSE".to_string(),
            9 => "PING".to_string(),
            10 => "PONG".to_string(),
            op => format!("op{op}"),
        };
        let masked = if frame.mask.is_some() { " masked" } else { "" };
        let more = if frame.len > PREVIEW as u64 {
            "..."
        } else {
            ""
        };
        found.push(format!(
            "frame {name} fin={} len={}{masked} {}{more}",
            u8::from(frame.fin),
            frame.len,
            Escaped(&frame.preview)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(scanner: &mut Scanner, bytes: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        scanner.feed(bytes, &mut found);
        found
    }

    #[test]
    fn escapes() {
        assert_eq!(
            Escaped(b"AT\r\n\"\\\x00\xff ok").to_string(),
            r#""AT\r\n\"\\\x00\xff ok""#
        );
    }

    #[test]
    fn handshake_then_frames_byte_by_byte_and_at_once() {
        let mut stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        stream.extend_from_slice(&[0x81, 4]);
        stream.extend_from_slice(b"test");
        stream.extend_from_slice(&[0x02, 126, 0x01, 0x00]);
        stream.extend_from_slice(&[7u8; 256]);
        stream.extend_from_slice(&[0x89, 0]);
        let expected = vec![
            "http \"HTTP/1.1 101 Switching Protocols\"".to_string(),
            "frame TEXT fin=1 len=4 \"test\"".to_string(),
            format!("frame BINARY fin=0 len=256 \"{}\"...", "\\x07".repeat(16)),
            "frame PING fin=1 len=0 \"\"".to_string(),
        ];
        let mut scanner = Scanner::default();
        assert_eq!(scan(&mut scanner, &stream), expected);
        let mut scanner = Scanner::default();
        let found: Vec<String> = stream
            .iter()
            .flat_map(|&b| scan(&mut scanner, &[b]))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn masked_frames_are_shown_unmasked() {
        let mut scanner = Scanner::default();
        scan(&mut scanner, b"GET / HTTP/1.1\r\n\r\n");
        let key = [1, 2, 3, 4];
        let mut frame = vec![0x88, 0x82];
        frame.extend_from_slice(&key);
        frame.extend([0x03 ^ 1, 0xe8 ^ 2]);
        assert_eq!(
            scan(&mut scanner, &frame),
            ["frame CLOSE fin=1 len=2 masked \"\\x03\\xe8\""]
        );
    }
}
