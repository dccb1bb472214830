//! The real binary in tmux: `pubdeck demo` opens the workbench on a fresh demo workspace; a
//! publish is driven with send-keys until the build shows as published, then the Catalog tab
//! finds it and shows its install readiness. Skips with a reason when tmux is missing (CI
//! installs it).

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::tmux::{Tmux, tmux_here};

#[test]
fn demo_publish_then_find_it_in_the_catalog() {
    if !tmux_here("demo_publish_then_find_it_in_the_catalog") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let data = tmp.path().join("xdg");
    // Create the workspace first (the seed takes a while in debug builds).
    let created = Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["demo", "--no-tui", "--path"])
        .arg(&demo)
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &data)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let session = format!("pubdeck-e2e-{}", std::process::id());
    let stats = tmp.path().join("frames.json");
    let cmd = format!(
        "PUBDECK_FRAME_STATS={} XDG_DATA_HOME={} XDG_CONFIG_HOME={} {} demo --path {}",
        stats.display(),
        data.display(),
        data.display(),
        env!("CARGO_BIN_EXE_pubdeck"),
        demo.display()
    );
    let t = Tmux::start(session, &cmd);
    let screen = t.wait_for("Preconditions all pass", Duration::from_secs(30));
    assert!(screen.contains("hello") && screen.contains("report") && screen.contains("broken"));

    // Enter asks for confirmation, y publishes `hello` (the first build); after the pack the
    // review shows where it goes and that there is no earlier version; y uploads.
    t.keys(&["Enter"]);
    t.wait_for("Publish", Duration::from_secs(5));
    t.keys(&["y"]);
    t.wait_for("Review myorg/hello@1.0.0", Duration::from_secs(60));
    // Its lines by waiting, not from the first capture: tmux may capture a frame half drawn.
    t.wait_for(
        "against  nothing: the first version",
        Duration::from_secs(10),
    );
    t.wait_for("key      myorg-1", Duration::from_secs(10));
    t.keys(&["y"]);
    // The builds table marks it published; the package list reloads (318 seeded + 1).
    let screen = t.wait_for("319 packages in the catalog", Duration::from_secs(60));
    assert!(screen.contains("✓ register"), "{screen}");
    assert!(screen.contains("published  Greets"), "{screen}");

    // The Catalog tab finds it (the package list is reloaded after a publish).
    t.keys(&["2"]);
    t.text("hello");
    let screen = t.wait_for("myorg/hello ", Duration::from_secs(10));
    assert!(screen.contains("Greets the organisation"), "{screen}");
    // The exact match ranks first and is selected; its readiness follows.
    let screen = t.wait_for("myorg/hello is visible to you", Duration::from_secs(10));
    assert!(screen.contains("has a build for"), "{screen}");
    // More checks than rows: the title says so, J scrolls; the Nix hint is wrapped inside
    // the panel, not cut, and whole once scrolled into view.
    assert!(screen.contains("Install readiness  1–"), "{screen}");
    t.keys(&["Enter"]);
    t.wait_for("/ search", Duration::from_secs(5));
    for _ in 0..6 {
        t.keys(&["J"]);
    }
    let screen = t.wait_for("is not installed yet", Duration::from_secs(5));
    assert!(screen.contains("extra-trusted-public-keys"), "{screen}");
    assert!(screen.contains("pubdeck use myorg"), "{screen}");
    t.keys(&["/"]);

    // Yank the newest auth-service from the Catalog tab, confirmed, against the real catalog.
    t.keys(&["C-u"]);
    t.text("auth-service");
    t.wait_for("versions   [3.16.5], 3.15.4", Duration::from_secs(10));
    t.keys(&["Tab"]);
    t.keys(&["Y"]);
    let screen = t.wait_for("Yank myorg/auth-service 3.16.5?", Duration::from_secs(5));
    assert!(
        screen.contains("stays installable where it is pinned"),
        "{screen}"
    );
    t.keys(&["y"]);
    let screen = t.wait_for(
        "yanked myorg/auth-service@3.16.5; latest is now 3.15.4",
        Duration::from_secs(10),
    );
    let screen = if screen.contains("3.16.5 (yanked)") {
        screen
    } else {
        t.wait_for("3.16.5 (yanked)", Duration::from_secs(10))
    };
    assert!(
        screen.contains("[3.15.4]"),
        "the default is now 3.15.4: {screen}"
    );

    // A change to hello, committed by hand; then `e` bumps the version, the checks go red,
    // and the fix-it commits the bump and pushes both commits.
    let env = demo.join("workspace");
    std::fs::write(
        env.join("README-hello.txt"),
        "hello greets the organisation, now in colour\n",
    )
    .unwrap();
    for args in [
        &["add", "README-hello.txt"][..],
        &["commit", "-qm", "hello: colour"][..],
    ] {
        let out = Command::new("git")
            .arg("-C")
            .arg(&env)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t.keys(&["1"]);
    t.keys(&["e"]);
    t.wait_for("Version of hello", Duration::from_secs(5));
    t.keys(&["C-u"]);
    t.text("1.1.0");
    t.keys(&["Enter"]);
    t.wait_for(
        "C: commit the bump of hello to 1.1.0",
        Duration::from_secs(30),
    );
    t.keys(&["C"]);
    t.wait_for(
        "Commit the version bump of hello (1.1.0) and push?",
        Duration::from_secs(5),
    );
    t.keys(&["y"]);
    t.wait_for("committed hello 1.1.0", Duration::from_secs(30));
    t.wait_for("Preconditions all pass", Duration::from_secs(30));
    // Publish 1.1.0: the review diffs it against 1.0.0 from the NAR listings.
    t.keys(&["Enter"]);
    t.wait_for("Publish", Duration::from_secs(5));
    t.keys(&["y"]);
    let screen = t.wait_for("Review myorg/hello@1.1.0", Duration::from_secs(60));
    assert!(screen.contains("against  1.0.0"), "{screen}");
    assert!(
        screen.contains("~ share/doc/hello/README (file, 74 B → file, 45 B)"),
        "{screen}"
    );
    t.keys(&["y"]);
    let screen = t.wait_for("1.1.0   published", Duration::from_secs(60));
    assert!(screen.contains("✓ register"), "{screen}");
    t.keys(&["q"]);

    // The session's own timings (PUBDECK_FRAME_STATS): every key pressed above was shown
    // by a frame (the text typed counts one key per character).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !stats.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("frame statistics")).unwrap();
    assert!(v["turn"]["n"].as_u64().unwrap() > 0, "{v}");
    assert!(v["draw"]["n"].as_u64().unwrap() > 0, "{v}");
    assert!(v["key_to_frame"]["n"].as_u64().unwrap() >= 40, "{v}");
}

