//! ESP-AT's documented WebSocket session, replayed byte for byte through the
//! real binary against servers from an independent implementation.
use wsat_testkit::raw::{Answer, RawListener};
use wsat_testkit::rig::Proc;
use wsat_testkit::sockets::pattern_bytes;
use wsat_testkit::{echo_server, Wsat};

#[tokio::test]
async fn documented_session_byte_for_byte() {
    let uri = echo_server().await;
    let wsat = Wsat::start();
    // Echo is on from start-up, as on an ESP32.
    let mut host = wsat.host().await;
    host.documented_open_send_echo(&uri).await;

    host.send(b"AT+WSOPEN?\r\n").await;
    let query = format!("AT+WSOPEN?\r\n+WSOPEN:0,2,\"{uri}\"\r\n\r\nOK\r\n");
    host.expect(query.as_bytes()).await;

    host.send(b"AT+WSCLOSE=0\r\n").await;
    host.expect(b"AT+WSCLOSE=0\r\n\r\nOK\r\n").await;
    host.send(b"AT+WSOPEN?\r\n").await;
    host.expect(b"AT+WSOPEN?\r\n\r\nOK\r\n").await;
}

#[tokio::test]
async fn binary_payloads_with_every_byte_value_round_trip() {
    let uri = echo_server().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.open(0, &uri).await;

    let every_byte: Vec<u8> = (0..=255).collect();
    host.send_data("0,256,2", &every_byte).await;
    let mut expected = b"+WS_DATA:0,256,".to_vec();
    expected.extend_from_slice(&every_byte);
    expected.extend_from_slice(b"\r\n");
    host.expect(&expected).await;

    // What looks like AT syntax inside data is data.
    let tricky = b"\r\nAT\r\n\0+++\n\r\"\\,";
    host.send_data(&format!("0,{},2", tricky.len()), tricky)
        .await;
    let mut expected = format!("+WS_DATA:0,{},", tricky.len()).into_bytes();
    expected.extend_from_slice(tricky);
    expected.extend_from_slice(b"\r\n");
    host.expect(&expected).await;
    host.alive().await;
}

#[tokio::test]
async fn command_and_data_in_one_write_and_the_next_command_after_it() {
    let uri = echo_server().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.open(1, &uri).await;
    // A host that pipelines: command, data and the next command at once.
    host.send(b"AT+WSSEND=1,5\r\nhelloAT\r\n").await;
    let out = host.read_until(b"+WS_DATA:1,5,hello\r\n").await;
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("\r\nOK\r\n\r\n>\r\nSEND OK\r\n"), "{out:?}");
    // `AT` was not lost: its OK comes (before or after the echo report).
    let rest = if out.contains("\r\nSEND OK\r\n\r\nOK\r\n") {
        String::new()
    } else {
        String::from_utf8(host.read_exact(6).await).unwrap()
    };
    assert!(
        out.contains("\r\nSEND OK\r\n\r\nOK\r\n") || rest == "\r\nOK\r\n",
        "{out:?} {rest:?}"
    );
    host.alive().await;
}

#[tokio::test]
async fn a_16384_byte_send_is_split_at_buffer_size() {
    for (cfg, buffer_size) in [(None, 1024), (Some("AT+WSCFG=0,30,60,4096"), 4096)] {
        let server = RawListener::bind().await;
        let wsat = Wsat::start();
        let mut host = wsat.quiet_host().await;
        if let Some(cfg) = cfg {
            host.at(cfg, b"\r\nOK\r\n").await;
        }
        let mut conn = host.open_raw(0, &server).await;

        let data = pattern_bytes(0, 16384);
        host.send_data("0,16384,2", &data).await;
        let mut received = Vec::new();
        let mut frames = 0;
        while received.len() < data.len() {
            let frame = conn.read_frame().await;
            assert!(
                frame.payload.len() <= buffer_size,
                "frame of {}",
                frame.payload.len()
            );
            let expected_op = if frames == 0 { 2 } else { 0 };
            assert_eq!(frame.opcode, expected_op);
            received.extend_from_slice(&frame.payload);
            frames += 1;
            assert_eq!(frame.fin, received.len() == data.len());
        }
        assert_eq!(frames, 16384 / buffer_size);
        assert_eq!(received, data);
        host.alive().await;
    }
}

