//! The processes the bench talks to: the peer server and the relay (this
//! executable's hidden `server` and `relay` subcommands) and the modem under
//! test (the release `wsat`).
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _};

/// Environment variable naming the `wsat` binary to measure.
pub const WSAT_BIN_ENV: &str = "WSAT_BIN";

/// A child process killed on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this executable with `args` (one of its hidden subcommands) and
/// reads the addresses it prints on stdout, one `<prefix> <addr>` line for
/// each of `prefixes`, in that order.
fn start_own(
    what: &str,
    args: &[&str],
    prefixes: &[&str],
) -> anyhow::Result<(Reaped, Vec<SocketAddr>)> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the {what}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Reaped(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut addrs = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let line = lines
            .next()
            .with_context(|| format!("the {what} exited before listening"))??;
        let addr = line
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(' '))
            .with_context(|| format!("unexpected line from the {what}: {line:?}"))?;
        addrs.push(addr.trim().parse()?);
    }
    Ok((child, addrs))
}

/// The peer server process.
pub struct Server {
    _child: Reaped,
    pub tcp_echo: SocketAddr,
    /// The stop-and-wait floor of the send path.
    pub stop_and_wait: SocketAddr,
    pub ws: SocketAddr,
}

impl Server {
    pub fn start() -> anyhow::Result<Server> {
        let (child, addrs) = start_own(
            "peer server",
            &["server"],
            &["tcp-echo", "stop-and-wait", "ws"],
        )?;
        Ok(Server {
            _child: child,
            tcp_echo: addrs[0],
            stop_and_wait: addrs[1],
            ws: addrs[2],
        })
    }
}

/// The relay process: one TCP hop in front of `upstream`, for the receive
/// floor.
pub struct Relay {
    _child: Reaped,
    pub addr: SocketAddr,
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> anyhow::Result<Relay> {
        let upstream = upstream.to_string();
        let (child, addrs) = start_own("relay", &["relay", "--upstream", &upstream], &["relay"])?;
        Ok(Relay {
            _child: child,
            addr: addrs[0],
        })
    }
}

/// A running `wsat --tcp 127.0.0.1:0`.
pub struct Wsat {
    child: Reaped,
    pub addr: SocketAddr,
}

impl Wsat {
    pub fn start(bin: &Path) -> anyhow::Result<Wsat> {
        let mut child = Command::new(bin)
            // The memory figures open up to 5000 modems: past the default
            // limit, which leaves room for 3 links each.
            .args(["--tcp", "127.0.0.1:0", "--max-modems", "6000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let child = Reaped(child);
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .context("wsat exited before listening")?
                .context("reading wsat's stderr")?;
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().parse()?;
            }
        };
        // Keep draining stderr so the modem never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Wsat { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Peak and current resident set size, and how the current one splits
    /// into private (anonymous) and file-backed pages, in KiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading /proc/<pid>/status of wsat")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/<pid>/status"))
        };
        Ok(Memory {
            peak_kib: field("VmHWM:")?,
            current_kib: field("VmRSS:")?,
            anon_kib: field("RssAnon:")?,
            file_kib: field("RssFile:")?,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub peak_kib: u64,
    pub current_kib: u64,
    /// Heap, stacks, written statics: what this process alone costs.
    pub anon_kib: u64,
    /// Mapped pages of the binary and shared libraries: clean, shared with
    /// every process that maps the same files, and as many as the kernel's
    /// fault-around happened to map (it varies with the page cache).
    pub file_kib: u64,
}

/// The `wsat` binary: `$WSAT_BIN`, or `wsat` next to this executable (both
/// are in target/release after `cargo build --release -p wsat`).
pub fn wsat_binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match explicit.or_else(|| std::env::var_os(WSAT_BIN_ENV).map(PathBuf::from)) {
        Some(bin) => bin,
        None => {
            let exe = std::env::current_exe().context("locating the bench executable")?;
            exe.with_file_name(format!("wsat{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if !bin.is_file() {
        bail!(
            "the modem binary {} does not exist: build it first with \
             `cargo build --release -p wsat`, or name it with --wsat PATH or ${WSAT_BIN_ENV}",
            bin.display()
        );
    }
    Ok(bin)
}
