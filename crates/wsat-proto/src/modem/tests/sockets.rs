//! Socket links (`esp-at-tcpip.md` §3), byte for byte, on the simulator.
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 8080);
const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 50210);

fn up(remote: SocketAddr) -> NetEvent<'static> {
    NetEvent::Connected {
        local: LOCAL,
        remote,
    }
}

impl Rig {
    fn socket_event(&mut self, id: LinkId, event: NetEvent<'_>) -> Vec<u8> {
        self.sim.net_event(Link::Socket(id), event);
        self.output()
    }

    /// `AT+CIPSTART` of `args` (after `=`), answered by a connect to `PEER`.
    fn cipstart(&mut self, args: &str) -> Vec<u8> {
        assert_eq!(self.at(&format!("AT+CIPSTART={args}")), b"");
        let actions = self.actions();
        let [NetAction::Connect { link, .. }] = &actions[..] else {
            panic!("{actions:?}");
        };
        let Link::Socket(id) = *link else {
            panic!("{link:?}");
        };
        self.socket_event(id, up(PEER))
    }

    /// A TCP link `id` up in multi-connection mode.
    fn tcp_link(&mut self, id: LinkId) {
        let out = self.cipstart(&format!("{id},\"TCP\",\"192.0.2.7\",8080"));
        assert_eq!(out, format!("{id},CONNECT\r\n\r\nOK\r\n").as_bytes());
    }

    /// The only action since the last look is a `Send` of `bytes` on socket
    /// link `id`.
    fn assert_sent(&mut self, id: LinkId, bytes: &[u8]) {
        assert_eq!(
            self.actions(),
            vec![NetAction::Send {
                link: Link::Socket(id),
                bytes: bytes.to_vec()
            }]
        );
    }

    /// `AT+CIPSEND` whose data the runtime writes at once: the whole answer.
    fn cipsend(&mut self, command: &str, data: &[u8]) -> (Vec<u8>, Vec<NetAction>) {
        assert_eq!(self.at(command), b"\r\nOK\r\n\r\n>", "{command}");
        let mut out = self.input(data);
        let actions = self.actions();
        for action in &actions {
            if let NetAction::Send { link, .. } | NetAction::SendTo { link, .. } = action {
                self.sim.net_event(*link, NetEvent::Sent);
            }
        }
        out.extend(self.output());
        (out, actions)
    }
}

fn mux() -> Rig {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nOK\r\n");
    rig
}

#[test]
fn cipmux_and_its_refusals() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPMUX?"), b"+CIPMUX:0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMUX=2"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMUX?"), b"+CIPMUX:1\r\n\r\nOK\r\n");
    rig.tcp_link(0);
    // "connection exists".
    assert_eq!(rig.at("AT+CIPMUX=0"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPCLOSE=0"), b"0,CLOSED\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMUX=0"), b"\r\nOK\r\n");
    // "IPMODE != 0".
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nERROR\r\n");
}

#[test]
fn ipv6_types_need_cipv6_first() {
    let mut rig = mux();
    for line in [
        "AT+CIPSTART=0,\"TCPv6\",\"::1\",80",
        "AT+CIPSTART=0,\"UDPv6\",\"::1\",80",
        "AT+CIPSTART=0,\"SSLv6\",\"::1\",443",
    ] {
        assert_eq!(rig.at(line), b"\r\nERROR\r\n", "{line}");
    }
    assert!(rig.actions().is_empty());
    assert_eq!(rig.at("AT+CIPV6=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTART=0,\"TCPv6\",\"::1\",80"), b"");
    assert!(matches!(
        &rig.actions()[..],
        [NetAction::Connect { link: Link::Socket(0), host, port: 80, transport: Transport::Tcp, .. }]
            if host == "::1"
    ));
}

#[test]
fn cipstart_single_connection_reports_connect_before_ok() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPSTART=\"TCP\",\"example.com\",80,7200"), b"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Connect {
            link: Link::Socket(0),
            host: "example.com".into(),
            port: 80,
            transport: Transport::Tcp,
            keep_alive_s: 7200,
        }]
    );
    // Input while it connects gets busy p...
    assert_eq!(rig.at("AT"), b"\r\nbusy p...\r\n");
    assert_eq!(rig.socket_event(0, up(PEER)), b"CONNECT\r\n\r\nOK\r\n");
    // In use: "ALREADY CONNECTED" goes to the log only.
    assert_eq!(
        rig.at("AT+CIPSTART=\"TCP\",\"example.com\",80"),
        b"\r\nERROR\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSTATE?"),
        b"+CIPSTATE:0,\"TCP\",\"192.0.2.7\",8080,50210,0\r\n\r\nOK\r\n"
    );
}

#[test]
fn cipstart_multi_connection_and_link_conn() {
    let mut rig = mux();
    rig.tcp_link(3);
    assert_eq!(rig.at("AT+SYSMSG=2"), b"\r\nOK\r\n");
    let out = rig.cipstart("1,\"UDP\",\"192.0.2.7\",8080,1234,0");
    assert_eq!(
        out,
        b"+LINK_CONN:0,1,\"UDP\",0,\"192.0.2.7\",8080,50210\r\n\r\nOK\r\n"
    );
    // lwesp's UDP form: no local port, a mode.
    let out = rig.cipstart("2,\"UDP\",\"192.0.2.7\",8080,,2");
    assert_eq!(
        out,
        b"+LINK_CONN:0,2,\"UDP\",0,\"192.0.2.7\",8080,50210\r\n\r\nOK\r\n"
    );
    // Lowest free id for CIPSTARTEX, the type in any case.
    assert_eq!(rig.at("AT+CIPSTARTEX=\"ssl\",\"192.0.2.7\",443"), b"");
    let actions = rig.actions();
    let [NetAction::Connect {
        link: Link::Socket(0),
        transport: Transport::Tls(_),
        ..
    }] = &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(
        rig.socket_event(0, up(PEER)),
        b"+LINK_CONN:0,0,\"SSL\",0,\"192.0.2.7\",8080,50210\r\n\r\nOK\r\n"
    );
}

