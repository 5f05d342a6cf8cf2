//! `wsat`: a WebSocket AT modem on stdio, TCP, a pty or a serial device, and
//! an echo server to try it, and a scriptable WebSocket peer to test hosts with.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use wsat::control;
use wsat::driver::Settings;
use wsat::echo_server;
use wsat::pcap::Pcap;
use wsat::peer;
use wsat::pki::PkiStore;
use wsat::scenario::{Scenario, Verdict};
use wsat::tls::TlsOptions;
use wsat::trace::Tracer;
use wsat::transport;
use wsat::transport::tcp;
use wsat_proto::{AccessPoint, Firmware, ModemOptions, WifiOptions};

/// The one function of the C math library the binary calls (tokio's
/// multi-threaded scheduler weighs task poll times with `powf`). Defined
/// here from the `libm` crate (musl's, ported), it lets the binary link
/// without libm.so.6: the dynamic loader no longer maps that library and
/// runs its IFUNC resolvers at start-up, which left about 0.4 MiB of its
/// pages resident in every idle modem.
#[allow(unsafe_code)]
mod math {
    // SAFETY: `no_mangle` makes this the process's `pow`: it has the C
    // signature and meaning of libm's (`libm::pow` is a port of musl's), and
    // no other definition of `pow` is linked into the binary.
    #[no_mangle]
    extern "C" fn pow(x: f64, y: f64) -> f64 {
        libm::pow(x, y)
    }
}

