//! `wsat`: a WebSocket AT modem on stdio or TCP, and an echo server to try it.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use wsat::driver::{self, Settings};
use wsat::echo_server;
use wsat::pki::PkiStore;
use wsat::tls::TlsOptions;
use wsat_proto::ModemOptions;

/// A WebSocket "AT modem": speaks ESP-AT's WebSocket AT commands on the AT
/// port and RFC 6455 (ws://) on the network.
///
/// With no options the AT port is stdin/stdout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Serve the AT port on a TCP listener instead of stdio; every accepted
    /// connection is an independent modem (e.g. 127.0.0.1:2323; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    tcp: Option<SocketAddr>,

    /// Where `AT+SYSMFG` keeps TLS certificates and keys, one PEM file per
    /// entry [default: $XDG_DATA_HOME/wsat/pki or ~/.local/share/wsat/pki].
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,

    /// With AT+WSCFG auth modes 2 and 3, also check that the server's
    /// certificate names the host (ESP-AT checks only the chain).
    #[arg(long)]
    tls_verify_hostname: bool,

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(cli))
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::EchoServer { addr }) = cli.command {
        let listener = echo_server::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        return Ok(echo_server::serve(listener).await?);
    }
    let settings = Arc::new(Settings {
        options: modem_options(),
        tls: TlsOptions {
            verify_hostname: cli.tls_verify_hostname,
        },
        store: open_store(cli.pki_dir)?,
    });
    match cli.tcp {
        Some(addr) => serve_tcp(addr, settings).await,
        None => {
            driver::run_modem(tokio::io::stdin(), tokio::io::stdout(), settings).await?;
            Ok(())
        }
    }
}

/// Every accepted connection is a modem of its own.
async fn serve_tcp(addr: SocketAddr, settings: Arc<Settings>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let settings = settings.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (reader, writer) = stream.into_split();
            tracing::info!(%peer, "modem started");
            if let Err(error) = driver::run_modem(reader, writer, settings).await {
                tracing::info!(%peer, %error, "modem ended");
            }
        });
    }
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

fn modem_options() -> ModemOptions {
    ModemOptions {
        commit: env!("WSAT_COMMIT").to_string(),
        build_time: env!("WSAT_BUILD_TIME").to_string(),
    }
}