#[test]
fn cipstart_failures_print_error_and_nothing_else() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPSTART=0,\"TCP\",\"127.0.0.1\",1"), b"");
    rig.actions();
    let failed = NetEvent::Failed("refused".into());
    assert_eq!(rig.socket_event(0, failed), b"\r\nERROR\r\n");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Close {
            link: Link::Socket(0)
        }]
    );
    // No answer at all: the 5 s cap.
    assert_eq!(rig.at("AT+CIPSTART=0,\"TCP\",\"192.0.2.1\",80"), b"");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 4_999), b"");
    assert_eq!(rig.advance_to(start + 5_000), b"\r\nERROR\r\n");
    // With <timeout> (ms).
    assert_eq!(
        rig.at("AT+CIPSTART=0,\"TCP\",\"192.0.2.1\",80,0,\"\",200"),
        b""
    );
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 200), b"\r\nERROR\r\n");
    // A late connect for the given-up link changes nothing.
    assert_eq!(rig.socket_event(0, up(PEER)), b"");
    assert_eq!(rig.at("AT+CIPSTATE?"), b"\r\nOK\r\n");
    rig.actions();
    for bad in [
        "AT+CIPSTART=5,\"TCP\",\"h\",80",
        "AT+CIPSTART=0,\"TCP\",\"h\",0",
        "AT+CIPSTART=0,\"TCP\",\"h\",65536",
        "AT+CIPSTART=0,\"FTP\",\"h\",80",
        "AT+CIPSTART=0,\"TCP\",\"\",80",
        "AT+CIPSTART=0,\"TCP\",\"h\",80,7201",
        "AT+CIPSTART=0,\"TCP\",\"h\",80,0,\"not an ip\"",
        "AT+CIPSTART=0,\"TCP\",\"h\",80,0,\"\",60001",
        "AT+CIPSTART=0,\"UDP\",\"h\",80,1,3",
        // The single-connection form in multi-connection mode.
        "AT+CIPSTART=\"TCP\",\"h\",80",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    let long = format!("AT+CIPSTART=0,\"TCP\",\"{}\",80", "h".repeat(65));
    assert_eq!(rig.at(&long), b"\r\nERROR\r\n");
    assert!(rig.actions().is_empty());
}

#[test]
fn network_commands_need_the_station_associated() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CWQAP"), b"\r\nOK\r\nWIFI DISCONNECT\r\n");
    for command in [
        "AT+CIPSTART=\"TCP\",\"192.0.2.7\",80",
        "AT+CIPDOMAIN=\"example.com\"",
        "AT+PING=\"192.0.2.7\"",
    ] {
        assert_eq!(rig.at(command), b"\r\nERROR\r\n", "{command}");
    }
    assert!(rig.actions().is_empty());
}

#[test]
fn leaving_the_ap_closes_every_link() {
    let mut rig = mux();
    rig.tcp_link(0);
    rig.tcp_link(2);
    assert_eq!(
        rig.at("AT+CWQAP"),
        b"\r\nOK\r\nWIFI DISCONNECT\r\n0,CLOSED\r\n2,CLOSED\r\n"
    );
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:5\r\n\r\nOK\r\n");
}

#[test]
fn cipsend_prompt_recv_and_send_ok() {
    let mut rig = Rig::quiet();
    let out = rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(out, b"CONNECT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSEND=5"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"hello"), b"\r\nRecv 5 bytes\r\n");
    rig.assert_sent(0, b"hello");
    // Input waits for the send, and reports are held until its result.
    rig.type_ahead(b"AT\r\n");
    assert_eq!(rig.socket_event(0, NetEvent::Received(b"hi")), b"");
    assert_eq!(
        rig.socket_event(0, NetEvent::Sent),
        b"\r\nSEND OK\r\n\r\n+IPD,2:hi\r\n\r\nOK\r\n"
    );
}

