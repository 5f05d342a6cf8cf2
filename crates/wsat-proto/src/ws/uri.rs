//! `ws://` and `wss://` URIs as `AT+WSOPEN` takes them.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use url::{Host, Url};

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

/// Why a URI was refused.
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
pub fn parse_ws_uri(uri: &str) -> Result<WsUri, UriError> {
    // The same trimming the url crate applies, so our scheme check sees what it sees.
    let uri = uri.trim_matches(|c: char| c <= ' ');
    // Check the scheme ourselves: the url crate would report e.g. `http://`
    // as an empty host rather than as the wrong scheme.
    let (scheme, rest) = uri.split_once(':').ok_or(UriError::Malformed)?;
    if !is_scheme(scheme) {
        return Err(UriError::Malformed);
    }
    let tls = if scheme.eq_ignore_ascii_case("ws") {
        false
    } else if scheme.eq_ignore_ascii_case("wss") {
        true
    } else {
        return Err(UriError::UnsupportedScheme);
    };
    // The url crate accepts `ws:host`; a WebSocket URI needs the authority.
    let Some(authority) = rest.strip_prefix("//") else {
        return Err(UriError::Malformed);
    };
    // The url crate skips extra slashes, reading `ws:///path` as host `path`.
    if authority.starts_with(['/', '\\']) {
        return Err(UriError::MissingHost);
    }

    let url = Url::parse(uri).map_err(|e| match e {
        url::ParseError::EmptyHost => UriError::MissingHost,
        _ => UriError::Malformed,
    })?;
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Ipv6(a)) => a.to_string(),
        _ => return Err(UriError::MissingHost),
    };
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });

    let mut resource = String::from(url.path());
    if resource.is_empty() {
        resource.push('/');
    }
    if let Some(q) = url.query() {
        resource.push('?');
        resource.push_str(q);
    }

    let basic_auth = match (url.username(), url.password()) {
        ("", None) => None,
        (user, pass) => {
            let mut cred = percent_decode(user);
            cred.push(b':');
            cred.extend_from_slice(&percent_decode(pass.unwrap_or("")));
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(cred)
            ))
        }
    };

    Ok(WsUri {
        tls,
        host,
        port,
        resource,
        basic_auth,
    })
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// `%XX` → byte; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> WsUri {
        parse_ws_uri(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn uri(tls: bool, host: &str, port: u16, resource: &str) -> WsUri {
        WsUri {
            tls,
            host: host.into(),
            port,
            resource: resource.into(),
            basic_auth: None,
        }
    }

    #[test]
    fn defaults_and_explicit_ports() {
        assert_eq!(ok("ws://example.com"), uri(false, "example.com", 80, "/"));
        assert_eq!(ok("wss://example.com"), uri(true, "example.com", 443, "/"));
        assert_eq!(
            ok("ws://example.com:8080/"),
            uri(false, "example.com", 8080, "/")
        );
        assert_eq!(
            ok("wss://example.com:8443/a"),
            uri(true, "example.com", 8443, "/a")
        );
        // The default port written out is still that port.
        assert_eq!(ok("ws://h:80/").port, 80);
        assert_eq!(ok("wss://h:443/").port, 443);
        assert_eq!(ok("ws://h:443/").port, 443);
        assert_eq!(ok("wss://h:80/").port, 80);
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(ok("WS://h/x"), uri(false, "h", 80, "/x"));
        assert_eq!(ok("WsS://h/x"), uri(true, "h", 443, "/x"));
    }

    #[test]
    fn path_and_query() {
        assert_eq!(ok("ws://h/a/b?x=1&y=2").resource, "/a/b?x=1&y=2");
        assert_eq!(ok("ws://h?x=1").resource, "/?x=1");
        assert_eq!(ok("ws://h:81?x=1").resource, "/?x=1");
        assert_eq!(ok("ws://h/p#frag").resource, "/p");
        assert_eq!(ok("ws://h/p?q#frag").resource, "/p?q");
        assert_eq!(ok("ws://h#frag").resource, "/");
        assert_eq!(ok("ws://h/").resource, "/");
    }

    #[test]
    fn ip_hosts() {
        assert_eq!(ok("ws://[::1]:9000/x"), uri(false, "::1", 9000, "/x"));
        assert_eq!(
            ok("wss://[2001:db8::1]"),
            uri(true, "2001:db8::1", 443, "/")
        );
        assert_eq!(
            ok("ws://127.0.0.1:1234"),
            uri(false, "127.0.0.1", 1234, "/")
        );
    }

    #[test]
    fn host_is_lowercased() {
        assert_eq!(ok("ws://Example.COM/").host, "example.com");
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let u = ok("ws://user:pass@h/");
        assert_eq!(u.host, "h");
        // base64("user:pass")
        assert_eq!(u.basic_auth.as_deref(), Some("Basic dXNlcjpwYXNz"));
        // Percent-decoded first: "us er:p@ss:"
        let u = ok("ws://us%20er:p%40ss%3A@h/");
        assert_eq!(u.basic_auth.as_deref(), Some("Basic dXMgZXI6cEBzczo="));
        // User without password: "user:"
        assert_eq!(
            ok("ws://user@h/").basic_auth.as_deref(),
            Some("Basic dXNlcjo=")
        );
        // Password without user: ":pw"
        assert_eq!(ok("ws://:pw@h/").basic_auth.as_deref(), Some("Basic OnB3"));
        assert_eq!(ok("ws://h/").basic_auth, None);
    }

    #[test]
    fn errors() {
        for s in [
            "http://h/",
            "https://h",
            "ftp://h",
            "localhost:8080",
            "wsx://h",
        ] {
            assert_eq!(parse_ws_uri(s), Err(UriError::UnsupportedScheme), "{s}");
        }
        for s in [
            "ws://",
            "wss://",
            "ws:///",
            "ws:///path",
            "ws://:80/",
            "ws://user@/",
            "ws://?x",
        ] {
            assert_eq!(parse_ws_uri(s), Err(UriError::MissingHost), "{s}");
        }
        for s in [
            "",
            "   ",
            "example.com",
            "/path",
            "://h",
            "1ws://h",
            "ws:h",
            "ws:/h",
            "ws://h:99999/",
            "ws://h:x/",
            "ws://[::1/",
            "ws://[zz]/",
            "ws://a b/",
        ] {
            assert_eq!(parse_ws_uri(s), Err(UriError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn percent_decode_edges() {
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
        assert_eq!(percent_decode("%ff"), [0xff]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "ws://\u{0}",
            "ws://é/",
            "ws://[::]:0",
            "ws://%zz/",
            "wss://a:b:c@d:e",
            "ws://xn--/",
        ] {
            let _ = parse_ws_uri(s);
        }
    }
}
