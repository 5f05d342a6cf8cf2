//! `wss://` end to end through the real binary: TLS material written
//! through the AT port with `AT+SYSMFG`, each `AT+WSCFG` auth mode against
//! rustls WebSocket servers with certificates made at test time, and every
//! way TLS can go wrong ending as `+WS_DISCONNECTED` + `ERROR` in bounded
//! time.
use std::time::{Duration, Instant};

use tempfile::TempDir;
use wsat_testkit::tls::{as_wss, BadServer, Ca, Leaf, Misbehaviour, TlsEchoServer, CA, CERT, KEY};
use wsat_testkit::{echo_server, Host, Wsat};

/// A modem with a certificate store of its own in a temporary directory.
struct Modem {
    wsat: Wsat,
    dir: TempDir,
}

impl Modem {
    fn start(extra: &[&str]) -> Modem {
        let dir = tempfile::tempdir().unwrap();
        let wsat = Modem::start_in(&dir, extra);
        Modem { wsat, dir }
    }

    fn start_in(dir: &TempDir, extra: &[&str]) -> Wsat {
        let mut args = vec!["--pki-dir", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        Wsat::start_with(&args)
    }

    async fn host(&self) -> Host {
        self.wsat.quiet_host().await
    }
}

/// One test's certificates: a CA with a server certificate for localhost
/// and 127.0.0.1 and a client certificate, and the wrong material.
struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
    expired_server: Leaf,
    wrong_ca: Ca,
    /// A client certificate the servers' CA did not issue.
    foreign_client: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("wsat test CA");
        let wrong_ca = Ca::new("wsat wrong CA");
        Pki {
            server: ca.issue(&["localhost", "127.0.0.1"]),
            client: ca.issue(&["client.example"]),
            expired_server: ca.issue_expired(&["localhost", "127.0.0.1"]),
            foreign_client: wrong_ca.issue(&["client.example"]),
            ca,
            wrong_ca,
        }
    }
}

/// ESP-AT's documented TLS session, echo on as after start-up, byte for
/// byte, against a server that demands a client certificate.
#[tokio::test]
async fn documented_tls_session_byte_for_byte() {
    let pki = Pki::new();
    let server = TlsEchoServer::start(&pki.server, Some(&pki.ca)).await;
    let modem = Modem::start(&[]);
    let mut host = modem.wsat.host().await;
    for (namespace, value) in [
        (CA, &pki.ca.pem),
        (CERT, &pki.client.cert_pem),
        (KEY, &pki.client.key_pem),
    ] {
        let line = format!(
            "AT+SYSMFG=2,\"{namespace}\",\"{namespace}.0\",8,{}\r\n",
            value.len()
        );
        host.send(line.as_bytes()).await;
        host.expect(format!("{line}\r\nOK\r\n\r\n>").as_bytes())
            .await;
        // The value after the prompt is not echoed.
        host.send(value.as_bytes()).await;
        host.expect(b"\r\nOK\r\n").await;
    }

    host.send(b"AT+WSCFG=0,30,60,4096,3,0,0\r\n").await;
    host.expect(b"AT+WSCFG=0,30,60,4096,3,0,0\r\n\r\nOK\r\n")
        .await;
    host.documented_open_send_echo(&server.uri("localhost"))
        .await;

    host.send(b"AT+WSCLOSE=0\r\n").await;
    host.expect(b"AT+WSCLOSE=0\r\n\r\nOK\r\n").await;
}

