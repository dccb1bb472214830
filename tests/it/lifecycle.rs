//! The lifecycle of a catalog on the catalog's side, on every backend (the service on SQLite,
//! on PostgreSQL, and the embedded catalog): yank, key removal, the audit log; and on the
//! services, scoped tokens with expiry and revocation, and the migration of old tokens.

use crate::common::catalog_support;

use catalog_support::{Fixture, Kind, TestKey, build};
use pubdeck::catalog::{
    AnyCatalog, AuthProblem, Catalog, CatalogClient, CatalogError, Listing, RecordRequest, Scope,
};

const STORE: &str = "file:///tmp/pubdeck-lifecycle-store";

on_all_backends!(
    yank_is_a_flag_skipped_for_latest,
    yanking_every_version_hides_the_package_from_search,
    only_the_owner_yanks,
    remove_key_and_the_audit_log,
    audit_log_limits_outside_the_documented_range_are_refused,
);

on_services!(
    token_scopes_limit_what_a_token_may_do,
    expired_and_revoked_tokens_are_refused_with_the_reason,
    tokens_are_listed_without_the_token_and_record_their_last_use,
    hidden_catalog_lifecycle_endpoints_answer_like_missing,
);

async fn setup(fx: &Fixture, org: &str) -> (AnyCatalog, TestKey) {
    let owner = fx.user("alice").await;
    let key = TestKey::new(&format!("{org}-1"), 1);
    owner
        .create_catalog(org, STORE, &[key.public()])
        .await
        .unwrap();
    (owner, key)
}

async fn latest_in_listing(c: &AnyCatalog, name: &str) -> Option<String> {
    match c.list_packages(None).await.unwrap() {
        Listing::Packages { packages, .. } => packages
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.latest_version),
        Listing::NotModified { .. } => unreachable!("asked without an ETag"),
    }
}

async fn yank_is_a_flag_skipped_for_latest(fx: Fixture) {
    let (owner, key) = setup(&fx, "yankorg").await;
    for v in ["1.0", "1.1", "2.0"] {
        owner
            .register_build(&build(&key, "yankorg", "hello", v, v))
            .await
            .unwrap();
    }
    let before = owner.show("yankorg", "hello").await.unwrap();
    assert_eq!(before.latest_version, "2.0");

    let out = owner.yank("yankorg", "hello", "2.0", true).await.unwrap();
    assert!(out.yanked);
    assert_eq!(out.changed, 1);
    assert_eq!(out.latest_version, "1.1");

    let d = owner.show("yankorg", "hello").await.unwrap();
    assert_eq!(d.latest_version, "1.1");
    // The record stays, flagged; the other versions are untouched.
    let v2 = d.versions.iter().find(|v| v.version == "2.0").unwrap();
    assert!(v2.yanked);
    assert!(v2.builds[0].yanked_at.is_some());
    assert_eq!(
        v2.builds[0].nar_hash, before.versions[0].builds[0].nar_hash,
        "yanking keeps the record as it was"
    );
    assert!(
        d.versions
            .iter()
            .filter(|v| v.version != "2.0")
            .all(|v| !v.yanked)
    );
    // Search's version column and the listing skip it.
    let hits = owner.search("hello", 5).await.unwrap();
    assert_eq!(hits[0].latest_version, "1.1");
    assert_eq!(
        latest_in_listing(&owner, "yankorg/hello").await.as_deref(),
        Some("1.1")
    );
    // Yanking again changes nothing; a version that does not exist is not found.
    let again = owner.yank("yankorg", "hello", "2.0", true).await.unwrap();
    assert_eq!(again.changed, 0);
    let missing = owner.yank("yankorg", "hello", "9.9", true).await;
    assert!(
        matches!(missing, Err(CatalogError::NotFound { message: ref m, .. }) if m.contains("no version 9.9")),
        "{missing:?}"
    );
    // A build for another system of a yanked version is yanked with it.
    let mut arm = build(&key, "yankorg", "hello", "2.0", "2.0-arm");
    arm.system = "aarch64-linux".into();
    key.sign(&mut arm);
    owner.register_build(&arm).await.unwrap();
    let d = owner.show("yankorg", "hello").await.unwrap();
    let v2 = d.versions.iter().find(|v| v.version == "2.0").unwrap();
    assert_eq!(v2.builds.len(), 2);
    assert!(v2.builds.iter().all(|b| b.yanked_at.is_some()), "{v2:?}");
    assert_eq!(d.latest_version, "1.1");

    // Undo: it counts again.
    let undone = owner.yank("yankorg", "hello", "2.0", false).await.unwrap();
    assert!(!undone.yanked);
    assert_eq!(undone.changed, 2);
    assert_eq!(undone.latest_version, "2.0");
    assert_eq!(
        owner.search("hello", 5).await.unwrap()[0].latest_version,
        "2.0"
    );
    // A newer version published while an older one is yanked becomes the latest.
    owner.yank("yankorg", "hello", "1.1", true).await.unwrap();
    owner
        .register_build(&build(&key, "yankorg", "hello", "3.0", "3.0"))
        .await
        .unwrap();
    assert_eq!(
        owner.show("yankorg", "hello").await.unwrap().latest_version,
        "3.0"
    );
    fx.finish().await;
}

