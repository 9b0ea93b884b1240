//! The real `dvtd` on a real socket: the protocol, hardening, lifecycle (signals, reload,
//! drain), the budget sources, the Python client, `dvt demo`, the systemd units and the
//! parsers' fuzzing.

#[path = "../daemon_support/mod.rs"]
mod daemon_support;

mod budget_file;
mod budget_jetson;
mod demo;
mod fuzz;
mod hardening;
mod idle_spin;
mod lifecycle;
mod protocol;
mod python_client;
mod systemd_units;
