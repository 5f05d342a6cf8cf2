//! The Wi-Fi station wsat presents (esp-at-tcpip.md §2): the host machine
//! is online, and the emulated module is associated to one of a configured
//! set of access points, or not. `AT+CWJAP` succeeds for a configured AP
//! with its password and fails as a module does otherwise; network commands
//! need the station associated.
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::commands::{Form, KeptNumber, Reply};
use super::{Input, Modem, Wait};
use crate::at::{self, Args, AtError, ErrorKind};

/// An access point the emulated module can see and join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPoint {
    /// Its SSID (at most 32 bytes).
    pub ssid: Vec<u8>,
    /// Its WPA2 passphrase; empty for an open network.
    pub password: Vec<u8>,
    /// Signal strength in dBm, as `AT+CWLAP` and `AT+CWJAP?` report it.
    pub rssi: i8,
    /// The 2.4 GHz channel, 1..=13.
    pub channel: u8,
    /// Its MAC address.
    pub bssid: [u8; 6],
}

impl AccessPoint {
    /// ESP-AT's `<ecn>`: 0 open, 3 WPA2-PSK.
    fn ecn(&self) -> u8 {
        if self.password.is_empty() {
            0
        } else {
            3
        }
    }
}

/// The Wi-Fi around the emulated module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WifiOptions {
    /// What `AT+CWLAP` finds and `AT+CWJAP` may join.
    pub access_points: Vec<AccessPoint>,
    /// The AP stored in the module's flash at start (an index into
    /// `access_points`): joined after every start-up and reset while
    /// `AT+CWAUTOCONN` is 1, and by `AT+CWJAP` without parameters. A join
    /// under `AT+SYSSTORE=1` stores its AP instead; `AT+RESTORE` forgets it.
    pub stored: Option<usize>,
    /// How long a join takes (the echo of `AT+CWJAP` to `WIFI CONNECTED`).
    pub join_delay_ms: u64,
    /// The DNS servers DHCP hands out (`AT+CIPDNS?` while `<enable>` is 0),
    /// dotted IPv4, at most three: the host's resolvers. Empty: ESP-AT's
    /// defaults before DHCP.
    pub dhcp_dns: Vec<String>,
}

impl Default for WifiOptions {
    /// One open AP, `wsat`, stored with autoconnect: after `ready` the module
    /// is online, as a board that joined its network before.
    fn default() -> Self {
        WifiOptions {
            access_points: vec![AccessPoint {
                ssid: b"wsat".to_vec(),
                password: Vec::new(),
                rssi: -40,
                channel: 6,
                bssid: [0x02, 0, 0, 0, 0, 0x01],
            }],
            stored: Some(0),
            join_delay_ms: 500,
            dhcp_dns: Vec::new(),
        }
    }
}

/// The station's state, as `AT+CWSTATE?` numbers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Station {
    /// 0: no join since start-up.
    #[default]
    Idle,
    /// 2: associated (with an address) to this AP.
    Associated(usize),
    /// 3: a join is under way.
    Joining,
    /// 4: left or lost the AP.
    Disconnected,
}

/// The station's address when associated: the machine is online, and its
/// real addresses are none of the host's business.
pub(super) const STATION_IP: &str = "127.0.0.1";
/// The station's MAC (`AT+CIPSTAMAC?`, `AT+CIFSR`): Espressif's OUI.
const STATION_MAC: &str = "24:0a:c4:00:00:01";

/// What a join will end with: the AP joined, or `+CWJAP:<code>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JoinOutcome {
    Joined(usize),
    /// 2 wrong password, 3 no such AP.
    Failed(u8),
}

