//! pyserial as the host, the way Python host drivers talk to an ESP-AT modem:
//! `serial_for_url("socket://…")` against `--tcp` and `serial.Serial(PATH)`
//! against `--pty`, with a `websockets` echo server as the peer. Needs the
//! Python from `./scripts/test.sh` (or `WSAT_PYTHON`); fails without it.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsat_testkit::rig::{python, Proc};

/// How long one script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

fn run_script(args: &[&str]) {
    let mut child = Command::new(python())
        .arg(script("interop.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let deadline = Instant::now() + SCRIPT_LIMIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "interop.py {args:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert!(stdout.contains("interop ok"), "{stdout}");
}

/// A script under tests/python/.
fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python")).join(name)
}

#[test]
fn pyserial_socket_url_against_tcp() {
    let (_wsat, addr) = Proc::tcp(&[]);
    run_script(&["tcp", &addr.to_string()]);
}

#[test]
fn pyserial_serial_against_pty() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWSAT");
    let link = link.to_str().unwrap();
    let (_wsat, _) = Proc::start(&["--pty", link], "pty ");
    run_script(&["pty", link]);
    // A second host program on the same port.
    run_script(&["pty", link]);
}