async fn yanking_every_version_hides_the_package_from_search(fx: Fixture) {
    let (owner, key) = setup(&fx, "gone-org").await;
    for v in ["1.0", "2.0"] {
        owner
            .register_build(&build(&key, "gone-org", "tool", v, v))
            .await
            .unwrap();
    }
    owner.yank("gone-org", "tool", "1.0", true).await.unwrap();
    let last = owner.yank("gone-org", "tool", "2.0", true).await.unwrap();
    // No version is the latest: the yank says so, and so does the package page.
    assert_eq!(last.latest_version, "", "{last:?}");
    assert!(owner.search("tool", 5).await.unwrap().is_empty());
    assert_eq!(latest_in_listing(&owner, "gone-org/tool").await, None);
    // Still there for whoever pins a version.
    let d = owner.show("gone-org", "tool").await.unwrap();
    assert!(d.versions.iter().all(|v| v.yanked));
    assert_eq!(d.latest_version, "", "every version is yanked");
    // Another system's build of a yanked version (yanked with it) changes nothing.
    let mut arm = build(&key, "gone-org", "tool", "2.0", "2.0-arm");
    arm.system = "aarch64-linux".into();
    key.sign(&mut arm);
    owner.register_build(&arm).await.unwrap();
    assert_eq!(
        owner.show("gone-org", "tool").await.unwrap().latest_version,
        ""
    );
    // Un-yanking the older one makes it the latest again.
    let back = owner.yank("gone-org", "tool", "1.0", false).await.unwrap();
    assert_eq!(back.latest_version, "1.0");
    owner.yank("gone-org", "tool", "1.0", true).await.unwrap();
    // A new version brings it back, as the latest.
    owner
        .register_build(&build(&key, "gone-org", "tool", "1.5", "1.5"))
        .await
        .unwrap();
    let hits = owner.search("tool", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].latest_version, "1.5");
    fx.finish().await;
}

