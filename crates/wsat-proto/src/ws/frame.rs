//! Streaming frame codec (RFC 6455 §5).
use alloc::vec::Vec;

use super::header::{apply_mask, Header, Opcode};
use super::opcode;

/// A piece of one received frame's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The frame's opcode (0 for continuation frames).
    pub opcode: u8,
    /// The frame's FIN bit.
    pub fin: bool,
    /// The frame's whole payload length.
    pub payload_len: u64,
    /// Where `data` starts in the frame's payload.
    pub payload_offset: u64,
    /// At most `max_chunk` bytes (control frames: the whole payload, ≤125).
    /// Unmasked.
    pub data: Vec<u8>,
}

impl Chunk {
    /// The last chunk of its frame.
    pub fn ends_frame(&self) -> bool {
        self.payload_offset + self.data.len() as u64 == self.payload_len
    }
}

/// A [`Chunk`] whose data is still in the decoder's buffer: what
/// [`FrameDecoder::next_chunk_ref`] yields, so the payload is copied once,
/// straight to where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef<'a> {
    /// The frame's opcode (0 for continuation frames).
    pub opcode: u8,
    /// The frame's FIN bit.
    pub fin: bool,
    /// The frame's whole payload length.
    pub payload_len: u64,
    /// Where `data` starts in the frame's payload.
    pub payload_offset: u64,
    /// Unmasked, in the decoder's buffer.
    pub data: &'a [u8],
}

impl ChunkRef<'_> {
    /// The last chunk of its frame.
    pub fn ends_frame(&self) -> bool {
        self.payload_offset + self.data.len() as u64 == self.payload_len
    }

    /// A copy that owns its data.
    pub fn to_owned(&self) -> Chunk {
        Chunk {
            opcode: self.opcode,
            fin: self.fin,
            payload_len: self.payload_len,
            payload_offset: self.payload_offset,
            data: self.data.to_vec(),
        }
    }
}

/// A violation of RFC 6455 by the server; the connection must fail with `close_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A server frame with the mask bit.
    MaskedFrame,
    /// RSV1..3 set (no extension was agreed).
    ReservedBits,
    /// Opcode 3..7 or 0xB..0xF.
    ReservedOpcode,
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame over 125 bytes.
    ControlTooLong,
    /// A continuation frame outside a fragmented message.
    UnexpectedContinuation,
    /// A new message inside a fragmented one.
    UnfinishedMessage,
    /// A 64-bit length with the top bit set.
    LengthTooLarge,
    /// A close frame with a 1-byte payload.
    BadClosePayload,
    /// A close frame with a code a peer may not send.
    BadCloseCode,
    /// A close frame's reason is not UTF-8.
    BadCloseReason,
    /// A text message that is not UTF-8.
    InvalidUtf8,
}

impl ProtocolError {
    /// The close code to send: 1007 for invalid UTF-8 in a text message,
    /// else 1002.
    pub fn close_code(self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => super::close_code::INVALID_PAYLOAD,
            _ => super::close_code::PROTOCOL_ERROR,
        }
    }

    /// The error is in a close frame: the server did close, badly.
    pub fn in_close_frame(self) -> bool {
        matches!(
            self,
            ProtocolError::BadClosePayload
                | ProtocolError::BadCloseCode
                | ProtocolError::BadCloseReason
        )
    }
}

impl core::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ProtocolError::MaskedFrame => "masked frame from the server",
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::ReservedOpcode => "reserved opcode",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::ControlTooLong => "control frame over 125 bytes",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::UnfinishedMessage => "new message inside a fragmented one",
            ProtocolError::LengthTooLarge => "payload length over 2^63",
            ProtocolError::BadClosePayload => "close frame with a 1-byte payload",
            ProtocolError::BadCloseCode => "close frame with an invalid code",
            ProtocolError::BadCloseReason => "close reason not UTF-8",
            ProtocolError::InvalidUtf8 => "text not UTF-8",
        })
    }
}

/// Above this, an emptied input buffer gives its memory back.
const KEEP_CAPACITY: usize = 1 << 20;

/// Decodes server frames as bytes arrive, yielding payload chunks.
pub struct FrameDecoder {
    max_chunk: usize,
    /// Fed bytes; everything before `pos` is consumed.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes at `pos` that the last yielded chunk borrows; consumed on the
    /// next call.
    lent: usize,
    /// `Some` while inside a frame's payload (its header is consumed).
    frame: Option<Frame>,
    /// A fragmented message is unfinished: `Some(true)` text, `Some(false)` binary.
    message: Option<bool>,
    /// UTF-8 state of the current text message, across chunks and frames.
    utf8: Utf8,
    dead: Option<ProtocolError>,
}

/// What [`FrameDecoder::step`] found: header bytes consumed, and a complete
/// chunk's metadata and data length.
type StepResult = Result<(usize, Option<(ChunkHeader, usize)>), ProtocolError>;

/// A chunk's metadata, before its data is attached.
#[derive(Clone, Copy)]
struct ChunkHeader {
    opcode: u8,
    fin: bool,
    payload_len: u64,
    payload_offset: u64,
}

impl ChunkHeader {
    fn of(f: &Frame) -> Self {
        ChunkHeader {
            opcode: f.opcode,
            fin: f.fin,
            payload_len: f.len,
            payload_offset: f.offset,
        }
    }