#[test]
fn cipsend_refusals_and_failures() {
    let mut rig = mux();
    for bad in [
        "AT+CIPSEND=0,5",
        "AT+CIPSEND=5,5",
        "AT+CIPSEND=9,1",
        "AT+CIPSEND=5",
        "AT+CIPSEND",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    rig.tcp_link(0);
    for bad in [
        "AT+CIPSEND=0,0",
        "AT+CIPSEND=0,8193",
        // A remote host is for UDP only.
        "AT+CIPSEND=0,1,\"192.0.2.7\",80",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
    let (out, _) = rig.cipsend("AT+CIPSEND=0,8192", &[7; 8192]);
    assert_eq!(out, b"\r\nRecv 8192 bytes\r\n\r\nSEND OK\r\n");
    // The peer closes while the host types: the data is taken, SEND FAIL.
    assert_eq!(rig.at("AT+CIPSEND=0,4"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"ab"), b"");
    assert_eq!(rig.socket_event(0, NetEvent::Closed), b"");
    assert_eq!(
        rig.input(b"cd"),
        b"\r\nRecv 4 bytes\r\n\r\nSEND FAIL\r\n0,CLOSED\r\n"
    );
    // The modem lets go of the connection its peer closed.
    assert!(rig.actions().contains(&NetAction::Close {
        link: Link::Socket(0)
    }));
    // Closed during the send.
    rig.tcp_link(1);
    assert_eq!(rig.at("AT+CIPSEND=1,1"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"x"), b"\r\nRecv 1 bytes\r\n");
    assert_eq!(
        rig.socket_event(1, NetEvent::Closed),
        b"\r\nSEND FAIL\r\n1,CLOSED\r\n"
    );
    rig.actions();
    // Never written: SEND FAIL after 10 s, the link stays.
    rig.tcp_link(1);
    assert_eq!(rig.at("AT+CIPSEND=1,1"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"x"), b"\r\nRecv 1 bytes\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 9_999), b"");
    assert_eq!(rig.advance_to(start + 10_000), b"\r\nSEND FAIL\r\n");
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
}

#[test]
fn cipsendex_ends_at_backslash_zero_and_unescapes() {
    let mut rig = mux();
    rig.tcp_link(0);
    assert_eq!(rig.at("AT+CIPSENDEX=0,100"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"a\\\\b\\,c\\0"), b"\r\nRecv 5 bytes\r\n");
    rig.assert_sent(0, b"a\\b,c");
    assert_eq!(rig.socket_event(0, NetEvent::Sent), b"\r\nSEND OK\r\n");
    // Or at <length> raw bytes, escapes counting two.
    assert_eq!(rig.at("AT+CIPSENDEX=0,4"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"\\\\xy"), b"\r\nRecv 3 bytes\r\n");
    rig.assert_sent(0, b"\\xy");
}

#[test]
fn ipd_in_every_form() {
    let mut rig = Rig::quiet();
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"test")),
        b"\r\n+IPD,4:test\r\n"
    );
    assert_eq!(rig.at("AT+CIPDINFO?"), b"+CIPDINFO:false\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPDINFO=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPDINFO?"), b"+CIPDINFO:true\r\nOK\r\n");
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"x")),
        b"\r\n+IPD,1,\"192.0.2.7\",8080:x\r\n"
    );
    assert_eq!(rig.at("AT+CIPCLOSE"), b"CLOSED\r\n\r\nOK\r\n");
    rig.actions();
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nOK\r\n");
    rig.tcp_link(4);
    assert_eq!(
        rig.socket_event(4, NetEvent::Received(b"x")),
        b"\r\n+IPD,4,1,\"192.0.2.7\",8080:x\r\n"
    );
    assert_eq!(rig.at("AT+CIPDINFO=0"), b"\r\nOK\r\n");
    // A large read becomes reports of 2920 bytes at most.
    let data: Vec<u8> = (0..7000u32).map(|i| i as u8).collect();
    let out = rig.socket_event(4, NetEvent::Received(&data));
    let mut expected = Vec::new();
    for piece in data.chunks(2920) {
        expected.extend_from_slice(format!("\r\n+IPD,4,{}:", piece.len()).as_bytes());
        expected.extend_from_slice(piece);
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(out, expected);
    // The peer closes.
    assert_eq!(rig.socket_event(4, NetEvent::Closed), b"4,CLOSED\r\n");
}

#[test]
fn ipd_waits_for_a_half_typed_line() {
    let mut rig = mux();
    rig.tcp_link(0);
    assert_eq!(rig.at("ATE1"), b"\r\nOK\r\n");
    assert_eq!(rig.input(b"AT+GM"), b"AT+GM");
    assert_eq!(rig.socket_event(0, NetEvent::Received(b"x")), b"");
    assert_eq!(rig.input(b"X\r\n"), b"X\r\n\r\nERROR\r\n\r\n+IPD,0,1:x\r\n");
}

#[test]
fn passive_receive_notifies_once_and_reads_in_parts() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPRECVTYPE=0,1"), b"\r\nOK\r\n");
    rig.tcp_link(0);
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"hello")),
        b"\r\n+IPD,0,5\r\n"
    );
    // One notice until the host reads.
    assert_eq!(rig.socket_event(0, NetEvent::Received(b" world")), b"");
    assert_eq!(
        rig.at("AT+CIPRECVLEN?"),
        b"+CIPRECVLEN:11,-1,-1,-1,-1\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPRECVDATA=0,4"),
        b"+CIPRECVDATA:4,hell\r\nOK\r\n\r\n+IPD,0,7\r\n"
    );
    assert_eq!(rig.at("AT+CIPDINFO=1"), b"\r\nOK\r\n");
    // Longer than what is buffered: what is buffered.
    assert_eq!(
        rig.at("AT+CIPRECVDATA=0,100"),
        b"+CIPRECVDATA:7,\"192.0.2.7\",8080,o world\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPRECVDATA=0,100"), b"\r\nERROR\r\n");
    // Not in passive mode, or not a link.
    assert_eq!(rig.at("AT+CIPRECVDATA=1,100"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPRECVDATA=5,100"), b"\r\nERROR\r\n");
    assert_eq!(
        rig.at("AT+CIPRECVTYPE?"),
        b"+CIPRECVTYPE:0,1,0\r\n+CIPRECVTYPE:1,0,0\r\n+CIPRECVTYPE:2,0,0\r\n\
          +CIPRECVTYPE:3,0,0\r\n+CIPRECVTYPE:4,0,0\r\n\r\nOK\r\n"
    );
}

#[test]
fn passive_buffer_bounds_reads_and_closed_waits_for_the_data() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPRECVMODE=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPRECVMODE?"), b"+CIPRECVMODE:1\r\n\r\nOK\r\n");
    rig.tcp_link(2);
    let link = Link::Socket(2);
    assert_eq!(rig.sim.modem.net_input_room(link), 5760);
    // The simulated server sends more than the window: only what fits is read.
    rig.sim.server_send(link, &[b'a'; 10_000]);
    assert_eq!(rig.output(), b"\r\n+IPD,2,5760\r\n");
    assert_eq!(rig.sim.modem.net_input_room(link), 0);
    assert_eq!(rig.sim.network.received_total, 5760);
    rig.sim.server_eof(link);
    let out = rig.at("AT+CIPRECVDATA=2,5000");
    assert!(out.ends_with(b"\r\nOK\r\n\r\n+IPD,2,760\r\n"), "{out:?}");
    // The rest came in behind it; the EOF waits behind the data.
    // The rest comes in behind it (no second notice: one is out); the
    // EOF waits behind the data.
    assert_eq!(rig.sim.network.received_total, 10_000);
    let out = rig.at("AT+CIPRECVDATA=2,5000");
    assert!(out.starts_with(b"+CIPRECVDATA:5000,"));
    assert!(out.ends_with(b"\r\nOK\r\n2,CLOSED\r\n"));
    assert_eq!(rig.sim.network.received_total, 10_000);
    assert_eq!(
        rig.at("AT+CIPRECVLEN?"),
        b"+CIPRECVLEN:-1,-1,-1,-1,-1\r\n\r\nOK\r\n"
    );
}