fn mac_text(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

impl Modem {
    /// Station mode is on (`AT+CWMODE` 1 or 3).
    fn station_on(&self) -> bool {
        matches!(self.settings.cwmode, 1 | 3)
    }

    /// Whether network commands can reach anything.
    pub(super) fn associated(&self) -> bool {
        matches!(self.settings.station, Station::Associated(_))
    }

    /// After a `ready`: the stored AP is joined when autoconnect is on. At
    /// power-on at once (no host was there to see the boot). After a reset
    /// [`WifiOptions::join_delay_ms`] later, as a module that associates and
    /// runs DHCP before it says so (§1.7), with the host already talking; a
    /// command for the station meanwhile (a join, `AT+CWQAP`, station mode
    /// off) cancels it.
    pub(super) fn boot_join(&mut self, after_reset: bool) {
        let autoconnect = self.settings.kept_numbers[KeptNumber::CwAutoConn as usize];
        let station_mode = self.station_on();
        if let Some(ap) = self
            .kept
            .stored_ap
            .filter(|_| autoconnect == 1 && station_mode)
        {
            if ap < self.options.wifi.access_points.len() {
                self.settings.last_ssid = self.options.wifi.access_points[ap].ssid.clone();
                self.settings.station = Station::Joining;
                let delay = if after_reset {
                    self.options.wifi.join_delay_ms
                } else {
                    0
                };
                self.settings.boot_join = Some((ap, self.now.saturating_add(delay)));
                self.boot_join_due();
            }
        }
    }

    /// The boot join, once its time has come.
    pub(super) fn boot_join_due(&mut self) {
        let Some((ap, at)) = self.settings.boot_join else {
            return;
        };
        if self.now < at {
            return;
        }
        self.settings.boot_join = None;
        if self.ap_gone(ap) {
            self.settings.station = Station::Disconnected;
        } else {
            self.settings.station = Station::Associated(ap);
            self.sockets_joined();
            self.report(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n");
        }
    }

    /// Leaves the AP, if associated: `WIFI DISCONNECT`.
    pub(super) fn disconnect(&mut self, then: Station) {
        self.settings.boot_join = None;
        if self.associated() {
            self.report(b"WIFI DISCONNECT\r\n");
            self.settings.station = Station::Disconnected;
            // Without the AP no link survives: sockets report CLOSED,
            // WebSocket links are lost (and fail to reconnect meanwhile).
            self.sockets_lost_network();
            self.lose_ws_links();
        }
        self.settings.station = then;
    }

    /// `AT+CWMODE=<mode>`: leaving station mode leaves the AP.
    pub(super) fn cwmode_changed(&mut self) {
        if !self.station_on() {
            self.disconnect(Station::Idle);
        }
    }

    /// `AT+CWJAP`: join (after the join delay), `AT+CWJAP?`: the AP.
    pub(super) fn cmd_cwjap(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let (ssid, password) = match form {
            Form::Query => {
                if let Station::Associated(ap) = self.settings.station {
                    let ap = self.options.wifi.access_points[ap].clone();
                    let pci = u8::from(ap.ecn() != 0);
                    let rest = format!(
                        "\",\"{}\",{},{},{pci},1,3,0,1",
                        mac_text(&ap.bssid),
                        ap.channel,
                        ap.rssi
                    );
                    self.info_line(&[b"+CWJAP:\"", &ap.ssid, rest.as_bytes()]);
                }
                return Ok(Reply::Ok);
            }
            Form::Set(p) => {
                let args = Args::parse(p, 9)?;
                let ssid = args
                    .opt_str(0)?
                    .ok_or(AtError::new(ErrorKind::ParamInvalid, 1))?;
                let password = args.opt_str(1)?.unwrap_or_default();
                if ssid.len() > 32 {
                    return Err(AtError::new(ErrorKind::ParamLength, 1));
                }
                if password.len() > 64 {
                    return Err(AtError::new(ErrorKind::ParamLength, 2));
                }
                args.opt_str(2)?;
                for i in 3..args.len() {
                    args.opt_int(i, 0..=i64::from(u16::MAX))?;
                }
                (ssid.to_vec(), password.to_vec())
            }
            _ => {
                // Rejoin the stored AP.
                let ap = self.kept.stored_ap.ok_or(AtError::exec())?;
                let ap = self
                    .options
                    .wifi
                    .access_points
                    .get(ap)
                    .ok_or(AtError::exec())?;
                (ap.ssid.clone(), ap.password.clone())
            }
        };
        if !self.station_on() {
            return Err(AtError::exec());
        }
        let outcome = match self
            .options
            .wifi
            .access_points
            .iter()
            .position(|ap| ap.ssid == ssid)
        {
            // An AP taken away by a fault is not there to join.
            None => JoinOutcome::Failed(3),
            Some(ap) if self.ap_gone(ap) => JoinOutcome::Failed(3),
            Some(ap) if self.options.wifi.access_points[ap].password != password => {
                JoinOutcome::Failed(2)
            }
            Some(ap) => JoinOutcome::Joined(ap),
        };
        // Joining while associated leaves the old AP first.
        self.disconnect(Station::Joining);
        self.settings.last_ssid = ssid;
        Ok(Reply::Busy(Wait::Join {
            outcome,
            deadline: self.now.saturating_add(self.options.wifi.join_delay_ms),
        }))
    }

    /// The join's time is up: its answer.
    pub(super) fn join_done(&mut self, outcome: JoinOutcome) {
        self.input = Input::Line;
        match outcome {
            JoinOutcome::Joined(ap) => {
                self.settings.station = Station::Associated(ap);
                if self.settings.kept_numbers[KeptNumber::SysStore as usize] == 1 {
                    self.kept.stored_ap = Some(ap);
                }
                self.sockets_joined();
                self.out
                    .extend_from_slice(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n");
                self.ok();
            }
            JoinOutcome::Failed(code) => {
                self.settings.station = Station::Disconnected;
                self.out
                    .extend_from_slice(format!("+CWJAP:{code}\r\n").as_bytes());
                self.error(AtError::exec());
            }
        }
    }

    /// `AT+CWQAP`: `OK`, then `WIFI DISCONNECT` if it was associated.
    pub(super) fn cmd_cwqap(&mut self) -> Result<Reply, AtError> {
        self.ok();
        self.disconnect(Station::Disconnected);
        Ok(Reply::Done)
    }

    /// `AT+CWSTATE?`: `+CWSTATE:<state>,"<ssid>"`.
    pub(super) fn cmd_cwstate(&mut self) -> Result<Reply, AtError> {
        let state = match self.settings.station {
            Station::Idle => 0,
            Station::Associated(_) => 2,
            Station::Joining => 3,
            Station::Disconnected => 4,
        };
        let ssid = if state == 0 {
            Vec::new()
        } else {
            self.settings.last_ssid.clone()
        };
        self.info_line(&[format!("+CWSTATE:{state},\"").as_bytes(), &ssid, b"\""]);
        Ok(Reply::Ok)
    }

    /// `AT+CIPSTATUS`: `STATUS:<stat>` (esp-at-tcpip.md §3.10: 0 no
    /// station, 1 no join since reset, 2 associated, 5 a join that did not
    /// end associated), then one line per socket link: wsat has none yet.
    pub(super) fn cmd_cipstatus(&mut self) -> Result<Reply, AtError> {
        let stat = match (&self.settings.station, self.settings.cwmode) {
            (_, 0 | 2) => 0,
            (Station::Associated(_), _) => 2,
            (Station::Idle, _) => 1,
            (Station::Joining | Station::Disconnected, _) => 5,
        };
        let stat = match self.socket_status() {
            Some(socket_stat) if stat == 2 => socket_stat,
            _ => stat,
        };
        self.out
            .extend_from_slice(format!("STATUS:{stat}\r\n").as_bytes());
        self.socket_state_lines("CIPSTATUS");
        Ok(Reply::Ok)
    }

    /// `AT+CWLAPOPT=<sort>,<mask>[,<rssi filter>][,<authmode mask>]`.
    pub(super) fn cmd_cwlapopt(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let Form::Set(p) = form else {
            return Err(AtError::new(ErrorKind::OpError, 0));
        };
        let args = Args::parse(p, 4)?;
        let sort = args.int(0, 0..=1)? == 1;
        let mask = args.int(1, 0..=0x7FF)? as u16;
        let rssi = args.opt_int(2, -100..=40)?.unwrap_or(-100) as i8;
        let auth = args.opt_int(3, 0..=0xFFFF)?.unwrap_or(0xFFFF) as u16;
        self.settings.cwlap = ScanOptions {
            sort,
            mask,
            rssi,
            auth,
        };
        Ok(Reply::Ok)
    }

    /// `AT+CWLAP[=<ssid>[,<mac>][,<channel>]…]`: the visible APs, one
    /// `+CWLAP:(…)` line each with the fields `AT+CWLAPOPT` chose.
    pub(super) fn cmd_cwlap(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        let mut ssid_filter = None;
        let mut channel_filter = None;
        if let Form::Set(p) = form {
            let args = Args::parse(p, 7)?;
            ssid_filter = args.opt_str(0)?.map(<[u8]>::to_vec);
            args.opt_str(1)?;
            channel_filter = args.opt_int(2, 1..=14)?;
            for i in 3..args.len() {
                args.opt_int(i, 0..=i64::from(u16::MAX))?;
            }
        }
        if !self.station_on() {
            return Err(AtError::exec());
        }
        let opts = self.settings.cwlap;
        let mut aps: Vec<&AccessPoint> = self
            .options
            .wifi
            .access_points
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.ap_gone(*index))
            .map(|(_, ap)| ap)
            .filter(|ap| ssid_filter.as_ref().is_none_or(|s| *s == ap.ssid))
            .filter(|ap| channel_filter.is_none_or(|c| c == i64::from(ap.channel)))
            .filter(|ap| ap.rssi >= opts.rssi && opts.auth & (1 << ap.ecn()) != 0)
            .collect();
        if opts.sort {
            aps.sort_by_key(|ap| core::cmp::Reverse(ap.rssi));
        }
        let mut out = Vec::new();
        for ap in aps {
            out.extend_from_slice(b"+CWLAP:(");
            let cipher = if ap.ecn() == 0 { 0 } else { 4 };
            let fields: [(u16, Vec<u8>); 11] = [
                (1 << 0, format!("{}", ap.ecn()).into_bytes()),
                (1 << 1, [b"\"", &ap.ssid[..], b"\""].concat()),
                (1 << 2, format!("{}", ap.rssi).into_bytes()),
                (1 << 3, format!("\"{}\"", mac_text(&ap.bssid)).into_bytes()),
                (1 << 4, format!("{}", ap.channel).into_bytes()),
                (1 << 5, b"0".to_vec()),
                (1 << 6, b"0".to_vec()),
                (1 << 7, format!("{cipher}").into_bytes()),
                (1 << 8, format!("{cipher}").into_bytes()),
                (1 << 9, b"7".to_vec()),
                (1 << 10, b"0".to_vec()),
            ];
            let mut first = true;
            for (bit, text) in fields {
                if opts.mask & bit != 0 {
                    if !first {
                        out.push(b',');
                    }
                    out.extend_from_slice(&text);
                    first = false;
                }
            }
            out.extend_from_slice(b")\r\n");
        }
        self.out.extend_from_slice(&out);
        Ok(Reply::Ok)
    }

    /// `AT+CWDHCP?` → `+CWDHCP:<bits>` (no blank line), `=<op>,<mode>`.
    pub(super) fn cmd_cwdhcp(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => {
                let args = Args::parse(p, 2)?;
                let on = args.int(0, 0..=1)? == 1;
                let mode = args.int(1, 0..=7)? as u8;
                let dhcp = &mut self.settings.dhcp;
                *dhcp = if on { *dhcp | mode } else { *dhcp & !mode };
                Ok(Reply::Ok)
            }
            _ => {
                let line = format!("+CWDHCP:{}", self.settings.dhcp);
                self.info_line(&[line.as_bytes()]);
                self.out.extend_from_slice(&at::OK[2..]);
                Ok(Reply::Done)
            }
        }
    }

    /// `AT+CIPSTAMAC?` / `=<"mac">`.
    pub(super) fn cmd_cipstamac(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => {
                let args = Args::parse(p, 1)?;
                let mac = args.str(0)?;
                if !valid_mac(mac) {
                    return Err(AtError::new(ErrorKind::ParamInvalid, 1));
                }
                self.settings.station_mac = Some(mac.to_ascii_lowercase());
                Ok(Reply::Ok)
            }
            _ => {
                let mac = self.station_mac();
                self.info_line(&[b"+CIPSTAMAC:\"", &mac, b"\""]);
                Ok(Reply::Ok)
            }
        }
    }

    pub(super) fn station_mac(&self) -> Vec<u8> {
        self.settings
            .station_mac
            .clone()
            .unwrap_or_else(|| STATION_MAC.as_bytes().to_vec())
    }

    /// `AT+CWHOSTNAME?` → unquoted, `=<"name">` (≤ 32 bytes).
    pub(super) fn cmd_cwhostname(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        match form {
            Form::Set(p) => {
                let args = Args::parse(p, 1)?;
                let name = args.str(0)?;
                if name.is_empty() || name.len() > 32 {
                    return Err(AtError::new(ErrorKind::ParamInvalid, 1));
                }
                if !self.station_on() {
                    return Err(AtError::exec());
                }
                self.settings.hostname = name.to_vec();
                Ok(Reply::Ok)
            }
            _ => {
                let name = self.settings.hostname.clone();
                self.info_line(&[b"+CWHOSTNAME:", &name]);
                Ok(Reply::Ok)
            }
        }
    }
}

