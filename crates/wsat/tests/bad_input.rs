//! Bad input on the AT port and from servers: each gets ESP-AT's answer and
//! the modem stays usable.
use wsat_testkit::raw::{Answer, RawListener};
use wsat_testkit::{closed_port, echo_server, Wsat};

const ERROR: &[u8] = b"\r\nERROR\r\n";

#[tokio::test]
async fn malformed_commands_are_errors() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let bad = [
        "AT+NOSUCH",
        "AT+WSOPEN",    // no execute form
        "AT+WSSEND?",   // no query form
        "AT+WSCLOSE=?", // no test form
        "AT+WSCFG=3,10,120",
        "AT+WSCFG=0,0,120",
        "AT+WSCFG=0,7201,120",
        "AT+WSCFG=0,10,0",
        "AT+WSCFG=0,10,7201",
        "AT+WSCFG=0,10,120,0",
        "AT+WSCFG=0,10,120,16385",
        "AT+WSCFG=0,10,120,1024,4,0,0",
        "AT+WSCFG=0,10,120,1024,1",
        "AT+WSCFG=0,\"10\",120",
        "AT+WSOPEN=3,\"ws://127.0.0.1:1\"",
        "AT+WSOPEN=-1,\"ws://127.0.0.1:1\"",
        "AT+WSOPEN=0,\"http://127.0.0.1:1\"",
        "AT+WSOPEN=0,\"127.0.0.1:1\"",
        "AT+WSOPEN=0,ws://127.0.0.1:1",
        "AT+WSOPEN=0,\"ws://127.0.0.1:1\",,180001",
        "AT+WSOPEN=0,\"ws://127.0.0.1:1",
        "AT+WSSEND=3,4",
        "AT+WSSEND=0,16385",
        "AT+WSSEND=0,4,16",
        "AT+WSSEND=0,4,1,60001",
        "AT+WSSEND=0,4,1,1000,2",
        "AT+WSDATAFMT=3,0,48",
        "AT+WSDATAFMT=0,3,48",
        "AT+WSDATAFMT=0,0,0",
        "AT+WSDATAFMT=0,0,64",
        "AT+WSCLOSE=3",
        "AT+WSCLOSE=0,1",
        "AT+SYSLOG=2",
        "ATE2",
        "BT",
        "at",
    ];
    for line in bad {
        host.send(format!("{line}\r\n").as_bytes()).await;
        let got = host.read_exact(ERROR.len()).await;
        assert_eq!(
            got,
            ERROR,
            "{line} answered {:?}",
            String::from_utf8_lossy(&got)
        );
        host.alive().await;
    }
}

#[tokio::test]
async fn syslog_prints_the_error_code_first() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+SYSLOG=1", b"\r\nOK\r\n").await;
    host.at("AT+WSCFG=3,10,120", b"ERR CODE:0x01070001\r\n\r\nERROR\r\n")
        .await;
    host.at("AT+NOSUCH", b"ERR CODE:0x01090000\r\n\r\nERROR\r\n")
        .await;
}

#[tokio::test]
async fn send_without_a_client_is_an_error_before_any_prompt() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at("AT+WSSEND=0,4", ERROR).await;
    // No prompt was given, so these bytes are a (bad) command line.
    host.at("test", ERROR).await;
    host.alive().await;
}

#[tokio::test]
async fn open_on_an_open_link_is_an_error() {
    let uri = echo_server().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.open(0, &uri).await;
    host.at(&format!("AT+WSOPEN=0,\"{uri}\""), ERROR).await;
    // The link is still up.
    host.send_data("0,2", b"ok").await;
    host.expect(b"+WS_DATA:0,2,ok\r\n").await;
}

#[tokio::test]
async fn a_refused_connection_reports_disconnected_then_error() {
    let port = closed_port().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    host.at(
        &format!("AT+WSOPEN=0,\"ws://127.0.0.1:{port}\""),
        b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n",
    )
    .await;
    // Cleaned up: no client, and no retry report comes later.
    host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
    host.alive().await;
}

#[tokio::test]
async fn bad_handshake_answers_fail_the_open() {
    for answer in [Answer::Status200, Answer::WrongAccept] {
        let server = RawListener::bind().await;
        let wsat = Wsat::start();
        let mut host = wsat.quiet_host().await;
        host.send(format!("AT+WSOPEN=0,\"{}\"\r\n", server.uri).as_bytes())
            .await;
        let mut conn = server.accept(answer).await;
        host.expect(b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n").await;
        conn.expect_eof().await;
        host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
        host.alive().await;
    }
}

#[tokio::test]
async fn garbage_and_overlong_lines_keep_the_modem_in_sync() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    // Every byte value except the terminators, then a terminator.
    let garbage: Vec<u8> = (0..=255u8)
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    host.send(&garbage).await;
    host.at("", ERROR).await;
    // 10 KB without CR or LF, then its end.
    host.send(&vec![b'A'; 10 * 1024]).await;
    host.at("", ERROR).await;
    host.alive().await;
    // A line of exactly 256 bytes is taken; 257 is too long.
    let longest = format!("AT+WSCLOSE={}", "0".repeat(256 - "AT+WSCLOSE=".len()));
    host.at(&longest, b"\r\nOK\r\n").await;
    host.at(&format!("{longest}0"), ERROR).await;
    host.alive().await;
}

#[tokio::test]
async fn a_modem_survives_a_server_that_sends_garbage() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    let mut conn = host.open_raw(0, &server).await;
    // Reserved bits and a reserved opcode: a protocol error.
    conn.send_raw(&[0xF3, 0x05, 1, 2, 3, 4, 5]).await;
    host.expect(b"+WS_DISCONNECTED:0\r\n").await;
    let close = conn.read_frame().await;
    assert_eq!(
        (close.opcode, close.payload),
        (8, 1002u16.to_be_bytes().to_vec())
    );
    conn.expect_eof().await;
    host.alive().await;
}
