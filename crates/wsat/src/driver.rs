//! One modem on one AT port: the loop that feeds the core and carries out
//! what it asks, following the contract written on [`wsat_proto::Modem`].
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use wsat_proto::{
    LinkId, Log, Modem, ModemOptions, NetAction, NetEvent, Platform, UartConfig, LINK_COUNT,
};

use crate::net::{Connection, LinkEvent, LinkEventKind, Target};
use crate::pki::PkiStore;
use crate::tls::TlsOptions;
use crate::trace::{ModemTrace, Tracer};
use crate::transport::pacing::PaceRate;
use crate::transport::serial::SerialControl;

/// Events queued from the links to the modem; link tasks wait when full.
/// When the core stops wanting link input ([`wsat_proto::HOST_OUTPUT_BOUND`]),
/// at most what is already on its way still arrives: this many reads and
/// one per link, each at most 16 KiB.
const EVENT_QUEUE: usize = 16;
/// How much one read of the AT port takes at most.
const HOST_READ_SIZE: usize = 16 * 1024;

/// What every modem of this process shares.
#[derive(Clone, Default)]
pub struct Settings {
    pub options: ModemOptions,
    /// `--trace`: every modem logs its AT bytes and link frames here.
    pub tracer: Option<Arc<Tracer>>,
    pub tls: TlsOptions,
    /// Where `AT+SYSMFG` keeps certificates; `None`: an empty store that
    /// refuses writes.
    pub store: Option<PkiStore>,
}

/// Applies `AT+UART_CUR`/`AT+UART_DEF` to the AT port: its pacing or the
/// serial device's settings.
pub trait UartControl: Send {
    /// Called once the bytes before the change have been written.
    fn apply(&mut self, config: UartConfig) -> BoxFuture<'_, io::Result<()>>;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl UartControl for Arc<PaceRate> {
    fn apply(&mut self, config: UartConfig) -> BoxFuture<'_, io::Result<()>> {
        self.set(config);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl UartControl for SerialControl {
    fn apply(&mut self, config: UartConfig) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(self.set(config))
    }
}

/// What one modem's AT port has besides its bytes.
#[derive(Default)]
pub struct Port {
    /// A name for the trace (`stdio`, `tcp <peer>`, `pty <path>`).
    pub name: String,
    /// The line settings at start (`--baud`); 115200 8N1 when `None`.
    pub uart: Option<UartConfig>,
    /// Where line settings changes go; without one they are only reported.
    pub control: Option<Box<dyn UartControl>>,
}

/// Randomness from the OS, time from the system clock, certificates on disk.
struct HostPlatform {
    store: Option<PkiStore>,
    /// OS randomness fetched a pool at a time: every frame needs a 4-byte
    /// mask, and one system call per frame shows in the echo latency.
    random: [u8; RANDOM_POOL],
    random_used: usize,
}

const RANDOM_POOL: usize = 256;

impl HostPlatform {
    fn new(store: Option<PkiStore>) -> HostPlatform {
        HostPlatform {
            store,
            random: [0; RANDOM_POOL],
            random_used: RANDOM_POOL,
        }
    }
}

impl Platform for HostPlatform {
    fn fill_random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(RANDOM_POOL) {
            if self.random_used + chunk.len() > RANDOM_POOL {
                // The OS source does not fail on Linux; a zero mask would
                // still be valid framing.
                let _ = getrandom::fill(&mut self.random);
                self.random_used = 0;
            }
            let next = self.random_used + chunk.len();
            chunk.copy_from_slice(&self.random[self.random_used..next]);
            // Each byte is handed out once.
            self.random_used = next;
        }
    }

    fn unix_time(&self) -> Option<i64> {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        i64::try_from(since.as_secs()).ok()
    }

    fn store_read(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.store.as_ref()?.store_read(namespace, key)
    }

    fn store_write(&mut self, namespace: &str, key: &str, data: &[u8]) -> bool {
        self.store
            .as_ref()
            .is_some_and(|store| store.store_write(namespace, key, data))
    }

    fn store_erase(&mut self, namespace: &str, key: Option<&str>) -> bool {
        self.store
            .as_ref()
            .is_some_and(|store| store.store_erase(namespace, key))
    }

    fn store_keys(&self, namespace: &str) -> Vec<String> {
        self.store
            .as_ref()
            .map(|store| store.store_keys(namespace))
            .unwrap_or_default()
    }
}

