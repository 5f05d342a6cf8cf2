//! 1000 modems at once on one `--tcp` listener, each with an open link:
//! every one opens its link, all links are up together, each echoes a
//! message, and all close. (Under a second here, so it is not `#[ignore]`d.)
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;
use tokio::time::timeout;

use wsat_testkit::{echo_server, Host, Wsat};

const MODEMS: usize = 1000;
/// How long all modems together may take for one phase.
const PHASE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_modems_each_with_an_open_link() {
    // The echo server's queue takes 1000 connections at once: it is wsat's.
    let uri = echo_server().await;
    let wsat = Wsat::start();
    let addr = wsat.addr;
    let all_open = Arc::new(Barrier::new(MODEMS + 1));
    let all_echoed = Arc::new(Barrier::new(MODEMS + 1));
    let start = Instant::now();
    let tasks: Vec<_> = (0..MODEMS)
        .map(|i| {
            let (uri, all_open, all_echoed) = (uri.clone(), all_open.clone(), all_echoed.clone());
            tokio::spawn(async move {
                let mut host = Host::connect_quiet(addr).await;
                let link = (i % 3) as u8;
                host.open(link, &uri).await;
                all_open.wait().await;
                let message = format!("modem {i:04}");
                host.send_data(&format!("{link},{}", message.len()), message.as_bytes())
                    .await;
                let echo = format!("+WS_DATA:{link},{},{message}\r\n", message.len());
                host.expect(echo.as_bytes()).await;
                all_echoed.wait().await;
                host.at(&format!("AT+WSCLOSE={link}"), b"\r\nOK\r\n").await;
                host.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
            })
        })
        .collect();

    timeout(PHASE, all_open.wait())
        .await
        .expect("not all modems opened their link in time");
    let opened = start.elapsed();
    let rss_open = wsat.proc.peak_rss_kib();
    timeout(PHASE, all_echoed.wait())
        .await
        .expect("not all modems echoed in time");
    let echoed = start.elapsed();
    for task in tasks {
        timeout(PHASE, task)
            .await
            .expect("a modem did not close in time")
            .expect("a modem failed");
    }
    let closed = start.elapsed();
    println!(
        "{MODEMS} modems: all links open after {opened:.2?}, all echoed after {echoed:.2?}, \
         all closed after {closed:.2?}; wsat peak RSS {rss_open} KiB with all open \
         ({} KiB per modem)",
        rss_open / MODEMS as u64
    );
}