#[test]
fn no_mouse_leaves_the_mouse_to_the_terminal() {
    if !tmux_here("no_mouse_leaves_the_mouse_to_the_terminal") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (work, data) = hello_workspace(tmp.path());
    // tmux knows whether the application asked for mouse events (#{mouse_any_flag}).
    let mut flags = Vec::new();
    for (i, extra) in ["", " --no-mouse"].iter().enumerate() {
        let session = format!("pubdeck-mouse-{}-{i}", std::process::id());
        let cmd = format!(
            "XDG_DATA_HOME={} XDG_CONFIG_HOME={} {} tui --dir {}{extra}",
            data.display(),
            data.display(),
            env!("CARGO_BIN_EXE_pubdeck"),
            work.display()
        );
        let t = Tmux::start(session, &cmd);
        t.wait_for("Builds", Duration::from_secs(60));
        let flag = t.run(&["display", "-p", "-t", &t.session, "#{mouse_any_flag}"]);
        flags.push(flag.trim().to_string());
        t.keys(&["q"]);
    }
    assert_eq!(
        flags,
        ["1", "0"],
        "mouse captured by default, not with --no-mouse"
    );
}

/// A work directory with one build, `hello` (not a git repository: the checks fail, the
/// screen still comes up), and the XDG directory for the run: `(work, data)` under `tmp`.
fn hello_workspace(tmp: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let work = tmp.join("work");
    let repo_manifest =
        "version = 1\n[build.hello]\nversion = \"1.0\"\ncommand = 'mkdir -p $out'\n";
    std::fs::create_dir_all(work.join(".flox/env")).unwrap();
    std::fs::write(work.join(".flox/env/manifest.toml"), repo_manifest).unwrap();
    (work, tmp.join("xdg"))
}