/// Runs a modem on the AT port `(reader, writer)`, with the port's line
/// settings and their control, until the host closes it (EOF on `reader`);
/// every link is dropped then.
pub async fn run_modem_on<R, W>(
    reader: R,
    writer: W,
    settings: Arc<Settings>,
    port: Port,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut options = settings.options.clone();
    if let Some(uart) = port.uart {
        options.uart = uart;
    }
    let trace = settings.tracer.as_ref().map(|t| t.modem(&port.name));
    options.log_frames = trace.is_some() || tracing::enabled!(tracing::Level::DEBUG);
    let modem = Modem::new(
        options,
        Box::new(HostPlatform::new(settings.store.clone())),
        0,
    );
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (paused, _) = watch::channel(false);
    let mut driver = Driver {
        start,
        modem,
        links: Default::default(),
        next_conn: 0,
        tls: settings.tls.clone(),
        events_tx,
        paused,
        control: port.control,
        trace,
    };
    let result = driver.run(reader, writer, events).await;
    for conn in driver.links.into_iter().flatten() {
        conn.abort();
    }
    result
}

struct Driver {
    start: Instant,
    modem: Modem,
    links: [Option<Connection>; LINK_COUNT],
    next_conn: u64,
    tls: TlsOptions,
    events_tx: mpsc::Sender<LinkEvent>,
    paused: watch::Sender<bool>,
    control: Option<Box<dyn UartControl>>,
    trace: Option<ModemTrace>,
}

