//! Nix's own formats and facts, below everything else: nix32, SHA-256 digests as Nix prints
//! them, store paths and content addresses, NARs (`nar`), narinfos (`narinfo`), signing keys
//! and signatures (`sign`), NAR compression methods, the store directory and the system
//! string. It imports nothing else from the crate.

mod compression;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nix32;
pub mod sha256_pair;
pub mod sign;
pub mod store_path;
#[cfg(test)]
pub(crate) mod testing;

pub use compression::Compression;
pub use hash::{HashParseError, HashingReader, HashingWriter, Sha256Hash};
pub use nix32::{is_nix32, random_hash_part};
pub use store_path::{StorePath, StorePathError, validate_name};

/// The store directory, spelled once for [`STORE_DIR`] and [`STORE_PREFIX`].
macro_rules! store_dir {
    () => {
        "/nix/store"
    };
}

/// The Nix store directory every path pubdeck handles lives in.
pub const STORE_DIR: &str = store_dir!();

/// `/nix/store/`: the prefix of every store path (11 bytes).
pub const STORE_PREFIX: &str = concat!(store_dir!(), "/");

/// The Nix system string of this machine (`x86_64-linux`, `aarch64-darwin`, …).
pub fn current_system() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{}-{os}", std::env::consts::ARCH)
}
