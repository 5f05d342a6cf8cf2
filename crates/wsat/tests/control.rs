//! The control API (`--control`): inspection and each fault end to end,
//! with what the host sees byte for byte.
use std::time::{Duration, Instant};

use wsat_testkit::sockets::{TcpPeer, TcpServer};
use wsat_testkit::{closed_port, echo_server, http, Controlled, Host};

/// Socket link 0 (single-connection mode) to a peer of the test's.
async fn socket_link(host: &mut Host) -> TcpPeer {
    let server = TcpServer::bind().await;
    host.cipstart(&format!("\"TCP\",\"127.0.0.1\",{}", server.port), "CONNECT")
        .await;
    server.accept().await
}

/// A controlled wsat with one quiet host; the host's modem is number 1.
async fn setup(args: &[&str]) -> (Controlled, Host) {
    let wsat = Controlled::start(args).await;
    let host = Host::connect_quiet(wsat.addr).await;
    (wsat, host)
}

#[tokio::test]
async fn modems_and_links_are_listed_with_their_bytes() {
    let (wsat, mut host) = setup(&["--firmware", "v4.1"]).await;
    let uri = echo_server().await;
    host.open(0, &uri).await;
    host.send_data("0,4", b"ping").await;
    host.expect(b"+WS_DATA:0,4,ping\r\n").await;
    let answer = http::get(wsat.control, "/modems").await;
    assert_eq!(answer.status, 200);
    let modems: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let modem = &modems[0];
    assert_eq!(modem["id"], 1);
    assert_eq!(modem["firmware"], "v4.1");
    assert_eq!(modem["station"], "wsat");
    assert!(modem["port"]
        .as_str()
        .unwrap()
        .starts_with("tcp 127.0.0.1:"));
    let link = &modem["links"][0];
    assert_eq!(link["link"], "ws0");
    assert_eq!(link["state"], "open");
    assert_eq!(link["peer"], format!("{uri}"));
    // The handshake and one masked 4-byte frame out; the 101 and a frame in.
    assert!(link["bytes_sent"].as_u64().unwrap() > 10, "{link}");
    assert!(link["bytes_received"].as_u64().unwrap() > 6, "{link}");
    let one = http::get(wsat.control, "/modems/1").await;
    assert_eq!(one.status, 200);
    assert!(one.body.contains("\"ws0\""));
}