/// An ESP-AT modem: speaks ESP-AT's AT commands (WebSocket, Wi-Fi station,
/// TCP/UDP/SSL sockets) on the AT port and does the real networking (RFC
/// 6455 over ws:// and wss://, sockets) on the host.
///
/// With none of --tcp, --pty, --serial the AT port is stdin/stdout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Serve the AT port on a TCP listener instead of stdio; every accepted
    /// connection is an independent modem (e.g. 127.0.0.1:2323; port 0 picks one).
    #[arg(long, value_name = "ADDR", group = "port")]
    tcp: Option<SocketAddr>,

    /// With --tcp: at most N modems at once; a connection beyond them gets
    /// the line `ERROR: too many modems (--max-modems N)` and is closed
    /// [default: (open-file limit - 32) / 4, after raising the limit to its
    /// hard maximum: room for every modem's connection and three links].
    #[arg(long, value_name = "N", requires = "tcp",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_modems: Option<usize>,

    /// With --pty or --tcp: print `ready` whenever a host opens the pty or
    /// connects, for hosts that wait for it after opening the port (ESP-AT
    /// prints it only at boot, and some drivers take an extra one as a
    /// reset: off by default).
    #[arg(long)]
    ready_on_open: bool,

    /// Milliseconds from the OK of AT+RST or AT+RESTORE to `ready`, during
    /// which input is lost as on a restarting chip (ESP32s take 0.7-1.7 s;
    /// drivers want it well under 1 s).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=2000))]
    restart_delay: u64,

    /// An access point the emulated module can see and join:
    /// SSID[,PASSWORD[,RSSI[,CHANNEL]]] (empty password: an open network;
    /// RSSI in dBm, default -40; channel 1-13, default 6). Repeatable. The
    /// first is stored with autoconnect, so it is joined after `ready`
    /// [default: one open AP, wsat].
    #[arg(long, value_name = "AP", value_parser = parse_access_point)]
    wifi: Vec<AccessPoint>,

    /// The module has no stored AP: after `ready` it is not associated, and
    /// the host must join one with AT+CWJAP first.
    #[arg(long)]
    no_stored_ap: bool,

    /// Milliseconds an AT+CWJAP takes, from its echo to WIFI CONNECTED
    /// (real joins take 1-5 s; drivers wait at least 15).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=20000))]
    join_delay: u64,

    /// Serve the AT port on a pseudo-terminal in raw mode, reached through a
    /// symlink at PATH that hosts open like a serial port (removed on exit).
    #[arg(long, value_name = "PATH", group = "port")]
    pty: Option<PathBuf>,

    /// Use a serial device as the AT port (8N1, --baud or 115200).
    #[arg(long, value_name = "DEV", group = "port")]
    serial: Option<String>,

    /// The AT port's rate in baud. With --serial: the device's rate. Other
    /// ports are paced to what a UART at this rate carries (10 bits a byte,
    /// both directions); AT+UART_CUR changes it. Unpaced when not given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(80..=5_000_000))]
    baud: Option<u32>,

    /// Log every byte on the AT port and every frame on each link to FILE,
    /// timestamped, for a person to read.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,

    /// Write a PcapNG capture to FILE for Wireshark/tshark: every modem's
    /// AT port as a TCP stream to 192.0.2.2:23, and every link's plaintext
    /// (WebSocket frames of wss:// in clear) between its real addresses.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// Where `AT+SYSMFG` keeps TLS certificates and keys, one PEM file per
    /// entry [default: $XDG_DATA_HOME/wsat/pki or ~/.local/share/wsat/pki].
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,

    /// With AT+WSCFG auth modes 2 and 3, also check that the server's
    /// certificate names the host (ESP-AT checks only the chain).
    #[arg(long)]
    tls_verify_hostname: bool,

    /// Serve the control API (HTTP + JSON: modems, links, faults) on ADDR,
    /// e.g. 127.0.0.1:7700; see the README's "Faults on cue".
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,

    /// Run the faults of a YAML scenario file; with an `expect:` part, the
    /// first modem's verdict ends the process (exit code 0 or 1).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,

    /// The ESP-AT release to be: its commands, ranges and AT+GMR
    /// (v3.2, v3.3, v4.0, v4.1, v5.0, master).
    #[arg(long, value_name = "RELEASE", default_value = "master", value_parser = parse_firmware)]
    firmware: Firmware,

    /// The address AT+CIPSERVER listens on, at the port the host asks for
    /// (0.0.0.0 lets other machines connect).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    server_ip: std::net::IpAddr,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// A WebSocket echo server to try the modem without the internet.
    EchoServer {
        /// Address to listen on.
        #[arg(default_value = "127.0.0.1:8765")]
        addr: SocketAddr,
    },
    /// A scriptable WebSocket peer to test host drivers with.
    ///
    /// It echoes by default. Its HTTP+JSON control API (`curl
    /// http://127.0.0.1:8767/` lists the routes with example bodies) makes
    /// it push messages of a given size and fragmentation, ping, close with
    /// a code and reason, stall, drop TCP, or answer handshakes with a
    /// stall, an HTTP status or a wrong accept key; it lists the
    /// connections and logs what each received. See README, "A scriptable
    /// peer".
    Peer {
        /// Address the WebSocket server listens on (port 0 picks one).
        #[arg(default_value = "127.0.0.1:8766")]
        addr: SocketAddr,
        /// Address of the control API (port 0 picks one). It has no
        /// authentication: keep it on 127.0.0.1.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8767")]
        control: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let fd_limit = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(run(cli, fd_limit));
    // Blocking threads (stdin, a serial drain) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Each modem on --tcp takes two descriptors or more: use all we may have.
/// Returns the open-file limit now in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        // Linux's usual soft limit.
        Err(_) => 1024,
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    // `Targets` (`target=level,...`) rather than `EnvFilter`: the same
    // RUST_LOG syntax for targets and levels without a regex engine, whose
    // start-up alone left about 0.3 MiB more of the binary resident.
    // An empty or unparsable RUST_LOG counts as unset (an empty `Targets`
    // would silence even errors).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty())
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(level));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}