#[tokio::test]
async fn sysmfg_round_trips_tls_material_byte_for_byte() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    // `store` writes and reads back; CR LF line ends are kept as sent.
    let crlf_ca = pki.ca.pem.replace('\n', "\r\n");
    host.store(CA, 0, &pki.ca.pem).await;
    host.store(CA, 7, &crlf_ca).await;
    host.store_client(2, &pki.client).await;
    host.at(
        "AT+SYSMFG=1,\"wss_ca\"",
        b"+SYSMFG:\"wss_ca\",\"wss_ca.0\",8\r\n+SYSMFG:\"wss_ca\",\"wss_ca.7\",8\r\n\r\nOK\r\n",
    )
    .await;
    // On disk, one file per entry, exactly the bytes sent.
    let on_disk = std::fs::read(modem.dir.path().join("wss_ca/wss_ca.7.pem")).unwrap();
    assert_eq!(on_disk, crlf_ca.as_bytes());

    // Another modem on the same store, and a restarted wsat, read the same.
    let mut other = modem.host().await;
    other
        .sysmfg_read_back(KEY, 2, pki.client.key_pem.as_bytes())
        .await;
    drop((host, other));
    let restarted = Modem::start_in(&modem.dir, &[]);
    let mut host = restarted.quiet_host().await;
    host.sysmfg_read_back(CA, 7, crlf_ca.as_bytes()).await;
    host.sysmfg_read_back(CERT, 2, pki.client.cert_pem.as_bytes())
        .await;

    // Erased: gone, and AT+WSCFG says so.
    host.at("AT+SYSMFG=0,\"wss_ca\",\"wss_ca.7\"", b"\r\nOK\r\n")
        .await;
    host.at("AT+SYSMFG=1,\"wss_ca\",\"wss_ca.7\"", b"\r\nERROR\r\n")
        .await;
    host.at(
        "AT+WSCFG=0,30,60,4096,2,0,7",
        b"NO CA FOUND\r\n\r\nERROR\r\n",
    )
    .await;
}

#[tokio::test]
async fn missing_material_is_reported_when_wscfg_runs() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    let cfg = |mode: u8| format!("AT+WSCFG=0,30,60,4096,{mode},0,0");
    for mode in [1, 3] {
        host.at(&cfg(mode), b"NO CERT FOUND\r\n\r\nERROR\r\n").await;
    }
    host.at(&cfg(2), b"NO CA FOUND\r\n\r\nERROR\r\n").await;
    host.store(CERT, 0, &pki.client.cert_pem).await;
    for mode in [1, 3] {
        host.at(&cfg(mode), b"NO PRVT_KEY FOUND\r\n\r\nERROR\r\n")
            .await;
    }
    host.store(KEY, 0, &pki.client.key_pem).await;
    host.wscfg(0, 1, 0, 0).await;
    host.at(&cfg(3), b"NO CA FOUND\r\n\r\nERROR\r\n").await;
    // Indexes are separate entries.
    host.at(
        "AT+WSCFG=0,30,60,4096,1,1,0",
        b"NO CERT FOUND\r\n\r\nERROR\r\n",
    )
    .await;
    host.store(CA, 0, &pki.ca.pem).await;
    host.wscfg(0, 3, 0, 0).await;

    // The material is read when AT+WSCFG runs: replacing the CA afterwards
    // changes nothing for this open, and the next AT+WSCFG takes it.
    let server = TlsEchoServer::start(&pki.server, None).await;
    host.wscfg(0, 2, 0, 0).await;
    host.store(CA, 0, &pki.wrong_ca.pem).await;
    host.open_echo_close(0, &server.uri("localhost")).await;
    host.wscfg(0, 2, 0, 0).await;
    host.open_fails(0, &server.uri("localhost")).await;
}

#[tokio::test]
async fn mode_0_encrypts_but_accepts_any_server_certificate() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    let right = TlsEchoServer::start(&pki.server, None).await;
    // No AT+WSCFG at all is mode 0 too.
    host.open_echo_close(0, &right.uri("localhost")).await;
    for leaf in [
        &pki.expired_server,
        &pki.wrong_ca.issue(&["elsewhere.example"]),
        &Leaf::self_signed(&["elsewhere.example"]),
    ] {
        let server = TlsEchoServer::start(leaf, None).await;
        host.wscfg(0, 0, 0, 0).await;
        host.open_echo_close(0, &server.uri("127.0.0.1")).await;
    }
    // A server that demands a client certificate refuses mode 0. With TLS
    // 1.3 the refusal comes after the client's handshake: the WebSocket
    // handshake fails, still as the open's failure.
    let mut demanding = TlsEchoServer::start(&pki.server, Some(&pki.ca)).await;
    host.wscfg(0, 0, 0, 0).await;
    host.open_fails(0, &demanding.uri("localhost")).await;
    let failure = demanding.failure().await;
    assert!(failure.starts_with("TLS:"), "{failure}");
}

