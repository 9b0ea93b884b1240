//! The `dvt` command line end to end: `eval`, `calibrate`/`simulate`, `check-bundle` and `bench`
//! as a user runs them.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod build;
mod calibrate_simulate;
mod check_bundle;
mod eval;
