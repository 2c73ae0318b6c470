//! Business rules of the nuvem back office.
//!
//! Pure code only: no I/O, no AWS types, no async runtime. Randomness (ids,
//! secrets) comes from the OS generator; the current time is always passed
//! in by the caller so that rules stay testable.

pub mod account;
pub mod bucket;
pub mod document;
pub mod email;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod json_text;
pub mod keys;
pub mod mail;
pub mod phone;
pub mod rpa;
pub mod s3_event;
pub mod secret;
pub mod signup;
pub mod storage_key;
pub mod threshold;
pub mod token;
pub mod usage;
pub mod validation;
pub mod webhook;
pub mod whatsapp;