/// A 16 KiB frame is taken before it is written (its `SEND OK` leaves
/// first); an `AT+WSCLOSE` in the same write still comes after all of it.
#[tokio::test]
async fn a_large_send_closed_at_once_arrives_whole() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+WSCFG=0,30,60,16384", b"\r\nOK\r\n").await;
    let mut conn = host.open_raw(0, &server).await;
    let data = pattern_bytes(0, 16384);
    let mut write = b"AT+WSSEND=0,16384,2\r\n".to_vec();
    write.extend_from_slice(&data);
    write.extend_from_slice(b"AT+WSCLOSE=0\r\n");
    host.send(&write).await;
    host.expect(b"\r\nOK\r\n\r\n>\r\nSEND OK\r\n").await;
    let frame = conn.read_frame().await;
    assert_eq!((frame.fin, frame.opcode), (true, 2));
    assert_eq!(frame.payload, data);
    let close = conn.read_frame().await;
    assert_eq!(
        (close.opcode, close.payload),
        (8, 1000u16.to_be_bytes().to_vec())
    );
    conn.send_frame(true, 8, &1000u16.to_be_bytes()).await;
    host.expect(b"\r\nOK\r\n").await;
    host.alive().await;
}

#[tokio::test]
async fn handshake_carries_headers_subprotocol_and_auth() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let header = b"X-Token: abc 123";
    host.send(format!("AT+WSHEAD={}\r\n", header.len()).as_bytes())
        .await;
    host.expect(b"\r\nOK\r\n\r\n>").await;
    host.send(header).await;
    host.expect(b"\r\nOK\r\n").await;
    host.at(
        "AT+WSHEAD?",
        b"+WSHEAD:0,\"X-Token: abc 123\"\r\n\r\nOK\r\n",
    )
    .await;

    let open = format!(
        "AT+WSOPEN=2,\"{}/chat?room=1\",\"chat\",5000,\"Bearer xyz\"\r\n",
        server.uri
    );
    host.send(open.as_bytes()).await;
    let conn = server.accept(Answer::Upgrade).await;
    host.expect(b"+WS_CONNECTED:2\r\n\r\nOK\r\n").await;
    assert!(
        conn.request.starts_with("GET /chat?room=1 HTTP/1.1\r\n"),
        "{}",
        conn.request
    );
    let port = server.uri.rsplit(':').next().unwrap();
    assert_eq!(
        conn.header("Host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(conn.header("Upgrade"), Some("websocket"));
    assert_eq!(conn.header("Connection"), Some("Upgrade"));
    assert_eq!(conn.header("Sec-WebSocket-Version"), Some("13"));
    assert_eq!(conn.header("Sec-WebSocket-Protocol"), Some("chat"));
    assert_eq!(conn.header("Authorization"), Some("Bearer xyz"));
    assert_eq!(conn.header("X-Token"), Some("abc 123"));
    host.alive().await;
}

#[tokio::test]
async fn every_tcp_connection_is_an_independent_modem() {
    let uri = echo_server().await;
    let wsat = Wsat::start();
    let mut first = wsat.quiet_host().await;
    let mut second = wsat.host().await;
    first.at("AT+WSHEAD=0", b"\r\nOK\r\n").await;
    first.open(0, &uri).await;
    // The second modem has echo on, no links and no headers.
    second.send(b"AT+WSOPEN?\r\n").await;
    second.expect(b"AT+WSOPEN?\r\n\r\nOK\r\n").await;
    let open = format!("AT+WSOPEN=0,\"{uri}\"\r\n");
    second.send(open.as_bytes()).await;
    second.expect(open.as_bytes()).await;
    second.expect(b"+WS_CONNECTED:0\r\n\r\nOK\r\n").await;
    first.send_data("0,3", b"one").await;
    first.expect(b"+WS_DATA:0,3,one\r\n").await;
    first.alive().await;
}

#[tokio::test]
async fn closing_the_host_connection_closes_its_links() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let mut conn = host.open_raw(0, &server).await;
    drop(host);
    conn.expect_eof().await;
}