#[test]
fn switching_to_active_hands_over_the_buffer() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPRECVTYPE=1"), b"\r\nOK\r\n");
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"abc")),
        b"\r\n+IPD,3\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPRECVTYPE?"),
        b"+CIPRECVTYPE:0,1,0\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPRECVTYPE=0"), b"\r\nOK\r\n\r\n+IPD,3:abc\r\n");
}

#[test]
fn udp_peers_and_modes() {
    let mut rig = mux();
    let other = SocketAddr::new(PEER.ip(), 9999);
    let out = rig.cipstart("0,\"UDP\",\"192.0.2.7\",8080,1234,0");
    assert_eq!(out, b"0,CONNECT\r\n\r\nOK\r\n");
    let (out, actions) = rig.cipsend("AT+CIPSEND=0,2", b"hi");
    assert_eq!(out, b"\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n");
    assert_eq!(
        actions,
        vec![NetAction::SendTo {
            link: Link::Socket(0),
            to: PEER,
            bytes: b"hi".to_vec()
        }]
    );
    let (_, actions) = rig.cipsend("AT+CIPSEND=0,1,\"192.0.2.7\",9999", b"x");
    assert!(matches!(&actions[..], [NetAction::SendTo { to, .. }] if *to == other));
    // Mode 0: only the peer's datagrams count.
    let from_other = NetEvent::Datagram {
        from: other,
        bytes: b"no",
    };
    assert_eq!(rig.socket_event(0, from_other), b"");
    let from_peer = NetEvent::Datagram {
        from: PEER,
        bytes: b"yes",
    };
    assert_eq!(rig.socket_event(0, from_peer), b"\r\n+IPD,0,3:yes\r\n");
    // Mode 2 with no peer: it follows every sender.
    assert_eq!(
        rig.at("AT+CIPSTART=1,\"UDP\",\"0.0.0.0\",65535,2000,2"),
        b""
    );
    rig.actions();
    let nobody = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 65535);
    assert_eq!(rig.socket_event(1, up(nobody)), b"1,CONNECT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSEND=1,1"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPDINFO=1"), b"\r\nOK\r\n");
    let from_other = NetEvent::Datagram {
        from: other,
        bytes: b"a",
    };
    assert_eq!(
        rig.socket_event(1, from_other),
        b"\r\n+IPD,1,1,\"192.0.2.7\",9999:a\r\n"
    );
    let (_, actions) = rig.cipsend("AT+CIPSEND=1,1", b"b");
    assert!(matches!(&actions[..], [NetAction::SendTo { to, .. }] if *to == other));
    assert_eq!(
        rig.at("AT+CIPSTATE?"),
        b"+CIPSTATE:0,\"UDP\",\"192.0.2.7\",8080,50210,0\r\n\
          +CIPSTATE:1,\"UDP\",\"0.0.0.0\",65535,50210,0\r\n\r\nOK\r\n"
    );
}

#[test]
fn passive_udp_drops_what_does_not_fit() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPRECVTYPE=0,1,1"), b"\r\nOK\r\n");
    rig.cipstart("0,\"UDP\",\"192.0.2.7\",8080");
    let datagram = |bytes| NetEvent::Datagram { from: PEER, bytes };
    assert_eq!(
        rig.socket_event(0, datagram(&[1; 3000])),
        b"\r\n+IPD,0,3000\r\n"
    );
    assert_eq!(rig.socket_event(0, datagram(&[2; 2000])), b"");
    // 5000 buffered: a 1000-byte datagram does not fit.
    assert_eq!(rig.socket_event(0, datagram(&[3; 1000])), b"");
    assert_eq!(
        rig.at("AT+CIPRECVLEN?"),
        b"+CIPRECVLEN:5000,-1,-1,-1,-1\r\n\r\nOK\r\n"
    );
    // One datagram per read; report mode 1 announces the next one's size.
    let out = rig.at("AT+CIPRECVDATA=0,8192");
    assert!(out.starts_with(b"+CIPRECVDATA:3000,"), "{out:?}");
    assert!(out.ends_with(b"\r\nOK\r\n\r\n+IPD,0,2000\r\n"));
}

