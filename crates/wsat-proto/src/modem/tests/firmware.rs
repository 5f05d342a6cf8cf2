//! Each firmware profile's command set and limits, from one table of
//! expectations (`esp-at-behaviour.md`'s version table, `esp-at-tcpip.md` §5).
use alloc::format;
use alloc::string::String;

use super::*;
use crate::modem::Firmware;

fn rig(firmware: Firmware) -> Rig {
    let mut rig = Rig {
        sim: Sim::with_options(ModemOptions {
            firmware,
            ..ModemOptions::default()
        }),
    };
    assert_eq!(rig.output(), testing::BOOT);
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    rig
}

/// (release, AT version, WSHEAD, WSCFG auth, WSDATAFMT and <fin>, max
/// length, CIPRECVTYPE).
const EXPECTED: [(Firmware, &str, bool, bool, bool, usize, bool); 6] = [
    (Firmware::V3_2, "3.2.0.0", false, false, false, 8192, false),
    (Firmware::V3_3, "3.3.0.0", true, false, false, 8192, true),
    (Firmware::V4_0, "4.0.0.0", true, false, false, 8192, true),
    (Firmware::V4_1, "4.1.1.0", true, true, false, 8192, true),
    (Firmware::V5_0, "5.0.1.0", true, true, false, 8192, true),
    (
        Firmware::Master,
        "5.1.0.0-dev",
        true,
        true,
        true,
        16384,
        true,
    ),
];

fn answer(ok: bool) -> &'static [u8] {
    if ok {
        b"\r\nOK\r\n"
    } else {
        b"\r\nERROR\r\n"
    }
}

#[test]
fn each_release_has_its_commands_and_limits() {
    for (firmware, version, wshead, auth, fragments, max, recvtype) in EXPECTED {
        let name = firmware.name();
        let mut rig = rig(firmware);
        let gmr = String::from_utf8(rig.at("AT+GMR")).unwrap();
        assert!(
            gmr.starts_with(&format!("AT version:{version}(")),
            "{name}: {gmr}"
        );
        let table = String::from_utf8(rig.at("AT+CMD?")).unwrap();
        for (command, present) in [
            ("AT+WSHEAD", wshead),
            ("AT+WSDATAFMT", fragments),
            ("AT+CIPRECVTYPE", recvtype),
            ("AT+WSOPEN", true),
            ("AT+CIPSTART", true),
        ] {
            assert_eq!(
                table.contains(&format!("\"{command}\",")),
                present,
                "{name}: {command} in AT+CMD?"
            );
        }
        // AT+CMD? numbers the commands it lists without gaps.
        let count = table.matches("+CMD:").count();
        assert!(table.contains(&format!("+CMD:{},", count - 1)), "{name}");
        assert_eq!(rig.at("AT+WSHEAD=0"), answer(wshead), "{name}");
        assert_eq!(rig.at("AT+WSDATAFMT=0,1,63"), answer(fragments), "{name}");
        assert_eq!(rig.at("AT+CIPRECVTYPE=1"), answer(recvtype), "{name}");
        assert_eq!(
            rig.at("AT+WSCFG=0,10,120,1024,0,0,0"),
            answer(auth),
            "{name}"
        );
        assert_eq!(rig.at(&format!("AT+WSCFG=0,10,120,{max}")), answer(true));
        let over = format!("AT+WSCFG=0,10,120,{}", max + 1);
        assert_eq!(rig.at(&over), answer(false), "{name}");
        // AT+WSSEND's length and <fin>: checked before the link is.
        rig.open(0);
        let prompt = rig.at(&format!("AT+WSSEND=0,{max}"));
        assert_eq!(prompt, b"\r\nOK\r\n\r\n>", "{name}");
        rig.input(&vec![b'x'; max]);
        rig.sent_frames(0);
        rig.output();
        let over = format!("AT+WSSEND=0,{}", max + 1);
        assert_eq!(rig.at(&over), answer(false), "{name}");
        let with_fin = rig.at("AT+WSSEND=0,1,1,1000,1");
        let expected: &[u8] = if fragments {
            b"\r\nOK\r\n\r\n>"
        } else {
            b"\r\nERROR\r\n"
        };
        assert_eq!(with_fin, expected, "{name}");
    }
}
