//! `wsat-bench`: measures the wsat modem against what a user could use
//! instead, side by side in one run, on loopback:
//!
//! - AT round trip (`AT` → `OK`) against a raw TCP echo of 4 bytes;
//! - echo latency of a 64-byte binary message through the modem against a
//!   direct tokio-tungstenite client;
//! - send and receive throughput of 16 KiB messages, and of every size from
//!   16 B to 16 KiB for the figure, against the direct client;
//! - the same 16 KiB throughputs against their physical floors: receive
//!   through one raw TCP relay process (the hop the modem adds), and send as
//!   a raw stop-and-wait exchange of the modem's own `AT+WSSEND` requests and
//!   `SEND OK` answers;
//! - peak resident memory of the modem process, idle and with 1000 and 5000
//!   modems of one link each.
//!
//! The servers run in a separate process (this executable's hidden `server`
//! subcommand), the relay in another (`relay`); the modem is the release
//! `wsat` binary.
mod at;
mod bench;
mod plot;
mod procs;
mod relay;
mod server;
mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plotters::style::RGBColor;

use bench::Path as Via;
use procs::{Relay, Server, Wsat};
use stats::{median, Latencies};

/// Benchmarks of the wsat modem against a raw TCP echo and a direct
/// tokio-tungstenite client, on loopback. Needs the release modem:
/// `cargo build --release -p wsat`.
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// A shorter run (under a minute) with the same metrics.
    #[arg(long)]
    quick: bool,

    /// Where to write the throughput figure (PNG). Default: docs/throughput.png
    /// of the workspace for a full run, none for a quick one.
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,

    /// Draw no figure.
    #[arg(long, conflicts_with = "plot")]
    no_plot: bool,

    /// Let the scheduler spread the processes over every CPU instead of
    /// pinning the bench, the server and the modem to one (see the README:
    /// on a VM, waking a thread on another, idle vCPU can cost more than the
    /// work measured, and which hops pay it changes from run to run).
    #[arg(long)]
    no_pin: bool,

    /// The wsat binary to measure (default: $WSAT_BIN, or `wsat` next to
    /// this executable).
    #[arg(long, value_name = "PATH")]
    wsat: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The peer server process (started by the bench itself).
    #[command(hide = true)]
    Server,
    /// The relay process of the receive floor (started by the bench itself).
    #[command(hide = true)]
    Relay {
        /// Where every accepted connection is forwarded.
        #[arg(long, value_name = "ADDR")]
        upstream: SocketAddr,
    },
}

/// How much work each measurement does.
struct Plan {
    /// Latency samples per peer, taken in alternating blocks.
    round_trips: usize,
    echoes: usize,
    warmup: usize,
    blocks: usize,
    /// 16 KiB messages per throughput run, and runs per peer (median kept).
    bulk_messages: usize,
    bulk_runs: usize,
    /// Payload bytes per point of the size sweep, and its message bounds.
    sweep_bytes: usize,
    sweep_min_messages: usize,
    sweep_max_messages: usize,
    /// Modems of one link each, for the two memory figures.
    modems: usize,
    many_modems: usize,
}

const FULL: Plan = Plan {
    round_trips: 40_000,
    echoes: 20_000,
    warmup: 1_000,
    blocks: 20,
    bulk_messages: 8_192,
    bulk_runs: 5,
    sweep_bytes: 32 << 20,
    sweep_min_messages: 2_000,
    sweep_max_messages: 40_000,
    modems: 1_000,
    many_modems: 5_000,
};

const QUICK: Plan = Plan {
    round_trips: 5_000,
    echoes: 3_000,
    warmup: 200,
    blocks: 5,
    bulk_messages: 2_048,
    bulk_runs: 1,
    sweep_bytes: 8 << 20,
    sweep_min_messages: 500,
    sweep_max_messages: 5_000,
    modems: 1_000,
    many_modems: 5_000,
};

