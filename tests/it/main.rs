//! Every integration test, in one binary: one link of the crate instead of one per suite.
//! Each module is one suite (`cargo test --test it tui_app::` runs one); `common` (git
//! fixtures, the Nix oracle, the catalog fixture `common::catalog_support`, the in-process S3
//! server `common::s3`, process helpers `common::proc`, tmux) and `support`
//! (`pubdeck::tui::test_support`: the workbench's fake backend and renderings, behind the
//! crate's `test-support` feature) are their shared fixtures.

#[macro_use]
mod common;
use pubdeck::tui::test_support as support;

mod artifacts;
mod catalog_service;
mod clean_build;
mod cli_conventions;
mod closure_memo;
mod content_address;
mod credentials;
mod flox_api;
mod flox_install;
mod fuzz_regressions;
mod hostile;
mod kill_matrix;
mod layering;
mod lifecycle;
mod lifecycle_store;
mod manifest_vectors;
mod nar_golden;
mod nix_interop;
mod preconditions;
mod project_settings;
mod publish_crash;
mod publish_install;
mod review_repro;
mod search_faces;
mod service_hardening;
mod store_bounds;
mod store_file;
mod store_kill;
mod store_s3;
mod trusted_endpoints;
mod tui_app;
mod tui_contract;
mod tui_e2e;
mod tui_screenshots;
mod tui_scripted;
mod tui_small;
mod tui_snapshots;
mod two_instances;