    fn with_data(self, data: &[u8]) -> ChunkRef<'_> {
        ChunkRef {
            opcode: self.opcode,
            fin: self.fin,
            payload_len: self.payload_len,
            payload_offset: self.payload_offset,
            data,
        }
    }
}

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    opcode: u8,
    fin: bool,
    len: u64,
    /// Payload bytes already yielded.
    offset: u64,
    /// Payload belongs to a text message.
    text: bool,
    /// Bytes of the pending chunk already run through the UTF-8 check.
    checked: usize,
}

impl FrameDecoder {
    /// `max_chunk` ≥ 1: data-frame payloads are yielded in chunks of at most
    /// this many bytes, cut at multiples of it from the payload's start.
    pub fn new(max_chunk: usize) -> Self {
        FrameDecoder {
            // 0 would yield empty chunks forever.
            max_chunk: max_chunk.max(1),
            buf: Vec::new(),
            pos: 0,
            lent: 0,
            frame: None,
            message: None,
            utf8: Utf8::default(),
            dead: None,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.return_lent();
        // A dead decoder reads nothing more.
        if self.dead.is_none() {
            crate::bytes::append(&mut self.buf, bytes);
        }
    }

    /// The next chunk, if one is complete. A data chunk is complete when
    /// `max_chunk` bytes of its payload are in or its frame ends; an empty
    /// frame yields one empty chunk. Control frames come whole, in one chunk,
    /// and may arrive between the frames of a fragmented message. After an
    /// error the decoder is dead: every later call returns the same error.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, ProtocolError> {
        Ok(self.next_chunk_ref()?.map(|chunk| chunk.to_owned()))
    }

