//! One search, three faces (ARCHITECTURE.md, "One search"): for queries that exercise the
//! ranking rules (case, terms over organisation, name and description, whole-word
//! descriptions above weak fuzzy names, suggestions when nothing matches), the workbench's
//! filter (over the mirror its Catalog tab keeps), `pubdeck search --json` (the binary, on the
//! catalog file and its index file) and the service's `GET /v1/search` answer with the same
//! packages in the same order, and suggest the same names.

use std::process::Command;
use std::sync::Arc;

use crate::common::catalog_support::{Fixture, Kind, TestKey, build};
use pubdeck::catalog::Catalog;
use pubdeck::catalog::mirror::PackageMirror;
use pubdeck::catalog::search::Filter;

const STORE: &str = "file:///tmp/pubdeck-test-store";

/// `(org, package, description)`.
const PACKAGES: &[(&str, &str, &str)] = &[
    ("myorg", "hello", "Greets the organisation"),
    (
        "myorg",
        "hello-lib",
        "Library for hello: greets the organisation",
    ),
    (
        "myorg",
        "go-release-notes-cli",
        "Command-line interface for release-notes: generates release notes",
    ),
    (
        "myorg",
        "py-hello-server",
        "Server component of hello: greets the organisation (Python edition)",
    ),
    ("myorg", "Greeter", "Says hi"),
    ("myorg", "help2man", "manual pages"),
    ("myorg", "jq-tools", "json helpers"),
    ("tools", "hello", "GNU hello"),
    ("tools", "greetsd", "a daemon that greets"),
    ("tools", "myorg-hello", "the hello of myorg, mirrored"),
    (
        "tools",
        "release-notes",
        "Generates release notes from pull requests",
    ),
    ("tools", "zeta", "greets in greek"),
];

/// Every query the faces must agree on, with what the rules say of it.
const QUERIES: &[&str] = &[
    "hello",
    "Hello",
    "HELLO",
    "myorg hello",
    "MyOrg HELLO",
    "tools hello",
    "greets",
    "GREETS",
    "greet",
    "release notes",
    "myorg",
    "myorg/hel",
    "hel",
    "hlelo",
    "myorg/hlelo",
    "myorg hlelo",
    "qqqqqq",
];

/// The names of a JSON answer's `results`, and its `suggestions`.
fn names_of(doc: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let strings = |v: &serde_json::Value, field: Option<&str>| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(|x| {
                let x = field.map_or(x, |f| &x[f]);
                x.as_str().unwrap().to_string()
            })
            .collect()
    };
    (
        strings(&doc["results"], Some("name")),
        strings(&doc["suggestions"], None),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_cli_and_service_rank_alike() {
    let fx = Fixture::start(Kind::SqliteService)
        .await
        .expect("a SQLite service");
    let key = TestKey::new("myorg-1", 1);
    let token = fx.add_user("alice").await;
    let alice = fx.user("alice").await;
    for org in ["myorg", "tools"] {
        alice
            .create_catalog(org, STORE, &[key.public()])
            .await
            .unwrap();
    }
    for (org, package, description) in PACKAGES {
        let mut b = build(&key, org, package, "1.0", &format!("{org}/{package}"));
        b.description = (*description).into();
        alice.register_build(&b).await.unwrap();
    }

    // The workbench: the mirror its Catalog tab refreshes, filtered as keys are typed.
    let mut mirror = PackageMirror::new();
    mirror.refresh(&alice).await.unwrap();
    let index = Arc::clone(mirror.index());
    let workbench = |f: &Filter| -> (Vec<String>, Vec<String>) {
        let name = |id: usize| format!("{}/{}", f.index().org(id), f.index().name(id));
        (
            f.hits().iter().map(|h| name(h.id)).collect(),
            f.suggestions().iter().map(|&id| name(id)).collect(),
        )
    };
    let mut typed = Filter::new(Arc::clone(&index));

    // The CLI on the service's database file, as the local user alice (its own index file).
    let db = fx.tmp.path().join("service.sqlite");
    let http = reqwest::Client::new();
    for query in QUERIES {
        let out = Command::new(env!("CARGO_BIN_EXE_pubdeck"))
            .args(["search", query, "--json", "--limit", "50"])
            .env("PUBDECK_CATALOG", &db)
            .env("USER", "alice")
            .env("PUBDECK_DATA_DIR", fx.tmp.path().join("data"))
            .env("XDG_CONFIG_HOME", fx.tmp.path().join("cfg"))
            .env_remove("PUBDECK_TOKEN")
            .env_remove("PUBDECK_ORG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli = names_of(&serde_json::from_slice(&out.stdout).unwrap());

        let resp = http
            .get(format!("{}/v1/search", fx.base_url()))
            .query(&[("q", *query), ("limit", "50")])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{query}: {}", resp.status());
        let service = names_of(&resp.json().await.unwrap());

        let mut fresh = Filter::new(Arc::clone(&index));
        fresh.set_query(query);
        let fresh = workbench(&fresh);
        // Typed one character at a time after the previous query was erased back to its
        // common prefix, as the search box is edited (narrowing where it may).
        let common = typed
            .query()
            .chars()
            .zip(query.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let kept: String = query.chars().take(common).collect();
        typed.set_query(&kept);
        for (i, _) in query.char_indices().skip(common) {
            typed.set_query(&query[..i]);
        }
        typed.set_query(query);
        let typed = workbench(&typed);

        assert_eq!(cli, service, "{query:?}: the CLI and the service differ");
        assert_eq!(
            fresh, service,
            "{query:?}: the workbench and the service differ"
        );
        assert_eq!(typed, fresh, "{query:?}: typing it and pasting it differ");
        rules(query, &service.0, &service.1);
    }
    fx.finish().await;
}

/// What the rules say of each query's answer (the same in every face, checked above).
fn rules(query: &str, results: &[String], suggestions: &[String]) {
    let at = |name: &str| results.iter().position(|r| r == name);
    match query {
        // Case never hides the exact match (both are exact; ties go by organisation).
        "hello" | "Hello" | "HELLO" => {
            assert_eq!(results[..2], ["myorg/hello", "tools/hello"], "{query}")
        }
        // Terms go over organisation, name and description.
        "myorg hello" | "MyOrg HELLO" => {
            assert_eq!(results[0], "myorg/hello", "{query}: {results:?}");
            assert!(at("tools/hello").is_none(), "{query}: {results:?}");
        }
        "tools hello" => assert_eq!(results[0], "tools/hello", "{results:?}"),
        // A whole word of the description above a weak fuzzy name; a name holding the
        // term above both.
        "greets" | "GREETS" => {
            assert_eq!(results[0], "tools/greetsd", "{query}: {results:?}");
            let word = at("myorg/hello").expect("a whole-word description match");
            let fuzzy = at("myorg/go-release-notes-cli").expect("a weak fuzzy name match");
            assert!(word < fuzzy, "{query}: {results:?}");
        }
        "myorg" => assert!(
            results.iter().filter(|r| r.starts_with("myorg/")).count() == 7,
            "every package of the org named: {results:?}"
        ),
        "hlelo" => assert_eq!(suggestions, ["myorg/hello", "tools/hello"]),
        "myorg/hlelo" | "myorg hlelo" => assert_eq!(suggestions, ["myorg/hello"], "{query}"),
        "qqqqqq" => assert!(results.is_empty() && suggestions.is_empty()),
        _ => {}
    }
    if !results.is_empty() {
        assert!(
            suggestions.is_empty(),
            "{query}: suggestions beside results"
        );
    }
}
