//! The socket links of ESP-AT's TCP/IP commands (`esp-at-tcpip.md` §3)
//! end to end through the real binary: TCP, UDP and SSL clients against
//! peers on 127.0.0.1, the modem's own server, 50 MiB to a slow host in
//! active and passive receive, passthrough mode, and bad input. Every
//! answer is compared byte for byte where the contract gives the bytes.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use wsat_testkit::sockets::{
    free_udp_port, pattern_bytes, wait_until_refused, Pace, PatternSender, RssWatch, SlowHost,
    TcpEcho, TcpPeer, TcpServer, UdpPeer,
};
use wsat_testkit::tls::{
    BadServer, Ca, Hello, Misbehaviour, TlsSocketServer, CLIENT_CA, CLIENT_CERT, CLIENT_KEY,
};
use wsat_testkit::{closed_port, Host, Wsat, WAIT};

/// 127.0.0.1:`port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A modem (echo off) in multi-connection mode (`AT+CIPMUX=1`).
async fn mux_modem() -> (Wsat, Host) {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    (wsat, host)
}

/// A modem (echo off) whose link 0 is a TCP connection to a new server,
/// made after the `setup` commands (each answered `OK`).
async fn tcp_link(setup: &[&str]) -> (Wsat, Host, TcpServer, TcpPeer) {
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    for line in setup {
        host.at(line, b"\r\nOK\r\n").await;
    }
    host.cipstart(&format!("\"TCP\",\"127.0.0.1\",{}", server.port), "CONNECT")
        .await;
    let peer = server.accept().await;
    (wsat, host, server, peer)
}

/// `+CIPSTATE:<id>,"<type>","127.0.0.1",<remote port>,<local port>,<tetype>`
/// lines, then `OK` (§3.10).
fn cipstate(links: &[(u8, &str, u16, u16, u8)]) -> Vec<u8> {
    let mut answer = String::new();
    for (id, kind, remote, local, tetype) in links {
        answer += &format!("+CIPSTATE:{id},\"{kind}\",\"127.0.0.1\",{remote},{local},{tetype}\r\n");
    }
    answer += "\r\nOK\r\n";
    answer.into_bytes()
}

/// TCP in single-connection mode (§3.1–3.4, 3.8–3.10): connect, send with
/// its prompt, `Recv` and `SEND OK`, the echo as `+IPD`, the link's state,
/// a close by the host and a close by the server.
#[tokio::test]
async fn tcp_single_connection_byte_for_byte() {
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+CIPMUX?", b"+CIPMUX:0\r\n\r\nOK\r\n").await;
    host.at("AT+CIPSTATUS", b"STATUS:2\r\n\r\nOK\r\n").await;
    let start = format!("\"TCP\",\"127.0.0.1\",{}", server.port);
    host.cipstart(&start, "CONNECT").await;
    let mut peer = server.accept().await;

    host.cipsend("4", b"test").await;
    peer.expect(b"test").await;
    peer.send(b"test").await;
    host.expect_ipd("4", b"test").await;
    // Every byte value, and what looks like AT syntax, is data both ways.
    let every_byte: Vec<u8> = (0..=255).collect();
    host.cipsend("256", &every_byte).await;
    peer.expect(&every_byte).await;
    peer.send(b"\r\nOK\r\n+IPD,1:x\r\n").await;
    host.expect_ipd("16", b"\r\nOK\r\n+IPD,1:x\r\n").await;

    let local = peer.remote.port();
    let state = cipstate(&[(0, "TCP", server.port, local, 0)]);
    host.at("AT+CIPSTATE?", &state).await;
    let status = format!(
        "STATUS:3\r\n+CIPSTATUS:0,\"TCP\",\"127.0.0.1\",{},{local},0\r\n\r\nOK\r\n",
        server.port
    );
    host.at("AT+CIPSTATUS", status.as_bytes()).await;

    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    peer.expect_eof().await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    host.at("AT+CIPSTATUS", b"STATUS:4\r\n\r\nOK\r\n").await;

    // The server closes: CLOSED, unsolicited.
    host.cipstart(&start, "CONNECT").await;
    let peer = server.accept().await;
    drop(peer);
    host.expect(b"CLOSED\r\n").await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    host.alive().await;
}

/// TCP in multi-connection mode: the id in every command and report, two
/// links at once (one from `AT+CIPSTARTEX`, the lowest free id), an echo
/// server, and `<id>,CLOSED` for both kinds of close.
#[tokio::test]
async fn tcp_multi_connection_byte_for_byte() {
    let server = TcpServer::bind().await;
    let mut echo = TcpEcho::start().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+CIPMUX?", b"+CIPMUX:1\r\n\r\nOK\r\n").await;
    let start = format!("3,\"TCP\",\"127.0.0.1\",{}", server.port);
    host.cipstart(&start, "3,CONNECT").await;
    let mut peer = server.accept().await;
    host.at(
        &format!("AT+CIPSTARTEX=\"TCP\",\"127.0.0.1\",{}", echo.port),
        b"0,CONNECT\r\n\r\nOK\r\n",
    )
    .await;
    let echo_end = echo.accepted().await;

    host.cipsend("3,5", b"hello").await;
    peer.expect(b"hello").await;
    peer.send(b"hello").await;
    host.expect_ipd("3,5", b"hello").await;
    host.cipsend("0,4", b"echo").await;
    host.expect_ipd("0,4", b"echo").await;

    let state = cipstate(&[
        (0, "TCP", echo.port, echo_end.port(), 0),
        (3, "TCP", server.port, peer.remote.port(), 0),
    ]);
    host.at("AT+CIPSTATE?", &state).await;

    host.at("AT+CIPCLOSE=3", b"3,CLOSED\r\n\r\nOK\r\n").await;
    peer.expect_eof().await;
    // The server closes link 3: 3,CLOSED, unsolicited.
    host.cipstart(&start, "3,CONNECT").await;
    drop(server.accept().await);
    host.expect(b"3,CLOSED\r\n").await;
    host.at("AT+CIPCLOSE=0", b"0,CLOSED\r\n\r\nOK\r\n").await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    host.alive().await;
}

