//! `--pcap FILE`: one PcapNG file, shared by every modem of the process,
//! with the AT port in both directions and the plaintext of every link, as
//! packets Wireshark dissects like a capture of the wire.
//!
//! - Interface 0, `at`: each modem's AT port as a synthesized TCP stream
//!   from the host, 192.0.2.1:<10000 + n> (`m<n>` of the trace), to the
//!   modem, 192.0.2.2:23. TCP rather than a raw link type: "Follow TCP
//!   stream" shows the session as a terminal would, and port 23 (telnet)
//!   makes Wireshark show each packet's lines as text (a 0xFF byte in
//!   binary data reads as a telnet command there; the stream is still
//!   exact). 192.0.2.0/24 is RFC 5737's documentation range: it cannot be
//!   mistaken for a real host.
//! - Interface 1, `links`: each link as what the core sent and received
//!   (for `wss://` and SSL links the plaintext inside TLS), between the
//!   socket's real local and remote addresses: TCP and TLS links as a TCP
//!   stream (SYN, SYN-ACK, ACK at connect, FIN for each side's close, exact
//!   sequence numbers), UDP links as datagrams. WebSocket frames are then
//!   dissected by Wireshark's HTTP/WebSocket dissectors (a port Wireshark
//!   does not take for HTTP needs `-d tcp.port==N,http`).
//!
//! Every packet is stamped with the system's wall clock when written (the
//! clock `--trace` uses), so the AT bytes and the link traffic line up.
//! Headers are built here (Ethernet, IPv4 or IPv6, TCP or UDP, with their
//! checksums); the file format is `pcap-file`'s. Each hook writes and
//! flushes its packets under one lock, so the file is complete at every
//! moment (it can be read while wsat runs) and memory stays at one frame.
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};
use wsat_proto::Link;

const AT_INTERFACE: u32 = 0;
const LINK_INTERFACE: u32 = 1;

const AT_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const AT_MODEM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const AT_MODEM_PORT: u16 = 23;
const AT_HOST_PORTS: u16 = 10_000;

/// wsat's side (the modem, a link's local end) and the other side.
const WSAT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The most TCP data one IPv4 packet holds (65535 - 20 - 20); longer
/// sends and reads (a 64 KiB read) become several segments.
const MAX_SEGMENT: usize = 65_495;
/// The most UDP data one IPv4 packet holds; real datagrams never exceed it.
const MAX_DATAGRAM: usize = 65_507;

/// Initial sequence numbers: fixed, as Wireshark shows relative ones.
const ISN: [u32; 2] = [0x7773_6174, 0x0001_0000];

/// The capture file, shared by every modem of the process.
pub struct Pcap {
    inner: Mutex<Inner>,
}

struct Inner {
    writer: PcapNgWriter<BufWriter<File>>,
    /// The frame being built: one allocation, at most one packet long.
    frame: Vec<u8>,
    /// Writing failed once: the file is cut there, the modems go on.
    failed: bool,
}

