//! `--tcp`: the accept loop. Every accepted connection is a modem of its
//! own, up to a limit; a connection beyond it gets a one-line refusal.
//! Accept errors never end the loop: running out of descriptors is waited
//! out with a back-off while the modems already running carry on.
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Descriptors one modem may hold: its host connection and a socket for
/// each of its three links.
pub(crate) const FDS_PER_MODEM: u64 = 4;
/// Descriptors left for the rest of the process: stdio, the runtime, the
/// listener, a trace file, the certificate store, name look-ups and
/// connections being refused.
pub(crate) const FD_RESERVE: u64 = 32;

/// The first wait after an accept error; it doubles with every error in a
/// row up to [`BACKOFF_MAX`] and starts over after a success.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Accept errors and refusals are each logged at most once this often (a
/// flood of connections must not flood the log).
const LOG_EVERY: Duration = Duration::from_secs(1);
/// What a refused connection may have sent already is read (and dropped)
/// up to this much before it is closed, so the close is a FIN, not a reset
/// that could overtake the refusal line.
const REFUSAL_DRAIN: usize = 4096;

/// `--max-modems` when it is not given: as many modems as the open-file
/// limit `fd_limit` holds with every link open, after [`FD_RESERVE`].
pub fn default_max_modems(fd_limit: u64) -> usize {
    let modems = fd_limit.saturating_sub(FD_RESERVE) / FDS_PER_MODEM;
    usize::try_from(modems)
        .unwrap_or(usize::MAX)
        .clamp(1, Semaphore::MAX_PERMITS)
}

/// The line a connection beyond `--max-modems` gets before it is closed.
pub(crate) fn refusal(max_modems: usize) -> String {
    format!("ERROR: too many modems (--max-modems {max_modems})\r\n")
}

/// Accepts connections on `listener` for ever, running `modem(stream, peer)`
/// as a task for each while fewer than `max_modems` of them run; a task's
/// slot is free again once it ends, by return or by panic.
pub async fn serve<F, Fut>(listener: TcpListener, max_modems: usize, mut modem: F) -> Infallible
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max_modems = max_modems.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_modems));
    let refusal = refusal(max_modems);
    let mut backoff = Backoff::default();
    let mut failures = Throttle::default();
    let mut refusals = Throttle::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if per_connection(&error) => {
                // That connection is gone; the next one may be fine.
                tracing::debug!(%error, "accept: connection failed before it was accepted");
                continue;
            }
            Err(error) => {
                // Out of descriptors or memory: the connection waits in the
                // listen queue until a modem ends and frees some.
                let delay = backoff.next();
                if let Some(suppressed) = failures.hit(Instant::now()) {
                    tracing::warn!(%error, retry_in = ?delay, suppressed, "accept failed");
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff = Backoff::default();
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let run = modem(stream, peer);
                tokio::spawn(async move {
                    // Dropped when the task ends, also when `run` panics.
                    let _slot = slot;
                    run.await;
                });
            }
            Err(_) => {
                refuse(stream, &refusal);
                if let Some(suppressed) = refusals.hit(Instant::now()) {
                    tracing::warn!(%peer, max_modems, suppressed, "refused a connection: too many modems");
                }
            }
        }
    }
}

/// Writes `line` and closes, without waiting: a fresh socket's send buffer
/// takes a short line at once, and the accept loop must not stall on a host.
fn refuse(stream: TcpStream, line: &str) {
    // Still non-blocking once out of the reactor.
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let _ = (&stream).write(line.as_bytes());
    let mut drain = [0u8; 512];
    let mut drained = 0;
    while drained < REFUSAL_DRAIN {
        match (&stream).read(&mut drain) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Errors of one connection that died in the listen queue, which Linux
/// reports from `accept` (see accept(2)): the listener itself is fine.
fn per_connection(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        return true;
    }
    let Some(code) = error.raw_os_error() else {
        return false;
    };
    matches!(
        Errno::from_raw(code),
        Errno::EPROTO
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::ETIMEDOUT
            // A firewall rule refused this connection.
            | Errno::EPERM
    )
}

/// Waits after accept errors in a row: [`BACKOFF_FIRST`], doubling, at most
/// [`BACKOFF_MAX`].
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// Lets one event a [`LOG_EVERY`] through to the log, counting the others.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(events held back since the last one let through)` if the event
    /// at `now` is to be logged.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_default_leaves_a_reserve_and_four_descriptors_a_modem() {
        assert_eq!(default_max_modems(1024), 248);
        assert_eq!(default_max_modems(64), 8);
        assert_eq!(default_max_modems(0), 1);
        assert_eq!(default_max_modems(u64::MAX), Semaphore::MAX_PERMITS);
    }

    #[test]
    fn backoff_doubles_from_10ms_to_at_most_a_second() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    #[test]
    fn throttle_lets_the_first_through_then_one_a_second() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.hit(start), Some(0));
        assert_eq!(throttle.hit(start + Duration::from_millis(10)), None);
        assert_eq!(throttle.hit(start + Duration::from_millis(999)), None);
        assert_eq!(throttle.hit(start + Duration::from_secs(1)), Some(2));
        assert_eq!(throttle.hit(start + Duration::from_millis(1500)), None);
        assert_eq!(throttle.hit(start + Duration::from_secs(5)), Some(1));
    }

    #[test]
    fn out_of_descriptors_is_not_a_connection_error() {
        let code = |errno: Errno| io::Error::from_raw_os_error(errno as i32);
        for errno in [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM] {
            assert!(!per_connection(&code(errno)), "{errno}");
        }
        for errno in [
            Errno::ECONNABORTED,
            Errno::EPROTO,
            Errno::EINTR,
            Errno::EPERM,
        ] {
            assert!(per_connection(&code(errno)), "{errno}");
        }
    }

    /// Connects and reads what the first bytes say: `Ok` for a modem of
    /// the test's (`hi`), `Err` for anything else up to EOF.
    async fn knock(addr: SocketAddr) -> Result<TcpStream, Vec<u8>> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got != b"hi" {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                return Err(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(stream)
    }

    #[tokio::test]
    async fn a_panicking_modem_frees_its_slot_and_the_one_beyond_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A modem says `hi`, then panics once its host sends a byte.
        tokio::spawn(serve(listener, 1, |mut stream, _| async move {
            stream.write_all(b"hi").await.unwrap();
            let mut byte = [0u8];
            if stream.read(&mut byte).await.unwrap() > 0 {
                panic!("a modem that panics (on purpose)");
            }
        }));
        let wait = Duration::from_secs(10);
        let mut first = tokio::time::timeout(wait, knock(addr))
            .await
            .unwrap()
            .expect("the first connection is a modem");
        let refused = tokio::time::timeout(wait, knock(addr)).await.unwrap();
        assert_eq!(refused.err(), Some(refusal(1).into_bytes()));
        first.write_all(b"!").await.unwrap();
        // The slot is free once the task is gone; until then, refusals.
        let again = tokio::time::timeout(wait, async {
            loop {
                match knock(addr).await {
                    Ok(stream) => break stream,
                    Err(line) => assert_eq!(line, refusal(1).into_bytes()),
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(again.is_ok(), "the panicked modem's slot was never freed");
    }
}
