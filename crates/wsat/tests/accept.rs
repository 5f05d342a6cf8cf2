//! `--tcp` past its limits: out of descriptors, accept fails and is retried
//! while the modems already running carry on; past `--max-modems`, a
//! connection gets a one-line refusal and is closed.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use wsat_testkit::rig::Launch;
use wsat_testkit::{Host, Wsat, WAIT};

/// What each accepted host gets with `--ready-on-open`: a modem found
/// running, joined, greeted with `ready` (and nothing of its boot).
const READY: &[u8] = b"\r\nready\r\n";

/// A connection to `addr` whose first bytes have not been read.
async fn connect(addr: SocketAddr) -> Host {
    let stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    stream.set_nodelay(true).unwrap();
    Host { stream }
}

/// Connects and reads the first bytes: `Ok` with a modem once its
/// `ready` is in, `Err` with all that came before EOF otherwise.
async fn knock(addr: SocketAddr) -> Result<Host, Vec<u8>> {
    let mut host = connect(addr).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got != READY {
        let n = timeout(WAIT, host.stream.read(&mut buf))
            .await
            .expect("nothing from wsat, not even EOF")
            .expect("read");
        if n == 0 {
            return Err(got);
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(host)
}

/// `AT` with echo on, as every modem starts.
async fn answers(host: &mut Host) {
    host.send(b"AT\r\n").await;
    host.expect(b"AT\r\n\r\nOK\r\n").await;
}

#[tokio::test]
async fn accept_failing_for_want_of_descriptors_is_waited_out() {
    // 64 descriptors in all, and no --max-modems to stop short of them.
    let launch = Launch {
        nofile: Some(64),
        env: vec![("RUST_LOG".into(), "warn".into())],
        keep_stderr: true,
    };
    let mut wsat = Wsat::launch(&launch, &["--max-modems", "100000", "--ready-on-open"]);

    // One connection at a time, each either a modem (its `ready` arrives)
    // or the one accept could not take (wsat logs the failure).
    let mut hosts = Vec::new();
    let (mut pending, failure) = loop {
        assert!(hosts.len() < 64, "accept never failed under a limit of 64");
        let mut host = connect(wsat.addr).await;
        let failure = tokio::select! {
            biased;
            line = wsat.proc.stderr_line("accept failed") => Some(line),
            () = host.expect(READY) => None,
        };
        match failure {
            Some(line) => break (host, line),
            None => hosts.push(host),
        }
    };
    // EMFILE, whatever the locale calls it.
    assert!(failure.contains("os error 24"), "{failure}");
    assert!(hosts.len() >= 20, "only {} modems", hosts.len());
    println!("{} modems under 64 descriptors", hosts.len());

    // wsat is still there, and so are all its modems.
    assert!(wsat.proc.is_running(), "wsat exited when accept failed");
    for host in &mut hosts {
        answers(host).await;
    }

    // Hosts leave: the connection waiting in the queue is taken, and then
    // new ones too.
    hosts.drain(..4);
    pending.expect(READY).await;
    answers(&mut pending).await;
    let mut fresh = wsat.host().await;
    fresh.expect(READY).await;
    answers(&mut fresh).await;
    for host in &mut hosts {
        answers(host).await;
    }
    assert!(wsat.proc.is_running());
}

#[tokio::test]
async fn past_max_modems_a_connection_gets_one_line_and_is_closed() {
    let wsat = Wsat::start_with(&["--max-modems", "2", "--ready-on-open"]);
    let mut first = wsat.host().await;
    first.expect(READY).await;
    let mut second = wsat.host().await;
    second.expect(READY).await;
    let refusal = b"ERROR: too many modems (--max-modems 2)\r\n";

    let third = knock(wsat.addr).await;
    assert_eq!(
        third
            .err()
            .map(|line| String::from_utf8_lossy(&line).into_owned()),
        Some(String::from_utf8_lossy(refusal).into_owned())
    );
    answers(&mut first).await;
    answers(&mut second).await;

    // Once wsat has seen the first host go (until then, refusals), a new
    // connection is a modem again.
    drop(first);
    let deadline = Instant::now() + WAIT;
    let mut again = loop {
        match knock(wsat.addr).await {
            Ok(host) => break host,
            Err(line) => assert_eq!(line, refusal, "{:?}", String::from_utf8_lossy(&line)),
        }
        assert!(
            Instant::now() < deadline,
            "the first modem's slot never came free"
        );
        tokio::task::yield_now().await;
    };
    answers(&mut again).await;
    answers(&mut second).await;
    // And the limit holds again.
    assert_eq!(knock(wsat.addr).await.err().as_deref(), Some(&refusal[..]));
}
