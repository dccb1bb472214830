//! The reproducibility check as publish (`--verify-reproducible`) and `pubdeck build --check`
//! run it: a second clean build, packed, compared with the first ([`super::repro`] says what
//! differs).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::build;
use crate::cache::Compression;
use crate::closure;
use crate::event::{Event, EventTx};

use super::upload::pack;
use super::{Plan, PublishError, repro, send};

/// Builds `req` a second time (a fresh clone), packs it, and compares its NAR with the first
/// build's (`closure`'s last path). A difference fails with the files named, unless the plan
/// allows it (then it is a note).
pub(super) async fn verify_reproducible(
    plan: &Plan,
    req: &build::Request,
    first: &closure::PackedPath,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<(), PublishError> {
    send(
        tx,
        Event::Note {
            message: "building a second time in a fresh clone to check it is reproducible".into(),
        },
    )
    .await;
    let second = build::run(req, tx, cancel).await?;
    let (again, _dir) = pack(&second, plan.compression, None, None, cancel).await?;
    drop(second);
    let second = again.top();
    let verdict = check_same(first, second)?;
    if let Some(u) = &verdict {
        send(tx, Event::Unreproducible(Box::new(u.clone()))).await;
    }
    match verdict {
        None => {
            send(
                tx,
                Event::Note {
                    message: format!(
                        "reproducible: both builds give NAR {}",
                        first.packed.summary.nar.nar_hash
                    ),
                },
            )
            .await;
            Ok(())
        }
        Some(u) if plan.allow_unreproducible => {
            send(
                tx,
                Event::Note {
                    message: format!("{u}; publishing anyway (--allow-unreproducible)"),
                },
            )
            .await;
            Ok(())
        }
        Some(u) => Err(PublishError::Unreproducible(Box::new(u))),
    }
}

/// `pubdeck build --check`: builds `name` twice, each in a fresh clone of HEAD, packs both
/// content-addressed and compares them. `Ok(None)`: reproducible (the NAR hash is in a
/// `Note` event).
pub async fn check_reproducible(
    env: &crate::manifest::Env,
    name: &str,
    timeout: Option<Duration>,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Option<repro::Unreproducible>, PublishError> {
    let (env2, name2) = (env.clone(), name.to_string());
    let prepared = tokio::task::spawn_blocking(move || build::prepare(&env2, &name2, timeout))
        .await
        .map_err(|e| build::BuildError::Io(std::io::Error::other(e)))??;
    for warning in prepared.warnings {
        send(tx, Event::Check(warning)).await;
    }
    let req = prepared.request;
    let mut packed = Vec::new();
    for round in ["first", "second"] {
        send(
            tx,
            Event::Note {
                message: format!("{round} build, in a fresh clone"),
            },
        )
        .await;
        let output = build::run(&req, tx, cancel).await?;
        packed.push(pack(&output, Compression::Zstd, None, None, cancel).await?);
    }
    let (first, second) = (packed[0].0.top(), packed[1].0.top());
    let verdict = check_same(first, second)?;
    if verdict.is_none() {
        send(
            tx,
            Event::Note {
                message: format!(
                    "reproducible: both builds give {} (NAR {})",
                    first.store_path, first.packed.summary.nar.nar_hash
                ),
            },
        )
        .await;
    }
    Ok(verdict)
}

/// `None` when two packings of the output are the same NAR; else what differs.
pub fn check_same(
    first: &closure::PackedPath,
    second: &closure::PackedPath,
) -> Result<Option<repro::Unreproducible>, PublishError> {
    let (a, b) = (&first.packed.summary.nar, &second.packed.summary.nar);
    if a.nar_hash == b.nar_hash && first.store_path == second.store_path {
        return Ok(None);
    }
    let (files, total) = repro::compare(
        &first.store_path,
        &first.packed.file.source(),
        &second.packed.file.source(),
        first.packed.summary.compression,
    )
    .map_err(|e| PublishError::Pack(e.to_string()))?;
    Ok(Some(repro::Unreproducible {
        first_nar_hash: a.nar_hash.to_string(),
        second_nar_hash: b.nar_hash.to_string(),
        total: total.max(files.len()),
        files,
    }))
}
