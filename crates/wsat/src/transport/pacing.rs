//! `--baud N`: the AT port carries bytes no faster than a UART at N baud
//! would (10 bits a byte at 8N1), in both directions, so a host's timing
//! matches hardware. The rate can change while running (`AT+UART_CUR`).
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use wsat_proto::UartConfig;

/// How much line time one read or write may take at most, so that bytes
/// flow in small steps rather than bursts, at about timer resolution.
const STEP: Duration = Duration::from_millis(10);

/// The line's speed, shared by both directions of one port.
#[derive(Debug)]
pub(crate) struct PaceRate {
    /// Nanoseconds one byte takes on the line; 0: unpaced.
    byte_time_ns: AtomicU64,
}

impl PaceRate {
    pub(crate) fn new(config: UartConfig) -> Arc<PaceRate> {
        let rate = PaceRate {
            byte_time_ns: AtomicU64::new(0),
        };
        rate.set(config);
        Arc::new(rate)
    }

    /// Takes effect from the next read or write on.
    pub(crate) fn set(&self, config: UartConfig) {
        self.byte_time_ns
            .store(config.byte_time_ns(), Ordering::Relaxed);
    }

    /// Bytes per second at the current setting (0: unpaced).
    #[cfg(test)]
    fn bytes_per_second(&self) -> f64 {
        match self.byte_time_ns.load(Ordering::Relaxed) {
            0 => 0.0,
            ns => 1e9 / ns as f64,
        }
    }
}

/// The state of one direction of the line.
struct Line {
    rate: Arc<PaceRate>,
    /// When the bytes already passed would have finished crossing the line.
    busy_until: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Line {
    fn new(rate: Arc<PaceRate>) -> Line {
        let now = Instant::now();
        Line {
            rate,
            busy_until: now,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// Waits until the line is free; then how many bytes may pass now
    /// (`usize::MAX` when unpaced).
    fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        let byte_ns = self.rate.byte_time_ns.load(Ordering::Relaxed);
        if byte_ns == 0 {
            return Poll::Ready(usize::MAX);
        }
        if Instant::now() < self.busy_until {
            if self.sleep.deadline() != self.busy_until {
                self.sleep.as_mut().reset(self.busy_until);
            }
            ready!(self.sleep.as_mut().poll(cx));
        }
        let step = (STEP.as_nanos() as u64 / byte_ns).max(1);
        Poll::Ready(usize::try_from(step).unwrap_or(usize::MAX))
    }

    /// `n` bytes went over the line.
    fn passed(&mut self, n: usize) {
        let byte_ns = self.rate.byte_time_ns.load(Ordering::Relaxed);
        if byte_ns == 0 || n == 0 {
            return;
        }
        let now = Instant::now();
        // Timer lateness must not slow the line down, but an idle line
        // does not bank time for a burst either.
        let start = if now > self.busy_until + STEP {
            now
        } else {
            self.busy_until
        };
        self.busy_until = start + Duration::from_nanos(byte_ns.saturating_mul(n as u64));
    }
}

/// The reading half of a paced port.
pub(crate) struct PacedReader<R> {
    inner: R,
    line: Line,
}

impl<R> PacedReader<R> {
    pub(crate) fn new(inner: R, rate: Arc<PaceRate>) -> Self {
        PacedReader {
            inner,
            line: Line::new(rate),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for PacedReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let allowed = ready!(this.line.poll_allowance(cx));
        let take = allowed.min(buf.remaining());
        // Read into a window of at most `take` bytes; the rest waits in the kernel.
        let mut window = ReadBuf::new(buf.initialize_unfilled_to(take));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut window))?;
        let n = window.filled().len();
        buf.advance(n);
        this.line.passed(n);
        Poll::Ready(Ok(()))
    }
}

/// The writing half of a paced port.
pub(crate) struct PacedWriter<W> {
    inner: W,
    line: Line,
}

impl<W> PacedWriter<W> {
    pub(crate) fn new(inner: W, rate: Arc<PaceRate>) -> Self {
        PacedWriter {
            inner,
            line: Line::new(rate),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for PacedWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let allowed = ready!(this.line.poll_allowance(cx));
        let take = allowed.min(buf.len());
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..take]))?;
        this.line.passed(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn writes_take_line_time() {
        let rate = PaceRate::new(UartConfig::DEFAULT.with_baudrate(9600));
        assert_eq!(rate.bytes_per_second().round(), 960.0);
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut writer = PacedWriter::new(a, rate.clone());
        let start = Instant::now();
        writer.write_all(&[0u8; 960]).await.unwrap();
        // The last step goes out when the line is free for it: under 1 s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(980) && took <= Duration::from_secs(1),
            "{took:?}"
        );
        let mut got = vec![0u8; 960];
        b.read_exact(&mut got).await.unwrap();

        // Faster from now on.
        rate.set(UartConfig::DEFAULT.with_baudrate(96_000));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        writer.write_all(&[0u8; 960]).await.unwrap();
        let took = start.elapsed();
        assert!(took <= Duration::from_millis(100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_take_line_time() {
        let rate = PaceRate::new(UartConfig::DEFAULT.with_baudrate(9600));
        let (mut a, b) = tokio::io::duplex(1 << 20);
        a.write_all(&[1u8; 1920]).await.unwrap();
        drop(a);
        let mut reader = PacedReader::new(b, rate);
        let start = Instant::now();
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1920);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1980) && took <= Duration::from_secs(2),
            "{took:?}"
        );
    }
}
