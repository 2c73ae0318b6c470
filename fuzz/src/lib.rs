//! Property-based fuzzing of every parser that takes outside bytes, on
//! stable Rust with `proptest`.
//!
//! The targets are the `#[test]` functions in `tests/`, one file per kind of
//! outside input. This library holds what they share: the proptest
//! configuration, generators of nasty text and of JSON near a real shape,
//! and reference checks written from the published rules (check digits of
//! Brazilian documents and NFCom keys) against which the parsers are
//! compared.
//!
//! The number of cases per target comes from `PROPTEST_CASES` (proptest's
//! default of 256 when unset): `make test` runs the short default, `make
//! fuzz` a million.

pub mod documents;
pub mod json;
pub mod text;

use proptest::test_runner::{Config, FileFailurePersistence};

/// The configuration of every target: proptest's defaults (so that
/// `PROPTEST_CASES` and the other `PROPTEST_*` variables apply), with
/// failing inputs saved beside the target's source as
/// `tests/<target>.regressions` and replayed first on the next run.
pub fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}