/// `xx:xx:xx:xx:xx:xx`, unicast (bit 0 of the first octet clear), not all
/// zeros or all ones.
fn valid_mac(mac: &[u8]) -> bool {
    let octet = |o: &[u8]| match o {
        [_, _] => u8::from_str_radix(core::str::from_utf8(o).ok()?, 16).ok(),
        _ => None,
    };
    let Some(bytes) = mac
        .split(|&b| b == b':')
        .map(octet)
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    bytes.len() == 6
        && bytes[0] & 1 == 0
        && !bytes.iter().all(|&b| b == 0)
        && !bytes.iter().all(|&b| b == 0xFF)
}

/// `AT+CWLAPOPT`'s settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ScanOptions {
    sort: bool,
    mask: u16,
    rssi: i8,
    auth: u16,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            sort: false,
            mask: 0x7FF,
            rssi: -100,
            auth: 0xFFFF,
        }
    }
}

// --- the softAP wsat pretends to have, and other settings (§2.14–2.16) ---

/// The softAP's MAC: the station's plus one, as on an ESP32.
const AP_MAC: &str = "24:0a:c4:00:00:02";

/// `AT+CWSAP`'s configuration (no station ever joins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SoftAp {
    ssid: Vec<u8>,
    password: Vec<u8>,
    channel: u8,
    ecn: u8,
    max_conn: u8,
    hidden: u8,
    ip: [Vec<u8>; 3],
    dhcps: (u16, Vec<u8>, Vec<u8>),
}

