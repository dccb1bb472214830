//! The event loop: one `select!` over terminal input, the action inbox, a tick and signals;
//! effects become [`Backend`] calls; pending actions are drained before drawing once, at
//! most every [`Options::frame`]. The terminal is restored on exit, panic, Ctrl-C and SIGTERM.

use std::io::{self, Stdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};

use super::action::{Action, Effect};
use super::app::App;
use super::backend::{ActionTx, Backend};
use super::keymap::Command;
use super::theme::Theme;
use super::watch;

/// How the workbench runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Spinner / debounce tick.
    pub tick: Duration,
    /// Minimum time between two draws (16 ms ≈ 60 fps).
    pub frame: Duration,
    /// Capture the mouse (wheel, clicks).
    pub mouse: bool,
    /// `None`: [`Theme::from_env`] (honours `NO_COLOR`).
    pub theme: Option<Theme>,
    /// `None`: the default keymap.
    pub keymap: Option<super::keymap::Keymap>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_millis(100),
            frame: Duration::from_millis(16),
            mouse: true,
            theme: None,
            keymap: None,
        }
    }
}

/// The keymap and theme the config file asks for (`[keys]`, `[theme]`), or one sentence
/// naming the bad entry, its line and the file.
pub fn configured(
    settings: &crate::config::Settings,
) -> Result<(super::keymap::Keymap, Theme), String> {
    let file = settings.config_file.display();
    let keys: Vec<(String, Vec<String>, Option<usize>)> = settings
        .keys
        .iter()
        .map(|e| (e.name.clone(), e.values.clone(), e.line))
        .collect();
    let keymap =
        super::keymap::Keymap::with_overrides(&keys).map_err(|e| format!("{file}, {e}"))?;
    let mut theme_entries = Vec::new();
    for e in &settings.theme {
        match e.values.as_slice() {
            [one] => theme_entries.push((e.name.clone(), one.clone(), e.line)),
            _ => {
                let at = e.line.map_or(String::new(), |l| format!("line {l}: "));
                return Err(format!(
                    "{file}, {at}[theme] {} takes one colour, not a list",
                    e.name
                ));
            }
        }
    }
    let theme = Theme::from_env()
        .with_overrides(&theme_entries)
        .map_err(|e| format!("{file}, {e}"))?;
    Ok((keymap, theme))
}

/// At most this many inbox actions are applied between two draws, and for at most half a
/// frame (a log flood must not starve the screen: one action may carry hundreds of lines).
const DRAIN_BUDGET: usize = 20_000;

/// Turns a terminal event into an action.
pub fn map_event(ev: TermEvent) -> Option<Action> {
    match ev {
        TermEvent::Key(k) => Some(Action::Key(k)),
        TermEvent::Mouse(m) => Some(Action::Mouse(m)),
        TermEvent::Resize(w, h) => Some(Action::Resize(w, h)),
        TermEvent::Paste(s) => Some(Action::Paste(s)),
        TermEvent::FocusGained | TermEvent::FocusLost => None,
    }
}

/// What performing an effect led to.
#[derive(Debug)]
pub enum Performed {
    /// Started (or done); results, if any, come back through the inbox.
    Done,
    /// A result that is ready now, to be applied at once.
    Now(Box<Action>),
    /// [`Effect::Quit`].
    Quit,
}

/// Performs one effect.
pub fn perform(effect: Effect, backend: &dyn Backend, tx: &ActionTx) -> Performed {
    match effect {
        Effect::Quit => return Performed::Quit,
        Effect::LoadBuilds => return Performed::Now(Box::new(Action::Builds(backend.builds()))),
        Effect::RunChecks { build, fetch } => backend.run_checks(build, fetch, tx),
        Effect::Publish(b) => backend.publish(b, tx),
        Effect::BuildOnly(b) => backend.build_only(b, tx),
        Effect::Cancel => backend.cancel(),
        Effect::Push => backend.push(tx),
        Effect::SetVersion { build, version } => backend.set_version(build, version, tx),
        Effect::SaveLog { build, lines } => backend.save_log(build, lines, tx),
        Effect::LoadPackages { etag } => backend.load_packages(etag, tx),
        Effect::PackageDetails(p) => backend.package_details(p, tx),
        Effect::Readiness(p) => backend.readiness(p, tx),
        Effect::Install(p) => backend.install(p, tx),
        Effect::Yank {
            package,
            version,
            yanked,
        } => backend.yank(package, version, yanked, tx),
        Effect::AnswerReview(answer) => backend.answer_review(answer),
        Effect::CommitBump { build, version } => backend.commit_bump(build, version, tx),
    }
    Performed::Done
}

/// Applies `action` and performs its effects (applying results that are ready at once): the
/// one path every action takes, in the runtime and in scripted tests. Returns false when the
/// app should quit.
pub fn dispatch(app: &mut App, action: Action, backend: &dyn Backend, tx: &ActionTx) -> bool {
    let mut go_on = true;
    let mut queue = std::collections::VecDeque::from([action]);
    while let Some(action) = queue.pop_front() {
        for effect in app.update(action) {
            match perform(effect, backend, tx) {
                Performed::Done => {}
                Performed::Now(a) => queue.push_back(*a),
                Performed::Quit => go_on = false,
            }
        }
    }
    go_on && !app.quit
}