const BULK_SIZE: usize = 16 * 1024;
const ECHO_SIZE: usize = 64;
/// 16 B to 16 KiB, powers of 4.
const SWEEP_SIZES: [usize; 6] = [16, 64, 256, 1024, 4096, 16384];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Server) => return server::run(),
        Some(Command::Relay { upstream }) => return relay::run(upstream),
        None => {}
    }
    let plan = if cli.quick { &QUICK } else { &FULL };
    let wsat = procs::wsat_binary(cli.wsat.clone())?;
    let plot = match (&cli.plot, cli.no_plot, cli.quick) {
        (Some(path), _, _) => Some(path.clone()),
        (None, false, false) => Some(workspace_root().join("docs/throughput.png")),
        _ => None,
    };
    // Before any child exists: they inherit the limit (the modem raises its
    // own anyway), and the memory figures need several descriptors a modem.
    let fd_limit = raise_fd_limit();
    // Before any thread or child exists: they inherit the affinity.
    let pinned = if cli.no_pin {
        None
    } else {
        Some(pin_to_one_cpu()?)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let report = runtime.block_on(run(plan, &wsat, fd_limit))?;
    report.print(cli.quick, pinned, started.elapsed());
    if let Some(path) = plot {
        report.draw(&path)?;
        println!("figure: {}", path.display());
    }
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the
/// soft limit now in force (None if it cannot be read).
fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// Pins this process (and so every thread and child it starts) to the
/// highest-numbered CPU it may run on; returns that CPU.
fn pin_to_one_cpu() -> anyhow::Result<usize> {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let allowed = sched_getaffinity(Pid::from_raw(0))?;
    let cpu = (0..CpuSet::count())
        .rev()
        .find(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .ok_or_else(|| anyhow::anyhow!("no CPU in this process's affinity mask"))?;
    let mut one = CpuSet::new();
    one.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &one)?;
    Ok(cpu)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Report {
    wsat: PathBuf,
    at_rt: Latencies,
    tcp_rt: Latencies,
    modem_echo: Latencies,
    direct_echo: Latencies,
    send: Pair,
    recv: Pair,
    /// MB/s of the floors, 16 KiB messages: stop-and-wait send, and receive
    /// through the relay.
    send_floor: f64,
    recv_floor: f64,
    sweep_send: Vec<(usize, Pair)>,
    sweep_recv: Vec<(usize, Pair)>,
    rss_idle: procs::Memory,
    rss_3links: procs::Memory,
    rss_modems: procs::Memory,
    modems: usize,
    /// The figure for `many_modems`, or why it could not be taken.
    rss_many: Result<procs::Memory, String>,
    many_modems: usize,
}

/// MB/s of the modem path and of the direct client.
#[derive(Clone, Copy)]
struct Pair {
    modem: f64,
    direct: f64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.modem / self.direct
    }
}

async fn run(plan: &Plan, wsat_bin: &Path, fd_limit: Option<u64>) -> anyhow::Result<Report> {
    let server = Server::start()?;
    let relay = Relay::start(server.ws)?;
    let wsat = Wsat::start(wsat_bin)?;
    let progress = |what: &str| eprintln!("wsat-bench: {what}");

    progress("AT round trip vs raw TCP echo");
    let (at_rt, tcp_rt) = {
        let mut at = bench::AtRoundTrip::new(wsat.addr).await?;
        let mut tcp = bench::TcpEcho::new(server.tcp_echo).await?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        at.sample(&mut Vec::new(), plan.warmup).await?;
        tcp.sample(&mut Vec::new(), plan.warmup).await?;
        let block = plan.round_trips / plan.blocks;
        for _ in 0..plan.blocks {
            at.sample(&mut a, block).await?;
            tcp.sample(&mut b, block).await?;
        }
        (Latencies::new(a), Latencies::new(b))
    };

    progress("echo latency vs direct client");
    let (modem_echo, direct_echo) = {
        let mut modem = bench::ModemEcho::new(wsat.addr, server.ws, ECHO_SIZE).await?;
        let mut direct = bench::DirectEcho::new(server.ws, ECHO_SIZE).await?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        modem.sample(&mut Vec::new(), plan.warmup).await?;
        direct.sample(&mut Vec::new(), plan.warmup).await?;
        let block = plan.echoes / plan.blocks;
        for _ in 0..plan.blocks {
            modem.sample(&mut a, block).await?;
            direct.sample(&mut b, block).await?;
        }
        (Latencies::new(a), Latencies::new(b))
    };

    let modem = Via::Modem(wsat.addr);
    progress("send throughput, 16 KiB messages, vs direct client and stop-and-wait floor");
    let [send_modem, send_direct, send_floor] = alternate(
        plan.bulk_runs,
        [modem, Via::Direct, Via::StopAndWait(server.stop_and_wait)],
        |via| bench::send_throughput(via, server.ws, BULK_SIZE, plan.bulk_messages),
    )
    .await?;
    progress("receive throughput, 16 KiB messages, vs direct client and relay floor");
    let [recv_modem, recv_direct, recv_floor] = alternate(
        plan.bulk_runs,
        [modem, Via::Direct, Via::Relay(relay.addr)],
        |via| bench::recv_throughput(via, server.ws, BULK_SIZE, plan.bulk_messages),
    )
    .await?;
    drop(relay);
    let send = Pair {
        modem: send_modem,
        direct: send_direct,
    };
    let recv = Pair {
        modem: recv_modem,
        direct: recv_direct,
    };

    progress("throughput by message size");
    let mut sweep_send = Vec::new();
    let mut sweep_recv = Vec::new();
    for size in SWEEP_SIZES {
        let count =
            (plan.sweep_bytes / size).clamp(plan.sweep_min_messages, plan.sweep_max_messages);
        let send = throughput_pair(
            1,
            |via| bench::send_throughput(via, server.ws, size, count),
            modem,
        )
        .await?;
        let recv = throughput_pair(
            1,
            |via| bench::recv_throughput(via, server.ws, size, count),
            modem,
        )
        .await?;
        sweep_send.push((size, send));
        sweep_recv.push((size, recv));
    }
    drop(wsat);

    progress("memory: idle modem");
    let rss_idle = {
        let wsat = Wsat::start(wsat_bin)?;
        let _port = at::AtPort::connect_quiet(wsat.addr).await?;
        settle().await;
        wsat.memory()?
    };
    progress("memory: one modem with 3 open links");
    let rss_3links = {
        let wsat = Wsat::start(wsat_bin)?;
        let _port = bench::open_three_links(wsat.addr, server.ws).await?;
        settle().await;
        wsat.memory()?
    };
    progress(&format!(
        "memory: {} modems with one open link each",
        plan.modems
    ));
    let rss_modems = many_modems(wsat_bin, server.ws, plan.modems).await?;
    progress(&format!(
        "memory: {} modems with one open link each",
        plan.many_modems
    ));
    let rss_many = match fd_shortfall(fd_limit, plan.many_modems) {
        Some(why) => Err(why),
        None => many_modems(wsat_bin, server.ws, plan.many_modems)
            .await
            .map_err(|error| format!("{error:#}")),
    };
    if let Err(why) = &rss_many {
        progress(&format!(
            "memory: no figure for {} modems: {why}",
            plan.many_modems
        ));
    }

    Ok(Report {
        wsat: wsat_bin.to_path_buf(),
        at_rt,
        tcp_rt,
        modem_echo,
        direct_echo,
        send,
        recv,
        send_floor,
        recv_floor,
        sweep_send,
        sweep_recv,
        rss_idle,
        rss_3links,
        rss_modems,
        modems: plan.modems,
        rss_many,
        many_modems: plan.many_modems,
    })
}

/// A new modem process with `modems` hosts, each with one open link; its
/// memory once they are all up.
async fn many_modems(
    wsat_bin: &Path,
    ws: SocketAddr,
    modems: usize,
) -> anyhow::Result<procs::Memory> {
    let wsat = Wsat::start(wsat_bin)?;
    let mut ports = Vec::with_capacity(modems);
    for opened in 0..modems {
        let port = bench::open_one_link(wsat.addr, ws)
            .await
            .with_context(|| format!("opening modem {} of {modems}", opened + 1))?;
        ports.push(port);
    }
    settle().await;
    wsat.memory()
}

/// Why this process cannot hold `modems` hosts' connections open, if it
/// cannot: each takes one descriptor here, and two in the modem and one in
/// the server, which have the same limit (they inherit it, and the modem
/// raises its own to the same hard limit).
fn fd_shortfall(limit: Option<u64>, modems: usize) -> Option<String> {
    // The listeners, the runtime's own, stdio, the pipes to the children.
    const SPARE: u64 = 64;
    let needed = 2 * modems as u64 + SPARE;
    match limit {
        None => Some("RLIMIT_NOFILE could not be read".to_string()),
        Some(limit) if limit < needed => Some(format!(
            "RLIMIT_NOFILE is {limit} (hard limit), the modem process needs about {needed}"
        )),
        Some(_) => None,
    }
}

/// Lets the modem finish what it was doing before its memory is read.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Runs the modem path and the direct client alternately, `runs` times
/// each; the median MB/s of each.
async fn throughput_pair<F, Fut>(runs: usize, measure: F, modem: Via) -> anyhow::Result<Pair>
where
    F: FnMut(Via) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let [modem, direct] = alternate(runs, [modem, Via::Direct], measure).await?;
    Ok(Pair { modem, direct })
}

