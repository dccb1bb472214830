//! pubdeck: publish the builds of a Flox environment to an organisation's catalog, and
//! browse and install what the organisation has published.
//!
//! The engine modules (`manifest`, `git`, `build`, …) know nothing about terminals; the
//! faces (`cli`, `tui` and `server`) drive them. See ARCHITECTURE.md.

pub mod build;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod closure;
pub mod config;
pub mod demo;
pub mod event;
pub mod failpoint;
pub mod fsutil;
pub mod git;
pub mod install;
pub mod lifecycle;
pub mod manifest;
pub mod nix;
pub mod publish;
pub mod server;
pub mod store;
pub mod text;
pub mod time;
pub mod tui;
