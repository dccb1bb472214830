//! The review before upload and the reproducibility check, through the `pubdeck` binary on a
//! real repository with a bare remote, a local catalog file and a file:// store:
//! `publish --dry-run` (the review as JSON and as text, with the diff against the last
//! version from NAR listings), `publish --verify-reproducible` refusing a build that embeds
//! a timestamp and naming the file, `--allow-unreproducible`, and `build --check`.

use crate::common;
use crate::common::catalog_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Repo;

fn manifest(version: &str) -> String {
    format!(
        r#"version = 1

[install]
hello.pkg-path = "hello"

[build.tool]
description = "a tool"
version = "{version}"
command = '''
  mkdir -p $out/bin $out/share/doc
  printf '#!/bin/sh\necho tool\n' > $out/bin/tool
  chmod +x $out/bin/tool
  cp README.txt $out/share/doc/README
  if [ -e NEWS.txt ]; then cp NEWS.txt $out/share/doc/NEWS; fi
'''

[build.stamp]
description = "embeds when and where it was built"
version = "1.0"
command = '''
  mkdir -p $out/bin $out/share
  printf 'built\nat %s\nok\n' "$(date +%s%N)" > $out/share/stamp.txt
  head -c 64 /dev/urandom > $out/bin/blob
  echo same > $out/share/same.txt
'''
"#
    )
}

struct World {
    repo: Repo,
    tmp: tempfile::TempDir,
    store: PathBuf,
}

impl World {
    fn new() -> World {
        let repo = Repo::with_manifest(&manifest("1.0"));
        repo.write("README.txt", "the tool\n");
        repo.commit_all("readme");
        repo.git(&["push", "-q"]);
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let w = World { repo, tmp, store };
        let key = w.tmp.path().join("myorg-1.key");
        let out = w.run(&["key", "generate", "--name", "myorg-1", "--out"], &[&key]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let url = format!("file://{}", w.store.display());
        let out = w.run(
            &["catalog", "create", "myorg", "--store", &url, "--key"],
            &[&key.with_extension("key.pub")],
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        w
    }

    fn run(&self, args: &[&str], paths: &[&Path]) -> Output {
        let home = self.tmp.path().join("home");
        Command::new(env!("CARGO_BIN_EXE_pubdeck"))
            .args(args)
            .args(paths)
            .current_dir(&self.repo.work)
            .env("NO_COLOR", "1")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("PUBDECK_CATALOG", self.tmp.path().join("catalog.sqlite"))
            .env("PUBDECK_ORG", "myorg")
            .env("PUBDECK_SIGNING_KEY", self.tmp.path().join("myorg-1.key"))
            .env("PUBDECK_DATA_DIR", self.tmp.path().join("data"))
            .env_remove("PUBDECK_TOKEN")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("pubdeck runs")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            common::stdout(&out),
            common::stderr(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn narinfos(&self) -> usize {
        std::fs::read_dir(&self.store)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".narinfo"))
                    .count()
            })
            .unwrap_or(0)
    }
}

