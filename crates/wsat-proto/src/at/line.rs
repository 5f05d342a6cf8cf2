//! The command-line reader: echo, terminators and the 256-byte limit.
//!
//! Hand-written because it is ESP-AT's line discipline, which no crate has:
//! CR LF, a lone CR and a lone LF all end a line, each once; every byte is
//! echoed as it arrives (when echo is on); a line that grows past
//! [`MAX_LINE`] is read to its end and then refused.
use alloc::vec::Vec;

use super::MAX_LINE;

/// A finished command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The bytes before the terminator (possibly empty).
    Text(Vec<u8>),
    /// The line went past [`MAX_LINE`]; its bytes are gone.
    TooLong,
}

/// What [`LineReader::read`] did with its input.
#[derive(Debug, PartialEq, Eq)]
pub struct Read {
    /// Bytes of the input taken (echoed, collected or skipped).
    pub used: usize,
    /// A line that ended within them.
    pub line: Option<Line>,
}

/// Reads command lines from the AT port, a slice at a time.
#[derive(Debug, Default)]
pub struct LineReader {
    line: Vec<u8>,
    overflow: bool,
    /// A CR ended the line and the input ran out after it; with echo on the
    /// line waits for the LF that usually follows, so that the LF's echo
    /// comes before the answer (`AT\r\n\r\nOK\r\n`), as on a module.
    cr_pending: bool,
    /// The last line ended with a lone CR: an LF right after it is the rest
    /// of that terminator, not an empty line (or prompt data).
    after_cr: bool,
}

impl LineReader {
    /// Reads `input` up to and including the end of one line. Echoed bytes go
    /// to `echo` when given. A CR that is the last byte of `input` ends the
    /// line at once without echo; with echo the line waits (is
    /// [`LineReader::pending`]) until the next byte or [`LineReader::flush`].
    pub fn read(&mut self, input: &[u8], mut echo: Option<&mut Vec<u8>>) -> Read {
        let mut used = 0;
        if self.cr_pending {
            self.cr_pending = false;
            if input.first() == Some(&b'\n') {
                used = 1;
                if let Some(echo) = echo {
                    echo.push(b'\n');
                }
            } else {
                self.after_cr = true;
            }
            return Read {
                used,
                line: Some(self.finish()),
            };
        }
        for &b in input {
            used += 1;
            if core::mem::take(&mut self.after_cr) && b == b'\n' {
                // The LF of a CR LF whose CR already ended the line.
                continue;
            }
            if let Some(echo) = echo.as_deref_mut() {
                echo.push(b);
            }
            match b {
                b'\n' => {}
                b'\r' => match input.get(used) {
                    Some(b'\n') => {
                        used += 1;
                        if let Some(echo) = echo {
                            echo.push(b'\n');
                        }
                    }
                    Some(_) => self.after_cr = true,
                    None if echo.is_some() => {
                        self.cr_pending = true;
                        return Read { used, line: None };
                    }
                    None => self.after_cr = true,
                },
                _ if self.line.len() < MAX_LINE => {
                    self.line.push(b);
                    continue;
                }
                _ => {
                    self.overflow = true;
                    continue;
                }
            }
            return Read {
                used,
                line: Some(self.finish()),
            };
        }
        Read { used, line: None }
    }

    /// Whether a line ended by a lone CR waits for a possible LF.
    pub fn pending(&self) -> bool {
        self.cr_pending
    }

    /// Ends a line that waits for the LF of its CR: none came in time.
    pub fn flush(&mut self) -> Option<Line> {
        if !core::mem::take(&mut self.cr_pending) {
            return None;
        }
        self.after_cr = true;
        Some(self.finish())
    }

    /// Whether bytes of an unfinished line have been read (and, with echo
    /// on, shown): a report now would land inside it.
    pub fn in_line(&self) -> bool {
        !self.line.is_empty() || self.overflow || self.cr_pending
    }

