//! TLS for the end-to-end tests: certificates made at test time (rcgen),
//! TLS servers on 127.0.0.1:0 (a rustls WebSocket echo server, and servers
//! that get TLS wrong), and the host's side of `AT+SYSMFG`. wsat's TLS
//! unit tests use the certificates, [`acceptor`] and [`BadServer`] too.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};
use tokio_tungstenite::tungstenite::Message;

use crate::{Host, WAIT};

/// A CA that issues certificates.
pub struct Ca {
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), valid now.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        self.issue_dated(names, false)
    }

    /// A certificate for `names` that expired in 2001.
    pub fn issue_expired(&self, names: &[&str]) -> Leaf {
        self.issue_dated(names, true)
    }

    fn issue_dated(&self, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = leaf_params(names);
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf::new(cert, key)
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "wsat test");
    params
}

/// A certificate and its key, PEM (what the host stores) and DER (what the
/// test servers use).
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    fn new(cert: rcgen::Certificate, key: KeyPair) -> Leaf {
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    /// A self-signed CA:TRUE certificate, as `openssl req -x509` makes.
    pub fn self_signed(names: &[&str]) -> Leaf {
        Leaf::self_signed_with(leaf_params(names))
    }

    /// [`Leaf::self_signed`], valid from January 1st of `from` to January
    /// 1st of `to`.
    pub fn self_signed_between(names: &[&str], from: i32, to: i32) -> Leaf {
        let mut params = leaf_params(names);
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);
        Leaf::self_signed_with(params)
    }

    fn self_signed_with(mut params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Leaf::new(cert, key)
    }
}

/// A TLS acceptor (rustls, ring) presenting `leaf`; with `client_ca`, it
/// demands a client certificate issued by it.
pub fn acceptor(leaf: &Leaf, client_ca: Option<&Ca>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![leaf.cert.clone()], leaf.key.clone_key())
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// What a [`TlsSocketServer`] saw of one client's TLS handshake.
#[derive(Debug, PartialEq, Eq)]
pub struct Hello {
    /// The SNI of the ClientHello (`None`: the client sent none).
    pub sni: Option<String>,
    /// The ALPN protocols the client offered, in order.
    pub alpn: Vec<String>,
}

/// A completed handshake of a [`TlsSocketServer`].
#[derive(Debug)]
pub struct Handshake {
    pub hello: Hello,
    /// The client's end of the connection.
    pub client: SocketAddr,
}

/// A TLS server on 127.0.0.1:0 for `"SSL"` socket links: raw bytes over
/// TLS (no WebSocket), echoed back, as rustls (independent of wsat's code)
/// serves them. Each connection's handshake is reported: what the
/// ClientHello asked for, or why the handshake failed.
pub struct TlsSocketServer {
    pub port: u16,
    handshakes: mpsc::UnboundedReceiver<Result<Handshake, String>>,
}