async fn run(cli: Cli, fd_limit: u64) -> anyhow::Result<()> {
    if let Some(Command::EchoServer { addr }) = cli.command {
        let listener = echo_server::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        return Ok(echo_server::serve(listener).await?);
    }
    if let Some(Command::Peer { addr, control }) = cli.command {
        let (ws, control) = peer::bind(addr, control)
            .await
            .with_context(|| format!("binding {addr} and {control}"))?;
        return Ok(peer::serve(ws, control).await?);
    }
    let registry = match cli.control {
        Some(addr) => Some(start_control(addr).await?),
        None => None,
    };
    let scenario = match &cli.scenario {
        Some(path) => {
            Some(Arc::new(Scenario::load(path).map_err(|e| {
                anyhow::anyhow!("scenario {}: {e}", path.display())
            })?))
        }
        None => None,
    };
    let (verdicts_tx, mut verdicts) = tokio::sync::mpsc::unbounded_channel();
    let settings = Arc::new(Settings {
        options: modem_options(&cli),
        registry,
        scenario,
        verdicts: Some(verdicts_tx),
        tls: TlsOptions {
            verify_hostname: cli.tls_verify_hostname,
        },
        store: open_store(cli.pki_dir)?,
        server_ip: Some(cli.server_ip),
        tracer: match &cli.trace {
            Some(path) => Some(
                Tracer::create(path)
                    .with_context(|| format!("creating the trace {}", path.display()))?,
            ),
            None => None,
        },
        pcap: match &cli.pcap {
            Some(path) => Some(
                Pcap::create(path)
                    .with_context(|| format!("creating the capture {}", path.display()))?,
            ),
            None => None,
        },
    });
    let baud = cli.baud;
    let max_modems = cli
        .max_modems
        .unwrap_or_else(|| tcp::default_max_modems(fd_limit));
    let serve = async {
        if let Some(addr) = cli.tcp {
            serve_tcp(addr, settings, baud, max_modems, cli.ready_on_open).await
        } else if let Some(link) = &cli.pty {
            transport::run_pty(link, settings, baud, cli.ready_on_open)
                .await
                .with_context(|| format!("pty at {}", link.display()))
        } else if let Some(device) = &cli.serial {
            transport::run_serial(device, settings, baud.unwrap_or(115_200))
                .await
                .with_context(|| format!("serial device {device}"))
        } else {
            let (stdin, stdout) = (tokio::io::stdin(), tokio::io::stdout());
            transport::run_port(stdin, stdout, settings, "stdio".into(), baud, None).await?;
            Ok(())
        }
    };
    // SIGINT/SIGTERM end the modem(s) cleanly: a pty's symlink is removed.
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let result = tokio::select! {
        result = serve => result,
        Some(verdict) = verdicts.recv() => return conclude(verdict),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    // A modem that ended with the port has its verdict in already.
    match verdicts.try_recv() {
        Ok(verdict) => conclude(verdict),
        Err(_) => result,
    }
}

/// A scenario's verdict ends the run: exit code 0 or 1.
fn conclude((port, verdict): (String, Verdict)) -> anyhow::Result<()> {
    match verdict {
        Verdict::Passed => {
            eprintln!("scenario passed ({port})");
            Ok(())
        }
        Verdict::Failed(why) => Err(anyhow::anyhow!("scenario failed ({port}): {why}")),
    }
}

/// Binds the control API and serves it in the background.
async fn start_control(addr: SocketAddr) -> anyhow::Result<Arc<control::Registry>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the control API at {addr}"))?;
    let bound = listener.local_addr()?;
    let reach = if bound.ip().is_loopback() {
        "only this machine can reach it"
    } else {
        "reachable from other machines: anyone there can inject faults"
    };
    eprintln!("control API on http://{bound} ({reach})");
    let registry = Arc::new(control::Registry::default());
    let served = registry.clone();
    tokio::spawn(async move {
        if let Err(error) = control::serve(listener, served).await {
            tracing::warn!(%error, "control API stopped");
        }
    });
    Ok(registry)
}

