//! Scenario files (`--scenario`): steps fire on time and events, and the
//! verdict on what the host sent ends the run with its exit code.
use std::process::{Command, Stdio};
use std::time::Duration;

use wsat_testkit::peer::Peer;
use wsat_testkit::rig::{wsat_binary, Launch, Proc};
use wsat_testkit::{echo_server, Host, WAIT};

fn scenario_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `wsat --tcp 127.0.0.1:0 --scenario FILE`, keeping stderr.
fn start(file: &str) -> (Proc, std::net::SocketAddr) {
    let launch = Launch {
        keep_stderr: true,
        ..Launch::default()
    };
    Proc::tcp_launch(&launch, &["--scenario", file])
}

#[tokio::test]
async fn steps_fire_on_commands_links_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file(
        &dir,
        "steps:\n\
         - on: {command: AT+WSOPEN}\n  do: {fault: answer, prefix: AT+WSSEND, answer: busy}\n\
         - on: {connected: ws0}\n  after_ms: 50\n  do: {fault: reset, link: ws0}\n\
         - after_ms: 100\n  do: {fault: report, data: \"+WS_DATA:0,2,hi\\r\\n\", when: after_ok}\n",
    );
    let (_wsat, addr) = start(&file);
    let mut host = Host::connect_quiet(addr).await;
    let uri = echo_server().await;
    host.open(0, &uri).await;
    host.at("AT+WSSEND=0,1", b"\r\nbusy p...\r\n").await;
    // 50 ms after the link is up, it breaks.
    host.expect(b"+WS_DISCONNECTED:0\r\n").await;
    // 100 ms later, the next OK brings a report along: ask until it does.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "no report after OK");
        host.send(b"AT\r\n").await;
        host.expect(b"\r\nOK\r\n").await;
        let report = tokio::time::timeout(Duration::from_millis(20), host.read_exact(17)).await;
        if let Ok(report) = report {
            assert_eq!(report, b"+WS_DATA:0,2,hi\r\n");
            break;
        }
    }
}

#[tokio::test]
async fn the_verdict_is_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file(
        &dir,
        "expect:\n  sent: [AT+GMR, AT+CWJAP?]\n  within_ms: 5000\n",
    );
    // Passed: the host sends both, in order.
    let (mut wsat, addr) = start(&file);
    let mut host = Host::connect_quiet(addr).await;
    host.send(b"AT+GMR\r\nAT+CWJAP?\r\n").await;
    let status = wsat.wait_exit(WAIT).expect("wsat exits on its verdict");
    assert!(status.success(), "{status}");
    let line = tokio::time::timeout(WAIT, wsat.stderr_line("scenario")).await;
    assert!(line.unwrap().contains("scenario passed"));
    // Failed: the host closes the port after only the first.
    let (mut wsat, addr) = start(&file);
    let mut host = Host::connect_quiet(addr).await;
    host.send(b"AT+CWJAP?\r\n").await;
    host.read_until(b"\r\nOK\r\n").await;
    drop(host);
    let status = wsat.wait_exit(WAIT).expect("wsat exits on its verdict");
    assert_eq!(status.code(), Some(1));
    let line = tokio::time::timeout(WAIT, wsat.stderr_line("scenario failed"))
        .await
        .unwrap();
    assert!(
        line.contains("never sent a line starting \"AT+GMR\""),
        "{line}"
    );
}

#[test]
fn a_bad_scenario_file_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file(&dir, "steps:\n  - do: {fault: reset, link: ws9}\n");
    let out = Command::new(wsat_binary())
        .args(["--scenario", &file])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scenario") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(stderr.contains("no link \"ws9\""), "{stderr}");
}

#[tokio::test]
async fn a_scenario_drives_the_peer_too() {
    let peer = Peer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = scenario_file(
        &dir,
        &format!(
            "steps:\n\
             - on: {{connected: ws0}}\n  \
               peer: {{control: \"{}\", path: /connections/1/close, body: {{code: 4000, reason: bye}}}}\n",
            peer.control
        ),
    );
    let (_wsat, addr) = start(&file);
    let mut host = Host::connect_quiet(addr).await;
    host.open(0, &peer.uri).await;
    host.expect(b"+WS_CLOSED:0\r\n").await;
}
