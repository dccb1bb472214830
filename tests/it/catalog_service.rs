//! The catalog suite, written once and run against: the HTTP service on SQLite, the service
//! on PostgreSQL (when `PUBDECK_TEST_PG_URL` is set) and the embedded catalog. Services listen
//! on 127.0.0.1 with a random port; byte-level checks use raw reqwest.

use crate::common::catalog_support;

use catalog_support::{Fixture, Kind, TestKey, build, tally};
use pubdeck::catalog::{
    AnyCatalog, AuthProblem, Catalog, CatalogError, CheckBuild, Listing, RegisterStatus, Role,
};
use reqwest::StatusCode;

const STORE: &str = "file:///tmp/pubdeck-test-store";

on_all_backends!(
    publish_show_search_and_check,
    immutable_versions,
    concurrent_registration_has_one_winner,
    concurrent_same_hash_is_idempotent,
    malicious_names_are_rejected,
    signatures_must_match_a_catalog_key,
    restart_keeps_data,
    listing_etag,
    listing_changes_fetch_only_what_changed,
    listing_is_in_byte_order_with_text_intact,
    access_control,
    catalog_admin,
    credentials_in_source_url_are_rejected,
    batch_registration_is_all_or_none,
    import_stops_at_a_bad_line_and_resumes,
    builds_are_numbered_in_registration_order,
);

on_services!(
    http_auth_is_required,
    http_hidden_catalog_is_byte_identical_to_missing,
    http_oversized_body_is_413,
    http_bad_json_is_400,
    http_server_rejects_malicious_names,
    http_published_by_comes_from_the_token,
    http_unknown_route_is_json_404,
);

async fn setup(fx: &Fixture, org: &str) -> (AnyCatalog, TestKey) {
    let owner = fx.user("alice").await;
    let key = TestKey::new(&format!("{org}-1"), 1);
    let info = owner
        .create_catalog(org, STORE, &[key.public()])
        .await
        .unwrap();
    assert_eq!(info.owner, "alice");
    assert_eq!(info.role, Role::Owner);
    assert_eq!(info.keys, vec![key.public()]);
    (owner, key)
}

async fn publish_show_search_and_check(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    assert_eq!(owner.whoami().await.unwrap(), "alice");
    for (pkg, ver) in [
        ("hello", "1.0"),
        ("hello", "1.10"),
        ("hello", "1.9"),
        ("jq-tools", "0.1"),
        ("shellcheck", "2.0"),
    ] {
        let out = owner
            .register_build(&build(&key, "myorg", pkg, ver, "a"))
            .await
            .unwrap();
        assert_eq!(out.status, RegisterStatus::Created);
        assert_eq!(out.build.published_by, "alice");
        assert_eq!(out.build.key_name, key.name);
    }
    let mut arm = build(&key, "myorg", "hello", "1.10", "arm");
    arm.system = "aarch64-linux".into();
    key.sign(&mut arm);
    owner.register_build(&arm).await.unwrap();

    let d = owner.show("myorg", "hello").await.unwrap();
    assert_eq!(d.name, "myorg/hello");
    assert_eq!(d.latest_version, "1.10");
    let versions: Vec<_> = d.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["1.10", "1.9", "1.0"]);
    let systems: Vec<_> = d.versions[0]
        .builds
        .iter()
        .map(|b| b.system.as_str())
        .collect();
    assert_eq!(systems, ["aarch64-linux", "x86_64-linux"]);
    assert_eq!(d.store_url, STORE);
    assert_eq!(d.keys, vec![key.public()]);
    assert_eq!(d.versions[0].builds[1].installed_packages, ["hello", "jq"]);
    assert!(d.versions[0].builds[1].published_at.ends_with('Z'));

    let hits = owner.search("hello", 10).await.unwrap();
    assert_eq!(hits[0].name, "myorg/hello");
    assert_eq!(hits[0].latest_version, "1.10");
    assert!(hits.iter().all(|h| h.name != "myorg/jq-tools"));
    let hits = owner.search("shck", 10).await.unwrap();
    assert_eq!(hits[0].name, "myorg/shellcheck");
    assert_eq!(owner.search("", 2).await.unwrap().len(), 2);

    let err = owner.show("myorg", "nope").await.unwrap_err();
    assert!(
        matches!(err, CatalogError::NotFound { message: ref m, .. } if m.contains("myorg/nope")),
        "{err:?}"
    );

    let b = build(&key, "myorg", "hello", "1.9", "a");
    let q = CheckBuild {
        org: "myorg".into(),
        name: "hello".into(),
        revision: b.revision.clone(),
        system: None,
    };
    let found = owner
        .check_build(&q)
        .await
        .unwrap()
        .expect("already published");
    assert_eq!(found.version, "1.9");
    let q2 = CheckBuild {
        revision: "0".repeat(40),
        ..q.clone()
    };
    assert_eq!(owner.check_build(&q2).await.unwrap(), None);
    let q3 = CheckBuild {
        system: Some("aarch64-darwin".into()),
        ..q
    };
    assert_eq!(owner.check_build(&q3).await.unwrap(), None);
    fx.finish().await;
}

