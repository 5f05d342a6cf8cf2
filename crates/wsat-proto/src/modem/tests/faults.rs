//! Faults on cue: what the host sees, byte for byte.
use alloc::vec;

use super::*;
use crate::modem::{Fault, FaultAnswer, ReportTime};

impl Rig {
    fn inject(&mut self, fault: Fault) -> Vec<u8> {
        self.sim.modem.inject(fault, self.sim.now);
        self.output()
    }
}

fn answer(prefix: &str, answer: FaultAnswer) -> Fault {
    Fault::Answer {
        prefix: prefix.as_bytes().to_vec(),
        answer,
    }
}

#[test]
fn an_armed_answer_replaces_the_next_matching_command_once() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.inject(answer("AT+CIPSTATE", FaultAnswer::Busy)), b"");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTATE?"), b"\r\nbusy p...\r\n");
    assert_eq!(rig.at("AT+CIPSTATE?"), b"\r\nOK\r\n");
    rig.inject(answer("AT", FaultAnswer::Error));
    assert_eq!(rig.at("AT+GMR"), b"\r\nERROR\r\n");
    rig.inject(answer("AT+CWJAP", FaultAnswer::ErrCode(0x0102_0003)));
    assert_eq!(rig.at("AT+CWJAP?"), b"ERR CODE:0x01020003\r\n\r\nERROR\r\n");
    // The command did not run: nothing else changed.
    assert!(rig.actions().is_empty());
}

#[test]
fn reports_now_after_the_next_ok_and_inside_an_echo() {
    let mut rig = Rig::new();
    let report = |when| Fault::Report {
        bytes: b"+WS_DISCONNECTED:0\r\n".to_vec(),
        when,
    };
    assert_eq!(rig.inject(report(ReportTime::AfterNextOk)), b"");
    assert_eq!(
        rig.input(b"AT+CWMODE?\r\n"),
        b"AT+CWMODE?\r\n+CWMODE:1\r\n\r\nOK\r\n+WS_DISCONNECTED:0\r\n"
    );
    assert_eq!(rig.inject(report(ReportTime::InNextEcho)), b"");
    assert_eq!(
        rig.input(b"AT\r\n"),
        b"A+WS_DISCONNECTED:0\r\nT\r\n\r\nOK\r\n"
    );
    // Now: held while a line is half typed, like any report.
    assert_eq!(rig.input(b"AT"), b"AT");
    assert_eq!(rig.inject(report(ReportTime::Now)), b"");
    assert_eq!(rig.input(b"\r\n"), b"\r\n\r\nOK\r\n+WS_DISCONNECTED:0\r\n");
}

#[test]
fn a_reboot_drops_links_and_says_ready() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(rig.inject(Fault::Reboot), b"");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    // Input while it restarts is lost.
    assert_eq!(rig.input(b"AT\r\n"), b"");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 1000), testing::BOOT);
    assert_eq!(rig.at("AT+WSOPEN?"), b"AT+WSOPEN?\r\n\r\nOK\r\n");
}

#[test]
fn deep_sleep_is_a_reboot_after_its_time_or_after_a_hard_reset() {
    let mut rig = Rig::quiet();
    rig.open(0);
    // The time, OK, then asleep: links gone, input lost; waking is a boot.
    assert_eq!(rig.at("AT+GSLP=1000"), b"1000\r\n\r\nOK\r\n");
    assert_eq!(rig.actions(), vec![NetAction::Close { link: Link::Ws(0) }]);
    assert_eq!(rig.input(b"AT\r\n"), b"");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 1499), b"");
    assert_eq!(rig.advance_to(start + 2000), testing::BOOT);
    assert_eq!(rig.at("AT+WSOPEN?"), b"AT+WSOPEN?\r\n\r\nOK\r\n");
    // The reset pin (a reboot fault) cuts a sleep short; after 0 nothing
    // else wakes the module.
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+GSLP=60000"), b"60000\r\n\r\nOK\r\n");
    assert_eq!(rig.inject(Fault::Reboot), b"");
    assert_eq!(rig.advance_to(rig.sim.now + 1000), testing::BOOT);
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+GSLP=0"), b"0\r\n\r\nOK\r\n");
    assert_eq!(rig.advance_to(rig.sim.now + 86_400_000), b"");
    assert_eq!(rig.input(b"AT\r\n"), b"");
    assert_eq!(rig.inject(Fault::Reboot), b"");
    assert_eq!(rig.advance_to(rig.sim.now + 1000), testing::BOOT);
    for bad in [
        "AT+GSLP",
        "AT+GSLP?",
        "AT+GSLP=-1",
        "AT+GSLP=2147483648",
        "AT+GSLP=1,2",
    ] {
        assert_eq!(
            rig.at(bad),
            [bad.as_bytes(), b"\r\n\r\nERROR\r\n"].concat(),
            "{bad}"
        );
    }
}

#[test]
fn the_ap_goes_away_and_comes_back() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nOK\r\n");
    rig.open(1);
    assert_eq!(rig.at("AT+CIPSTART=2,\"TCP\",\"192.0.2.7\",80"), b"");
    rig.actions();
    let up = NetEvent::Connected {
        local: SIM_LOCAL,
        remote: SocketAddr::new(SIM_PEER_IP, 80),
    };
    rig.sim.net_event(Link::Socket(2), up);
    assert_eq!(rig.output(), b"2,CONNECT\r\n\r\nOK\r\n");
    assert_eq!(
        rig.inject(Fault::ApLost),
        b"WIFI DISCONNECT\r\n2,CLOSED\r\n+WS_DISCONNECTED:1\r\n"
    );
    assert_eq!(rig.at("AT+CWSTATE?"), b"+CWSTATE:4,\"wsat\"\r\n\r\nOK\r\n");
    // Gone from scans and joins; reconnects fail without trying.
    assert_eq!(rig.at("AT+CWLAP"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CWJAP=\"wsat\",\"\""), b"");
    let now = rig.sim.now;
    assert_eq!(rig.advance_to(now + 500), b"+CWJAP:3\r\n\r\nERROR\r\n");
    rig.actions();
    let now = rig.sim.now;
    assert_eq!(rig.advance_to(now + 10_000), b"+WS_DISCONNECTED:1\r\n");
    assert!(
        !rig.actions()
            .iter()
            .any(|a| matches!(a, NetAction::Connect { .. })),
        "a reconnect without an AP"
    );
    assert_eq!(
        rig.at("AT+CIPSTART=2,\"TCP\",\"192.0.2.7\",80"),
        b"\r\nERROR\r\n"
    );
    // Back: the station rejoins, and the next reconnect goes out.
    assert_eq!(
        rig.inject(Fault::ApBack),
        b"WIFI CONNECTED\r\nWIFI GOT IP\r\n"
    );
    let now = rig.sim.now;
    rig.advance_to(now + 10_000);
    assert!(rig.actions().iter().any(|a| matches!(
        a,
        NetAction::Connect {
            link: Link::Ws(1),
            ..
        }
    )));
}

#[test]
fn leaving_the_ap_loses_websocket_links_too() {
    let mut rig = Rig::quiet();
    rig.open(0);
    assert_eq!(
        rig.at("AT+CWQAP"),
        b"\r\nOK\r\nWIFI DISCONNECT\r\n+WS_DISCONNECTED:0\r\n"
    );
}
