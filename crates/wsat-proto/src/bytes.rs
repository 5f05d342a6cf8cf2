//! Appending a run of bytes received from the host or a link to a buffer
//! at full speed.
//!
//! glibc's `memcpy` copies runs from 2112 bytes up with `rep movsb` on
//! CPUs with fast short `rep movsb` (FSRM; from 8 KiB on other AVX2 CPUs).
//! On AMD Zen CPUs (the bench machine is one) that runs at 1–2 GB/s
//! instead of about 40 when the destination starts 1 to 31 bytes past the
//! source modulo 4 KiB. Where a payload lands in the host output against
//! where it sat in the read puts a good part of the receive path's copies
//! in that band (18% of their bytes, counted with a uprobe on `memmove`),
//! which made the copy into `+WS_DATA` a third of the modem's CPU. In pieces of
//! [`PIECE`] bytes glibc uses its vector loop, which is as fast there as
//! anywhere; on other targets this is one `extend_from_slice` more per
//! piece.
use alloc::vec::Vec;

/// Below the lowest of glibc's `rep movsb` thresholds (2112 bytes).
const PIECE: usize = 2048;

/// `out.extend_from_slice(bytes)`, for runs that may be large.
pub(crate) fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    for piece in bytes.chunks(PIECE) {
        out.extend_from_slice(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_every_byte_in_order() {
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 5 * PIECE + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = b"head".to_vec();
            append(&mut out, &bytes);
            assert_eq!(&out[..4], b"head");
            assert_eq!(&out[4..], &bytes[..], "{len}");
        }
    }
}