/// Each build of a package gets the next number of the package's sequence, in the order of
/// registration (not of versions, nor of timestamps, which tie within a second).
async fn builds_are_numbered_in_registration_order(fx: Fixture) {
    let (owner, key) = setup(&fx, "seqorg").await;
    for v in ["1.0", "2.0", "1.5"] {
        owner
            .register_build(&build(&key, "seqorg", "tool", v, v))
            .await
            .unwrap();
    }
    let mut arm = build(&key, "seqorg", "tool", "3.0", "3.0-arm");
    arm.system = "aarch64-linux".into();
    key.sign(&mut arm);
    let batch = [build(&key, "seqorg", "tool", "3.0", "3.0"), arm];
    owner.register_builds("seqorg", &batch).await.unwrap();
    owner
        .register_build(&build(&key, "seqorg", "other", "9.0", "9.0"))
        .await
        .unwrap();
    // Registered again: the same record, the same number.
    owner
        .register_build(&build(&key, "seqorg", "tool", "1.0", "1.0"))
        .await
        .unwrap();
    let d = owner.show("seqorg", "tool").await.unwrap();
    let mut seqs: Vec<(String, String, i64)> = d
        .versions
        .iter()
        .flat_map(|v| v.builds.iter())
        .map(|b| (b.version.clone(), b.system.clone(), b.seq))
        .collect();
    seqs.sort_by_key(|s| s.2);
    let got: Vec<(&str, &str, i64)> = seqs
        .iter()
        .map(|(v, s, n)| (v.as_str(), s.as_str(), *n))
        .collect();
    assert_eq!(
        got,
        [
            ("1.0", "x86_64-linux", 1),
            ("2.0", "x86_64-linux", 2),
            ("1.5", "x86_64-linux", 3),
            ("3.0", "x86_64-linux", 4),
            ("3.0", "aarch64-linux", 5),
        ]
    );
    let other = owner.show("seqorg", "other").await.unwrap();
    assert_eq!(other.versions[0].builds[0].seq, 1);
    fx.finish().await;
}

async fn immutable_versions(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    let first = build(&key, "myorg", "hello", "1.0", "one");
    assert_eq!(
        owner.register_build(&first).await.unwrap().status,
        RegisterStatus::Created
    );
    let again = owner.register_build(&first).await.unwrap();
    assert_eq!(again.status, RegisterStatus::AlreadyPublished);
    assert_eq!(again.build.nar_hash, first.nar_hash);
    let other = build(&key, "myorg", "hello", "1.0", "two");
    let err = owner.register_build(&other).await.unwrap_err();
    match err {
        CatalogError::Conflict(m) => {
            assert!(
                m.contains("myorg/hello 1.0") && m.contains("different NAR hash"),
                "{m}"
            );
        }
        e => panic!("expected a conflict, got {e:?}"),
    }
    let d = owner.show("myorg", "hello").await.unwrap();
    assert_eq!(d.versions[0].builds[0].nar_hash, first.nar_hash);
    fx.finish().await;
}

