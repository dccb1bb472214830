//! Verifying: content addresses and their checks, and fetching a NAR while checking its
//! compressed and uncompressed hashes.

use super::*;

/// How a narinfo's store path follows from its content (its `CA: fixed:r:sha256:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentAddress {
    /// The NAR hash, or for a path that refers to itself the hash modulo its own hash part.
    pub hash: Sha256Hash,
    pub self_reference: bool,
}

/// Checks that `info`'s store path follows from its content address, name and references
/// (for a path without a self-reference the CA hash must also be its NarHash). `None` when
/// the narinfo has no `CA` line; see [`require_content_address`].
pub fn check_ca(info: &NarInfo) -> Result<Option<ContentAddress>, CacheError> {
    let Some(ca) = &info.ca else { return Ok(None) };
    let fail = |detail: String| CacheError::CaMismatch {
        path: info.store_path.clone(),
        detail,
    };
    let Some(h) = ca.strip_prefix("fixed:r:") else {
        return Err(fail(format!(
            "unsupported CA {ca:?} (pubdeck knows fixed:r:sha256: only)"
        )));
    };
    // As Nix: the hash after `sha256:` in nix32, base16 or base64.
    let hash = Sha256Hash::parse_any(h)
        .ok()
        .filter(|_| h.starts_with("sha256:"))
        .ok_or_else(|| fail(format!("unsupported CA {ca:?}: not fixed:r:sha256:<hash>")))?;
    let self_reference = info.references.contains(&info.store_path);
    let others: Vec<StorePath> = info
        .references
        .iter()
        .filter(|r| **r != info.store_path)
        .cloned()
        .collect();
    if !self_reference && hash != info.nar_hash {
        return Err(fail(format!(
            "CA {ca:?} does not match NarHash {}, and the path does not refer to itself",
            info.nar_hash
        )));
    }
    let expected = StorePath::from_ca(&hash, info.store_path.name(), &others, self_reference)?;
    if expected != info.store_path {
        return Err(fail(format!(
            "its content address, name and references give {expected}, not {}",
            info.store_path
        )));
    }
    Ok(Some(ContentAddress {
        hash,
        self_reference,
    }))
}

/// [`check_ca`], refusing a narinfo without a `CA` line: its store path would not follow
/// from its content, so nothing would stop it from naming another package's path.
pub fn require_content_address(info: &NarInfo) -> Result<ContentAddress, CacheError> {
    check_ca(info)?.ok_or_else(|| CacheError::CaMismatch {
        path: info.store_path.clone(),
        detail: "it is not content-addressed (no CA line), so its store path does not follow from its content".into(),
    })
}

