//! WhatsApp rules: stores and their numbers and bot settings, Meta's Cloud
//! API webhooks (signature, handshake, payloads), customer identity, the
//! forward-only delivery statuses and Graph API error codes.
//!
//! Each submodule is pure: payloads in, decisions out. Storage lives in
//! `nuvem_aws::store::whatsapp`, the Graph client in `nuvem_aws::graph`.

pub mod bot;
pub mod content;
pub mod events;
pub mod graph_error;
pub mod handshake;
pub mod identity;
pub mod message;
pub mod notices;
pub mod outbound;
pub mod prompt;
pub mod signature;
pub mod status;
pub mod store;
pub mod webhook;
