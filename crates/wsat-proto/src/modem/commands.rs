//! The command table and the handlers of every AT command.
use alloc::format;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use super::link::{DataFormat, LinkConfig, OpenRequest, SendRequest};
use super::{DataTarget, Input, Modem, Settings, Wait};
use crate::at::{self, Args, AtError, ErrorKind};
use crate::modem::{LinkId, LINK_COUNT};
use crate::ws::{self, opcode};

/// The chip tag of `AT+GMR`'s first line: drivers (lwesp) identify the
/// module by it. That it is wsat says the `SDK version` line.
const CHIP: &str = "ESP32C3";

/// The four forms of an AT command.
pub(super) enum Form<'a> {
    Test,
    Query,
    Set(&'a [u8]),
    Execute,
}

/// How a handler answered.
pub(super) enum Reply {
    /// `\r\nOK\r\n`.
    Ok,
    /// The handler wrote its whole answer itself.
    Done,
    /// Prompt, then exactly `len` raw bytes for `target`.
    Prompt(usize, DataTarget),
    /// The command keeps running; its answer comes later.
    Busy(Wait),
}

type Handler = fn(&mut Modem, Form<'_>) -> Result<Reply, AtError>;

/// One row of the table: the name after `AT`, which forms exist, the handler.
struct Command {
    name: &'static str,
    test: bool,
    query: bool,
    set: bool,
    execute: bool,
    handler: Handler,
}

const fn cmd(name: &'static str, forms: [bool; 4], handler: Handler) -> Command {
    let [test, query, set, execute] = forms;
    Command {
        name,
        test,
        query,
        set,
        execute,
        handler,
    }
}

const EXEC: [bool; 4] = [false, false, false, true];
const QUERY: [bool; 4] = [false, true, false, false];
const QUERY_SET: [bool; 4] = [false, true, true, false];
const SET: [bool; 4] = [false, false, true, false];

/// Every command wsat knows, in `AT+CMD?` order.
const COMMANDS: &[Command] = &[
    cmd("", EXEC, |_, _| Ok(Reply::Ok)),
    cmd("E0", EXEC, |m, _| m.set_echo(false)),
    cmd("E1", EXEC, |m, _| m.set_echo(true)),
    cmd("+RST", [false, false, true, true], Modem::cmd_rst),
    cmd("+GMR", EXEC, |m, _| m.cmd_gmr()),
    cmd("+CMD", QUERY, |m, _| m.cmd_cmd()),
    cmd("+GSLP", SET, Modem::cmd_gslp),
    cmd("+RESTORE", EXEC, |m, _| m.cmd_restore()),
    cmd("+SYSSTORE", QUERY_SET, |m, f| {
        m.cmd_kept_number(f, KeptNumber::SysStore)
    }),
    cmd("+SYSMSG", QUERY_SET, |m, f| {
        m.cmd_kept_number(f, KeptNumber::SysMsg)
    }),
    cmd("+SLEEP", QUERY_SET, |m, f| {
        m.cmd_kept_number(f, KeptNumber::Sleep)
    }),
    cmd("+SYSRAM", QUERY, |m, _| {
        // A module's heap after start-up, as esp-at#804 shows it (v3.2).
        m.info("SYSRAM", "166096,147832");
        Ok(Reply::Ok)
    }),
    cmd("+SYSFLASH", QUERY, |m, _| {
        for (name, subtype, addr, size) in USER_PARTITIONS {
            let line = format!("+SYSFLASH:\"{name}\",64,{subtype},{addr:#x},{size:#x}\r\n");
            m.out.extend_from_slice(line.as_bytes());
        }
        Ok(Reply::Ok)
    }),
    cmd("+RFPOWER", QUERY_SET, Modem::cmd_rfpower),
    cmd("+SYSTIMESTAMP", QUERY_SET, Modem::cmd_systimestamp),
    cmd("+SYSLOG", QUERY_SET, Modem::cmd_syslog),
    cmd("+UART_CUR", QUERY_SET, |m, f| m.cmd_uart(f, false)),
    cmd("+UART_DEF", QUERY_SET, |m, f| m.cmd_uart(f, true)),
    cmd("+SYSMFG", QUERY_SET, Modem::cmd_sysmfg),
    cmd("+CWMODE", [true, true, true, false], Modem::cmd_cwmode),
    cmd("+CWJAP", [false, true, true, true], Modem::cmd_cwjap),
    cmd("+CWSTATE", QUERY, |m, _| m.cmd_cwstate()),
    cmd("+CWQAP", EXEC, |m, _| m.cmd_cwqap()),
    cmd("+CWLAPOPT", SET, Modem::cmd_cwlapopt),
    cmd("+CWLAP", [false, false, true, true], Modem::cmd_cwlap),
    cmd("+CWDHCP", QUERY_SET, Modem::cmd_cwdhcp),
    cmd("+CIPSTAMAC", QUERY_SET, Modem::cmd_cipstamac),
    cmd("+CWHOSTNAME", QUERY_SET, Modem::cmd_cwhostname),
    cmd("+CWAUTOCONN", QUERY_SET, |m, f| {
        m.cmd_kept_number(f, KeptNumber::CwAutoConn)
    }),
    cmd("+CIPMUX", QUERY_SET, Modem::cmd_cipmux),
    cmd("+CIFSR", EXEC, |m, _| m.cmd_cifsr()),
    cmd("+CIPSTA", QUERY_SET, Modem::cmd_cipsta),
    cmd("+CIPAPMAC", QUERY_SET, Modem::cmd_cipapmac),
    cmd("+CWSAP", QUERY_SET, Modem::cmd_cwsap),
    cmd("+CIPAP", QUERY_SET, Modem::cmd_cipap),
    cmd("+CWLIF", EXEC, |_, _| Ok(Reply::Ok)),
    cmd("+CWQIF", [false, false, true, true], |_, f| {
        if let Form::Set(p) = f {
            Args::parse(p, 1)?.str(0)?;
        }
        Ok(Reply::Ok)
    }),
    cmd("+CWDHCPS", QUERY_SET, Modem::cmd_cwdhcps),
    cmd("+CWCOUNTRY", QUERY_SET, Modem::cmd_cwcountry),
    cmd("+CIPDNS", QUERY_SET, Modem::cmd_cipdns),
    cmd("+CIPSTATUS", EXEC, |m, _| m.cmd_cipstatus()),
    cmd("+CIPSTATE", QUERY, |m, _| {
        m.socket_state_lines("CIPSTATE");
        Ok(Reply::Ok)
    }),
    cmd("+CIPSTART", SET, |m, f| m.cmd_cipstart(f, false)),
    cmd("+CIPSTARTEX", SET, |m, f| m.cmd_cipstart(f, true)),
    cmd("+CIPSEND", [false, false, true, true], |m, f| {
        m.cmd_cipsend(f, false)
    }),
    cmd("+CIPSENDEX", SET, |m, f| m.cmd_cipsend(f, true)),
    cmd("+CIPSENDL", SET, Modem::cmd_cipsendl),
    cmd("+CIPSENDLCFG", QUERY_SET, Modem::cmd_cipsendlcfg),
    cmd("+CIPCLOSE", [false, false, true, true], Modem::cmd_cipclose),
    cmd("+CIPMODE", QUERY_SET, Modem::cmd_cipmode),
    cmd("+CIPDINFO", QUERY_SET, Modem::cmd_cipdinfo),
    cmd("+CIPRECVMODE", QUERY_SET, Modem::cmd_ciprecvmode),
    cmd("+CIPRECVTYPE", QUERY_SET, Modem::cmd_ciprecvtype),
    cmd("+CIPRECVDATA", SET, Modem::cmd_ciprecvdata),
    cmd("+CIPRECVLEN", QUERY, |m, _| m.cmd_ciprecvlen()),
    cmd("+CIPSERVER", QUERY_SET, Modem::cmd_cipserver),
    cmd("+CIPSERVERMAXCONN", QUERY_SET, Modem::cmd_cipservermaxconn),
    cmd("+CIPSTO", QUERY_SET, Modem::cmd_cipsto),
    cmd("+CIPV6", QUERY_SET, |m, f| {
        m.cmd_socket_number(f, "CIPV6", 0..=1)
    }),
    cmd("+CIPRECONNINTV", QUERY_SET, |m, f| {
        m.cmd_socket_number(f, "CIPRECONNINTV", 1..=36000)
    }),
    cmd("+CIPDOMAIN", SET, Modem::cmd_cipdomain),
    cmd("+PING", SET, Modem::cmd_ping),
    cmd("+CIPSSLCCONF", QUERY_SET, Modem::cmd_cipsslcconf),
    cmd("+CIPSSLCCN", QUERY_SET, |m, f| m.cmd_cipsslc_name(f, false)),
    cmd("+CIPSSLCSNI", QUERY_SET, |m, f| m.cmd_cipsslc_name(f, true)),
    cmd("+CIPSSLCALPN", QUERY_SET, Modem::cmd_cipsslcalpn),
    cmd("+CIPSSLCPSK", QUERY_SET, Modem::cmd_cipsslcpsk),
    cmd("+CIPSNTPCFG", QUERY_SET, Modem::cmd_cipsntpcfg),
    cmd("+CIPSNTPTIME", QUERY, |m, _| m.cmd_cipsntptime()),
    cmd("+WSCFG", SET, Modem::cmd_wscfg),
    cmd("+WSHEAD", QUERY_SET, Modem::cmd_wshead),
    cmd("+WSOPEN", QUERY_SET, Modem::cmd_wsopen),
    cmd("+WSSEND", SET, Modem::cmd_wssend),
    cmd("+WSDATAFMT", SET, Modem::cmd_wsdatafmt),
    cmd("+WSCLOSE", SET, Modem::cmd_wsclose),
];

/// `AT+SYSFLASH?`: the user partitions (type 0x40) of an ESP32-C3 module,
/// from ESP-AT's `module_esp32c3_default/at_customize.csv`: name, subtype,
/// address, size. wsat keeps certificates in `AT+SYSMFG`'s store instead, so
/// reading or writing them with `AT+SYSFLASH=` is not offered.
const USER_PARTITIONS: [(&str, u8, u32, u32); 14] = [
    ("ble_data", 1, 0x1f000, 0x6000),
    ("server_cert", 2, 0x25000, 0x2000),
    ("server_key", 3, 0x27000, 0x2000),
    ("server_ca", 4, 0x29000, 0x2000),
    ("client_cert", 5, 0x2b000, 0x2000),
    ("client_key", 6, 0x2d000, 0x2000),
    ("client_ca", 7, 0x2f000, 0x2000),
    ("factory_param", 8, 0x31000, 0x1000),
    ("wpa2_cert", 9, 0x32000, 0x2000),
    ("wpa2_key", 10, 0x34000, 0x2000),
    ("wpa2_ca", 11, 0x36000, 0x2000),
    ("mqtt_cert", 12, 0x38000, 0x2000),
    ("mqtt_key", 13, 0x3a000, 0x2000),
    ("mqtt_ca", 14, 0x3c000, 0x2000),
];

/// Settings a driver may set at start-up and read back, which only keep a
/// number here: (name, range, default), indexed by [`KeptNumber`].
const KEPT_NUMBERS: [(&str, RangeInclusive<i64>, u8); 4] = [
    ("SYSSTORE", 0..=1, 1),
    ("SYSMSG", 0..=7, 0),
    ("SLEEP", 0..=3, 0),
    ("CWAUTOCONN", 0..=1, 1),
];

pub(super) fn kept_number_defaults() -> [u8; 4] {
    KEPT_NUMBERS.map(|(_, _, default)| default)
}

#[derive(Clone, Copy)]
pub(super) enum KeptNumber {
    SysStore,
    SysMsg,
    Sleep,
    CwAutoConn,
}

/// Longest `AT+WSHEAD` header, and all of them together.
const MAX_HEADER: i64 = 4096;
const MAX_HEADERS_TOTAL: usize = 16 * 1024;

/// Reconnecting and failed opens wait this long, as ESP-AT does.
const DEFAULT_CONNECT_TIMEOUT_MS: i64 = 15_000;
/// What a timeout of 0 means: the network timeout of ESP's client.
pub(super) const NETWORK_TIMEOUT_MS: u64 = 10_000;

fn link_id(args: &Args) -> Result<LinkId, AtError> {
    Ok(args.int(0, 0..=LINK_COUNT as i64 - 1)? as LinkId)
}

/// A header value or similar that goes into the request as is.
fn valid_header_text(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

impl Modem {
    /// Parses and runs one command line (terminator removed, not empty).
    pub(super) fn run_line(&mut self, line: &[u8]) {
        if self.faulted_answer(line) {
            return;
        }
        let result = match line.strip_prefix(b"AT") {
            None => Err(AtError::new(ErrorKind::NoAt, 0)),
            Some(rest) => self.dispatch(rest),
        };
        match result {
            Ok(Reply::Ok) => self.ok(),
            Ok(Reply::Done) => {}
            Ok(Reply::Prompt(len, target)) => {
                self.out.extend_from_slice(at::PROMPT);
                self.input = Input::Data {
                    remaining: len,
                    buf: Vec::new(),
                    target,
                };
            }
            Ok(Reply::Busy(wait)) => self.input = Input::Busy(wait),
            Err(err) => self.error(err),
        }
    }

    fn dispatch(&mut self, rest: &[u8]) -> Result<Reply, AtError> {
        let name_len = rest
            .iter()
            .position(|&b| b == b'=' || b == b'?')
            .unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_len);
        let unsupported = AtError::new(ErrorKind::Unsupported, 0);
        let profile = self.options.firmware.profile();
        let command = COMMANDS
            .iter()
            .find(|c| c.name.as_bytes() == name && profile.has(c.name))
            .ok_or(unsupported)?;
        let (form, has_form) = match tail {
            b"" => (Form::Execute, command.execute),
            b"?" => (Form::Query, command.query),
            b"=?" => (Form::Test, command.test),
            [b'=', params @ ..] => (Form::Set(params), command.set),
            _ => return Err(unsupported),
        };
        if !has_form {
            return Err(AtError::new(ErrorKind::OpError, 0));
        }
        (command.handler)(self, form)
    }

    fn set_echo(&mut self, on: bool) -> Result<Reply, AtError> {
        self.settings.echo = on;
        Ok(Reply::Ok)
    }

    /// `AT+RST`, and `AT+RST=<0|1>` of the C2/C3 (1, download mode, has
    /// nothing to emulate: it restarts as 0 does).
    fn cmd_rst(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            Args::parse(p, 1)?.int(0, 0..=1)?;
        }
        self.ok();
        self.restart();
        Ok(Reply::Done)
    }

    /// After the `OK` of a reset: back to power-on state, input discarded
    /// until `ready` ([`ModemOptions::restart_delay_ms`] later).
    pub(super) fn restart(&mut self) {
        self.restart_after(Some(self.options.restart_delay_ms));
    }

    /// [`Modem::restart`] with `ready` `delay` ms from now; `None`: only
    /// after a hard reset.
    fn restart_after(&mut self, delay: Option<u64>) {
        self.reset();
        // `ready` comes at the saved line settings.
        self.uart_reset();
        self.input = Input::Restarting {
            until: delay.map(|delay| self.now.saturating_add(delay)),
        };
    }

    /// `AT+GSLP=<ms>`: deep sleep, then a wake-up is a boot (`ready`, the
    /// stored AP); 0 sleeps until a hard reset. The RTC (the clock) runs on.
    fn cmd_gslp(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let sleep = Args::parse(p, 1)?.int(0, 0..=i64::from(i32::MAX))? as u64;
        self.info_line(&[format!("{sleep}").as_bytes()]);
        self.ok();
        // Waking up is a boot: the sleep, then a restart's delay.
        self.restart_after(
            (sleep > 0).then(|| sleep.saturating_add(self.options.restart_delay_ms)),
        );
        Ok(Reply::Done)
    }

    /// `AT+RST` typed while a command runs: ESP-AT's escape hatch. The
    /// command is cut off without its answer.
    pub(super) fn force_restart(&mut self) {
        self.out
            .extend_from_slice(b"\r\nWill force to restart!!!\r\n");
        self.ok();
        self.restart();
    }

    /// Back to power-on state: links dropped without reports, settings default.
    fn reset(&mut self) {
        self.drop_links();
        self.links = Default::default();
        self.drop_sockets();
        self.sockets = Default::default();
        // AT+CWAUTOCONN is kept in flash (esp-at-tcpip.md §2.8).
        let autoconnect = self.settings.kept_numbers[KeptNumber::CwAutoConn as usize];
        self.settings = Settings::default();
        self.settings.kept_numbers[KeptNumber::CwAutoConn as usize] = autoconnect;
        self.held.clear();
        self.reader.clear();
        self.lf_deadline = None;
        self.input = Input::Line;
    }

    fn cmd_gmr(&mut self) -> Result<Reply, AtError> {
        let (commit, time) = (&self.options.commit, &self.options.build_time);
        let version = env!("CARGO_PKG_VERSION");
        let profile = self.options.firmware.profile();
        let (at_version, bin_version) = (profile.at_version, profile.bin_version);
        let text = format!(
            "AT version:{at_version}({commit} - {CHIP} - {time})\r\n\
             SDK version:wsat v{version}\r\n\
             compile time({commit}):{time}\r\n\
             Bin version:{bin_version}(wsat)\r\n"
        );
        self.out.extend_from_slice(text.as_bytes());
        Ok(Reply::Ok)
    }

    fn cmd_cmd(&mut self) -> Result<Reply, AtError> {
        let profile = self.options.firmware.profile();
        let commands = COMMANDS.iter().filter(|c| profile.has(c.name));
        for (index, c) in commands.enumerate() {
            let line = format!(
                "+CMD:{index},\"AT{}\",{},{},{},{}\r\n",
                c.name, c.test as u8, c.query as u8, c.set as u8, c.execute as u8
            );
            self.out.extend_from_slice(line.as_bytes());
        }
        Ok(Reply::Ok)
    }

    /// Writes `+<name>:<value>\r\n`.
    fn info(&mut self, name: &str, value: &str) {
        self.info_line(&[b"+", name.as_bytes(), b":", value.as_bytes()]);
    }

    /// Appends one information line made of `parts`, and its CR LF. The
    /// parts are bytes: SSIDs and host names need not be UTF-8.
    pub(super) fn info_line(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.out.extend_from_slice(part);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    fn cmd_kept_number(&mut self, form: Form<'_>, which: KeptNumber) -> Result<Reply, AtError> {
        let (name, range, _) = &KEPT_NUMBERS[which as usize];
        let value = &mut self.settings.kept_numbers[which as usize];
        match form {
            Form::Set(p) => *value = Args::parse(p, 1)?.int(0, range.clone())? as u8,
            _ => {
                let text = format!("{value}");
                self.info(name, &text);
            }
        }
        Ok(Reply::Ok)
    }

    /// Factory settings: what `AT+RST` restores, and the saved UART settings.
    fn cmd_restore(&mut self) -> Result<Reply, AtError> {
        self.uart_restore();
        self.settings.kept_numbers[KeptNumber::CwAutoConn as usize] = 1;
        // The flash is erased: no AP to join after `ready` (§1.3).
        self.kept.stored_ap = None;
        self.cmd_rst(Form::Execute)
    }

    fn cmd_syslog(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => self.settings.syslog = Args::parse(p, 1)?.int(0, 0..=1)? == 1,
            _ => self.info("SYSLOG", if self.settings.syslog { "1" } else { "0" }),
        }
        Ok(Reply::Ok)
    }

    fn cmd_cwmode(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Test => self.info("CWMODE", "(0-3)"),
            Form::Set(p) => {
                let args = Args::parse(p, 2)?;
                let mode = args.int(0, 0..=3)?;
                args.opt_int(1, 0..=1)?;
                self.settings.cwmode = mode as u8;
                self.ok();
                self.cwmode_changed();
                return Ok(Reply::Done);
            }
            _ => self.info("CWMODE", &format!("{}", self.settings.cwmode)),
        }
        Ok(Reply::Ok)
    }

    fn cmd_cipsntpcfg(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            let s = &self.settings;
            let mut value = format!("{},{}", s.sntp_enabled as u8, s.timezone);
            for server in &s.sntp_servers {
                value += &format!(",\"{}\"", alloc::string::String::from_utf8_lossy(server));
            }
            self.info("CIPSNTPCFG", &value);
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 5)?;
        let enabled = args.int(0, 0..=1)? == 1;
        let timezone = args.opt_int(1, -1200..=1400)?.unwrap_or(0);
        if !(-12..=14).contains(&timezone) && !valid_hhmm(timezone) {
            return Err(AtError::new(ErrorKind::ParamInvalid, 2));
        }
        let mut servers = Vec::new();
        for i in 2..args.len() {
            if let Some(server) = args.opt_str(i)? {
                servers.push(server.to_vec());
            }
        }
        let s = &mut self.settings;
        s.sntp_enabled = enabled;
        s.timezone = timezone;
        if !servers.is_empty() {
            s.sntp_servers = servers;
        }
        self.ok();
        if enabled {
            // The host clock is already right: report the sync at once.
            self.kept.clock_offset = 0;
            self.report(b"+TIME_UPDATED\r\n");
        }
        Ok(Reply::Done)
    }

    fn cmd_cipsntptime(&mut self) -> Result<Reply, AtError> {
        let offset = timezone_offset_secs(self.settings.timezone);
        let time = self.unix_time() + offset;
        self.info("CIPSNTPTIME", &asctime(time));
        Ok(Reply::Ok)
    }

    /// The module's clock: the host's, moved by `AT+SYSTIMESTAMP=`.
    fn unix_time(&self) -> i64 {
        self.host_time() + self.kept.clock_offset
    }

    fn host_time(&self) -> i64 {
        self.platform.unix_time().unwrap_or(0)
    }

    fn cmd_systimestamp(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => {
                let time = Args::parse(p, 1)?.int(0, 0..=i64::from(u32::MAX))?;
                self.kept.clock_offset = time - self.host_time();
            }
            _ => self.info("SYSTIMESTAMP", &format!("{}", self.unix_time())),
        }
        Ok(Reply::Ok)
    }

    /// `AT+RFPOWER`: kept and read back; wsat has no radio to turn down.
    fn cmd_rfpower(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => {
                let args = Args::parse(p, 4)?;
                let mut power = self.settings.rf_power;
                power[0] = args.int(0, 40..=84)? as u8;
                for (i, ble) in power.iter_mut().enumerate().skip(1) {
                    if let Some(value) = args.opt_int(i, 0..=15)? {
                        *ble = value as u8;
                    }
                }
                self.settings.rf_power = power;
            }
            _ => {
                let [wifi, adv, scan, conn] = self.settings.rf_power;
                self.info("RFPOWER", &format!("{wifi},{adv},{scan},{conn}"));
            }
        }
        Ok(Reply::Ok)
    }

    // --- WebSocket commands ------------------------------------------------

    fn cmd_wscfg(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let profile = self.options.firmware.profile();
        // Before v4.1 there are no TLS parameters.
        let args = Args::parse(p, if profile.ws_auth { 7 } else { 4 })?;
        let link = link_id(&args)?;
        let defaults = LinkConfig::default();
        let ping_interval = args.opt_int(1, 1..=7200)?;
        let pong_timeout = args.opt_int(2, 1..=7200)?;
        if args.len() < 3 {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let buffer_size = args.opt_int(3, 1..=profile.ws_max_len)?;
        let auth_mode = args.opt_int(4, 0..=3)?.unwrap_or(0) as u8;
        let max_index = i64::from(crate::pki::MAX_INDEX);
        let pki = args.opt_int(5, 0..=max_index)?;
        let ca = args.opt_int(6, 0..=max_index)?;
        if auth_mode != 0 && (pki.is_none() || ca.is_none()) {
            return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
        }
        let config = LinkConfig {
            ping_interval_ms: ping_interval.map_or(defaults.ping_interval_ms, |s| s as u64 * 1000),
            pong_timeout_ms: pong_timeout.map_or(defaults.pong_timeout_ms, |s| s as u64 * 1000),
            buffer_size: buffer_size.map_or(defaults.buffer_size, |n| n as usize),
            tls: self.load_tls(
                crate::pki::WSS,
                auth_mode,
                pki.unwrap_or(0) as u8,
                ca.unwrap_or(0) as u8,
            )?,
        };
        self.links[usize::from(link)].pending_config = Some(config);
        Ok(Reply::Ok)
    }

    fn cmd_wshead(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            for (index, header) in self.settings.headers.iter().rev().enumerate() {
                self.out
                    .extend_from_slice(format!("+WSHEAD:{index},\"").as_bytes());
                self.out.extend_from_slice(header);
                self.out.extend_from_slice(b"\"\r\n");
            }
            return Ok(Reply::Ok);
        };
        let len = Args::parse(p, 1)?.int(0, 0..=MAX_HEADER)? as usize;
        if len == 0 {
            self.settings.headers.clear();
            return Ok(Reply::Ok);
        }
        Ok(Reply::Prompt(len, DataTarget::WsHead))
    }

    pub(super) fn wshead_data(&mut self, header: Vec<u8>) {
        let total: usize = self.settings.headers.iter().map(Vec::len).sum();
        let valid = match header.iter().position(|&b| b == b':') {
            Some(colon) => !header[..colon].iter().all(u8::is_ascii_whitespace),
            None => false,
        };
        if valid && valid_header_text(&header) && total + header.len() <= MAX_HEADERS_TOTAL {
            self.settings.headers.push(header);
            self.ok();
        } else {
            self.error(AtError::new(ErrorKind::ParamInvalid, 1));
        }
    }

    fn cmd_wsopen(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            for link in 0..LINK_COUNT as LinkId {
                if let Some((state, uri)) = self.link_summary(link) {
                    self.out
                        .extend_from_slice(format!("+WSOPEN:{link},{state},\"").as_bytes());
                    self.out.extend_from_slice(&uri);
                    self.out.extend_from_slice(b"\"\r\n");
                }
            }
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 5)?;
        let link = link_id(&args)?;
        let uri_text = args.str(1)?;
        let uri = core::str::from_utf8(uri_text)
            .ok()
            .and_then(|text| ws::parse_ws_uri(text).ok())
            .ok_or(AtError::new(ErrorKind::ParamInvalid, 2))?;
        let subprotocol = args.opt_str(2)?.filter(|s| !s.is_empty());
        if !subprotocol.is_none_or(valid_header_text) {
            return Err(AtError::new(ErrorKind::ParamInvalid, 3));
        }
        let timeout = args
            .opt_int(3, 0..=180_000)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS) as u64;
        let auth = args.opt_str(4)?.filter(|s| !s.is_empty());
        if !auth.is_none_or(valid_header_text) {
            return Err(AtError::new(ErrorKind::ParamInvalid, 5));
        }
        // No network without an AP.
        if self.links[usize::from(link)].client.is_some() || !self.associated() {
            return Err(AtError::exec());
        }
        let timeout = if timeout == 0 {
            NETWORK_TIMEOUT_MS
        } else {
            timeout
        };
        let request = OpenRequest {
            uri_text: uri_text.to_vec(),
            uri,
            subprotocol: subprotocol.map(<[u8]>::to_vec),
            auth: auth.map(<[u8]>::to_vec),
            connect_timeout_ms: timeout,
        };
        self.open_link(link, request);
        Ok(Reply::Busy(Wait::Open(link)))
    }

    fn cmd_wssend(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let profile = self.options.firmware.profile();
        // `<fin>` came with master.
        let args = Args::parse(p, if profile.ws_fragments { 5 } else { 4 })?;
        let link = link_id(&args)?;
        let len = args.int(1, 0..=profile.ws_max_len)? as usize;
        let op = args.opt_int(2, 0..=15)?.unwrap_or(1) as u8;
        let timeout = args.opt_int(3, 0..=60_000)?.unwrap_or(10_000) as u64;
        let fin = args.opt_int(4, 0..=1)?.unwrap_or(1) == 1;
        let invalid = |i| Err(AtError::new(ErrorKind::ParamInvalid, i));
        // RFC 6455 §5.5: control frames are never fragmented and carry ≤125 bytes.
        if opcode::is_control(op) && len > 125 {
            return invalid(2);
        }
        let data_frame = matches!(op, opcode::CONTINUATION | opcode::TEXT | opcode::BINARY);
        if !fin && !data_frame {
            return invalid(5);
        }
        let message_open = self.can_send(link)?;
        // Continuations need a message to continue; a new message must not
        // start inside one (the server would fail the connection).
        if op == opcode::CONTINUATION && !message_open {
            return invalid(3);
        }
        if (op == opcode::TEXT || op == opcode::BINARY) && message_open {
            return invalid(3);
        }
        let timeout = if timeout == 0 {
            NETWORK_TIMEOUT_MS
        } else {
            timeout
        };
        let request = SendRequest {
            link,
            opcode: op,
            fin,
            timeout_ms: timeout,
        };
        if len == 0 {
            Ok(Reply::Busy(self.send_data(request, &[])))
        } else {
            Ok(Reply::Prompt(len, DataTarget::WsSend(request)))
        }
    }

    pub(super) fn wssend_data(&mut self, request: SendRequest, data: &[u8]) {
        // The link may have dropped while the host was typing.
        if self.can_send(request.link).is_err() {
            self.error(AtError::exec());
            return;
        }
        self.input = Input::Busy(self.send_data(request, data));
    }

    fn cmd_wsdatafmt(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let args = Args::parse(p, 3)?;
        let link = link_id(&args)?;
        let defaults = DataFormat::default();
        let level = args.opt_int(1, 0..=2)?.map_or(defaults.level, |l| l as u8);
        let mask = args.opt_int(2, 1..=63)?.map_or(defaults.mask, |m| m as u8);
        self.links[usize::from(link)].format = DataFormat { level, mask };
        Ok(Reply::Ok)
    }

    fn cmd_wsclose(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let link = link_id(&Args::parse(p, 1)?)?;
        Ok(match self.close_link(link) {
            Some(wait) => Reply::Busy(wait),
            None => Reply::Ok,
        })
    }
}

/// `AT+CIPSNTPCFG` accepts hours or ±HHMM with minutes 00, 30 or 45.
fn valid_hhmm(tz: i64) -> bool {
    let (hours, minutes) = (tz / 100, (tz % 100).abs());
    (-12..=14).contains(&hours) && matches!(minutes, 0 | 30 | 45)
}

fn timezone_offset_secs(tz: i64) -> i64 {
    if (-12..=14).contains(&tz) {
        tz * 3600
    } else {
        let sign = tz.signum();
        sign * ((tz.abs() / 100) * 3600 + (tz.abs() % 100) * 60)
    }
}

/// C's `asctime` without the newline: `Mon Oct 18 20:12:27 2021`.
fn asctime(unix: i64) -> alloc::string::String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_matches_c() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_634_587_947), "Mon Oct 18 20:12:27 2021");
        assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn timezones() {
        assert_eq!(timezone_offset_secs(8), 8 * 3600);
        assert_eq!(timezone_offset_secs(-530), -(5 * 3600 + 30 * 60));
        assert!(valid_hhmm(545) && !valid_hhmm(1299) && !valid_hhmm(1520));
    }
}
