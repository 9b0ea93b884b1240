//! Empty: this crate only exists to fetch headers.
