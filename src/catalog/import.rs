//! Bulk registration from NDJSON (`pubdeck catalog import ORG FILE`): one signed
//! [`NewBuild`] per line, the same JSON `POST /v1/catalogs/{org}/builds` takes. Lines are
//! sent in batches ([`Catalog::register_builds`]) of at most [`MAX_BATCH`] builds and
//! [`BATCH_BYTES`] of JSON, each batch all or nothing. Builds already registered with the same
//! NAR hash are skipped, so an interrupted import is resumed by running it again.

use std::io::BufRead;

use super::{BatchOutcome, Catalog, CatalogError, MAX_BATCH, NewBuild};

/// Longest accepted line.
pub const MAX_LINE: usize = 1024 * 1024;
/// Most JSON bytes per batch (the service takes bodies up to 1 MiB).
pub const BATCH_BYTES: usize = 900 * 1024;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// Builds registered by this import.
    pub created: usize,
    /// Builds that were registered already (same NAR hash).
    pub already_published: usize,
    /// Batches sent.
    pub batches: usize,
}

/// Why an import stopped. Every batch before `line`'s was registered; nothing of its own.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    /// The line's signature was refused (checked here before the catalog checks it again).
    #[error("line {line}: {source}")]
    Refused { line: usize, source: CatalogError },
    #[error("cannot read the input at line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error("the batch of lines {first}-{line} was refused: {source}")]
    Batch {
        first: usize,
        line: usize,
        source: CatalogError,
    },
}

impl crate::event::Hinted for ImportError {
    fn hint(&self) -> Option<String> {
        match self {
            ImportError::Batch { source, .. } => source.hint(),
            ImportError::Refused {
                source:
                    CatalogError::Forbidden {
                        why: super::Refusal::UntrustedKey,
                        ..
                    },
                ..
            } => Some(
                "add the public key with `pubdeck catalog add-key ORG KEYFILE.pub`, or sign the build with a key the catalog trusts"
                    .into(),
            ),
            ImportError::Refused { source, .. } => source.hint(),
            ImportError::Line { .. } => Some(
                "each line must be one build as JSON, as `POST /v1/catalogs/{org}/builds` takes it"
                    .into(),
            ),
            ImportError::Read { .. } => None,
        }
    }
}

/// Registers every build of `input` in catalog `org`; `progress` gets the running totals
/// after each batch.
pub async fn import_ndjson<C: Catalog>(
    catalog: &C,
    org: &str,
    mut input: impl BufRead + Send,
    mut progress: impl FnMut(&Imported),
) -> Result<Imported, ImportError> {
    let mut done = Imported::default();
    let mut batch: Vec<NewBuild> = Vec::new();
    // Each line's signature is checked here against the keys the catalog trusts (the catalog
    // checks again), so a refusal names the line, not only its batch.
    let keys = catalog
        .catalog(org)
        .await
        .map_err(|source| ImportError::Batch {
            first: 1,
            line: 1,
            source,
        })?
        .keys;
    let mut first_line = 1;
    let mut bytes = 0;
    let mut line_no = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| ImportError::Read {
                line: line_no + 1,
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.len() > MAX_LINE {
            return Err(ImportError::Line {
                line: line_no,
                message: format!("longer than {MAX_LINE} bytes"),
            });
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let build: NewBuild = serde_json::from_slice(text).map_err(|e| ImportError::Line {
            line: line_no,
            message: format!("not a build: {e}"),
        })?;
        if build.org != org {
            return Err(ImportError::Line {
                line: line_no,
                message: format!("the build is for catalog {:?}, not {org:?}", build.org),
            });
        }
        super::verify_signature(
            &build.store_path,
            &build.nar_hash,
            build.nar_size,
            &build.references,
            &build.signature,
            &keys,
        )
        .map_err(|source| ImportError::Refused {
            line: line_no,
            source,
        })?;
        if !batch.is_empty() && (batch.len() == MAX_BATCH || bytes + text.len() > BATCH_BYTES) {
            send(
                catalog,
                org,
                &mut batch,
                (first_line, line_no - 1),
                &mut done,
            )
            .await?;
            first_line = line_no;
            bytes = 0;
            progress(&done);
        }
        bytes += text.len() + 1;
        batch.push(build);
    }
    if !batch.is_empty() {
        send(catalog, org, &mut batch, (first_line, line_no), &mut done).await?;
        progress(&done);
    }
    Ok(done)
}

async fn send<C: Catalog>(
    catalog: &C,
    org: &str,
    batch: &mut Vec<NewBuild>,
    (first, line): (usize, usize),
    done: &mut Imported,
) -> Result<(), ImportError> {
    let BatchOutcome {
        created,
        already_published,
    } = catalog
        .register_builds(org, batch)
        .await
        .map_err(|source| ImportError::Batch {
            first,
            line,
            source,
        })?;
    done.created += created;
    done.already_published += already_published;
    done.batches += 1;
    batch.clear();
    Ok(())
}
