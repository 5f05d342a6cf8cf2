//! pyserial as the host, the way Python host drivers talk to an ESP-AT modem:
//! `serial_for_url("socket://…")` against `--tcp` and `serial.Serial(PATH)`
//! against `--pty`, with a `websockets` echo server as the peer; and a real
//! third-party driver, Adafruit_CircuitPython_ESP_ATcontrol, over the same
//! `socket://`. Needs the Python from `./scripts/test.sh` (or `WSAT_PYTHON`);
//! fails without it.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsat_testkit::rig::{python, Proc};

/// How long one script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

/// Runs tests/python/`name` with `args`; it must exit 0 and print `ok_line`.
fn run_script(name: &str, args: &[&str], ok_line: &str) {
    let mut child = Command::new(python())
        .arg(script(name))
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
        "{name} {args:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert!(stdout.contains(ok_line), "{stdout}");
}

/// A script under tests/python/.
fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python")).join(name)
}

#[test]
fn pyserial_socket_url_against_tcp() {
    let (_wsat, addr) = Proc::tcp(&[]);
    run_script("interop.py", &["tcp", &addr.to_string()], "interop ok");
}

#[test]
fn pyserial_serial_against_pty() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWSAT");
    let link = link.to_str().unwrap();
    let (_wsat, _) = Proc::start(&["--pty", link], "pty ");
    run_script("interop.py", &["pty", link], "interop ok");
    // A second host program on the same port.
    run_script("interop.py", &["pty", link], "interop ok");
}

/// Adafruit_CircuitPython_ESP_ATcontrol 0.11.7 (PyPI, MIT) through pyserial's
/// `socket://`: begin, version, the join of an emulated AP, status, address,
/// DNS, ping, and a TCP socket to the script's echo server (connect, send,
/// receive, close), then leaving the AP. The module starts unassociated
/// (`--no-stored-ap`), as the library expects. One call is an expected
/// failure of the library, not of wsat: 0.11.7's `remote_AP` tests bytes
/// with a `str` prefix, so `connect()` raises `TypeError` once the module
/// reports it is associated; the script checks wsat's `AT+CWJAP?` reply
/// instead.
#[test]
fn adafruit_esp_atcontrol_drives_a_tcp_socket() {
    const SSID: &str = "wsat-adafruit";
    const PASSWORD: &str = "circuitpython";
    let ap = format!("{SSID},{PASSWORD}");
    let (_wsat, addr) = Proc::tcp(&["--wifi", &ap, "--no-stored-ap"]);
    run_script(
        "adafruit.py",
        &[&addr.to_string(), SSID, PASSWORD],
        "adafruit ok",
    );
}
