//! WebSocket semantics through the real binary, against a server that writes
//! raw frames and records what the modem sends: receive formats,
//! fragmentation, control frames, keepalive, close, loss and reconnect.
use std::time::Duration;

use wsat_testkit::raw::{server_frame, Answer, Frame, RawConn, RawListener};
use wsat_testkit::{Host, Wsat};

/// A quiet host with link 0 open to a raw server; `setup` runs before the open.
async fn open_link(wsat: &Wsat, setup: &[&str]) -> (Host, RawListener, RawConn) {
    let server = RawListener::bind().await;
    let mut host = wsat.quiet_host().await;
    for line in setup {
        host.at(line, b"\r\nOK\r\n").await;
    }
    let conn = host.open_raw(0, &server).await;
    (host, server, conn)
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Frame {
    Frame {
        fin,
        opcode,
        payload: payload.to_vec(),
    }
}

#[tokio::test]
async fn receive_formats_are_cut_at_buffer_size_whatever_tcp_does() {
    let wsat = Wsat::start();
    let (mut host, _server, mut conn) =
        open_link(&wsat, &["AT+WSCFG=0,30,60,4", "AT+WSDATAFMT=0,0,63"]).await;
    // A 10-byte frame written one byte per TCP segment.
    for byte in server_frame(true, 2, b"abcdefghij") {
        conn.send_raw(&[byte]).await;
    }
    host.expect(
        b"+WS_DATA:0,2,1,10,0,4,abcd\r\n+WS_DATA:0,2,1,10,4,4,efgh\r\n+WS_DATA:0,2,1,10,8,2,ij\r\n",
    )
    .await;

    // Per frame: one header and one trailer around the frame's chunks.
    host.at("AT+WSDATAFMT=0,1,63", b"\r\nOK\r\n").await;
    conn.send_frame(true, 1, b"abcdefghij").await;
    host.expect(b"+WS_DATA:0,1,1,10,0,4,abcdefghij\r\n").await;

    // Per message, with a ping between fragments: the ping is answered and
    // nothing of it reaches the host.
    host.at("AT+WSDATAFMT=0,2,63", b"\r\nOK\r\n").await;
    let mut wire = server_frame(false, 1, b"abc");
    wire.extend(server_frame(true, 9, b"p!"));
    wire.extend(server_frame(false, 0, b"defgh"));
    wire.extend(server_frame(true, 0, b"ij"));
    conn.send_raw(&wire).await;
    host.expect(b"+WS_DATA:0,1,0,3,0,3,abcdefghij\r\n").await;
    assert_eq!(conn.read_frame().await, frame(true, 10, b"p!"));

    // The default format is the historic one; an empty frame reports 0 bytes.
    host.at("AT+WSDATAFMT=0", b"\r\nOK\r\n").await;
    conn.send_frame(true, 1, b"").await;
    host.expect(b"+WS_DATA:0,0,\r\n").await;
    host.alive().await;
}

#[tokio::test]
async fn the_data_format_survives_close_and_reopen() {
    let wsat = Wsat::start();
    let (mut host, server, mut conn) = open_link(&wsat, &["AT+WSDATAFMT=0,0,36"]).await;
    conn.send_frame(true, 1, b"x").await;
    host.expect(b"+WS_DATA:0,1,x\r\n").await;
    // Close without the server answering: OK within a second.
    host.send(b"AT+WSCLOSE=0\r\n").await;
    assert_eq!(
        conn.read_frame().await,
        frame(true, 8, &1000u16.to_be_bytes())
    );
    host.expect(b"\r\nOK\r\n").await;
    let mut conn = host.open_raw(0, &server).await;
    conn.send_frame(true, 1, b"y").await;
    host.expect(b"+WS_DATA:0,1,y\r\n").await;
}

#[tokio::test]
async fn fragmented_sends_and_host_control_frames() {
    let wsat = Wsat::start();
    let (mut host, _server, mut conn) = open_link(&wsat, &[]).await;
    host.send_data("0,3,1,,0", b"abc").await;
    host.send_data("0,2,0,,0", b"de").await;
    // A new message may not start inside an unfinished one.
    host.at("AT+WSSEND=0,1,2", b"\r\nERROR\r\n").await;
    // The final fragment carries data.
    host.send_data("0,1,0", b"f").await;
    assert_eq!(conn.read_frame().await, frame(false, 1, b"abc"));
    assert_eq!(conn.read_frame().await, frame(false, 0, b"de"));
    assert_eq!(conn.read_frame().await, frame(true, 0, b"f"));
    // A continuation with no message to continue.
    host.at("AT+WSSEND=0,1,0", b"\r\nERROR\r\n").await;

    // Ping from the host; the server's pong produces nothing.
    host.send_data("0,4,9", b"ping").await;
    assert_eq!(conn.read_frame().await, frame(true, 9, b"ping"));
    conn.send_frame(true, 10, b"ping").await;
    // Control frames over 125 bytes and fragmented control frames.
    host.at("AT+WSSEND=0,126,9", b"\r\nERROR\r\n").await;
    host.at("AT+WSSEND=0,4,9,,0", b"\r\nERROR\r\n").await;
    // An empty frame has no prompt.
    host.at("AT+WSSEND=0,0,2", b"\r\nSEND OK\r\n").await;
    assert_eq!(conn.read_frame().await, frame(true, 2, b""));
    host.alive().await;
}

#[tokio::test]
async fn server_pings_are_answered_with_their_payload() {
    let wsat = Wsat::start();
    let (mut host, _server, mut conn) = open_link(&wsat, &[]).await;
    conn.send_frame(true, 9, b"hello?").await;
    assert_eq!(conn.read_frame().await, frame(true, 10, b"hello?"));
    conn.send_frame(true, 1, b"after").await;
    // Nothing but the data frame reached the host.
    host.expect(b"+WS_DATA:0,5,after\r\n").await;
}

#[tokio::test]
async fn a_server_close_is_reported_echoed_and_cleaned_up() {
    let wsat = Wsat::start();
    let (mut host, server, mut conn) = open_link(&wsat, &[]).await;
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"going away");
    conn.send_frame(true, 8, &payload).await;
    host.expect(b"+WS_CLOSED:0\r\n").await;
    assert_eq!(
        conn.read_frame().await,
        frame(true, 8, &1001u16.to_be_bytes())
    );
    drop(conn);
    // Cleaned up once the server drops TCP (state 4 until then); no reconnect.
    let closing = format!("+WSOPEN:0,4,\"{}\"\r\n\r\nOK\r\n", server.uri);
    loop {
        host.send(b"AT+WSOPEN?\r\n").await;
        let query = host.read_until(b"\r\nOK\r\n").await;
        if query == b"\r\nOK\r\n" {
            break;
        }
        assert_eq!(String::from_utf8(query).unwrap(), closing);
        tokio::task::yield_now().await;
    }
    host.alive().await;
}