impl Pcap {
    /// Creates `path` with its section header and both interfaces.
    pub fn create(path: &Path) -> io::Result<Arc<Pcap>> {
        let file = BufWriter::new(File::create(path)?);
        let app = format!("wsat {}", env!("CARGO_PKG_VERSION"));
        let section = SectionHeaderBlock {
            endianness: Endianness::native(),
            options: vec![SectionHeaderOption::UserApplication(app.into())],
            ..Default::default()
        };
        let mut writer = PcapNgWriter::with_section_header(file, section).map_err(io_error)?;
        let interfaces = [
            (
                "at",
                "AT ports: host 192.0.2.1:<10000+n> to modem n at 192.0.2.2:23",
            ),
            ("links", "link plaintext (inside TLS for wss:// and SSL)"),
        ];
        for (name, description) in interfaces {
            let interface = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 0,
                options: vec![
                    InterfaceDescriptionOption::IfName(name.into()),
                    InterfaceDescriptionOption::IfDescription(description.into()),
                    // pcap-file writes timestamps in nanoseconds.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            };
            writer.write_pcapng_block(interface).map_err(io_error)?;
        }
        writer.get_mut().flush()?;
        Ok(Arc::new(Pcap {
            inner: Mutex::new(Inner {
                writer,
                frame: Vec::new(),
                failed: false,
            }),
        }))
    }

    /// The capture of modem `n`: its AT port's stream opens now.
    pub(crate) fn modem(self: &Arc<Self>, n: u64) -> ModemPcap {
        let host_port = AT_HOST_PORTS + (n % u64::from(u16::MAX - AT_HOST_PORTS)) as u16;
        let mut at = TcpFlow::new(
            AT_INTERFACE,
            SocketAddr::from((AT_MODEM, AT_MODEM_PORT)),
            SocketAddr::from((AT_HOST, host_port)),
        );
        at.open(&mut self.batch(), Side::Peer);
        ModemPcap {
            pcap: self.clone(),
            at,
            links: Default::default(),
        }
    }

    /// The writer, locked; flushed when the batch ends.
    fn batch(&self) -> Batch<'_> {
        Batch(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Batch<'a>(MutexGuard<'a, Inner>);

impl Deref for Batch<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DerefMut for Batch<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.failed {
            if let Err(error) = self.writer.get_mut().flush() {
                self.fail(PcapError::IoError(error));
            }
        }
    }
}

impl Inner {
    /// One frame from `src` to `dst`, stamped now.
    fn packet(
        &mut self,
        interface: u32,
        from: Side,
        src: SocketAddr,
        dst: SocketAddr,
        l4: L4,
        payload: &[u8],
    ) {
        if self.failed {
            return;
        }
        self.frame.clear();
        build_frame(&mut self.frame, from, src, dst, l4, payload);
        let block = EnhancedPacketBlock {
            interface_id: interface,
            timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            original_len: self.frame.len() as u32,
            data: Cow::Borrowed(&self.frame),
            options: Vec::new(),
        };
        if let Err(error) = self.writer.write_pcapng_block(block) {
            self.fail(error);
        }
    }

    fn fail(&mut self, error: PcapError) {
        // A capture that cannot be written must not stop the modems.
        tracing::warn!(%error, "the --pcap file cannot be written: it ends here");
        self.failed = true;
    }
}

fn io_error(error: PcapError) -> io::Error {
    match error {
        PcapError::IoError(error) => error,
        other => io::Error::other(other),
    }
}

/// One modem's part of the capture: its AT stream and its links' flows.
pub(crate) struct ModemPcap {
    pcap: Arc<Pcap>,
    at: TcpFlow,
    links: [Option<Flow>; Link::COUNT],
}

enum Flow {
    Tcp(TcpFlow),
    Udp { local: SocketAddr },
}

impl ModemPcap {
    /// Bytes from the host.
    pub(crate) fn at_rx(&mut self, bytes: &[u8]) {
        self.at.data(&mut self.pcap.batch(), Side::Peer, bytes);
    }

    /// Bytes written to the host.
    pub(crate) fn at_tx(&mut self, bytes: &[u8]) {
        self.at.data(&mut self.pcap.batch(), Side::Wsat, bytes);
    }

    /// wsat connected `link` (a three-way handshake from `local`), or bound
    /// its UDP socket.
    pub(crate) fn connected(
        &mut self,
        link: Link,
        local: SocketAddr,
        remote: SocketAddr,
        udp: bool,
    ) {
        self.closed(link);
        let flow = if udp {
            Flow::Udp {
                local: bound_address(local, remote),
            }
        } else {
            let mut flow = TcpFlow::new(LINK_INTERFACE, local, remote);
            flow.open(&mut self.pcap.batch(), Side::Wsat);
            Flow::Tcp(flow)
        };
        self.links[link.index()] = Some(flow);
    }

    /// `AT+CIPSERVER`'s listener accepted `link` (the handshake from `remote`).
    pub(crate) fn accepted(&mut self, link: Link, local: SocketAddr, remote: SocketAddr) {
        self.closed(link);
        let mut flow = TcpFlow::new(LINK_INTERFACE, local, remote);
        flow.open(&mut self.pcap.batch(), Side::Peer);
        self.links[link.index()] = Some(Flow::Tcp(flow));
    }

