//! TLS for `wss://` links, as the [`TlsPolicy`] the core made of the
//! `AT+WSCFG` auth mode says, over rustls (ring).
//!
//! | mode | server certificate | client certificate |
//! |---|---|---|
//! | 0 | not verified | none |
//! | 1 | not verified | `wss_cert.<pki>` + `wss_key.<pki>` |
//! | 2 | chain verified against `wss_ca.<ca>` | none |
//! | 3 | chain verified against `wss_ca.<ca>` | `wss_cert.<pki>` + `wss_key.<pki>` |
//!
//! What this does and does not protect against:
//! - Modes 0 and 1 encrypt, but anyone on the path can pose as the server
//!   (like ESP-AT, which sets no CA in these modes). The handshake's
//!   signatures are still checked, so the peer must hold the key of the
//!   certificate it shows, whatever that certificate is.
//! - Modes 2 and 3 accept only a server whose chain leads to the given CA,
//!   within its validity period. The host name is not compared with the
//!   certificate unless [`TlsOptions::verify_hostname`] is set (ESP-AT does
//!   not compare it either): without it, any server holding a certificate
//!   from that CA can pose as any other. With a private CA that issues only
//!   your servers' certificates that is usually acceptable; with a public
//!   CA it is not, so turn host-name checking on.
//! - As with mbedTLS, a self-signed server certificate stored as its own CA
//!   (what `openssl req -x509` makes) is accepted in modes 2 and 3, within
//!   its validity period.
//! - Modes 1 and 3 prove the client's identity to a server that asks.
//! - Revocation (CRL, OCSP) is not checked in any mode.
//!
//! Material is PEM (several certificates may follow each other: a chain, or
//! several CAs); a value without a PEM header is read as one DER object, as
//! mbedTLS in ESP-AT would.
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use wsat_proto::{ServerVerification, TlsPolicy};

/// Choices the command line makes for every TLS link.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Modes 2 and 3 also require the server's certificate to name the host
    /// (`--tls-verify-hostname`). ESP-AT does not check it.
    pub verify_hostname: bool,
}

/// Runs the TLS handshake on `tcp` as `policy` says, for server `host` (a
/// DNS name, sent as SNI, or an IP address, not sent).
///
/// Not bounded in time: the caller races it against its connect timeout.
/// With TLS 1.3 a server's refusal of the client (no or wrong client
/// certificate) arrives after the handshake, so it shows up as an error on
/// the first read rather than here.
pub(crate) async fn connect(
    tcp: TcpStream,
    host: &str,
    policy: &TlsPolicy,
    options: &TlsOptions,
) -> io::Result<TlsStream<TcpStream>> {
    let (config, server_name) = client_config(host, policy, options)?;
    TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
}

/// The rustls configuration and server name for one connection.
fn client_config(
    host: &str,
    policy: &TlsPolicy,
    options: &TlsOptions,
) -> io::Result<(ClientConfig, ServerName<'static>)> {
    let provider = Arc::new(crypto::ring::default_provider());
    // `AT+CIPSSLCCN` asks for the name check whatever the default is.
    let verifies_name = options.verify_hostname || policy.common_name.is_some();
    let verifier: Arc<dyn ServerCertVerifier> = match &policy.server {
        ServerVerification::None => Arc::new(NoServerVerification {
            algorithms: provider.signature_verification_algorithms,
        }),
        ServerVerification::Ca(ca) => {
            let ca = material(ca, "CA certificate")?;
            chain_verifier(ca, provider.clone(), verifies_name)?
        }
    };
    let compares_name = verifies_name && matches!(policy.server, ServerVerification::Ca(_));
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &policy.client {
        Some(identity) => {
            let chain = certificates(material(&identity.cert, "client certificate")?)
                .map_err(|e| invalid(format!("client certificate: {e}")))?;
            let key = private_key(material(&identity.key, "client private key")?)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("client certificate and key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = policy.alpn.clone();
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = key_log();
    }
    // One name is both sent (SNI) and checked: the configured one first.
    let host = policy
        .sni
        .as_deref()
        .or(policy.common_name.as_deref())
        .unwrap_or(host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            // Not a DNS name rustls accepts (`a..b`): connect without SNI
            // when nothing compares the name, as ESP-AT would.
            Err(_) if !compares_name => {
                config.enable_sni = false;
                ServerName::try_from("invalid").expect("a valid DNS name")
            }
            Err(e) => return Err(invalid(format!("{host:?} is not a TLS server name: {e}"))),
        },
    };
    Ok((config, server_name))
}

/// `SSLKEYLOGFILE`, as curl and browsers honour it: every TLS link's
/// secrets are appended to that file (NSS key log format), so a capture of
/// the real TLS traffic can be decrypted. One file for the process.
fn key_log() -> Arc<dyn rustls::KeyLog> {
    static KEY_LOG: OnceLock<Arc<rustls::KeyLogFile>> = OnceLock::new();
    KEY_LOG
        .get_or_init(|| Arc::new(rustls::KeyLogFile::new()))
        .clone()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `bytes`, unless empty (a store entry that holds nothing).
fn material<'a>(bytes: &'a [u8], what: &str) -> io::Result<&'a [u8]> {
    match bytes {
        [] => Err(invalid(format!("no {what}"))),
        bytes => Ok(bytes),
    }
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every certificate in `bytes`: PEM blocks in order, or one DER object.
fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if !is_pem(bytes) {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the PEM".into());
    }
    Ok(certs)
}

