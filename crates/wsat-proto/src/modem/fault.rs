//! Faults on cue (issue 12): what no real module does when asked, for
//! testing host drivers. The control API and scenarios hand them to
//! [`Modem::inject`]; each is the modem misbehaving the way a real one
//! does now and then (an `ERROR` or `busy p...` out of the blue, a report
//! in the wrong place, a spontaneous reboot, the AP going away).
use alloc::vec::Vec;

use super::wifi::Station;
use super::{Input, Modem};
use crate::at::{self, AtError, ErrorKind};

/// A fault for [`Modem::inject`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next command line that starts with `prefix` is not run: it gets
    /// `answer` instead.
    Answer {
        /// Matched against the line as typed, without its CR LF
        /// (`AT+CIPSEND`, `AT+WSOPEN=0`, or `AT` for any command).
        prefix: Vec<u8>,
        /// What it gets.
        answer: FaultAnswer,
    },
    /// Unsolicited bytes (`+WS_DISCONNECTED:0\r\n`, `+IPD,…`, `WIFI
    /// DISCONNECT\r\n`, …) at a moment a module might print them.
    Report {
        /// Written as they are.
        bytes: Vec<u8>,
        /// When.
        when: ReportTime,
    },
    /// The module restarts by itself (or its reset pin is pulled: it wakes
    /// from `AT+GSLP=0`): links dropped without a word, input lost, `ready`
    /// after the restart delay.
    Reboot,
    /// The AP goes away: `WIFI DISCONNECT`, every socket link `CLOSED`,
    /// every WebSocket link lost (its reconnects fail until the AP is back).
    ApLost,
    /// The AP is back: the station joins it again (`WIFI CONNECTED`,
    /// `WIFI GOT IP`) if the AP was lost under it.
    ApBack,
}

/// What a command gets from [`Fault::Answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAnswer {
    /// `\r\nERROR\r\n` (with `ERR CODE:0x01090000` under `AT+SYSLOG=1`).
    Error,
    /// `\r\nbusy p...\r\n`.
    Busy,
    /// `ERR CODE:0x<code>` (whatever `AT+SYSLOG` says), then `ERROR`.
    ErrCode(u32),
}

/// When a [`Fault::Report`] is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportTime {
    /// At once, as a report (held while the host is mid-line or mid-prompt).
    Now,
    /// Right after the next `OK` the modem writes.
    AfterNextOk,
    /// Inside the echo of the next command line, after its first byte:
    /// what a racing report looks like on a real module.
    InNextEcho,
}

/// Faults armed and waiting for their moment.
#[derive(Debug, Default)]
pub(super) struct Armed {
    answers: Vec<(Vec<u8>, FaultAnswer)>,
    after_ok: Vec<Vec<u8>>,
    in_echo: Vec<Vec<u8>>,
    /// The AP the station was on when [`Fault::ApLost`] took it away.
    lost_ap: Option<usize>,
}

impl Modem {
    /// Applies `fault` now, or arms it for its moment (see [`Fault`]).
    pub fn inject(&mut self, fault: Fault, now: u64) {
        self.now = now;
        match fault {
            Fault::Answer { prefix, answer } => self.armed.answers.push((prefix, answer)),
            Fault::Report { bytes, when } => match when {
                ReportTime::Now => self.report(&bytes),
                ReportTime::AfterNextOk => self.armed.after_ok.push(bytes),
                ReportTime::InNextEcho => self.armed.in_echo.push(bytes),
            },
            Fault::Reboot => {
                // A restart under way is not started again, but a deep
                // sleep (longer than a restart, or without end) is woken.
                let restarted = self.now.saturating_add(self.options.restart_delay_ms);
                let awake = match self.input {
                    Input::Restarting { until } => until.is_none_or(|until| until > restarted),
                    _ => true,
                };
                if awake {
                    self.restart();
                }
            }
            Fault::ApLost => {
                if let Station::Associated(ap) = self.settings.station {
                    self.armed.lost_ap = Some(ap);
                    self.disconnect(Station::Disconnected);
                }
            }
            Fault::ApBack => {
                if let Some(ap) = self.armed.lost_ap.take() {
                    if matches!(self.settings.station, Station::Disconnected) {
                        self.settings.station = Station::Associated(ap);
                        self.sockets_joined();
                        self.report(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n");
                    }
                }
            }
        }
        self.consume_buffered();
        self.settle();
    }

    /// A command line is about to run: an armed fault that matches it (and
    /// is used up) answers instead; returns whether one did.
    pub(super) fn faulted_answer(&mut self, line: &[u8]) -> bool {
        let Some(at) = self
            .armed
            .answers
            .iter()
            .position(|(prefix, _)| line.starts_with(prefix))
        else {
            return false;
        };
        let (_, answer) = self.armed.answers.remove(at);
        match answer {
            FaultAnswer::Error => self.error(AtError::new(ErrorKind::Unsupported, 0)),
            FaultAnswer::Busy => self.out.extend_from_slice(at::BUSY),
            FaultAnswer::ErrCode(code) => {
                let line = alloc::format!("ERR CODE:0x{code:08x}\r\n");
                self.out.extend_from_slice(line.as_bytes());
                self.out.extend_from_slice(at::ERROR);
            }
        }
        true
    }

    /// An `OK` was just written: the reports armed for after it follow.
    pub(super) fn after_ok(&mut self) {
        for bytes in core::mem::take(&mut self.armed.after_ok) {
            self.out.extend_from_slice(&bytes);
        }
    }

    /// `echoed_from` is where the echo of a line began in the output: the
    /// reports armed for it go in after its first byte.
    pub(super) fn report_in_echo(&mut self, echoed_from: usize) {
        if self.armed.in_echo.is_empty() || self.out.len() < echoed_from + 2 {
            return;
        }
        let bytes: Vec<u8> = core::mem::take(&mut self.armed.in_echo).concat();
        let at = echoed_from + 1;
        self.out.splice(at..at, bytes);
    }

    /// Whether access point `ap` was taken away by [`Fault::ApLost`].
    pub(super) fn ap_gone(&self, ap: usize) -> bool {
        self.armed.lost_ap == Some(ap)
    }
}
