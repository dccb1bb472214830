//! Two `pubdeck serve` processes over one database behave as one service
//! (docs/catalog-api.md, "More than one instance"): what one registers, the other shows and
//! finds at once; a version registered concurrently through both has one winner; access
//! changes made through one hold on the other at its next request. Each instance caches
//! (visible catalogs, package lists, package pages), so this is what proves the caches follow
//! the database. PostgreSQL is the deployment this is for; SQLite (one file, two processes)
//! runs too.

use crate::common::catalog_support;
use crate::common::proc;

use std::time::{Duration, Instant};

use catalog_support::{Fixture, Kind, TestKey, build, tally};
use proc::start_service;
use pubdeck::catalog::{AnyCatalog, Catalog, CatalogClient, CatalogError};

fn client(url: &str, token: &str) -> AnyCatalog {
    AnyCatalog::Remote(CatalogClient::new(url, Some(token.to_string())).unwrap())
}

/// Polls `f` until it is true, for at most one second; how long it took.
async fn within_a_second<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{what}: not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_instances(kind: Kind) {
    let Some(fx) = Fixture::start(kind).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let alice_token = fx.add_user("alice").await;
    let bob_token = fx.add_user("bob").await;
    let a = start_service(tmp.path(), &fx.db_url, None);
    let b = start_service(tmp.path(), &fx.db_url, None);
    let (alice_a, alice_b) = (client(&a.url, &alice_token), client(&b.url, &alice_token));
    let (bob_a, bob_b) = (client(&a.url, &bob_token), client(&b.url, &bob_token));

    let key = TestKey::new("myorg-1", 1);
    alice_a
        .create_catalog("myorg", "file:///srv/cache", &[key.public()])
        .await
        .unwrap();
    alice_a
        .register_build(&build(&key, "myorg", "hello", "1.0", "one"))
        .await
        .unwrap();
    // B answers (and caches) before the next change.
    assert_eq!(alice_b.search("hello", 10).await.unwrap().len(), 1);
    assert_eq!(
        alice_b.show("myorg", "hello").await.unwrap().versions.len(),
        1
    );
    assert!(bob_b.search("hello", 10).await.unwrap().is_empty());

    // Registered through A: found and shown through B.
    alice_a
        .register_build(&build(&key, "myorg", "hello", "2.0", "two"))
        .await
        .unwrap();
    alice_a
        .register_build(&build(&key, "myorg", "hello-extra", "1.0", "x"))
        .await
        .unwrap();
    let took = within_a_second("a registration through A, in B's show", || async {
        alice_b
            .show("myorg", "hello")
            .await
            .is_ok_and(|d| d.latest_version == "2.0" && d.versions.len() == 2)
    })
    .await;
    eprintln!("B showed A's registration after {took:?}");
    within_a_second("a registration through A, in B's search", || async {
        alice_b
            .search("hello", 10)
            .await
            .is_ok_and(|h| h.len() == 2 && h[0].latest_version == "2.0")
    })
    .await;
    let batch = vec![build(&key, "myorg", "batched", "1.0", "b")];
    alice_b.register_builds("myorg", &batch).await.unwrap();
    within_a_second("a batch through B, in A's show", || async {
        alice_a.show("myorg", "batched").await.is_ok()
    })
    .await;

    // Store and key changes through B show on A's (cached) package page.
    alice_b
        .set_store("myorg", "file:///srv/other-cache")
        .await
        .unwrap();
    let key2 = TestKey::new("myorg-2", 2);
    alice_b.add_key("myorg", &key2.public()).await.unwrap();
    let page = alice_a.show("myorg", "hello").await.unwrap();
    assert_eq!(page.store_url, "file:///srv/other-cache");
    assert_eq!(page.keys, vec![key.public(), key2.public()]);

    // Access: allowed through A, effective on B at the next request; revoked likewise.
    alice_a.allow("myorg", "bob").await.unwrap();
    assert_eq!(bob_b.search("hello", 10).await.unwrap().len(), 2);
    assert!(bob_b.show("myorg", "hello").await.is_ok());
    assert_eq!(bob_b.catalogs().await.unwrap().len(), 1);
    alice_b.revoke("myorg", "bob").await.unwrap();
    assert!(bob_a.search("hello", 10).await.unwrap().is_empty());
    let hidden = bob_a.show("myorg", "hello").await.unwrap_err();
    let missing = bob_a.show("nosuch", "hello").await.unwrap_err();
    assert!(
        matches!(hidden, CatalogError::NotFound { .. }),
        "{hidden:?}"
    );
    assert_eq!(
        hidden.to_string().replace("myorg", "X"),
        missing.to_string().replace("nosuch", "X"),
        "a revoked catalog answers as a missing one"
    );
    assert!(bob_a.catalogs().await.unwrap().is_empty());
    assert!(bob_b.search("hello", 10).await.unwrap().is_empty());

    // One version registered concurrently through both instances: exactly one winner.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = if i % 2 == 0 {
            alice_a.clone()
        } else {
            alice_b.clone()
        };
        let nb = build(&key, "myorg", "contested", "1.0", &format!("content-{i}"));
        tasks.push(tokio::spawn(async move {
            c.register_build(&nb).await.map(|o| o.status)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let (created, _, conflicts) = tally(&results);
    assert_eq!((created, conflicts), (1, 15), "{results:?}");
    let winner_a = alice_a.show("myorg", "contested").await.unwrap();
    let winner_b = alice_b.show("myorg", "contested").await.unwrap();
    assert_eq!(winner_a, winner_b, "both instances show the one winner");

    // A token revoked in the database (`pubdeck user token revoke`, which either instance's
    // operator may run) is refused by both instances at their next request, although both
    // have it cached from the requests above.
    let (info, carol_token) = fx
        .backend
        .db()
        .create_token("bob", pubdeck::catalog::Scope::Read, None)
        .await
        .unwrap();
    let (carol_a, carol_b) = (client(&a.url, &carol_token), client(&b.url, &carol_token));
    assert_eq!(carol_a.whoami().await.unwrap(), "bob");
    assert_eq!(carol_b.whoami().await.unwrap(), "bob");
    fx.backend.db().revoke_token(&info.id).await.unwrap();
    for (name, c) in [("A", &carol_a), ("B", &carol_b)] {
        let err = c.whoami().await.unwrap_err();
        assert!(
            matches!(
                err,
                CatalogError::Unauthorized(pubdeck::catalog::AuthProblem::Revoked(_))
            ),
            "instance {name} still accepts a revoked token: {err:?}"
        );
    }
    // The other tokens are untouched.
    assert_eq!(bob_a.whoami().await.unwrap(), "bob");
    assert_eq!(bob_b.whoami().await.unwrap(), "bob");

    a.proc.kill_nine();
    b.proc.kill_nine();
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_one_postgres_database_are_one_service() {
    two_instances(Kind::PostgresService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_one_sqlite_file_are_one_service() {
    two_instances(Kind::SqliteService).await;
}
