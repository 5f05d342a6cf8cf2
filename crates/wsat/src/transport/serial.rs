//! `--serial DEV`: a real serial device as the AT port.
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};
use wsat_proto::UartConfig;

use super::{tty_stream, TtyReader, TtyWriter};

/// How long a settings change waits for earlier output to leave the device
/// (a device with flow control and nobody reading may never drain).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// An open serial device: the AT port, and a handle to change its settings.
pub(crate) struct Serial {
    pub reader: TtyReader,
    pub writer: TtyWriter,
    pub control: SerialControl,
}

/// Changes the line settings of an open device.
#[derive(Clone)]
pub(crate) struct SerialControl {
    port: Arc<Mutex<TTYPort>>,
}

impl Serial {
    /// Opens `path` (exclusively, like any serial program) at `config`.
    pub(crate) fn open(path: &str, config: UartConfig) -> io::Result<Serial> {
        let mut port = serialport::new(path, config.baudrate)
            .open_native()
            .map_err(io::Error::from)?;
        apply(&mut port, config)?;
        // The reading and writing halves get a descriptor of their own on the
        // same device (settings are the device's, shared by both); `port`
        // keeps its own for the settings. Exclusive access is lifted just
        // long enough to open it.
        port.set_exclusive(false).map_err(io::Error::from)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path);
        port.set_exclusive(true).map_err(io::Error::from)?;
        let (reader, writer) = tty_stream(OwnedFd::from(file?))?;
        Ok(Serial {
            reader,
            writer,
            control: SerialControl {
                port: Arc::new(Mutex::new(port)),
            },
        })
    }
}

impl SerialControl {
    /// Lets what was written go out at the old settings (bounded by
    /// [`DRAIN_LIMIT`]), then switches the device to `config`.
    pub(crate) async fn set(&self, config: UartConfig) -> io::Result<()> {
        let port = self.port.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut port = port.lock().unwrap_or_else(|e| e.into_inner());
            // `flush` is tcdrain: wait until the device has sent it all.
            let _ = port.flush();
            apply(&mut port, config)
        });
        match tokio::time::timeout(DRAIN_LIMIT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the device did not drain; settings unchanged",
            )),
        }
    }
}

fn apply(port: &mut TTYPort, config: UartConfig) -> io::Result<()> {
    port.set_baud_rate(config.baudrate)?;
    port.set_data_bits(match config.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    })?;
    port.set_parity(match config.parity {
        1 => Parity::Odd,
        2 => Parity::Even,
        _ => Parity::None,
    })?;
    // termios has no 1.5 stop bits; it means two, as on most UARTs.
    port.set_stop_bits(if config.stop_bits == 1 {
        StopBits::One
    } else {
        StopBits::Two
    })?;
    // termios switches RTS and CTS together.
    port.set_flow_control(if config.flow_control == 0 {
        FlowControl::None
    } else {
        FlowControl::Hardware
    })?;
    Ok(())
}