impl Default for SoftAp {
    fn default() -> Self {
        SoftAp {
            ssid: b"ESP_000002".to_vec(),
            password: Vec::new(),
            channel: 1,
            ecn: 0,
            max_conn: 10,
            hidden: 0,
            ip: [
                b"192.168.4.1".to_vec(),
                b"192.168.4.1".to_vec(),
                b"255.255.255.0".to_vec(),
            ],
            dhcps: (120, b"192.168.4.2".to_vec(), b"192.168.4.101".to_vec()),
        }
    }
}

/// `AT+CWCOUNTRY`'s settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Country {
    policy: u8,
    code: Vec<u8>,
    start: u8,
    count: u8,
}

impl Default for Country {
    fn default() -> Self {
        Country {
            policy: 0,
            code: b"CN".to_vec(),
            start: 1,
            count: 13,
        }
    }
}

/// The DNS servers `AT+CIPDNS` reports while they come from DHCP.
const DHCP_DNS: [&str; 3] = ["208.67.222.222", "114.114.114.114", "8.8.8.8"];

/// A dotted IPv4 address.
fn valid_ipv4(text: &[u8]) -> bool {
    core::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<core::net::Ipv4Addr>().ok())
        .is_some()
}

/// `"<ip>"[,"<gateway>","<netmask>"]`, as `AT+CIPSTA=` and `AT+CIPAP=` take it.
fn address_args(p: &[u8]) -> Result<[Vec<u8>; 3], AtError> {
    let args = Args::parse(p, 3)?;
    let mut fields: [Vec<u8>; 3] = Default::default();
    for (i, field) in fields.iter_mut().enumerate() {
        match args.opt_str(i)? {
            Some(text) if valid_ipv4(text) => *field = text.to_vec(),
            None if i > 0 => {}
            _ => return Err(AtError::new(ErrorKind::ParamInvalid, i as u16 + 1)),
        }
    }
    if fields[1].is_empty() != fields[2].is_empty() {
        return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
    }
    Ok(fields)
}

