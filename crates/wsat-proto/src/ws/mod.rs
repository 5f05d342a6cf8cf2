//! RFC 6455 for a client: URI parsing, the opening handshake, and a streaming
//! frame codec.
//!
//! The frame codec is ours rather than tungstenite's because AT semantics need
//! chunk-level control (payload cut at `buffer_size` boundaries, with each
//! chunk's opcode, fin, payload length and offset) that a message API hides.

pub mod frame;
pub mod handshake;
pub mod header;
pub mod uri;

pub use frame::{encode_frame, Chunk, ChunkRef, FrameDecoder, ProtocolError};
pub use handshake::{accept_key, build_request, parse_response, HandshakeError, RequestParams};
pub use header::{apply_mask, Header, Opcode};
pub use uri::{parse_ws_uri, UriError, WsUri};

/// Opcodes of RFC 6455 §5.2.
pub mod opcode {
    /// The next frame of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;

    /// Close, ping, pong and the reserved 0xB..=0xF.
    pub fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }
}

/// Close status codes of RFC 6455 §7.4.1 that the client sends.
pub mod close_code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
}
