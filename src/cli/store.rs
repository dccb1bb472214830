//! `pubdeck store …`: direct access to a Catalog Store (put, get, ls).
//!
//! Progress goes to stderr, one line per event worth showing (machine-greppable:
//! `part N done`, a rate line about once a second, and a final summary line).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::config::Settings;

use crate::store::{
    DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, DownloadOptions, Progress, ProgressSink, PutOptions,
    PutOutcome, Store, StoreError, StoreUrl, parse_size,
};

#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Upload FILE to KEY (multipart, resumable, skipped when already present).
    Put {
        file: PathBuf,
        key: String,
        /// Store URL: file:///path or s3://bucket?endpoint=…&region=…&profile=…
        #[arg(long, env = "PUBDECK_STORE")]
        store: String,
        /// Multipart part size, e.g. 8MiB, 16M, 5242880.
        #[arg(long, value_parser = parse_size)]
        part_size: Option<u64>,
        /// Parts uploaded at the same time.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Files up to this size go in one streamed PUT (not resumable); larger ones
        /// multipart. Default 16MiB. Raise it for servers whose CompleteMultipartUpload
        /// copies every part (s3s-fs, some self-hosted stores).
        #[arg(long, value_parser = parse_size)]
        multipart_threshold: Option<u64>,
        /// Where resume journals live (default: <data dir>/upload-journals).
        #[arg(long, env = "PUBDECK_JOURNAL_DIR")]
        journal_dir: Option<PathBuf>,
        /// The file's content hash (e.g. the NAR FileHash); part of the resume identity.
        #[arg(long)]
        hash: Option<String>,
        /// Warn when nothing moved for this many seconds.
        #[arg(long, default_value_t = 15)]
        stall_secs: u64,
    },
    /// Download KEY to OUT (resumes OUT.part; verifies size and optional SHA-256).
    Get {
        key: String,
        out: PathBuf,
        #[arg(long, env = "PUBDECK_STORE")]
        store: String,
        /// Expected SHA-256 of the object, hex.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// List the objects in the store.
    Ls {
        #[arg(long, env = "PUBDECK_STORE")]
        store: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// Print progress events as stderr lines until the sender side is dropped.
fn spawn_printer(verb: &'static str) -> (ProgressSink, tokio::task::JoinHandle<()>) {
    let (sink, mut rx) = ProgressSink::channel();
    let handle = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                Progress::Started {
                    key,
                    total_bytes,
                    parts,
                    part_size,
                    resumed_bytes,
                } => crate::cli::output::progress!(
                    "{verb} {key}: {total_bytes} bytes in {parts} part(s) of {part_size} bytes, {resumed_bytes} bytes already done"
                ),
                Progress::PartFinished { part, bytes } => {
                    crate::cli::output::progress!("part {part} done ({bytes} bytes)")
                }
                Progress::Rate {
                    bytes_per_sec,
                    eta,
                    done,
                    total,
                } => {
                    let pct = if total == 0 {
                        100.0
                    } else {
                        done as f64 * 100.0 / total as f64
                    };
                    let eta = eta.map_or("?".into(), |d| format!("{}s", d.as_secs()));
                    crate::cli::output::progress!(
                        "{} / {} ({pct:.1}%) at {}/s, eta {eta}",
                        super::output::human_bytes(done),
                        super::output::human_bytes(total),
                        super::output::human_bytes(bytes_per_sec as u64)
                    );
                }
                Progress::Retry {
                    part,
                    attempt,
                    delay,
                    reason,
                } => {
                    let what = part.map_or("request".into(), |p| format!("part {p}"));
                    crate::cli::output::progress!(
                        "retrying {what} (attempt {}) in {} ms: {reason}",
                        attempt + 1,
                        delay.as_millis()
                    );
                }
                Progress::Stalled { idle } => {
                    eprintln!("warning: nothing moved for {}s", idle.as_secs())
                }
                Progress::Finished {
                    key,
                    total_bytes,
                    sent_bytes,
                    resumed_bytes,
                    elapsed,
                } => {
                    let secs = elapsed.as_secs_f64().max(1e-9);
                    crate::cli::output::progress!(
                        "{verb} {key}: sent {sent_bytes} of {total_bytes} bytes (resumed {resumed_bytes}) in {secs:.2}s ({}/s)",
                        super::output::human_bytes((sent_bytes as f64 / secs) as u64)
                    );
                }
                Progress::Skipped { key, size } => {
                    crate::cli::output::progress!(
                        "{key} is already in the store ({size} bytes); sent 0 bytes"
                    )
                }
                _ => {}
            }
        }
    });
    (sink, handle)
}

/// Opens `store` as every command does: with the endpoints `settings` trust.
async fn open(store: &str, settings: &Settings) -> Result<Store, StoreError> {
    Store::open(&StoreUrl::parse(store)?, &settings.store_open()).await
}

/// Run a `store` subcommand with the resolved settings (a config file that cannot be read
/// stops the caller, rather than trusting no endpoint in silence).
pub async fn run(cmd: StoreCommand, settings: &Settings) -> Result<(), StoreError> {
    match cmd {
        StoreCommand::Put {
            file,
            key,
            store,
            part_size,
            concurrency,
            multipart_threshold,
            journal_dir,
            hash,
            stall_secs,
        } => {
            let mut open_opts = settings.store_open();
            open_opts.multipart_threshold = multipart_threshold.or(open_opts.multipart_threshold);
            let store = Store::open(&StoreUrl::parse(&store)?, &open_opts).await?;
            let opts = PutOptions {
                part_size: part_size.unwrap_or(DEFAULT_PART_SIZE),
                concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
                journal_dir: journal_dir.or_else(|| Some(settings.journal_dir())),
                content_hash: hash,
                timing: crate::store::ProgressTiming {
                    stall_after: Duration::from_secs(stall_secs.max(1)),
                    ..Default::default()
                },
                ..PutOptions::default()
            };
            let (sink, printer) = spawn_printer("upload");
            let res = store.put_file(&key, &file, &opts, &sink).await;
            drop(sink);
            let _ = printer.await;
            match res? {
                PutOutcome::Uploaded { .. } | PutOutcome::Skipped { .. } => Ok(()),
            }
        }
        StoreCommand::Get {
            key,
            out,
            store,
            sha256,
        } => {
            let expected_sha256 = match sha256 {
                None => None,
                Some(h) => Some(parse_sha256(&h).ok_or_else(|| StoreError::InvalidKey {
                    key: h.clone(),
                    reason: "--sha256 needs 64 hex digits".into(),
                })?),
            };
            let store = open(&store, settings).await?;
            let (sink, printer) = spawn_printer("download");
            let opts = DownloadOptions {
                expected_sha256,
                ..Default::default()
            };
            let res = store.download(&key, &out, &opts, &sink).await;
            drop(sink);
            let _ = printer.await;
            res.map(|_| ())
        }
        StoreCommand::Ls { store, prefix } => {
            let store = open(&store, settings).await?;
            for obj in store.list(&prefix).await? {
                println!("{}\t{}", obj.size, obj.key);
            }
            Ok(())
        }
    }
}

fn parse_sha256(h: &str) -> Option<[u8; 32]> {
    let v = hex::decode(h.trim()).ok()?;
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
