//! Strings a catalog owner controls, through the real service on loopback and the real
//! binary: store URLs and key names never reach `nix.conf` (read back by real Nix through
//! `NIX_CONF_DIR`) unless they are single values of its grammar, whether they arrive through
//! the service's API, straight from its database, or encoded; credentials never go to a host
//! that only looks like AWS's.

use crate::common;
use crate::common::catalog_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use catalog_support::{Fixture, Kind, TestKey};
use pubdeck::catalog::{AnyCatalog, Catalog};

const KEY_NAME: &str = "myorg-1";

/// Store URLs that decode to something nix.conf would read as more than one value, or that
/// smuggle a second host past the AWS check. Each is refused on the way in and on the way out.
const HOSTILE_STORE_URLS: &[&str] = &[
    "file:///srv/cache%0Apost-build-hook%20%3D%20/tmp/pwn",
    "file:///srv/cache%0Atrusted-users%20%3D%20*",
    "file:///srv/cache%0Asandbox%20%3D%20false",
    "file:///srv/cache%20file:///tmp/other",
    "file:///srv/cache%23comment",
    "file:///srv/cache%0D%0Aallowed-users%20=%20*",
    "file:///srv/./../etc",
    "s3://bucket/team%0Anix?region=us-east-1",
    "s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9%0Apost-build-hook%3D/tmp/pwn",
    "s3://bucket?endpoint=https%3A%2F%2Flocalhost%23.amazonaws.com",
    "s3://bucket?endpoint=https://localhost%23.amazonaws.com",
    "s3://bucket?endpoint=https://user%40evil.example",
    "s3://bucket?region=us-east-1%20x",
    "s3://bucket?profile=dev%0Ax",
];

/// Public keys whose names nix.conf cannot hold (a `#` starts a comment there).
fn hostile_keys() -> Vec<String> {
    let good = TestKey::new("x", 1).public();
    let b64 = good.split_once(':').unwrap().1.to_string();
    [
        "ev#l-1",
        "a b",
        "a\nsandbox=false",
        "-dash",
        "tab\tname",
        "ütf",
    ]
    .iter()
    .map(|n| format!("{n}:{b64}"))
    .collect()
}

async fn owner(fx: &Fixture, tmp: &Path) -> (AnyCatalog, String) {
    let token = fx.add_user("alice").await;
    let catalog = fx.user("alice").await;
    let store = format!("file://{}", tmp.join("store").display());
    catalog
        .create_catalog("myorg", &store, &[TestKey::new(KEY_NAME, 1).public()])
        .await
        .unwrap();
    (catalog, token)
}

fn pubdeck(fx: &Fixture, token: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("PUBDECK_CATALOG", fx.base_url())
        .env("PUBDECK_TOKEN", token)
        .env("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST")
        .env("AWS_SECRET_ACCESS_KEY", "hostile-secret")
        .env_remove("PUBDECK_DB")
        .stdin(Stdio::null())
        .output()
        .expect("pubdeck runs")
}

/// One line on stderr, no raw control characters anywhere in what was printed.
fn assert_clean_refusal(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{what}: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let printed = format!("{}{err}", String::from_utf8_lossy(&o.stdout));
    assert!(
        !printed
            .chars()
            .any(|c| c != '\n' && pubdeck::text::is_unsafe_char(c)),
        "{what}: raw control characters printed: {printed:?}"
    );
    assert!(
        err.starts_with("error: ") || printed.contains("✗"),
        "{what}: says nothing: {printed}"
    );
}

/// What real Nix reads from `dir/nix.conf` (`nix show-config --json`, only that file).
fn nix_reads(dir: &Path) -> serde_json::Value {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-config",
            "--json",
        ])
        .env_remove("NIX_CONFIG")
        .env("NIX_CONF_DIR", dir)
        .env("NIX_USER_CONF_FILES", dir.join("no-user.conf"))
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("nix runs");
    assert!(
        out.status.success(),
        "nix show-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix show-config prints JSON")
}

