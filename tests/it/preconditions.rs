//! `pubdeck check` against real repositories with a bare remote: each precondition failing
//! alone, several together, and what must not block.

use crate::common;

use common::{Repo, pubdeck, stdout};
use pubdeck::git::{self, Options, Report};
use serde_json::Value;

fn eval(repo: &Repo, build: Option<&str>) -> Report {
    git::evaluate(&repo.work, build, &Options::default())
}

fn failing(r: &Report) -> Vec<&str> {
    r.failed().map(|c| c.id.as_str()).collect()
}

/// A publisher's setting beside `repo`: a signing key, and a local catalog `myorg` on a
/// file:// store that trusts it (what `check`, like `publish`, also checks).
fn publisher(repo: &Repo) -> Vec<(&'static str, String)> {
    let tmp = repo.tmp.path();
    let (key_file, catalog) = (tmp.join("myorg-1.key"), tmp.join("catalog.sqlite"));
    if !catalog.exists() {
        use pubdeck::catalog::Catalog as _;
        let key = pubdeck::nix::sign::SecretKey::generate("myorg-1").unwrap();
        key.write_new(&key_file, pubdeck::fsutil::write_new)
            .unwrap();
        let store = format!("file://{}", tmp.join("store").display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                pubdeck::catalog::EmbeddedCatalog::open(&catalog)
                    .await
                    .unwrap()
                    .create_catalog("myorg", &store, &[key.public().to_nix_string()])
                    .await
                    .unwrap();
            });
    }
    vec![
        ("PUBDECK_CATALOG", catalog.display().to_string()),
        ("PUBDECK_ORG", "myorg".into()),
        ("PUBDECK_SIGNING_KEY", key_file.display().to_string()),
        ("PUBDECK_DATA_DIR", tmp.join("data").display().to_string()),
        ("XDG_CONFIG_HOME", tmp.join("cfg").display().to_string()),
    ]
}

/// `pubdeck ARGS` as the publisher of [`publisher`].
fn pubdeck_publishing(repo: &Repo, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(args)
        .env("NO_COLOR", "1")
        .envs(publisher(repo))
        .env_remove("PUBDECK_TOKEN")
        .output()
        .expect("pubdeck runs")
}

fn check_json(repo: &Repo, build: Option<&str>) -> (i32, Value) {
    let dir = repo.work.to_str().unwrap();
    let mut args = vec!["check", "--dir", dir, "--json"];
    if let Some(b) = build {
        args.insert(1, b);
    }
    let out = pubdeck_publishing(repo, &args);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    (out.status.code().unwrap(), v)
}

#[test]
fn fresh_pushed_repository_passes_everything() {
    let repo = Repo::new();
    let r = eval(&repo, Some("hello"));
    assert!(r.ok(), "{:#?}", r.checks);
    let ids: Vec<_> = r.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "manifest",
            "git-repo",
            "env-tracked",
            "clean",
            "upstream",
            "pushed",
            "has-packages",
            "build-exists"
        ]
    );
    let src = r.source.unwrap();
    assert_eq!(src.rev.as_deref(), Some(repo.head().as_str()));
    assert_eq!(src.branch.as_deref(), Some("main"));
    assert_eq!(
        src.remote_url,
        Some(format!("file://{}", repo.remote.display()))
    );
    assert!(src.commit_time.unwrap() > 1_600_000_000);

    // The command checks what publish checks: the git preconditions, then the key, the
    // catalog, the permission to publish, the key's trust and the store.
    let (code, v) = check_json(&repo, Some("hello"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["build"], "hello");
    assert_eq!(v["ok"], true);
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids[8..],
        [
            "signing-key",
            "catalog",
            "may-publish",
            "key-trusted",
            "store"
        ]
    );
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c.as_object().unwrap().len(), 4, "{c}");
        assert!(c["hint"].is_null());
    }
}

#[test]
fn untracked_env_json_fails_env_tracked_only() {
    let repo = Repo::new();
    repo.git(&["rm", "-q", "--cached", ".flox/env.json"]);
    repo.git(&["commit", "-q", "-m", "untrack env.json"]);
    repo.git(&["push", "-q"]);
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["env-tracked"]);
    let c = r.failed().next().unwrap();
    assert!(c.message.contains(".flox/env.json"), "{}", c.message);
    assert_eq!(
        c.hint.as_deref(),
        Some("run `git add .flox/env.json` (or `git add .flox`) and commit")
    );
}

#[test]
fn ignored_files_under_flox_do_not_block() {
    let repo = Repo::new();
    repo.write(".flox/cache/state.json", "{}");
    repo.write(".flox/run/x", "");
    assert!(eval(&repo, None).ok());
}

#[test]
fn modified_tracked_file_fails_clean_only() {
    let repo = Repo::new();
    repo.write(
        ".flox/env/manifest.toml",
        &format!("{}\n# edited\n", common::MANIFEST),
    );
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["clean"]);
    assert!(
        r.failed()
            .next()
            .unwrap()
            .message
            .contains(".flox/env/manifest.toml")
    );
    // staged counts too
    repo.git(&["add", ".flox/env/manifest.toml"]);
    assert_eq!(failing(&eval(&repo, None)), ["clean"]);
}