fn screen_has(t: &Tmux, text: &str) -> bool {
    t.capture().contains(text)
}

#[test]
fn keys_and_theme_from_the_config_file() {
    if !tmux_here("keys_and_theme_from_the_config_file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (work, data) = hello_workspace(tmp.path());
    let config = data.join("pubdeck/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let cmd = || {
        format!(
            "XDG_DATA_HOME={d} XDG_CONFIG_HOME={d} {bin} tui --dir {w}; echo EXIT=$?; sleep 30",
            d = data.display(),
            bin = env!("CARGO_BIN_EXE_pubdeck"),
            w = work.display()
        )
    };
    // A rebinding: P publishes, the footer and the help popup say so.
    std::fs::write(
        &config,
        "# mine\n[keys]\npublish = \"P\"\n\n[theme]\naccent = \"#ff8800\"\n",
    )
    .unwrap();
    let t = Tmux::start(format!("pubdeck-keys-{}", std::process::id()), &cmd());
    let screen = t.wait_for("Builds", Duration::from_secs(60));
    assert!(screen.contains("P publish selected build"), "{screen}");
    t.keys(&["?"]);
    let screen = t.wait_for("Keys (", Duration::from_secs(5));
    assert!(screen.contains(" P "), "{screen}");
    // (Esc and P apart: together a terminal reads them as Alt-P, and the help stays open.)
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["P"]);
    // This workspace is no git repository: P (publish) says it cannot, and why.
    t.wait_for("cannot publish hello:", Duration::from_secs(5));
    assert!(screen_has(&t, "no output yet: P publishes, b builds"));
    // (Esc and q apart: together a terminal reads them as Alt-q.)
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["q"]);
    t.wait_for("EXIT=0", Duration::from_secs(10));
    drop(t);

    // A bad entry: one sentence naming the file, the line and the key; the screen is not
    // taken.
    std::fs::write(&config, "[keys]\n\npublish = \"hyper-p\"\n").unwrap();
    let t = Tmux::start(format!("pubdeck-badkeys-{}", std::process::id()), &cmd());
    let screen = t.wait_for("EXIT=1", Duration::from_secs(30));
    assert!(
        screen.contains("line 3: [keys] publish: \"hyper-p\" is not a key"),
        "{screen}"
    );
    assert!(screen.contains("config.toml"), "{screen}");
}

/// A build's error output is not drawn faint on a terminal (`pubdeck build`, and publish's
/// spinner view): `error: libfoo is required` must be the line that stands out, not the dimmest.
#[test]
fn build_stderr_is_not_faint_on_a_terminal() {
    if !tmux_here("build_stderr_is_not_faint_on_a_terminal") {
        return;
    }
    let repo = common::Repo::with_manifest(concat!(
        "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.b]\nversion = \"1.0\"\n",
        "command = \"echo 'error: libfoo is required' >&2; mkdir -p $out; touch $out/ok\"\n",
    ));
    let cmd = format!(
        "cd {w} && {bin} build b; echo EXIT=$?; sleep 30",
        bin = env!("CARGO_BIN_EXE_pubdeck"),
        w = repo.work.display()
    );
    let t = Tmux::start(format!("pubdeck-stderr-{}", std::process::id()), &cmd);
    t.wait_for("EXIT=0", Duration::from_secs(60));
    // The screen with its attributes: a faint line starts with SGR 2.
    let styled = t.run(&["capture-pane", "-p", "-e", "-t", &t.session]);
    let line = styled
        .lines()
        .find(|l| l.contains("error: libfoo is required"))
        .unwrap_or_else(|| panic!("{styled}"));
    assert!(!line.contains("\u{1b}[2m"), "drawn faint: {line:?}");
}
