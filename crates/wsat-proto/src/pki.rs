//! Names of the certificate store's entries, as ESP-AT spells them.
//!
//! The store has three namespaces, each holding entries `<namespace>.<n>`
//! (`wss_ca.0`, `wss_cert.12`). Both the modem and every store check names
//! with these functions, so a name that reaches a store is always one of a
//! small, fixed shape: nothing a file system could read as a path.
use alloc::format;
use alloc::string::String;

/// Client certificates (`AT+WSCFG` auth modes 1 and 3).
pub const CERT: &str = "wss_cert";
/// Client private keys (modes 1 and 3).
pub const KEY: &str = "wss_key";
/// CA certificates to verify servers against (modes 2 and 3).
pub const CA: &str = "wss_ca";
/// The SSL client's certificates, keys and CAs (`AT+CIPSSLCCONF`).
pub const CLIENT_CERT: &str = "client_cert";
/// The SSL client's private keys.
pub const CLIENT_KEY: &str = "client_key";
/// The SSL client's CA certificates.
pub const CLIENT_CA: &str = "client_ca";
/// Every namespace, in the order `AT+SYSMFG?` lists them.
pub const NAMESPACES: [&str; 6] = [CERT, KEY, CA, CLIENT_CERT, CLIENT_KEY, CLIENT_CA];

/// Where one kind of TLS client finds its material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// Client certificates.
    pub cert: &'static str,
    /// Their private keys.
    pub key: &'static str,
    /// CA certificates.
    pub ca: &'static str,
}

/// The WebSocket client's (`AT+WSCFG`).
pub const WSS: Namespaces = Namespaces {
    cert: CERT,
    key: KEY,
    ca: CA,
};
/// The SSL socket client's (`AT+CIPSSLCCONF`).
pub const CLIENT: Namespaces = Namespaces {
    cert: CLIENT_CERT,
    key: CLIENT_KEY,
    ca: CLIENT_CA,
};

/// Highest entry index: `AT+WSCFG` takes pki and CA numbers in `0..=255`.
pub const MAX_INDEX: u8 = u8::MAX;
/// Largest entry `AT+SYSMFG` writes, in bytes; a long chain fits easily.
pub const MAX_ENTRY_LEN: usize = 64 * 1024;

/// The namespace named `name`, if it is one of ours.
pub fn namespace(name: &[u8]) -> Option<&'static str> {
    NAMESPACES.iter().copied().find(|ns| ns.as_bytes() == name)
}

/// The index `n` of `key` if it is `<namespace>.<n>`, with `n` written in
/// decimal without leading zeros and at most [`MAX_INDEX`].
pub fn key_index(namespace: &str, key: &[u8]) -> Option<u8> {
    if !NAMESPACES.contains(&namespace) {
        return None;
    }
    let digits = key.strip_prefix(namespace.as_bytes())?.strip_prefix(b".")?;
    let canonical = match digits {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.len() <= 2 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    u8::try_from(value).ok()
}

/// The key of entry `index` of `namespace`: `wss_ca.0`.
pub fn key(namespace: &str, index: u8) -> String {
    format!("{namespace}.{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(namespace(b"wss_ca"), Some(CA));
        assert_eq!(namespace(b"client_ca"), Some(CLIENT_CA));
        assert_eq!(namespace(b"server_ca"), None);
        assert_eq!(key_index(CA, b"wss_ca.0"), Some(0));
        assert_eq!(key_index(CERT, b"wss_cert.255"), Some(255));
        assert_eq!(key(KEY, 7), "wss_key.7");
        for bad in [
            &b"wss_ca.256"[..],
            b"wss_ca.00",
            b"wss_ca.01",
            b"wss_ca.",
            b"wss_ca",
            b"wss_ca.1a",
            b"wss_ca.-1",
            b"wss_ca.1/../x",
            b"wss_cert.0",
            b"../wss_ca.0",
            b"wss_ca.1000",
        ] {
            assert_eq!(key_index(CA, bad), None, "{bad:?}");
        }
        assert_eq!(key_index("other", b"other.0"), None);
    }
}
