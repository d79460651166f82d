//! mart-build: Build SQL marts in dependency order with data-quality gates.
//!
//! Not built yet: this crate holds its place in the workspace until issue #5.

/// The issue that builds this worker.
pub const ISSUE: u32 = 5;
