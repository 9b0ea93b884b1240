//! The model layer on the bundled cascade, in-process: the bundle contract, the exit rule, the
//! CPU backend against PyTorch, and the policy (operating table, frontier, official schedule,
//! controller) on real and synthetic records.

#[path = "../common/mod.rs"]
mod common;
#[path = "../policy_support/mod.rs"]
mod policy_support;

mod bench_stats;
mod bundle_validation;
mod claims;
mod controller;
mod exit_rule;
mod frontier;
mod official;
mod operating_table;
mod parity;
