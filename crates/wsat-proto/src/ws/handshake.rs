//! The client's opening handshake (RFC 6455 §4.1).
use alloc::string::String;
use alloc::vec::Vec;

use super::uri::WsUri;

/// What goes into the handshake request besides the fixed headers.
pub struct RequestParams<'a> {
    pub uri: &'a WsUri,
    /// 16 random bytes; sent base64-encoded as `Sec-WebSocket-Key`.
    pub key: [u8; 16],
    /// `Sec-WebSocket-Protocol`, when given.
    pub subprotocol: Option<&'a [u8]>,
    /// Sent verbatim as the `Authorization` value; overrides `uri.basic_auth`.
    pub authorization: Option<&'a [u8]>,
    /// Global headers from `AT+WSHEAD`, raw `key:value` bytes, in the order set.
    pub extra_headers: &'a [Vec<u8>],
    /// `User-Agent` value, unless an extra header names one.
    pub user_agent: &'a str,
}

/// Builds the request bytes and returns them with the expected `Sec-WebSocket-Accept`.
pub fn build_request(_params: &RequestParams<'_>) -> (Vec<u8>, String) {
    todo!("ws helper")
}

/// `base64(SHA-1(key_b64 + GUID))`.
pub fn accept_key(_key_b64: &[u8]) -> String {
    todo!("ws helper")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not a parseable HTTP/1.1 response.
    Malformed,
    /// Status other than 101 (the code).
    Status(u16),
    /// Missing or wrong `Upgrade: websocket` / `Connection: upgrade`.
    NotUpgrade,
    /// Missing or wrong `Sec-WebSocket-Accept`.
    BadAccept,
    /// The server chose a subprotocol we did not offer, or none when we offered one.
    BadSubprotocol,
    /// The server enabled an extension we did not offer.
    UnexpectedExtension,
    /// The header block is larger than we accept (8 KiB).
    TooLarge,
}

/// Checks the server's response in `buf` (all bytes received so far).
/// `Ok(None)`: incomplete, feed more. `Ok(Some(n))`: valid; the first `n`
/// bytes were the response, anything after belongs to the first frame.
pub fn parse_response(
    _buf: &[u8],
    _expected_accept: &str,
    _subprotocol: Option<&[u8]>,
) -> Result<Option<usize>, HandshakeError> {
    todo!("ws helper")
}