    /// [`FrameDecoder::next_chunk`] without copying the data out: the chunk
    /// borrows the decoder until the next call.
    pub fn next_chunk_ref(&mut self) -> Result<Option<ChunkRef<'_>>, ProtocolError> {
        self.return_lent();
        if let Some(e) = self.dead {
            return Err(e);
        }
        let buf = core::mem::take(&mut self.buf);
        let step = self.step(&buf[self.pos..]);
        self.buf = buf;
        match step {
            Ok((consumed, chunk)) => {
                self.consume(consumed);
                let Some((header, n)) = chunk else {
                    return Ok(None);
                };
                self.lent = n;
                let data = &self.buf[self.pos..self.pos + n];
                Ok(Some(header.with_data(data)))
            }
            Err(e) => Err(self.die(e)),
        }
    }

    /// Whether fed bytes wait in the decoder (the last chunk handed out no
    /// longer counts): if not, [`FrameDecoder::next_chunk_from`] may decode
    /// the next bytes where they are.
    pub fn holds_input(&mut self) -> bool {
        self.return_lent();
        self.pos < self.buf.len()
    }

    /// [`FrameDecoder::feed`] and [`FrameDecoder::next_chunk_ref`] in one,
    /// without copying `input` in: the next chunk of `input[*used..]`,
    /// borrowed from it, with `*used` moved past it. When no chunk is
    /// complete, the rest of `input` is kept (copied) and `*used` set to its
    /// end. For a decoder that [holds no input](FrameDecoder::holds_input);
    /// one that does takes `input` behind what it holds, as
    /// [`FrameDecoder::feed`] would, and yields nothing here: ask
    /// [`FrameDecoder::next_chunk_ref`] then.
    pub fn next_chunk_from<'a>(
        &mut self,
        input: &'a [u8],
        used: &mut usize,
    ) -> Result<Option<ChunkRef<'a>>, ProtocolError> {
        let rest = input.get(*used..).unwrap_or_default();
        if let Some(e) = self.dead {
            *used = input.len();
            return Err(e);
        }
        if self.holds_input() {
            self.feed(rest);
            *used = input.len();
            return Ok(None);
        }
        match self.step(rest) {
            Ok((consumed, Some((header, n)))) => {
                let start = *used + consumed;
                *used = start + n;
                Ok(Some(header.with_data(&input[start..start + n])))
            }
            Ok((consumed, None)) => {
                self.buf.extend_from_slice(&rest[consumed..]);
                *used = input.len();
                Ok(None)
            }
            Err(e) => {
                *used = input.len();
                Err(self.die(e))
            }
        }
    }

    /// After an error the decoder is dead and reads nothing more.
    fn die(&mut self, e: ProtocolError) -> ProtocolError {
        self.dead = Some(e);
        self.buf = Vec::new();
        self.pos = 0;
        self.lent = 0;
        e
    }

    /// Bytes fed but not yet yielded (for flow control).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos - self.lent
    }

    fn return_lent(&mut self) {
        let lent = core::mem::take(&mut self.lent);
        self.consume(lent);
    }

    /// Finds the next chunk; on `Some`, its data is the `self.lent` bytes at
    /// `self.pos`.
    /// Decodes from `avail`, the bytes not consumed yet. Returns how many
    /// header bytes it consumed and, when a chunk is complete, its header and
    /// the length of its data, which follows those bytes.
    fn step(&mut self, avail: &[u8]) -> StepResult {
        let (mut f, consumed) = match self.frame {
            Some(f) => (f, 0),
            None => match self.read_header(avail)? {
                Some(read) => read,
                None => return Ok((0, None)),
            },
        };
        let avail = avail.get(consumed..).unwrap_or_default();
        let remaining = f.len - f.offset;

        if opcode::is_control(f.opcode) {
            // ≤ 125 bytes, checked in the header.
            let n = usize::try_from(remaining).unwrap_or(usize::MAX);
            let Some(data) = avail.get(..n) else {
                return Ok((consumed, None));
            };
            if f.opcode == opcode::CLOSE {
                check_close(data)?;
            }
            self.frame = None;
            return Ok((consumed, Some((ChunkHeader::of(&f), n))));
        }

        let want = usize::try_from(remaining).map_or(self.max_chunk, |r| r.min(self.max_chunk));
        let Some(data) = avail.get(..want) else {
            // Fail fast: check what is here of the pending chunk.
            if f.text {
                self.utf8.feed(avail.get(f.checked..).unwrap_or_default())?;
                f.checked = avail.len();
                self.frame = Some(f);
            }
            return Ok((consumed, None));
        };
        let ends = remaining == want as u64;
        if f.text {
            self.utf8.feed(data.get(f.checked..).unwrap_or_default())?;
            if ends && f.fin {
                self.utf8.finish()?;
            }
        }
        let header = ChunkHeader::of(&f);
        self.frame = if ends {
            None
        } else {
            f.offset += want as u64;
            f.checked = 0;
            Some(f)
        };
        Ok((consumed, Some((header, want))))
    }

    /// Parses and checks the next frame header at the start of `avail`;
    /// returns it with its length once complete.
    fn read_header(&mut self, avail: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        let (b0, b1) = match avail {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let fin = b0 & 0x80 != 0;
        let op = b0 & 0x0F;
        let len7 = b1 & 0x7F;
        // Everything checkable from the first two bytes fails before the rest arrives.
        if b1 & 0x80 != 0 {
            return Err(ProtocolError::MaskedFrame);
        }
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        if !matches!(op, 0 | 1 | 2 | 8 | 9 | 10) {
            return Err(ProtocolError::ReservedOpcode);
        }
        let control = opcode::is_control(op);
        if control {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if len7 > 125 {
                return Err(ProtocolError::ControlTooLong);
            }
        } else {
            match (op, self.message) {
                (opcode::CONTINUATION, None) => return Err(ProtocolError::UnexpectedContinuation),
                (opcode::TEXT | opcode::BINARY, Some(_)) => {
                    return Err(ProtocolError::UnfinishedMessage)
                }
                _ => {}
            }
        }
        let Some((header, header_len)) = Header::parse(avail) else {
            return Ok(None);
        };
        let len = header.payload_len;
        if len >> 63 != 0 {
            return Err(ProtocolError::LengthTooLarge);
        }

        let text = match op {
            opcode::TEXT => {
                self.utf8 = Utf8::default();
                true
            }
            opcode::CONTINUATION => self.message == Some(true),
            _ => false,
        };
        if !control {
            if fin {
                self.message = None;
            } else if op != opcode::CONTINUATION {
                self.message = Some(op == opcode::TEXT);
            }
        }
        let f = Frame {
            opcode: op,
            fin,
            len,
            offset: 0,
            text,
            checked: 0,
        };
        self.frame = Some(f);
        Ok(Some((f, header_len)))
    }

    /// Drops `n` consumed bytes, compacting so draining stays O(n) overall.
    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
        let rest = self.buf.len() - self.pos;
        if rest == 0 {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        } else if self.pos >= rest {
            // Moves at most as many bytes as were consumed since the last move.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// A close frame's payload: empty, or a valid code and a UTF-8 reason.
fn check_close(payload: &[u8]) -> Result<(), ProtocolError> {
    match payload {
        [] => Ok(()),
        [_] => Err(ProtocolError::BadClosePayload),
        [hi, lo, reason @ ..] => {
            if !close_code_allowed(u16::from_be_bytes([*hi, *lo])) {
                return Err(ProtocolError::BadCloseCode);
            }
            core::str::from_utf8(reason).map_err(|_| ProtocolError::BadCloseReason)?;
            Ok(())
        }
    }
}

/// Codes a peer may send (RFC 6455 §7.4, plus 1012-1014 registered later, as Autobahn accepts).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Incremental UTF-8 check: holds the unfinished tail (≤ 3 bytes) of what it has seen.
#[derive(Clone, Copy, Debug, Default)]
struct Utf8 {
    tail: [u8; 4],
    len: usize,
}

impl Utf8 {
    /// Fails as soon as the bytes so far cannot be the start of valid UTF-8.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        const BAD: ProtocolError = ProtocolError::InvalidUtf8;
        if self.len > 0 {
            // Complete the held character first.
            let width: usize = match self.tail[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = width.saturating_sub(self.len).min(bytes.len());
            let mut tmp = self.tail;
            let end = self.len + take;
            let (Some(dst), Some(src)) = (tmp.get_mut(self.len..end), bytes.get(..take)) else {
                return Err(BAD);
            };
            dst.copy_from_slice(src);
            match core::str::from_utf8(tmp.get(..end).unwrap_or_default()) {
                Ok(_) => {
                    self.len = 0;
                    bytes = bytes.get(take..).unwrap_or_default();
                }
                // Still a valid prefix, and all of `bytes` went into it.
                Err(e) if e.error_len().is_none() => {
                    self.tail = tmp;
                    self.len = end;
                    return Ok(());
                }
                Err(_) => return Err(BAD),
            }
        }
        match core::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let rest = bytes.get(e.valid_up_to()..).unwrap_or_default();
                let dst = self.tail.get_mut(..rest.len()).ok_or(BAD)?;
                dst.copy_from_slice(rest);
                self.len = rest.len();
                Ok(())
            }
            Err(_) => Err(BAD),
        }
    }

    /// The message ended: no character may be left unfinished.
    fn finish(&self) -> Result<(), ProtocolError> {
        if self.len == 0 {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }
}

/// Appends one masked client frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let header = Header::new(fin, Opcode::from(opcode), payload.len() as u64, Some(mask));
    out.reserve(header.encoded_len() + payload.len());
    header.write(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(p) = out.get_mut(start..) {
        apply_mask(p, mask, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::opcode::{BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};
    use alloc::vec;
    use ProtocolError::*;

    /// An unmasked server frame with minimal length encoding.
    fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | op];
        let len = payload.len();
        if len < 126 {
            out.push(len as u8);
        } else if len <= 0xFFFF {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// A server frame whose length always uses the 64-bit form.
    fn frame64(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | op, 127];
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Parses one masked client frame: (fin, opcode, unmasked payload, frame length).
    fn parse_client(b: &[u8]) -> (bool, u8, Vec<u8>, usize) {
        assert_eq!(b[1] & 0x80, 0x80, "client frames are masked");
        assert_eq!(b[0] & 0x70, 0, "no RSV bits");
        let (len, mut at) = match b[1] & 0x7F {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        at += 4;
        let payload = b[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect();
        (b[0] & 0x80 != 0, b[0] & 0x0F, payload, at + len)
    }

    /// Deterministic xorshift, for payloads and random splits.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    type Outcome = (Vec<Chunk>, Option<ProtocolError>);

    /// Feeds `input` in pieces of the given sizes, draining after each; stops at an error.
    fn run(input: &[u8], max_chunk: usize, sizes: &mut dyn FnMut() -> usize) -> Outcome {
        let mut d = FrameDecoder::new(max_chunk);
        let mut chunks = Vec::new();
        let mut rest = input;
        loop {
            loop {
                match d.next_chunk() {
                    Ok(Some(c)) => {
                        assert!(c.opcode & 0x8 != 0 || c.data.len() <= max_chunk.max(1));
                        chunks.push(c);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Dead for good, whatever comes next.
                        d.feed(&frame(true, BINARY, b"more"));
                        assert_eq!(d.next_chunk(), Err(e));
                        assert_eq!(d.next_chunk(), Err(e));
                        return (chunks, Some(e));
                    }
                }
            }
            if rest.is_empty() {
                // Everything complete was yielded; only a partial chunk may remain.
                return (chunks, None);
            }
            let n = sizes().clamp(1, rest.len());
            d.feed(&rest[..n]);
            rest = &rest[n..];
        }
    }

    fn whole(input: &[u8], max_chunk: usize) -> Outcome {
        run(input, max_chunk, &mut || usize::MAX)
    }

    /// Like [`run`], decoding each piece where it is when the decoder holds
    /// nothing (`next_chunk_from`), as the modem does.
    fn run_from(input: &[u8], max_chunk: usize, sizes: &mut dyn FnMut() -> usize) -> Outcome {
        let mut d = FrameDecoder::new(max_chunk);
        let mut chunks = Vec::new();
        let mut rest = input;
        loop {
            let n = sizes().clamp(1, rest.len().max(1)).min(rest.len());
            let (piece, after) = rest.split_at(n);
            rest = after;
            let mut used = 0;
            loop {
                let next = if used < piece.len() && !d.holds_input() {
                    d.next_chunk_from(piece, &mut used)
                        .map(|c| c.map(|c| c.to_owned()))
                } else {
                    if used < piece.len() {
                        d.feed(&piece[used..]);
                        used = piece.len();
                    }
                    d.next_chunk()
                };
                match next {
                    Ok(Some(c)) => chunks.push(c),
                    Ok(None) if used < piece.len() => {}
                    Ok(None) => break,
                    Err(e) => {
                        let mut more = 0;
                        let again = frame(true, BINARY, b"more");
                        assert_eq!(d.next_chunk_from(&again, &mut more).err(), Some(e));
                        return (chunks, Some(e));
                    }
                }
            }
            if rest.is_empty() {
                return (chunks, None);
            }
        }
    }

    /// Decodes whole, byte by byte and in random splits, fed or decoded in
    /// place; all must agree.
    fn decode(input: &[u8], max_chunk: usize) -> Outcome {
        let expected = whole(input, max_chunk);
        assert_eq!(run(input, max_chunk, &mut || 1), expected, "byte by byte");
        assert_eq!(
            run_from(input, max_chunk, &mut || usize::MAX),
            expected,
            "in place, whole"
        );
        assert_eq!(
            run_from(input, max_chunk, &mut || 1),
            expected,
            "in place, byte by byte"
        );
        for seed in 1..=4u64 {
            let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let cap = [2, 7, 300, 5000][seed as usize - 1];
            let got = run_from(input, max_chunk, &mut || (rng.next() % cap) as usize + 1);
            assert_eq!(got, expected, "in place, random split, seed {seed}");
        }
        for seed in 1..=4u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let cap = [2, 7, 300, 5000][seed as usize - 1];
            let got = run(input, max_chunk, &mut || (rng.next() % cap) as usize + 1);
            assert_eq!(got, expected, "random split, seed {seed}");
        }
        expected
    }

    fn ok(input: &[u8], max_chunk: usize) -> Vec<Chunk> {
        let (chunks, err) = decode(input, max_chunk);
        assert_eq!(err, None);
        chunks
    }

    fn err(input: &[u8], max_chunk: usize) -> ProtocolError {
        decode(input, max_chunk).1.expect("an error")
    }

    fn chunk(op: u8, fin: bool, len: u64, off: u64, data: &[u8]) -> Chunk {
        Chunk {
            opcode: op,
            fin,
            payload_len: len,
            payload_offset: off,
            data: data.to_vec(),
        }
    }

    #[test]
    fn small_frames() {
        let mut input = frame(true, TEXT, b"hello");
        input.extend(frame(true, BINARY, &[0, 1, 2]));
        assert_eq!(
            ok(&input, 1024),
            [
                chunk(TEXT, true, 5, 0, b"hello"),
                chunk(BINARY, true, 3, 0, &[0, 1, 2])
            ]
        );
    }

    #[test]
    fn empty_data_frames_yield_one_empty_chunk() {
        let mut input = frame(true, TEXT, b"");
        input.extend(frame(true, BINARY, b""));
        input.extend(frame(false, BINARY, b""));
        input.extend(frame(true, CONTINUATION, b""));
        let c = ok(&input, 3);
        assert_eq!(
            c,
            [
                chunk(TEXT, true, 0, 0, b""),
                chunk(BINARY, true, 0, 0, b""),
                chunk(BINARY, false, 0, 0, b""),
                chunk(CONTINUATION, true, 0, 0, b""),
            ]
        );
        assert!(c.iter().all(Chunk::ends_frame));
    }

    #[test]
    fn chunking_at_boundaries() {
        let mut rng = Rng(7);
        for max in [1usize, 3, 125, 1024] {
            for len in [max * 7 / 2, max * 3, max, max + 1, 1] {
                let payload = rng.bytes(len);
                let c = ok(&frame(true, BINARY, &payload), max);
                assert_eq!(c.len(), len.div_ceil(max), "max {max} len {len}");
                for (i, ch) in c.iter().enumerate() {
                    assert_eq!(ch.payload_offset, (i * max) as u64);
                    assert_eq!(ch.payload_len, len as u64);
                    assert_eq!((ch.opcode, ch.fin), (BINARY, true));
                    assert_eq!(ch.ends_frame(), i + 1 == c.len());
                    let want = max.min(len - i * max);
                    assert_eq!(ch.data, payload[i * max..i * max + want]);
                }
            }
        }
    }

    #[test]
    fn text_chunking_splits_characters() {
        // 3.5 × max of multi-byte text: chunks cut mid-character are fine.
        let s = "aé€😀".repeat(200);
        for max in [1usize, 3, 125, 1024] {
            let payload = &s.as_bytes()[..(max * 7 / 2).min(s.len())];
            let payload = &payload[..payload.len() - (payload.len() % 10)];
            let c = ok(&frame(true, TEXT, payload), max);
            assert_eq!(c.concat_data(), payload);
        }
    }

    trait Concat {
        fn concat_data(&self) -> Vec<u8>;
    }
    impl Concat for [Chunk] {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|c| c.data.iter().copied()).collect()
        }
    }
    impl Concat for Vec<Chunk> {
        fn concat_data(&self) -> Vec<u8> {
            self.as_slice().concat_data()
        }
    }

    #[test]
    fn control_frames_come_whole() {
        let ping = [7u8; 125];
        let mut input = frame(true, PING, &ping);
        input.extend(frame(true, PONG, b"p"));
        input.extend(frame(true, PONG, b""));
        input.extend(frame(true, CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']));
        assert_eq!(
            ok(&input, 1),
            [
                chunk(PING, true, 125, 0, &ping),
                chunk(PONG, true, 1, 0, b"p"),
                chunk(PONG, true, 0, 0, b""),
                chunk(CLOSE, true, 5, 0, &[0x03, 0xE8, b'b', b'y', b'e']),
            ]
        );
    }

    #[test]
    fn control_frames_between_fragments() {
        // "€" is split across the fragments, with a ping and a pong in between.
        let euro = "€".as_bytes();
        let mut input = frame(false, TEXT, &[b'a', euro[0]]);
        input.extend(frame(true, PING, b"x"));
        input.extend(frame(false, CONTINUATION, &euro[1..2]));
        input.extend(frame(true, PONG, &[0xFF]));
        input.extend(frame(true, CONTINUATION, &[euro[2], b'b']));
        input.extend(frame(false, BINARY, &[0xFF, 0xFE]));
        input.extend(frame(true, CLOSE, &[0x03, 0xE8]));
        input.extend(frame(true, CONTINUATION, &[0xFF]));
        input.extend(frame(true, TEXT, b"next"));
        assert_eq!(
            ok(&input, 2),
            [
                chunk(TEXT, false, 2, 0, &[b'a', euro[0]]),
                chunk(PING, true, 1, 0, b"x"),
                chunk(CONTINUATION, false, 1, 0, &euro[1..2]),
                chunk(PONG, true, 1, 0, &[0xFF]),
                chunk(CONTINUATION, true, 2, 0, &[euro[2], b'b']),
                chunk(BINARY, false, 2, 0, &[0xFF, 0xFE]),
                chunk(CLOSE, true, 2, 0, &[0x03, 0xE8]),
                chunk(CONTINUATION, true, 1, 0, &[0xFF]),
                chunk(TEXT, true, 4, 0, b"ne"),
                chunk(TEXT, true, 4, 2, b"xt"),
            ]
        );
    }

    #[test]
    fn lengths_16_and_64_bit() {
        let mut rng = Rng(3);
        for len in [125usize, 126, 127, 65535, 65536, 70000] {
            let payload = rng.bytes(len);
            for f in [
                frame(true, BINARY, &payload),
                frame64(true, BINARY, &payload),
            ] {
                let c = whole(&f, 1024).0;
                assert_eq!(c.concat_data(), payload);
                assert!(c.iter().all(|c| c.payload_len == len as u64));
            }
        }
        // Header byte counts: 2, 4 and 10.
        assert_eq!(frame(true, BINARY, &[0; 125]).len(), 127);
        assert_eq!(frame(true, BINARY, &[0; 126]).len(), 130);
        assert_eq!(frame(true, BINARY, &[0; 65536]).len(), 65546);
        // Split-independence on one big frame.
        let payload = rng.bytes(70000);
        assert_eq!(ok(&frame(true, TEXT, &[]), 1).len(), 1);
        assert_eq!(
            ok(&frame64(false, BINARY, &payload), 1024).concat_data(),
            payload
        );
    }

    #[test]
    fn huge_declared_length_streams() {
        // 2^62 bytes announced; chunks flow as data comes, nothing waits for the end.
        let mut input = vec![0x82, 127];
        input.extend_from_slice(&(1u64 << 62).to_be_bytes());
        input.extend_from_slice(&[9; 100]);
        let (c, e) = decode(&input, 30);
        assert_eq!(e, None);
        assert_eq!(c.len(), 3);
        assert!(c
            .iter()
            .all(|c| c.payload_len == 1 << 62 && !c.ends_frame()));
        // The largest legal length.
        let mut input = vec![0x82, 127];
        input.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        input.push(1);
        assert_eq!(whole(&input, 1).0.len(), 1);
    }

    #[test]
    fn header_violations() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (&[0x81, 0x80, 0, 0, 0, 0], MaskedFrame),
            (&[0xC1, 0x00], ReservedBits),
            (&[0xA1, 0x00], ReservedBits),
            (&[0x91, 0x00], ReservedBits),
            (&[0x89, 0x7E, 0x00, 0x7E], ControlTooLong),
            (&[0x88, 0x7F, 0, 0, 0, 0, 0, 0, 0, 1], ControlTooLong),
            (&[0x09, 0x00], FragmentedControl),
            (&[0x08, 0x00], FragmentedControl),
            (&[0x0A, 0x00], FragmentedControl),
            (&[0x80, 0x00], UnexpectedContinuation),
            (&[0x00, 0x00], UnexpectedContinuation),
            (&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], LengthTooLarge),
            (
                &[0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                LengthTooLarge,
            ),
        ];
        for (input, e) in cases {
            assert_eq!(err(input, 4), *e, "{input:02x?}");
        }
        for op in (3..=7).chain(11..=15) {
            assert_eq!(err(&[0x80 | op, 0], 4), ReservedOpcode, "{op}");
            assert_eq!(err(&[op, 0], 4), ReservedOpcode, "{op}");
        }
        // A 126-byte control frame written with the 16-bit form.
        let mut big_ping = vec![0x89, 126, 0, 126];
        big_ping.extend_from_slice(&[0; 126]);
        assert_eq!(err(&big_ping, 4), ControlTooLong);
    }

    #[test]
    fn message_order_violations() {
        let mut input = frame(false, TEXT, b"a");
        input.extend(frame(true, TEXT, b"b"));
        assert_eq!(
            decode(&input, 4),
            (
                vec![chunk(TEXT, false, 1, 0, b"a")],
                Some(UnfinishedMessage)
            )
        );
        let mut input = frame(false, BINARY, b"a");
        input.extend(frame(true, BINARY, b"b"));
        assert_eq!(err(&input, 4), UnfinishedMessage);
        let mut input = frame(false, BINARY, b"a");
        input.extend(frame(true, TEXT, b"b"));
        assert_eq!(err(&input, 4), UnfinishedMessage);
        // After the final fragment a continuation has nothing to continue.
        let mut input = frame(false, BINARY, b"a");
        input.extend(frame(true, CONTINUATION, b"b"));
        input.extend(frame(true, CONTINUATION, b"c"));
        assert_eq!(decode(&input, 4).0.len(), 2);
        assert_eq!(err(&input, 4), UnexpectedContinuation);
    }

    #[test]
    fn errors_come_in_order_after_earlier_chunks() {
        let mut input = frame(true, BINARY, &[1; 10]);
        input.extend(frame(true, PING, b"p"));
        input.extend_from_slice(&[0xC2, 0x00]);
        input.extend(frame(true, TEXT, b"never"));
        let (c, e) = decode(&input, 3);
        assert_eq!(c.len(), 5);
        assert_eq!(e, Some(ReservedBits));
    }

    #[test]
    fn close_payloads() {
        let close = |p: &[u8]| frame(true, CLOSE, p);
        assert_eq!(err(&close(&[0x03]), 4), BadClosePayload);
        assert_eq!(err(&close(&[0x03, 0xE8, 0xFF]), 4), BadCloseReason);
        assert_eq!(err(&close(&[0x03, 0xE8, 0xE2, 0x82]), 4), BadCloseReason);
        assert_eq!(ok(&close(&[0x03, 0xE8, 0xE2, 0x82, 0xAC]), 4).len(), 1);
        assert_eq!(ok(&close(&[]), 4).len(), 1);
        let mut long_reason = vec![0x0F, 0xA0];
        long_reason.extend_from_slice(&[b'r'; 123]);
        assert_eq!(ok(&close(&long_reason), 1)[0].data, long_reason);
    }

    #[test]
    fn close_codes() {
        let allowed = |c: u16| {
            (1000..=1003).contains(&c) || (1007..=1014).contains(&c) || (3000..=4999).contains(&c)
        };
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!allowed(code));
        }
        for code in 0..=u16::MAX {
            assert_eq!(close_code_allowed(code), allowed(code), "{code}");
        }
        for (code, good) in [
            (1000, true),
            (1012, true),
            (4999, true),
            (1005, false),
            (5000, false),
        ] {
            let input = frame(true, CLOSE, &u16::to_be_bytes(code));
            assert_eq!(whole(&input, 4).1.is_none(), good, "{code}");
            if !good {
                assert_eq!(err(&input, 4), BadCloseCode);
            }
        }
    }

    #[test]
    fn utf8_valid_across_chunks_and_frames() {
        let s = "ab€😀ü€€😀";
        let b = s.as_bytes();
        for max in [1, 2, 3, 5, 1024] {
            // Every way to cut the message into two fragments.
            for cut in 0..=b.len() {
                let mut input = frame(false, TEXT, &b[..cut]);
                input.extend(frame(true, CONTINUATION, &b[cut..]));
                assert_eq!(whole(&input, max).0.concat_data(), b);
            }
            assert_eq!(ok(&frame(true, TEXT, b), max).concat_data(), b);
        }
    }

    #[test]
    fn utf8_invalid_sequences() {
        let bad: &[&[u8]] = &[
            &[0xFF],
            &[0x80],
            &[0xC0, 0x80],
            &[0xC1, 0xBF],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xF5],
            &[0xE2, 0x28, 0xA1],
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
                0x65,
            ],
        ];
        for b in bad {
            for max in [1, 2, 3, 1024] {
                assert_eq!(
                    err(&frame(true, TEXT, b), max),
                    InvalidUtf8,
                    "{b:02x?} {max}"
                );
                // Binary payloads are not checked.
                assert_eq!(whole(&frame(true, BINARY, b), max).1, None);
                // Nor is a binary message's continuation.
                let mut input = frame(false, BINARY, b"");
                input.extend(frame(true, CONTINUATION, b));
                assert_eq!(whole(&input, max).1, None);
                // But a text message's is, and its first fragment is not blamed.
                let mut input = frame(false, TEXT, b"ok");
                input.extend(frame(true, CONTINUATION, b));
                let (c, e) = decode(&input, max);
                assert_eq!(e, Some(InvalidUtf8));
                // Only bytes that could still start valid UTF-8 got out.
                let out = c.concat_data();
                assert!(out.starts_with(b"ok") && out.len() < 2 + b.len());
                assert!(
                    core::str::from_utf8(&out).map_or_else(|e| e.error_len().is_none(), |_| true)
                );
            }
        }
    }

    #[test]
    fn utf8_unfinished_at_message_end() {
        // A message may not end inside a character...
        assert_eq!(
            err(&frame(true, TEXT, &[b'a', 0xE2, 0x82]), 1024),
            InvalidUtf8
        );
        let mut input = frame(false, TEXT, &[b'a', 0xE2]);
        input.extend(frame(true, CONTINUATION, &[0x82]));
        let (c, e) = decode(&input, 1024);
        assert_eq!((c.len(), e), (1, Some(InvalidUtf8)));
        // ...even with an empty final fragment.
        let mut input = frame(false, TEXT, &[0xF0, 0x9F]);
        input.extend(frame(true, CONTINUATION, b""));
        assert_eq!(err(&input, 1024), InvalidUtf8);
        // A non-final fragment may.
        let mut input = frame(false, TEXT, &[0xF0, 0x9F]);
        input.extend(frame(false, CONTINUATION, &[0x98]));
        input.extend(frame(true, CONTINUATION, &[0x80]));
        assert_eq!(ok(&input, 1).len(), 4);
    }

    #[test]
    fn utf8_fails_fast_before_the_chunk_is_complete() {
        let mut d = FrameDecoder::new(1024);
        let mut input = frame(true, TEXT, &[b'a'; 2000]);
        input[2 + 4 + 10] = 0xFF;
        d.feed(&input[..30]);
        assert_eq!(d.next_chunk(), Err(InvalidUtf8));
        // A valid prefix just waits.
        let mut d = FrameDecoder::new(1024);
        d.feed(&frame(true, TEXT, "é".repeat(1000).as_bytes())[..500]);
        assert_eq!(d.next_chunk(), Ok(None));
        // An impossible second byte fails without waiting for the third.
        let mut d = FrameDecoder::new(1024);
        d.feed(&[0x81, 126, 0x07, 0xD0, b'x', 0xE0, 0x80]);
        assert_eq!(d.next_chunk(), Err(InvalidUtf8));
    }

    #[test]
    fn mixed_stream_is_split_independent() {
        let mut rng = Rng(11);
        let text = "ünïcødé ❤ 😀 text ".repeat(300);
        let t = text.as_bytes();
        let (big, bin) = (rng.bytes(70000), rng.bytes(5000));
        let frames = [
            frame(true, TEXT, t),
            frame(false, TEXT, &t[..1001]),
            frame(true, PING, &rng.bytes(125)),
            frame(false, CONTINUATION, &t[1001..2050]),
            frame(true, PONG, b""),
            frame(true, CONTINUATION, &t[2050..]),
            frame(true, BINARY, &bin),
            frame(true, BINARY, b""),
            frame64(false, BINARY, &big),
            frame(true, CONTINUATION, &rng.bytes(3)),
            frame(true, CLOSE, &[0x03, 0xE9, b'x']),
        ];
        let input = frames.concat();
        let payload = 2 * t.len() + 125 + bin.len() + big.len() + 3 + 3;
        for max in [1, 3, 7, 125, 1024, 16384] {
            let c = ok(&input, max);
            assert_eq!(c.concat_data().len(), payload);
            // The fragmented text message, reassembled around its control frames.
            let start = c.iter().position(|c| c.opcode == TEXT && !c.fin).unwrap();
            let end = c.iter().position(|c| c.opcode == BINARY).unwrap();
            let text_msg = c[start..end]
                .iter()
                .filter(|c| c.opcode <= TEXT)
                .flat_map(|c| c.data.iter().copied())
                .collect::<Vec<u8>>();
            assert!(text_msg == t);
        }
    }

    #[test]
    fn buffered_counts_unyielded_bytes() {
        let mut d = FrameDecoder::new(4);
        assert_eq!(d.buffered(), 0);
        d.feed(&frame(true, BINARY, b"0123456789"));
        assert_eq!(d.buffered(), 12);
        assert_eq!(d.next_chunk().unwrap().unwrap().data, b"0123");
        assert_eq!(d.buffered(), 6);
        d.next_chunk().unwrap();
        assert_eq!(d.buffered(), 2);
        // The tail waits for the frame's end.
        let c = d.next_chunk().unwrap().unwrap();
        assert_eq!((c.data.as_slice(), c.ends_frame()), (&b"89"[..], true));
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_chunk(), Ok(None));
        // Dead decoders hold nothing.
        d.feed(&[0xC1, 0, 1, 2, 3]);
        assert_eq!(d.next_chunk(), Err(ReservedBits));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn partial_chunk_waits_and_memory_stays_bounded() {
        let mut d = FrameDecoder::new(1000);
        let input = frame(true, BINARY, &[5; 100_000]);
        let mut yielded = 0;
        for piece in input.chunks(7) {
            d.feed(piece);
            while let Some(c) = d.next_chunk().unwrap() {
                assert!(c.data.len() == 1000);
                yielded += c.data.len();
            }
            assert!(d.buffered() < 1000 + 10 + 7);
        }
        assert_eq!(yielded, 100_000);
    }

    #[test]
    fn draining_a_big_feed_is_linear() {
        // Quadratic draining (Vec::remove(0)-style) would take minutes here.
        let payload = vec![1u8; 8 << 20];
        let mut d = FrameDecoder::new(16);
        d.feed(&frame(true, BINARY, &payload));
        let mut n = 0;
        while let Some(c) = d.next_chunk().unwrap() {
            n += c.data.len();
        }
        assert_eq!(n, payload.len());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn zero_max_chunk_acts_as_one() {
        assert_eq!(whole(&frame(true, BINARY, b"ab"), 0).0.len(), 2);
    }

    #[test]
    fn encode_lengths_and_round_trip() {
        let mut rng = Rng(5);
        for len in [0usize, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70001] {
            let payload = rng.bytes(len);
            let mask = [0x37, 0xFA, 0x21, 0x3D];
            let mut out = vec![0xEE]; // appends, keeping what is there
            encode_frame(&mut out, true, BINARY, &payload, mask);
            let header = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), 1 + header + 4 + len);
            assert_eq!(&out[1 + header..1 + header + 4], &mask);
            let (fin, op, got, used) = parse_client(&out[1..]);
            assert_eq!((fin, op, used), (true, BINARY, out.len() - 1));
            assert_eq!(got, payload);

            // Unmasked, the same bytes are a server frame our decoder reads back.
            let mut server = out[1..1 + header].to_vec();
            server[1] &= 0x7F;
            server.extend_from_slice(&got);
            let c = whole(&server, 1 << 20).0;
            assert_eq!(c.concat_data(), payload);
        }
    }

    #[test]
    fn encode_rfc_examples() {
        // RFC 6455 §5.7: masked "Hello".
        let mut out = Vec::new();
        encode_frame(&mut out, true, TEXT, b"Hello", [0x37, 0xFA, 0x21, 0x3D]);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        );
        // First fragment "Hel", then a ping, in one buffer.
        let mut out = Vec::new();
        encode_frame(&mut out, false, TEXT, b"Hel", [0; 4]);
        encode_frame(&mut out, true, PING, b"", [1, 2, 3, 4]);
        assert_eq!(
            out,
            [0x01, 0x83, 0, 0, 0, 0, b'H', b'e', b'l', 0x89, 0x80, 1, 2, 3, 4]
        );
    }

    #[test]
    fn encode_any_opcode() {
        for op in 0..=15u8 {
            for fin in [false, true] {
                let mut out = Vec::new();
                encode_frame(&mut out, fin, op, b"x", [9, 8, 7, 6]);
                let (f, o, p, _) = parse_client(&out);
                assert_eq!((f, o, p.as_slice()), (fin, op, &b"x"[..]));
            }
        }
        // Bits above the opcode's four are not smuggled into RSV.
        let mut out = Vec::new();
        encode_frame(&mut out, true, 0xF1, b"", [0; 4]);
        assert_eq!(out[0], 0x81);
    }

    #[test]
    fn mask_matches_bytewise_xor() {
        let mut rng = Rng(9);
        for len in 0..40 {
            let data = rng.bytes(len);
            let mask = [1, 2, 3, 0x80];
            let mut fast = data.clone();
            apply_mask(&mut fast, mask, 0);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, x)| x ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn close_codes_for_errors() {
        assert_eq!(InvalidUtf8.close_code(), 1007);
        assert_eq!(MaskedFrame.close_code(), 1002);
        assert_eq!(LengthTooLarge.close_code(), 1002);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(1234);
        for round in 0..2000 {
            let len = (rng.next() % 64) as usize;
            let mut input = rng.bytes(len);
            // Bias towards legal-looking headers so decoding gets deep.
            if let Some(b) = input.get_mut(1) {
                if round % 2 == 0 {
                    *b &= 0x7F;
                }
            }
            if let Some(b) = input.get_mut(0) {
                if round % 3 == 0 {
                    *b &= 0x8F;
                }
            }
            let max = (rng.next() % 5) as usize;
            let _ = decode(&input, max.max(1));
        }
    }
}
