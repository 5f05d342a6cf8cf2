//! The AT port on a pseudo-terminal (`--pty`), on a serial device (`--serial`,
//! here the slave of a pty the test owns), and the `--trace` log.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use wsat_testkit::rig::Proc;
use wsat_testkit::{echo_server, WAIT};

/// A terminal opened the way a C host program opens a serial port: raw
/// mode via termios, reads bounded by a poll timeout.
struct Terminal {
    file: File,
    /// Read but not yet asked for.
    buf: Vec<u8>,
}

impl Terminal {
    fn open(path: &Path) -> Terminal {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path)
            .expect("open the terminal");
        let mut termios = tcgetattr(file.as_fd()).unwrap();
        cfmakeraw(&mut termios);
        tcsetattr(file.as_fd(), SetArg::TCSANOW, &termios).unwrap();
        Terminal {
            file,
            buf: Vec::new(),
        }
    }

    fn from_fd(fd: OwnedFd) -> Terminal {
        Terminal {
            file: File::from(fd),
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.file.write_all(bytes).expect("write to the terminal");
    }

    /// Reads until `needle` has arrived (bounded by [`WAIT`]); returns what
    /// came up to its end and keeps the rest for the next call.
    fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        let mut got = std::mem::take(&mut self.buf);
        loop {
            if let Some(at) = got.windows(needle.len()).position(|w| w == needle) {
                self.buf = got.split_off(at + needle.len());
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            );
            let mut fds = [nix::poll::PollFd::new(
                self.file.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            if nix::poll::poll(&mut fds, ms).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = self.file.read(&mut buf).expect("read the terminal");
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends `line` CR LF and asserts the exact answer (echo included).
    fn at(&mut self, line: &str, answer: &[u8]) {
        self.send(format!("{line}\r\n").as_bytes());
        let got = self.read_until(answer);
        assert!(
            got.ends_with(answer),
            "{line}: got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// ESP-AT's documented session (echo on) through a terminal.
fn documented_session(term: &mut Terminal, uri: &str) {
    let open = format!("AT+WSOPEN=0,\"{uri}\"");
    term.at(
        &open,
        format!("{open}\r\n+WS_CONNECTED:0\r\n\r\nOK\r\n").as_bytes(),
    );
    term.at("AT+WSSEND=0,4", b"AT+WSSEND=0,4\r\n\r\nOK\r\n\r\n>");
    term.send(b"test");
    term.read_until(b"\r\nSEND OK\r\n");
    term.read_until(b"+WS_DATA:0,4,test\r\n");
    term.at(
        "AT+WSOPEN?",
        format!("AT+WSOPEN?\r\n+WSOPEN:0,2,\"{uri}\"\r\n\r\nOK\r\n").as_bytes(),
    );
    term.at("AT+WSCLOSE=0", b"AT+WSCLOSE=0\r\n\r\nOK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_runs_the_documented_session_survives_reopening_and_cleans_up() {
    let uri = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWSAT");
    let link_arg = link.to_str().unwrap().to_string();
    let (mut wsat, slave) = Proc::start(&["--pty", &link_arg], "pty ");
    assert!(slave.starts_with("/dev/pts/"), "{slave}");
    assert!(std::fs::read_link(&link).unwrap().starts_with("/dev/pts"));

    let link2 = link.clone();
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::open(&link2);
        documented_session(&mut term, &uri);
        drop(term);
        // A host that closed the port and opens it again finds the modem
        // as it left it (a real board stays powered).
        let mut term = Terminal::open(&link2);
        term.at("AT", b"AT\r\n\r\nOK\r\n");
        term.at("ATE0", b"ATE0\r\n\r\nOK\r\n");
        drop(term);
        let mut term = Terminal::open(&link2);
        term.at("AT+WSOPEN?", b"\r\nOK\r\n");
    })
    .await
    .unwrap();

    assert!(wsat.terminate(), "wsat did not exit on SIGTERM");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the symlink is left behind"
    );
}

#[tokio::test]
async fn pty_with_ready_on_open_greets_every_host_that_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyWSAT");
    let link_arg = link.to_str().unwrap().to_string();
    let (mut wsat, _) = Proc::start(&["--pty", &link_arg, "--ready-on-open"], "pty ");
    tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            let mut term = Terminal::open(&link);
            // The start-up `ready`, which no host read, is not kept for it:
            // the first thing a host reads is its own `ready`.
            assert_eq!(term.read_until(b"\r\nready\r\n"), b"\r\nready\r\n");
            term.at("AT", b"AT\r\n\r\nOK\r\n");
        }
    })
    .await
    .unwrap();
    assert!(wsat.terminate(), "wsat did not exit on SIGTERM");
}

