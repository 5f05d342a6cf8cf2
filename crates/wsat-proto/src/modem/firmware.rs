//! Firmware profiles: which ESP-AT release the modem is, as one table.
//!
//! What changed between releases that a host driver can see, from
//! `esp-at-behaviour.md` and `esp-at-tcpip.md` §5: the WebSocket commands
//! and their ranges, and `AT+CIPRECVTYPE` (3.3+). Handlers ask the profile;
//! nothing else in the modem knows version numbers.

/// An ESP-AT release (`--firmware`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// v3.2.0.0: `AT+WSCFG`, `AT+WSOPEN`, `AT+WSSEND`, `AT+WSCLOSE`.
    V3_2,
    /// v3.3.0.0: adds `AT+WSHEAD` and `AT+CIPRECVTYPE`.
    V3_3,
    /// v4.0.0.0: as v3.3.
    V4_0,
    /// v4.1.1.0: `AT+WSCFG` takes `<auth_mode>,<pki>,<ca>`.
    V4_1,
    /// v5.0.1.0: as v4.1.
    V5_0,
    /// esp-at master (v5.1.0.0-dev): `AT+WSDATAFMT`, `AT+WSSEND`'s
    /// `<fin>`, 16384-byte lengths.
    #[default]
    Master,
}

/// What one release has.
#[derive(Debug)]
pub(super) struct Profile {
    pub firmware: Firmware,
    /// `--firmware`'s name for it.
    pub name: &'static str,
    /// `AT+GMR`'s `AT version:` and `Bin version:`.
    pub at_version: &'static str,
    pub bin_version: &'static str,
    pub wshead: bool,
    /// `AT+WSCFG`'s `<auth_mode>,<pki_number>,<ca_number>`.
    pub ws_auth: bool,
    /// `AT+WSDATAFMT`, and `AT+WSSEND`'s `<fin>`.
    pub ws_fragments: bool,
    /// Largest `AT+WSSEND` length and `AT+WSCFG` buffer_size.
    pub ws_max_len: i64,
    pub ciprecvtype: bool,
}

/// Every release, oldest first: the one table.
const PROFILES: [Profile; 6] = [
    Profile {
        firmware: Firmware::V3_2,
        name: "v3.2",
        at_version: "3.2.0.0",
        bin_version: "v3.2.0.0",
        wshead: false,
        ws_auth: false,
        ws_fragments: false,
        ws_max_len: 8192,
        ciprecvtype: false,
    },
    Profile {
        firmware: Firmware::V3_3,
        name: "v3.3",
        at_version: "3.3.0.0",
        bin_version: "v3.3.0.0",
        wshead: true,
        ws_auth: false,
        ws_fragments: false,
        ws_max_len: 8192,
        ciprecvtype: true,
    },
    Profile {
        firmware: Firmware::V4_0,
        name: "v4.0",
        at_version: "4.0.0.0",
        bin_version: "v4.0.0.0",
        wshead: true,
        ws_auth: false,
        ws_fragments: false,
        ws_max_len: 8192,
        ciprecvtype: true,
    },
    Profile {
        firmware: Firmware::V4_1,
        name: "v4.1",
        at_version: "4.1.1.0",
        bin_version: "v4.1.1.0",
        wshead: true,
        ws_auth: true,
        ws_fragments: false,
        ws_max_len: 8192,
        ciprecvtype: true,
    },
    Profile {
        firmware: Firmware::V5_0,
        name: "v5.0",
        at_version: "5.0.1.0",
        bin_version: "v5.0.1.0",
        wshead: true,
        ws_auth: true,
        ws_fragments: false,
        ws_max_len: 8192,
        ciprecvtype: true,
    },
    Profile {
        firmware: Firmware::Master,
        name: "master",
        at_version: "5.1.0.0-dev",
        bin_version: "v5.1.0.0-dev",
        wshead: true,
        ws_auth: true,
        ws_fragments: true,
        ws_max_len: 16384,
        ciprecvtype: true,
    },
];

impl Firmware {
    /// Every release, oldest first.
    pub const ALL: [Firmware; 6] = [
        Firmware::V3_2,
        Firmware::V3_3,
        Firmware::V4_0,
        Firmware::V4_1,
        Firmware::V5_0,
        Firmware::Master,
    ];

    /// The release named `name` (`v3.2` … `v5.0`, `master`).
    pub fn parse(name: &str) -> Option<Firmware> {
        PROFILES.iter().find(|p| p.name == name).map(|p| p.firmware)
    }

    /// Its name, as [`Firmware::parse`] takes it.
    pub fn name(self) -> &'static str {
        self.profile().name
    }

    pub(super) fn profile(self) -> &'static Profile {
        // PROFILES is in the order of the enum.
        &PROFILES[self as usize]
    }
}

impl Profile {
    /// Whether the release has the command `name` (after `AT`).
    pub fn has(&self, name: &str) -> bool {
        match name {
            "+WSHEAD" => self.wshead,
            "+WSDATAFMT" => self.ws_fragments,
            "+CIPRECVTYPE" => self.ciprecvtype,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_enum_order_and_names_round_trip() {
        for firmware in Firmware::ALL {
            assert_eq!(firmware.profile().firmware, firmware);
            assert_eq!(Firmware::parse(firmware.name()), Some(firmware));
        }
        assert_eq!(Firmware::parse("v9"), None);
        assert_eq!(Firmware::default(), Firmware::Master);
    }
}
