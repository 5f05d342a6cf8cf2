//! `--pcap FILE` read back by tshark: the AT port in both directions, the
//! WebSocket frames of `ws://` and `wss://` links as Wireshark's WebSocket
//! dissector shows them, and the payloads of TCP, UDP and server socket
//! links; `SSLKEYLOGFILE` gets the TLS secrets.
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wsat_testkit::rig::Launch;
use wsat_testkit::sockets::{udp_echo_server, TcpEcho};
use wsat_testkit::tls::{Leaf, TlsEchoServer};
use wsat_testkit::tshark::{unhex, Tshark};
use wsat_testkit::{closed_port, echo_server, Wsat};

fn port_of(uri: &str) -> u16 {
    uri.rsplit(':').next().unwrap().parse().unwrap()
}

/// What the test reads of each packet, in one tshark run (each run costs
/// tshark's start-up, about half a second of CPU).
const FIELDS: [&str; 20] = [
    "frame.interface_name",
    "frame.time_epoch",
    "ip.src",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.payload",
    "udp.payload",
    "websocket.opcode",
    "websocket.mask",
    "websocket.payload.text",
    "data.data",
    "websocket.payload.close.status_code",
    "http.request.uri",
    "http.upgrade",
];

/// One packet as tshark dissected it.
struct Packet {
    interface: String,
    time: f64,
    src_ip: String,
    /// The TCP stream's index; `None` for UDP.
    stream: Option<u32>,
    src_port: u16,
    dst_port: u16,
    syn: bool,
    ack: bool,
    fin: bool,
    /// The TCP or UDP payload.
    payload: Vec<u8>,
    /// A WebSocket frame: opcode, `masked` or `clear`, and the payload as
    /// Wireshark decoded it (text, hex of binary data, a close's code).
    websocket: Option<String>,
    http_request: Option<(String, String)>,
}

impl Packet {
    fn parse(row: &[String]) -> Packet {
        assert_eq!(row.len(), FIELDS.len(), "{row:?}");
        let f = |name: &str| row[FIELDS.iter().position(|n| *n == name).unwrap()].as_str();
        let port = |name: &str| f(name).parse().unwrap_or(0);
        let tcp = !f("tcp.stream").is_empty();
        let proto = if tcp { "tcp" } else { "udp" };
        let websocket = (!f("websocket.opcode").is_empty()).then(|| {
            let masked = if f("websocket.mask") == "1" {
                "masked"
            } else {
                "clear"
            };
            let payload = [
                "websocket.payload.text",
                "data.data",
                "websocket.payload.close.status_code",
            ]
            .into_iter()
            .map(f)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
            format!("{} {masked} {payload}", f("websocket.opcode"))
        });
        let uri = f("http.request.uri");
        Packet {
            interface: f("frame.interface_name").to_string(),
            time: f("frame.time_epoch").parse().unwrap(),
            src_ip: f("ip.src").to_string(),
            stream: tcp.then(|| f("tcp.stream").parse().unwrap()),
            src_port: port(&format!("{proto}.srcport")),
            dst_port: port(&format!("{proto}.dstport")),
            syn: f("tcp.flags.syn") == "1",
            ack: f("tcp.flags.ack") == "1",
            fin: f("tcp.flags.fin") == "1",
            payload: unhex(f(&format!("{proto}.payload"))),
            websocket,
            http_request: (!uri.is_empty())
                .then(|| (uri.to_string(), f("http.upgrade").to_string())),
        }
    }

    fn on(&self, port: u16) -> bool {
        self.src_port == port || self.dst_port == port
    }

    /// `to` (sent to `port`) or `from`.
    fn way(&self, port: u16) -> &'static str {
        if self.dst_port == port {
            "to"
        } else {
            "from"
        }
    }
}

/// The WebSocket frames on `port`: `to`/`from` it, and the frame.
fn frames(packets: &[Packet], port: u16) -> Vec<String> {
    packets
        .iter()
        .filter(|p| p.on(port))
        .filter_map(|p| Some(format!("{} {}", p.way(port), p.websocket.as_ref()?)))
        .collect()
}

