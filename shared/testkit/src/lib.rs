//! Dev-only helpers: the local AWS emulator (moto's server), a stack of
//! tables, queues and buckets created in it from `template.yaml`, sample
//! events from `events/`, and ways to read the emulator's state back.
//!
//! ```ignore
//! let emu = nuvem_testkit::emulator().await;
//! let stack = Stack::create(emu, &unique_name("signup"), &Default::default()).await?;
//! let sdk = emu.sdk_config().await;
//! let store = Store::new(&sdk, stack.table("Table"));
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod counting;
mod emulator;
pub mod fake_chat;
pub mod fake_graph;
pub mod fake_rpa;
pub mod fixtures;
mod harness;
pub mod inspect;
pub mod local_http;
pub mod receiver;
pub mod rpa_records;
pub mod stack;
pub mod template;
pub mod tenants;
pub mod unresponsive;
pub mod wait;

pub use emulator::{Emulator, SentEmail, emulator, moto_server_path};
pub use harness::TestStack;
pub use stack::{Queue, Stack};
pub use template::Template;
pub use wait::{eventually, eventually_some};

/// The AWS account id the emulator and the stack use.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region the emulator and the stack use.
pub const REGION: &str = "us-east-1";

/// The workspace root (the directory of the root `Cargo.toml` and `template.yaml`).
/// `NUVEM_WORKSPACE` overrides it.
pub fn workspace_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("NUVEM_WORKSPACE") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("template.yaml").is_file() && dir.join("Cargo.toml").is_file())
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../.."))
}

/// `template.yaml` at the workspace root; `NUVEM_TEMPLATE` overrides it.
pub fn template_path() -> PathBuf {
    match std::env::var_os("NUVEM_TEMPLATE") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("template.yaml"),
    }
}

/// A short, lowercase name unique in this process and very likely across
/// processes: `<prefix>-<10 base-36 chars>`. Valid for DynamoDB tables, SQS
/// queues and (with a short prefix) S3 buckets.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(20)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Mix time, pid and counter; keep 50 bits (10 base-36 digits).
    let mut x = nanos ^ ((std::process::id() as u64) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let mut suffix = String::new();
    for _ in 0..10 {
        let d = (x % 36) as u32;
        suffix.push(char::from_digit(d, 36).unwrap());
        x /= 36;
    }
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_short_lowercase_and_distinct() {
        let a = unique_name("Signup Tests");
        let b = unique_name("Signup Tests");
        assert_ne!(a, b);
        assert!(a.starts_with("signup-tests-"), "{a}");
        assert!(a.len() <= 31);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn the_workspace_root_holds_the_template() {
        assert!(template_path().is_file(), "{}", template_path().display());
    }
}