#[tokio::test]
async fn armed_answers_reports_and_a_reboot() {
    let (wsat, mut host) = setup(&[]).await;
    wsat.fault(
        1,
        r#"{"fault":"answer","prefix":"AT+CIPSTATE","answer":"busy"}"#,
    )
    .await;
    host.at("AT+CIPSTATE?", b"\r\nbusy p...\r\n").await;
    host.at("AT+CIPSTATE?", b"\r\nOK\r\n").await;
    wsat.fault(
        1,
        r#"{"fault":"answer","prefix":"AT","answer":{"err_code":16842753}}"#,
    )
    .await;
    host.at("AT+GMR", b"ERR CODE:0x01010001\r\n\r\nERROR\r\n")
        .await;
    wsat.fault(
        1,
        r#"{"fault":"report","data":"+IPD,3:abc\r\n","when":"after_ok"}"#,
    )
    .await;
    host.at("AT", b"\r\nOK\r\n+IPD,3:abc\r\n").await;
    wsat.fault(1, r#"{"fault":"reboot"}"#).await;
    host.expect(b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n")
        .await;
    host.at("ATE0", b"ATE0\r\n\r\nOK\r\n").await;
    host.alive().await;
}

#[tokio::test]
async fn a_reset_link_is_lost_and_reconnects() {
    let (wsat, mut host) = setup(&[]).await;
    let uri = echo_server().await;
    host.open(0, &uri).await;
    wsat.fault(1, r#"{"fault":"reset","link":"ws0"}"#).await;
    host.expect(b"+WS_DISCONNECTED:0\r\n").await;
    host.at(
        "AT+WSOPEN?",
        format!("+WSOPEN:0,3,\"{uri}\"\r\n\r\nOK\r\n").as_bytes(),
    )
    .await;
    // ESP-AT's reconnect, 10 s later.
    host.expect_within(Duration::from_secs(15), b"+WS_CONNECTED:0\r\n")
        .await;
    // A link without a connection cannot be reset.
    let answer = http::post(
        wsat.control,
        "/modems/1/faults",
        r#"{"fault":"reset","link":"socket2"}"#,
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
}

#[tokio::test]
async fn the_next_connect_fails_as_asked() {
    let (wsat, mut host) = setup(&[]).await;
    let uri = echo_server().await;
    wsat.fault(1, r#"{"fault":"fail_connect","how":{"http_status":503}}"#)
        .await;
    let open = format!("AT+WSOPEN=0,\"{uri}\"");
    host.at(&open, b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n").await;
    wsat.fault(
        1,
        r#"{"fault":"fail_connect","link":"socket0","how":"refused"}"#,
    )
    .await;
    let port = uri.rsplit(':').next().unwrap();
    let start = format!("AT+CIPSTART=\"TCP\",\"127.0.0.1\",{port}");
    host.at(&start, b"\r\nERROR\r\n").await;
    // Used up: the next ones connect.
    host.at(&start, b"CONNECT\r\n\r\nOK\r\n").await;
    host.open(0, &uri).await;
}

#[tokio::test]
async fn a_stalled_socket_delivers_only_after_the_stall() {
    let (wsat, mut host) = setup(&[]).await;
    let mut peer = socket_link(&mut host).await;
    // The stall's 300 ms start when the modem takes the fault: before the
    // API answers, after this.
    let stalled = Instant::now();
    wsat.fault(1, r#"{"fault":"stall","link":"socket0","ms":300}"#)
        .await;
    peer.send(b"late").await;
    host.expect(b"\r\n+IPD,4:late\r\n").await;
    assert!(stalled.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn output_in_chunks_and_the_ap_lost_and_back() {
    let (wsat, mut host) = setup(&[]).await;
    wsat.fault(1, r#"{"fault":"chunk_output","bytes":2,"delay_ms":20}"#)
        .await;
    let started = Instant::now();
    host.at("AT+CWMODE?", b"+CWMODE:1\r\n\r\nOK\r\n").await;
    // 18 bytes in 9 pieces, 20 ms apart.
    assert!(started.elapsed() >= Duration::from_millis(160));
    wsat.fault(1, r#"{"fault":"chunk_output","bytes":0,"delay_ms":0}"#)
        .await;
    wsat.fault(1, r#"{"fault":"ap_lost"}"#).await;
    host.expect(b"WIFI DISCONNECT\r\n").await;
    let port = closed_port().await;
    host.at(
        &format!("AT+CIPSTART=\"TCP\",\"127.0.0.1\",{port}"),
        b"\r\nERROR\r\n",
    )
    .await;
    wsat.fault(1, r#"{"fault":"ap_back"}"#).await;
    host.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n").await;
}

#[tokio::test]
async fn bad_requests_get_a_clear_error() {
    let wsat = Controlled::start(&[]).await;
    let _host = Host::connect_quiet(wsat.addr).await;
    for (path, body, status, needle) in [
        (
            "/modems/1/faults",
            r#"{"fault":"nope"}"#,
            400,
            "unknown variant",
        ),
        ("/modems/1/faults", "{", 400, "line 1"),
        (
            "/modems/1/faults",
            r#"{"fault":"reset","link":"ws7"}"#,
            400,
            "no link",
        ),
        (
            "/modems/9/faults",
            r#"{"fault":"reboot"}"#,
            404,
            "no modem 9",
        ),
        (
            "/modems/x/faults",
            r#"{"fault":"reboot"}"#,
            400,
            "not a modem id",
        ),
    ] {
        let answer = http::post(wsat.control, path, body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(answer.body.contains(needle), "{body}: {}", answer.body);
    }
    let answer = http::get(wsat.control, "/nothing").await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn a_shaped_link_is_late_both_ways() {
    let (wsat, mut host) = setup(&[]).await;
    let mut peer = socket_link(&mut host).await;
    wsat.fault(1, r#"{"fault":"shape","link":"socket0","latency_ms":200}"#)
        .await;
    let sent = Instant::now();
    peer.send(b"late").await;
    host.expect(b"\r\n+IPD,4:late\r\n").await;
    assert!(sent.elapsed() >= Duration::from_millis(200));
    host.send(b"AT+CIPSEND=3\r\n").await;
    host.expect(b"\r\nOK\r\n\r\n>").await;
    let sent = Instant::now();
    host.send(b"abc").await;
    host.expect(b"\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n").await;
    peer.expect(b"abc").await;
    assert!(sent.elapsed() >= Duration::from_millis(200));
    // A link without a connection has no stream to shape.
    host.at("AT+CIPCLOSE", b"CLOSED\r\n\r\nOK\r\n").await;
    let answer = http::post(
        wsat.control,
        "/modems/1/faults",
        r#"{"fault":"shape","link":"socket0","latency_ms":5}"#,
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
}