fn private_key(bytes: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    let key = if is_pem(bytes) {
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| e.to_string())
    } else {
        PrivateKeyDer::try_from(bytes.to_vec()).map_err(str::to_owned)
    };
    key.map_err(|e| invalid(format!("client private key: {e}")))
}

/// A verifier of the chain against `ca`; of the host name too if asked.
fn chain_verifier(
    ca: &[u8],
    provider: Arc<CryptoProvider>,
    verify_hostname: bool,
) -> io::Result<Arc<dyn ServerCertVerifier>> {
    let anchors = certificates(ca).map_err(|e| invalid(format!("CA certificate: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in &anchors {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(format!("CA certificate: {e}")))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| invalid(format!("CA certificate: {e}")))?;
    Ok(Arc::new(CaVerifier {
        webpki,
        anchors,
        verify_hostname,
    }))
}

/// Modes 0 and 1: any certificate, but the handshake signatures must be
/// made with its key (so the session really is with its holder).
#[derive(Debug)]
struct NoServerVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Modes 2 and 3: webpki's verification against the CA entry, with two
/// differences that make it behave like ESP-AT (mbedTLS):
/// - Without `verify_hostname`, webpki's name-mismatch error is forgiven.
///   webpki compares the name last, after the chain, validity and usage
///   checks passed, so forgiving it skips nothing else.
/// - A server certificate byte-equal to one of the CA entry's certificates
///   is trusted as itself even when it says CA:TRUE (what `openssl req
///   -x509` makes), which webpki refuses as `CaUsedAsEndEntity`. Its
///   validity dates, and the name if asked, are still checked here; the
///   handshake signatures are checked against its key as for any other.
#[derive(Debug)]
struct CaVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The CA entry's certificates, DER.
    anchors: Vec<CertificateDer<'static>>,
    verify_hostname: bool,
}

impl CaVerifier {
    /// The checks for a server certificate that is one of the anchors.
    fn verify_anchor_itself(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let bad = |error| rustls::Error::InvalidCertificate(error);
        let (not_before, not_after) =
            validity(end_entity).ok_or(bad(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < not_before {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > not_after {
            return Err(bad(CertificateError::Expired));
        }
        if self.verify_hostname {
            verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_hostname => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if is_ca_used_as_end_entity(&other)
                    && self
                        .anchors
                        .iter()
                        .any(|a| a.as_ref() == end_entity.as_ref()) =>
            {
                self.verify_anchor_itself(end_entity, server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki's refusal of a CA certificate as the server's own, which rustls
/// has no variant for: it passes the webpki error on boxed in `Other`.
fn is_ca_used_as_end_entity(error: &OtherError) -> bool {
    matches!(
        error.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// A DER certificate's validity period (notBefore, notAfter), in seconds
/// since the Unix epoch; `None` when it does not parse.
fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let validity = cert.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;
    use wsat_proto::ClientIdentity;
    use wsat_testkit::tls::{acceptor, BadServer, Ca, Leaf, Misbehaviour};

    use super::*;

    /// Every wait in these tests ends within this.
    const LIMIT: Duration = Duration::from_secs(10);
    /// What each test server sends once the handshake is done.
    const GREETING: &[u8] = b"hello";

    fn ca(name: &str) -> Ca {
        Ca::new(name)
    }

    /// A certificate and key for `names`, issued by `ca`.
    fn leaf(ca: &Ca, names: &[&str], expired: bool) -> Leaf {
        match expired {
            true => ca.issue_expired(names),
            false => ca.issue(names),
        }
    }

    /// A one-connection TLS server on 127.0.0.1 presenting `leaf`, asking
    /// for a client certificate from `client_ca` if given. Sends
    /// [`GREETING`] after the handshake; yields the SNI it received.
    async fn tls_server(
        leaf: &Leaf,
        client_ca: Option<&Ca>,
    ) -> (SocketAddr, JoinHandle<Option<String>>) {
        let acceptor = acceptor(leaf, client_ca);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tls = acceptor.accept(tcp).await.ok()?;
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let _ = tls.write_all(GREETING).await;
            let _ = tls.shutdown().await;
            sni
        });
        (addr, task)
    }

    /// Connects with `policy` and reads what the server sends. Ok only
    /// when the greeting arrived in full.
    async fn client(
        addr: SocketAddr,
        host: &str,
        policy: &TlsPolicy,
        options: &TlsOptions,
    ) -> io::Result<()> {
        let attempt = async {
            let tcp = TcpStream::connect(addr).await?;
            let mut tls = connect(tcp, host, policy, options).await?;
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await?;
            match got == GREETING {
                true => Ok(()),
                false => Err(io::Error::other(format!("got {got:?}"))),
            }
        };
        timeout(LIMIT, attempt).await.expect("TLS test hung")
    }

    /// Verifying the server against `ca` if given (modes 2 and 3), showing
    /// `client` if given (modes 1 and 3); PEM.
    fn policy(client: Option<&Leaf>, ca: Option<&Ca>) -> TlsPolicy {
        TlsPolicy {
            server: ca.map_or(ServerVerification::None, |c| {
                ServerVerification::Ca(c.pem.clone().into_bytes())
            }),
            client: client.map(|c| identity(c.cert_pem.as_bytes(), c.key_pem.as_bytes())),
            ..TlsPolicy::default()
        }
    }

    fn identity(cert: &[u8], key: &[u8]) -> ClientIdentity {
        ClientIdentity {
            cert: cert.to_vec(),
            key: key.to_vec(),
        }
    }

    const NO_HOSTNAME: TlsOptions = TlsOptions {
        verify_hostname: false,
    };
    const HOSTNAME: TlsOptions = TlsOptions {
        verify_hostname: true,
    };

    /// Runs one client against a fresh server; returns the client's result.
    async fn attempt(
        server: &Leaf,
        client_ca: Option<&Ca>,
        host: &str,
        policy: &TlsPolicy,
        options: &TlsOptions,
    ) -> io::Result<()> {
        let (addr, task) = tls_server(server, client_ca).await;
        let result = client(addr, host, policy, options).await;
        task.abort();
        result
    }

    fn assert_fails(result: io::Result<()>, needle: &str) {
        let err = result.expect_err("should have failed");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }

    #[tokio::test]
    async fn mode_0_connects_to_anything() {
        let ca = ca("test CA");
        for server in [
            leaf(&ca, &["localhost", "127.0.0.1"], false),
            leaf(&ca, &["elsewhere.example"], false),
            leaf(&ca, &["localhost"], true),
        ] {
            for options in [NO_HOSTNAME, HOSTNAME] {
                attempt(&server, None, "localhost", &policy(None, None), &options)
                    .await
                    .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn mode_2_verifies_the_chain() {
        let ca_right = ca("right CA");
        let ca_wrong = ca("wrong CA");
        let server = leaf(&ca_right, &["localhost", "127.0.0.1"], false);
        for host in ["localhost", "127.0.0.1"] {
            for options in [NO_HOSTNAME, HOSTNAME] {
                let p = policy(None, Some(&ca_right));
                attempt(&server, None, host, &p, &options).await.unwrap();
            }
        }
        let p = policy(None, Some(&ca_wrong));
        let result = attempt(&server, None, "localhost", &p, &NO_HOSTNAME).await;
        assert_fails(result, "UnknownIssuer");
        let expired = leaf(&ca_right, &["localhost"], true);
        let p = policy(None, Some(&ca_right));
        let result = attempt(&expired, None, "localhost", &p, &NO_HOSTNAME).await;
        assert_fails(result, "xpired");
    }

    #[tokio::test]
    async fn mode_2_checks_the_host_name_only_when_asked() {
        let ca = ca("test CA");
        let other = leaf(&ca, &["elsewhere.example"], false);
        let p = policy(None, Some(&ca));
        attempt(&other, None, "localhost", &p, &NO_HOSTNAME)
            .await
            .unwrap();
        attempt(&other, None, "127.0.0.1", &p, &NO_HOSTNAME)
            .await
            .unwrap();
        let result = attempt(&other, None, "localhost", &p, &HOSTNAME).await;
        assert_fails(result, "not valid for name");
        let result = attempt(&other, None, "127.0.0.1", &p, &HOSTNAME).await;
        assert_fails(result, "not valid for name");
        // Forgiving the name forgives nothing else: wrong CA and wrong name.
        let stranger = leaf(&self::ca("stranger"), &["elsewhere.example"], false);
        let result = attempt(&stranger, None, "localhost", &p, &NO_HOSTNAME).await;
        assert_fails(result, "UnknownIssuer");
    }

    #[tokio::test]
    async fn client_certificates_for_a_server_that_demands_one() {
        let ca = ca("test CA");
        let server = leaf(&ca, &["localhost"], false);
        let client_leaf = leaf(&ca, &["client.example"], false);
        for (mode, cert_ca) in [(1, None), (3, Some(&ca))] {
            let p = policy(Some(&client_leaf), cert_ca);
            attempt(&server, Some(&ca), "localhost", &p, &NO_HOSTNAME)
                .await
                .unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        }
        for (mode, cert_ca) in [(0, None), (2, Some(&ca))] {
            let p = policy(None, cert_ca);
            let result = attempt(&server, Some(&ca), "localhost", &p, &NO_HOSTNAME).await;
            assert!(result.is_err(), "mode {mode} without a client certificate");
        }
        // A certificate the server's CA did not issue.
        let foreign = leaf(&self::ca("other CA"), &["client.example"], false);
        let p = policy(Some(&foreign), None);
        let result = attempt(&server, Some(&ca), "localhost", &p, &NO_HOSTNAME).await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn sni_for_names_not_for_addresses() {
        let ca = ca("test CA");
        let server = leaf(&ca, &["localhost", "127.0.0.1"], false);
        for (host, sni) in [("localhost", Some("localhost")), ("127.0.0.1", None)] {
            let (addr, task) = tls_server(&server, None).await;
            client(addr, host, &policy(None, None), &NO_HOSTNAME)
                .await
                .unwrap();
            let got = timeout(LIMIT, task).await.unwrap().unwrap();
            assert_eq!(got.as_deref(), sni, "{host}");
        }
    }

    #[tokio::test]
    async fn material_in_crlf_pem_or_der_works() {
        let ca = ca("test CA");
        let server = leaf(&ca, &["localhost"], false);
        let client_leaf = leaf(&ca, &["client"], false);
        let crlf = |s: &str| s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes();
        let variants = [
            TlsPolicy {
                server: ServerVerification::Ca(crlf(&ca.pem)),
                client: Some(identity(
                    &crlf(&client_leaf.cert_pem),
                    &crlf(&client_leaf.key_pem),
                )),
                ..TlsPolicy::default()
            },
            TlsPolicy {
                server: ServerVerification::Ca(ca.der.to_vec()),
                client: Some(identity(&client_leaf.cert, client_leaf.key.secret_der())),
                ..TlsPolicy::default()
            },
        ];
        for p in variants {
            attempt(&server, Some(&ca), "localhost", &p, &NO_HOSTNAME)
                .await
                .unwrap();
        }
        // Several CAs in one entry: any of them may have issued the server's.
        let mut two = self::ca("unrelated").pem.into_bytes();
        two.extend_from_slice(ca.pem.as_bytes());
        attempt(&server, None, "localhost", &with_ca(&two), &NO_HOSTNAME)
            .await
            .unwrap();
    }

    #[test]
    fn bad_material_is_an_error_not_a_panic() {
        let ca = ca("test CA");
        let client_leaf = leaf(&ca, &["client"], false);
        let good_ca = ca.pem.as_bytes();
        let cert = client_leaf.cert_pem.as_bytes();
        let key = client_leaf.key_pem.as_bytes();
        let truncated = &good_ca[..good_ca.len() / 2];
        let ca_of = |bytes: &[u8]| ServerVerification::Ca(bytes.to_vec());
        let id = |cert, key| Some(identity(cert, key));
        // A missing entry reaches the runtime as an empty one at worst.
        let cases = [
            (ca_of(b""), None),
            (ca_of(b"garbage"), None),
            (ca_of(truncated), None),
            (ca_of(key), None),
            (
                ca_of(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
                None,
            ),
            (ServerVerification::None, id(b"", key)),
            (ServerVerification::None, id(cert, b"")),
            (ServerVerification::None, id(cert, b"not a key")),
            (ServerVerification::None, id(cert, cert)),
            (ServerVerification::None, id(key, key)),
            (ca_of(b""), id(cert, key)),
            (ca_of(good_ca), id(b"", b"")),
        ];
        for (server, client) in cases {
            let p = TlsPolicy {
                server,
                client,
                ..TlsPolicy::default()
            };
            let err = client_config("localhost", &p, &NO_HOSTNAME).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{p:?}: {err}");
        }
        // A host that is no DNS name: fine without name checks, else an error.
        assert!(client_config("a..b", &policy(None, None), &HOSTNAME).is_ok());
        let p = policy(None, Some(&ca));
        assert!(client_config("a..b", &p, &NO_HOSTNAME).is_ok());
        assert!(client_config("a..b", &p, &HOSTNAME).is_err());
        assert!(client_config("[::1]", &p, &HOSTNAME).is_ok());
    }

    /// A self-signed CA:TRUE certificate for `names`, valid from `from`
    /// to `to` (years), as `openssl req -x509` makes.
    fn self_signed(names: &[&str], from: i32, to: i32) -> Leaf {
        Leaf::self_signed_between(names, from, to)
    }

    /// Verifying the server against `ca`, as is; no client certificate.
    fn with_ca(ca: &[u8]) -> TlsPolicy {
        TlsPolicy {
            server: ServerVerification::Ca(ca.to_vec()),
            client: None,
            ..TlsPolicy::default()
        }
    }

    #[tokio::test]
    async fn a_self_signed_ca_certificate_is_its_own_ca() {
        let server = self_signed(&["localhost", "127.0.0.1"], 2020, 2090);
        let pem = server.cert_pem.as_bytes();
        for host in ["localhost", "127.0.0.1"] {
            for options in [NO_HOSTNAME, HOSTNAME] {
                attempt(&server, None, host, &with_ca(pem), &options)
                    .await
                    .unwrap_or_else(|e| panic!("{host}: {e}"));
            }
        }
        // Mode 3 (the server asks for no client certificate here), and the
        // certificate second in an entry of several, in DER alone too.
        let client_leaf = leaf(&ca("client CA"), &["client"], false);
        let p = TlsPolicy {
            client: Some(identity(
                client_leaf.cert_pem.as_bytes(),
                client_leaf.key_pem.as_bytes(),
            )),
            ..with_ca(pem)
        };
        attempt(&server, None, "localhost", &p, &HOSTNAME)
            .await
            .unwrap();
        let mut two = ca("unrelated").pem.into_bytes();
        two.extend_from_slice(pem);
        attempt(&server, None, "localhost", &with_ca(&two), &HOSTNAME)
            .await
            .unwrap();
        attempt(
            &server,
            None,
            "localhost",
            &with_ca(&server.cert),
            &HOSTNAME,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_self_signed_certificate_is_trusted_only_as_itself() {
        let server = self_signed(&["localhost"], 2020, 2090);
        // Another self-signed certificate, even for the same name: refused.
        let other = self_signed(&["localhost"], 2020, 2090);
        let p = with_ca(other.cert_pem.as_bytes());
        let result = attempt(&server, None, "localhost", &p, &NO_HOSTNAME).await;
        assert_fails(result, "CaUsedAsEndEntity");
        // Signed by a real CA, but not that CA: refused.
        let p = policy(None, Some(&ca("test CA")));
        let result = attempt(&server, None, "localhost", &p, &NO_HOSTNAME).await;
        assert_fails(result, "CaUsedAsEndEntity");
        // Expired or not yet valid: refused.
        for (from, to, needle) in [(2000, 2001, "xpired"), (2080, 2090, "not valid yet")] {
            let dated = self_signed(&["localhost"], from, to);
            let p = with_ca(dated.cert_pem.as_bytes());
            let result = attempt(&dated, None, "localhost", &p, &NO_HOSTNAME).await;
            assert_fails(result, needle);
        }
        // Another name: only `--tls-verify-hostname` minds.
        let elsewhere = self_signed(&["elsewhere.example"], 2020, 2090);
        let p = with_ca(elsewhere.cert_pem.as_bytes());
        attempt(&elsewhere, None, "localhost", &p, &NO_HOSTNAME)
            .await
            .unwrap();
        let result = attempt(&elsewhere, None, "localhost", &p, &HOSTNAME).await;
        assert_fails(result, "not valid for name");
        let result = attempt(&elsewhere, None, "127.0.0.1", &p, &HOSTNAME).await;
        assert_fails(result, "not valid for name");
    }

    /// The checks of the anchor path on their own, at chosen times (webpki
    /// refuses a certificate out of its dates before this path is taken).
    #[test]
    fn the_anchor_path_checks_dates_and_name() {
        let cert = self_signed(&["localhost"], 2000, 2001).cert;
        let provider = Arc::new(crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let verifier = |verify_hostname| CaVerifier {
            webpki: webpki.clone(),
            anchors: vec![cert.clone()],
            verify_hostname,
        };
        let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let localhost = ServerName::try_from("localhost").unwrap();
        let other = ServerName::try_from("other.example").unwrap();
        // 2000-01-01 is 946684800, 2001-01-01 978307200.
        for (secs, ok) in [
            (946_684_799, false),
            (946_684_800, true),
            (978_307_200, true),
            (978_307_201, false),
            (0, false),
            (u64::MAX, false),
        ] {
            let result = verifier(true).verify_anchor_itself(&cert, &localhost, at(secs));
            assert_eq!(result.is_ok(), ok, "{secs}: {result:?}");
        }
        let in_range = at(960_000_000);
        assert!(verifier(false)
            .verify_anchor_itself(&cert, &other, in_range)
            .is_ok());
        assert!(verifier(true)
            .verify_anchor_itself(&cert, &other, in_range)
            .is_err());
    }

    #[test]
    fn validity_dates_in_both_time_encodings() {
        // rcgen writes UTCTime before 2050 and GeneralizedTime from 2050 on.
        for (from, to, expected) in [
            (2000, 2001, (946_684_800, 978_307_200)),
            (1970, 2049, (0, 2_493_072_000)),
            (2049, 2050, (2_493_072_000, 2_524_608_000)),
            (2100, 2400, (4_102_444_800, 13_569_465_600)),
        ] {
            let cert = self_signed(&["x"], from, to).cert;
            assert_eq!(validity(&cert), Some(expected), "{from}-{to}");
            // No prefix of a certificate panics or parses as one.
            for len in 0..cert.len() {
                assert_eq!(validity(&cert[..len]), None, "{len}");
            }
        }
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(validity(&[0x30, 0x80]), None);
    }

    #[tokio::test]
    async fn a_server_that_is_not_tls_fails_fast() {
        for how in [
            Misbehaviour::Answers(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            // Closes at once.
            Misbehaviour::HangsUp,
        ] {
            // An answer keeps the socket open: the client must fail on the
            // bytes alone.
            let server = BadServer::start(how).await;
            let result = client(
                server.addr(),
                "localhost",
                &policy(None, None),
                &NO_HOSTNAME,
            )
            .await;
            assert!(result.is_err(), "{how:?}");
        }
    }
}
