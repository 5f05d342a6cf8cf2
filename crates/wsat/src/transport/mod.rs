//! AT ports besides stdio: TCP connections, a pseudo-terminal, a serial
//! device, and UART-like pacing for any of them.
//!
//! Terminals are driven through their file descriptor in non-blocking mode
//! and tokio's readiness (`AsyncFd`), so no thread blocks on them.
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use wsat_proto::UartConfig;

use crate::driver::{run_modem_on, Port, Settings};
use pacing::{PaceRate, PacedReader, PacedWriter};
use pty::Pty;
use serial::Serial;

pub(crate) mod pacing;
mod pty;
pub(crate) mod serial;
pub mod tcp;
mod tty;

use tty::{tty_stream, TtyReader, TtyWriter};

/// Runs a modem on `(reader, writer)`, paced like a UART at `baud` when
/// given (`AT+UART_CUR` then changes the pace). `late_host`: the host came
/// after the modem's boot and does not see it (`Some(true)`: it gets a
/// `ready` of its own), see [`wsat_proto::Modem::boot_unseen`].
pub async fn run_port<R, W>(
    reader: R,
    writer: W,
    settings: Arc<Settings>,
    name: String,
    baud: Option<u32>,
    late_host: Option<bool>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let port = Port {
        name,
        late_host,
        ..Port::default()
    };
    run_paced(reader, writer, settings, port, baud).await
}

/// [`run_port`] for a `port` made by the caller.
async fn run_paced<R, W>(
    reader: R,
    writer: W,
    settings: Arc<Settings>,
    port: Port,
    baud: Option<u32>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(baud) = baud else {
        return run_modem_on(reader, writer, settings, port).await;
    };
    let config = UartConfig::DEFAULT.with_baudrate(baud);
    let rate = PaceRate::new(config);
    let port = Port {
        uart: Some(config),
        control: Some(Box::new(rate.clone())),
        ..port
    };
    let reader = PacedReader::new(reader, rate.clone());
    let writer = PacedWriter::new(writer, rate);
    run_modem_on(reader, writer, settings, port).await
}

/// `--pty PATH`: one modem on a pseudo-terminal until the process is told
/// to stop; host programs may open and close the slave as often as they like.
/// With `ready_on_open`, every open of the slave by a host gets
/// `\r\nready\r\n` (for hosts that wait for it after opening the port).
pub async fn run_pty(
    link: &Path,
    settings: Arc<Settings>,
    baud: Option<u32>,
    ready_on_open: bool,
) -> io::Result<()> {
    let mut pty = Pty::open(link)?;
    let (reader, writer) = pty.take_port()?;
    eprintln!("pty {} at {}", pty.slave_path().display(), link.display());
    let port = Port {
        name: format!("pty {}", link.display()),
        opened: match ready_on_open {
            true => Some(pty.watch_opens()?),
            false => None,
        },
        ..Port::default()
    };
    // `pty` lives until here: its symlink goes when this returns or is dropped.
    run_paced(reader, writer, settings, port, baud).await
}

/// `--serial DEV`: one modem on a serial device, 8N1 at `baud`.
pub async fn run_serial(device: &str, settings: Arc<Settings>, baud: u32) -> io::Result<()> {
    let config = UartConfig::DEFAULT.with_baudrate(baud);
    let serial = Serial::open(device, config)?;
    eprintln!("serial {device} at {baud} baud");
    let port = Port {
        name: format!("serial {device}"),
        uart: Some(config),
        control: Some(Box::new(serial.control)),
        ..Port::default()
    };
    run_modem_on(serial.reader, serial.writer, settings, port).await
}

/// Connections a listener queues before they are accepted. The usual 128
/// drops connections when hundreds of hosts connect at once; the kernel
/// caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` whose queue takes a burst of connections.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
