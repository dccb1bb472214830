//! Why an install failed, with its hint.

use std::path::{Path, PathBuf};

use crate::git::Check;

use super::{PackageRef, nix};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{} is not ready to install: {}", .0, .1.iter().filter(|c| c.blocks()).map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "))]
    NotReady(PackageRef, Vec<Check>),
    #[error("download of {key} from {store} failed: {message}")]
    Download {
        store: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Verify(String),
    #[error("{path} is already in {where_} with other contents than the catalog's ({detail})")]
    Occupied {
        path: String,
        where_: String,
        detail: String,
    },
    #[error("importing into the Nix store failed: {0}")]
    Import(#[from] nix::NixError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("cannot prepare {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the disk is full: installing needs {} in {} and {} is free; nothing was installed",
        crate::text::human_bytes(*.needed),
        .dir.display(),
        crate::text::human_bytes(*.free)
    )]
    DiskFull {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
}

impl InstallError {
    /// This error, or [`InstallError::DiskFull`] when what stopped it was a full disk (or a
    /// quota) under `dir`, where the install needed `needed` bytes.
    pub(super) fn or_disk_full(self, dir: &Path, needed: u64) -> InstallError {
        let full = match &self {
            InstallError::Io { source, .. } => crate::fsutil::is_disk_full(source),
            InstallError::Import(nix::NixError::Failed { message, .. }) => {
                message.contains("No space left on device")
            }
            InstallError::Download { message, .. } | InstallError::Verify(message) => {
                message.contains(DISK_FULL_MARK)
            }
            _ => false,
        };
        if full {
            InstallError::DiskFull {
                dir: dir.to_path_buf(),
                needed,
                free: crate::fsutil::free_bytes(dir).unwrap_or(0),
            }
        } else {
            self
        }
    }
}

/// Put in front of a message whose cause was a full disk, before the cause is flattened into
/// the message (so [`InstallError::or_disk_full`] still knows).
const DISK_FULL_MARK: &str = "(disk full) ";

pub(super) fn message_of(e: &(dyn std::error::Error + 'static)) -> String {
    if crate::fsutil::is_disk_full(e) {
        format!("{DISK_FULL_MARK}{e}")
    } else {
        e.to_string()
    }
}

impl crate::event::Hinted for InstallError {
    fn hint(&self) -> Option<String> {
        match self {
            InstallError::NotReady(p, _) => Some(format!("run `pubdeck ready {p}` for the details and fixes")),
            InstallError::Verify(_) => Some("the artifact in the store does not match what was signed; nothing was installed. Ask the publisher to publish again".into()),
            InstallError::Occupied { where_, path, .. } if where_ == "the Nix store" => Some(format!("check it with `nix store verify {path}`; `nix store delete {path}` removes it if nothing uses it")),
            InstallError::Occupied { path, .. } => Some(format!("remove {path} (chmod -R u+w first) and install again")),
            InstallError::Manifest(e) => e.hint(),
            InstallError::DiskFull { dir, .. } => Some(format!(
                "free space on the file system of {}, or install elsewhere with PUBDECK_DATA_DIR",
                dir.display()
            )),
            _ => None,
        }
    }
}