    /// What the core sent on a stream link.
    pub(crate) fn sent(&mut self, link: Link, bytes: &[u8]) {
        if let Some(Flow::Tcp(flow)) = &mut self.links[link.index()] {
            flow.data(&mut self.pcap.batch(), Side::Wsat, bytes);
        }
    }

    /// A datagram the core sent on a UDP link.
    pub(crate) fn sent_to(&mut self, link: Link, to: SocketAddr, bytes: &[u8]) {
        if let Some(Flow::Udp { local }) = self.links[link.index()] {
            let bytes = &bytes[..bytes.len().min(MAX_DATAGRAM)];
            self.pcap
                .batch()
                .packet(LINK_INTERFACE, Side::Wsat, local, to, L4::Udp, bytes);
        }
    }

    /// What was read from a stream link.
    pub(crate) fn received(&mut self, link: Link, bytes: &[u8]) {
        if let Some(Flow::Tcp(flow)) = &mut self.links[link.index()] {
            flow.data(&mut self.pcap.batch(), Side::Peer, bytes);
        }
    }

    /// A datagram read from a UDP link.
    pub(crate) fn datagram(&mut self, link: Link, from: SocketAddr, bytes: &[u8]) {
        if let Some(Flow::Udp { local }) = self.links[link.index()] {
            let bytes = &bytes[..bytes.len().min(MAX_DATAGRAM)];
            self.pcap
                .batch()
                .packet(LINK_INTERFACE, Side::Peer, from, local, L4::Udp, bytes);
        }
    }

    /// The peer closed a stream link (EOF), or it failed.
    pub(crate) fn peer_closed(&mut self, link: Link) {
        if let Some(Flow::Tcp(flow)) = &mut self.links[link.index()] {
            flow.fin(&mut self.pcap.batch(), Side::Peer);
        }
    }

    /// wsat closed the link's connection.
    pub(crate) fn closed(&mut self, link: Link) {
        if let Some(Flow::Tcp(mut flow)) = self.links[link.index()].take() {
            flow.fin(&mut self.pcap.batch(), Side::Wsat);
        }
    }
}

impl Drop for ModemPcap {
    /// The modem ends when its host goes: the host's FIN, the links'
    /// closes, the modem's FIN.
    fn drop(&mut self) {
        let mut batch = self.pcap.batch();
        self.at.fin(&mut batch, Side::Peer);
        for flow in &mut self.links {
            if let Some(Flow::Tcp(flow)) = flow {
                flow.fin(&mut batch, Side::Wsat);
            }
        }
        self.at.fin(&mut batch, Side::Wsat);
    }
}

/// A UDP socket bound to any address sends from the one its route picks:
/// for a peer on loopback that is loopback; otherwise it stays unknown.
fn bound_address(local: SocketAddr, remote: SocketAddr) -> SocketAddr {
    if !local.ip().is_unspecified() || !remote.ip().is_loopback() {
        return local;
    }
    let ip = match remote.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    SocketAddr::new(ip, local.port())
}

/// Which end a packet comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Wsat = 0,
    Peer = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Wsat => Side::Peer,
            Side::Peer => Side::Wsat,
        }
    }
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A synthesized TCP connection: both ends and the next sequence number
/// each sends.
struct TcpFlow {
    interface: u32,
    ends: [SocketAddr; 2],
    next: [u32; 2],
    fin: [bool; 2],
}

impl TcpFlow {
    fn new(interface: u32, wsat: SocketAddr, peer: SocketAddr) -> TcpFlow {
        TcpFlow {
            interface,
            ends: [wsat, peer],
            next: ISN,
            fin: [false; 2],
        }
    }

    /// SYN from `initiator`, SYN-ACK, ACK.
    fn open(&mut self, out: &mut Inner, initiator: Side) {
        let answer = initiator.other();
        self.segment(out, initiator, SYN, &[]);
        self.advance(initiator, 1);
        self.segment(out, answer, SYN | ACK, &[]);
        self.advance(answer, 1);
        self.segment(out, initiator, ACK, &[]);
    }

