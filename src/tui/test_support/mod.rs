//! Test support for the workbench: the fake backend over the demo world, the screenshots and
//! their SVG rendering, and the text rendering of buffers for snapshots. Only with the
//! `test-support` feature (which `cargo test` and the render and search benches turn on): none
//! of this compiles into pubdeck otherwise.

pub mod fake;
pub mod screenshots;
pub mod snapshot;
pub mod svg;