fn setting(nix: &serde_json::Value, name: &str) -> serde_json::Value {
    nix[name]["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_refuses_hostile_store_urls_and_key_names() {
    let fx = Fixture::start(Kind::SqliteService).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_, token) = owner(&fx, tmp.path()).await;
    // Straight to the API (the client would refuse before sending).
    let http = reqwest::Client::new();
    let base = fx.base_url();
    for url in HOSTILE_STORE_URLS {
        let created = http
            .post(format!("{base}/v1/catalogs"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "evil", "store_url": url, "keys": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 400, "create with {url}");
        let set = http
            .put(format!("{base}/v1/catalogs/myorg/store"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"store_url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), 400, "set-store {url}");
        let body = set.text().await.unwrap();
        assert!(!body.contains('\n') || body.ends_with('\n'), "{body}");
    }
    for key in hostile_keys() {
        let added = http
            .post(format!("{base}/v1/catalogs/myorg/keys"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 400, "add-key {key:?}");
    }
    // The store URL the service keeps is the canonical one, which is what readers get.
    let set = http
        .put(format!("{base}/v1/catalogs/myorg/store"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"store_url": "file:///srv/./pubdeck//cache/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let info: serde_json::Value = set.json().await.unwrap();
    assert_eq!(info["store_url"], "file:///srv/pubdeck/cache");
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_writes_nothing_from_a_hostile_database_and_real_nix_reads_only_the_template() {
    if !common::nix::have_nix("use_writes_nothing_from_a_hostile_database") {
        return;
    }
    let fx = Fixture::start(Kind::SqliteService).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (catalog, token) = owner(&fx, tmp.path()).await;
    catalog
        .register_build(&catalog_support::build(
            &TestKey::new(KEY_NAME, 1),
            "myorg",
            "tool",
            "1.0",
            "tool",
        ))
        .await
        .unwrap();
    let env = tmp.path().join("env");
    std::fs::create_dir_all(env.join(".flox/env")).unwrap();
    std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
    let envs = env.to_str().unwrap();
    let conf_dir = tmp.path().join("etc-nix");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = conf_dir.join("nix.conf");
    let original = "# the machine's own\nexperimental-features = nix-command\n";
    std::fs::write(&conf, original).unwrap();
    let confs = conf.to_str().unwrap();

    // A database that holds what an older release (or a hand edit) let in: every reader
    // refuses it before anything is written.
    for url in HOSTILE_STORE_URLS {
        fx.backend
            .db()
            .set_store("myorg", url, "alice")
            .await
            .unwrap();
        let o = pubdeck(
            &fx,
            &token,
            &home,
            &["use", "myorg", "--nix-conf", confs, "--yes"],
        );
        assert_clean_refusal(&o, url);
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), original, "{url}");
        for cmd in ["ready", "install"] {
            let o = pubdeck(&fx, &token, &home, &[cmd, "myorg/tool", "--dir", envs]);
            assert_clean_refusal(&o, &format!("{cmd} with {url}"));
        }
    }
    let store = format!("file://{}", tmp.path().join("store").display());
    fx.backend
        .db()
        .set_store("myorg", &store, "alice")
        .await
        .unwrap();
    for key in hostile_keys() {
        let name = key.split_once(':').unwrap().0.to_string();
        fx.backend
            .db()
            .add_key("myorg", &name, &key, "alice")
            .await
            .unwrap();
        let o = pubdeck(
            &fx,
            &token,
            &home,
            &["use", "myorg", "--nix-conf", confs, "--yes"],
        );
        assert_clean_refusal(&o, &key);
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), original, "{key:?}");
        fx.backend
            .db()
            .remove_key("myorg", &name, "alice")
            .await
            .unwrap();
    }

    // The honest catalog: real Nix reads exactly the two values added, nothing else moved.
    let before = nix_reads(&conf_dir);
    let o = pubdeck(
        &fx,
        &token,
        &home,
        &["use", "myorg", "--nix-conf", confs, "--yes"],
    );
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&conf).unwrap();
    let added: Vec<&str> = text.strip_prefix(original).unwrap().lines().collect();
    let public = TestKey::new(KEY_NAME, 1).public();
    assert_eq!(
        added,
        [
            format!("extra-substituters = {store}"),
            format!("extra-trusted-public-keys = {public}"),
        ]
    );
    let after = nix_reads(&conf_dir);
    assert_eq!(
        setting(&after, "substituters")
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| setting(&before, "substituters")
                .as_array()
                .is_none_or(|b| !b.contains(v)))
            .collect::<Vec<_>>(),
        [&serde_json::Value::from(store.as_str())]
    );
    assert!(
        setting(&after, "trusted-public-keys")
            .as_array()
            .unwrap()
            .contains(&serde_json::Value::from(public.as_str()))
    );
    for (name, v) in after.as_object().unwrap() {
        if name != "substituters" && name != "trusted-public-keys" {
            assert_eq!(v["value"], before[name]["value"], "{name} changed");
        }
    }
    fx.finish().await;
}

/// Runs `pubdeck store ls` on `store` with AWS credentials in the environment.
fn store_ls(home: &Path, store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["store", "ls", "--store", store])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST")
        .env("AWS_SECRET_ACCESS_KEY", "hostile-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_nobody_called(listeners: &[std::net::TcpListener], store: &str) {
    for l in listeners {
        match l.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{store}: pubdeck connected to the owner's host: {other:?}"),
        }
    }
}

fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

