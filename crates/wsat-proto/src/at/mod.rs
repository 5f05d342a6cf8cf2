//! The AT port: the line reader, parameters, result codes and ESP-AT's
//! error codes. What the port does with a line (commands, the `>` data
//! mode, `busy p...`) is the modem's.

pub mod line;
pub mod params;

pub use params::{parse_params, Args, Param};

/// Longest command line ESP-AT takes, `AT` included, terminator excluded.
pub const MAX_LINE: usize = 256;

/// The final result code of success.
pub const OK: &[u8] = b"\r\nOK\r\n";
/// The final result code of failure.
pub const ERROR: &[u8] = b"\r\nERROR\r\n";
/// A send's data was written.
pub const SEND_OK: &[u8] = b"\r\nSEND OK\r\n";
/// The data prompt: raw bytes follow.
pub const PROMPT: &[u8] = b"\r\nOK\r\n\r\n>";
/// Input while a command still runs (it is discarded).
pub const BUSY: &[u8] = b"\r\nbusy p...\r\n";
/// Start-up and the end of a reset.
pub const READY: &[u8] = b"\r\nready\r\n";

/// The categories of ESP-AT's `ERR CODE:0x01CCDDDD` (bits 23..16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    /// A common error.
    Common = 0x01,
    /// No terminator.
    NoTerminator = 0x02,
    /// The line does not start with `AT`.
    NoAt = 0x03,
    /// A parameter (or the line) is too long.
    ParamLength = 0x04,
    /// A parameter has the wrong type.
    ParamType = 0x05,
    /// Too many or too few parameters.
    ParamCount = 0x06,
    /// A parameter is out of range or invalid.
    ParamInvalid = 0x07,
    /// A parameter cannot be parsed.
    ParamParse = 0x08,
    /// No such command.
    Unsupported = 0x09,
    /// The command's action failed.
    ExecFailed = 0x0A,
    /// Busy with another command.
    Busy = 0x0B,
    /// The command has no such form.
    OpError = 0x0C,
}

/// Why a command answered `ERROR`: what `AT+SYSLOG=1` prints before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtError {
    /// The category.
    pub kind: ErrorKind,
    /// For parameter errors, the 1-based index of the bad parameter.
    pub detail: u16,
}

impl AtError {
    /// An error of `kind`; `detail` is a parameter's 1-based index or 0.
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
