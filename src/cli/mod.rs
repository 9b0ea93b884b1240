//! Client-side programs of the `dvt` command line that are more than argument parsing: `dvt ctl`
//! (control lines and frames to a running `dvtd`), `dvt demo` (a daemon started, streamed to and
//! measured) and the transport floor it measures against. They talk to the daemon only through
//! its socket ([`crate::client`]), as any client does.

pub mod ctl;
pub mod demo;
pub mod floor;
