//! Client-chosen idempotency keys (the `Idempotency-Key` request header of
//! the IETF httpapi draft): a client that repeats a POST with the same key,
//! after a timeout say, gets the first request's result instead of a second
//! effect.

use crate::secret::sha256_hex;

/// Longest key accepted: a UUID or a ULID fits many times over.
pub const MAX_KEY_LEN: usize = 255;

/// How long a key is remembered (the draft suggests at least 24 hours).
pub const KEY_RETENTION_HOURS: i64 = 24;

/// A valid key, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1–255 visible ASCII characters (no spaces, no control characters).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err("the Idempotency-Key must be 1 to 255 characters long");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the Idempotency-Key must be visible ASCII characters");
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored of the key: a fixed-length hash, so that a long key
    /// does not make a long sort key.
    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// The fingerprint of a request's meaning (its parsed body, re-serialised so
/// that whitespace and key order do not matter): the same key with another
/// fingerprint is a client's mistake, not a repeat.
pub fn fingerprint(body: &serde_json::Value) -> String {
    sha256_hex(&body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "a b", "chave-ç", "tab\there", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_ignore_layout_not_meaning() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"type": "custom.x", "data": {"a": 1, "b": 2}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"data":{"b":2,"a":1},"type":"custom.x"}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&json!({"type": "custom.x", "data": {"a": 1, "b": 3}}))
        );
    }

    proptest! {
        #[test]
        fn digests_are_fixed_length_and_tell_keys_apart(a in "[!-~]{1,255}", b in "[!-~]{1,255}") {
            let (ka, kb) = (IdempotencyKey::parse(&a).unwrap(), IdempotencyKey::parse(&b).unwrap());
            prop_assert_eq!(ka.digest().len(), 64);
            prop_assert_eq!(a == b, ka.digest() == kb.digest());
        }
    }
}
