//! The relay, run as a process of its own (`wsat-bench relay --upstream
//! ADDR`): the one hop the modem adds to the receive path, with no work of
//! its own. Every accepted connection is joined to a new connection to the
//! upstream, and bytes are copied both ways (tokio's copy, 64 KiB buffers,
//! TCP_NODELAY on both sockets) until either side closes.
//!
//! It prints `relay <addr>` on stdout once listening.
use std::io::Write as _;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Bytes per read in each direction; the modem reads 16 KiB at a time, so
/// this is no smaller than what it works with.
const BUF_SIZE: usize = 64 * 1024;

pub fn run(upstream: SocketAddr) -> anyhow::Result<()> {
    // The same runtime as the modem and the server: one worker per CPU the
    // process may use (one when pinned).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(upstream))
}

async fn serve(upstream: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "relay {}", listener.local_addr()?)?;
        stdout.flush()?;
    }
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = forward(client, upstream).await;
        });
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUF_SIZE, BUF_SIZE).await?;
    Ok(())
}
