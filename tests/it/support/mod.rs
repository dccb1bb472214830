//! Test support for the workbench: the fake backend over the demo world, the screenshots and
//! their SVG rendering, and the text rendering of buffers for snapshots. Dev-only: none of
//! this compiles into pubdeck.
#![allow(dead_code)]

pub mod fake;
pub mod screenshots;
pub mod snapshot;
pub mod svg;
