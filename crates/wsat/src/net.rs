//! A link's connection as the modem's driver owns it: connecting (TCP, then
//! TLS for `wss://`) runs as a small task of its own; once up, the driver
//! polls the stream itself, so a send the kernel takes at once is reported
//! in the same wake-up and received bytes go from the socket read straight
//! into the core.
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wsat_proto::{LinkId, TlsPolicy};

use crate::tls::{self, TlsOptions};

/// How long a closed connection may take to write what was queued before
/// its `Close`; a server that stops reading must not keep it alive.
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// A byte stream a link runs over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a connection goes and how.
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    /// `Some` for `wss://`.
    pub tls: Option<TlsPolicy>,
    pub tls_options: TlsOptions,
}

/// A connect attempt's outcome, tagged with the attempt, so that the result
/// of a replaced attempt is recognised and dropped.
pub(crate) struct Connected {
    pub link: LinkId,
    pub attempt: u64,
    pub result: io::Result<Box<dyn Io>>,
}

/// Starts connecting; the outcome goes to `results`.
pub(crate) fn connect(
    link: LinkId,
    attempt: u64,
    target: Target,
    results: mpsc::UnboundedSender<Connected>,
) -> AbortHandle {
    tokio::spawn(async move {
        let result = open(&target).await;
        let _ = results.send(Connected {
            link,
            attempt,
            result,
        });
    })
    .abort_handle()
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

/// What polling an open link gave.
pub(crate) enum Polled {
    /// This many sends were written in full.
    Sent(usize),
    Received(usize),
    /// EOF, or reading or writing failed: nothing more comes.
    Ended,
    Nothing,
}

/// An open connection: the stream and the sends not yet written.
pub(crate) struct Stream {
    io: Box<dyn Io>,
    sends: VecDeque<Vec<u8>>,
    /// Bytes of `sends[0]` already written.
    written: usize,
    /// Written bytes a TLS stream may still hold: flush them.
    unflushed: bool,
    /// EOF was read (writing may go on: the core may answer a close frame).
    read_done: bool,
    /// EOF or an error was reported; the stream is no longer used.
    ended: bool,
}

impl Stream {
    pub(crate) fn new(io: Box<dyn Io>) -> Stream {
        Stream {
            io,
            sends: VecDeque::new(),
            written: 0,
            unflushed: false,
            read_done: false,
            ended: false,
        }
    }

    pub(crate) fn send(&mut self, bytes: Vec<u8>) {
        if !self.ended {
            self.sends.push_back(bytes);
        }
    }

    /// Writes queued sends as far as the socket takes them.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Polled {
        let mut done = 0;
        while !self.ended {
            let Some(front) = self.sends.front() else {
                if self.unflushed {
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.unflushed = false,
                        Poll::Ready(Err(_)) => return self.end(),
                        Poll::Pending => {}
                    }
                }
                break;
            };
            match Pin::new(&mut self.io).poll_write(cx, &front[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return self.end(),
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
                    self.written += n;
                    if self.written == front.len() {
                        self.sends.pop_front();
                        self.written = 0;
                        done += 1;
                    }
                }
                Poll::Pending => break,
            }
        }
        if done > 0 {
            Polled::Sent(done)
        } else {
            Polled::Nothing
        }
    }

    /// One read into `buf`.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Polled {
        if self.ended || self.read_done {
            return Polled::Nothing;
        }
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                self.read_done = true;
                Polled::Ended
            }
            Poll::Ready(Ok(())) => Polled::Received(read.filled().len()),
            Poll::Ready(Err(error)) => {
                tracing::info!(%error, "read failed");
                self.end()
            }
            Poll::Pending => Polled::Nothing,
        }
    }

    /// EOF was read, or the stream failed, and has not been said yet.
    fn end(&mut self) -> Polled {
        let said = self.ended || self.read_done;
        self.ended = true;
        if said {
            Polled::Nothing
        } else {
            Polled::Ended
        }
    }

    /// Writes what was queued, then closes, in a task of its own that ends
    /// after [`CLOSE_FLUSH_LIMIT`] at the latest.
    pub(crate) fn close(mut self) {
        tokio::spawn(async move {
            let flush = async {
                if self.ended {
                    return;
                }
                if let Some(front) = self.sends.pop_front() {
                    if self.io.write_all(&front[self.written..]).await.is_err() {
                        return;
                    }
                }
                for bytes in self.sends.drain(..) {
                    if self.io.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = self.io.shutdown().await;
            };
            let _ = tokio::time::timeout(CLOSE_FLUSH_LIMIT, flush).await;
        });
    }
}
