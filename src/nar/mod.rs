//! The Nix archive (NAR) format and the hashing around it: nix32, SHA-256 digests, store paths,
//! a streaming NAR writer and a strict streaming NAR reader/unpacker.

pub mod hash;
pub mod nix32;
pub mod read;
pub mod rewrite;
pub mod store_path;
pub mod write;

pub use hash::{HashParseError, HashingReader, HashingWriter, Sha256Hash};
pub use read::{ListingWriter, NarProblem, NarReadError, list_nar, unpack_nar, validate_nar};
pub use rewrite::{HashModulo, HashPart, RefScanner, Rewriter};
pub use store_path::{StorePath, StorePathError, validate_name};
pub use write::{NarWriteError, dump_path, dump_path_scanning, dump_path_unhashed};

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
