//! The command-line programs that are more than argument parsing (feature `cli`): `dvt bench`'s
//! runner and printing, `dvt ctl` (control lines and frames to a running `dvtd`), `dvt demo` (a
//! daemon started, streamed to and measured) and the transport floor it measures against. The
//! client programs talk to the daemon only through its socket ([`crate::client`]), as any
//! client does.

pub mod bench;
pub mod ctl;
pub mod demo;
pub mod floor;