async fn race(fx: &Fixture, same_hash: bool) -> Vec<Result<RegisterStatus, CatalogError>> {
    let (owner, key) = setup(fx, "raceorg").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let content = if same_hash {
            "same".to_string()
        } else {
            format!("content-{i}")
        };
        let b = build(&key, "raceorg", "racer", "1.0", &content);
        let c = owner.clone();
        tasks.push(tokio::spawn(async move {
            c.register_build(&b).await.map(|o| o.status)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

async fn concurrent_registration_has_one_winner(fx: Fixture) {
    let results = race(&fx, false).await;
    let (created, _, conflicts) = tally(&results);
    assert_eq!(created, 1, "{results:?}");
    assert_eq!(conflicts, 19, "{results:?}");
    fx.finish().await;
}

async fn concurrent_same_hash_is_idempotent(fx: Fixture) {
    let results = race(&fx, true).await;
    let (created, already, _) = tally(&results);
    assert_eq!((created, already), (1, 19), "{results:?}");
    fx.finish().await;
}

fn is_bad_request(r: &Result<impl std::fmt::Debug, CatalogError>) -> bool {
    matches!(r, Err(CatalogError::BadRequest(_)))
}

async fn malicious_names_are_rejected(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    let long = "a".repeat(129);
    for bad in [
        "..",
        ".",
        "a/b",
        "a\0b",
        long.as_str(),
        "héllo",
        "",
        "../etc",
    ] {
        let mut b = build(&key, "myorg", "x", "1.0", "c");
        b.package = bad.to_string();
        assert!(
            is_bad_request(&owner.register_build(&b).await),
            "package {bad:?}"
        );
        assert!(
            is_bad_request(&owner.show("myorg", bad).await),
            "show {bad:?}"
        );
    }
    for bad in ["ab", "a/b", "..", "bad org", "ünï", &"o".repeat(64)] {
        assert!(
            is_bad_request(&owner.create_catalog(bad, STORE, &[]).await),
            "org {bad:?}"
        );
    }
    assert!(is_bad_request(&owner.allow("myorg", "../bob").await));
    assert!(
        owner
            .register_build(&build(&key, "myorg", &"a".repeat(128), "1.0", "c"))
            .await
            .is_ok()
    );
    fx.finish().await;
}

async fn signatures_must_match_a_catalog_key(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    let stranger = TestKey::new("stranger-1", 9);
    let err = owner
        .register_build(&build(&stranger, "myorg", "hello", "1.0", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Forbidden { why: pubdeck::catalog::Refusal::UntrustedKey, message: ref m } if m.contains("does not trust")),
        "{err:?}"
    );
    // right key name, wrong key
    let impostor = TestKey::new(&key.name, 7);
    let err = owner
        .register_build(&build(&impostor, "myorg", "hello", "1.0", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Forbidden { why: pubdeck::catalog::Refusal::BadSignature, message: ref m } if m.contains("does not match")),
        "{err:?}"
    );
    // tampered after signing
    let mut b = build(&key, "myorg", "hello", "1.0", "x");
    b.nar_size += 1;
    assert!(matches!(
        owner.register_build(&b).await,
        Err(CatalogError::Forbidden { .. })
    ));
    // rotation: trust the new key, both work
    let info = owner.add_key("myorg", &stranger.public()).await.unwrap();
    assert_eq!(info.keys.len(), 2);
    assert!(
        owner
            .register_build(&build(&stranger, "myorg", "hello", "1.0", "x"))
            .await
            .is_ok()
    );
    assert!(
        owner
            .register_build(&build(&key, "myorg", "hello", "2.0", "x"))
            .await
            .is_ok()
    );
    assert!(is_bad_request(&owner.add_key("myorg", "not-a-key").await));
    fx.finish().await;
}

async fn restart_keeps_data(mut fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    owner
        .register_build(&build(&key, "myorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let token = fx.add_user("bob").await;
    owner.allow("myorg", "bob").await.unwrap();
    drop(owner);
    fx.restart().await;
    let bob = fx.as_token("bob", &token);
    assert_eq!(
        bob.show("myorg", "hello").await.unwrap().latest_version,
        "1.0"
    );
    let alice = fx.user("alice").await;
    assert_eq!(alice.allowlist("myorg").await.unwrap(), ["bob"]);
    fx.finish().await;
}

async fn listing_etag(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    owner
        .register_build(&build(&key, "myorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let Listing::Packages { etag, packages } = owner.list_packages(None).await.unwrap() else {
        panic!("expected a list");
    };
    assert!(!etag.is_empty());
    assert_eq!(packages.len(), 1);
    assert_eq!(packages[0].name, "myorg/hello");
    assert_eq!(
        owner.list_packages(Some(&etag)).await.unwrap(),
        Listing::NotModified { etag: etag.clone() }
    );
    owner
        .register_build(&build(&key, "myorg", "world", "1.0", "x"))
        .await
        .unwrap();
    match owner.list_packages(Some(&etag)).await.unwrap() {
        Listing::Packages { etag: e2, packages } => {
            assert_ne!(e2, etag);
            assert_eq!(packages.len(), 2);
        }
        l => panic!("expected a fresh list, got {l:?}"),
    }
    fx.finish().await;
}

/// The names in a mirror's index, in order.
fn names(index: &pubdeck::catalog::search::SearchIndex) -> Vec<String> {
    (0..index.len())
        .map(|i| format!("{}/{}@{}", index.org(i), index.name(i), index.version(i)))
        .collect()
}

/// The names of the full listing, in order.
async fn listed(c: &AnyCatalog) -> Vec<String> {
    let Listing::Packages { packages, .. } = c.list_packages(None).await.unwrap() else {
        panic!("expected a list");
    };
    packages
        .iter()
        .map(|p| format!("{}@{}", p.name, p.latest_version))
        .collect()
}

/// Package lists are read one JSON array per catalog: names come back in byte order on every
/// database (whatever its collation), text survives quoting, fully yanked packages are left
/// out, and a cold load (a service just started) lists the same as a warm one.
async fn listing_is_in_byte_order_with_text_intact(mut fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    let names = ["b", "B", "a-b", "a.b", "a_b", "aB", "ab", "a0", "Z9"];
    let text = "quotes \" and \\ backslashes, café — 日本語 🎉, [\"json\", 1]";
    for (i, name) in names.iter().enumerate() {
        let mut b = build(&key, "myorg", name, "1.0", &format!("c{i}"));
        b.description = format!("{name}: {text}");
        key.sign(&mut b);
        owner.register_build(&b).await.unwrap();
    }
    owner
        .register_build(&build(&key, "myorg", "gone", "1.0", "g"))
        .await
        .unwrap();
    owner.yank("myorg", "gone", "1.0", true).await.unwrap();
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_unstable();
    let check = |listing: Listing| {
        let Listing::Packages { packages, .. } = listing else {
            panic!("expected a list");
        };
        let got: Vec<&str> = packages.iter().map(|p| p.package.as_str()).collect();
        assert_eq!(got, expected);
        for p in &packages {
            assert_eq!(p.description, format!("{}: {text}", p.package));
            assert_eq!(p.name, format!("myorg/{}", p.package));
            assert_eq!(p.latest_version, "1.0");
        }
    };
    check(owner.list_packages(None).await.unwrap());
    fx.restart().await;
    let owner = fx.user("alice").await;
    check(owner.list_packages(None).await.unwrap());
    fx.finish().await;
}

async fn listing_changes_fetch_only_what_changed(fx: Fixture) {
    use pubdeck::catalog::ListedCatalog;
    use pubdeck::catalog::mirror::{MirrorUpdate, PackageMirror};
    let (alice, akey) = setup(&fx, "aorg").await;
    let bkey = TestKey::new("borg-1", 2);
    alice
        .create_catalog("borg", STORE, &[bkey.public()])
        .await
        .unwrap();
    let bob = fx.user("bob").await;
    let skey = TestKey::new("shared-1", 3);
    bob.create_catalog("shared", STORE, &[skey.public()])
        .await
        .unwrap();
    bob.create_catalog("secret", STORE, &[skey.public()])
        .await
        .unwrap();
    bob.allow("shared", "alice").await.unwrap();
    for (org, key, n) in [("aorg", &akey, 3), ("borg", &bkey, 2)] {
        for i in 0..n {
            alice
                .register_build(&build(key, org, &format!("p{i}"), "1.0", org))
                .await
                .unwrap();
        }
    }
    for org in ["shared", "secret"] {
        bob.register_build(&build(&skey, org, "tool", "2.0", org))
            .await
            .unwrap();
    }

    // First refresh: every visible catalog, in the listing's order; the hidden one is absent.
    let mut mirror = PackageMirror::new();
    let MirrorUpdate::Changed {
        index,
        fetched_catalogs,
        fetched_packages,
        dropped_catalogs,
        ..
    } = mirror.refresh(&alice).await.unwrap()
    else {
        panic!("a first refresh fetches");
    };
    assert_eq!(
        (fetched_catalogs, fetched_packages, dropped_catalogs),
        (3, 6, 0)
    );
    assert_eq!(names(&index), listed(&alice).await);
    assert!(!names(&index).iter().any(|n| n.starts_with("secret/")));
    assert!(matches!(
        mirror.refresh(&alice).await.unwrap(),
        MirrorUpdate::Unchanged
    ));

    // One catalog changes: only it is fetched; the result equals a full listing.
    alice
        .register_build(&build(&bkey, "borg", "p0", "1.1", "borg"))
        .await
        .unwrap();
    alice
        .register_build(&build(&bkey, "borg", "new", "0.1", "borg"))
        .await
        .unwrap();
    let MirrorUpdate::Changed {
        index,
        fetched_catalogs,
        fetched_packages,
        ..
    } = mirror.refresh(&alice).await.unwrap()
    else {
        panic!("a registration changes the listing");
    };
    assert_eq!((fetched_catalogs, fetched_packages), (1, 3));
    assert_eq!(names(&index), listed(&alice).await);
    assert!(names(&index).contains(&"borg/p0@1.1".to_string()));

    // Access withdrawn: the catalog is dropped without fetching anything.
    bob.revoke("shared", "alice").await.unwrap();
    let MirrorUpdate::Changed {
        index,
        fetched_catalogs,
        dropped_catalogs,
        ..
    } = mirror.refresh(&alice).await.unwrap()
    else {
        panic!("a withdrawn catalog changes the listing");
    };
    assert_eq!((fetched_catalogs, dropped_catalogs), (0, 1));
    assert_eq!(names(&index), listed(&alice).await);
    assert_eq!(index.len(), 6);

    // Asked about a hidden catalog, the answer is the one for a missing catalog; a stale
    // version is answered with the current list.
    let ask = |name: &str, version: &str| ListedCatalog {
        name: name.into(),
        version: version.into(),
    };
    let hidden = alice
        .list_changes(&[ask("secret", "0-1"), ask("aorg", "0-0")])
        .await
        .unwrap();
    let missing = alice
        .list_changes(&[ask("nosuch", "0-1"), ask("aorg", "0-0")])
        .await
        .unwrap();
    assert_eq!(hidden, missing);
    let changed: Vec<&str> = hidden.changed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        changed,
        ["aorg", "borg"],
        "the stale and the unknown, not the hidden"
    );

    // The indexed form (an embedded catalog hands over the indexes it holds) is the plain
    // answer indexed.
    use pubdeck::catalog::mirror::IndexedChanges;
    let summaries = |c: &IndexedChanges| -> Vec<(String, String, Vec<String>)> {
        c.changed
            .iter()
            .map(|(listed, index)| {
                let packages = (0..index.len())
                    .map(|id| {
                        let p = index.summary(id);
                        format!("{}@{} {}", p.name, p.latest_version, p.description)
                    })
                    .collect();
                (listed.name.clone(), listed.version.clone(), packages)
            })
            .collect()
    };
    for known in [vec![], vec![ask("aorg", "0-0"), ask("secret", "0-1")]] {
        let indexed = alice.list_changes_indexed(&known).await.unwrap();
        let plain = IndexedChanges::index(alice.list_changes(&known).await.unwrap());
        assert_eq!(indexed.etag, plain.etag);
        assert_eq!(indexed.catalogs, plain.catalogs);
        assert_eq!(summaries(&indexed), summaries(&plain));
        assert!(!indexed.changed.is_empty());
    }
    fx.finish().await;
}

async fn access_control(fx: Fixture) {
    let (alice, key) = setup(&fx, "secretorg").await;
    alice
        .register_build(&build(&key, "secretorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let bob = fx.user("bob").await;
    let carol = fx.user("carol").await;

    // a stranger sees the same as for a missing catalog
    let hidden = bob.show("secretorg", "hello").await.unwrap_err();
    assert_eq!(
        hidden,
        CatalogError::not_found(
            pubdeck::catalog::Missing::Catalog,
            "catalog secretorg not found"
        )
    );
    let missing = bob.show("nosuchorg", "hello").await.unwrap_err();
    assert_eq!(
        missing,
        CatalogError::not_found(
            pubdeck::catalog::Missing::Catalog,
            "catalog nosuchorg not found"
        )
    );
    assert!(matches!(
        bob.catalog("secretorg").await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        bob.allow("secretorg", "bob").await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        bob.register_build(&build(&key, "secretorg", "evil", "1.0", "x"))
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(bob.search("hello", 10).await.unwrap().is_empty());
    assert!(
        matches!(bob.list_packages(None).await.unwrap(), Listing::Packages { packages, .. } if packages.is_empty())
    );

    // allowlisted: read yes, write no
    assert_eq!(alice.allow("secretorg", "carol").await.unwrap(), ["carol"]);
    assert_eq!(
        carol
            .show("secretorg", "hello")
            .await
            .unwrap()
            .latest_version,
        "1.0"
    );
    assert_eq!(
        carol.search("hello", 10).await.unwrap()[0].name,
        "secretorg/hello"
    );
    assert_eq!(carol.catalog("secretorg").await.unwrap().role, Role::Reader);
    let err = carol
        .register_build(&build(&key, "secretorg", "evil", "1.0", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Forbidden { .. }), "{err:?}");
    assert!(matches!(
        carol.set_store("secretorg", STORE).await,
        Err(CatalogError::Forbidden { .. })
    ));
    assert!(matches!(
        carol.allow("secretorg", "bob").await,
        Err(CatalogError::Forbidden { .. })
    ));
    assert!(matches!(
        carol.allowlist("secretorg").await,
        Err(CatalogError::Forbidden { .. })
    ));

    // revoke takes effect at once
    assert!(alice.revoke("secretorg", "carol").await.unwrap().is_empty());
    let err = carol.show("secretorg", "hello").await.unwrap_err();
    assert_eq!(err, hidden);
    assert!(carol.search("hello", 10).await.unwrap().is_empty());

    // unknown users cannot be allowed; taken names conflict
    assert!(matches!(
        alice.allow("secretorg", "nobody").await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        bob.create_catalog("secretorg", STORE, &[]).await,
        Err(CatalogError::Conflict(_))
    ));
    fx.finish().await;
}

async fn catalog_admin(fx: Fixture) {
    let (alice, _) = setup(&fx, "myorg").await;
    let info = alice
        .set_store(
            "myorg",
            "s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1",
        )
        .await
        .unwrap();
    assert!(info.store_url.starts_with("s3://bucket"));
    assert!(is_bad_request(
        &alice.set_store("myorg", "s3://key:secret@bucket").await
    ));
    assert!(is_bad_request(&alice.set_store("myorg", "ftp://x").await));
    let cats = alice.catalogs().await.unwrap();
    assert_eq!(cats.len(), 1);
    assert_eq!(cats[0].name, "myorg");
    fx.finish().await;
}

async fn credentials_in_source_url_are_rejected(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    for url in [
        "https://user:pw@example.invalid/r.git",
        "https://ghp_abc@example.invalid/r.git",
    ] {
        let mut b = build(&key, "myorg", "hello", "1.0", "x");
        b.source_url = url.into();
        let err = owner.register_build(&b).await.unwrap_err();
        assert!(
            matches!(err, CatalogError::BadRequest(ref m) if m.contains("credentials")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("pw@"));
    }
    fx.finish().await;
}

// ---- HTTP-level checks -------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn http_auth_is_required(fx: Fixture) {
    let (_alice, _) = setup(&fx, "myorg").await;
    let base = fx.base_url();
    let health = http()
        .get(format!("{base}/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    for auth in [
        None,
        Some("Bearer pdk_wrong"),
        Some("Basic YWxpY2U6eA=="),
        Some("Bearer "),
    ] {
        let mut req = http().get(format!("{base}/v1/catalogs/myorg"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let bad = fx.as_token("alice", "pdk_wrong");
    let err = bad.whoami().await.unwrap_err();
    assert_eq!(err, CatalogError::Unauthorized(AuthProblem::Rejected));
    assert!(err.to_string().contains("PUBDECK_TOKEN") && !err.to_string().contains("pdk_wrong"));
    fx.finish().await;
}

struct Raw {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn raw(req: reqwest::RequestBuilder) -> Raw {
    let resp = req.send().await.unwrap();
    Raw {
        status: resp.status(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

async fn probe(base: &str, token: &str, org: &str) -> Vec<Raw> {
    let c = http();
    let build =
        serde_json::to_value(build(&TestKey::new("k", 3), org, "evil", "1.0", "x")).unwrap();
    vec![
        raw(c
            .get(format!("{base}/v1/catalogs/{org}"))
            .bearer_auth(token))
        .await,
        raw(c
            .get(format!("{base}/v1/catalogs/{org}/packages/hello"))
            .bearer_auth(token))
        .await,
        raw(c
            .get(format!("{base}/v1/catalogs/{org}/packages/nothere"))
            .bearer_auth(token))
        .await,
        raw(c
            .get(format!("{base}/v1/catalogs/{org}/allowlist"))
            .bearer_auth(token))
        .await,
        raw(c
            .put(format!("{base}/v1/catalogs/{org}/allowlist/bob"))
            .bearer_auth(token))
        .await,
        raw(c
            .post(format!("{base}/v1/catalogs/{org}/builds"))
            .bearer_auth(token)
            .json(&build))
        .await,
        raw(c
            .get(format!(
                "{base}/v1/catalogs/{org}/check-build?name=hello&revision={}",
                "a".repeat(40)
            ))
            .bearer_auth(token))
        .await,
        raw(c
            .put(format!("{base}/v1/catalogs/{org}/store"))
            .bearer_auth(token)
            .json(&serde_json::json!({"store_url": STORE})))
        .await,
    ]
}

async fn http_hidden_catalog_is_byte_identical_to_missing(fx: Fixture) {
    let base = fx.base_url();
    let bob = fx.add_user("bob").await;
    let before = probe(&base, &bob, "secretorg").await;
    let (alice, key) = setup(&fx, "secretorg").await;
    alice
        .register_build(&build(&key, "secretorg", "hello", "1.0", "x"))
        .await
        .unwrap();
    let after = probe(&base, &bob, "secretorg").await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b.status, StatusCode::NOT_FOUND, "probe {i}");
        assert_eq!(a.status, StatusCode::NOT_FOUND, "probe {i}");
        assert_eq!(a.content_type, b.content_type, "probe {i}");
        assert_eq!(
            a.body,
            b.body,
            "probe {i}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // an allowlisted reader gets 403 on writes
    let carol = fx.add_user("carol").await;
    alice.allow("secretorg", "carol").await.unwrap();
    let as_carol = probe(&base, &carol, "secretorg").await;
    let statuses: Vec<u16> = as_carol.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 404, 403, 403, 403, 200, 403]);
    fx.finish().await;
}

async fn http_oversized_body_is_413(fx: Fixture) {
    let (_alice, _) = setup(&fx, "myorg").await;
    let token = fx.add_user("dave").await;
    // Just over the 1 MiB limit (see the chunked case below for why not more).
    let big = format!(
        "{{\"name\":\"{}\",\"store_url\":\"x\"}}",
        "a".repeat(1024 * 1024 + 16 * 1024)
    );
    let resp = http()
        .post(format!("{}/v1/catalogs", fx.base_url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    // Chunked, no Content-Length: the service only finds out by reading past the limit. Just
    // over it, so what the client still writes after the answer fits in the socket buffers
    // (a larger body races the server's close: a broken pipe instead of the 413).
    let over = format!(
        "{{\"name\":\"{}\",\"store_url\":\"x\"}}",
        "a".repeat(1024 * 1024 + 16 * 1024)
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = over
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures::stream::iter(chunks);
    let resp = http()
        .post(format!("{}/v1/catalogs", fx.base_url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    fx.finish().await;
}

async fn http_bad_json_is_400(fx: Fixture) {
    let (_alice, _) = setup(&fx, "myorg").await;
    let token = fx.add_user("dave").await;
    let c = http();
    let resp = c
        .post(format!("{}/v1/catalogs", fx.base_url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the request body is not valid JSON"),
        "{msg}"
    );
    let resp = c
        .post(format!("{}/v1/catalogs", fx.base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "neworg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store_url"),
        "{body}"
    );
    let resp = c
        .get(format!("{}/v1/search?limit=abc&q=x", fx.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    fx.finish().await;
}

async fn http_server_rejects_malicious_names(fx: Fixture) {
    let (_alice, key) = setup(&fx, "myorg").await;
    let token = fx.add_user("alice").await;
    let c = http();
    let base = fx.base_url();
    for seg in ["a%2Fb", "a%00b", "h%C3%A9llo", &"a".repeat(129), "%20"] {
        let resp = c
            .get(format!("{base}/v1/catalogs/myorg/packages/{seg}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{seg}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let long = "a".repeat(129);
    for bad in ["..", "a/b", "a\u{0}b", long.as_str(), "héllo"] {
        let mut b = serde_json::to_value(build(&key, "myorg", "x", "1.0", "c")).unwrap();
        b["package"] = serde_json::Value::String(bad.to_string());
        let resp = c
            .post(format!("{base}/v1/catalogs/myorg/builds"))
            .bearer_auth(&token)
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    fx.finish().await;
}

async fn http_published_by_comes_from_the_token(fx: Fixture) {
    let (_alice, key) = setup(&fx, "myorg").await;
    let token = fx.add_user("alice").await;
    let mut b = serde_json::to_value(build(&key, "myorg", "hello", "1.0", "c")).unwrap();
    b["published_by"] = "mallory".into();
    b["published_at"] = "1999-01-01T00:00:00Z".into();
    let resp = http()
        .post(format!("{}/v1/catalogs/myorg/builds", fx.base_url()))
        .bearer_auth(&token)
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "created");
    assert_eq!(body["build"]["published_by"], "alice");
    assert_ne!(body["build"]["published_at"], "1999-01-01T00:00:00Z");
    let again = http()
        .post(format!("{}/v1/catalogs/myorg/builds", fx.base_url()))
        .bearer_auth(&token)
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    fx.finish().await;
}

async fn http_unknown_route_is_json_404(fx: Fixture) {
    let resp = http()
        .get(format!("{}/v2/nothing", fx.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    fx.finish().await;
}

async fn batch_registration_is_all_or_none(fx: Fixture) {
    let (owner, key) = setup(&fx, "myorg").await;
    let first = build(&key, "myorg", "base", "1.0", "base");
    owner.register_build(&first).await.unwrap();

    // One build conflicts with what is there: the whole batch is refused, nothing lands.
    let mut batch: Vec<_> = (0..3)
        .map(|i| build(&key, "myorg", &format!("pkg{i}"), "1.0", "x"))
        .collect();
    batch.push(build(&key, "myorg", "base", "1.0", "other bytes"));
    match owner.register_builds("myorg", &batch).await {
        Err(CatalogError::Conflict(m)) => assert!(m.contains("myorg/base 1.0"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(owner.search("pkg", 10).await.unwrap(), vec![]);

    // One bad signature: refused, nothing lands.
    batch.pop();
    let mut forged = build(&key, "myorg", "forged", "1.0", "f");
    forged.nar_size += 1;
    batch.push(forged);
    assert!(owner.register_builds("myorg", &batch).await.is_err());
    assert_eq!(owner.search("pkg", 10).await.unwrap(), vec![]);

    // A build of another catalog inside the batch is a bad request naming its position.
    batch.pop();
    batch.push(build(&key, "other", "stray", "1.0", "s"));
    match owner.register_builds("myorg", &batch).await {
        Err(CatalogError::BadRequest(m)) => assert!(m.contains("build 4 of the batch"), "{m}"),
        other => panic!("expected a bad request, got {other:?}"),
    }

    // The same build again counts as already published; the rest are created.
    batch.pop();
    batch.push(first.clone());
    let done = owner.register_builds("myorg", &batch).await.unwrap();
    assert_eq!((done.created, done.already_published), (3, 1));
    let names: Vec<String> = owner
        .search("pkg", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let again = owner.register_builds("myorg", &batch).await.unwrap();
    assert_eq!((again.created, again.already_published), (0, 4));

    // Only the owner may register, and a reader sees the same answer as for a missing catalog.
    let bob = fx.user("bob").await;
    owner.allow("myorg", "bob").await.unwrap();
    let extra = vec![build(&key, "myorg", "bobs", "1.0", "b")];
    assert!(bob.register_builds("myorg", &extra).await.is_err());
    let eve = fx.user("eve").await;
    let hidden = eve.register_builds("myorg", &extra).await.unwrap_err();
    let missing = eve.register_builds("nosuch", &[]).await.unwrap_err();
    assert_eq!(
        std::mem::discriminant(&hidden),
        std::mem::discriminant(&missing),
        "{hidden:?} vs {missing:?}"
    );

    // Too many builds in one batch.
    let many = vec![first.clone(); pubdeck::catalog::MAX_BATCH + 1];
    assert!(is_bad_request(&owner.register_builds("myorg", &many).await));
    fx.finish().await;
}

async fn import_stops_at_a_bad_line_and_resumes(fx: Fixture) {
    use pubdeck::catalog::import::{ImportError, import_ndjson};
    let (owner, key) = setup(&fx, "bulk").await;
    let n = 2_500;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let b = build(&key, "bulk", &format!("p{i:05}"), "1.0", &format!("c{i}"));
            serde_json::to_string(&b).unwrap()
        })
        .collect();
    // Line 1,500 is broken: the first batch (1,000 builds) lands, the second does not.
    let mut broken = lines.clone();
    broken[1_499] = "{\"org\": \"bulk\"".into();
    let text = broken.join("\n");
    let mut seen = Vec::new();
    let err = import_ndjson(&owner, "bulk", text.as_bytes(), |p| seen.push(p.created))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImportError::Line { line: 1_500, .. }),
        "{err}"
    );
    assert_eq!(seen, vec![1_000]);
    assert_eq!(
        owner.show("bulk", "p00999").await.unwrap().name,
        "bulk/p00999"
    );
    assert!(owner.show("bulk", "p01000").await.is_err());

    // Fixed and rerun: the registered thousand are skipped, the rest are created.
    let text = format!("{}\n\n", lines.join("\n"));
    let done = import_ndjson(&owner, "bulk", text.as_bytes(), |_| {})
        .await
        .unwrap();
    assert_eq!((done.created, done.already_published), (1_500, 1_000));
    assert_eq!(done.batches, 3);
    assert_eq!(
        owner.show("bulk", "p02499").await.unwrap().name,
        "bulk/p02499"
    );

    // A line signed by a key the catalog does not trust is named, not only its batch; and
    // a refused signature inside a batch names its build.
    let stranger = TestKey::new("stranger-1", 9);
    let mut mixed: Vec<String> = (0..5)
        .map(|i| serde_json::to_string(&build(&key, "bulk", &format!("s{i}"), "1.0", "s")).unwrap())
        .collect();
    mixed[3] = serde_json::to_string(&build(&stranger, "bulk", "s3", "1.0", "s")).unwrap();
    let err = import_ndjson(&owner, "bulk", mixed.join("\n").as_bytes(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Refused {
                line: 4,
                source: CatalogError::Forbidden {
                    why: pubdeck::catalog::Refusal::UntrustedKey,
                    ..
                }
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("stranger-1"), "{err}");
    let hint = pubdeck::event::Hinted::hint(&err).unwrap();
    assert!(hint.contains("catalog add-key"), "{hint}");
    let batch: Vec<_> = (0..3)
        .map(|i| {
            let k = if i == 2 { &stranger } else { &key };
            build(k, "bulk", &format!("t{i}"), "1.0", "t")
        })
        .collect();
    let refused = owner.register_builds("bulk", &batch).await.unwrap_err();
    assert!(
        refused.to_string().contains("build 3 of the batch"),
        "{refused}"
    );

    // A line for another catalog stops the import before anything of its batch is sent.
    let stray = serde_json::to_string(&build(&key, "elsewhere", "x", "1.0", "x")).unwrap();
    let err = import_ndjson(&owner, "bulk", stray.as_bytes(), |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("line 1") && err.to_string().contains("elsewhere"),
        "{err}"
    );
    fx.finish().await;
}

// ---- the local search index file ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_search_index_is_kept_current_across_processes() {
    use pubdeck::catalog::EmbeddedCatalog;
    use pubdeck::catalog::index_file;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("catalog.sqlite");
    let url = db.display().to_string();
    let index = index_file::path_for(&db);
    let key = TestKey::new("myorg-1", 1);
    let names = |hits: Vec<pubdeck::catalog::SearchHit>| -> Vec<String> {
        hits.into_iter().map(|h| h.name).collect()
    };

    // "Process" 1: creates two catalogs and searches: the index file appears.
    let one = EmbeddedCatalog::open_as(&url, "alice").await.unwrap();
    for org in ["myorg", "second"] {
        one.create_catalog(org, STORE, &[key.public()])
            .await
            .unwrap();
        one.register_build(&build(&key, org, "hello", "1.0", org))
            .await
            .unwrap();
    }
    assert_eq!(
        names(one.search("hello", 10).await.unwrap()),
        ["myorg/hello", "second/hello"]
    );
    one.index_written().await;
    let written = index_file::load(&index).expect("the index was written");
    assert_eq!(written.len(), 2);

    // "Process" 2 registers into one catalog; a fresh process 3 sees it (that catalog is
    // read again, the other comes from the file).
    let two = EmbeddedCatalog::open_as(&url, "alice").await.unwrap();
    two.register_build(&build(&key, "myorg", "hello-extra", "1.0", "x"))
        .await
        .unwrap();
    let three = EmbeddedCatalog::open_as(&url, "alice").await.unwrap();
    assert_eq!(
        names(three.search("hello", 10).await.unwrap()),
        ["myorg/hello", "second/hello", "myorg/hello-extra"]
    );
    three.index_written().await;
    let rewritten = index_file::load(&index).unwrap();
    let myorg = rewritten.iter().find(|c| c.name == "myorg").unwrap();
    assert_eq!(myorg.index.len(), 2, "the stale catalog was rewritten");

    // The file serves a current catalog: proved by an entry edited in place (same generation).
    let edited: Vec<index_file::CatalogIndex> = rewritten
        .iter()
        .map(|c| {
            let mut packages: Vec<_> = c.packages().collect();
            if c.name == "second" {
                packages[0].description = "only in the index file".into();
            }
            index_file::CatalogIndex::new(&c.name, c.created_at, c.generation, &packages)
        })
        .collect();
    index_file::save(&index, &db, &edited.iter().collect::<Vec<_>>()).unwrap();
    let four = EmbeddedCatalog::open_as(&url, "alice").await.unwrap();
    let hits = four.search("second/hello", 1).await.unwrap();
    assert_eq!(hits[0].description, "only in the index file");

    // Visibility still comes from the database: another local user sees nothing.
    let bob = EmbeddedCatalog::open_as(&url, "bob").await.unwrap();
    assert_eq!(bob.search("hello", 10).await.unwrap(), vec![]);
    one.allow("second", "bob").await.unwrap();
    let bob = EmbeddedCatalog::open_as(&url, "bob").await.unwrap();
    assert_eq!(
        names(bob.search("hello", 10).await.unwrap()),
        ["second/hello"]
    );

    // A damaged file is ignored and replaced.
    std::fs::write(&index, b"PDKIDX01 garbage").unwrap();
    let five = EmbeddedCatalog::open_as(&url, "alice").await.unwrap();
    assert_eq!(five.search("hello", 10).await.unwrap().len(), 3);
    five.index_written().await;
    assert_eq!(index_file::load(&index).unwrap().len(), 2);
}

// ---- command line ------------------------------------------------------------------------

mod cli {
    use super::catalog_support::{TestKey, build};
    use clap::{Parser, Subcommand};
    use pubdeck::catalog::{Catalog, CatalogClient, EmbeddedCatalog};
    use pubdeck::cli::catalog::{
        CatalogArgs, SearchArgs, ShowArgs, UserArgs, run_catalog, run_search, run_show, run_user,
    };
    use pubdeck::config::Overrides;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        Catalog(CatalogArgs),
        Search(SearchArgs),
        Show(ShowArgs),
        User(UserArgs),
    }

    async fn run(args: &[&str], o: &Overrides) -> (Result<(), u8>, String) {
        let cli = Cli::try_parse_from(std::iter::once("pubdeck").chain(args.iter().copied()))
            .expect("arguments parse");
        let mut out = Vec::new();
        let res = match &cli.command {
            Cmd::Catalog(a) => run_catalog(a, o, &mut out).await,
            Cmd::Search(a) => run_search(a, o, &mut out).await,
            Cmd::Show(a) => run_show(a, o, &mut out).await,
            Cmd::User(a) => run_user(a, o, &mut out).await,
        };
        (res.map_err(|e| e.code), String::from_utf8(out).unwrap())
    }

    /// Settings for an embedded catalog `catalog.sqlite` in `tmp`, and a key `myorg-1` with
    /// its public key written to a file (the path is returned).
    fn local_catalog(tmp: &std::path::Path) -> (Overrides, TestKey, String) {
        let o = Overrides {
            catalog: Some(tmp.join("catalog.sqlite").display().to_string()),
            config_file: Some(tmp.join("config.toml")),
            data_dir: Some(tmp.join("data")),
            ..Overrides::default()
        };
        let key = TestKey::new("myorg-1", 1);
        let pubfile = tmp.join("key.pub");
        std::fs::write(&pubfile, format!("{}\n", key.public())).unwrap();
        (o, key, pubfile.display().to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_show_and_admin_on_the_embedded_catalog() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = tmp.path().join("catalog.sqlite");
        let (o, key, pubfile) = local_catalog(tmp.path());

        let (res, out) = run(
            &["catalog", "create", "myorg", "--key", &pubfile, "--json"],
            &o,
        )
        .await;
        assert_eq!(res, Ok(()));
        let info: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(info["name"], "myorg");
        assert!(info["store_url"].as_str().unwrap().starts_with("file://"));
        assert_eq!(info["keys"][0], key.public());

        let local = EmbeddedCatalog::open(&catalog).await.unwrap();
        for (pkg, desc) in [
            ("hello", "GNU hello"),
            ("hello-world-server", "greets over HTTP"),
        ] {
            let mut b = build(&key, "myorg", pkg, "1.0", "x");
            b.description = desc.into();
            local.register_build(&b).await.unwrap();
        }

        let (res, out) = run(&["search", "hello", "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["results"][0]["name"], "myorg/hello");
        assert_eq!(doc["results"].as_array().unwrap().len(), 2);

        let (res, out) = run(&["search", "hello"], &o).await;
        assert_eq!(res, Ok(()));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("myorg/hello  "));
        let col = lines[1].find("greets").unwrap();
        assert_eq!(
            lines[0].find("GNU").unwrap(),
            col,
            "aligned columns:\n{out}"
        );

        let (res, out) = run(&["search", "hello", "--limit", "1", "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["results"].as_array().unwrap().len(), 1);

        let (res, out) = run(&["show", "myorg/hello", "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            doc["versions"][0]["builds"][0]["published_by"],
            local.user()
        );

        let (res, out) = run(&["show", "myorg/hello"], &o).await;
        assert_eq!(res, Ok(()));
        assert!(out.starts_with("myorg/hello - GNU hello"), "{out}");
        assert!(out.contains("x86_64-linux") && out.contains("/nix/store/"));

        assert_eq!(run(&["show", "not-a-ref"], &o).await.0, Err(2));
        assert_eq!(run(&["show", "myorg/nope"], &o).await.0, Err(1));
        assert_eq!(run(&["show", "other/hello"], &o).await.0, Err(1));

        let (res, out) = run(&["catalog", "allowlist", "myorg", "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["users"], serde_json::json!([]));
        assert_eq!(
            run(&["catalog", "allow", "myorg", "ghost"], &o).await.0,
            Err(1)
        );
        let (res, _) = run(&["catalog", "set-store", "myorg", "file:///srv/cache"], &o).await;
        assert_eq!(res, Ok(()));
        assert_eq!(
            local.catalog("myorg").await.unwrap().store_url,
            "file:///srv/cache"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn catalog_import_registers_ndjson_and_reruns_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let (o, key, pubfile) = local_catalog(tmp.path());
        let (res, _) = run(&["catalog", "create", "myorg", "--key", &pubfile], &o).await;
        assert_eq!(res, Ok(()));
        let file = tmp.path().join("builds.ndjson");
        let text: String = (0..30)
            .map(|i| {
                let b = build(&key, "myorg", &format!("tool{i}"), "2.0", "t");
                format!("{}\n", serde_json::to_string(&b).unwrap())
            })
            .collect();
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        let (res, out) = run(&["catalog", "import", "myorg", &file, "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["created"], 30);
        assert_eq!(doc["already_published"], 0);
        let (res, out) = run(&["catalog", "import", "myorg", &file], &o).await;
        assert_eq!(res, Ok(()));
        assert_eq!(
            out.trim(),
            "imported 0 build(s) into myorg; 30 were there already"
        );
        let (res, out) = run(&["search", "tool", "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["results"].as_array().unwrap().len(), 20);
        // Into a catalog the file is not for: refused, naming the line.
        let (res, _) = run(&["catalog", "create", "other", "--key", &pubfile], &o).await;
        assert_eq!(res, Ok(()));
        assert_eq!(
            run(&["catalog", "import", "other", &file], &o).await.0,
            Err(1)
        );
        assert_eq!(
            run(&["catalog", "import", "myorg", "/nonexistent/x.ndjson"], &o)
                .await
                .0,
            Err(1)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_add_prints_a_working_token() {
        let tmp = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", tmp.path().join("svc.sqlite").display());
        let o = Overrides {
            config_file: Some(tmp.path().join("config.toml")),
            data_dir: Some(tmp.path().join("data")),
            ..Overrides::default()
        };
        let (res, out) = run(&["user", "add", "erin", "--db", &db, "--json"], &o).await;
        assert_eq!(res, Ok(()));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let token = doc["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("pdk_") && token.len() > 40);
        // only the hash is stored
        let raw = std::fs::read(tmp.path().join("svc.sqlite")).unwrap();
        assert!(!raw.windows(token.len()).any(|w| w == token.as_bytes()));
        assert_eq!(
            run(&["user", "add", "erin", "--db", &db], &o).await.0,
            Err(1)
        );

        let server = pubdeck::server::Server::bind("127.0.0.1:0".parse().unwrap(), &db)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        let client = CatalogClient::new(&format!("http://{addr}"), Some(token.clone())).unwrap();
        assert_eq!(client.whoami().await.unwrap(), "erin");
        assert!(!format!("{client:?}").contains(&token));
        let _ = tx.send(());
        task.await.unwrap().unwrap();
        let err = client.whoami().await.unwrap_err();
        assert!(
            matches!(err, pubdeck::catalog::CatalogError::Unreachable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&addr.to_string()));
    }
}