impl Driver {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run<R, W>(
        &mut self,
        mut reader: R,
        mut writer: W,
        mut events: mpsc::Receiver<LinkEvent>,
    ) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut read_buf = vec![0u8; HOST_READ_SIZE];
        let mut host_open = true;
        loop {
            self.collect();
            // Everything before a line settings change is out: switch.
            if let Some(config) = self.modem.poll_uart_change() {
                self.uart_change(config).await;
                continue;
            }
            let pending = !self.modem.host_output().is_empty();
            if !host_open && !pending {
                return Ok(());
            }
            let deadline = self
                .modem
                .poll_timeout()
                .map(|ms| tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)));
            let can_read = host_open && self.modem.wants_host_input();
            tokio::select! {
                biased;
                result = writer.write(self.modem.host_output()), if pending => {
                    let n = result?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    if let Some(trace) = &self.trace {
                        trace.at_tx(&self.modem.host_output()[..n]);
                    }
                    let now = self.now();
                    self.modem.advance_host_output(n, now);
                    if self.modem.host_output().is_empty() {
                        // Buffered writers (stdout) must not sit on a prompt.
                        writer.flush().await?;
                    }
                }
                Some(event) = events.recv() => self.link_event(event),
                () = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now();
                    self.modem.handle_timeout(now);
                }
                result = reader.read(&mut read_buf), if can_read => {
                    match result {
                        Ok(0) | Err(_) => host_open = false,
                        Ok(n) => {
                            if let Some(trace) = &self.trace {
                                trace.at_rx(&read_buf[..n]);
                            }
                            let now = self.now();
                            self.modem.host_input(&read_buf[..n], now);
                        }
                    }
                }
            }
        }
    }

    async fn uart_change(&mut self, config: UartConfig) {
        let outcome = match &mut self.control {
            None => "reported only (no --baud, no device)".to_string(),
            Some(control) => match control.apply(config).await {
                Ok(()) => "applied".to_string(),
                Err(error) => {
                    tracing::warn!(%error, ?config, "line settings not applied");
                    format!("not applied: {error}")
                }
            },
        };
        if let Some(trace) = &self.trace {
            trace.uart(config, &outcome);
        }
    }

    fn link_event(&mut self, event: LinkEvent) {
        let LinkEvent { link, conn, kind } = event;
        let current = self.links[usize::from(link)].as_ref().map(|c| c.id);
        if current != Some(conn) {
            return;
        }
        if let Some(trace) = &mut self.trace {
            match &kind {
                LinkEventKind::Received(_) | LinkEventKind::Sent => {}
                LinkEventKind::Connected => trace.link_note(link, "connected"),
                LinkEventKind::Closed => trace.link_note(link, "closed by the network"),
                LinkEventKind::Failed(reason) => {
                    trace.link_note(link, &format!("connect failed: {reason}"))
                }
            }
        }
        let now = self.now();
        let event = match &kind {
            LinkEventKind::Connected => NetEvent::Connected,
            LinkEventKind::Received(bytes) => NetEvent::Received(bytes),
            LinkEventKind::Sent => NetEvent::Sent,
            LinkEventKind::Closed => NetEvent::Closed,
            LinkEventKind::Failed(reason) => NetEvent::Failed(reason.clone()),
        };
        self.modem.net_event(link, event, now);
    }

    /// Takes everything the modem has for the host and the network.
    fn collect(&mut self) {
        while let Some(action) = self.modem.poll_net_action() {
            self.net_action(action);
        }
        while let Some(entry) = self.modem.poll_log() {
            self.log(entry);
        }
        let pause = !self.modem.wants_net_input(0);
        self.paused.send_if_modified(|paused| {
            let changed = *paused != pause;
            *paused = pause;
            changed
        });
    }

    fn net_action(&mut self, action: NetAction) {
        match action {
            NetAction::Connect {
                link,
                host,
                port,
                tls,
            } => {
                if let Some(old) = self.slot(link).take() {
                    old.abort();
                }
                if let Some(trace) = &mut self.trace {
                    trace.connect(link, &host, port, tls.is_some());
                }
                self.next_conn += 1;
                tracing::debug!(link, %host, port, tls = tls.is_some(), "connect");
                let conn = Connection::spawn(
                    link,
                    self.next_conn,
                    Target {
                        host,
                        port,
                        tls,
                        tls_options: self.tls.clone(),
                    },
                    self.events_tx.clone(),
                    self.paused.subscribe(),
                );
                *self.slot(link) = Some(conn);
            }
            NetAction::Send { link, bytes } => {
                if let Some(conn) = self.slot(link) {
                    conn.send(bytes);
                }
            }
            NetAction::Close { link } => {
                if let Some(trace) = &self.trace {
                    trace.link_note(link, "close");
                }
                if let Some(conn) = self.slot(link).take() {
                    conn.close();
                }
            }
        }
    }

    /// What the core did and why: frames to the trace, failures to the log.
    fn log(&mut self, entry: Log) {
        match &entry {
            Log::Http {
                link,
                dir,
                first_line,
            } => {
                if let Some(trace) = &self.trace {
                    trace.http(*link, *dir, first_line);
                }
                tracing::debug!(link, ?dir, line = %String::from_utf8_lossy(first_line), "http");
            }
            Log::Frame {
                link,
                dir,
                header,
                preview,
            } => {
                if let Some(trace) = &self.trace {
                    trace.frame(*link, *dir, header, preview);
                }
                tracing::trace!(link, ?dir, ?header, "frame");
            }
            Log::HandshakeFailed { link, error } => {
                self.note(*link, &format!("handshake refused: {error}"))
            }
            Log::ProtocolError { link, error } => {
                self.note(*link, &format!("protocol error: {error}"))
            }
            Log::PongTimeout { link } => self.note(*link, "no pong within the pong timeout"),
            Log::ConnectTimeout { link } => self.note(*link, "connect timed out"),
            Log::SendTimeout { link } => self.note(*link, "send timed out"),
            Log::Dropped(n) => tracing::debug!(n, "log entries dropped"),
        }
    }

    /// A link event worth a line in the `-v` log and the trace.
    fn note(&self, link: LinkId, what: &str) {
        tracing::info!("link {link}: {what}");
        if let Some(trace) = &self.trace {
            trace.link_note(link, what);
        }
    }

    fn slot(&mut self, link: LinkId) -> &mut Option<Connection> {
        &mut self.links[usize::from(link)]
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_come_from_the_pool_without_repeats() {
        let mut platform = HostPlatform::new(None);
        let mut seen = Vec::new();
        for len in [4, 4, 16, 255, 256, 1000, 0, 4] {
            let mut buf = vec![0u8; len];
            platform.fill_random(&mut buf);
            seen.push(buf);
        }
        let all: Vec<u8> = seen.concat();
        assert_eq!(all.len(), 1539);
        // 1539 bytes of OS randomness: all zero, or a repeated 16-byte
        // window, would mean bytes were not filled or handed out twice.
        assert!(all.iter().any(|&b| b != 0));
        let windows: std::collections::HashSet<&[u8]> = all.windows(16).collect();
        assert_eq!(windows.len(), all.len() - 15);
    }
}