/// Applies the effects `App::init` asks for.
pub fn start(app: &mut App, backend: &dyn Backend, tx: &ActionTx) {
    for effect in app.init() {
        match perform(effect, backend, tx) {
            Performed::Now(a) => {
                dispatch(app, *a, backend, tx);
            }
            Performed::Done | Performed::Quit => {}
        }
    }
}

/// Restores the terminal (idempotent; errors ignored: there is nothing better to do).
fn restore() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(
        io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped (normal exit, `?`, unwinding).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn setup(mouse: bool) -> io::Result<(Guard, Terminal<CrosstermBackend<Stdout>>)> {
    enable_raw_mode()?;
    let guard = Guard;
    let mut out = io::stdout();
    crossterm::execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
    if mouse {
        crossterm::execute!(out, EnableMouseCapture)?;
    }
    let mut terminal = Terminal::new(CrosstermBackend::new(out))?;
    terminal.hide_cursor()?;
    terminal.clear()?;
    Ok((guard, terminal))
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Chains a terminal-restoring hook before the current panic hook; returns the old one.
fn install_panic_hook() -> Arc<PanicHook> {
    let prev: Arc<PanicHook> = Arc::new(std::panic::take_hook());
    let chained = prev.clone();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        chained(info);
    }));
    prev
}

fn remove_panic_hook(prev: Arc<PanicHook>) {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| prev(info)));
}

/// Runs the workbench until the user quits (or SIGTERM/SIGINT/SIGHUP arrives).
pub async fn run(backend: Arc<dyn Backend>, opts: Options) -> io::Result<()> {
    let hook = install_panic_hook();
    let result = run_inner(backend, opts).await;
    remove_panic_hook(hook);
    result
}

async fn run_inner(backend: Arc<dyn Backend>, opts: Options) -> io::Result<()> {
    let (_guard, mut terminal) = setup(opts.mouse)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (tx, mut rx) = super::backend::inbox();
    let size = terminal.size()?;
    let mut app = App::new(
        opts.theme.unwrap_or_else(Theme::from_env),
        (size.width, size.height),
    );
    app.tick_ms = u64::try_from(opts.tick.as_millis()).unwrap_or(100);
    if let Some(k) = opts.keymap {
        app.keymap = std::sync::Arc::new(k);
    }
    let _watcher = watch::spawn(backend.watch_paths(), tx.clone());
    start(&mut app, backend.as_ref(), &tx);
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_draw: Option<Instant> = None;
    let quit = Action::Command(Command::Quit);
    let mut stats = super::frames::FrameStats::from_env();
    let result: io::Result<()> = async {
        loop {
            let deadline = last_draw.map_or_else(tokio::time::Instant::now, |t| {
                tokio::time::Instant::from_std(t + opts.frame)
            });
            let action = tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => map_event(ev),
                    Some(Err(e)) => return Err(e),
                    None => Some(quit.clone()),
                },
                Some(a) = rx.recv() => Some(a),
                _ = tick.tick() => Some(Action::Tick),
                _ = sigterm.recv() => Some(quit.clone()),
                _ = sigint.recv() => Some(quit.clone()),
                _ = sighup.recv() => Some(quit.clone()),
                _ = tokio::time::sleep_until(deadline), if app.dirty => None,
            };
            let turn = Instant::now();
            // Input is answered at once: no draining of the inbox first, and a frame now
            // rather than when the next one is due (a log flood waits for its 60 fps).
            let input = matches!(
                action,
                Some(Action::Key(_) | Action::Mouse(_) | Action::Paste(_) | Action::Resize(..))
            );
            if let Some(action) = action {
                if let Some(s) = stats.as_mut()
                    && let Action::Key(_) = action
                {
                    s.key(turn);
                }
                if !dispatch(&mut app, action, backend.as_ref(), &tx) {
                    break;
                }
                // Coalesce: apply whatever else is already waiting before drawing.
                let mut budget = if input { 0 } else { DRAIN_BUDGET };
                let drain_until = Instant::now() + opts.frame / 2;
                while budget > 0 && Instant::now() < drain_until {
                    let Ok(a) = rx.try_recv() else { break };
                    if !dispatch(&mut app, a, backend.as_ref(), &tx) {
                        return Ok(());
                    }
                    budget -= 1;
                }
            }
            let due = input || last_draw.is_none_or(|t| t.elapsed() >= opts.frame);
            if app.dirty && due {
                let size = terminal.size()?;
                if (size.width, size.height) != app.size {
                    app.update(Action::Resize(size.width, size.height));
                }
                let drawing = Instant::now();
                terminal.draw(|f| f.render_widget(&app, f.area()))?;
                app.dirty = false;
                last_draw = Some(Instant::now());
                if let Some(s) = stats.as_mut() {
                    s.drawn(drawing);
                }
            }
            if let Some(s) = stats.as_mut() {
                s.turn(turn);
            }
        }
        Ok(())
    }
    .await;
    if let Some(s) = stats {
        s.write();
    }
    result
}