/// Every accepted connection is a modem of its own, up to `max_modems`,
/// found running: a host that connects is one that opens the port of a
/// module that booted before, so it sees no `ready` unless `ready_on_open`
/// (esp-at-tcpip.md §1.5, §1.7).
async fn serve_tcp(
    addr: SocketAddr,
    settings: Arc<Settings>,
    baud: Option<u32>,
    max_modems: usize,
    ready_on_open: bool,
) -> anyhow::Result<()> {
    let listener = transport::tcp_listener(addr).with_context(|| format!("binding {addr}"))?;
    eprintln!("listening on {}", listener.local_addr()?);
    tracing::info!(max_modems, "accepting modems");
    let never = tcp::serve(listener, max_modems, move |stream, peer| {
        let settings = settings.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let (reader, writer) = stream.into_split();
            tracing::info!(%peer, "modem started");
            let name = format!("tcp {peer}");
            let late_host = Some(ready_on_open);
            if let Err(error) =
                transport::run_port(reader, writer, settings, name, baud, late_host).await
            {
                tracing::info!(%peer, %error, "modem ended");
            }
        }
    })
    .await;
    match never {}
}

/// An explicit `--pki-dir` must work; the default one may be unusable (a
/// read-only home), and then the store is empty and refuses writes.
fn open_store(dir: Option<PathBuf>) -> anyhow::Result<Option<PkiStore>> {
    match dir {
        Some(dir) => {
            let store = PkiStore::open(dir.clone())
                .with_context(|| format!("opening the certificate store {}", dir.display()))?;
            Ok(Some(store))
        }
        None => match PkiStore::open(PkiStore::default_dir()) {
            Ok(store) => Ok(Some(store)),
            Err(error) => {
                tracing::warn!(%error, "no certificate store");
                Ok(None)
            }
        },
    }
}

fn modem_options(cli: &Cli) -> ModemOptions {
    let mut wifi = WifiOptions::default();
    if !cli.wifi.is_empty() {
        wifi.access_points = cli.wifi.clone();
    }
    wifi.stored = (!cli.no_stored_ap).then_some(0);
    wifi.join_delay_ms = cli.join_delay;
    // The network's DNS servers are the host's (AT+CIPDNS?).
    if let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") {
        wifi.dhcp_dns = wsat::net::resolver_servers(&text);
    }
    ModemOptions {
        commit: env!("WSAT_COMMIT").to_string(),
        build_time: env!("WSAT_BUILD_TIME").to_string(),
        restart_delay_ms: cli.restart_delay,
        firmware: cli.firmware,
        wifi,
        ..ModemOptions::default()
    }
}

fn parse_firmware(text: &str) -> Result<Firmware, String> {
    Firmware::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Firmware::ALL.iter().map(|f| f.name()).collect();
        format!("not a release wsat knows; one of {}", names.join(", "))
    })
}

/// `SSID[,PASSWORD[,RSSI[,CHANNEL]]]`; each AP gets a BSSID of its own.
fn parse_access_point(text: &str) -> Result<AccessPoint, String> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let mut fields = text.splitn(4, ',');
    let ssid = fields.next().unwrap_or_default();
    if ssid.is_empty() || ssid.len() > 32 {
        return Err("the SSID must have 1 to 32 bytes".into());
    }
    let password = fields.next().unwrap_or_default();
    if !password.is_empty() && !(8..=64).contains(&password.len()) {
        return Err("a WPA2 password has 8 to 64 bytes (none: an open network)".into());
    }
    let rssi = match fields.next() {
        Some(rssi) => rssi
            .parse::<i8>()
            .ok()
            .filter(|r| (-100..=0).contains(r))
            .ok_or("RSSI: a number from -100 to 0")?,
        None => -40,
    };
    let channel = match fields.next() {
        Some(channel) => channel
            .parse::<u8>()
            .ok()
            .filter(|c| (1..=13).contains(c))
            .ok_or("channel: 1 to 13")?,
        None => 6,
    };
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(AccessPoint {
        ssid: ssid.as_bytes().to_vec(),
        password: password.as_bytes().to_vec(),
        rssi,
        channel,
        bssid: [0x02, 0, 0, 0, 0, n],
    })
}