#[tokio::test]
async fn mode_1_presents_the_client_certificate() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    host.store_client(0, &pki.client).await;
    host.store_client(1, &pki.foreign_client).await;
    let mut server = TlsEchoServer::start(&pki.server, Some(&pki.ca)).await;
    host.wscfg(0, 1, 0, 0).await;
    host.open_echo_close(0, &server.uri("localhost")).await;
    // A certificate the server's CA did not issue.
    host.wscfg(0, 1, 1, 0).await;
    host.open_fails(0, &server.uri("localhost")).await;
    let failure = server.failure().await;
    assert!(failure.starts_with("TLS:"), "{failure}");
    // Mode 1 does not verify the server: an expired certificate passes.
    let expired = TlsEchoServer::start(&pki.expired_server, Some(&pki.ca)).await;
    host.wscfg(0, 1, 0, 0).await;
    host.open_echo_close(0, &expired.uri("127.0.0.1")).await;
}

#[tokio::test]
async fn mode_2_verifies_the_server_chain() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    host.store(CA, 0, &pki.ca.pem).await;
    host.store(CA, 1, &pki.wrong_ca.pem).await;
    let server = TlsEchoServer::start(&pki.server, None).await;
    for uri in [server.uri("localhost"), server.uri("127.0.0.1")] {
        host.wscfg(0, 2, 0, 0).await;
        host.open_echo_close(0, &uri).await;
    }
    // The wrong CA.
    host.wscfg(0, 2, 0, 1).await;
    host.open_fails(0, &server.uri("localhost")).await;
    // The right CA, an expired server certificate.
    let expired = TlsEchoServer::start(&pki.expired_server, None).await;
    host.wscfg(0, 2, 0, 0).await;
    host.open_fails(0, &expired.uri("localhost")).await;
    // A server that demands a client certificate mode 2 does not send.
    let mut demanding = TlsEchoServer::start(&pki.server, Some(&pki.ca)).await;
    host.wscfg(0, 2, 0, 0).await;
    host.open_fails(0, &demanding.uri("localhost")).await;
    let failure = demanding.failure().await;
    assert!(failure.starts_with("TLS:"), "{failure}");
    // The link is usable again after all that.
    host.wscfg(0, 2, 0, 0).await;
    host.open_echo_close(0, &server.uri("localhost")).await;
}

#[tokio::test]
async fn mode_3_verifies_the_server_and_presents_the_client_certificate() {
    let pki = Pki::new();
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    host.store_client(0, &pki.client).await;
    host.store_client(1, &pki.foreign_client).await;
    host.store(CA, 0, &pki.ca.pem).await;
    host.store(CA, 1, &pki.wrong_ca.pem).await;
    let mut server = TlsEchoServer::start(&pki.server, Some(&pki.ca)).await;
    for link in [0, 2] {
        host.wscfg(link, 3, 0, 0).await;
        host.open_echo_close(link, &server.uri("localhost")).await;
    }
    // The wrong CA for the server.
    host.wscfg(0, 3, 0, 1).await;
    host.open_fails(0, &server.uri("localhost")).await;
    // A client certificate the server refuses.
    host.wscfg(0, 3, 1, 0).await;
    host.open_fails(0, &server.uri("localhost")).await;
    let failure = server.failure().await;
    assert!(failure.starts_with("TLS:"), "{failure}");
    // An expired server certificate.
    let expired = TlsEchoServer::start(&pki.expired_server, Some(&pki.ca)).await;
    host.wscfg(0, 3, 0, 0).await;
    host.open_fails(0, &expired.uri("localhost")).await;
}

