//! `wsat peer` driven through its control API: through the modem (what a
//! host driver's test does with it) and with a raw client that sees every
//! byte the peer writes.
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use wsat_proto::ws::accept_key;
use wsat_testkit::http;
use wsat_testkit::peer::{Peer, RawClient, KEY};
use wsat_testkit::raw::Frame;
use wsat_testkit::rig::Launch;
use wsat_testkit::{Wsat, WAIT};

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Frame {
    Frame {
        fin,
        opcode,
        payload: payload.to_vec(),
    }
}

/// A frame's length on the wire from a server (no mask).
fn wire_len(payload: usize) -> u64 {
    let ext = match payload {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    (2 + ext + payload) as u64
}

/// `wsat -v` with its stderr kept, and a quiet host on it.
async fn verbose_modem() -> (Wsat, wsat_testkit::Host) {
    let launch = Launch {
        keep_stderr: true,
        ..Launch::default()
    };
    let wsat = Wsat::launch(&launch, &["-v"]);
    let host = wsat.quiet_host().await;
    (wsat, host)
}

#[tokio::test]
async fn echoes_through_the_modem_and_counts_and_logs_what_came() {
    let peer = Peer::start().await;
    let wsat = Wsat::start();
    let mut host = wsat.host().await;
    host.documented_open_send_echo(&peer.uri).await;
    let all = peer.get("/connections").await;
    let conns = all.as_array().unwrap();
    assert_eq!(conns.len(), 1, "{all}");
    let conn = &conns[0];
    assert_eq!(conn["id"], 1);
    assert_eq!(conn["state"], "open");
    assert_eq!(conn["handshake"], json!({ "mode": "accept" }));
    assert_eq!(conn["path"], "/");
    assert_eq!(conn["echo"], true);
    assert_eq!(
        (&conn["messages_in"], &conn["messages_out"]),
        (&json!(1), &json!(1))
    );
    // The request and a 4-byte masked frame in; the 101 and a 4-byte frame out.
    assert!(conn["bytes_in"].as_u64().unwrap() > 10, "{conn}");
    assert!(conn["bytes_out"].as_u64().unwrap() > 6, "{conn}");
    let log = peer.get("/log").await;
    assert_eq!(log[0]["id"], 1);
    let text = json!({ "seq": 1, "type": "text", "len": 4, "text": "test", "hex": "74657374" });
    assert_eq!(log[0]["messages"][0], text, "{log}");
}

/// The issue's example: the peer pushes a 3-fragment message, the host sees
/// the reports; the peer closes with 4000 "bye", the host sees +WS_CLOSED.
#[tokio::test]
async fn a_pushed_fragmented_message_and_a_close_reach_the_host() {
    let peer = Peer::start().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.open(0, &peer.uri).await;
    let sent = peer
        .post(
            "/connections/1/send",
            r#"{"type":"text","data":"abcdefghij","fragments":3}"#,
        )
        .await;
    assert_eq!(sent, json!({ "type": "text", "size": 10, "fragments": 3 }));
    // One report per frame in the default format.
    host.expect(b"+WS_DATA:0,4,abcd\r\n+WS_DATA:0,3,efg\r\n+WS_DATA:0,3,hij\r\n")
        .await;

    let closed = peer
        .post("/connections/1/close", r#"{"code":4000,"reason":"bye"}"#)
        .await;
    assert_eq!(closed, json!({ "code": 4000, "reason": "bye" }));
    host.expect(b"+WS_CLOSED:0\r\n").await;
    // The modem's answer carries the code back.
    let close = peer.wait_logged(1, "close").await;
    assert_eq!(
        (&close["code"], &close["reason"]),
        (&json!(4000), &json!(""))
    );
    let conn = peer.wait_state(1, "closed").await;
    assert_eq!(conn["ended"], "closed");
    assert_eq!(conn["messages_out"], 1);
    host.alive().await;
}

#[tokio::test]
async fn a_ping_is_answered_by_the_modem_with_its_payload() {
    let peer = Peer::start().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.open(0, &peer.uri).await;
    let answer = peer
        .post("/connections/1/ping", r#"{"payload":"hi"}"#)
        .await;
    assert_eq!(answer, json!({ "ping": 2 }));
    let mut pong = peer.wait_logged(1, "pong").await;
    // Whatever the modem's own keepalive pings did to the numbering.
    pong.as_object_mut().unwrap().remove("seq");
    assert_eq!(pong, json!({ "type": "pong", "len": 2, "hex": "6869" }));
    host.alive().await;
}

#[tokio::test]
async fn a_stalled_handshake_times_the_open_out_and_once_means_once() {
    let peer = Peer::start().await;
    let set = peer
        .put("/handshake", r#"{"mode":"stall","once":true}"#)
        .await;
    let expected = json!({ "all": { "mode": "accept" }, "once": { "mode": "stall", "ms": null } });
    assert_eq!(set, expected);
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let start = Instant::now();
    host.at(
        &format!("AT+WSOPEN=0,\"{}\",,1000", peer.uri),
        b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n",
    )
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    let conn = peer.wait_state(1, "closed").await;
    assert_eq!(conn["ended"], "the client closed the stalled handshake");
    assert_eq!(conn["bytes_out"], 0);
    // The next connection is accepted as usual.
    assert_eq!(peer.get("/handshake").await["once"], Value::Null);
    host.open(0, &peer.uri).await;
    assert_eq!(peer.connection(2).await["state"], "open");
}

#[tokio::test]
async fn a_handshake_stalled_for_a_time_is_then_accepted() {
    let peer = Peer::start().await;
    peer.put("/handshake", r#"{"mode":"stall","ms":300}"#).await;
    let start = Instant::now();
    let _client = RawClient::open(peer.addr).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        peer.connection(1).await["handshake"],
        json!({ "mode": "stall", "ms": 300 })
    );
}

#[tokio::test]
async fn an_http_503_fails_the_open_and_v_says_why() {
    let peer = Peer::start().await;
    peer.put("/handshake", r#"{"mode":"status","status":503}"#)
        .await;
    let (mut wsat, mut host) = verbose_modem().await;
    let open = format!("AT+WSOPEN=0,\"{}\"", peer.uri);
    host.at(&open, b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n").await;
    let line = timeout(WAIT, wsat.proc.stderr_line("handshake refused"))
        .await
        .expect("no log line");
    assert!(
        line.contains("link 0: handshake refused: HTTP 503"),
        "{line}"
    );
    // For every connection until told otherwise; the response is a plain one.
    let client = RawClient::connect(peer.addr, "/").await;
    assert!(
        client
            .response
            .starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{}",
        client.response
    );
    drop(client);
    for id in [1, 2] {
        let conn = peer.wait_state(id, "closed").await;
        assert_eq!(conn["ended"], "handshake refused");
    }
}

#[tokio::test]
async fn a_wrong_accept_key_fails_the_open() {
    let peer = Peer::start().await;
    peer.put("/handshake", r#"{"mode":"bad_accept"}"#).await;
    let (mut wsat, mut host) = verbose_modem().await;
    let open = format!("AT+WSOPEN=0,\"{}\"", peer.uri);
    host.at(&open, b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n").await;
    let line = timeout(WAIT, wsat.proc.stderr_line("handshake refused"))
        .await
        .expect("no log line");
    assert!(line.contains("a wrong one"), "{line}");
    let client = RawClient::connect(peer.addr, "/").await;
    assert!(
        client.response.starts_with("HTTP/1.1 101 "),
        "{}",
        client.response
    );
    let accept = client
        .header("Sec-WebSocket-Accept")
        .expect("an accept header");
    assert_ne!(accept, accept_key(KEY.as_bytes()));
}

#[tokio::test]
async fn a_dropped_connection_is_reported_disconnected() {
    let peer = Peer::start().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    for (id, how) in [(1, "rst"), (2, "fin")] {
        host.open(0, &peer.uri).await;
        let body = format!(r#"{{"how":"{how}"}}"#);
        let dropped = peer.post(&format!("/connections/{id}/drop"), &body).await;
        assert_eq!(dropped, json!({ "dropped": how }));
        host.expect(b"+WS_DISCONNECTED:0\r\n").await;
        // No reconnect: the next open is this test's.
        host.at("AT+WSCLOSE=0", b"\r\nOK\r\n").await;
        let conn = peer.connection(id).await;
        assert_eq!(conn["state"], "closed");
        assert_eq!(conn["ended"], format!("dropped ({how})"));
    }
}

#[tokio::test]
async fn frames_on_the_wire_are_exact() {
    let peer = Peer::start().await;
    let mut client = RawClient::open(peer.addr).await;
    let sent = peer
        .post(
            "/connections/1/send",
            r#"{"type":"binary","size":70000,"fragments":3}"#,
        )
        .await;
    assert_eq!(
        sent,
        json!({ "type": "binary", "size": 70000, "fragments": 3 })
    );
    let pattern: Vec<u8> = (0..70000).map(|i| i as u8).collect();
    assert_eq!(
        client.read_frame().await,
        frame(false, 2, &pattern[..23334])
    );
    assert_eq!(
        client.read_frame().await,
        frame(false, 0, &pattern[23334..46667])
    );
    assert_eq!(client.read_frame().await, frame(true, 0, &pattern[46667..]));
    // The text pattern, and more fragments than bytes: empty frames.
    peer.post("/connections/1/send", r#"{"size":2,"fragments":3}"#)
        .await;
    assert_eq!(client.read_frame().await, frame(false, 1, b"0"));
    assert_eq!(client.read_frame().await, frame(false, 0, b"1"));
    assert_eq!(client.read_frame().await, frame(true, 0, b""));
    // Data repeated to a size, given as hex.
    peer.post(
        "/connections/1/send",
        r#"{"type":"binary","hex":"00ff","size":3}"#,
    )
    .await;
    assert_eq!(client.read_frame().await, frame(true, 2, &[0, 0xff, 0]));

    peer.post("/connections/1/ping", r#"{"payload":"p"}"#).await;
    assert_eq!(client.read_frame().await, frame(true, 9, b"p"));
    peer.post("/connections/1/close", r#"{"code":4000,"reason":"bye"}"#)
        .await;
    assert_eq!(client.read_frame().await, frame(true, 8, b"\x0f\xa0bye"));
    assert_eq!(peer.connection(1).await["state"], "closing");
    client.send_frame(true, 8, b"\x0f\xa0").await;
    // The server closes TCP first (RFC 6455 §7.1.1).
    client.read_end().await.expect("a clean end");

    let close = peer.wait_logged(1, "close").await;
    let expected =
        json!({ "seq": 1, "type": "close", "len": 2, "hex": "0fa0", "code": 4000, "reason": "" });
    assert_eq!(close, expected);
    let conn = peer.wait_state(1, "closed").await;
    let frames = [23334, 23333, 23333, 1, 1, 0, 3, 1, 5];
    let out = client.response.len() as u64 + frames.iter().map(|&n| wire_len(n)).sum::<u64>();
    assert_eq!(conn["bytes_out"], out, "{conn}");
    assert_eq!(conn["messages_out"], 3);
    assert_eq!(conn["messages_in"], 0);
}

#[tokio::test]
async fn drops_reset_or_end_tcp_even_in_a_stalled_handshake() {
    let peer = Peer::start().await;
    let mut client = RawClient::open(peer.addr).await;
    peer.post("/connections/1/drop", "").await;
    let error = client.read_end().await.expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);

    let mut client = RawClient::open(peer.addr).await;
    peer.post("/connections/2/drop", r#"{"how":"fin"}"#).await;
    client.read_end().await.expect("a FIN");

    peer.put("/handshake", r#"{"mode":"stall"}"#).await;
    let mut stream = TcpStream::connect(peer.addr).await.unwrap();
    peer.wait_state(3, "stalled").await;
    peer.post("/connections/3/drop", "").await;
    let mut buf = [0u8; 16];
    let read = timeout(WAIT, stream.read(&mut buf)).await.expect("no end");
    assert_eq!(
        read.expect_err("a reset").kind(),
        ErrorKind::ConnectionReset
    );
    // Dropped is dropped.
    let (status, body) = peer.request("POST", "/connections/3/drop", "").await;
    assert_eq!(
        (status, body),
        (409, json!({ "error": "connection 3 has ended" }))
    );
}

#[tokio::test]
async fn a_stall_holds_answers_back_for_its_time() {
    let peer = Peer::start().await;
    let mut client = RawClient::open(peer.addr).await;
    let start = Instant::now();
    let stalled = peer.post("/connections/1/stall", r#"{"ms":300}"#).await;
    assert_eq!(stalled, json!({ "stalled_ms": 300 }));
    client.send_frame(true, 9, b"?").await;
    assert_eq!(client.read_frame().await, frame(true, 10, b"?"));
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn echo_can_be_turned_off_for_new_connections_and_on_for_one() {
    let peer = Peer::start().await;
    assert_eq!(
        peer.put("/mode", r#"{"echo":false}"#).await,
        json!({ "echo": false })
    );
    assert_eq!(peer.get("/mode").await, json!({ "echo": false }));
    let mut client = RawClient::open(peer.addr).await;
    // Nothing comes back for the text: the pong is the next frame.
    client.send_frame(true, 1, b"x").await;
    client.send_frame(true, 9, b"p").await;
    assert_eq!(client.read_frame().await, frame(true, 10, b"p"));
    peer.put("/connections/1/mode", r#"{"echo":true}"#).await;
    client.send_frame(true, 2, b"y").await;
    assert_eq!(client.read_frame().await, frame(true, 2, b"y"));
    let log = peer.get("/connections/1/log?n=2").await;
    let kinds: Vec<&Value> = log.as_array().unwrap().iter().map(|e| &e["type"]).collect();
    assert_eq!(kinds, [&json!("ping"), &json!("binary")]);
}

#[tokio::test]
async fn malformed_control_requests_get_a_json_error_never_a_panic() {
    let peer = Peer::start().await;
    let _client = RawClient::open(peer.addr).await;
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/connections/1/send", "{", 400, "malformed JSON"),
        ("POST", "/connections/1/send", "[1]", 400, "at line 1"),
        (
            "POST",
            "/connections/1/send",
            r#"{"size":"big"}"#,
            400,
            "bad field",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"sise":3}"#,
            400,
            "unknown field `sise`",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"type":"json"}"#,
            400,
            "unknown variant `json`",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"size":-1}"#,
            400,
            "bad field",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"size":16777217}"#,
            400,
            "size: at most",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"fragments":0}"#,
            400,
            "fragments: 1 to",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"hex":"zz"}"#,
            400,
            "hex:",
        ),
        (
            "POST",
            "/connections/1/send",
            r#"{"hex":"é0"}"#,
            400,
            "hex:",
        ),
        (
            "POST",
            "/connections/1/ping",
            &format!(r#"{{"payload":"{}"}}"#, "x".repeat(126)),
            400,
            "payload: at most 125",
        ),
        (
            "POST",
            "/connections/1/close",
            r#"{"reason":"no code"}"#,
            400,
            "needs a code",
        ),
        (
            "POST",
            "/connections/1/close",
            r#"{"code":70000}"#,
            400,
            "bad field",
        ),
        (
            "POST",
            "/connections/1/stall",
            "",
            400,
            "missing field `ms`",
        ),
        (
            "POST",
            "/connections/1/stall",
            r#"{"ms":600001}"#,
            400,
            "ms: at most",
        ),
        (
            "POST",
            "/connections/1/drop",
            r#"{"how":"gently"}"#,
            400,
            "unknown variant",
        ),
        (
            "PUT",
            "/handshake",
            r#"{"mode":"status"}"#,
            400,
            "status: 100 to 599",
        ),
        (
            "PUT",
            "/handshake",
            r#"{"mode":"status","status":101}"#,
            400,
            "101",
        ),
        (
            "PUT",
            "/handshake",
            r#"{"mode":"accept","status":503}"#,
            400,
            "only with mode status",
        ),
        (
            "PUT",
            "/handshake",
            r#"{"mode":"status","ms":1}"#,
            400,
            "only with mode stall",
        ),
        (
            "PUT",
            "/handshake",
            r#"{"mode":"sulk"}"#,
            400,
            "unknown variant",
        ),
        ("PUT", "/mode", r#"{"echo":"yes"}"#, 400, "bad field"),
        ("GET", "/log?n=many", "", 400, "n"),
        ("POST", "/connections/x/send", "{}", 400, "not a number"),
        (
            "POST",
            "/connections/99/send",
            "{}",
            404,
            "no connection 99",
        ),
        ("GET", "/connections/99", "", 404, "no connection 99"),
        ("GET", "/nowhere", "", 404, "no route GET /nowhere"),
        ("DELETE", "/mode", "", 405, "does not take DELETE"),
    ];
    for &(method, path, body, status, message) in cases {
        let (got, json) = peer.request(method, path, body).await;
        assert_eq!(got, status, "{method} {path} {body}: {json}");
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{json}"));
        assert!(error.contains(message), "{method} {path} {body}: {error}");
    }
    // Not HTTP at all: hyper's own 400.
    let answer = http::raw(peer.control, b"hello\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // A plain HTTP request on the WebSocket port ends its connection only.
    let answer = http::raw(peer.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!answer.starts_with("HTTP/1.1 101"), "{answer:?}");
    peer.wait_state(2, "closed").await;
    // Nothing was sent, and everything still works.
    let conn = peer.connection(1).await;
    assert_eq!(
        (&conn["state"], &conn["messages_out"]),
        (&json!("open"), &json!(0))
    );
    peer.post("/connections/1/ping", "").await;
    let routes = peer.get("/").await;
    assert!(routes["routes"].as_array().unwrap().len() > 10, "{routes}");
}