/// UDP with a local port (§3.3, 3.4, 3.8): the peer sends to that port and
/// sees the modem's datagrams come from it; `AT+CIPDINFO=1` shows the
/// sender in `+IPD`; a send names another peer; mode 0 keeps its peer,
/// mode 1 changes it once, mode 2 follows every sender.
#[tokio::test]
async fn udp_both_ways_with_a_local_port() {
    let a = UdpPeer::bind().await;
    let b = UdpPeer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    let local = free_udp_port();
    host.cipstart(
        &format!("0,\"UDP\",\"127.0.0.1\",{},{local},0", a.port),
        "0,CONNECT",
    )
    .await;
    host.at("AT+CIPSTATE?", &cipstate(&[(0, "UDP", a.port, local, 0)]))
        .await;

    host.cipsend("0,5", b"hello").await;
    assert_eq!(a.recv().await, (b"hello".to_vec(), loopback(local)));
    a.send_to(b"world", local).await;
    host.expect_ipd("0,5", b"world").await;
    host.at("AT+CIPDINFO?", b"+CIPDINFO:false\r\nOK\r\n").await;
    host.at("AT+CIPDINFO=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPDINFO?", b"+CIPDINFO:true\r\nOK\r\n").await;
    a.send_to(b"again", local).await;
    host.expect_ipd(&format!("0,5,\"127.0.0.1\",{}", a.port), b"again")
        .await;

    // One packet to another peer, from the same port.
    host.cipsend(&format!("0,4,\"127.0.0.1\",{}", b.port), b"to b")
        .await;
    assert_eq!(b.recv().await, (b"to b".to_vec(), loopback(local)));
    // Mode 0: the peer is fixed. b's datagram is dropped (it was sent
    // first, so a's report coming next shows it was not taken).
    b.send_to(b"from b", local).await;
    a.send_to(b"from a", local).await;
    host.expect_ipd(&format!("0,6,\"127.0.0.1\",{}", a.port), b"from a")
        .await;
    host.cipsend("0,2", b"hi").await;
    assert_eq!(a.recv().await.0, b"hi");
    host.at("AT+CIPCLOSE=0", b"0,CLOSED\r\n\r\nOK\r\n").await;

    // Mode 1: the peer changes once, to the first other sender.
    let local1 = free_udp_port();
    host.cipstart(
        &format!("1,\"UDP\",\"127.0.0.1\",{},{local1},1", a.port),
        "1,CONNECT",
    )
    .await;
    b.send_to(b"b1", local1).await;
    host.expect_ipd(&format!("1,2,\"127.0.0.1\",{}", b.port), b"b1")
        .await;
    a.send_to(b"a1", local1).await;
    b.send_to(b"b2", local1).await;
    host.expect_ipd(&format!("1,2,\"127.0.0.1\",{}", b.port), b"b2")
        .await;
    host.cipsend("1,3", b"to1").await;
    assert_eq!(b.recv().await, (b"to1".to_vec(), loopback(local1)));
    host.at("AT+CIPCLOSE=1", b"1,CLOSED\r\n\r\nOK\r\n").await;

    // Mode 2: the peer follows every sender.
    let local2 = free_udp_port();
    host.cipstart(
        &format!("2,\"UDP\",\"127.0.0.1\",{},{local2},2", a.port),
        "2,CONNECT",
    )
    .await;
    a.send_to(b"one", local2).await;
    host.expect_ipd(&format!("2,3,\"127.0.0.1\",{}", a.port), b"one")
        .await;
    b.send_to(b"two", local2).await;
    host.expect_ipd(&format!("2,3,\"127.0.0.1\",{}", b.port), b"two")
        .await;
    host.cipsend("2,5", b"reply").await;
    assert_eq!(b.recv().await, (b"reply".to_vec(), loopback(local2)));
    a.send_to(b"three", local2).await;
    host.expect_ipd(&format!("2,5,\"127.0.0.1\",{}", a.port), b"three")
        .await;
    host.cipsend("2,4", b"back").await;
    assert_eq!(a.recv().await, (b"back".to_vec(), loopback(local2)));
    host.at("AT+CIPCLOSE=2", b"2,CLOSED\r\n\r\nOK\r\n").await;
    host.alive().await;
}

/// One test's certificates: a CA with a server certificate for 127.0.0.1
/// and localhost and a client certificate, and a CA that issued neither.
struct Pki {
    ca: Ca,
    wrong_ca: Ca,
    server: wsat_testkit::tls::Leaf,
    client: wsat_testkit::tls::Leaf,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("wsat test CA");
        Pki {
            server: ca.issue(&["localhost", "127.0.0.1"]),
            client: ca.issue(&["client.example"]),
            wrong_ca: Ca::new("wsat wrong CA"),
            ca,
        }
    }
}

/// SSL links in each `AT+CIPSSLCCONF` auth mode (§3.13) against rustls
/// servers: 0 and 2 against a server without client authentication, 1 and
/// 3 against one that demands a certificate from the CA, with the material
/// written through `AT+SYSMFG` into `client_cert`, `client_key` and
/// `client_ca`. A CA that did not issue the server's certificate makes the
/// connect fail with `ERROR`; missing material is named when the command runs.
#[tokio::test]
async fn ssl_in_every_auth_mode() {
    let pki = Pki::new();
    let mut open = TlsSocketServer::start(&pki.server, None).await;
    let mut demanding = TlsSocketServer::start(&pki.server, Some(&pki.ca)).await;
    let (wsat, _store) = Wsat::start_with_store(&[]);
    let mut host = wsat.quiet_host().await;
    host.store(CLIENT_CERT, 0, &pki.client.cert_pem).await;
    host.store(CLIENT_KEY, 0, &pki.client.key_pem).await;
    host.store(CLIENT_CA, 0, &pki.ca.pem).await;
    host.store(CLIENT_CA, 1, &pki.wrong_ca.pem).await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;

    let mut links = Vec::new();
    for mode in 0..4 {
        // Modes 1 and 3 present the client certificate.
        let server = if mode % 2 == 1 {
            &mut demanding
        } else {
            &mut open
        };
        let id = mode;
        host.at(&format!("AT+CIPSSLCCONF={id},{mode},0,0"), b"\r\nOK\r\n")
            .await;
        let start = format!("{id},\"SSL\",\"127.0.0.1\",{}", server.port);
        host.cipstart(&start, &format!("{id},CONNECT")).await;
        // An address as the host: no SNI.
        let handshake = server.handshake().await;
        let handshake = handshake.unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        let expected = Hello {
            sni: None,
            alpn: vec![],
        };
        assert_eq!(handshake.hello, expected, "mode {mode}");
        links.push((id, "SSL", server.port, handshake.client.port(), 0));
        let data = format!("mode {mode} over TLS");
        host.cipsend(&format!("{id},{}", data.len()), data.as_bytes())
            .await;
        host.expect_ipd(&format!("{id},{}", data.len()), data.as_bytes())
            .await;
    }
    let mut lines = String::new();
    for id in 0..5 {
        let mode = if id < 4 { id } else { 0 };
        lines += &format!("+CIPSSLCCONF:{id},{mode},0,0\r\n");
    }
    lines += "\r\nOK\r\n";
    host.at("AT+CIPSSLCCONF?", lines.as_bytes()).await;
    host.at("AT+CIPSTATE?", &cipstate(&links)).await;
    host.at(
        "AT+CIPCLOSE=5",
        b"0,CLOSED\r\n1,CLOSED\r\n2,CLOSED\r\n3,CLOSED\r\n\r\nOK\r\n",
    )
    .await;

    // The wrong CA, verifying only (2) and with a client certificate (3).
    for mode in [2, 3] {
        let server = if mode == 3 { &mut demanding } else { &mut open };
        host.at(&format!("AT+CIPSSLCCONF=4,{mode},0,1"), b"\r\nOK\r\n")
            .await;
        let start = format!("AT+CIPSTART=4,\"SSL\",\"127.0.0.1\",{}", server.port);
        host.at(&start, b"\r\nERROR\r\n").await;
        let refused = server.handshake().await;
        assert!(refused.is_err(), "mode {mode}: {refused:?}");
        host.alive().await;
        host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    }

    // Missing material, said when the command runs.
    host.at("AT+CIPSSLCCONF=4,2,0,9", b"NO CA FOUND\r\n\r\nERROR\r\n")
        .await;
    host.at("AT+CIPSSLCCONF=4,1,9,0", b"NO CERT FOUND\r\n\r\nERROR\r\n")
        .await;
    host.at("AT+CIPSSLCCONF=4,3,0,9", b"NO CA FOUND\r\n\r\nERROR\r\n")
        .await;
    host.alive().await;
}

/// `AT+CIPSSLCSNI` is the SNI the server sees, `AT+CIPSSLCALPN` the ALPN
/// protocols it is offered; without them a host name is sent as SNI, an
/// address is not, and nothing is offered.
#[tokio::test]
async fn ssl_sni_and_alpn_are_what_the_server_sees() {
    let pki = Pki::new();
    let mut server = TlsSocketServer::start(&pki.server, None).await;
    let (wsat, _store) = Wsat::start_with_store(&[]);
    let mut host = wsat.quiet_host().await;
    host.at("AT+CIPSSLCSNI=\"sni.example\"", b"\r\nOK\r\n")
        .await;
    host.at("AT+CIPSSLCSNI?", b"+CIPSSLCSNI:0,sni.example\r\n\r\nOK\r\n")
        .await;
    host.at("AT+CIPSSLCALPN=2,\"h2\",\"http/1.1\"", b"\r\nOK\r\n")
        .await;
    host.at(
        "AT+CIPSSLCALPN?",
        b"+CIPSSLCALPN:0,h2,http/1.1\r\n\r\nOK\r\n",
    )
    .await;
    let start = format!("\"SSL\",\"127.0.0.1\",{}", server.port);
    host.cipstart(&start, "CONNECT").await;
    let hello = server.handshake().await.expect("a handshake").hello;
    let expected = Hello {
        sni: Some("sni.example".into()),
        alpn: vec!["h2".into(), "http/1.1".into()],
    };
    assert_eq!(hello, expected);
    host.cipsend("3", b"sni").await;
    host.expect_ipd("3", b"sni").await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;

    // A fresh modem: a host name is its own SNI.
    let mut fresh = wsat.quiet_host().await;
    fresh
        .cipstart(&format!("\"SSL\",\"localhost\",{}", server.port), "CONNECT")
        .await;
    let hello = server.handshake().await.expect("a handshake").hello;
    let expected = Hello {
        sni: Some("localhost".into()),
        alpn: vec![],
    };
    assert_eq!(hello, expected);
    fresh.cipsend("5", b"local").await;
    fresh.expect_ipd("5", b"local").await;
    fresh.alive().await;
}

