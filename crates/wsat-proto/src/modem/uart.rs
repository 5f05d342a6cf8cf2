//! `AT+UART_CUR` / `AT+UART_DEF`: the AT port's line settings.
//!
//! The modem only keeps and reports them; the runtime applies them (a serial
//! device's settings, or the pacing of another transport). As on ESP-AT, the
//! `OK` goes out at the old settings and everything after it at the new ones:
//! output after a change is withheld until the bytes before it are written
//! and the runtime has taken the change with [`Modem::poll_uart_change`].
use alloc::collections::VecDeque;
use alloc::format;

use super::commands::{Form, Reply};
use super::Modem;
use crate::at::{Args, AtError, ErrorKind};

/// One UART setting as `AT+UART_CUR` takes it (ESP-AT's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UartConfig {
    /// Bits per second, [80, 5000000].
    pub baudrate: u32,
    /// 5..=8.
    pub data_bits: u8,
    /// 1: one stop bit, 2: one and a half, 3: two.
    pub stop_bits: u8,
    /// 0 none, 1 odd, 2 even.
    pub parity: u8,
    /// 0 none, 1 RTS, 2 CTS, 3 RTS and CTS.
    pub flow_control: u8,
}

impl UartConfig {
    /// 115200 8N1 without flow control. (ESP32 boards wired for RTS/CTS
    /// report flow control 3; wsat's ports have no such lines by default.)
    pub const DEFAULT: UartConfig = UartConfig {
        baudrate: 115_200,
        data_bits: 8,
        stop_bits: 1,
        parity: 0,
        flow_control: 0,
    };

    /// The same settings at another rate.
    pub const fn with_baudrate(self, baudrate: u32) -> UartConfig {
        UartConfig { baudrate, ..self }
    }

    /// How long one byte takes on the wire, in nanoseconds: start bit, data
    /// bits, parity bit, stop bits (8N1: 10 bits).
    pub fn byte_time_ns(&self) -> u64 {
        let half_stop_bits = match self.stop_bits {
            2 => 3,
            3 => 4,
            _ => 2,
        };
        let half_bits =
            2 * (1 + u64::from(self.data_bits) + u64::from(self.parity != 0)) + half_stop_bits;
        half_bits * 1_000_000_000 / (2 * u64::from(self.baudrate.max(1)))
    }

    fn parse(p: &[u8]) -> Result<UartConfig, AtError> {
        let args = Args::parse(p, 5)?;
        // ESP-AT takes all five fields.
        if args.len() < 5 {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        Ok(UartConfig {
            baudrate: args.int(0, 80..=5_000_000)? as u32,
            data_bits: args.int(1, 5..=8)? as u8,
            stop_bits: args.int(2, 1..=3)? as u8,
            parity: args.int(3, 0..=2)? as u8,
            flow_control: args.int(4, 0..=3)? as u8,
        })
    }

    fn text(&self) -> alloc::string::String {
        format!(
            "{},{},{},{},{}",
            self.baudrate, self.data_bits, self.stop_bits, self.parity, self.flow_control
        )
    }
}

impl Default for UartConfig {
    fn default() -> Self {
        UartConfig::DEFAULT
    }
}

/// The current and saved settings, and changes the runtime has not taken.
pub(super) struct UartState {
    pub(super) current: UartConfig,
    /// What `AT+UART_DEF` saved; `AT+RST` goes back to it. Kept for the
    /// modem's lifetime (there is no flash).
    default: UartConfig,
    /// `(offset in Modem::out, config)`: output from the offset on goes out
    /// at the new settings.
    switches: VecDeque<(usize, UartConfig)>,
}

impl UartState {
    pub(super) fn new(start: UartConfig) -> Self {
        UartState {
            current: start,
            default: start,
            switches: VecDeque::new(),
        }
    }

    /// Where the output the runtime may write now ends: at the next change.
    pub(super) fn limit(&self, out_len: usize) -> usize {
        self.switches.front().map_or(out_len, |&(at, _)| at)
    }

    /// The first `n` bytes of the output buffer were dropped.
    pub(super) fn shift(&mut self, n: usize) {
        for (at, _) in &mut self.switches {
            *at -= n;
        }
    }

    /// The next change, once the output before it has all been written.
    fn take_change(&mut self, written: usize) -> Option<UartConfig> {
        match self.switches.front() {
            Some(&(at, config)) if at <= written => {
                self.switches.pop_front();
                Some(config)
            }
            _ => None,
        }
    }
}

impl Modem {
    /// A change of the AT port's line settings (`AT+UART_CUR`,
    /// `AT+UART_DEF`, or `AT+RST` going back to the saved ones).
    ///
    /// `Some` once every byte before the change has been reported written
    /// ([`Modem::advance_host_output`]): apply it, then write on. Output
    /// after a change stays out of [`Modem::host_output`] until this has
    /// returned it, so a runtime that never calls it sees no output past the
    /// first change.
    ///
    /// May change after [`Modem::advance_host_output`] and
    /// [`Modem::host_input`].
    pub fn poll_uart_change(&mut self) -> Option<UartConfig> {
        self.uart.take_change(self.written)
    }