async fn only_the_owner_yanks(fx: Fixture) {
    let (owner, key) = setup(&fx, "ownorg").await;
    owner
        .register_build(&build(&key, "ownorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let bob = fx.user("bob").await;
    // Not allowed to see it: the same answer as a missing catalog.
    let hidden = bob.yank("ownorg", "hello", "1.0", true).await.unwrap_err();
    let missing = bob
        .yank("nosuchorg", "hello", "1.0", true)
        .await
        .unwrap_err();
    assert_eq!(
        hidden.to_string().replace("ownorg", "X"),
        missing.to_string().replace("nosuchorg", "X")
    );
    owner.allow("ownorg", "bob").await.unwrap();
    let reader = bob.yank("ownorg", "hello", "1.0", true).await.unwrap_err();
    assert!(
        matches!(reader, CatalogError::Forbidden { .. }),
        "{reader:?}"
    );
    assert!(!owner.show("ownorg", "hello").await.unwrap().versions[0].yanked);
    fx.finish().await;
}

async fn remove_key_and_the_audit_log(fx: Fixture) {
    let (owner, key) = setup(&fx, "auditorg").await;
    let new_key = TestKey::new("auditorg-2", 2);
    owner.add_key("auditorg", &new_key.public()).await.unwrap();
    owner
        .register_build(&build(&key, "auditorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    fx.add_user("bob").await;
    owner.allow("auditorg", "bob").await.unwrap();
    owner.revoke("auditorg", "bob").await.unwrap();
    owner.yank("auditorg", "hello", "1.0", true).await.unwrap();
    owner.yank("auditorg", "hello", "1.0", false).await.unwrap();
    let info = owner.remove_key("auditorg", "auditorg-1").await.unwrap();
    assert_eq!(info.keys, vec![new_key.public()]);
    // The removed key signs nothing the catalog accepts any more.
    let refused = owner
        .register_build(&build(&key, "auditorg", "hello", "1.1", "y"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("does not trust"), "{refused}");
    let unknown = owner
        .remove_key("auditorg", "auditorg-1")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, CatalogError::NotFound { .. }),
        "{unknown:?}"
    );
    owner
        .record(
            "auditorg",
            &RecordRequest {
                action: "gc".into(),
                detail: serde_json::json!({"nars": 3, "bytes": 1234}),
            },
        )
        .await
        .unwrap();
    let bad = owner
        .record(
            "auditorg",
            &RecordRequest {
                action: "publish".into(),
                detail: serde_json::Value::Null,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, CatalogError::BadRequest(_)), "{bad:?}");

    let log = owner.audit_log("auditorg", 100).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "add-key",
            "publish",
            "allow",
            "revoke",
            "yank",
            "unyank",
            "remove-key",
            "gc"
        ]
    );
    assert!(log.iter().all(|e| e.actor == "alice"));
    let seqs: Vec<i64> = log.iter().rev().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    let publish = log.iter().find(|e| e.action == "publish").unwrap();
    assert_eq!(publish.subject, "auditorg/hello@1.0");
    assert_eq!(publish.detail["key"], "auditorg-1");
    assert_eq!(log[0].detail["bytes"], 1234);
    assert_eq!(owner.audit_log("auditorg", 2).await.unwrap().len(), 2);
    // Readers cannot read it.
    owner.allow("auditorg", "bob").await.unwrap();
    let bob = fx.user("bob").await;
    assert!(matches!(
        bob.audit_log("auditorg", 10).await,
        Err(CatalogError::Forbidden { .. })
    ));
    fx.finish().await;
}

/// `limit` is 1 to 10,000 (docs/catalog-api.md); outside it the catalog says so instead of
/// answering some other number of entries.
async fn audit_log_limits_outside_the_documented_range_are_refused(fx: Fixture) {
    let (owner, _key) = setup(&fx, "limitorg").await;
    assert_eq!(owner.audit_log("limitorg", 10_000).await.unwrap().len(), 1);
    for limit in [0, 10_001, usize::MAX] {
        let err = owner.audit_log("limitorg", limit).await.unwrap_err();
        assert!(
            matches!(&err, CatalogError::BadRequest(m) if m.contains("from 1 to 10000")),
            "limit {limit}: {err:?}"
        );
    }
    if fx.is_service() {
        let token = fx.add_user("alice").await;
        let http = reqwest::Client::new();
        let get = |q: &str| {
            http.get(format!("{}/v1/catalogs/limitorg/log{q}", fx.base_url()))
                .bearer_auth(&token)
                .send()
        };
        for q in ["?limit=10001", "?limit=0"] {
            let resp = get(q).await.unwrap();
            assert_eq!(resp.status(), 400, "{q}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_request", "{q}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("from 1 to 10000"), "{q}: {message}");
        }
        for q in ["", "?limit=1", "?limit=10000"] {
            assert_eq!(get(q).await.unwrap().status(), 200, "{q}");
        }
    }
    fx.finish().await;
}

// ---- tokens (the service) --------------------------------------------------------------------

fn client(fx: &Fixture, token: &str) -> AnyCatalog {
    AnyCatalog::Remote(CatalogClient::new(&fx.base_url(), Some(token.to_string())).unwrap())
}

async fn token_scopes_limit_what_a_token_may_do(fx: Fixture) {
    let (admin, key) = setup(&fx, "scopeorg").await;
    admin
        .register_build(&build(&key, "scopeorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let db = fx.backend.db();
    let (_, read) = db.create_token("alice", Scope::Read, None).await.unwrap();
    let (_, publish) = db
        .create_token("alice", Scope::Publish, None)
        .await
        .unwrap();
    let read = client(&fx, &read);
    let publish = client(&fx, &publish);

    // whoami says who and what.
    let id = read.identity().await.unwrap();
    assert_eq!((id.user.as_str(), id.scope), ("alice", Scope::Read));
    assert!(
        id.token_id
            .as_deref()
            .is_some_and(|t| t.starts_with("tok-"))
    );
    assert_eq!(id.expires_at, None);
    assert_eq!(admin.identity().await.unwrap().scope, Scope::Admin);

    // A read token reads…
    assert_eq!(read.search("hello", 5).await.unwrap().len(), 1);
    read.show("scopeorg", "hello").await.unwrap();
    // …and cannot publish, yank, or manage the allowlist, keys, store or GC.
    let b2 = build(&key, "scopeorg", "hello", "2.0", "y");
    let refusals = [
        read.register_build(&b2).await.map(|_| ()),
        read.yank("scopeorg", "hello", "1.0", true)
            .await
            .map(|_| ()),
        read.allow("scopeorg", "alice").await.map(|_| ()),
        read.allowlist("scopeorg").await.map(|_| ()),
        read.add_key("scopeorg", &TestKey::new("x", 9).public())
            .await
            .map(|_| ()),
        read.set_store("scopeorg", STORE).await.map(|_| ()),
        read.live_paths("scopeorg").await.map(|_| ()),
        read.create_catalog("otherorg", STORE, &[])
            .await
            .map(|_| ()),
    ];
    for (i, r) in refusals.iter().enumerate() {
        match r {
            // The typed reason survives the service's wire: the scopes, not prose.
            Err(CatalogError::Forbidden {
                why:
                    pubdeck::catalog::Refusal::Scope {
                        have: pubdeck::catalog::Scope::Read,
                        ..
                    },
                message: m,
            }) => {
                assert!(m.contains("scope is read"), "refusal {i}: {m}")
            }
            other => panic!("refusal {i}: {other:?}"),
        }
    }
    let hint = pubdeck::event::Hinted::hint(refusals[0].as_ref().unwrap_err()).unwrap();
    assert!(hint.contains("--scope publish"), "{hint}");
    assert!(!admin.show("scopeorg", "hello").await.unwrap().versions[0].yanked);

    // A publish token publishes and yanks, but does not administer.
    publish.register_build(&b2).await.unwrap();
    publish
        .yank("scopeorg", "hello", "1.0", true)
        .await
        .unwrap();
    assert!(matches!(
        publish.allow("scopeorg", "alice").await,
        Err(CatalogError::Forbidden { .. })
    ));
    assert!(matches!(
        publish.remove_key("scopeorg", "scopeorg-1").await,
        Err(CatalogError::Forbidden { .. })
    ));
    assert!(matches!(
        publish.audit_log("scopeorg", 5).await,
        Err(CatalogError::Forbidden { .. })
    ));
    // The audit log names the user either way.
    let log = admin.audit_log("scopeorg", 10).await.unwrap();
    assert_eq!(log[0].action, "yank");
    assert_eq!(log[0].actor, "alice");
    fx.finish().await;
}

async fn expired_and_revoked_tokens_are_refused_with_the_reason(fx: Fixture) {
    fx.add_user("alice").await;
    let db = fx.backend.db();
    let past = pubdeck::time::now_secs() - 10;
    let (expired_info, expired) = db
        .create_token("alice", Scope::Admin, Some(past))
        .await
        .unwrap();
    let (revoked_info, revoked) = db.create_token("alice", Scope::Read, None).await.unwrap();
    let (_, later) = db
        .create_token("alice", Scope::Read, Some(past + 3600))
        .await
        .unwrap();
    assert!(client(&fx, &revoked).identity().await.is_ok());
    db.revoke_token(&revoked_info.id).await.unwrap();

    let e = client(&fx, &expired).identity().await.unwrap_err();
    match &e {
        CatalogError::Unauthorized(AuthProblem::Expired(at)) => {
            assert_eq!(Some(at), expired_info.expires_at.as_ref())
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("expired"), "{e}");
    let hint = pubdeck::event::Hinted::hint(&e).unwrap();
    assert!(hint.contains("pubdeck user token create"), "{hint}");
    let e = client(&fx, &revoked).search("x", 1).await.unwrap_err();
    assert!(
        matches!(e, CatalogError::Unauthorized(AuthProblem::Revoked(_))),
        "{e:?}"
    );
    assert!(e.to_string().contains("revoked"), "{e}");
    let e = client(&fx, "pdk_nonsense").identity().await.unwrap_err();
    assert_eq!(e, CatalogError::Unauthorized(AuthProblem::Rejected));
    // A token expiring in the future works, and says when it expires.
    let id = client(&fx, &later).identity().await.unwrap();
    assert!(id.expires_at.is_some());

    // The raw answers: 401 with a code that names the reason, never the token.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/whoami", fx.base_url()))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body = resp.text().await.unwrap();
    assert!(body.contains("\"token_expired\""), "{body}");
    assert!(!body.contains(&expired), "{body}");
    fx.finish().await;
}

async fn tokens_are_listed_without_the_token_and_record_their_last_use(fx: Fixture) {
    let first = fx.add_user("carol").await;
    let db = fx.backend.db();
    let (info, second) = db
        .create_token("carol", Scope::Publish, Some(4_102_444_800))
        .await
        .unwrap();
    client(&fx, &second).identity().await.unwrap();
    let tokens = db.tokens_of("carol").await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].scope, Scope::Admin, "{tokens:?}");
    assert_eq!(tokens[1].id, info.id);
    assert_eq!(
        tokens[1].expires_at.as_deref(),
        Some("2100-01-01T00:00:00Z")
    );
    assert!(tokens[1].last_used_at.is_some(), "{tokens:?}");
    assert!(tokens[0].last_used_at.is_none(), "{tokens:?}");
    let listed = serde_json::to_string(&tokens).unwrap();
    assert!(!listed.contains(&first) && !listed.contains(&second));
    // Stored hashed only.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|(h,)| h.len() == 64 && *h != first && *h != second)
    );
    assert!(db.create_token("nobody", Scope::Read, None).await.is_err());
    fx.finish().await;
}

async fn hidden_catalog_lifecycle_endpoints_answer_like_missing(fx: Fixture) {
    let base = fx.base_url();
    let bob = fx.add_user("bob").await;
    let http = reqwest::Client::new();
    let probe = |org: &'static str| {
        let (http, base, bob) = (http.clone(), base.clone(), bob.clone());
        async move {
            let mut out = Vec::new();
            for (method, path) in [
                (
                    "PUT",
                    format!("/v1/catalogs/{org}/packages/hello/versions/1.0/yank"),
                ),
                (
                    "DELETE",
                    format!("/v1/catalogs/{org}/packages/hello/versions/1.0/yank"),
                ),
                ("DELETE", format!("/v1/catalogs/{org}/keys/{org}-1")),
                ("GET", format!("/v1/catalogs/{org}/log")),
                ("GET", format!("/v1/catalogs/{org}/live-paths")),
            ] {
                let req = http
                    .request(method.parse().unwrap(), format!("{base}{path}"))
                    .bearer_auth(&bob);
                let resp = req.send().await.unwrap();
                let status = resp.status();
                let body = resp.text().await.unwrap().replace(org, "ORG");
                out.push((status, body));
            }
            let resp = http
                .post(format!("{base}/v1/catalogs/{org}/log"))
                .bearer_auth(&bob)
                .json(&serde_json::json!({"action": "gc"}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            out.push((status, resp.text().await.unwrap().replace(org, "ORG")));
            out
        }
    };
    let (alice, key) = setup(&fx, "hiddenorg").await;
    alice
        .register_build(&build(&key, "hiddenorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let hidden = probe("hiddenorg").await;
    let missing = probe("nosuchorg").await;
    assert_eq!(hidden, missing);
    assert!(hidden.iter().all(|(s, _)| *s == 404), "{hidden:?}");
    fx.finish().await;
}

// ---- migration -------------------------------------------------------------------------------

/// The migrations up to `n`, as an older pubdeck ran them.
#[derive(Debug)]
struct UpTo(i64);

impl sqlx::migrate::MigrationSource<'static> for UpTo {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send,
        >,
    > {
        Box::pin(async move {
            let all = pubdeck::catalog::db::EmbeddedMigrations.resolve().await?;
            Ok(all.into_iter().filter(|m| m.version <= self.0).collect())
        })
    }
}

/// A database from before scoped tokens (migrations 1 to 3, a token in `users`) keeps
/// working after the upgrade: the token becomes an admin token without expiry.
async fn old_tokens_survive_the_migration(kind: Kind) {
    // The fixture decides whether this backend runs here (PostgreSQL needs its URL).
    let Some(fx) = Fixture::start(kind).await else {
        return;
    };
    let (url, pg) = match kind {
        Kind::PostgresService => {
            let (url, name) = fresh_pg().await;
            (url, Some(name))
        }
        _ => (
            format!(
                "sqlite://{}?mode=rwc",
                fx.tmp.path().join("old.sqlite").display()
            ),
            None,
        ),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(UpTo(3))
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let token = "pdk_old-token-from-before-scopes";
    sqlx::query("INSERT INTO users (name, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind("olduser")
        .bind(pubdeck::catalog::db::hash_token(token))
        .bind(1_700_000_000i64)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let server = pubdeck::server::Server::bind("127.0.0.1:0".parse().unwrap(), &url)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let c = CatalogClient::new(&format!("http://{addr}"), Some(token.into())).unwrap();
    let id = c.identity().await.unwrap();
    assert_eq!(id.user, "olduser");
    assert_eq!(id.scope, Scope::Admin);
    assert_eq!(id.expires_at, None);
    assert_eq!(id.token_id.as_deref(), Some("legacy-olduser"));
    c.create_catalog("legacyorg", STORE, &[]).await.unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    if let Some(name) = pg {
        drop_pg(&name).await;
    }
    fx.finish().await;
}

fn pg_admin() -> String {
    std::env::var("PUBDECK_TEST_PG_URL").expect("the fixture checked it is set")
}

async fn fresh_pg() -> (String, String) {
    let admin = pg_admin();
    let name = format!("pdk_old_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut u = reqwest::Url::parse(&admin).unwrap();
    u.set_path(&format!("/{name}"));
    (u.to_string(), name)
}

async fn drop_pg(name: &str) {
    if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg_admin()).await {
        let _ = sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_tokens_survive_the_migration_sqlite() {
    old_tokens_survive_the_migration(Kind::SqliteService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_tokens_survive_the_migration_postgres() {
    old_tokens_survive_the_migration(Kind::PostgresService).await;
}
