//! The Python tests, one Rust test per pytest file, each file run by pytest
//! with the fixtures of `python/` (the `wsat_pytest` package: its plugin
//! starts the binary cargo built, given as `WSAT_BIN`):
//!
//! - `crates/wsat/tests/python/`: pyserial as the host, the way Python host
//!   drivers talk to an ESP-AT modem (`serial_for_url("socket://…")`
//!   against `--tcp`, `serial.Serial(PATH)` against `--pty`, with a
//!   `websockets` echo server as the peer), and a real third-party driver,
//!   Adafruit_CircuitPython_ESP_ATcontrol, over the same `socket://`.
//! - `python/tests/`: the package's own tests: the control client's faults
//!   end to end, the fixtures and the process, the scriptable peer's client,
//!   and the README's example test as written.
//!
//! Needs the Python from `./scripts/test.sh` (or `WSAT_PYTHON`) with pytest,
//! pyserial, websockets and the Adafruit driver; fails without them.
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use wsat_testkit::rig::{python, wsat_binary};

/// How long one file's tests may run (the Adafruit test bounds itself to
/// 50 s; pytest's start-up comes on top).
const FILE_LIMIT: Duration = Duration::from_secs(120);
/// After SIGINT at the limit (pytest then stops, tears its fixtures down and
/// says where the test was), how long before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Whether the process has exited, without reaping it: until it is reaped,
/// its pid (its process group's id) cannot be taken by another process.
fn exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// May the file's tests be skipped?
#[derive(Clone, Copy, PartialEq)]
enum Skips {
    Refused,
    Allowed,
}

/// Runs pytest on `file` (relative to the workspace's root): it must exit
/// 0 with at least one test passed and, unless `skips` allows them, none
/// skipped. pytest runs in a process group of its own, so the wsat
/// processes it started end with it, even when it is killed at the limit.
fn run_pytest(file: &str, skips: Skips) {
    let path = root().join(file);
    assert!(path.is_file(), "no {}", path.display());
    let source = root().join("python/src");
    let mut pythonpath = std::ffi::OsString::from(&source);
    if let Some(more) = std::env::var_os("PYTHONPATH") {
        pythonpath.push(":");
        pythonpath.push(more);
    }
    let mut output = tempfile::tempfile().expect("a file for pytest's output");
    let mut child = Command::new(python())
        .args(["-m", "pytest", "-q", "-rA"])
        // The plugin from python/src whether or not the package is
        // installed (its entry point has the same name, so never twice).
        .args(["-p", "wsat_pytest.plugin", "-p", "no:cacheprovider"])
        .arg(&path)
        .current_dir(path.parent().unwrap())
        .env("WSAT_BIN", wsat_binary())
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("stdout"))
        .stderr(output.try_clone().expect("stderr"))
        .process_group(0)
        .spawn()
        .expect("start python -m pytest");
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + FILE_LIMIT;
    let mut timed_out = false;
    while !exited(group) {
        if Instant::now() > deadline {
            timed_out = true;
            let _ = killpg(group, Signal::SIGINT);
            let grace = Instant::now() + TERM_GRACE;
            while Instant::now() < grace && !exited(group) {
                std::thread::sleep(Duration::from_millis(20));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever of the group is left (nothing, when the fixtures did their
    // job). pytest is not reaped yet, so the group's id is still its own.
    let _ = killpg(group, Signal::SIGKILL);
    let status = child.wait().expect("wait for pytest");
    let mut text = String::new();
    output.rewind().expect("rewind");
    output
        .read_to_string(&mut text)
        .expect("read pytest's output");
    assert!(
        !timed_out,
        "{file}: pytest still running after {FILE_LIMIT:?}:\n{text}"
    );
    assert!(
        status.success(),
        "{file}: pytest failed ({status}):\n{text}"
    );
    let summary = text.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed"),
        "{file}: no test passed:\n{text}"
    );
    if skips == Skips::Refused {
        assert!(
            !summary.contains("skipped"),
            "{file}: tests were skipped:\n{text}"
        );
    }
    // pytest's report (-rA: each test's output too), for --nocapture.
    print!("{text}");
}

#[test]
fn interop() {
    // pyserial's socket:// against --tcp; serial.Serial(PATH) against --pty,
    // twice on the same port.
    run_pytest("crates/wsat/tests/python/test_interop.py", Skips::Refused);
}

/// Adafruit_CircuitPython_ESP_ATcontrol 0.11.7 (PyPI, MIT) through pyserial's
/// `socket://`: begin, version, the join of an emulated AP, status, address,
/// DNS, ping, and a TCP socket to the test's echo server (connect, send,
/// receive, close), then leaving the AP. The module starts unassociated
/// (`--no-stored-ap`), as the library expects. One call is an expected
/// failure of the library, not of wsat: 0.11.7's `remote_AP` tests bytes
/// with a `str` prefix, so `connect()` raises `TypeError` once the module
/// reports it is associated; the test checks wsat's `AT+CWJAP?` reply
/// instead.
#[test]
fn adafruit() {
    run_pytest("crates/wsat/tests/python/test_adafruit.py", Skips::Refused);
}

/// Each of the control client's faults, and what a pyserial host then sees.
#[test]
fn control_client() {
    run_pytest("python/tests/test_control.py", Skips::Refused);
}

/// The fixtures, pty mode, stopping, finding the binary, start-up errors.
#[test]
fn fixture() {
    run_pytest("python/tests/test_fixture.py", Skips::Refused);
}

/// The README's "Testing your driver in CI" example, run as written.
#[test]
fn readme_example() {
    run_pytest("python/tests/test_readme.py", Skips::Refused);
}

/// The scriptable peer's fixture and client: skipped only while the binary
/// has no `peer` subcommand.
#[test]
fn peer_client() {
    let has_peer = Command::new(wsat_binary())
        .args(["peer", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run wsat peer --help")
        .success();
    let skips = if has_peer {
        Skips::Refused
    } else {
        Skips::Allowed
    };
    run_pytest("python/tests/test_peer.py", skips);
}