impl Modem {
    fn softap_on(&self) -> bool {
        matches!(self.settings.cwmode, 2 | 3)
    }

    /// Writes `+<name>:ip:"…"`, `gateway`, `netmask` lines.
    fn address_lines(&mut self, name: &str, fields: &[Vec<u8>; 3]) {
        for (label, value) in ["ip", "gateway", "netmask"].iter().zip(fields) {
            self.info_line(&[format!("+{name}:{label}:\"").as_bytes(), value, b"\""]);
        }
    }

    /// The station's ip, gateway and netmask: none while not associated,
    /// else the static ones set, else the machine's.
    fn station_address(&self) -> [Vec<u8>; 3] {
        match (&self.settings.static_ip, self.associated()) {
            (_, false) => core::array::from_fn(|_| b"0.0.0.0".to_vec()),
            (Some(fields), true) => fields.clone(),
            (None, true) => [
                STATION_IP.as_bytes().to_vec(),
                STATION_IP.as_bytes().to_vec(),
                b"255.0.0.0".to_vec(),
            ],
        }
    }

    /// `AT+CIPSTA?`: the station's address (0.0.0.0 while not associated,
    /// else the static one set, else the machine's); `=` sets a static one
    /// and turns the station's DHCP off.
    pub(super) fn cmd_cipsta(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let [ip, gateway, mask] = address_args(p)?;
            let gateway = if gateway.is_empty() {
                ip.clone()
            } else {
                gateway
            };
            let mask = if mask.is_empty() {
                b"255.255.255.0".to_vec()
            } else {
                mask
            };
            self.settings.static_ip = Some([ip, gateway, mask]);
            self.settings.dhcp &= !1;
            return Ok(Reply::Ok);
        }
        let fields = self.station_address();
        self.address_lines("CIPSTA", &fields);
        Ok(Reply::Ok)
    }

    /// `AT+CIFSR`: softAP lines, then station lines, for the modes on.
    pub(super) fn cmd_cifsr(&mut self) -> Result<Reply, AtError> {
        let mut lines: Vec<(&str, Vec<u8>)> = Vec::new();
        if self.softap_on() {
            lines.push(("APIP", self.settings.softap.ip[0].clone()));
            lines.push(("APMAC", AP_MAC.as_bytes().to_vec()));
        }
        if self.station_on() {
            let [ip, ..] = self.station_address();
            lines.push(("STAIP", ip));
            lines.push(("STAMAC", self.station_mac()));
        }
        for (label, value) in lines {
            self.info_line(&[format!("+CIFSR:{label},\"").as_bytes(), &value, b"\""]);
        }
        Ok(Reply::Ok)
    }

    /// `AT+CIPAPMAC?`; `=` is accepted and kept like the station's.
    pub(super) fn cmd_cipapmac(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let args = Args::parse(p, 1)?;
            if !valid_mac(args.str(0)?) {
                return Err(AtError::new(ErrorKind::ParamInvalid, 1));
            }
            return Ok(Reply::Ok);
        }
        self.info_line(&[format!("+CIPAPMAC:\"{AP_MAC}\"").as_bytes()]);
        Ok(Reply::Ok)
    }

    /// `AT+CWSAP?` / `=<"ssid">,<"pwd">,<chl>,<ecn>[,<max conn>][,<hidden>]`,
    /// softAP mode (2 or 3) only.
    pub(super) fn cmd_cwsap(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if !self.softap_on() {
            return Err(AtError::exec());
        }
        let Form::Set(p) = form else {
            let ap = self.settings.softap.clone();
            let rest = format!("\",{},{},{},{}", ap.channel, ap.ecn, ap.max_conn, ap.hidden);
            self.info_line(&[
                b"+CWSAP:\"",
                &ap.ssid,
                b"\",\"",
                &ap.password,
                rest.as_bytes(),
            ]);
            return Ok(Reply::Ok);
        };
        let args = Args::parse(p, 6)?;
        let ssid = args.str(0)?;
        let password = args.str(1)?;
        let channel = args.int(2, 1..=13)? as u8;
        let ecn = args.int(3, 0..=4)? as u8;
        let max_conn = args.opt_int(4, 1..=10)?.unwrap_or(10) as u8;
        let hidden = args.opt_int(5, 0..=1)?.unwrap_or(0) as u8;
        if ssid.is_empty() || ssid.len() > 32 {
            return Err(AtError::new(ErrorKind::ParamInvalid, 1));
        }
        // WEP is not supported; WPA needs 8 to 64 bytes.
        if ecn == 1 || (ecn != 0 && !(8..=64).contains(&password.len())) {
            return Err(AtError::new(ErrorKind::ParamInvalid, 4));
        }
        let ap = &mut self.settings.softap;
        ap.ssid = ssid.to_vec();
        ap.password = if ecn == 0 {
            Vec::new()
        } else {
            password.to_vec()
        };
        ap.channel = channel;
        ap.ecn = ecn;
        ap.max_conn = max_conn;
        ap.hidden = hidden;
        Ok(Reply::Ok)
    }

    /// `AT+CIPAP?` / `="<ip>"[,"<gw>","<mask>"]`.
    pub(super) fn cmd_cipap(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let [ip, gateway, mask] = address_args(p)?;
            let ap = &mut self.settings.softap;
            ap.ip[1] = if gateway.is_empty() {
                ip.clone()
            } else {
                gateway
            };
            if !mask.is_empty() {
                ap.ip[2] = mask;
            }
            ap.ip[0] = ip;
            return Ok(Reply::Ok);
        }
        let ip = self.settings.softap.ip.clone();
        self.address_lines("CIPAP", &ip);
        Ok(Reply::Ok)
    }

    /// `AT+CWDHCPS?` → `+CWDHCPS:<lease>,<start>,<end>` (no blank line);
    /// `=<enable>,<lease>,"<start>","<end>"`.
    pub(super) fn cmd_cwdhcps(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let args = Args::parse(p, 4)?;
            if args.int(0, 0..=1)? == 0 {
                self.settings.softap.dhcps = SoftAp::default().dhcps;
                return Ok(Reply::Ok);
            }
            let lease = args.int(1, 1..=2880)? as u16;
            let start = args.str(2)?;
            let end = args.str(3)?;
            if !valid_ipv4(start) || !valid_ipv4(end) {
                return Err(AtError::new(ErrorKind::ParamInvalid, 3));
            }
            self.settings.softap.dhcps = (lease, start.to_vec(), end.to_vec());
            return Ok(Reply::Ok);
        }
        let (lease, start, end) = self.settings.softap.dhcps.clone();
        self.info_line(&[format!("+CWDHCPS:{lease},").as_bytes(), &start, b",", &end]);
        self.out.extend_from_slice(&at::OK[2..]);
        Ok(Reply::Done)
    }

    /// `AT+CWCOUNTRY?` / `=<policy>,"<cc>",<start>,<count>`.
    pub(super) fn cmd_cwcountry(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let args = Args::parse(p, 4)?;
            let policy = args.int(0, 0..=1)? as u8;
            let code = args.str(1)?;
            let start = args.int(2, 1..=14)? as u8;
            let count = args.int(3, 1..=14)? as u8;
            if code.is_empty() || code.len() > 3 {
                return Err(AtError::new(ErrorKind::ParamInvalid, 2));
            }
            if u16::from(start) + u16::from(count) > 15 {
                return Err(AtError::new(ErrorKind::ParamInvalid, 4));
            }
            self.settings.country = Country {
                policy,
                code: code.to_vec(),
                start,
                count,
            };
            return Ok(Reply::Ok);
        }
        let c = self.settings.country.clone();
        self.info_line(&[
            format!("+CWCOUNTRY:{},\"", c.policy).as_bytes(),
            &c.code,
            format!("\",{},{}", c.start, c.count).as_bytes(),
        ]);
        Ok(Reply::Ok)
    }

    /// `AT+CIPDNS?` / `=<enable>[,"<dns1>"][,"<dns2>"][,"<dns3>"]`.
    pub(super) fn cmd_cipdns(&mut self, form: Form<'_>) -> Result<Reply, AtError> {
        if let Form::Set(p) = form {
            let args = Args::parse(p, 4)?;
            let manual = args.int(0, 0..=1)? == 1;
            let mut servers: Vec<Vec<u8>> = Vec::new();
            for i in 1..args.len() {
                if let Some(server) = args.opt_str(i)? {
                    if !valid_ipv4(server) || servers.iter().any(|s| s == server) {
                        return Err(AtError::new(ErrorKind::ParamInvalid, i as u16 + 1));
                    }
                    servers.push(server.to_vec());
                }
            }
            if manual && servers.is_empty() {
                return Err(AtError::new(ErrorKind::ParamCount, args.len() as u16));
            }
            self.settings.dns = manual.then_some(servers);
            return Ok(Reply::Ok);
        }
        let (enable, servers) = match &self.settings.dns {
            Some(servers) => (1, servers.clone()),
            None if !self.options.wifi.dhcp_dns.is_empty() => {
                let servers = self.options.wifi.dhcp_dns.iter();
                (0, servers.take(3).map(|s| s.as_bytes().to_vec()).collect())
            }
            None => (0, DHCP_DNS.iter().map(|s| s.as_bytes().to_vec()).collect()),
        };
        let mut line = format!("+CIPDNS:{enable}").into_bytes();
        for server in servers {
            line.extend_from_slice(&[b",\"", &server[..], b"\""].concat());
        }
        self.info_line(&[&line]);
        Ok(Reply::Ok)
    }
}
