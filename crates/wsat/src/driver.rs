//! One modem on one AT port: the loop that feeds the core and carries out
//! what it asks, following the contract written on [`wsat_proto::Modem`].
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wsat_proto::{
    Link, Log, Modem, ModemOptions, NetAction, NetAnswer, NetEvent, Platform, Transport, UartConfig,
};

use crate::control::{self, ControlFault, FailHow, LinkInfo, ModemInfo, Registration, Request};
use crate::net::{self, Conn, Connected, Datagrams, Opened, Polled, Stream, Target};
use crate::pcap::{ModemPcap, Pcap};
use crate::pki::PkiStore;
use crate::scenario::{self, Scenario, Verdict};
use crate::tls::TlsOptions;
use crate::trace::{ModemTrace, Tracer};
use crate::transport::pacing::PaceRate;
use crate::transport::serial::SerialControl;

/// What every modem of this process shares.
#[derive(Clone, Default)]
pub struct Settings {
    pub options: ModemOptions,
    /// `--trace`: every modem logs its AT bytes and link frames here.
    pub tracer: Option<Arc<Tracer>>,
    /// `--pcap`: every modem's AT port and link plaintext go here.
    pub pcap: Option<Arc<Pcap>>,
    pub tls: TlsOptions,
    /// Where `AT+SYSMFG` keeps certificates; `None`: an empty store that
    /// refuses writes.
    pub store: Option<PkiStore>,
    /// The address `AT+CIPSERVER` listens on (the port is the host's).
    pub server_ip: Option<IpAddr>,
    /// `--control`: every modem registers here and takes its requests.
    pub registry: Option<Arc<control::Registry>>,
    /// `--scenario`: every modem runs it; verdicts go to `verdicts`.
    pub scenario: Option<Arc<Scenario>>,
    pub verdicts: Option<mpsc::UnboundedSender<(String, Verdict)>>,
}