/// `AT+CIPSERVER` (§3.11) on a real listener: a client's connection is
/// `<id>,CONNECT`, data goes both ways, `AT+CIPSTATE?` shows the link as
/// the server's (tetype 1), a client's close is `<id>,CLOSED`, and
/// `AT+CIPSERVER=0,1` closes the links and stops listening.
#[tokio::test]
async fn cipserver_accepts_clients_as_links() {
    let port = closed_port().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    // Only in multi-connection mode.
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nERROR\r\n")
        .await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPSERVER?", b"+CIPSERVER:0\r\n\r\nOK\r\n")
        .await;
    host.at("AT+CIPSERVERMAXCONN?", b"+CIPSERVERMAXCONN:5\r\n\r\nOK\r\n")
        .await;
    // A port something else listens on.
    let taken = TcpServer::bind().await;
    host.at(&format!("AT+CIPSERVER=1,{}", taken.port), b"\r\nERROR\r\n")
        .await;
    host.at("AT+CIPSERVER?", b"+CIPSERVER:0\r\n\r\nOK\r\n")
        .await;
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    let query = format!("+CIPSERVER:1,{port},\"TCP\",0,0\r\n\r\nOK\r\n");
    host.at("AT+CIPSERVER?", query.as_bytes()).await;
    // Only one server.
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nERROR\r\n")
        .await;

    let mut first = TcpPeer::connect(port).await;
    host.expect(b"0,CONNECT\r\n").await;
    first.send(b"hello").await;
    host.expect_ipd("0,5", b"hello").await;
    host.cipsend("0,3", b"hey").await;
    first.expect(b"hey").await;
    let mut second = TcpPeer::connect(port).await;
    host.expect(b"1,CONNECT\r\n").await;
    second.send(b"2nd").await;
    host.expect_ipd("1,3", b"2nd").await;
    let state = cipstate(&[
        (0, "TCP", first.local_port(), port, 1),
        (1, "TCP", second.local_port(), port, 1),
    ]);
    host.at("AT+CIPSTATE?", &state).await;

    drop(first);
    host.expect(b"0,CLOSED\r\n").await;
    host.at("AT+CIPSERVER=0,1", b"1,CLOSED\r\n\r\nOK\r\n").await;
    second.expect_eof().await;
    host.at("AT+CIPSERVER?", b"+CIPSERVER:0\r\n\r\nOK\r\n")
        .await;
    let refused = timeout(WAIT, tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect timed out");
    assert!(refused.is_err(), "still listening on {port}");
    // The same port again, right after the modem closed connections on it.
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    let _third = TcpPeer::connect(port).await;
    host.expect(b"0,CONNECT\r\n").await;
    host.alive().await;
}

/// `AT+SYSMSG=2` makes an accepted client `+LINK_CONN:…` (§3.2), and
/// `AT+CIPSERVERMAXCONN=1` refuses a second client without a word to the
/// host; `AT+CIPSERVER=0` stops the server and keeps its link.
#[tokio::test]
async fn cipserver_link_conn_and_maxconn() {
    let port = closed_port().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+SYSMSG=2", b"\r\nOK\r\n").await;
    host.at("AT+CIPSERVERMAXCONN=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPSERVERMAXCONN?", b"+CIPSERVERMAXCONN:1\r\n\r\nOK\r\n")
        .await;
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    // Not while the server runs.
    host.at("AT+CIPSERVERMAXCONN=2", b"\r\nERROR\r\n").await;

    let mut client = TcpPeer::connect(port).await;
    let report = format!(
        "+LINK_CONN:0,0,\"TCP\",1,\"127.0.0.1\",{},{port}\r\n",
        client.local_port()
    );
    host.expect(report.as_bytes()).await;
    let mut refused = TcpPeer::connect(port).await;
    refused.expect_eof().await;
    // Nothing was reported for it.
    host.alive().await;
    client.send(b"x").await;
    host.expect_ipd("0,1", b"x").await;

    host.at("AT+CIPSERVER=0", b"\r\nOK\r\n").await;
    host.cipsend("0,4", b"kept").await;
    client.expect(b"kept").await;
    host.at("AT+CIPCLOSE=0", b"0,CLOSED\r\n\r\nOK\r\n").await;
    client.expect_eof().await;
    host.alive().await;
}

/// `AT+CIPSTO=1`: a server link idle for a second is closed, with its
/// `<id>,CLOSED` (§3.11).
#[tokio::test]
async fn cipsto_closes_an_idle_server_link() {
    let port = closed_port().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+CIPSTO?", b"+CIPSTO:180\r\n\r\nOK\r\n").await;
    host.at("AT+CIPSTO=1", b"\r\nOK\r\n").await;
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    // Started before the modem accepts: a lower bound of the idle time
    // (less a millisecond: the modem's clock counts whole ones).
    let connecting = Instant::now();
    let mut client = TcpPeer::connect(port).await;
    host.expect(b"0,CONNECT\r\n").await;
    host.expect(b"0,CLOSED\r\n").await;
    let idle = connecting.elapsed();
    assert!(idle >= Duration::from_millis(990), "closed after {idle:?}");
    client.expect_eof().await;
    host.alive().await;
}

/// The size of the bulk transfers.
const TOTAL: usize = 50 * 1024 * 1024;
/// The host's slow phase: 10 KB every 100 ms for 2 s.
const SLOW: Pace = Pace {
    step: 10_000,
    tick: Duration::from_millis(100),
    phase: Duration::from_secs(2),
};
/// The modem's resident memory while 50 MiB pass through it: well under
/// them, or the bound proves nothing (its own bound is about 320 KiB of
/// held output per modem; the process idles at about 5 MiB and measured
/// about 11 MiB here). The same bound as `flow_control`'s.
const RSS_LIMIT_KIB: u64 = 32 * 1024;

/// How long the server must make no progress, while the host reads
/// nothing, to count as held back by TCP.
const HELD_BACK: Duration = Duration::from_secs(1);
/// A server write may wait for the host's stall, slow phase and more.
const WRITE_LIMIT: Duration = Duration::from_secs(30);

/// The server side: [`TOTAL`] bytes of the pattern on the connection
/// `server` accepts, as fast as the modem takes them.
async fn pattern_sender(server: &TcpServer) -> PatternSender {
    PatternSender::start(server.accept().await, TOTAL, WRITE_LIMIT)
}

/// The host's first phase: it reads nothing until the server is held
/// back (or done). Returns what the server got through meanwhile: what
/// the sockets' buffers and the modem hold. The modem's memory is sampled
/// then, when it holds the most.
async fn stall(sender: &PatternSender, rss: &mut RssWatch) -> usize {
    let held = sender.done_or_held_back(HELD_BACK).await;
    rss.sample();
    held
}

/// Samples the modem's VmRSS every this many stream bytes.
const SAMPLE_EVERY: usize = 512 * 1024;

/// When the host's full-speed phase began, and the stream offset then.
#[derive(Default)]
struct FastPhase(Option<(Instant, usize)>);

impl FastPhase {
    /// Notes the start of the fast phase once `slow` has left its slow one.
    fn note(&mut self, slow: &SlowHost, got: usize) {
        if self.0.is_none() && slow.fast() {
            self.0 = Some((Instant::now(), got));
        }
    }

    /// MB/s from the start of the fast phase to now.
    fn rate(&self) -> f64 {
        let (since, from) = self.0.unwrap_or((Instant::now(), TOTAL));
        (TOTAL - from) as f64 / since.elapsed().as_secs_f64().max(1e-9) / 1e6
    }
}

/// Prints the figures and checks the two bounds: the server was held
/// back while the host read nothing (the modem stopped reading its
/// socket), and the modem's memory stayed under [`RSS_LIMIT_KIB`].
fn report(
    what: &str,
    wsat: &Wsat,
    rss: &RssWatch,
    held: usize,
    fast: &FastPhase,
    send_time: Duration,
) {
    let hwm = wsat.proc.peak_rss_kib();
    println!(
        "{what}: {} MiB in order; {:.1} MiB in flight while the host stalled; \
         full-speed phase {:.1} MB/s; server done after {send_time:.2?}; \
         wsat VmRSS peak {} KiB over {} samples (limit {RSS_LIMIT_KIB} KiB), VmHWM {hwm} KiB",
        TOTAL >> 20,
        held as f64 / 1048576.0,
        fast.rate(),
        rss.peak_kib,
        rss.samples,
    );
    assert!(
        held < TOTAL,
        "the server sent all {} MiB while the host read nothing",
        TOTAL >> 20
    );
    assert!(
        rss.peak_kib < RSS_LIMIT_KIB,
        "wsat VmRSS {} KiB over {RSS_LIMIT_KIB} KiB",
        rss.peak_kib
    );
}

/// Active receive (§3.8): 50 MiB from a server to a host that first reads
/// nothing until the server is held back, then reads slowly, then at full
/// speed. Every byte arrives once, in order, in `+IPD` reports of at most
/// 2920 bytes, then `0,CLOSED`; the modem's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 50 MiB through the modem to a slow host"]
async fn fifty_megabytes_active_to_a_slow_host() {
    let server = TcpServer::bind().await;
    let (wsat, mut host) = mux_modem().await;
    host.cipstart(
        &format!("0,\"TCP\",\"127.0.0.1\",{}", server.port),
        "0,CONNECT",
    )
    .await;
    let sender = pattern_sender(&server).await;
    let mut rss = RssWatch::new(&wsat.proc);
    let held = stall(&sender, &mut rss).await;
    let mut slow = SlowHost::new(host, Some(SLOW));
    let (mut got, mut next_sample, mut fast) = (0, 0, FastPhase::default());
    while got < TOTAL {
        fast.note(&slow, got);
        slow.expect(b"\r\n+IPD,0,").await;
        let n = slow.number(b':').await;
        assert!((1..=2920).contains(&n), "+IPD of {n} bytes");
        slow.pattern(got, n).await;
        slow.expect(b"\r\n").await;
        got += n;
        if got >= next_sample {
            rss.sample();
            next_sample += SAMPLE_EVERY;
        }
    }
    slow.expect(b"0,CLOSED\r\n").await;
    let send_time = sender.finish().await;
    assert!(slow.drained());
    report("active +IPD", &wsat, &rss, held, &fast, send_time);
    slow.host.alive().await;
}

/// Passive receive (§3.8): the same 50 MiB, stall and slow phase, read the
/// way Zephyr reads, one `AT+CIPRECVDATA=0,2048` on each `+IPD,0,<n>`
/// notice. Every byte arrives
/// once, in order; the buffered count never passes the 5760-byte window;
/// the peer's close is reported once everything was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 50 MiB through the modem in 2048-byte AT+CIPRECVDATA reads"]
async fn fifty_megabytes_passive_to_a_slow_host() {
    let server = TcpServer::bind().await;
    let (wsat, mut host) = mux_modem().await;
    // Set before the link exists: the setting is the id's.
    host.at("AT+CIPRECVTYPE=0,1", b"\r\nOK\r\n").await;
    host.cipstart(
        &format!("0,\"TCP\",\"127.0.0.1\",{}", server.port),
        "0,CONNECT",
    )
    .await;
    let sender = pattern_sender(&server).await;
    let mut rss = RssWatch::new(&wsat.proc);
    let held = stall(&sender, &mut rss).await;
    let mut slow = SlowHost::new(host, Some(SLOW));
    let (mut got, mut next_sample, mut fast) = (0, 0, FastPhase::default());
    let mut reads = 0;
    while got < TOTAL {
        fast.note(&slow, got);
        slow.expect(b"\r\n+IPD,0,").await;
        let buffered = slow.number(b'\r').await;
        slow.expect(b"\n").await;
        assert!((1..=5760).contains(&buffered), "+IPD,0,{buffered}");
        slow.send(b"AT+CIPRECVDATA=0,2048\r\n").await;
        slow.expect(b"+CIPRECVDATA:").await;
        let n = slow.number(b',').await;
        // At least what was announced (more may have come), at most asked.
        assert!(
            (buffered.min(2048)..=2048).contains(&n),
            "{n} bytes read after +IPD,0,{buffered}"
        );
        slow.pattern(got, n).await;
        slow.expect(b"\r\nOK\r\n").await;
        got += n;
        reads += 1;
        if got >= next_sample {
            rss.sample();
            next_sample += SAMPLE_EVERY;
        }
    }
    slow.expect(b"0,CLOSED\r\n").await;
    let send_time = sender.finish().await;
    assert!(slow.drained());
    println!("passive: {reads} AT+CIPRECVDATA reads");
    report("passive CIPRECVDATA", &wsat, &rss, held, &fast, send_time);
    let mut host = slow.host;
    host.at(
        "AT+CIPRECVLEN?",
        b"+CIPRECVLEN:-1,-1,-1,-1,-1\r\n\r\nOK\r\n",
    )
    .await;
    host.alive().await;
}

/// Passthrough (§3.6): `AT+CIPMODE=1`, `AT+CIPSEND` and its prompt, raw
/// bytes both ways (no `+IPD`), `+++` inside data is data, and a lone
/// `+++` between silences ends the mode (`+QUITT` with `AT+SYSMSG` bit 0,
/// the signal that it is over); the link stays and passthrough resumes.
#[tokio::test]
async fn passthrough_raw_both_ways_and_a_lone_escape_leaves() {
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+SYSMSG=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPMODE=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPMODE?", b"+CIPMODE:1\r\n\r\nOK\r\n").await;
    // Passthrough has no CIPSEND=<len>.
    host.at("AT+CIPSEND=4", b"\r\nERROR\r\n").await;
    let start = format!("\"TCP\",\"127.0.0.1\",{}", server.port);
    host.cipstart(&start, "CONNECT").await;
    let mut peer = server.accept().await;
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;

    host.send(b"raw \x00\xff\r\nAT\r\n").await;
    peer.expect(b"raw \x00\xff\r\nAT\r\n").await;
    peer.send(b"from the server\r\n\x00").await;
    host.expect(b"from the server\r\n\x00").await;
    // `+++` with other bytes in the same packet is data.
    host.send(b"a+++b").await;
    peer.expect(b"a+++b").await;
    host.send(b"+++more").await;
    peer.expect(b"+++more").await;

    // The server has the last bytes, so the modem sent them after its
    // 20 ms pause: the silence before the escape has been kept.
    host.send(b"+++").await;
    host.expect(b"\r\n+QUITT\r\n").await;
    host.alive().await;
    host.at("AT+CIPMODE?", b"+CIPMODE:1\r\n\r\nOK\r\n").await;
    // The link stayed: passthrough again.
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;
    host.send(b"again").await;
    peer.expect(b"again").await;
    peer.send(b"back").await;
    host.expect(b"back").await;
    host.send(b"+++").await;
    host.expect(b"\r\n+QUITT\r\n").await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    peer.expect_eof().await;
    host.at("AT+CIPMODE=0", b"\r\nOK\r\n").await;
    host.alive().await;
}

/// The escape without `AT+SYSMSG`: no reply at all (§3.6). The host keeps
/// the silence the documentation asks for after `+++` (ESP-AT: wait 1 s
/// before the next command), then the modem answers `AT` again; whatever
/// it took as data would have reached the server.
#[tokio::test]
async fn passthrough_escape_without_sysmsg_is_silent() {
    let (_wsat, mut host, _server, mut peer) = tcp_link(&["AT+CIPMODE=1"]).await;
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;
    host.send(b"data").await;
    peer.expect(b"data").await;
    host.send(b"+++").await;
    // The silence after the escape is the host's part of the protocol.
    tokio::time::sleep(Duration::from_secs(1)).await;
    host.alive().await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    // Neither the escape nor the `AT` reached the server.
    peer.expect_eof().await;
}

/// Bad input through the binary: each gets `ERROR` (and nothing else), and
/// the modem goes on answering (§3.1, 3.3, 3.4, 3.8, 3.9).
#[tokio::test]
async fn bad_socket_input_gets_error() {
    let refused = closed_port().await;
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;

    // Single-connection mode: refused, unresolvable, nothing to send on.
    host.at(
        &format!("AT+CIPSTART=\"TCP\",\"127.0.0.1\",{refused}"),
        b"\r\nERROR\r\n",
    )
    .await;
    host.alive().await;
    host.at(
        "AT+CIPSTART=\"TCP\",\"no-such-host..invalid\",80",
        b"\r\nERROR\r\n",
    )
    .await;
    host.alive().await;
    host.at("AT+CIPSEND=4", b"\r\nERROR\r\n").await;
    // UDP: an unresolvable peer, a local port in use.
    host.at(
        "AT+CIPSTART=\"UDP\",\"no-such-host..invalid\",9",
        b"\r\nERROR\r\n",
    )
    .await;
    let busy = UdpPeer::bind().await;
    host.at(
        &format!("AT+CIPSTART=\"UDP\",\"127.0.0.1\",9,{},0", busy.port),
        b"\r\nERROR\r\n",
    )
    .await;
    host.alive().await;
    // Multi-connection syntax in single mode.
    host.at("AT+CIPCLOSE=0", b"\r\nERROR\r\n").await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    // CIPMUX cannot change while a link is open.
    host.cipstart(&format!("\"TCP\",\"127.0.0.1\",{}", server.port), "CONNECT")
        .await;
    let _single = server.accept().await;
    host.at("AT+CIPMUX=1", b"\r\nERROR\r\n").await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;

    // Multi-connection mode: ids out of range, a closed link.
    let port = server.port;
    for line in [
        format!("AT+CIPSTART=5,\"TCP\",\"127.0.0.1\",{port}"),
        format!("AT+CIPSTART=9,\"TCP\",\"127.0.0.1\",{port}"),
        "AT+CIPSEND=5,4".into(),
        "AT+CIPSEND=9,4".into(),
        "AT+CIPSEND=0,4".into(),
        "AT+CIPCLOSE=9".into(),
        "AT+CIPRECVDATA=5,10".into(),
        // Single-connection syntax in multi mode.
        "AT+CIPCLOSE".into(),
    ] {
        host.at(&line, b"\r\nERROR\r\n").await;
    }
    // 5 links at once, and no sixth.
    let mut peers = Vec::new();
    let mut links = Vec::new();
    for id in 0..5u8 {
        host.cipstart(
            &format!("{id},\"TCP\",\"127.0.0.1\",{port}"),
            &format!("{id},CONNECT"),
        )
        .await;
        let peer = server.accept().await;
        links.push((id, "TCP", port, peer.remote.port(), 0));
        peers.push(peer);
    }
    host.at(
        &format!("AT+CIPSTARTEX=\"TCP\",\"127.0.0.1\",{port}"),
        b"\r\nERROR\r\n",
    )
    .await;
    // An id in use ("ALREADY CONNECTED" goes to the log only).
    host.at(
        &format!("AT+CIPSTART=2,\"TCP\",\"127.0.0.1\",{port}"),
        b"\r\nERROR\r\n",
    )
    .await;
    host.at("AT+CIPMUX=0", b"\r\nERROR\r\n").await;
    host.at("AT+CIPSTATE?", &cipstate(&links)).await;
    // A link the server closed cannot send.
    drop(peers.remove(4));
    host.expect(b"4,CLOSED\r\n").await;
    host.at("AT+CIPSEND=4,4", b"\r\nERROR\r\n").await;
    host.at(
        "AT+CIPCLOSE=5",
        b"0,CLOSED\r\n1,CLOSED\r\n2,CLOSED\r\n3,CLOSED\r\n\r\nOK\r\n",
    )
    .await;
    for mut peer in peers {
        peer.expect_eof().await;
    }
    host.alive().await;
}

/// `AT+CIPRECVDATA` asking for more than is buffered gets what is
/// buffered; with nothing buffered it is `ERROR` (§3.8).
#[tokio::test]
async fn ciprecvdata_longer_than_buffered_returns_what_is_there() {
    let server = TcpServer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+CIPRECVMODE=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPRECVMODE?", b"+CIPRECVMODE:1\r\n\r\nOK\r\n")
        .await;
    host.cipstart(
        &format!("1,\"TCP\",\"127.0.0.1\",{}", server.port),
        "1,CONNECT",
    )
    .await;
    let mut peer = server.accept().await;
    host.at("AT+CIPRECVDATA=1,100", b"\r\nERROR\r\n").await;
    peer.send(b"ten bytes!").await;
    host.expect(b"\r\n+IPD,1,10\r\n").await;
    host.at(
        "AT+CIPRECVLEN?",
        b"+CIPRECVLEN:-1,10,-1,-1,-1\r\n\r\nOK\r\n",
    )
    .await;
    host.at(
        "AT+CIPRECVDATA=1,100",
        b"+CIPRECVDATA:10,ten bytes!\r\nOK\r\n",
    )
    .await;
    host.at("AT+CIPRECVDATA=1,100", b"\r\nERROR\r\n").await;
    // With CIPDINFO=1 the sender comes first; a read in two parts is
    // followed by a fresh notice of what is left.
    host.at("AT+CIPDINFO=1", b"\r\nOK\r\n").await;
    peer.send(b"0123456789").await;
    host.expect(b"\r\n+IPD,1,10\r\n").await;
    let part = format!(
        "+CIPRECVDATA:4,\"127.0.0.1\",{},0123\r\nOK\r\n\r\n+IPD,1,6\r\n",
        server.port
    );
    host.at("AT+CIPRECVDATA=1,4", part.as_bytes()).await;
    let rest = format!(
        "+CIPRECVDATA:6,\"127.0.0.1\",{},456789\r\nOK\r\n",
        server.port
    );
    host.at("AT+CIPRECVDATA=1,4000", rest.as_bytes()).await;
    // The server closes with data unread: CLOSED waits for the read.
    peer.send(b"last").await;
    host.expect(b"\r\n+IPD,1,4\r\n").await;
    drop(peer);
    host.alive().await;
    let last = format!(
        "+CIPRECVDATA:4,\"127.0.0.1\",{},last\r\nOK\r\n1,CLOSED\r\n",
        server.port
    );
    host.at("AT+CIPRECVDATA=1,2048", last.as_bytes()).await;
    host.alive().await;
}

/// `AT+CIPDOMAIN` and `AT+PING` through the host's resolver and a real
/// round trip (§3.12).
#[tokio::test]
async fn cipdomain_and_ping_on_loopback() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at(
        "AT+CIPDOMAIN=\"localhost\"",
        b"+CIPDOMAIN:\"127.0.0.1\"\r\n\r\nOK\r\n",
    )
    .await;
    host.at(
        "AT+CIPDOMAIN=\"localhost\",2",
        b"+CIPDOMAIN:\"127.0.0.1\"\r\n\r\nOK\r\n",
    )
    .await;
    host.at("AT+CIPDOMAIN=\"no-such-host..invalid\"", b"\r\nERROR\r\n")
        .await;

    host.send(b"AT+PING=\"127.0.0.1\"\r\n").await;
    let out = String::from_utf8(host.read_until(b"\r\n\r\nOK\r\n").await).unwrap();
    let ms = out
        .strip_prefix("+PING:")
        .and_then(|rest| rest.strip_suffix("\r\n\r\nOK\r\n"))
        .and_then(|ms| ms.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(ms >= 1, "{out:?}");
    host.at(
        "AT+PING=\"no-such-host..invalid\"",
        b"+PING:TIMEOUT\r\n\r\nERROR\r\n",
    )
    .await;
    host.alive().await;
}

/// Passthrough keeps flow control (README, "Flow control"): a server
/// sends 50 MiB raw to a host that stalls, then reads slowly; every byte
/// arrives once, in order, and the modem's memory stays bounded (it stops
/// reading the socket while the host output is past its bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_passthrough_to_a_slow_host() {
    let (wsat, mut host, _server, peer) = tcp_link(&["AT+CIPMODE=1"]).await;
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;
    let sender = PatternSender::start(peer, TOTAL, WRITE_LIMIT);
    let mut rss = RssWatch::new(&wsat.proc);
    let held = stall(&sender, &mut rss).await;
    let mut slow = SlowHost::new(host, Some(SLOW));
    let (mut got, mut fast) = (0, FastPhase::default());
    while got < TOTAL {
        fast.note(&slow, got);
        let n = SAMPLE_EVERY.min(TOTAL - got);
        slow.pattern(got, n).await;
        got += n;
        rss.sample();
    }
    let send_time = sender.finish().await;
    assert!(slow.drained());
    report("passthrough raw", &wsat, &rss, held, &fast, send_time);
}

