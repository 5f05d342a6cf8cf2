//! `ws://` and `wss://` URIs as `AT+WSOPEN` takes them.
use alloc::string::String;

/// A parsed WebSocket URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUri {
    /// `wss://`.
    pub tls: bool,
    /// Host name or IP address as it goes to DNS / the socket (IPv6 without brackets).
    pub host: String,
    /// Explicit port, else 80 (`ws`) / 443 (`wss`).
    pub port: u16,
    /// Path and query for the request line: `/` when empty, `?query` kept.
    pub resource: String,
    /// `user:pass@` in the URI, as the value of a Basic `Authorization` header
    /// (`Basic <base64(user:pass)>`), percent-decoding applied first.
    pub basic_auth: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriError {
    /// Not a URI at all.
    Malformed,
    /// A scheme other than ws/wss (case-insensitive).
    UnsupportedScheme,
    /// No host.
    MissingHost,
}

/// Parses a `ws://` / `wss://` URI (scheme case-insensitive). Fragments are dropped.
pub fn parse_ws_uri(_uri: &str) -> Result<WsUri, UriError> {
    todo!("ws helper")
}