/// Applies `AT+UART_CUR`/`AT+UART_DEF` to the AT port: its pacing or the
/// serial device's settings.
pub(crate) trait UartControl: Send {
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
pub(crate) struct Port {
    /// A name for the trace (`stdio`, `tcp <peer>`, `pty <path>`).
    pub(crate) name: String,
    /// The line settings at start (`--baud`); 115200 8N1 when `None`.
    pub(crate) uart: Option<UartConfig>,
    /// Where line settings changes go; without one they are only reported.
    pub(crate) control: Option<Box<dyn UartControl>>,
    /// A message for every time a host opens the port (`--ready-on-open`).
    pub(crate) opened: Option<mpsc::UnboundedReceiver<()>>,
    /// The host came after the modem's boot (a `--tcp` client): it does not
    /// see the boot's output; `Some(true)`: it gets a `ready` of its own
    /// (`--ready-on-open`).
    pub(crate) late_host: Option<bool>,
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

/// The modem of a new port; [`Port::late_host`] says what its host sees of
/// the boot. Not async: a `Modem` changed in the async fn that owns the
/// driver would keep a second copy's room in its future (4 KiB a modem).
fn new_modem(options: ModemOptions, settings: &Settings, late_host: Option<bool>) -> Modem {
    let platform = Box::new(HostPlatform::new(settings.store.clone()));
    let mut modem = Modem::new(options, platform, 0);
    if let Some(greet) = late_host {
        modem.boot_unseen();
        if greet {
            modem.host_opened(0);
        }
    }
    modem
}

/// Runs a modem on the AT port `(reader, writer)`, with the port's line
/// settings and their control, until the host closes it (EOF on `reader`);
/// every link is dropped then.
pub(crate) async fn run_modem_on<R, W>(
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
    // One number per modem, the same in the trace and the capture.
    static MODEMS: AtomicU64 = AtomicU64::new(1);
    let n = MODEMS.fetch_add(1, Ordering::Relaxed);
    let trace = settings.tracer.as_ref().map(|t| t.modem(n, &port.name));
    let pcap = settings.pcap.as_ref().map(|p| p.modem(n));
    options.log_frames = trace.is_some() || tracing::enabled!(tracing::Level::DEBUG);
    let modem = new_modem(options, &settings, port.late_host);
    let (connected_tx, connected) = mpsc::unbounded_channel();
    let (registration, requests) = match &settings.registry {
        Some(registry) => {
            let (registration, requests) = registry.register();
            (Some(registration), Some(requests))
        }
        None => (None, None),
    };
    let mut driver = Driver {
        start,
        modem,
        links: Default::default(),
        listener: None,
        server_ip: settings
            .server_ip
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        lookup: None,
        port_name: port.name.clone(),
        firmware: settings.options.firmware.name(),
        registration,
        requests,
        counters: [(0, 0); Link::COUNT],
        stalled: [false; Link::COUNT],
        fail_connects: Vec::new(),
        chunking: None,
        write_pause: None,
        scenario: settings.scenario.clone().map(|s| scenario::Run::new(s, 0)),
        scenario_timer: None,
        scenario_at: None,
        verdicts: settings.verdicts.clone(),
        attempts: 0,
        tls: settings.tls.clone(),
        connected_tx,
        connected,
        control: port.control,
        opened: port.opened,
        trace,
        pcap,
        host_open: true,
        unflushed: false,
        taken_early: false,
        timer: Box::pin(tokio::time::sleep_until(far_future())),
        timer_at: None,
    };
    let result = driver.run(reader, writer).await;
    // The host left: a verdict still open is known now.
    let now = driver.now();
    driver.verdict(now, true);
    for link in driver.links {
        if let LinkIo::Connecting { task, .. } = link {
            task.abort();
        }
    }
    if let Some(task) = &driver.lookup {
        task.abort();
    }
    result
}

/// Bytes one read of the AT port or a link's socket takes at most: a
/// 16 KiB `AT+WSSEND` with its command line, or a 16 KiB frame with its
/// header, in one read.
const READ_SIZE: usize = 64 * 1024;

thread_local! {
    /// The read buffer of every modem on this worker thread: a read is
    /// handed to the core before the poll returns, so one is enough, and a
    /// thousand idle modems do not each keep one.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}
/// Steps one poll of the driver takes before it lets other modems run.
const STEPS_PER_POLL: usize = 64;
/// `AT+PING` gives up after this long (`+PING:TIMEOUT`).
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// A link's connection, owned by the driver.
#[derive(Default)]
enum LinkIo {
    #[default]
    None,
    Connecting {
        attempt: u64,
        task: AbortHandle,
    },
    Open(Stream),
    Udp(Datagrams),
}

/// What a lookup task found out, for [`Modem::net_answer`].
enum Answer {
    Resolved(Vec<IpAddr>),
    Pinged(Option<u32>),
}

/// One modem's task: the core, the AT port and the links' sockets, polled
/// together (no task or channel per link on the data path).
struct Driver {
    start: Instant,
    modem: Modem,
    links: [LinkIo; Link::COUNT],
    /// `AT+CIPSERVER`'s listening socket.
    listener: Option<TcpListener>,
    server_ip: IpAddr,
    /// The running `AT+CIPDOMAIN`/`AT+PING` task: one command at a time,
    /// so a new one replaces a stale one.
    lookup: Option<tokio::task::JoinHandle<Answer>>,
    port_name: String,
    firmware: &'static str,
    /// In the `--control` registry (removed when the modem ends).
    registration: Option<Registration>,
    requests: Option<mpsc::UnboundedReceiver<Request>>,
    /// Bytes (sent, received) per link, for the control API.
    counters: [(u64, u64); Link::COUNT],
    /// Links a stall fault stopped.
    stalled: [bool; Link::COUNT],
    /// Connects to fail (`None`: of any link), oldest first.
    fail_connects: Vec<(Option<Link>, FailHow)>,
    /// Host output in pieces of this size, this far apart.
    chunking: Option<(usize, Duration)>,
    write_pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// `--scenario`: this modem's run of it, and its timer.
    scenario: Option<scenario::Run>,
    /// Made with the scenario's first deadline (most modems have none).
    scenario_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    scenario_at: Option<u64>,
    verdicts: Option<mpsc::UnboundedSender<(String, Verdict)>>,
    attempts: u64,
    tls: TlsOptions,
    connected_tx: mpsc::UnboundedSender<Connected>,
    connected: mpsc::UnboundedReceiver<Connected>,
    control: Option<Box<dyn UartControl>>,
    opened: Option<mpsc::UnboundedReceiver<()>>,
    trace: Option<ModemTrace>,
    pcap: Option<ModemPcap>,
    /// The host has not closed the port.
    host_open: bool,
    /// Host output written but not flushed (stdout buffers).
    unflushed: bool,
    /// A link took a send at once in this step (`net::EARLY_SEND`).
    taken_early: bool,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_at: Option<u64>,
}

/// Why a poll of the driver returned.
enum Step {
    /// A line settings change to apply (it may take a while: async).
    Uart(UartConfig),
    /// The host closed the port and everything is written, or writing failed.
    Done(io::Result<()>),
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

impl Driver {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run<R, W>(&mut self, mut reader: R, mut writer: W) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            let step = std::future::poll_fn(|cx| self.poll(cx, &mut reader, &mut writer)).await;
            match step {
                Step::Uart(config) => self.uart_change(config).await,
                Step::Done(result) => return result,
            }
        }
    }

    /// The loop of the core's contract: carry out what it asks, then feed
    /// it whatever is ready, until nothing is.
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, reader: &mut R, writer: &mut W) -> Poll<Step>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        for _ in 0..STEPS_PER_POLL {
            self.collect();
            if let Some(config) = self.modem.poll_uart_change() {
                return Poll::Ready(Step::Uart(config));
            }
            let mut moved = self.poll_host_read(cx, reader);
            moved |= self.poll_opened(cx);
            moved |= self.poll_connects(cx);
            moved |= self.poll_answers(cx);
            moved |= self.poll_requests(cx);
            moved |= self.poll_scenario(cx);
            moved |= self.poll_accept(cx);
            self.collect();
            // A large send taken at once (net::EARLY_SEND): its SEND OK goes
            // out before the frame.
            if std::mem::take(&mut self.taken_early) {
                match self.write_host(cx, writer) {
                    Ok(wrote) => moved |= wrote,
                    Err(error) => return Poll::Ready(Step::Done(Err(error))),
                }
            }
            for link in Link::all() {
                moved |= self.poll_link(cx, link);
            }
            moved |= self.poll_timer(cx);
            self.collect();
            // Host output last: a prompt and the SEND OK of a send the
            // socket took at once go out in one write (one wake-up of the
            // host instead of two).
            match self.write_host(cx, writer) {
                Ok(wrote) => moved |= wrote,
                Err(error) => return Poll::Ready(Step::Done(Err(error))),
            }
            if !self.host_open && self.modem.host_output().is_empty() && !self.unflushed {
                return Poll::Ready(Step::Done(Ok(())));
            }
            if !moved {
                return Poll::Pending;
            }
        }
        // Busy: let the other modems of this runtime have a turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes host output if the port takes it now; true when something
    /// was written.
    fn write_host<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut W,
    ) -> io::Result<bool> {
        match self.poll_host_write(cx, writer) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(false),
        }
    }

    /// Writes host output; `Ok(true)` when something was written.
    fn poll_host_write<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut W,
    ) -> Poll<io::Result<bool>> {
        if let Some(pause) = self.write_pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.write_pause = None;
        }
        let mut out = self.modem.host_output();
        if let Some((size, _)) = self.chunking {
            out = &out[..out.len().min(size)];
        }
        if out.is_empty() {
            if self.unflushed {
                // Buffered writers (stdout) must not sit on a prompt.
                ready!(Pin::new(writer).poll_flush(cx))?;
                self.unflushed = false;
            }
            return Poll::Ready(Ok(false));
        }
        let n = ready!(Pin::new(writer).poll_write(cx, out))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        if let Some(trace) = &self.trace {
            trace.at_tx(&out[..n]);
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.at_tx(&out[..n]);
        }
        self.unflushed = true;
        let now = self.now();
        self.modem.advance_host_output(n, now);
        if let Some((_, delay)) = self.chunking {
            self.write_pause = Some(Box::pin(tokio::time::sleep(delay)));
        }
        Poll::Ready(Ok(true))
    }

    fn poll_host_read<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
    ) -> bool {
        if !self.host_open || !self.modem.wants_host_input() {
            return false;
        }
        READ_BUF.with_borrow_mut(|read_buf| {
            let mut buf = ReadBuf::new(read_buf);
            match Pin::new(reader).poll_read(cx, &mut buf) {
                Poll::Pending => false,
                Poll::Ready(Err(_)) => {
                    self.host_open = false;
                    true
                }
                Poll::Ready(Ok(())) => {
                    let bytes = buf.filled();
                    if bytes.is_empty() {
                        self.host_open = false;
                        return true;
                    }
                    if let Some(trace) = &self.trace {
                        trace.at_rx(bytes);
                    }
                    if let Some(run) = &mut self.scenario {
                        run.host_bytes(bytes);
                    }
                    if let Some(pcap) = &mut self.pcap {
                        pcap.at_rx(bytes);
                    }
                    let now = self.now();
                    self.modem.host_input(bytes, now);
                    true
                }
            }
        })
    }

    /// A host opened the port: it gets `ready`.
    fn poll_opened(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(opened) = self.opened.as_mut() else {
            return false;
        };
        match opened.poll_recv(cx) {
            Poll::Ready(Some(())) => {
                let now = self.now();
                self.modem.host_opened(now);
                true
            }
            // The watch ended; opens are no longer announced.
            Poll::Ready(None) => {
                self.opened = None;
                true
            }
            Poll::Pending => false,
        }
    }

    /// Connect attempts that finished.
    fn poll_connects(&mut self, cx: &mut Context<'_>) -> bool {
        let Poll::Ready(Some(done)) = self.connected.poll_recv(cx) else {
            return false;
        };
        let Connected {
            link,
            attempt,
            result,
        } = done;
        let now = self.now();
        let slot = &mut self.links[link.index()];
        if !matches!(slot, LinkIo::Connecting { attempt: a, .. } if *a == attempt) {
            // A replaced or closed attempt.
            return true;
        }
        match result.map(|opened| *opened) {
            Ok(Opened {
                conn,
                local,
                remote,
            }) => {
                if let Some(pcap) = &mut self.pcap {
                    pcap.connected(link, local, remote, matches!(conn, Conn::Udp(_)));
                }
                *slot = match conn {
                    Conn::Stream(io) => LinkIo::Open(Stream::new(io)),
                    Conn::Udp(socket) => LinkIo::Udp(Datagrams::new(socket)),
                };
                if let Some(trace) = &self.trace {
                    trace.link_note(link, &format!("connected {local} -> {remote}"));
                }
                self.modem
                    .net_event(link, NetEvent::Connected { local, remote }, now);
            }
            Err(error) => {
                *slot = LinkIo::None;
                self.note(link, &format!("connect failed: {error}"));
                self.modem
                    .net_event(link, NetEvent::Failed(error.to_string()), now);
            }
        }
        true
    }

    /// Answers of lookup and ping tasks.
    fn poll_answers(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(task) = self.lookup.as_mut() else {
            return false;
        };
        let Poll::Ready(result) = Pin::new(task).poll(cx) else {
            return false;
        };
        self.lookup = None;
        // A task that panicked has no answer: the command times out.
        let Ok(answer) = result else {
            return true;
        };
        let now = self.now();
        match answer {
            Answer::Resolved(ips) => self.modem.net_answer(NetAnswer::Resolved(&ips), now),
            Answer::Pinged(rtt) => self.modem.net_answer(NetAnswer::Pinged(rtt), now),
        }
        true
    }

    /// A connection to `AT+CIPSERVER`'s listener becomes a link, or is
    /// dropped when the core has no room for it.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        let (tcp, remote) = match listener.poll_accept(cx) {
            Poll::Pending => return false,
            Poll::Ready(Ok(accepted)) => accepted,
            Poll::Ready(Err(error)) => {
                // EMFILE and friends: the listener stays, the next poll retries.
                tracing::warn!(%error, "accept failed");
                return false;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(local) = tcp.local_addr() else {
            return true;
        };
        let now = self.now();
        match self.modem.accept(local, remote, now) {
            Some(link) => {
                self.drop_link(link);
                if let Some(pcap) = &mut self.pcap {
                    pcap.accepted(link, local, remote);
                }
                self.links[link.index()] = LinkIo::Open(Stream::new(Box::new(tcp)));
                self.note(link, &format!("accepted {remote}"));
            }
            None => tracing::info!(%remote, "server connection refused: no free link"),
        }
        true
    }

    /// Writes the link's sends, and reads it while the core wants input.
    fn poll_link(&mut self, cx: &mut Context<'_>, link: Link) -> bool {
        if self.stalled[link.index()] {
            return false;
        }
        if let LinkIo::Udp(_) = &mut self.links[link.index()] {
            return self.poll_datagrams(cx, link);
        }
        let LinkIo::Open(stream) = &mut self.links[link.index()] else {
            return false;
        };
        let mut moved = false;
        match stream.poll_write(cx) {
            Polled::Sent(n) => {
                let now = self.now();
                for _ in 0..n {
                    self.modem.net_event(link, NetEvent::Sent, now);
                }
                moved = true;
            }
            Polled::Ended => {
                tracing::info!(%link, "write failed");
                self.link_ended(link);
                return true;
            }
            _ => {}
        }
        let room = self.modem.net_input_room(link);
        if room == 0 {
            return moved;
        }
        READ_BUF.with_borrow_mut(|buf| {
            let LinkIo::Open(stream) = &mut self.links[link.index()] else {
                return moved;
            };
            let buf = &mut buf[..room.min(READ_SIZE)];
            match stream.poll_read(cx, buf) {
                Polled::Received(n) => {
                    if let Some(pcap) = &mut self.pcap {
                        pcap.received(link, &buf[..n]);
                    }
                    let now = self.now();
                    self.counters[link.index()].1 += n as u64;
                    self.modem
                        .net_event(link, NetEvent::Received(&buf[..n]), now);
                    true
                }
                Polled::Ended => {
                    self.link_ended(link);
                    true
                }
                _ => moved,
            }
        })
    }

    /// A UDP link: sends its datagrams, reads one while the core wants input.
    fn poll_datagrams(&mut self, cx: &mut Context<'_>, link: Link) -> bool {
        let LinkIo::Udp(socket) = &mut self.links[link.index()] else {
            return false;
        };
        let sent = socket.poll_write(cx);
        let now = self.now();
        for _ in 0..sent {
            self.modem.net_event(link, NetEvent::Sent, now);
        }
        if self.modem.net_input_room(link) == 0 {
            return sent > 0;
        }
        READ_BUF.with_borrow_mut(|buf| {
            let LinkIo::Udp(socket) = &mut self.links[link.index()] else {
                return sent > 0;
            };
            match socket.poll_read(cx, buf) {
                Some((n, from)) => {
                    self.counters[link.index()].1 += n as u64;
                    if let Some(pcap) = &mut self.pcap {
                        pcap.datagram(link, from, &buf[..n]);
                    }
                    let event = NetEvent::Datagram {
                        from,
                        bytes: &buf[..n],
                    };
                    self.modem.net_event(link, event, now);
                    true
                }
                None => sent > 0,
            }
        })
    }

    fn link_ended(&mut self, link: Link) {
        if let Some(trace) = &self.trace {
            trace.link_note(link, "closed by the network");
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.peer_closed(link);
        }
        let now = self.now();
        self.modem.net_event(link, NetEvent::Closed, now);
    }

    /// Fires the core's deadline; re-arms the timer when it moved.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.modem.poll_timeout();
        if deadline != self.timer_at {
            self.timer_at = deadline;
            let at = match deadline {
                Some(ms) => tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)),
                None => far_future(),
            };
            self.timer.as_mut().reset(at);
        }
        if deadline.is_none() || self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = self.now();
        self.modem.handle_timeout(now);
        // The same deadline again (a clock that lags the timer): wait anew.
        self.timer_at = None;
        true
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

    /// Carries out what the core asked and logs what it said.
    fn collect(&mut self) {
        while let Some(action) = self.modem.poll_net_action() {
            self.net_action(action);
        }
        while let Some(entry) = self.modem.poll_log() {
            self.log(entry);
        }
    }

    fn net_action(&mut self, action: NetAction) {
        match action {
            NetAction::Connect {
                link,
                host,
                port,
                transport,
                keep_alive_s,
            } => {
                self.drop_link(link);
                self.counters[link.index()] = (0, 0);
                if self.fail_connect(link) {
                    return;
                }
                let kind = match &transport {
                    Transport::Tcp => "",
                    Transport::Tls(_) => " tls",
                    Transport::Udp { .. } => " udp",
                };
                if let Some(trace) = &self.trace {
                    trace.connect(link, &host, port, kind);
                }
                tracing::debug!(%link, %host, port, kind, "connect");
                self.attempts += 1;
                let target = Target {
                    host,
                    port,
                    transport,
                    keep_alive_s,
                    tls_options: self.tls.clone(),
                };
                let task = net::connect(link, self.attempts, target, self.connected_tx.clone());
                self.links[link.index()] = LinkIo::Connecting {
                    attempt: self.attempts,
                    task,
                };
            }
            NetAction::Send { link, bytes } => {
                self.counters[link.index()].0 += bytes.len() as u64;
                if let LinkIo::Open(stream) = &mut self.links[link.index()] {
                    if let Some(pcap) = &mut self.pcap {
                        pcap.sent(link, &bytes);
                    }
                    if stream.send(bytes) {
                        let now = self.now();
                        self.modem.net_event(link, NetEvent::Sent, now);
                        self.taken_early = true;
                    }
                }
            }
            NetAction::SendTo { link, to, bytes } => {
                self.counters[link.index()].0 += bytes.len() as u64;
                if let LinkIo::Udp(socket) = &mut self.links[link.index()] {
                    if let Some(pcap) = &mut self.pcap {
                        pcap.sent_to(link, to, &bytes);
                    }
                    socket.send(to, bytes);
                }
            }
            NetAction::Listen { port } => {
                let up = self.listen(port);
                let now = self.now();
                self.modem.net_answer(NetAnswer::Listening(up), now);
            }
            NetAction::StopListening => {
                if self.listener.take().is_some() {
                    tracing::info!("server stopped");
                }
            }
            NetAction::Resolve { host } => {
                self.start_lookup(async move { Answer::Resolved(net::lookup(host).await) });
            }
            NetAction::Ping { host } => {
                self.start_lookup(async move {
                    let rtt = crate::ping::ping(&host, PING_TIMEOUT).await;
                    let ms = match rtt {
                        Ok(Some(rtt)) => {
                            Some(rtt.as_millis().clamp(1, u128::from(u32::MAX)) as u32)
                        }
                        Ok(None) => None,
                        Err(error) => {
                            tracing::info!(%host, %error, "ping failed");
                            None
                        }
                    };
                    Answer::Pinged(ms)
                });
            }
            NetAction::Close { link } => {
                if let Some(trace) = &self.trace {
                    trace.link_note(link, "close");
                }
                self.drop_link(link);
            }
        }
    }

    /// Requests of the control API.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(requests) = self.requests.as_mut() else {
            return false;
        };
        let Poll::Ready(Some(request)) = requests.poll_recv(cx) else {
            return false;
        };
        match request {
            Request::Inspect(reply) => {
                let _ = reply.send(self.info());
            }
            Request::Fault(fault, reply) => {
                let result = self.fault(fault);
                let _ = reply.send(result);
            }
            Request::Unstall(link) => self.stalled[link.index()] = false,
        }
        true
    }

    /// The scenario's steps that are due, and its verdict once known.
    fn poll_scenario(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(run) = self.scenario.as_mut() else {
            return false;
        };
        let now = self.start.elapsed().as_millis() as u64;
        let received = self.counters.iter().map(|(_, r)| r).sum();
        // Asked only by a step waiting for a link: not every poll.
        let modem = &self.modem;
        let is_open = |link: control::LinkName| {
            modem
                .link_status()
                .iter()
                .any(|s| s.link == link.0 && s.state == "open")
        };
        let seen = scenario::Observed {
            now,
            received,
            open: &is_open,
        };
        let faults = run.due(&seen);
        let deadline = run.deadline();
        let moved = !faults.is_empty();
        for action in faults {
            tracing::info!(?action, "scenario step");
            match action {
                scenario::Action::Fault(fault) => {
                    if let Err(error) = self.fault(fault) {
                        tracing::warn!(%error, "scenario step could not apply");
                    }
                }
                // The peer is another process: asked in a task of its own.
                scenario::Action::Peer(request) => {
                    tokio::spawn(crate::http_api::ask_peer(request));
                }
            }
        }
        self.verdict(now, false);
        let timer = self
            .scenario_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(far_future())));
        if deadline != self.scenario_at {
            self.scenario_at = deadline;
            let at = match deadline {
                Some(ms) => tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)),
                None => far_future(),
            };
            timer.as_mut().reset(at);
        }
        if deadline.is_some() && timer.as_mut().poll(cx).is_ready() {
            self.scenario_at = None;
            return true;
        }
        moved
    }

    /// Sends this modem's verdict, once it has one.
    fn verdict(&mut self, now: u64, ended: bool) {
        let Some(verdict) = self
            .scenario
            .as_mut()
            .and_then(|run| run.take_verdict(now, ended))
        else {
            return;
        };
        tracing::info!(?verdict, port = %self.port_name, "scenario verdict");
        if let Some(verdicts) = &self.verdicts {
            let _ = verdicts.send((self.port_name.clone(), verdict));
        }
    }

    fn info(&self) -> ModemInfo {
        let links = self
            .modem
            .link_status()
            .into_iter()
            .map(|status| {
                let (sent, received) = self.counters[status.link.index()];
                LinkInfo {
                    link: control::link_name(status.link),
                    state: status.state,
                    peer: status.peer,
                    bytes_sent: sent,
                    bytes_received: received,
                }
            })
            .collect();
        ModemInfo {
            id: self.registration.as_ref().map_or(0, |r| r.id),
            port: self.port_name.clone(),
            firmware: self.firmware,
            station: self
                .modem
                .station_ssid()
                .map(|ssid| String::from_utf8_lossy(ssid).into_owned()),
            links,
        }
    }

    /// Carries out a fault: the core's go to the core, the network's and
    /// the port's pacing are the driver's.
    fn fault(&mut self, fault: ControlFault) -> Result<(), String> {
        let now = self.now();
        if let Some(core_fault) = fault.core_fault() {
            self.modem.inject(core_fault, now);
            return Ok(());
        }
        match fault {
            ControlFault::ChunkOutput { bytes, delay_ms } => {
                self.chunking = (bytes > 0).then(|| (bytes, Duration::from_millis(delay_ms)));
                self.write_pause = None;
            }
            ControlFault::Reset { link } => {
                let link = link.0;
                if matches!(self.links[link.index()], LinkIo::None) {
                    return Err(format!("{} has no connection", control::link_name(link)));
                }
                self.note(link, "reset (fault)");
                self.drop_link(link);
                self.modem.net_event(link, NetEvent::Closed, now);
            }
            ControlFault::Stall { link, ms } => {
                let link = link.0;
                self.stalled[link.index()] = true;
                self.note(link, &format!("stalled for {ms} ms (fault)"));
                if let Some(registration) = &self.registration {
                    let requests = registration.requests.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let _ = requests.send(Request::Unstall(link));
                    });
                }
            }
            ControlFault::Shape {
                link,
                latency_ms,
                bytes_per_s,
            } => {
                let link = link.0;
                let LinkIo::Open(stream) = &mut self.links[link.index()] else {
                    return Err(format!(
                        "{} has no stream to shape (UDP links and links without a connection have none)",
                        control::link_name(link)
                    ));
                };
                stream.shape(crate::shape::Shape {
                    latency: Duration::from_millis(latency_ms),
                    bytes_per_s: (bytes_per_s > 0).then_some(bytes_per_s),
                });
                self.note(
                    link,
                    &format!("shaped: {latency_ms} ms, {bytes_per_s} B/s (0: no cap) (fault)"),
                );
            }
            ControlFault::FailConnect { link, how } => {
                self.fail_connects.push((link.map(|l| l.0), how));
            }
            _ => {}
        }
        Ok(())
    }

    /// A connect a fault makes fail: the core hears what a real failure
    /// would have said. Returns whether there was one.
    fn fail_connect(&mut self, link: Link) -> bool {
        let Some(at) = self
            .fail_connects
            .iter()
            .position(|(l, _)| l.is_none_or(|l| l == link))
        else {
            return false;
        };
        let (_, how) = self.fail_connects.remove(at);
        let now = self.now();
        let reason = match how {
            FailHow::Refused => "connection refused (fault)".to_string(),
            FailHow::Dns => "failed to lookup address information (fault)".to_string(),
            FailHow::Tls => "TLS handshake failed (fault)".to_string(),
            FailHow::HttpStatus(status) if matches!(link, Link::Ws(_)) => {
                // A server that answers the handshake with `status`.
                let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
                self.note(
                    link,
                    &format!("connect answered with HTTP {status} (fault)"),
                );
                let event = NetEvent::Connected {
                    local: nowhere,
                    remote: nowhere,
                };
                self.modem.net_event(link, event, now);
                let response = format!("HTTP/1.1 {status} Fault\r\nContent-Length: 0\r\n\r\n");
                self.modem
                    .net_event(link, NetEvent::Received(response.as_bytes()), now);
                self.modem.net_event(link, NetEvent::Closed, now);
                return true;
            }
            FailHow::HttpStatus(_) => "connection refused (fault)".to_string(),
        };
        self.note(link, &format!("connect failed: {reason}"));
        self.modem.net_event(link, NetEvent::Failed(reason), now);
        true
    }

    /// Ends the link's connection: an attempt is aborted, an open stream
    /// writes what was queued and closes on its own.
    fn drop_link(&mut self, link: Link) {
        if let Some(pcap) = &mut self.pcap {
            pcap.closed(link);
        }
        match std::mem::take(&mut self.links[link.index()]) {
            LinkIo::None | LinkIo::Udp(_) => {}
            LinkIo::Connecting { task, .. } => task.abort(),
            LinkIo::Open(stream) => stream.close(),
        }
    }

    /// `AT+CIPSERVER`: a listening socket on the server address and the
    /// host's port. Says where in the log, or why not.
    fn listen(&mut self, port: u16) -> bool {
        let addr = SocketAddr::new(self.server_ip, port);
        let bound = std::net::TcpListener::bind(addr).and_then(|listener| {
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        });
        match bound {
            Ok(listener) => {
                tracing::info!("server listening on {addr}");
                if let Some(trace) = &self.trace {
                    trace.note(&format!("server listening on {addr}"));
                }
                self.listener = Some(listener);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "server: cannot listen on {addr}");
                false
            }
        }
    }

    /// Runs a lookup or ping task; one that still runs is stale (its
    /// command is over) and is aborted.
    fn start_lookup(&mut self, task: impl Future<Output = Answer> + Send + 'static) {
        if let Some(old) = self.lookup.replace(tokio::spawn(task)) {
            old.abort();
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
                tracing::debug!(%link, ?dir, line = %String::from_utf8_lossy(first_line), "http");
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
                tracing::trace!(%link, ?dir, ?header, "frame");
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
    fn note(&self, link: Link, what: &str) {
        tracing::info!("{link}: {what}");
        if let Some(trace) = &self.trace {
            trace.link_note(link, what);
        }
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
