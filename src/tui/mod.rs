//! The full-screen workbench (`pubdeck` / `pubdeck tui`): ratatui + crossterm on tokio.
//!
//! Data flow: terminal input, engine results and ticks become [`Action`]s; the pure
//! [`App::update`] turns each into state changes and [`Effect`]s; the [`runtime`] performs
//! effects by calling the [`Backend`] (the engine in `tui::engine`; tests use a fake over the
//! demo world), whose results come back as actions. Views only read [`App`]. One keymap table
//! ([`keymap::KEYMAP`]) drives dispatch, the footer and the `?` popup.

pub mod action;
pub mod ansi;
pub mod app;
pub mod backend;
pub mod engine;
pub mod frames;
pub mod input;
pub mod keymap;
pub mod layout;
pub mod list;
pub mod log;
pub mod model;
pub mod runtime;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod theme;
pub mod view;
mod watch;

pub use action::{Action, Effect};
pub use app::App;
pub use backend::{ActionTx, Backend, forward_events};
pub use model::{
    BuildRow, JobKind, JobOutcome, LastResult, PackageDetails, PackageList, PackageRow, SystemBuild,
};
pub use runtime::{Options, run};
pub use theme::Theme;
