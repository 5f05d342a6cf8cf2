//! The frame header of RFC 6455 §5.2, in both directions, masked or not:
//! the one parser and writer of frame headers in wsat (the decoder, the
//! encoder, the tests and the fuzz checks use it).
use alloc::vec::Vec;
use core::fmt;

/// A frame's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: the next frame of a fragmented message.
    Continuation,
    /// 0x1.
    Text,
    /// 0x2.
    Binary,
    /// 0x8.
    Close,
    /// 0x9.
    Ping,
    /// 0xA.
    Pong,
    /// 3..=7 and 0xB..=0xF.
    Reserved(u8),
}

impl Opcode {
    /// Close, ping, pong and the reserved 0xB..=0xF.
    pub fn is_control(self) -> bool {
        u8::from(self) & 0x8 != 0
    }
}

impl From<u8> for Opcode {
    /// The low four bits.
    fn from(op: u8) -> Self {
        match op & 0x0F {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            n => Opcode::Reserved(n),
        }
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        match op {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
            Opcode::Reserved(n) => n & 0x0F,
        }
    }
}

impl fmt::Display for Opcode {
    /// `CONT`, `TEXT`, `BINARY`, `CLOSE`, `PING`, `PONG` or `op<n>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opcode::Continuation => f.write_str("CONT"),
            Opcode::Text => f.write_str("TEXT"),
            Opcode::Binary => f.write_str("BINARY"),
            Opcode::Close => f.write_str("CLOSE"),
            Opcode::Ping => f.write_str("PING"),
            Opcode::Pong => f.write_str("PONG"),
            Opcode::Reserved(n) => write!(f, "op{n}"),
        }
    }
}

/// A frame header as it is on the wire. Parsing checks nothing but that it
/// is complete; what is allowed is the decoder's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1..RSV3, as bits 2..0.
    pub rsv: u8,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key (frames from a client).
    pub mask: Option<[u8; 4]>,
    /// The payload's length.
    pub payload_len: u64,
}

impl Header {
    /// A header with no RSV bits.
    pub fn new(fin: bool, opcode: Opcode, payload_len: u64, mask: Option<[u8; 4]>) -> Self {
        Header {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len,
        }
    }

    /// The header at the start of `bytes` and its length, or `None` while
    /// it is incomplete.
    pub fn parse(bytes: &[u8]) -> Option<(Header, usize)> {
        let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
        let (payload_len, mut at) = match b1 & 0x7F {
            126 => (be(bytes.get(2..4)?), 4),
            127 => (be(bytes.get(2..10)?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let key = bytes.get(at..at + 4)?;
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = Header {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: Opcode::from(b0),
            mask,
            payload_len,
        };
        Some((header, at))
    }

    /// The encoded length: 2 to 14 bytes.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header, with the shortest length form.
    pub fn write(&self, out: &mut Vec<u8>) {
        let fin = if self.fin { 0x80 } else { 0 };
        out.push(fin | (self.rsv & 0x7) << 4 | u8::from(self.opcode));
        let masked = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            n @ 0..=125 => out.push(masked | n as u8),
            n @ 126..=0xFFFF => {
                out.push(masked | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(masked | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
        }
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |acc, &x| acc << 8 | u64::from(x))
}

/// XORs `data` with the repeating `mask`, as if `data` started `offset`
/// bytes into the payload; eight bytes at a time.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let [a, b, c, d] = key;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for w in &mut words {
        let mut v = [0u8; 8];
        v.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(v) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key starts over.
    for (x, m) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *x ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn round_trips_every_length_form_masked_or_not() {
        for len in [0, 1, 125, 126, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                for op in [0u8, 1, 2, 3, 8, 9, 10, 15] {
                    let h = Header {
                        fin: len % 2 == 0,
                        rsv: 5,
                        opcode: Opcode::from(op),
                        mask,
                        payload_len: len,
                    };
                    let mut out = Vec::new();
                    h.write(&mut out);
                    assert_eq!(out.len(), h.encoded_len());
                    assert_eq!(Header::parse(&out), Some((h, out.len())));
                    assert_eq!(Header::parse(&out[..out.len() - 1]), None);
                }
            }
        }
    }

    #[test]
    fn known_bytes() {
        let (h, n) = Header::parse(&[0x81, 0x84, 1, 2, 3, 4, b'x']).unwrap();
        assert_eq!(n, 6);
        assert_eq!(h, Header::new(true, Opcode::Text, 4, Some([1, 2, 3, 4])));
        assert_eq!(
            Header::parse(&[0x02, 126, 1, 0]).unwrap().0.payload_len,
            256
        );
        assert_eq!(Opcode::from(0x8B).to_string(), "op11");
        assert!(Opcode::Ping.is_control() && Opcode::Reserved(11).is_control());
        assert!(!Opcode::Reserved(3).is_control());
    }

    #[test]
    fn masking_from_an_offset_continues_the_key() {
        let mask = [1, 2, 3, 4];
        let mut whole = vec![0u8; 23];
        apply_mask(&mut whole, mask, 0);
        let mut tail = vec![0u8; 20];
        apply_mask(&mut tail, mask, 3);
        assert_eq!(&whole[3..], &tail[..]);
    }
}
