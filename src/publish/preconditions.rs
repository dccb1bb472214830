//! Every precondition of a publish, git's and publish's own, evaluated all at once (none stops
//! the others), with what the passing ones found.

use crate::catalog::{AnyCatalog, Catalog, Role};
use crate::event::Hinted;
use crate::event::{Event, EventTx};
use crate::git::{self, Check};
use crate::nix::sign::{PublicKey, SecretKey};
use crate::store::Store;

use super::{Checked, Plan, PublishError, id, send};

/// Every precondition of a publish (git's and publish's own), evaluated all at once, with what
/// the passing ones found.
pub struct Preconditions {
    pub checks: Vec<Check>,
    report: git::Report,
    pub(super) key: Option<SecretKey>,
    pub(super) store: Option<Store>,
}

/// How far [`preconditions`] goes.
pub enum Reach<'a> {
    /// Everything, through this catalog, the store included.
    Online(&'a AnyCatalog),
    /// The catalog could not be opened (why, as the `catalog` check says it).
    Unavailable(crate::event::Failure),
    /// Only what needs no network: the catalog, permission, key trust and store checks say
    /// they were skipped (`check --offline`).
    Offline,
}

/// Evaluates every precondition `publish` evaluates, without publishing: `pubdeck check`
/// and the pipeline's first stage run this same function. An empty `plan.build` checks the
/// environment as a whole.
pub async fn preconditions(plan: &Plan, reach: Reach<'_>) -> Preconditions {
    let catalog = match &reach {
        Reach::Online(c) => Some(*c),
        _ => None,
    };
    let (dir, build, fetch) = (plan.dir.clone(), plan.build.clone(), plan.fetch);
    let report = tokio::task::spawn_blocking(move || {
        git::evaluate(
            &dir,
            (!build.is_empty()).then_some(build.as_str()),
            &git::Options {
                fetch,
                ..Default::default()
            },
        )
    })
    .await
    .expect("check task panicked");
    let mut all = report.checks.clone();

    // signing key
    let key = match &plan.signing_key {
        None => {
            all.push(Check::fail(
                id::SIGNING_KEY,
                "no signing key is configured",
                "pass --signing-key FILE or set PUBDECK_SIGNING_KEY (create one with `pubdeck key generate --name <org>-1`)",
            ));
            None
        }
        Some(path) => match SecretKey::from_file(path) {
            Ok(k) => {
                all.push(Check::pass(
                    id::SIGNING_KEY,
                    format!("signing key `{}` from {}", k.name(), path.display()),
                ));
                Some(k)
            }
            Err(e) => {
                let hint = match &e {
                    crate::nix::sign::KeyError::IsPublic(p) => {
                        match p.to_str().and_then(|p| p.strip_suffix(".pub")) {
                            Some(secret) => format!("pass the secret key: --signing-key {secret}"),
                            None => "pass the secret key file (`pubdeck key generate` writes both)"
                                .into(),
                        }
                    }
                    _ => "check the path and that the file is a Nix secret key (`name:base64`)"
                        .into(),
                };
                all.push(Check::fail(id::SIGNING_KEY, e.to_string(), hint));
                None
            }
        },
    };

    // catalog, permission, trusted key, store
    let mut info = None;
    let mut store = None;
    match &plan.org {
        None => {
            all.push(Check::fail(
                id::CATALOG,
                "no organisation is configured",
                "pass --org ORG or set PUBDECK_ORG",
            ));
        }
        Some(org) if matches!(reach, Reach::Offline) => all.push(skipped(
            id::CATALOG,
            format!("catalog `{org}`: not contacted (--offline)"),
        )),
        Some(org) => match catalog.map(|c| c.catalog(org)) {
            None => {
                let (message, hint) = match &reach {
                    Reach::Unavailable(f) => (f.message.clone(), f.hint.clone()),
                    _ => (format!("catalog `{org}`: no catalog is configured"), None),
                };
                all.push(Check::fail(
                    id::CATALOG,
                    message,
                    hint.unwrap_or_else(|| "set PUBDECK_CATALOG or pass --catalog".into()),
                ))
            }
            Some(answer) => match answer.await {
                Ok(ci) => {
                    all.push(Check::pass(
                        id::CATALOG,
                        format!("catalog `{org}` is reachable"),
                    ));
                    info = Some(ci);
                }
                Err(e) => {
                    let hint = e.hint().unwrap_or_else(|| {
                        format!("create it with `pubdeck catalog create {org} --store URL`")
                    });
                    all.push(Check::fail(id::CATALOG, e.to_string(), hint));
                }
            },
        },
    }
    let offline = matches!(reach, Reach::Offline) && plan.org.is_some();
    match &info {
        Some(ci) if ci.role == Role::Owner => all.push(Check::pass(
            id::MAY_PUBLISH,
            format!("you own catalog `{}`", ci.name),
        )),
        Some(ci) => all.push(Check::fail(
            id::MAY_PUBLISH,
            format!("you may read catalog `{}` but not publish to it", ci.name),
            format!(
                "ask its owner ({}) to publish, or publish to your own catalog with --org",
                ci.owner
            ),
        )),
        None if offline => all.push(skipped(
            id::MAY_PUBLISH,
            "publish permission not checked (--offline)",
        )),
        None => all.push(Check::fail(
            id::MAY_PUBLISH,
            "publish permission not checked: the catalog is not available",
            "fix `catalog` first",
        )),
    }
    match (&info, &key) {
        (Some(ci), Some(k)) => {
            let public = k.public();
            let trusted = ci
                .keys
                .iter()
                .filter_map(|s| PublicKey::parse(s).ok())
                .any(|p| p == public);
            if trusted {
                all.push(Check::pass(
                    id::KEY_TRUSTED,
                    format!("catalog `{}` trusts key `{}`", ci.name, k.name()),
                ));
            } else {
                all.push(Check::fail(
                    id::KEY_TRUSTED,
                    format!("catalog `{}` does not trust signing key `{}`", ci.name, k.name()),
                    format!(
                        "add its public half: `pubdeck key public KEYFILE > key.pub && pubdeck catalog add-key {} key.pub`",
                        ci.name
                    ),
                ));
            }
        }
        _ if offline => all.push(skipped(
            id::KEY_TRUSTED,
            "key trust not checked (--offline)",
        )),
        _ => all.push(Check::fail(
            id::KEY_TRUSTED,
            "key trust not checked: needs both the signing key and the catalog",
            "fix `signing-key` and `catalog` first",
        )),
    }
    match &info {
        Some(ci) if ci.store_url.trim().is_empty() => all.push(Check::fail(
            id::STORE,
            format!("catalog `{}` has no store configured", ci.name),
            format!(
                "run `pubdeck catalog set-store {} file:///path/or/s3://bucket`",
                ci.name
            ),
        )),
        Some(ci) => {
            // Opened, and asked once: reachable, with credentials that work.
            let opened = match Store::open_str(&ci.store_url, &plan.store_open).await {
                Ok(s) => s.head("nix-cache-info").await.map(|_| s),
                Err(e) => Err(e),
            };
            match opened {
                Ok(s) => {
                    all.push(Check::pass(id::STORE, format!("store {}", s.url())));
                    store = Some(s);
                }
                Err(e) => all.push(Check::fail(
                    id::STORE,
                    e.to_string(),
                    crate::event::Hinted::hint(&e).unwrap_or_else(|| {
                        "fix the catalog's store URL with `pubdeck catalog set-store`".into()
                    }),
                )),
            }
        }
        None if offline => all.push(skipped(id::STORE, "store not checked (--offline)")),
        None => all.push(Check::fail(
            id::STORE,
            "store not checked: the catalog is not available",
            "fix `catalog` first",
        )),
    }
    Preconditions {
        checks: all,
        report,
        key,
        store,
    }
}

/// A check `--offline` does not make: a warning (it does not fail the report), said so.
pub(super) fn skipped(id: crate::event::CheckId, message: impl Into<String>) -> Check {
    Check::warn(id, message, "run without --offline to check it")
}

/// Evaluates every precondition and sends each as an event.
pub(super) async fn checks(
    plan: &Plan,
    catalog: &AnyCatalog,
    tx: &EventTx,
) -> Result<Checked, PublishError> {
    let Preconditions {
        checks: all,
        report,
        key,
        store,
    } = preconditions(plan, Reach::Online(catalog)).await;

    for c in &all {
        send(tx, Event::Check(c.clone())).await;
    }
    if all.iter().any(|c| !c.ok) {
        return Err(PublishError::Preconditions(all));
    }
    Ok(Checked {
        source: report.source.expect("git checks passed"),
        manifest: report.manifest.expect("manifest check passed"),
        key: key.expect("signing-key passed"),
        org: plan.org.clone().expect("catalog passed"),
        store: store.expect("store passed"),
    })
}