#[test]
fn untracked_file_outside_flox_passes() {
    let repo = Repo::new();
    repo.write("notes.txt", "scratch");
    repo.write("build/output.o", "junk");
    let r = eval(&repo, Some("hello"));
    assert!(r.ok(), "{:#?}", r.checks);
}

#[test]
fn no_upstream_fails_upstream_and_pushed() {
    let repo = Repo::new();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["upstream", "pushed"]);
    let up = r.checks.iter().find(|c| c.id == "upstream").unwrap();
    assert_eq!(up.message, "branch `feature` has no upstream remote");
    assert!(
        up.hint
            .as_deref()
            .unwrap()
            .contains("git push -u origin feature")
    );
}

#[test]
fn detached_head_is_explained() {
    let repo = Repo::new();
    let head = repo.head();
    repo.git(&["checkout", "-q", "--detach", &head]);
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["upstream", "pushed"]);
    let up = r.checks.iter().find(|c| c.id == "upstream").unwrap();
    assert!(up.message.contains("HEAD is detached at"), "{}", up.message);
    assert!(up.message.contains(&head[..7]));
    assert!(up.hint.as_deref().unwrap().contains("git switch"));
}

#[test]
fn unpushed_commit_fails_pushed_only() {
    let repo = Repo::new();
    repo.write("src/main.c", "int main(){}\n");
    repo.commit_all("more");
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["pushed"]);
    let p = r.failed().next().unwrap();
    assert!(
        p.message.contains("has not been pushed to `origin`"),
        "{}",
        p.message
    );
    assert_eq!(p.hint.as_deref(), Some("run `git push origin main`"));
    repo.git(&["push", "-q"]);
    assert!(eval(&repo, None).ok());
}

#[test]
fn pushed_by_someone_else_is_seen_after_fetch() {
    // The commit reaches the remote from another clone; our tracking ref is stale until
    // pubdeck fetches.
    let repo = Repo::new();
    repo.write("a.txt", "a");
    repo.commit_all("a");
    let url = format!("file://{}", repo.remote.display());
    let other = repo.tmp.path().join("other");
    common::git_in(
        repo.tmp.path(),
        &["clone", "-q", &url, other.to_str().unwrap()],
    );
    common::git_in(
        &other,
        &["fetch", "-q", repo.work.to_str().unwrap(), "main"],
    );
    common::git_in(&other, &["push", "-q", "origin", "FETCH_HEAD:main"]);
    let offline = git::evaluate(
        &repo.work,
        None,
        &Options {
            fetch: false,
            ..Default::default()
        },
    );
    assert_eq!(failing(&offline), ["pushed"]);
    assert!(eval(&repo, None).ok());
}

#[test]
fn unreachable_remote_is_said_clearly() {
    let repo = Repo::new();
    repo.write("a.txt", "a");
    repo.commit_all("a");
    let gone = repo.tmp.path().join("gone.git");
    repo.git(&[
        "remote",
        "set-url",
        "origin",
        &format!("file://{}", gone.display()),
    ]);
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["pushed"]);
    let p = r.failed().next().unwrap();
    assert!(p.message.contains("cannot be reached"), "{}", p.message);
    // When HEAD was pushed before the remote vanished, the check passes but says so.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let r = eval(&repo, None);
    assert!(r.ok());
    let p = r.checks.iter().find(|c| c.id == "pushed").unwrap();
    assert!(p.message.contains("when last fetched"), "{}", p.message);
}

#[test]
fn empty_install_fails_has_packages() {
    let repo = Repo::with_manifest("version = 1\n[install]\n[build.x]\ncommand = \"true\"\n");
    let r = eval(&repo, Some("x"));
    assert_eq!(failing(&r), ["has-packages"]);
}

#[test]
fn typo_in_build_name_suggests_nearest() {
    let repo = Repo::new();
    let (code, v) = check_json(&repo, Some("helo"));
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "build-exists");
    assert_eq!(failed[0]["hint"], "did you mean `hello`?");
}

#[test]
fn malformed_toml_shows_line_and_column() {
    let repo = Repo::with_manifest("version = 1\n\n[install]\nhello.pkg-path\n");
    let r = eval(&repo, Some("hello"));
    assert_eq!(failing(&r), ["manifest", "has-packages", "build-exists"]);
    let m = r.failed().next().unwrap();
    assert!(
        m.message.contains("manifest.toml:4:15: invalid TOML"),
        "{}",
        m.message
    );
}

#[test]
fn unknown_build_key_is_an_error_with_position() {
    let repo = Repo::with_manifest(
        "version = 1\n[install]\nhello.pkg-path = \"hello\"\n[build.hello]\ncommand = \"true\"\nsandbox-mode = \"off\"\n",
    );
    let r = eval(&repo, None);
    assert_eq!(failing(&r), ["manifest", "has-packages"]);
    let m = &r.failed().next().unwrap().message;
    assert!(m.contains("manifest.toml:6:1: unknown key `sandbox-mode` in `[build.hello]` (did you mean `sandbox`?)"), "{m}");
}