/// The other way: a host writes 16 MiB raw in passthrough as fast as the
/// modem takes it, to a server that reads nothing until the host is held
/// back, then slowly, then at full speed. Every byte arrives once, in
/// order, and the modem's memory stays bounded (it stops reading the host
/// while its sends wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 16 MiB from the host through passthrough to a slow server"]
async fn sixteen_megabytes_from_the_host_in_passthrough() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use wsat_testkit::sockets::done_or_held_back;
    const UP: usize = 16 * 1024 * 1024;
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+SYSMSG=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPMODE=1", b"\r\nOK\r\n").await;
    host.cipstart(&format!("\"TCP\",\"127.0.0.1\",{}", server.port), "CONNECT")
        .await;
    let mut peer = server.accept().await;
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;
    let started = Instant::now();
    let written = Arc::new(AtomicUsize::new(0));
    let progress = written.clone();
    let writer = tokio::spawn(async move {
        for offset in (0..UP).step_by(64 * 1024) {
            let chunk = pattern_bytes(offset, 64 * 1024);
            timeout(WRITE_LIMIT, host.stream.write_all(&chunk))
                .await
                .expect("the host was blocked too long")
                .expect("host write");
            progress.store(offset + chunk.len(), Ordering::Relaxed);
        }
        host
    });
    let mut rss = RssWatch::new(&wsat.proc);
    let held = done_or_held_back(&written, UP, HELD_BACK).await;
    rss.sample();
    let slow_from = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    let mut tick = tokio::time::interval(SLOW.tick);
    let mut next_sample = 0;
    while got < UP {
        let limit = if slow_from.elapsed() < SLOW.phase {
            tick.tick().await;
            SLOW.step
        } else {
            buf.len()
        };
        let n = timeout(WAIT, peer.stream.read(&mut buf[..limit]))
            .await
            .unwrap_or_else(|_| panic!("stalled after {got} bytes"))
            .unwrap();
        assert!(n > 0, "EOF after {got} bytes");
        assert_eq!(buf[..n], pattern_bytes(got, n)[..], "after {got} bytes");
        got += n;
        if got >= next_sample {
            rss.sample();
            next_sample += SAMPLE_EVERY;
        }
    }
    let mut host = timeout(WAIT, writer).await.unwrap().unwrap();
    println!(
        "passthrough up: {} MiB in order in {:.2?}; {:.1} MiB in flight while the server \
         stalled; wsat VmRSS peak {} KiB over {} samples, VmHWM {} KiB",
        UP >> 20,
        started.elapsed(),
        held as f64 / 1048576.0,
        rss.peak_kib,
        rss.samples,
        wsat.proc.peak_rss_kib()
    );
    assert!(
        held < UP,
        "the host wrote all of it while the server read nothing"
    );
    assert!(rss.peak_kib < RSS_LIMIT_KIB, "{} KiB", rss.peak_kib);
    // The server has every byte, so the host has been silent since: the
    // escape ends the mode.
    host.send(b"+++").await;
    host.expect(b"\r\n+QUITT\r\n").await;
    host.alive().await;
}

