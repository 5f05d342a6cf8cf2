//! The AT port: the line reader, parameters, result codes and ESP-AT's
//! error codes. What the port does with a line (commands, the `>` data
//! mode, `busy p...`) is the modem's.

pub mod line;
pub mod params;

pub use params::{parse_params, Args, Param};

/// Longest command line ESP-AT takes, `AT` included, terminator excluded.
pub const MAX_LINE: usize = 256;

pub const OK: &[u8] = b"\r\nOK\r\n";
pub const ERROR: &[u8] = b"\r\nERROR\r\n";
pub const SEND_OK: &[u8] = b"\r\nSEND OK\r\n";
pub const PROMPT: &[u8] = b"\r\nOK\r\n\r\n>";
pub const BUSY: &[u8] = b"\r\nbusy p...\r\n";
pub const READY: &[u8] = b"\r\nready\r\n";

/// The categories of ESP-AT's `ERR CODE:0x01CCDDDD` (bits 23..16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    Common = 0x01,
    NoTerminator = 0x02,
    NoAt = 0x03,
    ParamLength = 0x04,
    ParamType = 0x05,
    ParamCount = 0x06,
    ParamInvalid = 0x07,
    ParamParse = 0x08,
    Unsupported = 0x09,
    ExecFailed = 0x0A,
    Busy = 0x0B,
    OpError = 0x0C,
}

/// Why a command answered `ERROR`: what `AT+SYSLOG=1` prints before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtError {
    pub kind: ErrorKind,
    /// For parameter errors, the 1-based index of the bad parameter.
    pub detail: u16,
}

impl AtError {
    pub const fn new(kind: ErrorKind, detail: u16) -> Self {
        AtError { kind, detail }
    }

    /// A plain failure of the command's action.
    pub const fn exec() -> Self {
        AtError::new(ErrorKind::ExecFailed, 0)
    }

    /// The 32-bit code of `ERR CODE:0x%08x`.
    pub fn code(self) -> u32 {
        0x0100_0000 | (self.kind as u32) << 16 | self.detail as u32
    }
}

/// Appends `ERR CODE:0x%08x\r\n` (when `syslog` is on) and `\r\nERROR\r\n`.
pub fn write_error(out: &mut alloc::vec::Vec<u8>, err: AtError, syslog: bool) {
    if syslog {
        out.extend_from_slice(alloc::format!("ERR CODE:0x{:08x}\r\n", err.code()).as_bytes());
    }
    out.extend_from_slice(ERROR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_layout() {
        assert_eq!(AtError::new(ErrorKind::ParamInvalid, 2).code(), 0x0107_0002);
        let mut out = alloc::vec::Vec::new();
        write_error(&mut out, AtError::new(ErrorKind::Unsupported, 0), true);
        assert_eq!(out, b"ERR CODE:0x01090000\r\n\r\nERROR\r\n");
        out.clear();
        write_error(&mut out, AtError::exec(), false);
        assert_eq!(out, b"\r\nERROR\r\n");
    }
}