/// The data of the TCP (`tcp`) or UDP packets on `port`.
fn payloads(packets: &[Packet], port: u16, tcp: bool) -> Vec<(&'static str, Vec<u8>)> {
    packets
        .iter()
        .filter(|p| p.on(port) && p.stream.is_some() == tcp && !p.payload.is_empty())
        .map(|p| (p.way(port), p.payload.clone()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn links_and_the_at_port_as_tshark_dissects_them() {
    let Some(tshark) = Tshark::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wsat.pcapng");
    let keys = dir.path().join("keys.log");
    let ws = echo_server().await;
    let leaf = Leaf::self_signed(&["localhost"]);
    let wss = TlsEchoServer::start(&leaf, None).await;
    let tcp = TcpEcho::start().await;
    let udp = udp_echo_server().await;
    let server_port = closed_port().await;

    let started = epoch_s();
    let launch = Launch {
        env: vec![("SSLKEYLOGFILE".into(), keys.to_str().unwrap().into())],
        ..Launch::default()
    };
    let pki = dir.path().join("pki");
    let mut wsat = Wsat::launch(
        &launch,
        &[
            "--pcap",
            file.to_str().unwrap(),
            "--pki-dir",
            pki.to_str().unwrap(),
        ],
    );
    let mut host = wsat.quiet_host().await;

    // ws://: text, binary with every byte value, close.
    let ws_uri = format!("{ws}/pcap");
    host.open(0, &ws_uri).await;
    host.send_data("0,11,1", b"hello pcap!").await;
    host.expect(b"+WS_DATA:0,11,hello pcap!\r\n").await;
    let every_byte: Vec<u8> = (0..=255).collect();
    host.send_data("0,256,2", &every_byte).await;
    let mut echo = b"+WS_DATA:0,256,".to_vec();
    echo.extend_from_slice(&every_byte);
    echo.extend_from_slice(b"\r\n");
    host.expect(&echo).await;
    host.at("AT+WSCLOSE=0", b"\r\nOK\r\n").await;

    // wss://: the capture has the plaintext.
    host.open(1, &wss.uri("127.0.0.1")).await;
    host.send_data("1,9,1", b"over TLS!").await;
    host.expect(b"+WS_DATA:1,9,over TLS!\r\n").await;
    host.at("AT+WSCLOSE=1", b"\r\nOK\r\n").await;

    // Socket links: TCP, UDP, and a connection to AT+CIPSERVER.
    host.at("AT+CIPMUX=1", b"\r\nOK\r\n").await;
    let start = format!("AT+CIPSTART=0,\"TCP\",\"127.0.0.1\",{}", tcp.port);
    host.at(&start, b"0,CONNECT\r\n\r\nOK\r\n").await;
    host.send(b"AT+CIPSEND=0,5\r\n").await;
    host.expect(b"\r\nOK\r\n\r\n>").await;
    host.send(b"hello").await;
    let out = host.read_until(b"+IPD,0,5:hello\r\n").await;
    assert!(
        contains(&out, b"SEND OK"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let start = format!("AT+CIPSTART=1,\"UDP\",\"127.0.0.1\",{}", udp.port());
    host.at(&start, b"1,CONNECT\r\n\r\nOK\r\n").await;
    host.send(b"AT+CIPSEND=1,4\r\n").await;
    host.expect(b"\r\nOK\r\n\r\n>").await;
    host.send(b"ping").await;
    let out = host.read_until(b"+IPD,1,4:ping\r\n").await;
    assert!(
        contains(&out, b"SEND OK"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    host.at(&format!("AT+CIPSERVER=1,{server_port}"), b"\r\nOK\r\n")
        .await;
    let mut client = TcpStream::connect(("127.0.0.1", server_port))
        .await
        .unwrap();
    host.expect(b"2,CONNECT\r\n").await;
    client.write_all(b"from client").await.unwrap();
    host.expect(b"\r\n+IPD,2,11:from client\r\n").await;
    drop(client);
    host.expect(b"2,CLOSED\r\n").await;
    host.at("AT+CIPCLOSE=0", b"0,CLOSED\r\n\r\nOK\r\n").await;
    host.at("AT+CIPCLOSE=1", b"1,CLOSED\r\n\r\nOK\r\n").await;

    // The modem ends with its host; the process then exits on SIGTERM,
    // after which the file holds every packet.
    drop(host);
    assert!(wsat.proc.terminate(), "wsat did not exit on SIGTERM");
    let ended = epoch_s();

    // Decode-as for the WebSocket ports, in case tshark's HTTP heuristic
    // is off (it finds the handshakes on any port by default).
    let (ws_port, wss_port) = (port_of(&ws), wss.port);
    let (ws_http, wss_http) = (
        format!("tcp.port=={ws_port},http"),
        format!("tcp.port=={wss_port},http"),
    );
    let decode = ["-d", ws_http.as_str(), "-d", wss_http.as_str()];
    let packets: Vec<Packet> = tshark
        .fields(&file, &decode, "frame", &FIELDS)
        .iter()
        .map(|row| Packet::parse(row))
        .collect();

    let hex: String = every_byte.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        frames(&packets, ws_port),
        [
            "to 1 masked hello pcap!".to_string(),
            "from 1 clear hello pcap!".to_string(),
            format!("to 2 masked {hex}"),
            format!("from 2 clear {hex}"),
            "to 8 masked 1000".to_string(),
            "from 8 clear 1000".to_string(),
        ]
    );
    assert_eq!(
        frames(&packets, wss_port),
        [
            "to 1 masked over TLS!",
            "from 1 clear over TLS!",
            "to 8 masked 1000",
            "from 8 clear 1000"
        ]
    );
    let requests: Vec<_> = packets
        .iter()
        .filter_map(|p| Some((p.dst_port, p.http_request.clone()?)))
        .collect();
    let upgrade = |uri: &str| (uri.to_string(), "websocket".to_string());
    assert_eq!(
        requests,
        [(ws_port, upgrade("/pcap")), (wss_port, upgrade("/"))]
    );

    // The AT port: one stream, host 192.0.2.1:10001 (modem m1) to
    // 192.0.2.2:23, alone on the `at` interface.
    let (mut from_host, mut to_host) = (Vec::new(), Vec::new());
    for p in packets.iter().filter(|p| p.interface == "at") {
        match (p.src_ip.as_str(), p.src_port, p.dst_port) {
            ("192.0.2.1", 10001, 23) => from_host.extend_from_slice(&p.payload),
            ("192.0.2.2", 23, 10001) => to_host.extend_from_slice(&p.payload),
            other => panic!("AT packet {other:?}"),
        }
    }
    // A --tcp host finds the modem running: the first bytes it gets answer it.
    assert!(to_host.starts_with(b"ATE0\r\n\r\nOK\r\n"));
    let open = format!("ATE0\r\nAT+WSOPEN=0,\"{ws_uri}\"\r\nAT+WSSEND=0,11,1\r\nhello pcap!");
    assert!(
        from_host.starts_with(open.as_bytes()),
        "{}",
        String::from_utf8_lossy(&from_host)
    );
    assert!(contains(&from_host, &every_byte));
    assert!(contains(&to_host, &echo));
    assert!(contains(&from_host, b"AT+CIPSEND=0,5\r\nhello"));
    assert!(to_host.ends_with(b"1,CLOSED\r\n\r\nOK\r\n"));
    assert!(packets.iter().all(|p| (p.interface == "at") == p.on(23)));

    // Socket links: the payloads, both ways.
    let hello = b"hello".to_vec();
    assert_eq!(
        payloads(&packets, tcp.port, true),
        [("to", hello.clone()), ("from", hello)]
    );
    let ping = b"ping".to_vec();
    assert_eq!(
        payloads(&packets, udp.port(), false),
        [("to", ping.clone()), ("from", ping)]
    );
    assert_eq!(
        payloads(&packets, server_port, true),
        [("to", b"from client".to_vec())]
    );
    // Handshakes: wsat opens its links, the server link's client opens it.
    let syns: Vec<_> = packets
        .iter()
        .filter(|p| p.syn && !p.ack)
        .map(|p| (p.interface.as_str(), p.dst_port))
        .collect();
    let at = ("at", 23);
    let links = [ws_port, wss_port, tcp.port, server_port].map(|port| ("links", port));
    assert_eq!(syns, [&[at][..], &links].concat());
    // Every stream is closed: a FIN from wsat, the peer, or both (the
    // peer's after wsat's own is never read).
    let mut fins: Vec<u32> = packets
        .iter()
        .filter(|p| p.fin)
        .filter_map(|p| p.stream)
        .collect();
    fins.sort();
    fins.dedup();
    assert_eq!(fins, [0, 1, 2, 3, 4]);
    // One clock: every frame in order, within the test's run.
    let times: Vec<f64> = packets.iter().map(|p| p.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        started <= times[0] && times[times.len() - 1] <= ended,
        "{started} {times:?} {ended}"
    );

    // Checksums verify; no segment is lost, retransmitted or out of order.
    let checked = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let bad = tshark.fields(
        &file,
        &checked,
        "ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 \
         || tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment \
         || tcp.analysis.retransmission || tcp.analysis.out_of_order",
        &["frame.number"],
    );
    assert!(bad.is_empty(), "bad frames: {bad:?}");

    // SSLKEYLOGFILE: the wss:// link's secrets, NSS key log lines.
    let keys = std::fs::read_to_string(&keys).expect("SSLKEYLOGFILE written");
    assert!(
        keys.lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ") || l.starts_with("CLIENT_RANDOM ")),
        "{keys}"
    );
    assert!(keys.lines().all(|l| l.split(' ').count() == 3), "{keys}");
}
