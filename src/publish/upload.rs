//! Packing a build's closure against the store it goes to, uploading it dependencies first,
//! and putting back what a concurrent GC removed once it is registered.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::build;
use crate::cache::{self, Compression, PackOptions};
use crate::closure;
use crate::event::{Event, EventTx};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::SecretKey;
use crate::store::{ProgressSink, PutOptions, Store};

use super::{Plan, PublishError, send};

/// What a publish packs against: the store it uploads to, the key its narinfos must carry,
/// and where dependencies are looked up.
pub(super) struct Against<'a> {
    pub(super) store: &'a Store,
    pub(super) key: &'a SecretKey,
    pub(super) sources: closure::Sources,
}

/// Packs the output and the store paths it refers to (from the local Nix store), content-
/// addressed, into a temp dir that lives as long as the returned handle. With `against`,
/// dependencies the store already has are not packed (`closure::prepare`); without, every
/// path is.
pub(super) async fn pack(
    output: &build::Output,
    compression: Compression,
    against: Option<&Against<'_>>,
    early: Option<&closure::EarlyUpload>,
    cancel: &CancellationToken,
) -> Result<(closure::Closure, tempfile::TempDir), PublishError> {
    let dir = tempfile::Builder::new()
        .prefix("pubdeck-pack-")
        .tempdir()
        .map_err(|e| PublishError::Pack(e.to_string()))?;
    let input = closure::Input {
        tree: output.path(),
        built_as: output.built_as().clone(),
    };
    let opts = PackOptions::with(compression);
    let packed = match against {
        Some(a) => {
            closure::prepare(
                &input,
                &a.sources,
                a.store,
                a.key,
                &opts,
                dir.path(),
                early,
                cancel,
            )
            .await
        }
        None => {
            let (path, stop) = (dir.path().to_path_buf(), cancel.clone());
            let task = tokio::task::spawn_blocking(move || {
                let known =
                    closure::KnownPaths::local().map_err(|e| closure::ClosureError::Io {
                        path: crate::nix::STORE_DIR.into(),
                        source: e,
                    })?;
                closure::pack_closure(&input, &known, &opts, &path, &|| stop.is_cancelled())
                    .map(closure::Closure::all_packed)
            });
            tokio::select! {
                r = task => r.expect("pack task panicked"),
                _ = cancel.cancelled() => Err(closure::ClosureError::Cancelled),
            }
        }
    };
    match packed {
        Ok(p) => Ok((p, dir)),
        Err(closure::ClosureError::Cancelled) => Err(PublishError::Cancelled),
        Err(closure::ClosureError::Upload(e)) => Err(upload_error(against, e)),
        Err(e) => Err(PublishError::Pack(e.to_string())),
    }
}

fn upload_error(against: Option<&Against<'_>>, e: cache::CacheError) -> PublishError {
    match against {
        Some(a) => upload_error_in(a.store, e),
        None => PublishError::Pack(e.to_string()),
    }
}

fn upload_error_in(store: &Store, e: cache::CacheError) -> PublishError {
    match e {
        e @ cache::CacheError::Conflict { .. } => PublishError::Conflict(e.to_string()),
        e => PublishError::Upload {
            store: store.url().to_string(),
            message: e.to_string(),
        },
    }
}

/// Uploads the closure (see `closure::add_closure`), each transfer reported as events.
pub(super) async fn upload_closure(
    store: &Store,
    closure: &[closure::PackedPath],
    infos: &[NarInfo],
    put: &PutOptions,
    tx: &EventTx,
) -> Result<(), PublishError> {
    let mut forwards = Vec::new();
    let added = closure::add_closure(store, closure, infos, put, |i| {
        let (sink, progress) = ProgressSink::channel();
        forwards.push(tokio::spawn(crate::store::forward_as_events(
            progress,
            tx.clone(),
            crate::event::Direction::Upload,
            infos[i].url.clone(),
        )));
        sink
    })
    .await;
    for f in forwards {
        let _ = f.await;
    }
    let added = added.map_err(|e| upload_error_in(store, e))?;
    for (p, a) in closure.iter().zip(added) {
        if a == closure::Added::AlreadyThere {
            send(
                tx,
                Event::AlreadyInStore {
                    store_path: p.store_path.to_string(),
                },
            )
            .await;
        }
    }
    Ok(())
}

/// Puts back every path of the closure whose narinfo or NAR is no longer in the store (a
/// reused dependency is packed again for it).
pub(super) async fn restore_missing(
    store: &Store,
    closure: &closure::Closure,
    infos: &[NarInfo],
    key: &SecretKey,
    plan: &Plan,
    tmp_dir: &Path,
    tx: &EventTx,
) -> Result<(), PublishError> {
    let failed = |e: cache::CacheError| PublishError::Upload {
        store: store.url().to_string(),
        message: e.to_string(),
    };
    let here = async |info: &NarInfo| -> Result<bool, PublishError> {
        Ok(store
            .exists(&info.url)
            .await
            .map_err(|e| failed(e.into()))?
            && store
                .exists(&info.file_name())
                .await
                .map_err(|e| failed(e.into()))?)
    };
    // Everything there (the usual case): one question for the whole closure.
    let every: Vec<String> = closure
        .reused
        .iter()
        .map(|r| &r.info)
        .chain(infos)
        .flat_map(|info| [info.url.clone(), info.file_name()])
        .collect();
    if store.exists_all(&every).await.unwrap_or(false) {
        return Ok(());
    }
    // Reused dependencies first (they refer to nothing packed), each packed again if lost.
    let mut repacked = Vec::new();
    for r in &closure.reused {
        if here(&r.info).await? {
            continue;
        }
        let (opts, dir, r) = (
            PackOptions::with(plan.compression),
            tmp_dir.to_path_buf(),
            r.clone(),
        );
        let packed = tokio::task::spawn_blocking(move || closure::repack(&r, &opts, &dir))
            .await
            .expect("repack task panicked")
            .map_err(|e| PublishError::Pack(e.to_string()))?;
        let info = packed.narinfo(key);
        repacked.push((packed, info));
    }
    let again = repacked
        .iter()
        .map(|(p, i)| (p, i))
        .chain(closure.packed.iter().zip(infos));
    for (p, info) in again {
        if here(info).await? {
            continue;
        }
        cache::add_path_listed(
            store,
            &p.packed.file,
            p.packed.listing.as_deref(),
            info,
            &plan.put,
            &ProgressSink::none(),
        )
        .await
        .map_err(failed)?;
        send(
            tx,
            Event::Note {
                message: format!(
                    "{} was deleted from the store while publishing (a concurrent GC); uploaded it again",
                    p.store_path
                ),
            },
        )
        .await;
    }
    Ok(())
}
