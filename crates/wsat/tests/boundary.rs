//! What the core's boundary guarantees, end to end through the binary: input
//! typed during a send is never stuck, a host that never reads cannot grow
//! memory, the latest of many pings is answered, CR and LF in separate
//! reads echo as on a module, and `-v` says why an open failed.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, Instant};

use wsat_testkit::raw::{Answer, RawListener};
use wsat_testkit::rig::Launch;
use wsat_testkit::{Wsat, WAIT};

#[tokio::test]
async fn a_send_timeout_answers_pipelined_input_and_the_link_can_be_closed() {
    let wsat = Wsat::start();
    let server = RawListener::bind().await;
    let mut host = wsat.quiet_host().await;
    let conn = host.open_raw(0, &server).await;
    // The server stops reading: sends pile up until one cannot be written
    // within its 500 ms.
    let data = vec![b'x'; 16384];
    let answer = loop {
        host.send(b"AT+WSSEND=0,16384,2,500\r\n").await;
        host.expect(b"\r\nOK\r\n\r\n>").await;
        let mut with_next = data.clone();
        with_next.extend_from_slice(b"AT\r\n");
        host.send(&with_next).await;
        let answer = host.read_until(b"\r\nOK\r\n").await;
        if answer != b"\r\nSEND OK\r\n\r\nOK\r\n" {
            break answer;
        }
    };
    // The pipelined AT is answered right after the timeout's ERROR, with
    // no network event to wake the modem.
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "\r\nERROR\r\n+WS_DISCONNECTED:0\r\n\r\nOK\r\n"
    );
    drop(conn);
    // The reconnect (after 10 s) reaches a server that never answers the
    // handshake: the host can still close the link.
    let _silent = server
        .accept_within(Duration::from_secs(15), Answer::Silent)
        .await;
    host.at("AT+WSCLOSE=0", b"\r\nOK\r\n").await;
    host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
}

#[tokio::test]
async fn a_host_that_never_reads_keeps_the_modem_small() {
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    // Each `AT+CMD?` answers about 1.5 KB: without a bound, 24 MiB of them
    // would make gigabytes of output.
    let commands = b"AT+CMD?\r\n".repeat(64 * 1024 / 9);
    let mut written = 0usize;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && written < 24 * 1024 * 1024 {
        match timeout(Duration::from_millis(500), host.stream.write_all(&commands)).await {
            Ok(Ok(())) => written += commands.len(),
            Ok(Err(error)) => panic!("write failed: {error}"),
            // TCP pushes back: the modem stopped reading the port.
            Err(_) => break,
        }
    }
    assert!(
        written < 24 * 1024 * 1024,
        "the modem kept reading: {written} bytes taken"
    );
    let peak = wsat.proc.peak_rss_kib();
    println!("peak RSS with a host that never reads: {peak} KiB after {written} bytes written");
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB");
    // Other hosts are served meanwhile.
    let mut other = wsat.quiet_host().await;
    other.alive().await;
}

#[tokio::test]
async fn the_latest_of_forty_pings_in_one_read_is_answered() {
    let wsat = Wsat::start();
    let server = RawListener::bind().await;
    let mut host = wsat.quiet_host().await;
    let mut conn = host.open_raw(0, &server).await;
    let pings: Vec<u8> = (0..40u8)
        .flat_map(|i| wsat_testkit::raw::server_frame(true, 9, &[i]))
        .collect();
    conn.send_raw(&pings).await;
    let mut pongs = Vec::new();
    while pongs.last() != Some(&39) {
        let frame = conn.read_frame().await;
        assert_eq!(frame.opcode, 10, "only pongs");
        pongs.push(frame.payload[0]);
        assert!(pongs.len() <= 40);
    }
    host.alive().await;
}

#[tokio::test]
async fn cr_and_lf_in_separate_reads_echo_before_the_answer() {
    let wsat = Wsat::start();
    let mut host = wsat.host().await;
    host.send(b"AT\r").await;
    host.expect(b"AT\r").await;
    host.send(b"\n").await;
    // As a module shows it: the LF's echo, then the answer.
    host.expect(b"\n\r\nOK\r\n").await;
}

/// The log line of an `AT+WSOPEN` whose server answers 200, not 101, with
/// this environment and these options.
async fn open_failure_log(env: &[(&str, &str)], args: &[&str]) -> String {
    let launch = Launch {
        keep_stderr: true,
        env: env.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
        ..Launch::default()
    };
    let mut wsat = Wsat::launch(&launch, args);
    let server = RawListener::bind().await;
    let mut host = wsat.quiet_host().await;
    host.send(format!("AT+WSOPEN=0,\"{}\"\r\n", server.uri).as_bytes())
        .await;
    let _conn = server.accept(Answer::Status200).await;
    host.expect(b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n").await;
    timeout(WAIT, wsat.proc.stderr_line("handshake refused"))
        .await
        .expect("no log line")
}

#[tokio::test]
async fn verbose_logs_say_why_an_open_failed() {
    let line = open_failure_log(&[], &["-v"]).await;
    assert!(
        line.contains("link 0: handshake refused: HTTP 200"),
        "{line}"
    );
}

#[tokio::test]
async fn rust_log_picks_targets_and_an_empty_one_counts_as_unset() {
    // A target and its level, without -v.
    let line = open_failure_log(&[("RUST_LOG", "wsat=info")], &[]).await;
    assert!(line.contains("handshake refused: HTTP 200"), "{line}");
    // Empty: -v decides, as if RUST_LOG were not set.
    let line = open_failure_log(&[("RUST_LOG", "")], &["-v"]).await;
    assert!(line.contains("handshake refused: HTTP 200"), "{line}");
}