    /// The settings the AT port runs at now, as far as the modem knows.
    pub fn uart_config(&self) -> UartConfig {
        self.uart.current
    }

    pub(super) fn cmd_uart(&mut self, form: Form<'_>, save: bool) -> Result<Reply, AtError> {
        let name = if save { "UART_DEF" } else { "UART_CUR" };
        let Form::Set(p) = form else {
            let shown = if save {
                self.uart.default
            } else {
                self.uart.current
            };
            let line = format!("+{name}:{}\r\n", shown.text());
            self.out.extend_from_slice(line.as_bytes());
            return Ok(Reply::Ok);
        };
        let config = UartConfig::parse(p)?;
        if save {
            self.uart.default = config;
        }
        // OK at the old settings, then the switch.
        self.ok();
        self.switch_uart(config);
        Ok(Reply::Done)
    }

    /// `AT+RESTORE`: the saved settings are the start settings again (the
    /// next [`Modem::uart_reset`] applies them).
    pub(super) fn uart_restore(&mut self) {
        self.uart.default = self.options.uart;
    }

    /// `AT+RST`: the saved settings apply again.
    pub(super) fn uart_reset(&mut self) {
        self.switch_uart(self.uart.default);
    }

    fn switch_uart(&mut self, config: UartConfig) {
        if config != self.uart.current {
            self.uart.current = config;
            self.uart.switches.push_back((self.out.len(), config));
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use super::*;
    use crate::{ModemOptions, Platform};

    struct NoPlatform;
    impl Platform for NoPlatform {
        fn fill_random(&mut self, buf: &mut [u8]) {
            buf.fill(7);
        }
        fn unix_time(&self) -> Option<i64> {
            None
        }
    }

    fn modem() -> Modem {
        let mut m = Modem::new(ModemOptions::default(), Box::new(NoPlatform), 0);
        let mut boot = crate::testing::BOOT.to_vec();
        boot.extend_from_slice(b"ATE0\r\n\r\nOK\r\n");
        assert_eq!(at(&mut m, "ATE0"), boot);
        m
    }

    fn at(m: &mut Modem, line: &str) -> Vec<u8> {
        let line = format!("{line}\r\n");
        m.host_input(line.as_bytes(), 0);
        output(m)
    }

    fn output(m: &mut Modem) -> Vec<u8> {
        let out = m.host_output().to_vec();
        m.advance_host_output(out.len(), 0);
        out
    }

    /// The output once the restart delay (500 ms by default) is over.
    /// `ready` after the restart delay, then the boot join after the join
    /// delay.
    fn restarted(m: &mut Modem) -> Vec<u8> {
        m.handle_timeout(500);
        m.handle_timeout(1000);
        output(m)
    }

    const fn cfg(baudrate: u32, data_bits: u8, stop_bits: u8, parity: u8, flow: u8) -> UartConfig {
        UartConfig {
            baudrate,
            data_bits,
            stop_bits,
            parity,
            flow_control: flow,
        }
    }

    #[test]
    fn queries_show_the_start_settings() {
        let mut m = modem();
        assert_eq!(
            at(&mut m, "AT+UART_CUR?"),
            b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n"
        );
        assert_eq!(
            at(&mut m, "AT+UART_DEF?"),
            b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n"
        );
        assert_eq!(m.poll_uart_change(), None);

        let options = ModemOptions {
            uart: UartConfig::DEFAULT.with_baudrate(9600),
            ..ModemOptions::default()
        };
        let mut m = Modem::new(options, Box::new(NoPlatform), 0);
        output(&mut m);
        assert_eq!(
            at(&mut m, "AT+UART_CUR?"),
            b"AT+UART_CUR?\r\n+UART_CUR:9600,8,1,0,0\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn ok_goes_out_at_the_old_rate_and_the_rest_after_the_change() {
        let mut m = modem();
        // The next command arrives in the same read as the change.
        let input = b"AT+UART_CUR=921600,8,1,0,0\r\nAT\r\n";
        m.host_input(input, 0);
        assert_eq!(output(&mut m), b"\r\nOK\r\n");
        // Until the runtime takes the change, nothing more comes out.
        assert_eq!(output(&mut m), b"");
        assert_eq!(m.poll_uart_change(), Some(cfg(921_600, 8, 1, 0, 0)));
        assert_eq!(m.poll_uart_change(), None);
        assert_eq!(output(&mut m), b"\r\nOK\r\n");
        assert_eq!(
            at(&mut m, "AT+UART_CUR?"),
            b"+UART_CUR:921600,8,1,0,0\r\n\r\nOK\r\n"
        );
        // The saved settings are untouched.
        assert_eq!(
            at(&mut m, "AT+UART_DEF?"),
            b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn setting_the_same_values_changes_nothing() {
        let mut m = modem();
        assert_eq!(at(&mut m, "AT+UART_CUR=115200,8,1,0,0"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), None);
    }

    #[test]
    fn two_changes_in_one_read_come_in_order() {
        let mut m = modem();
        let input = b"AT+UART_CUR=9600,8,1,0,0\r\nAT+UART_CUR=19200,7,3,2,3\r\n";
        m.host_input(input, 0);
        assert_eq!(output(&mut m), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(9600, 8, 1, 0, 0)));
        assert_eq!(output(&mut m), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(19200, 7, 3, 2, 3)));
        assert_eq!(output(&mut m), b"");
        assert_eq!(m.uart_config(), cfg(19200, 7, 3, 2, 3));
    }

    #[test]
    fn def_applies_now_and_survives_reset() {
        let mut m = modem();
        assert_eq!(at(&mut m, "AT+UART_DEF=230400,8,1,0,0"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(230_400, 8, 1, 0, 0)));
        assert_eq!(at(&mut m, "AT+UART_CUR=9600,8,1,0,0"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(9600, 8, 1, 0, 0)));
        // AT+RST: OK at 9600, `ready` at the saved 230400.
        assert_eq!(at(&mut m, "AT+RST"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(230_400, 8, 1, 0, 0)));
        assert_eq!(restarted(&mut m), crate::testing::BOOT);
        assert_eq!(
            at(&mut m, "AT+UART_CUR?"),
            b"AT+UART_CUR?\r\n+UART_CUR:230400,8,1,0,0\r\n\r\nOK\r\n"
        );
        // A reset at the saved settings changes nothing.
        at(&mut m, "ATE0");
        assert_eq!(at(&mut m, "AT+RST"), b"\r\nOK\r\n");
        assert_eq!(restarted(&mut m), crate::testing::BOOT);
        assert_eq!(m.poll_uart_change(), None);
        // AT+RESTORE: OK at 230400, `ready` at the start settings again
        // (and no stored AP to join).
        assert_eq!(at(&mut m, "AT+RESTORE"), b"AT+RESTORE\r\n\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(115_200, 8, 1, 0, 0)));
        assert_eq!(restarted(&mut m), crate::at::READY);
    }

    #[test]
    fn bad_settings_are_refused_and_change_nothing() {
        let mut m = modem();
        for line in [
            "AT+UART_CUR=79,8,1,0,0",
            "AT+UART_CUR=5000001,8,1,0,0",
            "AT+UART_CUR=115200,4,1,0,0",
            "AT+UART_CUR=115200,9,1,0,0",
            "AT+UART_CUR=115200,8,0,0,0",
            "AT+UART_CUR=115200,8,4,0,0",
            "AT+UART_CUR=115200,8,1,3,0",
            "AT+UART_CUR=115200,8,1,0,4",
            "AT+UART_CUR=115200,8,1,0",
            "AT+UART_CUR=115200,8,1,0,0,0",
            "AT+UART_CUR=115200,8,1,,0",
            "AT+UART_CUR=\"115200\",8,1,0,0",
            "AT+UART_DEF=0,8,1,0,0",
            "AT+UART_CUR=?",
            "AT+UART_DEF",
        ] {
            assert_eq!(at(&mut m, line), b"\r\nERROR\r\n", "{line}");
        }
        assert_eq!(m.poll_uart_change(), None);
        assert_eq!(m.uart_config(), UartConfig::DEFAULT);
        assert_eq!(
            at(&mut m, "AT+UART_DEF?"),
            b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn extremes_are_accepted() {
        let mut m = modem();
        assert_eq!(at(&mut m, "AT+UART_CUR=80,5,2,1,1"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(80, 5, 2, 1, 1)));
        assert_eq!(at(&mut m, "AT+UART_CUR=5000000,8,1,0,2"), b"\r\nOK\r\n");
        assert_eq!(m.poll_uart_change(), Some(cfg(5_000_000, 8, 1, 0, 2)));
    }

    #[test]
    fn byte_times() {
        // 8N1: 10 bits.
        assert_eq!(UartConfig::DEFAULT.byte_time_ns(), 86_805);
        assert_eq!(cfg(9600, 8, 1, 0, 0).byte_time_ns(), 1_041_666);
        // 8E2: 12 bits; 7O1.5: 10.5 bits.
        assert_eq!(cfg(12_000, 8, 3, 2, 0).byte_time_ns(), 1_000_000);
        assert_eq!(cfg(10_500, 7, 2, 1, 0).byte_time_ns(), 1_000_000);
    }

    #[test]
    fn the_command_table_lists_them() {
        let mut m = modem();
        let out = at(&mut m, "AT+CMD?");
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.contains(",\"AT+UART_CUR\",0,1,1,0\r\n"), "{text}");
        assert!(text.contains(",\"AT+UART_DEF\",0,1,1,0\r\n"), "{text}");
    }
}