#[test]
fn pty_refuses_to_replace_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-link");
    std::fs::write(&path, b"keep me").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsat"))
        .args(["--pty", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_device_and_uart_cur_with_a_trace() {
    let uri = echo_server().await;
    // The test holds the master; wsat opens the slave as its serial device.
    let pty = nix::pty::openpty(None, None).unwrap();
    let device = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.log");
    let (mut wsat, named) = Proc::start(
        &[
            "--serial",
            device.to_str().unwrap(),
            "--baud",
            "9600",
            "--trace",
            trace.to_str().unwrap(),
        ],
        "serial ",
    );
    assert!(named.ends_with("at 9600 baud"), "{named}");

    let mut term = Terminal::from_fd(pty.master);
    let uri2 = uri.clone();
    let term = tokio::task::spawn_blocking(move || {
        term.at(
            "AT+UART_CUR?",
            b"AT+UART_CUR?\r\n+UART_CUR:9600,8,1,0,0\r\n\r\nOK\r\n",
        );
        // OK at the old settings, then the device switches; the modem goes on.
        term.at(
            "AT+UART_CUR=57600,8,1,0,0",
            b"AT+UART_CUR=57600,8,1,0,0\r\n\r\nOK\r\n",
        );
        term.at(
            "AT+UART_CUR?",
            b"AT+UART_CUR?\r\n+UART_CUR:57600,8,1,0,0\r\n\r\nOK\r\n",
        );
        documented_session(&mut term, &uri2);
        term
    })
    .await
    .unwrap();
    drop(pty.slave);

    drop(term);

    assert!(wsat.terminate());
    let log = std::fs::read_to_string(&trace).unwrap();
    print!("{log}");
    for expected in [
        " m1 start on serial ",
        " m1 at-rx \"AT+UART_CUR=57600,8,1,0,0\\r\\n\"",
        // The device took the new settings.
        " m1 uart 57600 baud, 8 data bits, stop bits 1, parity 0, flow control 0: applied",
        " m1 link0 connect 127.0.0.1:",
        " m1 link0 tx http \"GET / HTTP/1.1\"",
        " m1 link0 rx http \"HTTP/1.1 101 Switching Protocols\"",
        " m1 link0 tx frame TEXT fin=1 len=4 masked \"test\"",
        " m1 link0 rx frame TEXT fin=1 len=4 \"test\"",
        "+WS_DATA:0,4,test\\r\\n\"\n",
        " m1 link0 tx frame CLOSE fin=1 len=2 masked \"\\x03\\xe8\"",
    ] {
        assert!(log.contains(expected), "trace lacks {expected:?}");
    }
    // Every line is timestamped.
    for line in log.lines() {
        // RFC 3339 UTC to the microsecond: 2026-12-01T12:00:01.123456Z.
        let stamp = line.split(' ').next().unwrap().as_bytes();
        assert!(
            stamp.len() == 27
                && (stamp[4], stamp[10], stamp[13], stamp[19]) == (b'-', b'T', b':', b'.')
                && stamp[26] == b'Z',
            "{line}"
        );
    }
}