/// Runs `measure` on each of `paths` in turn, `runs` rounds; the median MB/s
/// of each path, in the same order.
async fn alternate<const N: usize, F, Fut>(
    runs: usize,
    paths: [Via; N],
    mut measure: F,
) -> anyhow::Result<[f64; N]>
where
    F: FnMut(Via) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let mut results: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(runs));
    for _ in 0..runs {
        for (path, results) in paths.iter().zip(&mut results) {
            results.push(measure(*path).await?);
        }
    }
    Ok(results.map(|values| median(&values)))
}

impl Report {
    fn print(&self, quick: bool, pinned: Option<usize>, took: Duration) {
        let mode = if quick { "quick" } else { "full" };
        let placement = match pinned {
            Some(cpu) => format!("all processes pinned to CPU {cpu}"),
            None => "processes unpinned".to_string(),
        };
        println!();
        println!(
            "wsat-bench ({mode} run, {placement}, {:.0} s), modem {}",
            took.as_secs_f64(),
            self.wsat.display()
        );
        println!();
        println!(
            "{:<36} {:>12} {:>12} {:>8}  target",
            "measurement", "wsat", "peer", "ratio"
        );
        let us = |l: &Latencies, p: f64| format!("{:.1} µs", l.percentile_us(p));
        let mbps = |v: f64| format!("{v:.1} MB/s");
        let row = |name: &str, ours: String, peer: String, ratio: f64, target: &str| {
            println!("{name:<36} {ours:>12} {peer:>12} {ratio:>7.2}×  {target}");
        };
        let lat_ratio =
            |a: &Latencies, b: &Latencies, p: f64| a.percentile_us(p) / b.percentile_us(p);
        let verdict =
            |ok: bool, target: &str| format!("{target} {}", if ok { "met" } else { "MISSED" });

        let at_ratio = lat_ratio(&self.at_rt, &self.tcp_rt, 50.0);
        row(
            "AT round trip p50 (vs TCP echo)",
            us(&self.at_rt, 50.0),
            us(&self.tcp_rt, 50.0),
            at_ratio,
            &verdict(at_ratio <= 1.1, "≤ 1.1×"),
        );
        row(
            "AT round trip p99 (vs TCP echo)",
            us(&self.at_rt, 99.0),
            us(&self.tcp_rt, 99.0),
            lat_ratio(&self.at_rt, &self.tcp_rt, 99.0),
            "",
        );
        let echo50 = lat_ratio(&self.modem_echo, &self.direct_echo, 50.0);
        row(
            "echo 64 B p50 (vs direct client)",
            us(&self.modem_echo, 50.0),
            us(&self.direct_echo, 50.0),
            echo50,
            &verdict(echo50 <= 2.2, "≤ 2.2× (floor 2.0×)"),
        );
        row(
            "echo 64 B p99 (vs direct client)",
            us(&self.modem_echo, 99.0),
            us(&self.direct_echo, 99.0),
            lat_ratio(&self.modem_echo, &self.direct_echo, 99.0),
            "",
        );
        row(
            "send 16 KiB msgs (vs direct client)",
            mbps(self.send.modem),
            mbps(self.send.direct),
            self.send.ratio(),
            "",
        );
        let send_floor = self.send.modem / self.send_floor;
        row(
            "send 16 KiB (vs stop-and-wait floor)",
            mbps(self.send.modem),
            mbps(self.send_floor),
            send_floor,
            &verdict(send_floor >= 0.8, "≥ 0.8×"),
        );
        row(
            "receive 16 KiB msgs (vs direct)",
            mbps(self.recv.modem),
            mbps(self.recv.direct),
            self.recv.ratio(),
            "",
        );
        let recv_floor = self.recv.modem / self.recv_floor;
        row(
            "receive 16 KiB (vs relay floor)",
            mbps(self.recv.modem),
            mbps(self.recv_floor),
            recv_floor,
            &verdict(recv_floor >= 0.8, "≥ 0.8×"),
        );
        for (size, pair) in &self.sweep_send {
            row(
                &format!("  send {} msgs", plot::size_label(*size)),
                mbps(pair.modem),
                mbps(pair.direct),
                pair.ratio(),
                "",
            );
        }
        for (size, pair) in &self.sweep_recv {
            row(
                &format!("  receive {} msgs", plot::size_label(*size)),
                mbps(pair.modem),
                mbps(pair.direct),
                pair.ratio(),
                "",
            );
        }
        println!();
        println!(
            "{:<36} {:>12} {:>12} {:>12} {:>12}  target (peak)",
            "modem process memory", "peak (HWM)", "now (RSS)", "of it anon", "of it file"
        );
        let kib = |v: u64| format!("{v} KiB");
        let mem = |name: &str, m: &procs::Memory, target_mib: Option<u64>| {
            let target = target_mib
                .map(|mib| verdict(m.peak_kib <= mib * 1024, &format!("≤ {mib} MiB")))
                .unwrap_or_default();
            println!(
                "{name:<36} {:>12} {:>12} {:>12} {:>12}  {target}",
                kib(m.peak_kib),
                kib(m.current_kib),
                kib(m.anon_kib),
                kib(m.file_kib)
            )
        };
        mem("idle (one host connected)", &self.rss_idle, Some(5));
        mem("one modem, 3 open links", &self.rss_3links, None);
        mem(
            &format!("{} modems × 1 link", self.modems),
            &self.rss_modems,
            (self.modems == 1000).then_some(32),
        );
        let many = format!("{} modems × 1 link", self.many_modems);
        match &self.rss_many {
            Ok(memory) => mem(&many, memory, None),
            Err(why) => println!("{many:<36} not measured: {why}"),
        }
        println!();

        let metric =
            |name: &str, value: f64, unit: &str| println!("metric {name} {value:.3} {unit}");
        metric("at_roundtrip_p50_us", self.at_rt.percentile_us(50.0), "us");
        metric("at_roundtrip_p99_us", self.at_rt.percentile_us(99.0), "us");
        metric("tcp_echo_p50_us", self.tcp_rt.percentile_us(50.0), "us");
        metric("tcp_echo_p99_us", self.tcp_rt.percentile_us(99.0), "us");
        metric("at_roundtrip_ratio", at_ratio, "x");
        metric(
            "at_roundtrip_p99_ratio",
            lat_ratio(&self.at_rt, &self.tcp_rt, 99.0),
            "x",
        );
        metric(
            "echo_latency_p50_us",
            self.modem_echo.percentile_us(50.0),
            "us",
        );
        metric(
            "echo_latency_p99_us",
            self.modem_echo.percentile_us(99.0),
            "us",
        );
        metric(
            "direct_echo_latency_p50_us",
            self.direct_echo.percentile_us(50.0),
            "us",
        );
        metric(
            "direct_echo_latency_p99_us",
            self.direct_echo.percentile_us(99.0),
            "us",
        );
        metric("echo_latency_p50_ratio", echo50, "x");
        metric(
            "echo_latency_p99_ratio",
            lat_ratio(&self.modem_echo, &self.direct_echo, 99.0),
            "x",
        );
        metric("send_throughput_mbps", self.send.modem, "MB/s");
        metric("direct_send_throughput_mbps", self.send.direct, "MB/s");
        metric("send_throughput_ratio", self.send.ratio(), "x");
        metric(
            "stopwait_floor_send_throughput_mbps",
            self.send_floor,
            "MB/s",
        );
        metric("send_vs_stopwait_floor", send_floor, "x");
        metric("recv_throughput_mbps", self.recv.modem, "MB/s");
        metric("direct_recv_throughput_mbps", self.recv.direct, "MB/s");
        metric("recv_throughput_ratio", self.recv.ratio(), "x");
        metric("relay_floor_recv_throughput_mbps", self.recv_floor, "MB/s");
        metric("recv_vs_relay_floor", recv_floor, "x");
        for (dir, sweep) in [("send", &self.sweep_send), ("recv", &self.sweep_recv)] {
            for (size, pair) in sweep {
                metric(
                    &format!("{dir}_{size}b_throughput_mbps"),
                    pair.modem,
                    "MB/s",
                );
                metric(
                    &format!("direct_{dir}_{size}b_throughput_mbps"),
                    pair.direct,
                    "MB/s",
                );
            }
        }
        metric("rss_idle_kib", self.rss_idle.peak_kib as f64, "KiB");
        metric("rss_idle_anon_kib", self.rss_idle.anon_kib as f64, "KiB");
        metric("rss_idle_file_kib", self.rss_idle.file_kib as f64, "KiB");
        metric("rss_3links_kib", self.rss_3links.peak_kib as f64, "KiB");
        metric(
            &format!("rss_{}_modems_kib", self.modems),
            self.rss_modems.peak_kib as f64,
            "KiB",
        );
        if let Ok(memory) = &self.rss_many {
            metric(
                &format!("rss_{}_modems_kib", self.many_modems),
                memory.peak_kib as f64,
                "KiB",
            );
        }
    }

    fn draw(&self, path: &Path) -> anyhow::Result<()> {
        let points = |sweep: &[(usize, Pair)], modem: bool| {
            sweep
                .iter()
                .map(|(size, pair)| (*size, if modem { pair.modem } else { pair.direct }))
                .collect()
        };
        let series = [
            plot::Series {
                label: "wsat, send (AT+WSSEND, wait for SEND OK)",
                color: RGBColor(200, 40, 40),
                triangles: false,
                points: points(&self.sweep_send, true),
            },
            plot::Series {
                label: "direct tokio-tungstenite client, send",
                color: RGBColor(30, 90, 200),
                triangles: false,
                points: points(&self.sweep_send, false),
            },
            plot::Series {
                label: "wsat, receive (+WS_DATA, AT+WSDATAFMT=0,1,36)",
                color: RGBColor(235, 130, 20),
                triangles: true,
                points: points(&self.sweep_recv, true),
            },
            plot::Series {
                label: "direct tokio-tungstenite client, receive",
                color: RGBColor(40, 150, 70),
                triangles: true,
                points: points(&self.sweep_recv, false),
            },
        ];
        plot::draw(
            path,
            "WebSocket throughput on loopback: wsat modem vs direct client",
            &series,
        )
    }
}