#[test]
fn credentials_never_go_to_a_host_that_only_looks_like_aws() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    // The endpoint of the review: `https://localhost#.amazonaws.com` once passed as AWS, and
    // the SDK then sent SigV4 requests to localhost:443. Listening there needs root (as CI).
    let on_443: Vec<_> = ["127.0.0.1:443", "[::1]:443"]
        .iter()
        .filter_map(|a| listen(a).ok())
        .collect();
    if on_443.is_empty() {
        common::skip_or_fail(
            "credentials_never_go_to_a_host_that_only_looks_like_aws (port 443 part)",
            "cannot listen on loopback port 443 (not root, or in use)",
            &[],
        );
    }
    for endpoint in [
        "https%3A%2F%2Flocalhost%23.amazonaws.com",
        "https://localhost%23.amazonaws.com",
        "https://localhost#.amazonaws.com",
        "https://localhost%2F.amazonaws.com",
        "https://127.0.0.1%3F.amazonaws.com",
    ] {
        let store = format!("s3://cache?endpoint={endpoint}&region=us-east-1");
        let o = store_ls(home, &store);
        assert!(!o.status.success(), "{store}: {o:?}");
        assert_nobody_called(&on_443, &store);
    }
    // A custom endpoint nobody trusts gets no request either.
    let other = listen("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    for endpoint in [
        format!("http://127.0.0.1:{port}"),
        format!("http%3A%2F%2F127.0.0.1%3A{port}"),
        format!("HTTP://127.0.0.1:{port}/"),
    ] {
        let store = format!("s3://cache?endpoint={endpoint}&region=us-east-1");
        let o = store_ls(home, &store);
        assert_eq!(o.status.code(), Some(1), "{store}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("trusted-endpoints"), "{err}");
        assert!(!err.contains("hostile-secret"), "{err}");
        assert_nobody_called(std::slice::from_ref(&other), &store);
    }
}

/// A build whose file names and link targets carry terminal escapes (a fake "✓ narinfo" line
/// that erases the real one): the review before "upload?", and `build --check`'s list of
/// differing files, show them escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_a_nar_listing_reach_the_terminal_escaped() {
    use pubdeck::catalog::EmbeddedCatalog;
    let tmp = tempfile::tempdir().unwrap();
    let evil = r#"$(printf 'x\033[2K\r\342\234\223 narinfo \342\200\256gnp.exe')"#;
    let manifest = |version: &str, extra: &str| {
        format!(
            "version = 1\n[install]\nhello.pkg-path = \"hello\"\n[build.tool]\nversion = \"{version}\"\ncommand = '''\nmkdir -p $out\necho tool > $out/tool\n{extra}\n'''\n"
        )
    };
    let repo = common::Repo::with_manifest(&manifest("1.0", ""));
    let key = pubdeck::nix::sign::SecretKey::generate("myorg-1").unwrap();
    key.write_new(&tmp.path().join("k.key"), pubdeck::fsutil::write_new)
        .unwrap();
    let catalog = AnyCatalog::Embedded(
        EmbeddedCatalog::open(&tmp.path().join("catalog.sqlite"))
            .await
            .unwrap(),
    );
    let store = format!("file://{}", tmp.path().join("store").display());
    catalog
        .create_catalog("myorg", &store, &[key.public().to_nix_string()])
        .await
        .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pubdeck"))
            .args(args)
            .arg("--dir")
            .arg(&repo.work)
            .env("NO_COLOR", "1")
            .env("PUBDECK_CATALOG", tmp.path().join("catalog.sqlite"))
            .env("PUBDECK_ORG", "myorg")
            .env("PUBDECK_SIGNING_KEY", tmp.path().join("k.key"))
            .env("PUBDECK_DATA_DIR", tmp.path().join("data"))
            .env("XDG_CONFIG_HOME", tmp.path().join("cfg"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let raw = |o: &Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        all.chars()
            .any(|c| c != '\n' && pubdeck::text::is_unsafe_char(c))
    };
    let first = run(&["publish", "tool", "--yes"]);
    assert!(first.status.success(), "{first:?}");
    repo.write(
        ".flox/env/manifest.toml",
        &manifest(
            "2.0",
            &format!("echo x > \"$out/{evil}\"\nln -s \"{evil}\" $out/link\nrm $out/tool\nln -s \"{evil}\" $out/tool"),
        ),
    );
    repo.commit_all("2.0");
    repo.git(&["push", "-q"]);
    let review = run(&["publish", "tool", "--dry-run"]);
    let text = String::from_utf8_lossy(&review.stderr);
    assert!(text.contains("against  1.0"), "{text}");
    assert!(
        text.contains("\\x1b[2K\\r✓ narinfo \\u{202e}gnp.exe"),
        "{text}"
    );
    assert!(!raw(&review), "raw escapes in the review: {text:?}");

    // Two builds that differ in a file named with escapes.
    repo.write(
        ".flox/env/manifest.toml",
        &manifest("3.0", &format!("echo x > \"$out/{evil}-$RANDOM$RANDOM\"")),
    );
    repo.commit_all("3.0");
    let check = run(&["build", "tool", "--check"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let text = String::from_utf8_lossy(&check.stderr);
    assert!(text.contains("\\x1b[2K"), "{text}");
    assert!(!raw(&check), "raw escapes in --check: {text:?}");
}