    /// `bytes` from `from`, in segments of at most [`MAX_SEGMENT`].
    fn data(&mut self, out: &mut Inner, from: Side, bytes: &[u8]) {
        for chunk in bytes.chunks(MAX_SEGMENT) {
            self.segment(out, from, PSH | ACK, chunk);
            self.advance(from, chunk.len() as u32);
        }
    }

    /// `from`'s FIN (once) and its ACK.
    fn fin(&mut self, out: &mut Inner, from: Side) {
        if self.fin[from as usize] {
            return;
        }
        self.fin[from as usize] = true;
        self.segment(out, from, FIN | ACK, &[]);
        self.advance(from, 1);
        self.segment(out, from.other(), ACK, &[]);
    }

    fn advance(&mut self, side: Side, n: u32) {
        let next = &mut self.next[side as usize];
        *next = next.wrapping_add(n);
    }

    fn segment(&self, out: &mut Inner, from: Side, flags: u8, payload: &[u8]) {
        let to = from.other();
        let ack = if flags & ACK != 0 {
            self.next[to as usize]
        } else {
            0
        };
        let l4 = L4::Tcp {
            seq: self.next[from as usize],
            ack,
            flags,
        };
        let (src, dst) = (self.ends[from as usize], self.ends[to as usize]);
        out.packet(self.interface, from, src, dst, l4, payload);
    }
}

#[derive(Clone, Copy)]
enum L4 {
    Tcp { seq: u32, ack: u32, flags: u8 },
    Udp,
}

