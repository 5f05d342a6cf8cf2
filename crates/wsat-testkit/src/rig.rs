//! The `wsat` binary on any AT port: started with the given arguments,
//! ready once it names its port on stderr, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// How long the binary may take to name its port.
const START: Duration = Duration::from_secs(20);

/// How to start the binary, beyond its arguments.
#[derive(Clone, Default)]
pub struct Launch {
    /// RLIMIT_NOFILE, soft and hard, for the child alone: `sh` sets it with
    /// `ulimit -n` and execs wsat (which raises its soft limit to the hard).
    pub nofile: Option<u64>,
    /// More environment for the child.
    pub env: Vec<(String, String)>,
    /// Keep every stderr line for [`Proc::stderr_line`].
    pub keep_stderr: bool,
}

/// The `wsat` binary cargo built for the running test: `CARGO_BIN_EXE_wsat`
/// when cargo sets it at run time, else `wsat` beside the test binary's
/// `deps/` folder, where cargo puts a package's binaries. (`env!` would name
/// it only in wsat's own tests, not in this crate.)
pub fn wsat_binary() -> PathBuf {
    let path = match std::env::var_os("CARGO_BIN_EXE_wsat") {
        Some(path) => PathBuf::from(path),
        None => {
            let mut dir = std::env::current_exe().expect("the test binary's path");
            dir.pop();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir.join(format!("wsat{}", std::env::consts::EXE_SUFFIX))
        }
    };
    assert!(
        path.is_file(),
        "no wsat binary at {} (run the tests with cargo test -p wsat)",
        path.display()
    );
    path
}

pub struct Proc {
    child: Child,
    stderr: Option<UnboundedReceiver<String>>,
}

impl Proc {
    /// Starts `wsat ARGS` and waits for the stderr line starting with
    /// `ready_prefix`; returns the process and the rest of that line.
    pub fn start(args: &[&str], ready_prefix: &str) -> (Proc, String) {
        Proc::launch(&Launch::default(), args, ready_prefix)
    }

    /// [`Proc::start`] as `launch` says.
    pub fn launch(launch: &Launch, args: &[&str], ready_prefix: &str) -> (Proc, String) {
        let wsat = wsat_binary();
        let mut command = match launch.nofile {
            None => Command::new(wsat),
            Some(limit) => {
                // Without -H or -S, `ulimit -n` sets both limits.
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!(r#"ulimit -n {limit} && exec "$0" "$@""#))
                    .arg(wsat);
                sh
            }
        };
        let mut child = command
            .args(args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsat");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let (lines_tx, lines_rx) = unbounded_channel();
        let mut lines_tx = launch.keep_stderr.then_some(lines_tx);
        let prefix = ready_prefix.to_string();
        // Reads stderr to the end, so the modem never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(&prefix) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.to_string());
                    }
                }
                if let Some(lines) = &lines_tx {
                    if lines.send(line).is_err() {
                        lines_tx = None;
                    }
                }
            }
        });
        let rest = rx
            .recv_timeout(START)
            .unwrap_or_else(|_| panic!("wsat {args:?} never printed {ready_prefix:?}"));
        let stderr = launch.keep_stderr.then_some(lines_rx);
        (Proc { child, stderr }, rest)
    }

    /// `wsat --tcp 127.0.0.1:0 ARGS`, and the address it listens on.
    pub fn tcp(args: &[&str]) -> (Proc, std::net::SocketAddr) {
        Proc::tcp_launch(&Launch::default(), args)
    }

    /// [`Proc::tcp`] as `launch` says.
    pub fn tcp_launch(launch: &Launch, args: &[&str]) -> (Proc, std::net::SocketAddr) {
        let mut all = vec!["--tcp", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (proc, addr) = Proc::launch(launch, &all, "listening on ");
        (proc, addr.parse().expect("address"))
    }

    /// The next stderr line (of those not yet taken) that contains `needle`;
    /// needs [`Launch::keep_stderr`]. Unbounded: the caller times it out.
    pub async fn stderr_line(&mut self, needle: &str) -> String {
        let lines = self
            .stderr
            .as_mut()
            .expect("stderr_line needs Launch::keep_stderr");
        loop {
            match lines.recv().await {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!("wsat's stderr ended without a line containing {needle:?}"),
            }
        }
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; true if it exited.
    pub fn terminate(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Waits (bounded by `limit`) for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmHWM:")
    }

    /// Resident memory now (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }
}

/// A `<field> <n> kB` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with pytest, pyserial and websockets: `WSAT_PYTHON` (set by
/// `scripts/test.sh`), else the workspace's `.venv`. Panics with what to do
/// when there is none: these tests fail rather than skip.
pub fn python() -> PathBuf {
    let python = match std::env::var_os("WSAT_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../.venv/bin/python"
        )),
    };
    let check = Command::new(&python)
        .args(["-c", "import pytest, serial, websockets"])
        .output();
    match check {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{} lacks pytest, pyserial or websockets ({}); run ./scripts/test.sh, which installs them into .venv",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(error) => panic!(
            "no Python at {} ({error}); set WSAT_PYTHON or run ./scripts/test.sh, which makes .venv with pytest, pyserial and websockets",
            python.display()
        ),
    }
}
