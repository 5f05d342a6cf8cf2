//! Streaming frame codec (RFC 6455 §5).
use alloc::vec::Vec;

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

/// A violation of RFC 6455 by the server; the connection must fail with `close_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    MaskedFrame,
    ReservedBits,
    ReservedOpcode,
    FragmentedControl,
    ControlTooLong,
    UnexpectedContinuation,
    UnfinishedMessage,
    LengthTooLarge,
    BadClosePayload,
    BadCloseCode,
    InvalidUtf8,
}

impl ProtocolError {
    /// The close code to send: 1007 for invalid UTF-8, else 1002.
    pub fn close_code(self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => super::close_code::INVALID_PAYLOAD,
            _ => super::close_code::PROTOCOL_ERROR,
        }
    }
}

/// Decodes server frames as bytes arrive, yielding payload chunks.
pub struct FrameDecoder {
    _private: (),
}

impl FrameDecoder {
    /// `max_chunk` ≥ 1: data-frame payloads are yielded in chunks of at most
    /// this many bytes, cut at multiples of it from the payload's start.
    pub fn new(_max_chunk: usize) -> Self {
        todo!("ws helper")
    }

    /// Appends received bytes.
    pub fn feed(&mut self, _bytes: &[u8]) {
        todo!("ws helper")
    }

    /// The next chunk, if one is complete. A data chunk is complete when
    /// `max_chunk` bytes of its payload are in or its frame ends; an empty
    /// frame yields one empty chunk. Control frames come whole, in one chunk,
    /// and may arrive between the frames of a fragmented message. After an
    /// error the decoder is dead: every later call returns the same error.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, ProtocolError> {
        todo!("ws helper")
    }

    /// Bytes fed but not yet yielded (for flow control).
    pub fn buffered(&self) -> usize {
        todo!("ws helper")
    }
}

/// Appends one masked client frame to `out`.
pub fn encode_frame(_out: &mut Vec<u8>, _fin: bool, _opcode: u8, _payload: &[u8], _mask: [u8; 4]) {
    todo!("ws helper")
}
