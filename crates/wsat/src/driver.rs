//! One modem on one AT port: the loop that feeds the core and carries out
//! what it asks, following the contract written on [`wsat_proto::Modem`].
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use wsat_proto::{LinkId, Modem, ModemOptions, NetAction, NetEvent, Platform, LINK_COUNT};

use crate::net::{Connection, LinkEvent, LinkEventKind, Target};
use crate::pki::PkiStore;
use crate::tls::TlsOptions;

/// Host output (written or held in the core) past which the links' sockets
/// are no longer read, so TCP pushes back on the servers instead of memory
/// growing. With at most one read (16 KiB) in flight per link and a short
/// event queue, a modem's buffered receive data stays under about 1 MiB.
pub const HOST_OUTPUT_BOUND: usize = 256 * 1024;
/// Events queued from the links to the modem; link tasks wait when full.
const EVENT_QUEUE: usize = 16;
/// How much one read of the AT port takes at most.
const HOST_READ_SIZE: usize = 16 * 1024;

/// What every modem of this process shares.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub options: ModemOptions,
    pub tls: TlsOptions,
    /// Where `AT+SYSMFG` keeps certificates; `None`: an empty store that
    /// refuses writes.
    pub store: Option<PkiStore>,
}

/// Randomness from the OS, time from the system clock, certificates on disk.
struct HostPlatform {
    store: Option<PkiStore>,
}

impl Platform for HostPlatform {
    fn fill_random(&mut self, buf: &mut [u8]) {
        // The OS source does not fail on Linux; a zero mask would still be valid framing.
        let _ = getrandom::fill(buf);
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

/// Runs a modem on the AT port `(reader, writer)` until the host closes it
/// (EOF on `reader`); every link is dropped then.
pub async fn run_modem<R, W>(reader: R, writer: W, settings: Arc<Settings>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let start = Instant::now();
    let modem = Modem::new(
        settings.options.clone(),
        Box::new(HostPlatform {
            store: settings.store.clone(),
        }),
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
        out: Vec::new(),
        written: 0,
        unconsumed: Vec::new(),
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
    /// Host output; `out[written..]` is still to be written.
    out: Vec<u8>,
    written: usize,
    /// AT port input the modem has not taken yet (it waits for the network
    /// to take an `AT+WSSEND`); the port is not read until it is.
    unconsumed: Vec<u8>,
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
            let pending = self.out.len() - self.written;
            if !host_open && pending == 0 {
                return Ok(());
            }
            let deadline = self
                .modem
                .poll_timeout()
                .map(|ms| tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)));
            let can_read = host_open && self.unconsumed.is_empty();
            tokio::select! {
                biased;
                result = writer.write(&self.out[self.written..]), if pending > 0 => {
                    let n = result?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    self.written += n;
                    if self.written == self.out.len() {
                        self.out.clear();
                        self.written = 0;
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
                        Ok(n) => self.host_input(&read_buf[..n]),
                    }
                }
            }
        }
    }

    fn host_input(&mut self, bytes: &[u8]) {
        let now = self.now();
        let used = self.modem.host_input(bytes, now);
        self.unconsumed.extend_from_slice(&bytes[used..]);
    }

    fn link_event(&mut self, event: LinkEvent) {
        let LinkEvent { link, conn, kind } = event;
        let current = self.links[usize::from(link)].as_ref().map(|c| c.id);
        if current != Some(conn) {
            return;
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
        // The network moved: input the modem was waiting to take may go now.
        if !self.unconsumed.is_empty() {
            let input = std::mem::take(&mut self.unconsumed);
            self.host_input(&input);
        }
    }

    /// Takes everything the modem has for the host and the network.
    fn collect(&mut self) {
        self.modem.poll_host_output(&mut self.out);
        while let Some(action) = self.modem.poll_net_action() {
            self.net_action(action);
        }
        let backlog = self.out.len() - self.written + self.modem.held_output_len();
        let pause = backlog > HOST_OUTPUT_BOUND;
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
                if let Some(conn) = self.slot(link).take() {
                    conn.close();
                }
            }
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