#[test]
fn cipclose_forms() {
    let mut rig = mux();
    rig.tcp_link(1);
    rig.tcp_link(3);
    // Closing a link that is not connected is OK without CLOSED.
    assert_eq!(rig.at("AT+CIPCLOSE=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPCLOSE"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPCLOSE=6"), b"\r\nERROR\r\n");
    assert_eq!(
        rig.at("AT+CIPCLOSE=5"),
        b"1,CLOSED\r\n3,CLOSED\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.actions(),
        vec![
            NetAction::Close {
                link: Link::Socket(1)
            },
            NetAction::Close {
                link: Link::Socket(3)
            }
        ]
    );
    assert_eq!(rig.at("AT+CIPMUX=0"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPCLOSE=0"), b"\r\nERROR\r\n");
}

#[test]
fn cipstatus_counts_links() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:2\r\n\r\nOK\r\n");
    rig.tcp_link(0);
    assert_eq!(
        rig.at("AT+CIPSTATUS"),
        b"STATUS:3\r\n+CIPSTATUS:0,\"TCP\",\"192.0.2.7\",8080,50210,0\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.socket_event(0, NetEvent::Closed), b"0,CLOSED\r\n");
    assert_eq!(rig.at("AT+CIPSTATUS"), b"STATUS:4\r\n\r\nOK\r\n");
}

#[test]
fn five_links_and_a_sixth() {
    let mut rig = mux();
    for id in 0..5 {
        rig.tcp_link(id);
    }
    assert_eq!(
        rig.at("AT+CIPSTARTEX=\"TCP\",\"192.0.2.7\",80"),
        b"\r\nERROR\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSTART=5,\"TCP\",\"192.0.2.7\",80"),
        b"\r\nERROR\r\n"
    );
    assert!(rig.actions().is_empty());
}

#[test]
fn server_listens_accepts_and_stops() {
    let mut rig = Rig::quiet();
    // Multi-connection mode only.
    assert_eq!(rig.at("AT+CIPSERVER=1,80"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPMUX=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSERVER?"), b"+CIPSERVER:0\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSERVERMAXCONN?"),
        b"+CIPSERVERMAXCONN:5\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPSERVERMAXCONN=2"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSERVER=1,8080"), b"");
    assert_eq!(rig.actions(), vec![NetAction::Listen { port: 8080 }]);
    assert_eq!(rig.at("AT"), b"\r\nbusy p...\r\n");
    rig.sim.net_answer(NetAnswer::Listening(true));
    assert_eq!(rig.output(), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSERVER?"),
        b"+CIPSERVER:1,8080,\"TCP\",0,0\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPSERVER=1,8081"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSERVERMAXCONN=3"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPMUX=0"), b"\r\nERROR\r\n");
    let client = SocketAddr::new(PEER.ip(), 40000);
    assert_eq!(rig.sim.accept(client), Some(Link::Socket(0)));
    assert_eq!(rig.output(), b"0,CONNECT\r\n");
    assert_eq!(rig.at("AT+SYSMSG=2"), b"\r\nOK\r\n");
    assert_eq!(rig.sim.accept(client), Some(Link::Socket(1)));
    assert_eq!(
        rig.output(),
        b"+LINK_CONN:0,1,\"TCP\",1,\"192.0.2.7\",40000,49152\r\n"
    );
    // MAXCONN 2: the third is refused.
    assert_eq!(rig.sim.accept(client), None);
    assert_eq!(
        rig.at("AT+CIPSTATE?"),
        b"+CIPSTATE:0,\"TCP\",\"192.0.2.7\",40000,49152,1\r\n\
          +CIPSTATE:1,\"TCP\",\"192.0.2.7\",40000,49152,1\r\n\r\nOK\r\n"
    );
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"GET")),
        b"\r\n+IPD,0,3:GET\r\n"
    );
    assert_eq!(
        rig.at("AT+CIPSERVER=0,1"),
        b"0,CLOSED\r\n1,CLOSED\r\n\r\nOK\r\n"
    );
    let actions = rig.actions();
    assert_eq!(actions[0], NetAction::StopListening);
    assert_eq!(rig.sim.accept(client), None);
    assert_eq!(rig.at("AT+CIPSERVER=0"), b"\r\nERROR\r\n");
    // A port the runtime cannot listen on.
    assert_eq!(rig.at("AT+CIPSERVER=1"), b"");
    assert_eq!(rig.actions(), vec![NetAction::Listen { port: 333 }]);
    rig.sim.net_answer(NetAnswer::Listening(false));
    assert_eq!(rig.output(), b"\r\nERROR\r\n");
    // An SSL server needs a server certificate: refused.
    assert_eq!(rig.at("AT+CIPSERVER=1,443,\"SSL\",0"), b"\r\nERROR\r\n");
}

#[test]
fn cipsto_closes_idle_server_links() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPSTO?"), b"+CIPSTO:180\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTO=7201"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSTO=2"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSERVER=1,8080"), b"");
    rig.sim.net_answer(NetAnswer::Listening(true));
    rig.output();
    rig.sim.accept(PEER);
    assert_eq!(rig.output(), b"0,CONNECT\r\n");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 1_000), b"");
    assert_eq!(
        rig.socket_event(0, NetEvent::Received(b"x")),
        b"\r\n+IPD,0,1:x\r\n"
    );
    assert_eq!(rig.advance_to(start + 2_999), b"");
    assert_eq!(rig.advance_to(start + 3_000), b"0,CLOSED\r\n");
}

#[test]
fn cipdomain_answers_with_real_addresses() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPDOMAIN=\"example.com\""), b"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Resolve {
            host: "example.com".into()
        }]
    );
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let v4 = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));
    rig.sim.net_answer(NetAnswer::Resolved(&[v6, v4]));
    assert_eq!(rig.output(), b"+CIPDOMAIN:\"93.184.216.34\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPDOMAIN=\"example.com\",3"), b"");
    rig.sim.net_answer(NetAnswer::Resolved(&[v4, v6]));
    assert_eq!(rig.output(), b"+CIPDOMAIN:\"2001:db8::1\"\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPDOMAIN=\"example.com\",1,0,1"), b"");
    rig.sim.net_answer(NetAnswer::Resolved(&[v4, v6]));
    assert_eq!(
        rig.output(),
        b"+CIPDOMAIN:\"93.184.216.34\"\r\n+CIPDOMAIN:\"2001:db8::1\"\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPDOMAIN=\"no.such\""), b"");
    rig.sim.net_answer(NetAnswer::Resolved(&[]));
    assert_eq!(rig.output(), b"\r\nERROR\r\n");
    // No answer within the timeout; a late one is ignored.
    assert_eq!(rig.at("AT+CIPDOMAIN=\"slow.example\",1,500"), b"");
    let start = rig.sim.now;
    assert_eq!(rig.advance_to(start + 500), b"\r\nERROR\r\n");
    rig.sim.net_answer(NetAnswer::Resolved(&[v4]));
    assert_eq!(rig.output(), b"");
    for bad in ["AT+CIPDOMAIN=\"\"", "AT+CIPDOMAIN=\"x\",4", "AT+CIPDOMAIN?"] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

