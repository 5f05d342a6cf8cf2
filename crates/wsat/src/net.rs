//! Link connections: one task per connection, carrying out the core's
//! `Connect`/`Send`/`Close` and reporting back what happened.
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use wsat_proto::{LinkId, TlsPolicy};

use crate::tls::{self, TlsOptions};

/// How much one socket read takes at most.
const READ_SIZE: usize = 16 * 1024;
/// How long a closing connection may take to write what was queued before
/// its `Close`; a server that stops reading must not keep the task alive.
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// What happened on a connection, tagged with the connection it belongs to,
/// so that events from a replaced connection are recognised and dropped.
#[derive(Debug)]
pub struct LinkEvent {
    pub link: LinkId,
    pub conn: u64,
    pub kind: LinkEventKind,
}

#[derive(Debug)]
pub enum LinkEventKind {
    Connected,
    Received(Vec<u8>),
    Sent,
    Closed,
    Failed(String),
}

enum Command {
    Send(Vec<u8>),
    Close,
}

/// Where a connection goes and how.
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `Some` for `wss://`.
    pub tls: Option<TlsPolicy>,
    pub tls_options: TlsOptions,
}

/// A byte stream a link runs over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The driver's handle on one connection task.
pub struct Connection {
    pub id: u64,
    commands: mpsc::UnboundedSender<Command>,
    task: AbortHandle,
}

impl Connection {
    /// Starts connecting. Events go to `events`; reads wait while `paused`
    /// is true (the host is not keeping up).
    pub fn spawn(
        link: LinkId,
        id: u64,
        target: Target,
        events: mpsc::Sender<LinkEvent>,
        paused: watch::Receiver<bool>,
    ) -> Connection {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let reporter = Reporter {
            link,
            conn: id,
            events,
        };
        let task = tokio::spawn(run(target, reporter, command_rx, paused)).abort_handle();
        Connection { id, commands, task }
    }

    pub fn send(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::Send(bytes));
    }

    /// Writes what was queued, then closes. A server that stops reading
    /// cannot keep the task alive past [`CLOSE_FLUSH_LIMIT`].
    pub fn close(self) {
        let _ = self.commands.send(Command::Close);
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_FLUSH_LIMIT).await;
            self.task.abort();
        });
    }

    /// Drops the connection at once.
    pub fn abort(self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Reporter {
    link: LinkId,
    conn: u64,
    events: mpsc::Sender<LinkEvent>,
}

impl Reporter {
    /// False when the modem is gone.
    async fn report(&self, kind: LinkEventKind) -> bool {
        let event = LinkEvent {
            link: self.link,
            conn: self.conn,
            kind,
        };
        self.events.send(event).await.is_ok()
    }
}

async fn run(
    target: Target,
    reporter: Reporter,
    mut commands: mpsc::UnboundedReceiver<Command>,
    paused: watch::Receiver<bool>,
) {
    // Until connected, only a `Close` (or the driver going away) can come.
    let stream = tokio::select! {
        stream = open(&target) => stream,
        _ = commands.recv() => return,
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(error) => {
            tracing::info!(link = reporter.link, %error, "connect failed");
            reporter
                .report(LinkEventKind::Failed(error.to_string()))
                .await;
            return;
        }
    };
    if !reporter.report(LinkEventKind::Connected).await {
        return;
    }
    let (reader, writer) = tokio::io::split(stream);
    let reading = read_loop(reader, reporter.clone(), paused);
    let writing = write_loop(writer, reporter, commands);
    tokio::pin!(reading, writing);
    // Reading ends at EOF, but writing goes on: the core may still answer a
    // close frame. The task ends when writing does.
    tokio::select! {
        _ = &mut reading => writing.await,
        _ = &mut writing => {}
    }
}

async fn open(target: &Target) -> io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    match &target.tls {
        None => Ok(Box::new(tcp)),
        Some(params) => {
            let stream = tls::connect(tcp, &target.host, params, &target.tls_options).await?;
            Ok(Box::new(stream))
        }
    }
}

async fn read_loop(
    mut reader: impl AsyncRead + Unpin,
    reporter: Reporter,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = Vec::with_capacity(READ_SIZE);
    loop {
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        let kind = match reader.read_buf(&mut buf).await {
            Ok(0) => LinkEventKind::Closed,
            // A big read is handed over whole rather than copied (receive
            // throughput); a small one is copied so the event stays small.
            Ok(n) if n >= READ_SIZE / 4 => {
                LinkEventKind::Received(std::mem::replace(&mut buf, Vec::with_capacity(READ_SIZE)))
            }
            Ok(_) => {
                let data = buf.clone();
                buf.clear();
                LinkEventKind::Received(data)
            }
            Err(error) => {
                tracing::info!(link = reporter.link, %error, "read failed");
                LinkEventKind::Closed
            }
        };
        let ended = matches!(kind, LinkEventKind::Closed);
        if !reporter.report(kind).await || ended {
            return;
        }
    }
}

async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    reporter: Reporter,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Send(bytes) => {
                if let Err(error) = writer.write_all(&bytes).await {
                    tracing::info!(link = reporter.link, %error, "write failed");
                    reporter.report(LinkEventKind::Closed).await;
                    return;
                }
                if !reporter.report(LinkEventKind::Sent).await {
                    return;
                }
            }
            Command::Close => {
                let _ = writer.shutdown().await;
                return;
            }
        }
    }
}
