//! Subcommands that work on local files only: `key generate|public`, `pack`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::{CmdResult, Exit};
use crate::cache::{Compression, PackOptions};
use crate::closure;
use crate::nix::sign::{KeyError, SecretKey};
use crate::store::{ProgressSink, PutOptions, Store};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a Nix-format ed25519 key pair (secret file mode 0600, FILE.pub beside it).
    Generate {
        /// Key name, by convention `<org>-<n>` (e.g. myorg-1).
        #[arg(long)]
        name: String,
        /// Secret key file to create (default: ./<name>.key); never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the public key of a secret key file.
    Public { file: PathBuf },
}

impl From<KeyError> for Exit {
    fn from(e: KeyError) -> Self {
        let hint = match &e {
            KeyError::Exists(_) => Some(
                "choose another --out, or delete the old key if you really mean to replace it"
                    .into(),
            ),
            _ => None,
        };
        Exit::new(e.to_string(), hint)
    }
}

pub fn key(cmd: KeyCommand) -> CmdResult {
    match cmd {
        KeyCommand::Generate { name, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
            let key = SecretKey::generate(&name)?;
            let pub_path = key.write_new(&out, crate::fsutil::write_new)?;
            println!("{}", key.public().to_nix_string());
            crate::cli::output::progress!(
                "wrote {} (secret, mode 0600) and {}",
                out.display(),
                pub_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Public { file } => {
            let key = SecretKey::from_file(&file)?;
            println!("{}", key.public().to_nix_string());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Parses `none|xz|zstd`.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::from_nix_name(s)
        .ok_or_else(|| format!("unknown compression `{s}`; use zstd, xz or none"))
}

/// `pubdeck pack PATH --name N --to STORE --signing-key F`: pack a tree as a signed,
/// content-addressed store path, with every store path it refers to, into a binary cache (a
/// directory, `file://…` or `s3://…`), through the same write path as publish.
pub async fn pack(
    path: &Path,
    name: &str,
    to: &str,
    signing_key: &Path,
    compression: Compression,
    as_json: bool,
) -> CmdResult {
    let key = SecretKey::from_file(signing_key)?;
    let url = if to.contains("://") {
        to.to_string()
    } else {
        let dir = std::path::absolute(to).unwrap_or_else(|_| PathBuf::from(to));
        format!("file://{}", dir.display())
    };
    // The endpoints the user trusts with AWS credentials, as every command opens stores.
    let settings =
        crate::config::Settings::resolve(&Default::default()).map_err(super::Exit::from)?;
    let store = Store::open_str(&url, &settings.store_open())
        .await
        .map_err(|e| Exit::hinted(&e))?;
    let input = closure::input_for_tree(path, name).map_err(|e| Exit::new(e.to_string(), None))?;
    let tmp = tempfile::Builder::new()
        .prefix("pubdeck-pack-")
        .tempdir()
        .map_err(|e| Exit::new(format!("cannot create a temporary directory: {e}"), None))?;
    let opts = PackOptions::with(compression);
    let sources = closure::Sources {
        memo: Some(closure::Memo::new(&settings.closure_memo_dir())),
        ..Default::default()
    };
    let closure = closure::prepare(
        &input,
        &sources,
        &store,
        &key,
        &opts,
        tmp.path(),
        Some(&closure::EarlyUpload {
            put: PutOptions::default(),
            packed: Box::new(|_, _| ProgressSink::none()),
        }),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .map_err(|e| Exit::new(e.to_string(), None))?;
    let infos: Vec<_> = closure.packed.iter().map(|p| p.narinfo(&key)).collect();
    // The dependencies went up while packing; the tree itself goes last.
    let skip = closure.uploaded.as_ref().map_or(0, Vec::len);
    let added = closure::add_closure(
        &store,
        &closure.packed[skip..],
        &infos[skip..],
        &PutOptions::default(),
        |_| ProgressSink::none(),
    )
    .await
    .map_err(|e| Exit::new(e.to_string(), None))?;
    let info = infos.last().expect("the closure holds the tree");
    let all: Vec<String> = closure.paths().map(|(p, _)| p.to_string()).collect();
    if as_json {
        println!(
            "{}",
            json!({
                "store_path": info.store_path.to_string(),
                "narinfo": store.url().object_url(&info.file_name()),
                "url": info.url,
                "nar_hash": info.nar_hash.to_string(),
                "nar_size": info.nar_size,
                "file_hash": info.file_hash.map(|h| h.to_string()),
                "file_size": info.file_size,
                "ca": info.ca,
                "closure": all,
                "added": added.last() == Some(&closure::Added::Uploaded),
            })
        );
    } else {
        println!("{}", info.store_path);
    }
    Ok(ExitCode::SUCCESS)
}
