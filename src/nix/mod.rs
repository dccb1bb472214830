//! Nix's own formats and facts, below everything else: NAR compression methods, the store
//! directory and the system string. It imports nothing else from the crate.

mod compression;

pub use compression::Compression;

/// The Nix store directory every path pubdeck handles lives in.
pub const STORE_DIR: &str = "/nix/store";

/// The Nix system string of this machine (`x86_64-linux`, `aarch64-darwin`, …).
pub fn current_system() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{}-{os}", std::env::consts::ARCH)
}