#[tokio::test]
async fn stdio_is_the_default_at_port() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsat"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ATE0\r\nAT+GMR\r\n").unwrap();
    drop(stdin);
    // EOF on stdin ends the modem once its output is written.
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        out.starts_with(
            "\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\nATE0\r\n\r\nOK\r\nAT version:"
        ),
        "{out:?}"
    );
    assert!(out.ends_with("\r\nOK\r\n"), "{out:?}");
}

#[tokio::test]
async fn the_echo_server_subcommand_echoes_text_and_binary() {
    let (_server, addr) = Proc::start(&["echo-server", "127.0.0.1:0"], "listening on ");
    let uri = format!("ws://{addr}");
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+WSDATAFMT=0,0,17", b"\r\nOK\r\n").await;
    host.open(0, &uri).await;
    host.send_data("0,4", b"text").await;
    host.expect(b"+WS_DATA:0,1,4,text").await;
    host.send_data("0,3,2", b"\x00\x01\x02").await;
    host.expect(b"+WS_DATA:0,2,3,\x00\x01\x02").await;
}

#[tokio::test]
async fn a_reset_loses_input_until_ready_comes_after_the_delay() {
    let wsat = Wsat::start_with(&["--restart-delay", "300"]);
    let mut host = wsat.quiet_host().await;
    let started = std::time::Instant::now();
    host.send(b"AT+RST\r\n").await;
    host.expect(b"\r\nOK\r\n").await;
    // Typed into the restart: lost, as on a chip in reset.
    host.send(b"AT+GMR\r\n").await;
    host.expect(wsat_proto::testing::BOOT).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    // Echo is on again, and the lost command left no answer behind.
    host.send(b"AT\r\n").await;
    host.expect(b"AT\r\n\r\nOK\r\n").await;
}

#[tokio::test]
async fn wifi_flags_set_the_aps_and_whether_one_is_stored() {
    let wsat = Wsat::start_with(&[
        "--wifi",
        "lab,secretpw,-55,3",
        "--wifi",
        "open",
        "--no-stored-ap",
        "--join-delay",
        "50",
    ]);
    let stream = tokio::net::TcpStream::connect(wsat.addr).await.unwrap();
    let mut host = wsat_testkit::Host { stream };
    // No stored AP: the station is idle (and a new --tcp host sees no
    // `ready`: the modem was up before it came).
    host.at("ATE0", b"ATE0\r\n\r\nOK\r\n").await;
    host.at("AT+CWSTATE?", b"+CWSTATE:0,\"\"\r\n\r\nOK\r\n")
        .await;
    host.at("AT+WSOPEN=0,\"ws://127.0.0.1:1/\"", b"\r\nERROR\r\n")
        .await;
    host.at("AT+CWLAPOPT=0,7", b"\r\nOK\r\n").await;
    host.at(
        "AT+CWLAP",
        b"+CWLAP:(3,\"lab\",-55)\r\n+CWLAP:(0,\"open\",-40)\r\n\r\nOK\r\n",
    )
    .await;
    host.at("AT+CWJAP=\"lab\",\"wrong\"", b"+CWJAP:2\r\n\r\nERROR\r\n")
        .await;
    host.at(
        "AT+CWJAP=\"lab\",\"secretpw\"",
        b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n",
    )
    .await;
    host.at("AT+CWSTATE?", b"+CWSTATE:2,\"lab\"\r\n\r\nOK\r\n")
        .await;
}