#[test]
fn ping_reports_the_measured_time_or_timeout() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+PING=\"192.0.2.7\""), b"");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Ping {
            host: "192.0.2.7".into()
        }]
    );
    assert_eq!(rig.at("AT"), b"\r\nbusy p...\r\n");
    rig.sim.net_answer(NetAnswer::Pinged(Some(17)));
    assert_eq!(rig.output(), b"+PING:17\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+PING=\"192.0.2.7\""), b"");
    rig.sim.net_answer(NetAnswer::Pinged(None));
    assert_eq!(rig.output(), b"+PING:TIMEOUT\r\n\r\nERROR\r\n");
}

#[test]
fn ssl_settings_reach_the_connect() {
    let mut rig = mux();
    assert_eq!(
        rig.at("AT+CIPSSLCCONF?"),
        b"+CIPSSLCCONF:0,0,0,0\r\n+CIPSSLCCONF:1,0,0,0\r\n+CIPSSLCCONF:2,0,0,0\r\n\
          +CIPSSLCCONF:3,0,0,0\r\n+CIPSSLCCONF:4,0,0,0\r\n\r\nOK\r\n"
    );
    // Missing material is named, as for AT+WSCFG.
    assert_eq!(
        rig.at("AT+CIPSSLCCONF=1,3,0,0"),
        b"NO CERT FOUND\r\n\r\nERROR\r\n"
    );
    rig.sysmfg_write("client_cert", "client_cert.0", b"CERT");
    rig.sysmfg_write("client_key", "client_key.0", b"KEY");
    assert_eq!(
        rig.at("AT+CIPSSLCCONF=1,3,0,0"),
        b"NO CA FOUND\r\n\r\nERROR\r\n"
    );
    rig.sysmfg_write("client_ca", "client_ca.1", b"CA");
    assert_eq!(rig.at("AT+CIPSSLCCONF=1,3,0,1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSSLCSNI=1,\"sni.example\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSSLCCN=5,\"cn.example\""), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSSLCALPN=1,2,\"h2\",\"http/1.1\""),
        b"\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPSSLCALPN=1,2,\"h2\""), b"\r\nERROR\r\n");
    let sni = rig.at("AT+CIPSSLCSNI?");
    assert!(sni.starts_with(b"+CIPSSLCSNI:0,\r\n+CIPSSLCSNI:1,sni.example\r\n"));
    let alpn = rig.at("AT+CIPSSLCALPN?");
    assert!(alpn.starts_with(b"+CIPSSLCALPN:0\r\n+CIPSSLCALPN:1,h2,http/1.1\r\n"));
    assert_eq!(rig.at("AT+CIPSTART=1,\"SSL\",\"192.0.2.7\",443"), b"");
    let actions = rig.actions();
    let [NetAction::Connect {
        transport: Transport::Tls(policy),
        ..
    }] = &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(
        *policy,
        TlsPolicy {
            server: ServerVerification::Ca(b"CA".to_vec()),
            client: Some(ClientIdentity {
                cert: b"CERT".to_vec(),
                key: b"KEY".to_vec()
            }),
            sni: Some("sni.example".into()),
            common_name: Some("cn.example".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    );
    // The material went from the store meanwhile: the next connect fails.
    assert_eq!(rig.socket_event(1, up(PEER)), b"1,CONNECT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+SYSMFG=0,\"client_ca\""), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPCLOSE=1"), b"1,CLOSED\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSTART=1,\"SSL\",\"192.0.2.7\",443"),
        b"NO CA FOUND\r\n\r\nERROR\r\n"
    );
}

#[test]
fn passthrough_sends_after_a_pause_and_leaves_on_a_lone_escape() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPMODE?"), b"+CIPMODE:0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nOK\r\n");
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(rig.at("AT+CIPSEND"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"abc"), b"");
    assert!(rig.actions().is_empty());
    let start = rig.sim.now;
    rig.advance_to(start + 20);
    rig.assert_sent(0, b"abc");
    rig.sim.net_event(Link::Socket(0), NetEvent::Sent);
    // Received data is raw: no +IPD.
    assert_eq!(rig.socket_event(0, NetEvent::Received(b"raw")), b"raw");
    // 2920 bytes go at once.
    assert_eq!(rig.input(&[b'z'; 3000]), b"");
    let actions = rig.actions();
    assert!(matches!(&actions[..], [NetAction::Send { bytes, .. }] if bytes.len() == 2920));
    rig.sim.net_event(Link::Socket(0), NetEvent::Sent);
    // A `+++` right after data is data.
    assert_eq!(rig.input(b"+++"), b"");
    let now = rig.sim.now;
    rig.advance_to(now + 20);
    let actions = rig.actions();
    assert!(
        matches!(&actions[..], [NetAction::Send { bytes, .. }] if bytes[..80] == [b'z'; 80] && bytes.ends_with(b"+++")),
        "{actions:?}"
    );
    rig.sim.net_event(Link::Socket(0), NetEvent::Sent);
    // After a silence, a lone `+++` then a silence: back to commands.
    let now = rig.sim.now;
    rig.advance_to(now + 100);
    assert_eq!(rig.input(b"+++"), b"");
    let now = rig.sim.now;
    assert_eq!(rig.advance_to(now + 20), b"");
    assert!(rig.actions().is_empty());
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMODE=0"), b"\r\nOK\r\n");
}

#[test]
fn passthrough_escape_followed_by_data_is_data() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+SYSMSG=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nOK\r\n");
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(rig.at("AT+CIPSEND"), b"\r\nOK\r\n\r\n>");
    let now = rig.sim.now;
    rig.advance_to(now + 50);
    assert_eq!(rig.input(b"+++"), b"");
    let now = rig.sim.now;
    rig.advance_to(now + 5);
    assert_eq!(rig.input(b"x"), b"");
    let now = rig.sim.now;
    rig.advance_to(now + 20);
    rig.assert_sent(0, b"+++x");
    rig.sim.net_event(Link::Socket(0), NetEvent::Sent);
    let now = rig.sim.now;
    rig.advance_to(now + 50);
    assert_eq!(rig.input(b"+++"), b"");
    let now = rig.sim.now;
    // With AT+SYSMSG bit 0: +QUITT.
    assert_eq!(rig.advance_to(now + 20), b"\r\n+QUITT\r\n");
}

