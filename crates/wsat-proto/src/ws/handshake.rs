//! The client's opening handshake (RFC 6455 §4.1).
use alloc::string::String;
use alloc::vec::Vec;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::uri::WsUri;

/// RFC 6455 §1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest response header block we accept.
const MAX_RESPONSE: usize = 8 * 1024;
/// Header slots for httparse; more headers than this count as too large.
const MAX_HEADERS: usize = 64;

/// What goes into the handshake request besides the fixed headers.
pub struct RequestParams<'a> {
    /// Where the request goes (host, port, resource, credentials).
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
pub fn build_request(params: &RequestParams<'_>) -> (Vec<u8>, String) {
    let uri = params.uri;
    let key = B64.encode(params.key);
    let mut out = Vec::with_capacity(256);
    let mut line = |parts: &[&[u8]]| {
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"\r\n");
    };

    line(&[b"GET ", uri.resource.as_bytes(), b" HTTP/1.1"]);
    let mut digits = itoa::Buffer::new();
    let port = digits.format(uri.port).as_bytes();
    if uri.host.contains(':') {
        line(&[b"Host: [", uri.host.as_bytes(), b"]:", port]);
    } else {
        line(&[b"Host: ", uri.host.as_bytes(), b":", port]);
    }
    line(&[b"Upgrade: websocket"]);
    line(&[b"Connection: Upgrade"]);
    line(&[b"Sec-WebSocket-Key: ", key.as_bytes()]);
    line(&[b"Sec-WebSocket-Version: 13"]);
    if let Some(sp) = params.subprotocol {
        line(&[b"Sec-WebSocket-Protocol: ", sp]);
    }
    let auth = params
        .authorization
        .or(uri.basic_auth.as_ref().map(|a| a.as_bytes()));
    if let Some(auth) = auth {
        line(&[b"Authorization: ", auth]);
    }
    let mut has_user_agent = false;
    for h in params.extra_headers {
        // AT+WSHEAD guarantees a ':'; anything else cannot be a header line.
        let Some(colon) = h.iter().position(|&b| b == b':') else {
            continue;
        };
        let (k, v) = h.split_at(colon);
        let k = k.trim_ascii();
        let v = v.get(1..).unwrap_or_default();
        let v = match v.iter().position(|&b| b != b' ' && b != b'\t') {
            Some(i) => v.get(i..).unwrap_or_default(),
            None => &[],
        };
        has_user_agent |= k.eq_ignore_ascii_case(b"User-Agent");
        line(&[k, b": ", v]);
    }
    if !has_user_agent {
        line(&[b"User-Agent: ", params.user_agent.as_bytes()]);
    }
    line(&[]);

    (out, accept_key(key.as_bytes()))
}

/// `base64(SHA-1(key_b64 + GUID))`.
pub fn accept_key(key_b64: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key_b64);
    sha.update(GUID);
    B64.encode(sha.finalize())
}

/// Why a server's handshake response was refused.
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
    /// The server chose a subprotocol we did not offer (or named several).
    BadSubprotocol,
    /// The server enabled an extension we did not offer.
    UnexpectedExtension,
    /// The header block is larger than we accept (8 KiB).
    TooLarge,
}

impl core::fmt::Display for HandshakeError {
    /// `HTTP 404`, `no Sec-WebSocket-Accept or a wrong one`, ...
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HandshakeError::Malformed => f.write_str("not an HTTP/1.1 response"),
            HandshakeError::Status(code) => write!(f, "HTTP {code}"),
            HandshakeError::NotUpgrade => {
                f.write_str("no Upgrade: websocket / Connection: upgrade")
            }
            HandshakeError::BadAccept => f.write_str("no Sec-WebSocket-Accept or a wrong one"),
            HandshakeError::BadSubprotocol => f.write_str("a subprotocol that was not offered"),
            HandshakeError::UnexpectedExtension => f.write_str("an extension that was not offered"),
            HandshakeError::TooLarge => f.write_str("response head over 8 KiB"),
        }
    }
}

