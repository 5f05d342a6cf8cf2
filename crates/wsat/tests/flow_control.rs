//! Flow control without loss: a server sends 50 MB as fast as it can to a
//! host that reads at 100 KB/s for a while, then at full speed. Every byte
//! must arrive in order, and the modem's peak memory must stay bounded
//! (wsat stops reading the link's socket, so TCP pushes back on the server).
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use wsat_testkit::raw::{server_frame, RawListener};
use wsat_testkit::{Host, Wsat, WAIT};

const TOTAL: usize = 50 * 1024 * 1024;
const FRAME: usize = 16 * 1024;
/// The slow phase: 10 KB every 100 ms for 3 s.
const SLOW_STEP: usize = 10 * 1000;
const SLOW_TICK: Duration = Duration::from_millis(100);
const SLOW_FOR: Duration = Duration::from_secs(3);
/// The modem's peak resident memory must stay under this: a fraction of the
/// 50 MB that passes through it. (Its own bound on held data is about
/// 0.6 MiB per modem, see HOST_OUTPUT_BOUND; the rest is the runtime.)
const PEAK_RSS_LIMIT_KIB: u64 = 32 * 1024;

/// Byte `i` of the stream: a pattern that does not repeat per frame, so a
/// lost, doubled or reordered frame shows.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Parses `+WS_DATA:0,<len>,<payload>\r\n` reports and checks the payloads.
#[derive(Default)]
struct Reports {
    buf: Vec<u8>,
    /// Payload bytes checked so far.
    checked: usize,
}

impl Reports {
    /// Reads from the host at full speed until `total` payload bytes have
    /// been checked.
    async fn read_until(&mut self, host: &mut Host, buf: &mut [u8], total: usize) {
        while self.checked < total {
            let n = timeout(WAIT, host.stream.read(buf))
                .await
                .unwrap_or_else(|_| panic!("stalled after {} bytes", self.checked))
                .unwrap();
            assert!(n > 0, "AT port closed after {} bytes", self.checked);
            self.feed(&buf[..n]);
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            const PREFIX: &[u8] = b"+WS_DATA:0,";
            let shown = &rest[..rest.len().min(64)];
            assert!(
                PREFIX.starts_with(&rest[..rest.len().min(PREFIX.len())]),
                "unexpected output {:?}",
                String::from_utf8_lossy(shown)
            );
            let Some(comma) = rest.iter().skip(PREFIX.len()).position(|&b| b == b',') else {
                break;
            };
            let comma = comma + PREFIX.len();
            let len: usize = std::str::from_utf8(&rest[11..comma])
                .unwrap()
                .parse()
                .unwrap();
            let end = comma + 1 + len + 2;
            if rest.len() < end {
                break;
            }
            let payload = &rest[comma + 1..comma + 1 + len];
            for (k, &b) in payload.iter().enumerate() {
                let i = self.checked + k;
                assert_eq!(b, pattern(i), "byte {i} wrong: lost or reordered data");
            }
            assert_eq!(&rest[end - 2..end], b"\r\n");
            self.checked += len;
            at += end;
        }
        self.buf.drain(..at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_to_a_slow_host_arrive_whole_in_bounded_memory() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    // Chunks as large as the frames; no keepalive pings during the test.
    host.at("AT+WSCFG=0,7200,7200,16384", b"\r\nOK\r\n").await;
    let mut conn = host.open_raw(0, &server).await;

    let sender = tokio::spawn(async move {
        let started = Instant::now();
        for n in 0..TOTAL / FRAME {
            let payload: Vec<u8> = (n * FRAME..(n + 1) * FRAME).map(pattern).collect();
            let frame = server_frame(true, 2, &payload);
            // A slow host holds the server back for the slow phase at most.
            timeout(SLOW_FOR + WAIT, conn.stream.write_all(&frame))
                .await
                .expect("the server was blocked too long")
                .expect("server write");
        }
        (conn, started.elapsed())
    });

    let mut reports = Reports::default();
    let mut buf = vec![0u8; 256 * 1024];
    // Slow: 10 KB per 100 ms.
    let slow_start = Instant::now();
    let mut tick = tokio::time::interval(SLOW_TICK);
    while slow_start.elapsed() < SLOW_FOR {
        tick.tick().await;
        let n = timeout(WAIT, host.stream.read(&mut buf[..SLOW_STEP]))
            .await
            .expect("no data in the slow phase")
            .unwrap();
        assert!(n > 0, "AT port closed");
        reports.feed(&buf[..n]);
    }
    let slow_bytes = reports.checked;
    // Fast: everything else.
    let fast_start = Instant::now();
    reports.read_until(&mut host, &mut buf, TOTAL).await;
    let fast_time = fast_start.elapsed();
    let (_conn, send_time) = timeout(WAIT, sender).await.unwrap().unwrap();
    assert_eq!(reports.checked, TOTAL);
    assert!(reports.buf.is_empty());

    let peak = wsat.proc.peak_rss_kib();
    println!(
        "flow control: {} MiB in order; slow phase {:.0} KB/s ({slow_bytes} bytes in {SLOW_FOR:?}); \
         fast phase {:.1} MB/s; server done after {send_time:.2?}; \
         wsat peak RSS (VmHWM) {peak} KiB (limit {PEAK_RSS_LIMIT_KIB} KiB)",
        TOTAL >> 20,
        slow_bytes as f64 / SLOW_FOR.as_secs_f64() / 1000.0,
        (TOTAL - slow_bytes) as f64 / fast_time.as_secs_f64() / 1e6,
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "wsat peak RSS {peak} KiB over {PEAK_RSS_LIMIT_KIB} KiB"
    );
    host.alive().await;
}

/// A host that reads nothing for three times the pong timeout, while the
/// server keeps sending (and answers pings, queued behind its data): the
/// modem stops reading the socket, so the pongs wait unread, and the pong
/// timeout must not count meanwhile. Every byte arrives, in order, and the
/// link is never reported lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stalled_past_the_pong_timeout_loses_nothing() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const STALL_TOTAL: usize = 16 * 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("ws://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        // Reading answers the modem's pings (tungstenite queues the pongs).
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        for n in 0..STALL_TOTAL / FRAME {
            let payload: Vec<u8> = (n * FRAME..(n + 1) * FRAME).map(pattern).collect();
            sink.send(Message::Binary(payload.into())).await.unwrap();
        }
        (sink, reader)
    });

    let wsat = Wsat::start();
    let mut host = wsat.quiet_host().await;
    // A ping every second, its pong due within 2 s.
    host.at("AT+WSCFG=0,1,2,16384", b"\r\nOK\r\n").await;
    host.open(0, &uri).await;
    // The stall: 3 × the pong timeout, reading nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut reports = Reports::default();
    let mut buf = vec![0u8; 256 * 1024];
    // Anything but +WS_DATA (a +WS_DISCONNECTED) fails here.
    reports.read_until(&mut host, &mut buf, STALL_TOTAL).await;
    let _ = timeout(WAIT, server).await.unwrap().unwrap();
    // The link is still up: keepalive goes on.
    host.at(
        "AT+WSOPEN?",
        format!("+WSOPEN:0,2,\"{uri}\"\r\n\r\nOK\r\n").as_bytes(),
    )
    .await;
}
