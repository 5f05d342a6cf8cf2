//! Latency and a bandwidth cap on one link's connection (the control API's
//! `shape` fault): a stream wrapper put around the link's stream only while
//! a test asks for it, so the data path of every other link stays as it is.
//!
//! Both directions are delayed by the latency and paced to the rate; EOF
//! is delayed like data. At most [`QUEUE_LIMIT`] bytes wait per direction:
//! beyond it the wrapper stops reading (TCP pushes back) or writing.
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::net::Io;

/// Bytes that may wait in each direction.
const QUEUE_LIMIT: usize = 256 * 1024;
/// One read from the wrapped stream.
const READ_CHUNK: usize = 16 * 1024;

/// What to do to the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub latency: Duration,
    /// `None`: no cap.
    pub bytes_per_s: Option<u64>,
}

/// Bytes waiting for their time, and the pace they leave at.
struct Lane {
    queue: VecDeque<(Instant, Vec<u8>)>,
    queued: usize,
    /// Bytes of the front entry already let out.
    front_done: usize,
    /// When the pace lets the next byte out.
    next_free: Instant,
    /// EOF came from the wrapped stream at this time (reads only).
    eof_at: Option<Instant>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            queue: VecDeque::new(),
            queued: 0,
            front_done: 0,
            next_free: Instant::now(),
            eof_at: None,
        }
    }

    fn push(&mut self, shape: Shape, bytes: &[u8]) {
        self.queued += bytes.len();
        self.queue
            .push_back((Instant::now() + shape.latency, bytes.to_vec()));
    }

    /// The bytes that may leave now (at most `max`), or when to ask again.
    fn take(&mut self, shape: Shape, max: usize) -> Result<Vec<u8>, Option<Instant>> {
        let now = Instant::now();
        let Some((due, bytes)) = self.queue.front() else {
            return Err(None);
        };
        if *due > now {
            return Err(Some(*due));
        }
        let mut n = (bytes.len() - self.front_done).min(max);
        if let Some(rate) = shape.bytes_per_s {
            if self.next_free > now {
                return Err(Some(self.next_free));
            }
            // A burst of at most 1/20 s of the rate, at least one byte.
            let burst = (rate / 20).max(1) as usize;
            n = n.min(burst);
            let cost = Duration::from_secs_f64(n as f64 / rate as f64);
            self.next_free = now.max(self.next_free) + cost;
        }
        let out = bytes[self.front_done..self.front_done + n].to_vec();
        self.front_done += n;
        self.queued -= n;
        if self.front_done == bytes.len() {
            self.queue.pop_front();
            self.front_done = 0;
        }
        Ok(out)
    }
}

/// The shape of a link's traffic; a later fault changes it in place.
pub(crate) type ShapeHandle = Arc<Mutex<Shape>>;

/// A stream with its traffic shaped.
pub(crate) struct Shaped {
    inner: Box<dyn Io>,
    handle: ShapeHandle,
    shape: Shape,
    rx: Lane,
    tx: Lane,
    /// Written out of `tx` but not yet taken by `inner`.
    tx_pending: Vec<u8>,
    timer: Pin<Box<Sleep>>,
    /// Where `timer` is set, while it has not fired.
    armed: Option<Instant>,
}

impl Shaped {
    pub(crate) fn new(inner: Box<dyn Io>, handle: ShapeHandle) -> Shaped {
        let shape = *handle.lock().unwrap_or_else(|e| e.into_inner());
        Shaped {
            inner,
            handle,
            shape,
            rx: Lane::new(),
            tx: Lane::new(),
            tx_pending: Vec::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }

    /// Wakes the task at `at` (the earliest of what waits).
    fn wake_at(&mut self, cx: &mut Context<'_>, at: Instant) {
        let now = Instant::now();
        if self.armed.is_none_or(|armed| at < armed || armed <= now) {
            self.timer.as_mut().reset(at);
            self.armed = Some(at);
        }
        // A timer already due registers no wake-up: ask to be polled again.
        if self.timer.as_mut().poll(cx).is_ready() {
            self.armed = None;
            cx.waker().wake_by_ref();
        }
    }

    /// Moves due outgoing bytes into the wrapped stream.
    fn push_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shape = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.tx_pending.is_empty() {
                match self.tx.take(self.shape, usize::MAX) {
                    Ok(bytes) => self.tx_pending = bytes,
                    Err(Some(at)) => {
                        self.wake_at(cx, at);
                        return Poll::Pending;
                    }
                    Err(None) => return Poll::Ready(Ok(())),
                }
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.tx_pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tx_pending.drain(..n);
        }
    }
}

impl AsyncRead for Shaped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Outgoing bytes move whenever the task looks at the stream.
        if let Poll::Ready(Err(e)) = this.push_out(cx) {
            return Poll::Ready(Err(e));
        }
        while this.rx.eof_at.is_none() && this.rx.queued < QUEUE_LIMIT {
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    this.rx.eof_at = Some(Instant::now() + this.shape.latency);
                }
                Poll::Ready(Ok(())) => this.rx.push(this.shape, read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        match this.rx.take(this.shape, buf.remaining()) {
            Ok(bytes) => {
                buf.put_slice(&bytes);
                Poll::Ready(Ok(()))
            }
            Err(Some(at)) => {
                this.wake_at(cx, at);
                Poll::Pending
            }
            Err(None) => match this.rx.eof_at {
                Some(at) if at <= Instant::now() => Poll::Ready(Ok(())),
                Some(at) => {
                    this.wake_at(cx, at);
                    Poll::Pending
                }
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Shaped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(Err(e)) = this.push_out(cx) {
            return Poll::Ready(Err(e));
        }
        if this.tx.queued >= QUEUE_LIMIT {
            // push_out registered the wake-up for when bytes leave.
            return Poll::Pending;
        }
        let n = data.len().min(QUEUE_LIMIT - this.tx.queued);
        this.tx.push(this.shape, &data[..n]);
        let _ = this.push_out(cx);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.push_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.push_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn latency_delays_both_ways_and_the_rate_paces() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let shape = Shape {
            latency: Duration::from_millis(200),
            bytes_per_s: Some(1000),
        };
        let mut shaped = Shaped::new(Box::new(near), Arc::new(Mutex::new(shape)));
        let start = Instant::now();
        shaped.write_all(b"hello").await.unwrap();
        shaped.flush().await.unwrap();
        let mut got = [0u8; 5];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert!(start.elapsed() >= Duration::from_millis(200));
        // 500 bytes at 1000 B/s: half a second on top of the latency.
        far.write_all(&[7; 500]).await.unwrap();
        let start = Instant::now();
        let mut got = vec![0u8; 500];
        shaped.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [7; 500]);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(650), "{took:?}");
        // EOF arrives after the latency too.
        drop(far);
        let start = Instant::now();
        assert_eq!(shaped.read(&mut [0u8; 8]).await.unwrap(), 0);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
