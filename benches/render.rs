//! Render time per frame at 200×60 with 1M lines pushed through the log (ring buffer keeps
//! 100k), plus ingest throughput and memory: `cargo bench --bench render`.

use std::time::{Duration, Instant};

use pubdeck::event::{Event, LogLines, Stream};
use pubdeck::tui::Action;
use pubdeck::tui::app::PublishPane;
use pubdeck::tui::keymap::Command;
use pubdeck::tui::test_support::screenshots;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name:<40} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  (n={})",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    );
}

fn main() {
    let (w, h) = (200u16, 60u16);
    let mut app = screenshots::publish_running();
    app.update(Action::Resize(w, h));
    app.publish.focus = PublishPane::Log;
    let rss0 = rss_mib();
    let start = Instant::now();
    let n = 1_000_000u64;
    // Batched as the build's pipe reader batches them (LogLines::BATCH_BYTES per event).
    let mut batch = LogLines::default();
    let mut per_action = Vec::new();
    for i in 0..n {
        let line = match i % 4 {
            0 => format!("\x1b[32m  CC\x1b[0m      src/module_{i}.c"),
            1 => format!(
                "\x1b[1msrc/m{i}.c:41:12: \x1b[35mwarning:\x1b[0m\x1b[1m unused variable 'x{i}'\x1b[0m [-Wunused-variable]"
            ),
            2 => format!(
                "\x1b[38;5;208m[{i:>7}]\x1b[0m \x1b[38;2;120;200;80mtest result\x1b[0m: ok. {i} passed; 0 failed"
            ),
            _ => format!("plain output line number {i} with some text to make it a typical length"),
        };
        batch.push(&line);
        if batch.bytes() >= LogLines::BATCH_BYTES || i + 1 == n {
            let t = Instant::now();
            app.update(Action::Engine(Event::Log {
                stream: Stream::Stdout,
                lines: std::mem::take(&mut batch),
            }));
            per_action.push(t.elapsed());
        }
    }
    let ingest = start.elapsed();
    println!(
        "ingest {n} lines through App::update: {:.0} ms ({:.2} µs/line), kept {} lines, RSS +{:.1} MiB",
        ingest.as_secs_f64() * 1e3,
        ingest.as_secs_f64() * 1e6 / n as f64,
        app.publish.log.len(),
        rss_mib() - rss0
    );
    per_action.sort();
    let at = |p: f64| per_action[((per_action.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "  as {} batched log events: per event p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms (the workbench drains for at most half a 16 ms frame)",
        per_action.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );

    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    let mut frame = |app: &pubdeck::tui::App| {
        let t = Instant::now();
        term.draw(|f| f.render_widget(app, f.area())).expect("draw");
        t.elapsed()
    };

    // Following: every frame a new line arrives (the log pane changes completely).
    let mut v = Vec::new();
    for i in 0..500 {
        app.update(Action::Engine(Event::Log {
            stream: Stream::Stderr,
            lines: LogLines::one(format!("\x1b[31merror\x1b[0m: streaming line {i}")),
        }));
        v.push(frame(&app));
    }
    stats("frame, following, 1 new line/frame", v);

    // Scrolled into the middle, paging up.
    app.update(Action::Command(Command::Top));
    for _ in 0..500 {
        app.update(Action::Command(Command::PageDown));
    }
    let mut v = Vec::new();
    for _ in 0..500 {
        app.update(Action::Command(Command::PageUp));
        v.push(frame(&app));
    }
    stats("frame, paused, PageUp each frame", v);

    // With a search active: every visible line is matched and highlighted.
    app.popup = Some(pubdeck::tui::app::Popup::Input {
        title: String::new(),
        input: pubdeck::tui::input::TextInput::new("e"),
        purpose: pubdeck::tui::app::InputPurpose::LogSearch,
    });
    let t = Instant::now();
    app.update(Action::Command(Command::Submit));
    println!(
        "search start over {} lines: {:.2} ms",
        app.publish.log.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut v = Vec::new();
    for _ in 0..500 {
        app.update(Action::Command(Command::SearchNext));
        v.push(frame(&app));
    }
    stats("frame, search highlight + n each frame", v);

    // Worst case for `n`: a pattern that matches nothing scans all 100k lines.
    app.popup = Some(pubdeck::tui::app::Popup::Input {
        title: String::new(),
        input: pubdeck::tui::input::TextInput::new("zzzz-no-match"),
        purpose: pubdeck::tui::app::InputPurpose::LogSearch,
    });
    let t = Instant::now();
    app.update(Action::Command(Command::Submit));
    println!(
        "search miss over {} lines: {:.2} ms",
        app.publish.log.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}