    /// Takes the "LF may follow" mark: a prompt's data must not start with
    /// the LF of the command's CR LF.
    pub fn take_after_cr(&mut self) -> bool {
        core::mem::take(&mut self.after_cr)
    }

    /// Forgets the line being typed (`AT+RST`).
    pub fn clear(&mut self) {
        *self = LineReader::default();
    }

    fn finish(&mut self) -> Line {
        let line = core::mem::take(&mut self.line);
        if core::mem::take(&mut self.overflow) {
            Line::TooLong
        } else {
            Line::Text(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Every line of `input` fed in one piece, and what was echoed.
    fn lines(reader: &mut LineReader, mut input: &[u8], echo_on: bool) -> (Vec<Line>, Vec<u8>) {
        let mut echo = Vec::new();
        let mut out = Vec::new();
        while !input.is_empty() {
            let read = reader.read(input, echo_on.then_some(&mut echo));
            input = &input[read.used..];
            out.extend(read.line);
            if read.used == 0 && !reader.pending() {
                break;
            }
        }
        (out, echo)
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn every_terminator_ends_a_line_once() {
        let mut r = LineReader::default();
        let (got, _) = lines(&mut r, b"A\r\nB\rC\nD\r\n\r\n", false);
        assert_eq!(
            got,
            vec![text("A"), text("B"), text("C"), text("D"), text("")]
        );
    }

    #[test]
    fn a_late_lf_belongs_to_the_cr_before_it() {
        let mut r = LineReader::default();
        let read = r.read(b"AT\r", None);
        assert_eq!(
            read,
            Read {
                used: 3,
                line: Some(text("AT"))
            }
        );
        assert_eq!(r.read(b"\nX\n", None).line, Some(text("X")));
    }

    #[test]
    fn with_echo_a_lone_cr_waits_for_its_lf() {
        let mut r = LineReader::default();
        let mut echo = Vec::new();
        assert_eq!(
            r.read(b"AT\r", Some(&mut echo)),
            Read {
                used: 3,
                line: None
            }
        );
        assert!(r.pending() && r.in_line());
        assert_eq!(
            r.read(b"\n", Some(&mut echo)),
            Read {
                used: 1,
                line: Some(text("AT"))
            }
        );
        assert_eq!(echo, b"AT\r\n");
        // Something else after the CR: the line ends, the byte is not taken.
        echo.clear();
        r.read(b"B\r", Some(&mut echo));
        assert_eq!(
            r.read(b"C", Some(&mut echo)),
            Read {
                used: 0,
                line: Some(text("B"))
            }
        );
        assert_eq!(r.read(b"C\n", Some(&mut echo)).line, Some(text("C")));
        assert_eq!(echo, b"B\rC\n");
        // Nothing after it in time.
        r.read(b"D\r", Some(&mut echo));
        assert_eq!(r.flush(), Some(text("D")));
        assert_eq!(r.flush(), None);
        // Its LF, should it come after all, is skipped.
        assert_eq!(r.read(b"\nE\n", Some(&mut echo)).line, Some(text("E")));
    }

    #[test]
    fn long_lines_are_read_to_their_end_and_refused() {
        let mut r = LineReader::default();
        let mut input = vec![b'A'; MAX_LINE];
        input.extend_from_slice(b"\r\n");
        assert!(
            matches!(lines(&mut r, &input, false).0[..], [Line::Text(ref l)] if l.len() == MAX_LINE)
        );
        let mut input = vec![b'A'; 3 * MAX_LINE];
        input.extend_from_slice(b"\r\nAT\r\n");
        let (got, echo) = lines(&mut r, &input, true);
        assert_eq!(got, vec![Line::TooLong, text("AT")]);
        assert_eq!(echo, input, "every byte is echoed");
    }

    #[test]
    fn the_lf_mark_is_for_a_prompt_to_take() {
        let mut r = LineReader::default();
        r.read(b"AT+WSSEND=0,1\r", None);
        assert!(r.take_after_cr());
        assert!(!r.take_after_cr());
    }
}
