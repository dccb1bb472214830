//! The Nix archive (NAR) format: a streaming NAR writer (hash and reference scan in the same
//! pass), a strict streaming NAR reader/unpacker, the NAR listing, and streaming reference
//! scanning and rewriting.

pub mod chunked;
pub mod read;
pub mod rewrite;
pub mod write;

pub use read::{
    ListingWriter, NarProblem, NarReadError, check_nar_modulo, list_nar, unpack_nar, validate_nar,
};
pub use rewrite::{HashAndModulo, HashModulo, HashPart, RefScanner, Rewriter};
pub use write::{
    CHUNK_SIZE, ChunkSink, MIN_CHUNK, NarWriteError, dump_path, dump_path_chunks,
    dump_path_scanning,
};

use super::Sha256Hash;

/// Hash and size of a whole NAR (the narinfo `NarHash` and `NarSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NarSummary {
    pub nar_hash: Sha256Hash,
    pub nar_size: u64,
}

/// Zero bytes needed after `len` bytes to reach a multiple of 8.
pub(crate) fn pad_len(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

#[cfg(test)]
mod tests;