impl TlsSocketServer {
    /// Presents `leaf`; with `client_ca`, demands a client certificate
    /// issued by it.
    pub async fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> TlsSocketServer {
        let config = acceptor(leaf, client_ca).config().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (done, handshakes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, client)) = listener.accept().await {
                let (config, done) = (config.clone(), done.clone());
                tokio::spawn(async move {
                    let start = match LazyConfigAcceptor::new(Acceptor::default(), tcp).await {
                        Ok(start) => start,
                        Err(error) => {
                            let _ = done.send(Err(format!("ClientHello: {error}")));
                            return;
                        }
                    };
                    let hello = start.client_hello();
                    let hello = Hello {
                        sni: hello.server_name().map(str::to_owned),
                        alpn: hello
                            .alpn()
                            .map(|protocols| {
                                protocols
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    let mut tls = match start.into_stream(config).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            let _ = done.send(Err(format!("TLS: {error}")));
                            return;
                        }
                    };
                    let _ = done.send(Ok(Handshake { hello, client }));
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = tls.read(&mut buf).await {
                        if tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsSocketServer { port, handshakes }
    }

    /// The next connection's handshake: `Ok` with what the client asked
    /// for once it completed, `Err` with the server's reason if it failed.
    pub async fn handshake(&mut self) -> Result<Handshake, String> {
        timeout(WAIT, self.handshakes.recv())
            .await
            .expect("no TLS connection came")
            .expect("server gone")
    }
}

/// A rustls WebSocket echo server on 127.0.0.1:0 (tungstenite over
/// tokio-rustls, independent of wsat's code), serving until the test ends.
pub struct TlsEchoServer {
    pub port: u16,
    /// One line per connection whose TLS or WebSocket handshake failed.
    failures: mpsc::UnboundedReceiver<String>,
}

impl TlsEchoServer {
    /// Presents `leaf`; with `client_ca`, demands a client certificate
    /// issued by it.
    pub async fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> TlsEchoServer {
        let acceptor = acceptor(leaf, client_ca);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (failed, failures) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, failed) = (acceptor.clone(), failed.clone());
                tokio::spawn(async move {
                    if let Err(error) = echo(acceptor, tcp).await {
                        let _ = failed.send(error);
                    }
                });
            }
        });
        TlsEchoServer { port, failures }
    }

    /// `wss://<host>:<port>`.
    pub fn uri(&self, host: &str) -> String {
        format!("wss://{host}:{}", self.port)
    }

    /// The next connection that failed its handshakes, as the server saw it.
    pub async fn failure(&mut self) -> String {
        timeout(WAIT, self.failures.recv())
            .await
            .expect("no failed connection")
            .expect("server gone")
    }
}

/// Serves one connection: TLS, the WebSocket handshake, then echo. Errors
/// before the WebSocket is open are returned; later ones end it quietly.
async fn echo(acceptor: TlsAcceptor, tcp: TcpStream) -> Result<(), String> {
    let tls = acceptor
        .accept(tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let mut ws = tokio_tungstenite::accept_async(tls)
        .await
        .map_err(|e| format!("WebSocket: {e}"))?;
    while let Some(Ok(message)) = ws.next().await {
        if let message @ (Message::Text(_) | Message::Binary(_)) = message {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// How a [`BadServer`] treats a client.
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// Answers the ClientHello with bytes that are no TLS record.
    Garbage,
    /// Answers the ClientHello with these bytes (no TLS record either).
    Answers(&'static [u8]),
    /// Accepts TCP, reads, and never writes.
    Silent,
    /// Reads the ClientHello and closes the connection.
    HangsUp,
}

/// A TCP server on 127.0.0.1:0 that is no TLS server.
pub struct BadServer {
    pub port: u16,
    /// Fires when the client's connection has ended (EOF or error).
    ended: mpsc::UnboundedReceiver<()>,
}

impl BadServer {
    pub async fn start(how: Misbehaviour) -> BadServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tcp.read(&mut buf).await;
                    let answer: &[u8] = match how {
                        Misbehaviour::Garbage => b"\xde\xad\xbe\xef garbage\r\n\r\n",
                        Misbehaviour::Answers(bytes) => bytes,
                        Misbehaviour::Silent => b"",
                        // Dropping the socket closes it (and nothing waits
                        // for the client to).
                        Misbehaviour::HangsUp => return,
                    };
                    let _ = tcp.write_all(answer).await;
                    // Keep the socket open: the client must end it.
                    while let Ok(1..) = tcp.read(&mut buf).await {}
                    let _ = ended_tx.send(());
                });
            }
        });
        BadServer { port, ended }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn uri(&self) -> String {
        format!("wss://{}", self.addr())
    }

    /// Waits until the client has dropped its connection (never, for
    /// [`Misbehaviour::HangsUp`]).
    pub async fn dropped(&mut self) {
        timeout(WAIT, self.ended.recv())
            .await
            .expect("the client kept the connection")
            .expect("server gone");
    }
}

