//! Business rules of the nuvem back office.
//!
//! Pure code only: no I/O, no AWS types, no async runtime. Randomness (ids,
//! secrets) comes from the OS generator; the current time is always passed
//! in by the caller so that rules stay testable.

pub mod account;
pub mod document;
pub mod email;
pub mod events;
pub mod ids;
pub mod keys;
pub mod mail;
pub mod phone;
pub mod secret;
pub mod signup;
pub mod token;
pub mod validation;