/// The limits of `AT+CIPSEND` (§3.4) and datagrams larger than one `+IPD`
/// (§3.8): 8192 bytes is one datagram, 8193 is `ERROR`; a 5000-byte
/// datagram is reported as 2920 bytes and the rest.
#[tokio::test]
async fn udp_sends_up_to_8192_and_large_datagrams_split_in_reports() {
    let peer = UdpPeer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let local = free_udp_port();
    host.cipstart(
        &format!("\"UDP\",\"127.0.0.1\",{},{local},0", peer.port),
        "CONNECT",
    )
    .await;
    let big = pattern_bytes(0, 8192);
    host.cipsend("8192", &big).await;
    assert_eq!(peer.recv().await, (big, loopback(local)));
    host.at("AT+CIPSEND=8193", b"\r\nERROR\r\n").await;
    host.at("AT+CIPSEND=0", b"\r\nERROR\r\n").await;

    let datagram = pattern_bytes(7, 5000);
    peer.send_to(&datagram, local).await;
    host.expect_ipd("2920", &datagram[..2920]).await;
    host.expect_ipd("2080", &datagram[2920..]).await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    host.alive().await;
}

/// `AT+CIPSENDEX` (§3.5): the data ends at `\0` before its length, `\\`
/// is one backslash, `\<c>` is `<c>`; `Recv` counts what is sent.
#[tokio::test]
async fn cipsendex_ends_at_backslash_zero() {
    let server = TcpServer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    host.cipstart(
        &format!("2,\"TCP\",\"127.0.0.1\",{}", server.port),
        "2,CONNECT",
    )
    .await;
    let mut peer = server.accept().await;
    host.at("AT+CIPSENDEX=2,20", b"\r\nOK\r\n\r\n>").await;
    host.send(br"a\b\\c\0").await;
    host.expect(b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n").await;
    peer.expect(br"ab\c").await;
    // Up to its length, without `\0`.
    host.at("AT+CIPSENDEX=2,4", b"\r\nOK\r\n\r\n>").await;
    host.send(b"full").await;
    host.expect(b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n").await;
    peer.expect(b"full").await;
    host.alive().await;
}

/// `+++` as the whole data of a normal `AT+CIPSEND`, after a silence,
/// cancels it: `SEND Canceled`, nothing sent (§3.4).
#[tokio::test]
async fn a_lone_escape_cancels_cipsend() {
    let (_wsat, mut host, _server, mut peer) = tcp_link(&[]).await;
    host.at("AT+CIPSEND=10", b"\r\nOK\r\n\r\n>").await;
    // The silence before an escape (§3.6: more than 20 ms) is the host's.
    tokio::time::sleep(Duration::from_millis(100)).await;
    host.send(b"+++").await;
    host.expect(b"\r\nSEND Canceled\r\n").await;
    host.alive().await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    peer.expect_eof().await;
}

/// `AT+RST` drops every socket link and the server without a report
/// (§1.7, §3): the peers see their connections end, the port no longer
/// listens, and the settings are the defaults after `ready`.
#[tokio::test]
async fn reset_drops_links_and_the_server_silently() {
    let server = TcpServer::bind().await;
    let port = closed_port().await;
    let wsat = Wsat::start_with(&["--restart-delay", "100"]);
    let mut host = wsat.quiet_host().await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    host.cipstart(
        &format!("0,\"TCP\",\"127.0.0.1\",{}", server.port),
        "0,CONNECT",
    )
    .await;
    let mut peer = server.accept().await;
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    let mut client = TcpPeer::connect(port).await;
    host.expect(b"1,CONNECT\r\n").await;

    host.at("AT+RST", b"\r\nOK\r\n").await;
    peer.expect_eof().await;
    client.expect_eof().await;
    host.expect(wsat_proto::testing::BOOT).await;
    wait_until_refused(port).await;
    host.at("ATE0", b"ATE0\r\n\r\nOK\r\n").await;
    host.at("AT+CIPMUX?", b"+CIPMUX:0\r\n\r\nOK\r\n").await;
    host.at("AT+CIPSERVER?", b"+CIPSERVER:0\r\n\r\nOK\r\n")
        .await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
}

/// A host that closes the AT port takes its modem's socket links and
/// server with it (as `closing_the_host_connection_closes_its_links`
/// does for WebSocket links).
#[tokio::test]
async fn closing_the_host_connection_closes_sockets_and_the_server() {
    let server = TcpServer::bind().await;
    let udp = UdpPeer::bind().await;
    let port = closed_port().await;
    let (wsat, mut host) = mux_modem().await;
    host.cipstart(
        &format!("0,\"TCP\",\"127.0.0.1\",{}", server.port),
        "0,CONNECT",
    )
    .await;
    let mut peer = server.accept().await;
    let local = free_udp_port();
    host.cipstart(
        &format!("1,\"UDP\",\"127.0.0.1\",{},{local},0", udp.port),
        "1,CONNECT",
    )
    .await;
    host.at(&format!("AT+CIPSERVER=1,{port}"), b"\r\nOK\r\n")
        .await;
    let mut client = TcpPeer::connect(port).await;
    host.expect(b"2,CONNECT\r\n").await;

    drop(host);
    peer.expect_eof().await;
    client.expect_eof().await;
    wait_until_refused(port).await;
    // The UDP port is free again.
    timeout(WAIT, async {
        while std::net::UdpSocket::bind(("0.0.0.0", local)).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the modem kept its UDP port");
    assert!(wsat.proc.peak_rss_kib() > 0);
}

/// In passthrough a dropped link is said only with `AT+SYSMSG` bit 2, and
/// then while still in passthrough (§3.2, §3.6: "connection-status
/// messages while in passthrough"); the module reconnects every
/// `AT+CIPRECONNINTV` × 100 ms while it stays in passthrough.
#[tokio::test]
async fn passthrough_reports_a_lost_link_and_reconnects() {
    let server = TcpServer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+SYSMSG=4", b"\r\nOK\r\n").await;
    host.at("AT+CIPMODE=1", b"\r\nOK\r\n").await;
    host.at("AT+CIPRECONNINTV=1", b"\r\nOK\r\n").await;
    host.cipstart(&format!("\"TCP\",\"127.0.0.1\",{}", server.port), "CONNECT")
        .await;
    let peer = server.accept().await;
    host.at("AT+CIPSEND", b"\r\nOK\r\n\r\n>").await;
    drop(peer);
    host.expect(b"CLOSED\r\n").await;
    let mut again = server.accept().await;
    host.expect(b"CONNECT\r\n").await;
    host.send(b"after").await;
    again.expect(b"after").await;
}

/// An SSL connect to servers that are no TLS server ends in `ERROR`, in
/// the `<timeout>` of `AT+CIPSTART` when the server says nothing (§3.3:
/// timeout in ms; §3.13).
#[tokio::test]
async fn ssl_to_a_bad_server_is_error_in_bounded_time() {
    let (wsat, _store) = Wsat::start_with_store(&[]);
    let mut host = wsat.quiet_host().await;
    for how in [Misbehaviour::Garbage, Misbehaviour::HangsUp] {
        let server = BadServer::start(how).await;
        let line = format!("AT+CIPSTART=\"SSL\",\"127.0.0.1\",{}", server.port);
        host.at(&line, b"\r\nERROR\r\n").await;
        host.alive().await;
    }
    let mut silent = BadServer::start(Misbehaviour::Silent).await;
    let started = Instant::now();
    let line = format!(
        "AT+CIPSTART=\"SSL\",\"127.0.0.1\",{},0,\"\",500",
        silent.port
    );
    host.at(&line, b"\r\nERROR\r\n").await;
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(450)..Duration::from_secs(3)).contains(&took),
        "{took:?}"
    );
    silent.dropped().await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
}

/// A full 8192-byte `AT+CIPSEND` over SSL comes back whole, in `+IPD`
/// reports of at most 2920 bytes however the TLS records fall.
#[tokio::test]
async fn ssl_carries_the_largest_send_both_ways() {
    let pki = Pki::new();
    let mut server = TlsSocketServer::start(&pki.server, None).await;
    let (wsat, _store) = Wsat::start_with_store(&[]);
    let mut host = wsat.quiet_host().await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    host.cipstart(
        &format!("1,\"SSL\",\"127.0.0.1\",{}", server.port),
        "1,CONNECT",
    )
    .await;
    assert!(server.handshake().await.is_ok());
    let data = pattern_bytes(0, 8192);
    host.cipsend("1,8192", &data).await;
    let mut slow = SlowHost::new(host, None);
    let mut got = 0;
    while got < data.len() {
        slow.expect(b"\r\n+IPD,1,").await;
        let n = slow.number(b':').await;
        assert!((1..=2920).contains(&n), "+IPD of {n}");
        slow.pattern(got, n).await;
        slow.expect(b"\r\n").await;
        got += n;
    }
    assert_eq!(got, 8192);
    slow.host.alive().await;
}

/// Switching a link back to active receive hands what passive mode
/// buffered over as `+IPD`, after the command's `OK` (§3.8).
#[tokio::test]
async fn leaving_passive_mode_hands_over_the_buffer_after_ok() {
    let server = TcpServer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+CIPRECVTYPE=2,1", b"\r\nOK\r\n").await;
    let mut lines = String::new();
    for id in 0..5 {
        lines += &format!("+CIPRECVTYPE:{id},{},0\r\n", u8::from(id == 2));
    }
    lines += "\r\nOK\r\n";
    host.at("AT+CIPRECVTYPE?", lines.as_bytes()).await;
    host.cipstart(
        &format!("2,\"TCP\",\"127.0.0.1\",{}", server.port),
        "2,CONNECT",
    )
    .await;
    let mut peer = server.accept().await;
    peer.send(b"held").await;
    host.expect(b"\r\n+IPD,2,4\r\n").await;
    host.at("AT+CIPRECVTYPE=2,0", b"\r\nOK\r\n\r\n+IPD,2,4:held\r\n")
        .await;
    peer.send(b"live").await;
    host.expect_ipd("2,4", b"live").await;
    host.alive().await;
}

/// A host that pipelines: the command, its data and the next command in
/// one write. The next command waits for `SEND OK` (§3.4).
#[tokio::test]
async fn cipsend_with_data_and_the_next_command_in_one_write() {
    let (_wsat, mut host, server, mut peer) = tcp_link(&[]).await;
    host.send(b"AT+CIPSEND=5\r\nhelloAT+CIPSTATUS\r\n").await;
    let status = format!(
        "\r\nOK\r\n\r\n>\r\nRecv 5 bytes\r\n\r\nSEND OK\r\nSTATUS:3\r\n\
         +CIPSTATUS:0,\"TCP\",\"127.0.0.1\",{},{},0\r\n\r\nOK\r\n",
        server.port,
        peer.remote.port()
    );
    host.expect(status.as_bytes()).await;
    peer.expect(b"hello").await;
    host.alive().await;
}

/// A send large enough to be taken before it is written (its `SEND OK`
/// leaves first), closed by the next command of the same write: the server
/// still gets every byte, then the close.
#[tokio::test]
async fn a_large_send_closed_at_once_arrives_whole() {
    let (_wsat, mut host, _server, mut peer) = tcp_link(&[]).await;
    let data = pattern_bytes(0, 8192);
    let mut write = b"AT+CIPSEND=8192\r\n".to_vec();
    write.extend_from_slice(&data);
    write.extend_from_slice(b"AT+CIPCLOSE\r\n");
    host.send(&write).await;
    host.expect(b"\r\nOK\r\n\r\n>\r\nRecv 8192 bytes\r\n\r\nSEND OK\r\nCLOSED\r\n\r\nOK\r\n")
        .await;
    peer.expect(&data).await;
    peer.expect_eof().await;
    host.alive().await;
}

/// `AT+CIPSENDL` takes a megabyte at the pace of the link and reports every
/// 1024 bytes written (`<had sent len>` in steps of 1024, `<port recv len>`
/// at least that), then `SEND OK` (§3.7).
#[tokio::test]
async fn cipsendl_streams_a_megabyte_with_progress_reports() {
    const LEN: usize = 1 << 20;
    let (_wsat, mut host, _server, mut peer) = tcp_link(&[]).await;
    host.at(&format!("AT+CIPSENDL={LEN}"), b"\r\nOK\r\n\r\n>")
        .await;
    let data = pattern_bytes(0, LEN);
    tokio::join!(host.send(&data), peer.expect(&data));
    let out = host.read_until(b"\r\nSEND OK\r\n").await;
    let text = String::from_utf8(out).expect("text");
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.pop(), Some("SEND OK"));
    assert_eq!(lines.len(), LEN / 1024, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let (sent, received) = line
            .strip_prefix("+CIPSENDL:")
            .and_then(|counts| counts.split_once(','))
            .unwrap_or_else(|| panic!("{line:?}"));
        let (sent, received): (usize, usize) = (sent.parse().unwrap(), received.parse().unwrap());
        assert_eq!(sent, (i + 1) * 1024);
        assert!((sent..=LEN).contains(&received), "{line}");
    }
    host.alive().await;
}

/// What drivers send (§3.3 "Who sends what"): Zephyr's TCP with keep-alive
/// 7200 and its bound UDP socket (remote `0.0.0.0`, port 65535, mode 2,
/// local IP `0.0.0.0`), which takes the first sender as its peer;
/// Adafruit's `AT+CIPSTART="TCP",…,10`.
#[tokio::test]
async fn driver_forms_of_cipstart() {
    let server = TcpServer::bind().await;
    let udp = UdpPeer::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.cipstart(
        &format!("\"TCP\",\"127.0.0.1\",{},10", server.port),
        "CONNECT",
    )
    .await;
    let _adafruit = server.accept().await;
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    host.cipstart(
        &format!("0,\"TCP\",\"127.0.0.1\",{},7200", server.port),
        "0,CONNECT",
    )
    .await;
    let mut zephyr = server.accept().await;
    host.cipsend("0,3", b"zep").await;
    zephyr.expect(b"zep").await;

    let local = free_udp_port();
    host.cipstart(
        &format!("1,\"UDP\",\"0.0.0.0\",65535,{local},2,\"0.0.0.0\""),
        "1,CONNECT",
    )
    .await;
    // No peer yet: nowhere to send.
    host.at("AT+CIPSEND=1,2", b"\r\nERROR\r\n").await;
    udp.send_to(b"first", local).await;
    host.expect_ipd("1,5", b"first").await;
    host.cipsend("1,5", b"reply").await;
    assert_eq!(udp.recv().await, (b"reply".to_vec(), loopback(local)));
    host.alive().await;
}

/// A link the peer closed is closed (§3.2, §3.9: `CLOSED` and the id is
/// free): the modem closes its side too, so a server that half-closed
/// (shutdown of its write side) sees the end of the connection.
#[tokio::test]
async fn a_link_closed_by_its_peer_is_closed_by_the_modem_too() {
    let server = TcpServer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    for (id, passive) in [(0, false), (1, true)] {
        host.at(
            &format!("AT+CIPRECVTYPE={id},{}", u8::from(passive)),
            b"\r\nOK\r\n",
        )
        .await;
        host.cipstart(
            &format!("{id},\"TCP\",\"127.0.0.1\",{}", server.port),
            &format!("{id},CONNECT"),
        )
        .await;
        let mut peer = server.accept().await;
        if passive {
            // Closed with data unread: CLOSED once it is read.
            peer.send(b"bye").await;
            host.expect(format!("\r\n+IPD,{id},3\r\n").as_bytes()).await;
            peer.stream.shutdown().await.unwrap();
            host.alive().await;
            let read = format!("+CIPRECVDATA:3,bye\r\nOK\r\n{id},CLOSED\r\n");
            host.at(&format!("AT+CIPRECVDATA={id},10"), read.as_bytes())
                .await;
        } else {
            peer.stream.shutdown().await.unwrap();
            host.expect(format!("{id},CLOSED\r\n").as_bytes()).await;
        }
        peer.expect_eof().await;
    }
    host.alive().await;
}

/// `AT+CIPSSLCCN` asks for the server's name to be checked against the
/// certificate in modes 2 and 3 (§3.13); the address is not the name.
#[tokio::test]
async fn ssl_common_name_is_checked_when_set() {
    let pki = Pki::new();
    let mut server = TlsSocketServer::start(&pki.server, None).await;
    let (wsat, _store) = Wsat::start_with_store(&[]);
    let mut host = wsat.quiet_host().await;
    host.store(CLIENT_CA, 0, &pki.ca.pem).await;
    host.at("AT+CIPSSLCCONF=2,0,0", b"\r\nOK\r\n").await;
    host.at("AT+CIPSSLCCN=\"other.example\"", b"\r\nOK\r\n")
        .await;
    host.at("AT+CIPSSLCCN?", b"+CIPSSLCCN:0,other.example\r\n\r\nOK\r\n")
        .await;
    let start = format!("\"SSL\",\"127.0.0.1\",{}", server.port);
    host.at(&format!("AT+CIPSTART={start}"), b"\r\nERROR\r\n")
        .await;
    assert!(server.handshake().await.is_err());
    host.at("AT+CIPSSLCCN=\"localhost\"", b"\r\nOK\r\n").await;
    host.cipstart(&start, "CONNECT").await;
    let hello = server.handshake().await.expect("a handshake").hello;
    assert_eq!(hello.sni.as_deref(), Some("localhost"));
    host.cipsend("2", b"cn").await;
    host.expect_ipd("2", b"cn").await;
    host.alive().await;
}

/// Passive receive over UDP (§3.8): one datagram per `AT+CIPRECVDATA`,
/// with its own sender under `AT+CIPDINFO=1`, and a fresh notice of what
/// is left after each read.
#[tokio::test]
async fn passive_udp_reads_one_datagram_at_a_time() {
    let a = UdpPeer::bind().await;
    let b = UdpPeer::bind().await;
    let (_wsat, mut host) = mux_modem().await;
    host.at("AT+CIPRECVTYPE=0,1", b"\r\nOK\r\n").await;
    host.at("AT+CIPDINFO=1", b"\r\nOK\r\n").await;
    let local = free_udp_port();
    host.cipstart(
        &format!("0,\"UDP\",\"127.0.0.1\",{},{local},2", a.port),
        "0,CONNECT",
    )
    .await;
    a.send_to(b"abc", local).await;
    b.send_to(b"defgh", local).await;
    a.send_to(b"ij", local).await;
    // The notice counts what was buffered when the first datagram came.
    host.expect(b"\r\n+IPD,0,3\r\n").await;
    // Poll (bounded) until all three are in.
    let all = b"+CIPRECVLEN:10,-1,-1,-1,-1\r\n\r\nOK\r\n";
    let deadline = Instant::now() + WAIT;
    loop {
        host.send(b"AT+CIPRECVLEN?\r\n").await;
        let answer = host.read_until(b"OK\r\n").await;
        if answer == all {
            break;
        }
        assert!(Instant::now() < deadline, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (data, from, left) in [
        (&b"abc"[..], a.port, Some(7)),
        (b"defgh", b.port, Some(2)),
        (b"ij", a.port, None),
    ] {
        let mut answer = format!("+CIPRECVDATA:{},\"127.0.0.1\",{from},", data.len()).into_bytes();
        answer.extend_from_slice(data);
        answer.extend_from_slice(b"\r\nOK\r\n");
        if let Some(left) = left {
            answer.extend_from_slice(format!("\r\n+IPD,0,{left}\r\n").as_bytes());
        }
        host.at("AT+CIPRECVDATA=0,100", &answer).await;
    }
    host.at("AT+CIPRECVDATA=0,100", b"\r\nERROR\r\n").await;
    host.alive().await;
}