/// A `ws://` URI as `wss://`: a plain WebSocket server on a TLS URI.
pub fn as_wss(ws_uri: &str) -> String {
    ws_uri.replacen("ws://", "wss://", 1)
}

/// The three `AT+SYSMFG` namespaces of `wss://` (`AT+WSCFG`).
pub const CERT: &str = "wss_cert";
pub const KEY: &str = "wss_key";
pub const CA: &str = "wss_ca";
/// The three of `"SSL"` socket links (`AT+CIPSSLCCONF`, esp-at-tcpip.md §3.13).
pub const CLIENT_CERT: &str = "client_cert";
pub const CLIENT_KEY: &str = "client_key";
pub const CLIENT_CA: &str = "client_ca";

impl Host {
    /// `AT+SYSMFG=2,"<namespace>","<namespace>.<index>",8,<len>`, the
    /// prompt, the value, `OK` (echo off).
    pub async fn sysmfg_write(&mut self, namespace: &str, index: u8, value: &[u8]) {
        let line = format!(
            "AT+SYSMFG=2,\"{namespace}\",\"{namespace}.{index}\",8,{}",
            value.len()
        );
        self.at(&line, b"\r\nOK\r\n\r\n>").await;
        self.send(value).await;
        self.expect(b"\r\nOK\r\n").await;
    }

    /// Asserts `AT+SYSMFG=1` reads `value` back byte for byte (echo off).
    pub async fn sysmfg_read_back(&mut self, namespace: &str, index: u8, value: &[u8]) {
        let key = format!("{namespace}.{index}");
        let mut answer =
            format!("+SYSMFG:\"{namespace}\",\"{key}\",8,{},", value.len()).into_bytes();
        answer.extend_from_slice(value);
        answer.extend_from_slice(b"\r\n\r\nOK\r\n");
        self.at(&format!("AT+SYSMFG=1,\"{namespace}\",\"{key}\""), &answer)
            .await;
    }

    /// Writes an entry through the AT port and checks it reads back.
    pub async fn store(&mut self, namespace: &str, index: u8, value: &str) {
        self.sysmfg_write(namespace, index, value.as_bytes()).await;
        self.sysmfg_read_back(namespace, index, value.as_bytes())
            .await;
    }

    /// Stores `leaf` as client certificate and key number `index`.
    pub async fn store_client(&mut self, index: u8, leaf: &Leaf) {
        self.store(CERT, index, &leaf.cert_pem).await;
        self.store(KEY, index, &leaf.key_pem).await;
    }

    /// `AT+WSCFG=<link>,30,60,4096,<mode>,<pki>,<ca>` answered `OK` (echo
    /// off). Needed before every open: a failed open or a close drops it.
    pub async fn wscfg(&mut self, link: u8, mode: u8, pki: u8, ca: u8) {
        let line = format!("AT+WSCFG={link},30,60,4096,{mode},{pki},{ca}");
        self.at(&line, b"\r\nOK\r\n").await;
    }

    /// `AT+WSOPEN` that must fail: `+WS_DISCONNECTED`, `ERROR`, and then
    /// the modem answers `AT` and lists no link (echo off, no other link).
    pub async fn open_fails(&mut self, link: u8, uri: &str) {
        let answer = format!("+WS_DISCONNECTED:{link}\r\n\r\nERROR\r\n");
        self.at(&format!("AT+WSOPEN={link},\"{uri}\""), answer.as_bytes())
            .await;
        self.alive().await;
        self.at("AT+WSOPEN?", b"\r\nOK\r\n").await;
    }

    /// `AT+WSOPEN` that must succeed, a send and its echo, `AT+WSCLOSE`
    /// (echo off).
    pub async fn open_echo_close(&mut self, link: u8, uri: &str) {
        self.open(link, uri).await;
        self.send_data(&format!("{link},4"), b"test").await;
        self.expect(format!("+WS_DATA:{link},4,test\r\n").as_bytes())
            .await;
        self.at(&format!("AT+WSCLOSE={link}"), b"\r\nOK\r\n").await;
    }
}