#[test]
fn dry_run_reviews_and_diffs_against_the_last_version() {
    let w = World::new();
    // The first version: nothing to compare with; nothing is uploaded or registered.
    let dry = w.json(&["publish", "tool", "--dry-run", "--json"]);
    assert_eq!(dry["dry_run"], true);
    let r = &dry["reviews"][0];
    assert_eq!(r["reference"], "myorg/tool@1.0");
    assert_eq!(r["org"], "myorg");
    assert_eq!(r["key_name"], "myorg-1");
    assert!(r["store_url"].as_str().unwrap().starts_with("file://"));
    assert_eq!(r["closure"].as_array().unwrap().len(), 1);
    assert!(r["closure"][0]["nar_size"].as_u64().unwrap() > 0);
    assert!(r["previous"].is_null(), "{r}");
    assert_eq!(w.narinfos(), 0, "a dry run uploads nothing");
    let found = w.json(&["search", "tool", "--json"]);
    assert!(found["results"].as_array().unwrap().is_empty());

    // Off a terminal publish does not ask; a listing goes beside the NAR.
    let published = w.run(&["publish", "tool"], &[]);
    assert!(published.status.success(), "{}", common::stderr(&published));
    let listings: Vec<_> = std::fs::read_dir(&w.store)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ls"))
        .collect();
    assert_eq!(listings.len(), 1);
    let ls = std::fs::read_to_string(listings[0].path()).unwrap();
    assert!(
        ls.starts_with(r#"{"version":1,"root":{"type":"directory""#),
        "{ls}"
    );

    // A new version with a changed file and a new one: the review names both.
    w.repo.write("README.txt", "the tool, now with news\n");
    w.repo.write("NEWS.txt", "1.1: news\n");
    w.repo.write(".flox/env/manifest.toml", &manifest("1.1"));
    w.repo.commit_all("tool 1.1");
    w.repo.git(&["push", "-q"]);
    let dry = w.json(&["publish", "tool", "--dry-run", "--json"]);
    let prev = &dry["reviews"][0]["previous"];
    assert_eq!(prev["version"], "1.0", "{dry}");
    assert!(prev["size_delta"].as_i64().unwrap() > 0);
    let added: Vec<&str> = prev["diff"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["share/doc/NEWS"]);
    let changed = &prev["diff"]["changed"][0];
    assert_eq!(changed["path"], "share/doc/README");
    assert_eq!(changed["before"]["size"], 9);
    assert_eq!(changed["after"]["size"], 24);
    assert!(prev["diff"]["removed"].as_array().unwrap().is_empty());
    // The same review as text.
    let text = w.run(&["publish", "tool", "--dry-run"], &[]);
    assert!(text.status.success());
    let err = common::stderr(&text);
    assert!(err.contains("review myorg/tool@1.1"), "{err}");
    assert!(err.contains("against  1.0"), "{err}");
    assert!(err.contains("+ share/doc/NEWS (file, 10 B)"), "{err}");
    assert!(
        err.contains("~ share/doc/README (file, 9 B → file, 24 B)"),
        "{err}"
    );
    assert!(err.contains("dry run: nothing was uploaded"), "{err}");
    assert_eq!(w.narinfos(), 1, "still only 1.0");
}

/// Two versions registered in the same second (one import batch is one transaction with one
/// timestamp): the review compares with the one registered last, by the catalog's sequence,
/// not with whichever the timestamp tie happens to put last.
#[test]
fn the_review_compares_with_the_version_registered_last_within_one_second() {
    let w = World::new();
    let published = w.run(&["publish", "tool"], &[]);
    assert!(published.status.success(), "{}", common::stderr(&published));
    // 1.1 then 1.2, registered by one batch with a key the catalog trusts.
    let key = catalog_support::TestKey::new("myorg-2", 2);
    let public = w.tmp.path().join("myorg-2.pub");
    std::fs::write(&public, key.public()).unwrap();
    let out = w.run(&["catalog", "add-key", "myorg"], &[&public]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let system = pubdeck::publish::current_system();
    let mut ndjson = String::new();
    for v in ["1.1", "1.2"] {
        let mut b = catalog_support::build(&key, "myorg", "tool", v, &format!("tool {v}"));
        b.system = system.clone();
        key.sign(&mut b);
        ndjson.push_str(&serde_json::to_string(&b).unwrap());
        ndjson.push('\n');
    }
    let file = w.tmp.path().join("builds.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let out = w.run(&["catalog", "import", "myorg"], &[&file]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let show = w.json(&["show", "myorg/tool", "--json"]);
    let build_of = |v: &str| {
        show["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["version"] == v)
            .unwrap_or_else(|| panic!("no {v} in {show}"))["builds"][0]
            .clone()
    };
    let (b11, b12) = (build_of("1.1"), build_of("1.2"));
    assert_eq!(b11["published_at"], b12["published_at"], "{show}");

    w.repo.write(".flox/env/manifest.toml", &manifest("2.0"));
    w.repo.commit_all("tool 2.0");
    w.repo.git(&["push", "-q"]);
    let dry = w.json(&["publish", "tool", "--dry-run", "--json"]);
    let prev = &dry["reviews"][0]["previous"];
    assert_eq!(prev["version"], "1.2", "{dry}");
    // The order comes from the registrations' sequence, which `show` gives.
    let (s11, s12) = (b11["seq"].as_i64(), b12["seq"].as_i64());
    assert!(
        s11.is_some() && s12 > s11,
        "1.2 was registered after 1.1: {show}"
    );
}

#[test]
fn an_unreproducible_build_is_refused_naming_the_files() {
    let w = World::new();
    let out = w.run(&["publish", "stamp", "--verify-reproducible"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(err.contains("not reproducible"), "{err}");
    assert!(err.contains("share/stamp.txt"), "{err}");
    assert!(
        err.contains("-at ") && err.contains("+at "),
        "a line diff: {err}"
    );
    assert!(err.contains("bin/blob: binary, 64 / 64 bytes"), "{err}");
    assert!(!err.contains("share/same.txt"), "{err}");
    assert!(err.contains("--allow-unreproducible"), "the hint: {err}");
    assert_eq!(w.narinfos(), 0, "nothing was uploaded");
    let show = w.run(&["show", "myorg/stamp"], &[]);
    assert_eq!(show.status.code(), Some(1), "nothing was registered");

    // Allowed: published, with the difference reported.
    let out = w.run(
        &[
            "publish",
            "stamp",
            "--verify-reproducible",
            "--allow-unreproducible",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("publishing anyway"));
    assert!(w.narinfos() >= 1);

    // A reproducible build passes the same check.
    let out = w.run(&["publish", "tool", "--verify-reproducible", "--json"], &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
fn build_check_builds_twice_and_compares() {
    let w = World::new();
    let out = w.run(&["build", "tool", "--check"], &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("tool is reproducible"));
    assert!(
        common::stderr(&out).contains("second build"),
        "{}",
        common::stderr(&out)
    );
    let out = w.run(&["build", "stamp", "--check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("two clean builds differ in 2 paths"), "{err}");
    assert!(err.contains("share/stamp.txt"), "{err}");
    // Nothing is kept.
    assert!(!w.repo.work.join("result-stamp").exists());
}

/// The shell command that runs `pubdeck ARGS` in the world's repository with its settings,
/// then prints the exit status and waits (so the screen can be read).
fn in_shell(w: &World, args: &str) -> String {
    let home = w.tmp.path().join("home");
    format!(
        "cd {repo} && NO_COLOR=1 HOME={home} XDG_CONFIG_HOME={home}/.config PUBDECK_CATALOG={t}/catalog.sqlite PUBDECK_ORG=myorg PUBDECK_SIGNING_KEY={t}/myorg-1.key PUBDECK_DATA_DIR={t}/data {bin} {args}; echo EXIT=$?; sleep 60",
        repo = w.repo.work.display(),
        home = home.display(),
        t = w.tmp.path().display(),
        bin = env!("CARGO_BIN_EXE_pubdeck"),
    )
}

#[test]
fn on_a_terminal_publish_asks_before_uploading() {
    if !common::tmux::tmux_here("on_a_terminal_publish_asks_before_uploading") {
        return;
    }
    let w = World::new();
    let t = common::tmux::Tmux::start(
        format!("pubdeck-ask-{}", std::process::id()),
        &in_shell(&w, "publish tool"),
    );
    let screen = t.wait_for("upload and register? [y/N", Duration::from_secs(60));
    assert!(screen.contains("review myorg/tool@1.0"), "{screen}");
    t.keys(&["n", "Enter"]);
    let screen = t.wait_for("EXIT=1", Duration::from_secs(20));
    assert!(screen.contains("nothing was uploaded"), "{screen}");
    assert_eq!(w.narinfos(), 0);
    drop(t);
    let t = common::tmux::Tmux::start(
        format!("pubdeck-ask-yes-{}", std::process::id()),
        &in_shell(&w, "publish tool --yes"),
    );
    let screen = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!screen.contains("upload and register?"), "{screen}");
    assert_eq!(w.narinfos(), 1);
}

#[test]
fn the_workbench_review_checks_reproducibility_and_names_the_file() {
    if !common::tmux::tmux_here("the_workbench_review_checks_reproducibility_and_names_the_file") {
        return;
    }
    let w = World::new();
    let t = common::tmux::Tmux::start(
        format!("pubdeck-repro-{}", std::process::id()),
        &in_shell(&w, "tui"),
    );
    t.wait_for("Preconditions all pass", Duration::from_secs(60));
    // The second build is `stamp`: select it, publish, confirm.
    t.keys(&["j"]);
    t.wait_for("Preconditions all pass", Duration::from_secs(30));
    t.keys(&["Enter"]);
    t.wait_for("Publish build stamp", Duration::from_secs(10));
    t.keys(&["y"]);
    let screen = t.wait_for("Review myorg/stamp@1.0", Duration::from_secs(60));
    assert!(screen.contains("[ ] build again"), "{screen}");
    t.keys(&["r"]);
    t.wait_for("[x] build again", Duration::from_secs(5));
    t.keys(&["y"]);
    let screen = t.wait_for("publish of stamp failed", Duration::from_secs(60));
    assert!(screen.contains("not reproducible"), "{screen}");
    // The failure opens whole, with its fix; Esc closes it and shows the log again.
    let screen = t.wait_for("Esc/Enter/q close", Duration::from_secs(5));
    assert!(screen.contains("--allow-unreproducible"), "{screen}");
    t.keys(&["Escape"]);
    let screen = t.wait_for("share/stamp.txt differs:", Duration::from_secs(5));
    // The build log names each file, with the lines that differ.
    assert!(screen.contains("share/stamp.txt differs:"), "{screen}");
    assert!(
        screen.contains("-at ") && screen.contains("+at "),
        "{screen}"
    );
    assert!(
        screen.contains("bin/blob: binary, 64 / 64 bytes"),
        "{screen}"
    );
    assert_eq!(w.narinfos(), 0, "nothing was uploaded");
    t.keys(&["q"]);
}