#[test]
fn passthrough_needs_one_client_link() {
    let mut rig = mux();
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nERROR\r\n");
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nOK\r\n");
    // No link: nothing to pass through.
    assert_eq!(rig.at("AT+CIPSEND"), b"\r\nERROR\r\n");
    // The length form belongs to normal mode.
    assert_eq!(rig.at("AT+CIPSEND=4"), b"\r\nERROR\r\n");
}

#[test]
fn reset_drops_sockets_without_a_word() {
    let mut rig = mux();
    rig.tcp_link(0);
    assert_eq!(rig.at("AT+CIPSERVER=1,8080"), b"");
    rig.sim.net_answer(NetAnswer::Listening(true));
    rig.output();
    rig.actions();
    let out = rig.reset("AT+RST");
    assert_eq!(out, [b"\r\nOK\r\n".as_slice(), testing::BOOT].concat());
    assert_eq!(
        rig.actions(),
        vec![
            NetAction::Close {
                link: Link::Socket(0)
            },
            NetAction::StopListening
        ]
    );
    assert_eq!(rig.output(), b"");
    assert_eq!(rig.at("ATE0"), b"ATE0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMUX?"), b"+CIPMUX:0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSTATE?"), b"\r\nOK\r\n");
}

#[test]
fn socket_settings_numbers() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+CIPV6?"), b"+CIPV6:0\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPV6=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPV6?"), b"+CIPV6:1\r\n\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPRECONNINTV?"),
        b"+CIPRECONNINTV:1\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPRECONNINTV=0"), b"\r\nERROR\r\n");
    // ESP32 ESP-AT has no AT+CIPSSLSIZE (Adafruit's ESP32 detection).
    assert_eq!(rig.at("AT+CIPSSLSIZE=4096"), b"\r\nERROR\r\n");
}

