//! Helpers for Palaver's black-box tests: databases to test against and a server on a free port.

pub mod pg;
