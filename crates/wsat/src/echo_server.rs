//! A WebSocket echo server (tungstenite, an implementation independent of
//! ours): text comes back as text, binary as binary.
use std::io;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// Serves connections on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = echo(stream).await {
                tracing::debug!(%peer, %error, "echo connection ended");
            }
        });
    }
}

/// Binds `addr` and prints `listening on <addr>` to stderr once bound.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    // The same deep accept queue as the modem's, for bursts of clients.
    let listener = crate::transport::tcp_listener(addr)?;
    eprintln!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

async fn echo(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(message) = ws.next().await {
        // Pings are answered and close handshakes completed by tungstenite.
        if let message @ (Message::Text(_) | Message::Binary(_)) = message? {
            ws.send(message).await?;
        }
    }
    Ok(())
}