/// Verifies and unpacks a downloaded NAR: checks `info`'s signature against `trusted`, its CA
/// (when present), then streams `compressed` through FileSize/FileHash checks, the decompressor
/// and NarSize/NarHash (and for a self-referencing path, CA) checks while unpacking into a
/// temporary directory beside `dest`, and renames the result to `dest` only when every check
/// passed. Nothing is left behind on error.
pub fn fetch_nar<R: Read>(
    info: &NarInfo,
    trusted: &[PublicKey],
    compressed: R,
    dest: &Path,
) -> Result<NarSummary, CacheError> {
    info.verify(trusted)?;
    let ca = check_ca(info)?;
    if fs::symlink_metadata(dest).is_ok() {
        return Err(CacheError::DestExists(dest.to_owned()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".pubdeck-fetch-")
        .tempdir_in(parent)
        .map_err(io_err("create a temporary directory in", parent))?;
    let staged = tmp.path().join("out");
    let summary = verify_stream(info, ca, compressed, Some(&staged))?;
    rename_noreplace(&staged, dest)?;
    Ok(summary)
}

/// [`fetch_nar`] without unpacking: every check, nothing written.
pub fn verify_nar<R: Read>(
    info: &NarInfo,
    trusted: &[PublicKey],
    compressed: R,
) -> Result<NarSummary, CacheError> {
    info.verify(trusted)?;
    let ca = check_ca(info)?;
    verify_stream(info, ca, compressed, None)
}

/// Streams `compressed` through the FileSize/FileHash checks, the decompressor and the
/// NarSize/NarHash/CA checks, unpacking to `unpack` when given.
pub(super) fn verify_stream<R: Read>(
    info: &NarInfo,
    ca: Option<ContentAddress>,
    compressed: R,
    unpack: Option<&Path>,
) -> Result<NarSummary, CacheError> {
    let mismatch = |check, expected: String, actual: String| CacheError::Mismatch {
        path: info.store_path.clone(),
        check,
        expected,
        actual,
    };
    // Read at most one byte more than declared, so a lying server cannot stream forever.
    let mut file_reader = HashingReader::new(compressed.take(info.compressed_limit()));
    let mut nar_left = 0;
    // A path that refers to itself is named by its NAR hashed modulo its own hash part,
    // hashed in the same pass as its NarHash.
    let own = ca
        .filter(|c| c.self_reference)
        .map(|_| info.store_path.hash_bytes());
    let mut modulo = None;
    let unpacked = match info.compression.decoder(&mut file_reader) {
        Ok(dec) => {
            let mut limited = dec.take(info.nar_size.saturating_add(1));
            let r = match (&own, unpack) {
                (Some(own), dest) => {
                    nar::check_nar_modulo(&mut limited, dest, own).map(|(summary, m)| {
                        modulo = Some(m);
                        summary
                    })
                }
                (None, Some(dest)) => nar::unpack_nar(&mut limited, dest),
                (None, None) => nar::validate_nar(&mut limited),
            };
            nar_left = limited.limit();
            r
        }
        Err(source) => Err(NarReadError::Input { offset: 0, source }),
    };
    // Hash the whole file even if decoding stopped early (trailing data, corrupt stream).
    io::copy(&mut file_reader, &mut io::sink()).map_err(|source| CacheError::Unpack {
        path: info.store_path.clone(),
        source: NarReadError::Input { offset: 0, source },
    })?;
    let (_, file_hash, file_size) = file_reader.finish();
    // Checked when the narinfo names them (Nix does not check them at all); without them the
    // NAR hash below still proves the contents.
    if let Some(want) = info.file_size
        && file_size != want
    {
        let actual = if file_size > want {
            "more".to_owned()
        } else {
            file_size.to_string()
        };
        return Err(mismatch("FileSize", want.to_string(), actual));
    }
    if info.file_size.is_none() && file_size >= info.compressed_limit() {
        return Err(mismatch(
            "compressed size",
            format!("at most {}", info.compressed_limit() - 1),
            "more".into(),
        ));
    }
    if let Some(want) = info.file_hash
        && file_hash != want
    {
        return Err(mismatch(
            "FileHash",
            want.to_string(),
            file_hash.to_string(),
        ));
    }
    if nar_left == 0 {
        return Err(mismatch(
            "NarSize",
            info.nar_size.to_string(),
            "more".to_owned(),
        ));
    }
    let summary = unpacked.map_err(|source| CacheError::Unpack {
        path: info.store_path.clone(),
        source,
    })?;
    if summary.nar_size != info.nar_size {
        return Err(mismatch(
            "NarSize",
            info.nar_size.to_string(),
            summary.nar_size.to_string(),
        ));
    }
    if summary.nar_hash != info.nar_hash {
        return Err(mismatch(
            "NarHash",
            info.nar_hash.to_string(),
            summary.nar_hash.to_string(),
        ));
    }
    if let (Some(got), Some(ca)) = (modulo, ca)
        && got != ca.hash
    {
        return Err(mismatch(
            "CA (hash modulo self-references)",
            ca.hash.to_string(),
            got.to_string(),
        ));
    }
    Ok(summary)
}

/// Moves the verified tree into place, never over an existing one.
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> Result<(), CacheError> {
    crate::fsutil::rename_noreplace(from, to).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            CacheError::DestExists(to.to_owned())
        } else {
            io_err("rename to", to)(e)
        }
    })
}
