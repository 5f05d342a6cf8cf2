//! `--baud 115200`: the AT port carries what a UART at 115200 8N1 would,
//! 11520 bytes/s, in both directions; `AT+UART_CUR` changes the pace. The
//! measured figures are printed; the assertions allow 10% for noise.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use wsat_testkit::raw::{server_frame, RawConn, RawListener};
use wsat_testkit::{Host, Wsat, WAIT};

/// Output `+WS_DATA` reports for `len` payload bytes at buffer_size 1024.
fn report_bytes(len: usize) -> usize {
    let chunk = |n: usize| format!("+WS_DATA:0,{n},").len() + n + 2;
    (len / 1024) * chunk(1024) + if len % 1024 > 0 { chunk(len % 1024) } else { 0 }
}

/// The server sends `len` bytes in one frame; returns the AT port's output
/// rate in bytes/s, from the end of the first read to the end of the last.
async fn output_rate(host: &mut Host, conn: &mut RawConn, len: usize) -> f64 {
    let expected = report_bytes(len);
    conn.stream
        .write_all(&server_frame(true, 2, &vec![b'x'; len]))
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut first: Option<(Instant, usize)> = None;
    let limit = Duration::from_secs_f64(expected as f64 / 11520.0 * 2.0) + WAIT;
    let end = timeout(limit, async {
        while got < expected {
            let n = host.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "AT port closed");
            got += n;
            first.get_or_insert((Instant::now(), got));
        }
        Instant::now()
    })
    .await
    .expect("output too slow");
    assert_eq!(got, expected, "more output than the reports");
    let (start, before) = first.unwrap();
    (got - before) as f64 / (end - start).as_secs_f64()
}

fn within(rate: f64, nominal: f64, tolerance: f64) -> bool {
    (rate - nominal).abs() <= nominal * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baud_115200_paces_both_directions_and_uart_cur_changes_it() {
    let server = RawListener::bind().await;
    let wsat = Wsat::start_with(&["--baud", "115200"]);
    let mut host = wsat.quiet_host().await;
    host.at("AT+UART_CUR?", b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
        .await;
    let mut conn = host.open_raw(0, &server).await;

    // Modem to host: about 2 s of output.
    let out_rate = output_rate(&mut host, &mut conn, 22_500).await;
    println!(
        "pacing --baud 115200: output {out_rate:.0} bytes/s ({:+.2}% from 11520)",
        (out_rate / 11520.0 - 1.0) * 100.0
    );

    // Host to modem: 11520 data bytes take about 1 s to be read.
    host.send(b"AT+WSSEND=0,11520,2\r\n").await;
    host.expect(b"\r\nOK\r\n\r\n>").await;
    let start = Instant::now();
    host.send(&vec![b'y'; 11520]).await;
    host.expect(b"\r\nSEND OK\r\n").await;
    let in_rate = 11520.0 / start.elapsed().as_secs_f64();
    println!(
        "pacing --baud 115200: input {in_rate:.0} bytes/s ({:+.2}% from 11520)",
        (in_rate / 11520.0 - 1.0) * 100.0
    );
    conn.read_frame().await;

    // Twice as fast after AT+UART_CUR (its OK still at 115200).
    host.at("AT+UART_CUR=230400,8,1,0,0", b"\r\nOK\r\n").await;
    let fast_rate = output_rate(&mut host, &mut conn, 45_000).await;
    println!(
        "pacing after AT+UART_CUR=230400: output {fast_rate:.0} bytes/s ({:+.2}% from 23040)",
        (fast_rate / 23040.0 - 1.0) * 100.0
    );

    assert!(
        within(out_rate, 11520.0, 0.10),
        "output {out_rate:.0} bytes/s"
    );
    assert!(within(in_rate, 11520.0, 0.10), "input {in_rate:.0} bytes/s");
    assert!(
        within(fast_rate, 23040.0, 0.10),
        "after AT+UART_CUR {fast_rate:.0} bytes/s"
    );
    host.alive().await;
}