/// An Ethernet frame with an IPv4 (both ends IPv4) or IPv6 packet and a
/// TCP segment or UDP datagram, checksums included.
fn build_frame(
    out: &mut Vec<u8>,
    from: Side,
    src: SocketAddr,
    dst: SocketAddr,
    l4: L4,
    payload: &[u8],
) {
    let (src_mac, dst_mac) = match from {
        Side::Wsat => (WSAT_MAC, PEER_MAC),
        Side::Peer => (PEER_MAC, WSAT_MAC),
    };
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    let (proto, header_len) = match l4 {
        L4::Tcp { .. } => (6u8, 20),
        L4::Udp => (17u8, 8),
    };
    let l4_len = header_len + payload.len();
    let (src_ip, dst_ip) = (src.ip().to_canonical(), dst.ip().to_canonical());
    let pseudo = match (src_ip, dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            // Identification 0, don't fragment, TTL 64, checksum below.
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let sum = checksum(sum16(&out[start..], 0));
            out[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
            sum16(&s.octets(), sum16(&d.octets(), 0))
        }
        (s, d) => {
            let (s, d) = (v6(s), v6(d));
            out.extend_from_slice(&0x86DDu16.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            sum16(&s.octets(), sum16(&d.octets(), 0))
        }
    };
    let pseudo = pseudo + u64::from(proto) + l4_len as u64;
    let start = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    let checksum_at = match l4 {
        L4::Tcp { seq, ack, flags } => {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&ack.to_be_bytes());
            // Header of 5 words, no options; window 65535; no urgent data.
            out.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            start + 16
        }
        L4::Udp => {
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            start + 6
        }
    };
    out.extend_from_slice(payload);
    let mut sum = checksum(sum16(&out[start..], pseudo));
    if matches!(l4, L4::Udp) && sum == 0 {
        // UDP sends a computed 0 as all ones (0 means "no checksum").
        sum = 0xffff;
    }
    out[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

/// The Internet checksum's running sum of big-endian 16-bit words.
fn sum16(bytes: &[u8], mut sum: u64) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The sum folded to 16 bits and complemented.
fn checksum(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: &str, dst: &str, l4: L4, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        build_frame(
            &mut out,
            Side::Wsat,
            src.parse().unwrap(),
            dst.parse().unwrap(),
            l4,
            payload,
        );
        out
    }

    #[test]
    fn ipv4_tcp_headers_and_checksums_verify() {
        let tcp = L4::Tcp {
            seq: 1,
            ack: 2,
            flags: PSH | ACK,
        };
        let f = frame("127.0.0.1:40000", "127.0.0.1:8765", tcp, b"hello");
        assert_eq!(f.len(), 14 + 20 + 20 + 5);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 45);
        // A header whose checksum is right sums to zero.
        assert_eq!(checksum(sum16(&f[14..34], 0)), 0);
        let pseudo = sum16(&f[26..34], 0) + 6 + 25;
        assert_eq!(checksum(sum16(&f[34..], pseudo)), 0);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 40000);
        assert_eq!(&f[54..], b"hello");
    }

    #[test]
    fn ipv6_udp_with_an_odd_length_verifies() {
        let f = frame("[::1]:5000", "[::1]:7", L4::Udp, b"abc");
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f.len(), 14 + 40 + 8 + 3);
        let pseudo = sum16(&f[22..54], 0) + 17 + 11;
        assert_eq!(checksum(sum16(&f[54..], pseudo)), 0);
    }

    #[test]
    fn v4_mapped_addresses_are_ipv4() {
        let f = frame("[::ffff:127.0.0.1]:1", "127.0.0.1:2", L4::Udp, b"");
        assert_eq!(&f[12..14], &[0x08, 0x00]);
    }

    /// (interface, seq, ack, flags, payload length, from port) of each
    /// TCP packet in the file.
    fn tcp_packets(path: &Path) -> Vec<(u32, u32, u32, u8, usize, u16)> {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let mut reader = PcapNgReader::new(File::open(path).unwrap()).unwrap();
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(p) = block.unwrap() {
                let f = &p.data;
                assert_eq!(&f[12..14], &[0x08, 0x00]);
                let word = |at: usize| u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
                let port = u16::from_be_bytes([f[34], f[35]]);
                packets.push((
                    p.interface_id,
                    word(38),
                    word(42),
                    f[47],
                    f.len() - 54,
                    port,
                ));
            }
        }
        packets
    }

    #[test]
    fn streams_have_exact_sequence_numbers_and_long_reads_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcapng");
        let pcap = Pcap::create(&path).unwrap();
        let mut modem = pcap.modem(3);
        modem.at_rx(b"AT\r\n");
        let link = Link::Socket(1);
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "127.0.0.1:7".parse().unwrap();
        modem.connected(link, local, remote, false);
        modem.received(link, &vec![7; 70_000]);
        modem.sent(link, b"x");
        modem.peer_closed(link);
        drop(modem);
        let [w, p] = ISN;
        let (at, links) = (AT_INTERFACE, LINK_INTERFACE);
        assert_eq!(
            tcp_packets(&path),
            [
                (at, p, 0, SYN, 0, 10_003),
                (at, w, p + 1, SYN | ACK, 0, 23),
                (at, p + 1, w + 1, ACK, 0, 10_003),
                (at, p + 1, w + 1, PSH | ACK, 4, 10_003),
                (links, w, 0, SYN, 0, 40000),
                (links, p, w + 1, SYN | ACK, 0, 7),
                (links, w + 1, p + 1, ACK, 0, 40000),
                (links, p + 1, w + 1, PSH | ACK, MAX_SEGMENT, 7),
                (
                    links,
                    p + 1 + MAX_SEGMENT as u32,
                    w + 1,
                    PSH | ACK,
                    70_000 - MAX_SEGMENT,
                    7
                ),
                (links, w + 1, p + 70_001, PSH | ACK, 1, 40000),
                (links, p + 70_001, w + 2, FIN | ACK, 0, 7),
                (links, w + 2, p + 70_002, ACK, 0, 40000),
                // The modem's end: the host's FIN, the link's, the modem's.
                (at, p + 5, w + 1, FIN | ACK, 0, 10_003),
                (at, w + 1, p + 6, ACK, 0, 23),
                (links, w + 2, p + 70_002, FIN | ACK, 0, 40000),
                (links, p + 70_002, w + 3, ACK, 0, 7),
                (at, w + 1, p + 6, FIN | ACK, 0, 23),
                (at, p + 6, w + 2, ACK, 0, 10_003),
            ]
        );
    }

    #[test]
    fn unbound_udp_to_loopback_is_loopback() {
        let any: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(bound_address(any, lo), "127.0.0.1:5000".parse().unwrap());
        let far: SocketAddr = "0.0.0.0:7".parse().unwrap();
        assert_eq!(bound_address(any, far), any);
    }
}