/// Checks the server's response in `buf` (all bytes received so far).
/// `Ok(None)`: incomplete, feed more. `Ok(Some(n))`: valid; the first `n`
/// bytes were the response, anything after belongs to the first frame.
pub fn parse_response(
    buf: &[u8],
    expected_accept: &str,
    subprotocol: Option<&[u8]>,
) -> Result<Option<usize>, HandshakeError> {
    let head = buf.get(..MAX_RESPONSE).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        // Whatever follows could only make the block longer than the limit.
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    // 101 exists only in HTTP/1.1.
    if resp.version != Some(1) {
        return Err(HandshakeError::Malformed);
    }
    let code = resp.code.ok_or(HandshakeError::Malformed)?;
    if code != 101 {
        return Err(HandshakeError::Status(code));
    }

    let values = |name: &'static str| {
        resp.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };

    let upgrade = values("Upgrade").any(|v| v.eq_ignore_ascii_case(b"websocket"));
    let connection = values("Connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    if !upgrade || !connection {
        return Err(HandshakeError::NotUpgrade);
    }

    let mut accept = values("Sec-WebSocket-Accept");
    match (accept.next(), accept.next()) {
        (Some(a), None) if a == expected_accept.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }

    let mut proto = values("Sec-WebSocket-Protocol");
    let chosen = (proto.next(), proto.next());
    let proto_ok = match (subprotocol, chosen) {
        // RFC 6455 §4.1 only forbids a protocol we did not offer; a server
        // that ignores our offer is accepted, as ESP's client accepts it.
        (_, (None, _)) => true,
        (Some(offered), (Some(got), None)) => {
            // A single offer is matched exactly; a comma-separated offer
            // (several protocols in one string) lets the server pick one.
            let offered = offered.trim_ascii();
            got == offered
                || offered
                    .split(|&b| b == b',')
                    .any(|t| !got.is_empty() && t.trim_ascii() == got)
        }
        _ => false,
    };
    if !proto_ok {
        return Err(HandshakeError::BadSubprotocol);
    }

    // We offer none, so any is unexpected.
    if values("Sec-WebSocket-Extensions").next().is_some() {
        return Err(HandshakeError::UnexpectedExtension);
    }

    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::uri::parse_ws_uri;
    use alloc::format;
    use alloc::vec;

    const SAMPLE_KEY: [u8; 16] = *b"the sample nonce";

    fn params<'a>(uri: &'a WsUri, extra: &'a [Vec<u8>]) -> RequestParams<'a> {
        RequestParams {
            uri,
            key: SAMPLE_KEY,
            subprotocol: None,
            authorization: None,
            extra_headers: extra,
            user_agent: "wsat",
        }
    }

    fn text(b: &[u8]) -> &str {
        core::str::from_utf8(b).unwrap()
    }

    #[test]
    fn rfc_sample_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(B64.encode(SAMPLE_KEY), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn minimal_request_bytes() {
        let uri = parse_ws_uri("ws://example.com/chat?x=1#f").unwrap();
        let (req, accept) = build_request(&params(&uri, &[]));
        assert_eq!(
            text(&req),
            "GET /chat?x=1 HTTP/1.1\r\n\
             Host: example.com:80\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             User-Agent: wsat\r\n\
             \r\n"
        );
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn full_request_bytes() {
        let uri = parse_ws_uri("wss://u:p@[::1]:9000").unwrap();
        let extra = vec![
            b"X-One:1".to_vec(),
            b"  X-Two :  \t two words ".to_vec(),
            b"X-Empty:".to_vec(),
            b"no colon here".to_vec(),
        ];
        let mut p = params(&uri, &extra);
        p.subprotocol = Some(b"chat");
        let (req, _) = build_request(&p);
        assert_eq!(
            text(&req),
            "GET / HTTP/1.1\r\n\
             Host: [::1]:9000\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Authorization: Basic dTpw\r\n\
             X-One: 1\r\n\
             X-Two: two words \r\n\
             X-Empty: \r\n\
             User-Agent: wsat\r\n\
             \r\n"
        );
    }

    #[test]
    fn explicit_authorization_overrides_uri() {
        let uri = parse_ws_uri("ws://u:p@h").unwrap();
        let mut p = params(&uri, &[]);
        p.authorization = Some(b"Bearer abc");
        let (req, _) = build_request(&p);
        let req = text(&req);
        assert!(req.contains("\r\nAuthorization: Bearer abc\r\n"), "{req}");
        assert!(!req.contains("Basic"));
    }

    #[test]
    fn extra_user_agent_replaces_ours() {
        let uri = parse_ws_uri("ws://h").unwrap();
        let extra = vec![b"user-agent: mine".to_vec()];
        let (req, _) = build_request(&params(&uri, &extra));
        let req = text(&req);
        assert!(req.ends_with("\r\nuser-agent: mine\r\n\r\n"), "{req}");
        assert!(!req.contains("wsat"));
    }

    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn accepts_valid_response_and_reports_its_length() {
        let r = response("");
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Ok(Some(r.len()))
        );
        // Bytes after the header belong to the first frame.
        let mut with_frame = r.clone().into_bytes();
        with_frame.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        assert_eq!(parse_response(&with_frame, ACCEPT, None), Ok(Some(r.len())));
    }

    #[test]
    fn partial_responses_ask_for_more() {
        let r = response("");
        for i in 0..r.len() {
            assert_eq!(
                parse_response(&r.as_bytes()[..i], ACCEPT, None),
                Ok(None),
                "{i}"
            );
        }
    }

    #[test]
    fn case_and_lists_in_upgrade_headers() {
        let r = "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE \r\n\
                 sec-websocket-accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n\r\n";
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Ok(Some(r.len()))
        );
    }

    #[test]
    fn status_errors() {
        let r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Err(HandshakeError::Status(404))
        );
        let r = "HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Err(HandshakeError::Status(200))
        );
    }

    #[test]
    fn malformed() {
        for r in [
            "FOO\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.0 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 101 X\r\nbad header\r\n\r\n",
            "\0\0\0\0",
        ] {
            assert_eq!(
                parse_response(r.as_bytes(), ACCEPT, None),
                Err(HandshakeError::Malformed),
                "{r:?}"
            );
        }
    }

    #[test]
    fn not_upgrade() {
        let cases = [
            "HTTP/1.1 101 X\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n",
            "HTTP/1.1 101 X\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.1 101 X\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n",
        ];
        for r in cases {
            assert_eq!(
                parse_response(r.as_bytes(), ACCEPT, None),
                Err(HandshakeError::NotUpgrade),
                "{r:?}"
            );
        }
    }

    #[test]
    fn bad_accept() {
        let base = "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        for extra in [
            "",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n",
            "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n",
            // Twice, even if one is right.
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: x\r\n",
        ] {
            let r = format!("{base}{extra}\r\n");
            assert_eq!(
                parse_response(r.as_bytes(), ACCEPT, None),
                Err(HandshakeError::BadAccept),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn subprotocols() {
        let with = response("Sec-WebSocket-Protocol: chat\r\n");
        let with = with.as_bytes();
        let without = response("");
        let without = without.as_bytes();
        assert_eq!(
            parse_response(with, ACCEPT, Some(b"chat")),
            Ok(Some(with.len()))
        );
        assert_eq!(
            parse_response(with, ACCEPT, Some(b"superchat, chat")),
            Ok(Some(with.len()))
        );
        let bad = Err(HandshakeError::BadSubprotocol);
        assert_eq!(parse_response(with, ACCEPT, None), bad);
        assert_eq!(parse_response(with, ACCEPT, Some(b"other")), bad);
        assert_eq!(parse_response(with, ACCEPT, Some(b"Chat")), bad);
        assert_eq!(
            parse_response(without, ACCEPT, Some(b"chat")),
            Ok(Some(without.len()))
        );
        let twice = response("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n");
        assert_eq!(parse_response(twice.as_bytes(), ACCEPT, Some(b"chat")), bad);
        let empty = response("Sec-WebSocket-Protocol: \r\n");
        assert_eq!(parse_response(empty.as_bytes(), ACCEPT, Some(b"a,")), bad);
    }

    #[test]
    fn extensions_are_refused() {
        let r = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Err(HandshakeError::UnexpectedExtension)
        );
    }

    #[test]
    fn size_limits() {
        // A block that completes exactly at the limit is fine.
        let base = response("");
        let pad = MAX_RESPONSE - base.len() - "X-Pad: \r\n".len();
        let r = response(&format!("X-Pad: {}\r\n", "a".repeat(pad)));
        assert_eq!(r.len(), MAX_RESPONSE);
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Ok(Some(r.len()))
        );
        // One byte more is too large, and so is an unfinished block at the limit.
        let r = response(&format!("X-Pad: {}\r\n", "a".repeat(pad + 1)));
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Err(HandshakeError::TooLarge)
        );
        assert_eq!(
            parse_response(&r.as_bytes()[..MAX_RESPONSE], ACCEPT, None),
            Err(HandshakeError::TooLarge)
        );
        assert_eq!(
            parse_response(&r.as_bytes()[..MAX_RESPONSE - 1], ACCEPT, None),
            Ok(None)
        );
        // Too many headers.
        let r = response(&"X: y\r\n".repeat(MAX_HEADERS));
        assert_eq!(
            parse_response(r.as_bytes(), ACCEPT, None),
            Err(HandshakeError::TooLarge)
        );
    }
}