#[tokio::test]
async fn wsclose_runs_the_close_handshake() {
    let wsat = Wsat::start();
    let (mut host, _server, mut conn) = open_link(&wsat, &[]).await;
    host.send(b"AT+WSCLOSE=0\r\n").await;
    assert_eq!(
        conn.read_frame().await,
        frame(true, 8, &1000u16.to_be_bytes())
    );
    conn.send_frame(true, 8, &1000u16.to_be_bytes()).await;
    host.expect(b"\r\nOK\r\n").await;
    conn.expect_eof().await;
    host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
}

#[tokio::test]
async fn loss_reports_disconnected_and_reconnects_after_ten_seconds() {
    let wsat = Wsat::start();
    let (mut host, server, conn) = open_link(&wsat, &[]).await;
    drop(conn);
    host.expect(b"+WS_DISCONNECTED:0\r\n").await;
    let state3 = format!("+WSOPEN:0,3,\"{}\"\r\n\r\nOK\r\n", server.uri);
    host.at("AT+WSOPEN?", state3.as_bytes()).await;
    // Sending while the link is down is an error, with no extra report.
    host.at("AT+WSSEND=0,1", b"\r\nERROR\r\n").await;
    // The reconnect comes by itself (ESP-AT waits 10 s).
    let mut conn = server
        .accept_within(Duration::from_secs(20), Answer::Upgrade)
        .await;
    host.expect(b"+WS_CONNECTED:0\r\n").await;
    let state2 = format!("+WSOPEN:0,2,\"{}\"\r\n\r\nOK\r\n", server.uri);
    host.at("AT+WSOPEN?", state2.as_bytes()).await;
    host.send_data("0,2", b"ok").await;
    assert_eq!(conn.read_frame().await, frame(true, 1, b"ok"));
    // AT+WSCLOSE stops it for good.
    host.send(b"AT+WSCLOSE=0\r\n").await;
    conn.read_frame().await;
    drop(conn);
    host.expect(b"\r\nOK\r\n").await;
    host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
}

#[tokio::test]
async fn keepalive_pings_and_a_missing_pong_loses_the_link() {
    let wsat = Wsat::start();
    // Ping every second, give up one second after an unanswered ping.
    let (mut host, server, mut conn) = open_link(&wsat, &["AT+WSCFG=0,1,1"]).await;
    // Answered pings keep the link up.
    for _ in 0..2 {
        let ping = conn.read_frame().await;
        assert_eq!((ping.fin, ping.opcode), (true, 9));
        conn.send_frame(true, 10, &ping.payload).await;
    }
    // An unanswered one loses it.
    let ping = conn.read_frame().await;
    assert_eq!(ping.opcode, 9);
    host.expect(b"+WS_DISCONNECTED:0\r\n").await;
    let state3 = format!("+WSOPEN:0,3,\"{}\"\r\n\r\nOK\r\n", server.uri);
    host.at("AT+WSOPEN?", state3.as_bytes()).await;
    host.at("AT+WSCLOSE=0", b"\r\nOK\r\n").await;
}

#[tokio::test]
async fn protocol_violations_fail_the_link_with_their_close_code() {
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("masked frame", vec![0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1], 1002),
        (
            "continuation without a start",
            server_frame(true, 0, b"x"),
            1002,
        ),
        ("reserved opcode", server_frame(true, 3, b"x"), 1002),
        ("fragmented ping", server_frame(false, 9, b"x"), 1002),
        (
            "invalid UTF-8 text",
            server_frame(true, 1, &[0xC3, 0x28]),
            1007,
        ),
    ];
    let wsat = Wsat::start();
    for (what, wire, code) in cases {
        let (mut host, _server, mut conn) = open_link(&wsat, &[]).await;
        conn.send_raw(&wire).await;
        host.expect(b"+WS_DISCONNECTED:0\r\n").await;
        let close = conn.read_frame().await;
        assert_eq!(close.opcode, 8, "{what}");
        assert_eq!(close.payload[..2], code.to_be_bytes(), "{what}");
        conn.expect_eof().await;
        // Then as for any loss: state 3 (and a reconnect after 10 s,
        // checked in the core's tests).
        let state = format!("+WSOPEN:0,3,\"{}\"\r\n\r\nOK\r\n", _server.uri);
        host.at("AT+WSOPEN?", state.as_bytes()).await;
        host.at("AT+WSCLOSE=0", b"\r\nOK\r\n").await;
    }
}