#[test]
fn several_failures_are_all_reported_at_once() {
    let repo = Repo::with_manifest("version = 1\n[build.hello]\ncommand = \"true\"\n");
    repo.write(".flox/env/extra.json", "{}"); // untracked under .flox
    repo.write(
        ".flox/env.json",
        "{\"name\": \"changed\", \"version\": 1}\n",
    ); // modified
    repo.git(&["checkout", "-q", "-b", "topic"]); // no upstream
    let (code, v) = check_json(&repo, Some("hullo"));
    assert_eq!(code, 1);
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "env-tracked",
            "clean",
            "upstream",
            "pushed",
            "has-packages",
            "build-exists"
        ]
    );
    for c in v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
    {
        assert!(c["hint"].as_str().is_some_and(|h| !h.is_empty()), "{c}");
    }
}

#[test]
fn not_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join(".flox/env")).unwrap();
    std::fs::write(tmp.path().join(".flox/env/manifest.toml"), common::MANIFEST).unwrap();
    let r = git::evaluate(tmp.path(), None, &Options::default());
    assert_eq!(
        failing(&r),
        ["git-repo", "env-tracked", "clean", "upstream", "pushed"]
    );
    assert!(r.source.is_none());
}

#[test]
fn environment_in_a_subdirectory() {
    let repo = Repo::new();
    // move the environment into a subdirectory of the repository
    std::fs::create_dir_all(repo.work.join("envs")).unwrap();
    repo.git(&["mv", ".flox", "envs/.flox"]);
    repo.commit_all("move");
    repo.git(&["push", "-q"]);
    let env = repo.work.join("envs");
    let r = git::evaluate(&env, Some("hello"), &Options::default());
    assert!(r.ok(), "{:#?}", r.checks);
    assert_eq!(
        r.source.unwrap().env_subdir,
        std::path::PathBuf::from("envs")
    );
    std::fs::write(env.join(".flox/new.json"), "{}").unwrap();
    let r = git::evaluate(&env, None, &Options::default());
    assert_eq!(failing(&r), ["env-tracked"]);
}

#[test]
fn cli_contract_exit_codes_and_human_output() {
    let repo = Repo::new();
    let dir = repo.work.to_str().unwrap();
    let ok = pubdeck_publishing(&repo, &["check", "hello", "--dir", dir]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let text = stdout(&ok);
    assert!(text.starts_with("✓ manifest "), "{text}");
    assert!(!text.contains('\x1b'), "NO_COLOR is set");
    let usage = pubdeck(&["check", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
    let missing = pubdeck(&["builds", "--dir", repo.tmp.path().to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    let err = common::stderr(&missing);
    assert!(err.starts_with("error: no Flox environment in "), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let builds = pubdeck(&["builds", "--dir", dir, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&builds)).unwrap();
    assert_eq!(v["builds"][0]["name"], "hello");
    assert_eq!(v["builds"][0]["version"], "1.0");
    assert_eq!(v["builds"][0]["description"], "says hello");
    assert!(
        v["builds"][0]["command"]
            .as_str()
            .unwrap()
            .contains("mkdir -p $out/bin")
    );
    assert_eq!(v["builds"][1]["version"], Value::Null);
}

/// `check` fails where `publish` would: an unreadable key, an unreachable catalog; and
/// `--offline` skips what needs the network, saying so, without failing for it.
#[test]
fn check_fails_where_publish_would_and_offline_says_what_it_skipped() {
    let repo = Repo::new();
    let dir = repo.work.to_str().unwrap();
    publisher(&repo);
    let unreadable = repo.tmp.path().join("nope.key");
    let out = pubdeck_publishing(
        &repo,
        &[
            "check",
            "hello",
            "--dir",
            dir,
            "--json",
            "--signing-key",
            unreadable.to_str().unwrap(),
            "--catalog",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "signing-key",
            "catalog",
            "may-publish",
            "key-trusted",
            "store"
        ]
    );
    let out = pubdeck_publishing(
        &repo,
        &["check", "hello", "--dir", dir, "--offline", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for id in ["catalog", "may-publish", "key-trusted", "store"] {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_eq!(c["ok"], false, "{c}");
        assert_eq!(c["warning"], true, "{c}");
        assert!(c["message"].as_str().unwrap().contains("--offline"), "{c}");
    }
}

/// Checks that cannot run say which check they are: no two "not checked" lines read alike
/// (an environment outside any git repository skips four).
#[test]
fn not_checked_lines_name_their_check() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::crate_dir().join("assets/sample-env"), tmp.path());
    let r = git::evaluate(tmp.path(), Some("hello"), &Options::default());
    let skipped: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.message.contains("not checked"))
        .map(|c| c.message.as_str())
        .collect();
    assert!(skipped.len() >= 4, "{skipped:?}");
    let mut distinct = skipped.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), skipped.len(), "{skipped:?}");
    assert!(
        skipped.iter().all(|m| !m.starts_with("not checked")),
        "{skipped:?}"
    );
}