#[test]
fn a_lone_escape_after_a_silence_cancels_a_send() {
    let mut rig = Rig::quiet();
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(rig.at("AT+CIPSEND=10"), b"\r\nOK\r\n\r\n>");
    let now = rig.sim.now;
    rig.advance_to(now + 50);
    rig.sim.read_size = 3;
    assert_eq!(rig.input(b"+++"), b"\r\nSEND Canceled\r\n");
    assert!(rig.actions().is_empty());
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    // Without the silence, or as part of more data, it is data.
    rig.sim.read_size = 16 * 1024;
    assert_eq!(rig.at("AT+CIPSEND=6"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.input(b"+++abc"), b"\r\nRecv 6 bytes\r\n");
    rig.assert_sent(0, b"+++abc");
}

#[test]
fn passthrough_says_a_lost_link_and_connects_again() {
    let mut rig = Rig::quiet();
    assert_eq!(rig.at("AT+SYSMSG=4"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPMODE=1"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPRECONNINTV=5"), b"\r\nOK\r\n");
    rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(rig.at("AT+CIPSEND"), b"\r\nOK\r\n\r\n>");
    assert_eq!(rig.socket_event(0, NetEvent::Closed), b"CLOSED\r\n");
    assert_eq!(
        rig.actions(),
        vec![NetAction::Close {
            link: Link::Socket(0)
        }]
    );
    let now = rig.sim.now;
    rig.advance_to(now + 499);
    assert!(rig.actions().is_empty());
    rig.advance_to(now + 500);
    let actions = rig.actions();
    assert!(
        matches!(
            &actions[..],
            [NetAction::Connect {
                link: Link::Socket(0),
                port: 8080,
                ..
            }]
        ),
        "{actions:?}"
    );
    assert_eq!(rig.socket_event(0, up(PEER)), b"CONNECT\r\n");
    // Still passthrough: the bytes go to the new connection.
    assert_eq!(rig.input(b"again"), b"");
    let now = rig.sim.now;
    rig.advance_to(now + 20);
    rig.assert_sent(0, b"again");
}

impl Rig {
    /// The payloads of the `Send` actions so far (not acknowledged).
    fn sends(&mut self) -> Vec<Vec<u8>> {
        self.actions()
            .into_iter()
            .map(|action| match action {
                NetAction::Send { bytes, .. } | NetAction::SendTo { bytes, .. } => bytes,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Advances the clock by `ms`; returns the output.
    fn after(&mut self, ms: u64) -> Vec<u8> {
        self.sim.advance(ms);
        self.output()
    }

    /// A TCP link in single-connection mode, and `AT+CIPSENDL=<len>`'s prompt.
    fn cipsendl(&mut self, len: usize) {
        let out = self.cipstart("\"TCP\",\"192.0.2.7\",8080");
        assert_eq!(out, b"CONNECT\r\n\r\nOK\r\n");
        let command = format!("AT+CIPSENDL={len}");
        assert_eq!(self.at(&command), b"\r\nOK\r\n\r\n>");
    }
}

#[test]
fn cipsendlcfg_query_set_and_ranges() {
    let mut rig = Rig::quiet();
    assert_eq!(
        rig.at("AT+CIPSENDLCFG?"),
        b"+CIPSENDLCFG:1024,2920\r\n\r\nOK\r\n"
    );
    assert_eq!(rig.at("AT+CIPSENDLCFG=100,100"), b"\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSENDLCFG=1048576"), b"\r\nOK\r\n");
    assert_eq!(
        rig.at("AT+CIPSENDLCFG?"),
        b"+CIPSENDLCFG:1048576,100\r\n\r\nOK\r\n"
    );
    for bad in [
        "AT+CIPSENDLCFG=99",
        "AT+CIPSENDLCFG=1048577",
        "AT+CIPSENDLCFG=100,99",
        "AT+CIPSENDLCFG=100,2921",
        "AT+CIPSENDLCFG=100,100,1",
        "AT+CIPSENDLCFG",
    ] {
        assert_eq!(rig.at(bad), b"\r\nERROR\r\n", "{bad}");
    }
}

/// `AT+CIPSENDL` pushes the data as it comes in sends of `<transmit size>`,
/// reports every `<report size>` bytes written, and ends with the last
/// count and `SEND OK`; bytes after its length are the next command (§3.7).
#[test]
fn cipsendl_streams_with_progress_reports() {
    let mut rig = Rig::quiet();
    rig.cipsendl(5000);
    let data = pattern(5000);
    assert_eq!(rig.input(&data[..3000]), b"");
    let first = rig.sends();
    assert_eq!(first, [data[..2920].to_vec()]);
    assert_eq!(
        rig.socket_event(0, NetEvent::Sent),
        b"+CIPSENDL:1024,3000\r\n+CIPSENDL:2048,3000\r\n"
    );
    let mut rest = data[3000..].to_vec();
    rest.extend_from_slice(b"AT\r\n");
    // The command after the data waits for the end.
    assert_eq!(rig.type_ahead(&rest), b"");
    assert_eq!(rig.sends(), [data[2920..].to_vec()]);
    assert_eq!(
        rig.socket_event(0, NetEvent::Sent),
        b"+CIPSENDL:3072,5000\r\n+CIPSENDL:4096,5000\r\n+CIPSENDL:5000,5000\r\n\
          \r\nSEND OK\r\n\r\nOK\r\n"
    );
}

/// What waits less than a send's size goes after a 20 ms silence; a lone
/// `+++` between silences cancels (§3.6's escape rule).
#[test]
fn cipsendl_sends_after_a_silence_and_a_lone_escape_cancels() {
    let mut rig = Rig::quiet();
    rig.cipsendl(1000);
    assert_eq!(rig.input(b"hello"), b"");
    assert!(rig.sends().is_empty());
    assert_eq!(rig.after(20), b"");
    assert_eq!(rig.sends(), [b"hello".to_vec()]);
    assert_eq!(rig.socket_event(0, NetEvent::Sent), b"");
    rig.after(100);
    assert_eq!(rig.input(b"+++"), b"");
    assert_eq!(rig.after(20), b"\r\nSEND CANCELLED\r\n");
    assert!(rig.sends().is_empty());
    assert_eq!(rig.at("AT"), b"\r\nOK\r\n");
    // `+++` with more right after it is data.
    assert_eq!(rig.at("AT+CIPSENDL=8"), b"\r\nOK\r\n\r\n>");
    rig.after(100);
    assert_eq!(rig.input(b"+++"), b"");
    assert_eq!(rig.input(b"abcde"), b"");
    assert_eq!(rig.sends(), [b"+++abcde".to_vec()]);
    assert_eq!(
        rig.socket_event(0, NetEvent::Sent),
        b"+CIPSENDL:8,8\r\n\r\nSEND OK\r\n"
    );
}

/// The link goes mid-way: the rest of the length is still taken (and
/// dropped), then the count written and `SEND FAIL`; `CLOSED` waits for it.
#[test]
fn cipsendl_on_a_lost_link_takes_its_length_and_fails() {
    let mut rig = Rig::quiet();
    rig.cipsendl(4000);
    let data = pattern(4000);
    assert_eq!(rig.input(&data[..3000]), b"");
    assert_eq!(rig.sends().len(), 1);
    assert_eq!(rig.socket_event(0, NetEvent::Closed), b"");
    // The modem lets go of the connection.
    let actions = rig.actions();
    assert!(
        matches!(&actions[..], [NetAction::Close { .. }]),
        "{actions:?}"
    );
    assert_eq!(
        rig.input(&data[3000..]),
        b"+CIPSENDL:0,4000\r\n\r\nSEND FAIL\r\nCLOSED\r\n"
    );
    assert!(rig.sends().is_empty());
    assert_eq!(rig.at("AT+CIPSENDL=10"), b"\r\nERROR\r\n");
}

/// The host is read only while the link keeps up: with eight sends
/// unwritten the rest waits in the host's buffer, not in the modem.
#[test]
fn cipsendl_reads_the_host_only_while_the_link_keeps_up() {
    let mut rig = Rig::quiet();
    rig.cipsendl(100_000);
    let data = pattern(100_000);
    rig.type_ahead(&data);
    let sends = rig.sends();
    assert_eq!(sends.len(), 8);
    assert!(!rig.sim.modem.wants_host_input());
    assert_eq!(rig.sim.unread_input(), 100_000 - 8 * 2920);
    let mut written: Vec<u8> = sends.concat();
    let mut out = Vec::new();
    while written.len() < data.len() {
        out.extend(rig.socket_event(0, NetEvent::Sent));
        written.extend(rig.sends().concat());
    }
    assert_eq!(written, data);
    for _ in 0..8 {
        out.extend(rig.socket_event(0, NetEvent::Sent));
    }
    let reports = String::from_utf8(out).unwrap();
    let counts: Vec<&str> = reports.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(counts.len(), 97 + 1 + 1, "{reports}");
    assert_eq!(counts[0], "+CIPSENDL:1024,23360");
    assert_eq!(counts[96], "+CIPSENDL:99328,100000");
    assert_eq!(&counts[97..], ["+CIPSENDL:100000,100000", "SEND OK"]);
}

#[test]
fn cipsendl_refuses_what_cipsend_refuses() {
    let mut rig = Rig::quiet();
    // No link, a bad length, passthrough mode.
    assert_eq!(rig.at("AT+CIPSENDL=10"), b"\r\nERROR\r\n");
    let out = rig.cipstart("\"TCP\",\"192.0.2.7\",8080");
    assert_eq!(out, b"CONNECT\r\n\r\nOK\r\n");
    assert_eq!(rig.at("AT+CIPSENDL=0"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSENDL=2147483648"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSENDL=1,10"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSENDL=10,\"192.0.2.9\",7"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSENDL"), b"\r\nERROR\r\n");
    assert_eq!(rig.at("AT+CIPSENDL?"), b"\r\nERROR\r\n");
}