/// ESP-AT (mbedTLS) accepts a self-signed server certificate stored as the
/// CA, `openssl req -x509` style (CA:TRUE); so does wsat.
#[tokio::test]
async fn a_self_signed_server_certificate_stored_as_the_ca() {
    let own = Leaf::self_signed(&["localhost", "127.0.0.1"]);
    let other = Leaf::self_signed(&["localhost", "127.0.0.1"]);
    let server = TlsEchoServer::start(&own, None).await;
    for flags in [&[][..], &["--tls-verify-hostname"]] {
        let modem = Modem::start(flags);
        let mut host = modem.host().await;
        host.store(CA, 0, &own.cert_pem).await;
        host.store(CA, 1, &other.cert_pem).await;
        host.wscfg(0, 2, 0, 0).await;
        host.open_echo_close(0, &server.uri("localhost")).await;
        // Another self-signed certificate is no CA of this one.
        host.wscfg(0, 2, 0, 1).await;
        host.open_fails(0, &server.uri("localhost")).await;
    }
}

#[tokio::test]
async fn tls_verify_hostname_checks_the_name_in_modes_2_and_3() {
    let pki = Pki::new();
    let elsewhere = TlsEchoServer::start(&pki.ca.issue(&["elsewhere.example"]), None).await;
    let right = TlsEchoServer::start(&pki.server, None).await;
    let uris = [elsewhere.uri("localhost"), elsewhere.uri("127.0.0.1")];

    // Like ESP-AT: the chain is checked, the name is not.
    let lax = Modem::start(&[]);
    let mut host = lax.host().await;
    host.store(CA, 0, &pki.ca.pem).await;
    for uri in &uris {
        host.wscfg(0, 2, 0, 0).await;
        host.open_echo_close(0, uri).await;
    }

    let strict = Modem::start(&["--tls-verify-hostname"]);
    let mut host = strict.host().await;
    host.store(CA, 0, &pki.ca.pem).await;
    host.store_client(0, &pki.client).await;
    for uri in &uris {
        for mode in [2, 3] {
            host.wscfg(0, mode, 0, 0).await;
            host.open_fails(0, uri).await;
        }
    }
    for uri in [right.uri("localhost"), right.uri("127.0.0.1")] {
        host.wscfg(0, 2, 0, 0).await;
        host.open_echo_close(0, &uri).await;
    }
    // Modes 0 and 1 verify nothing, the flag or not.
    host.wscfg(0, 0, 0, 0).await;
    host.open_echo_close(0, &uris[0]).await;
}

#[tokio::test]
async fn wss_to_a_plain_websocket_server_fails_cleanly() {
    let pki = Pki::new();
    let ws_uri = echo_server().await;
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    host.store(CA, 0, &pki.ca.pem).await;
    host.open_fails(0, &as_wss(&ws_uri)).await;
    host.wscfg(0, 2, 0, 0).await;
    host.open_fails(0, &as_wss(&ws_uri)).await;
    // The server itself is fine over ws://.
    host.open_echo_close(0, &ws_uri).await;
}

#[tokio::test]
async fn wss_to_a_server_that_answers_garbage_fails_cleanly() {
    let mut server = BadServer::start(Misbehaviour::Garbage).await;
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    host.open_fails(0, &server.uri()).await;
    // The modem dropped the connection; the server did not.
    server.dropped().await;
}

#[tokio::test]
async fn wss_to_a_server_that_never_answers_ends_by_timeout_ms() {
    let mut server = BadServer::start(Misbehaviour::Silent).await;
    let modem = Modem::start(&[]);
    let mut host = modem.host().await;
    let started = Instant::now();
    host.at(
        &format!("AT+WSOPEN=0,\"{}\",,2000", server.uri()),
        b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n",
    )
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    server.dropped().await;
    host.alive().await;
    host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
}
