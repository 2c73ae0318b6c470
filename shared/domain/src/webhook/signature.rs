//! Webhook signatures as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>), so receivers can verify with any of
//! its libraries:
//!
//! - headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature`;
//! - signature `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{payload}")>`;
//!   several space-separated while a secret is being rotated;
//! - secrets written `whsec_<base64 key>`.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Standard base64 that encodes with padding and decodes with or without.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const PREFIX: &str = "whsec_";
/// Bytes of a generated secret (the HMAC-SHA256 block is 64, its output 32).
const GENERATED_LEN: usize = 32;
/// Key length a tenant-supplied secret must have (see
/// [`WebhookSecret::parse_new`]).
pub const NEW_SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// The signing key of an endpoint. `Debug` is redacted and there is no
/// `Display`; [`WebhookSecret::to_string_form`] is the one way out, for
/// storage and for showing it to its owner.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with \"whsec_\"")]
    MissingPrefix,
    #[error("must be \"whsec_\" followed by standard base64")]
    NotBase64,
    #[error("the key must not be empty")]
    Empty,
    #[error("the key must be 24 to 64 bytes, not {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// 32 bytes from the OS random generator.
    ///
    /// # Panics
    /// If the OS random generator fails (see [`crate::secret`]).
    pub fn generate() -> WebhookSecret {
        let mut key = vec![0u8; GENERATED_LEN];
        getrandom::fill(&mut key).expect("OS random number generator failed");
        WebhookSecret(key)
    }

    /// Reads `whsec_<base64>` with a key of any non-empty length, as the
    /// Standard Webhooks libraries do: for stored secrets and verification.
    pub fn parse(value: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = value
            .strip_prefix(PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecret(key))
    }

    /// [`WebhookSecret::parse`], also requiring a 24 to 64 byte key: for a
    /// secret a tenant chooses when creating an endpoint or rotating.
    pub fn parse_new(value: &str) -> Result<WebhookSecret, SecretError> {
        let secret = Self::parse(value)?;
        if !NEW_SECRET_BYTES.contains(&secret.0.len()) {
            return Err(SecretError::Length(secret.0.len()));
        }
        Ok(secret)
    }

    /// `whsec_<standard base64 of the key>`.
    pub fn to_string_form(&self) -> String {
        format!("{PREFIX}{}", BASE64.encode(&self.0))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Compared in constant time.
impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for WebhookSecret {}

impl Serialize for WebhookSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string_form())
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        WebhookSecret::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// `v1,<base64 signature>` of one delivery.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    format!(
        "v1,{}",
        BASE64.encode(secret.mac(msg_id, timestamp, payload))
    )
}

/// The `webhook-signature` header value: one signature per secret,
/// space-separated (two while a secret is being rotated, so the receiver
/// accepts the delivery whichever secret it holds).
pub fn signature_header(
    secrets: &[&WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, payload))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Too old or too far in the future: refused so that a captured
    /// delivery cannot be replayed later.
    #[error("timestamp outside the tolerated window")]
    Timestamp,
    #[error("no matching signature")]
    NoMatch,
}

/// Checks a `webhook-signature` header as a receiver does: the timestamp
/// within `tolerance_secs` of `now`, and any of its `v1,` signatures made
/// with `secret` (compared in constant time). Other versions are ignored.
pub fn verify(
    header: &str,
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::Timestamp);
    }
    let expected = secret.mac(msg_id, timestamp, payload);
    let matched = header
        .split_whitespace()
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .fold(false, |found, candidate| {
            found | bool::from(candidate.ct_eq(&expected))
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The test vectors of the Standard Webhooks specification.
    const VECTORS: [(&str, &str, i64, &str, &str); 2] = [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];
    const TOLERANCE: i64 = 300;

    #[test]
    fn standard_webhooks_vectors() {
        for (secret, id, ts, payload, expected) in VECTORS {
            let secret = WebhookSecret::parse(secret).unwrap();
            assert_eq!(sign(&secret, id, ts, payload.as_bytes()), expected);
            assert_eq!(
                verify(expected, &secret, id, ts, payload.as_bytes(), ts, TOLERANCE),
                Ok(())
            );
        }
    }

    #[test]
    fn tampering_is_refused() {
        let (secret, id, ts, payload, header) = VECTORS[0];
        let secret = WebhookSecret::parse(secret).unwrap();
        let other = WebhookSecret::parse(VECTORS[1].0).unwrap();
        let payload = payload.as_bytes();
        let check =
            |header: &str, secret: &WebhookSecret, id: &str, ts: i64, payload: &[u8], now: i64| {
                verify(header, secret, id, ts, payload, now, TOLERANCE)
            };
        let no_match = Err(VerifyError::NoMatch);
        assert_eq!(
            check(header, &secret, id, ts, br#"{"test": 2432232315}"#, ts),
            no_match
        );
        assert_eq!(
            check(header, &secret, "msg_other", ts, payload, ts),
            no_match
        );
        assert_eq!(check(header, &secret, id, ts + 1, payload, ts), no_match);
        assert_eq!(check(header, &other, id, ts, payload, ts), no_match);
        assert_eq!(check("", &secret, id, ts, payload, ts), no_match);
        assert_eq!(check("v1,!!!", &secret, id, ts, payload, ts), no_match);
        // A valid signature under another version label does not count.
        let v2 = header.replacen("v1,", "v2,", 1);
        assert_eq!(check(&v2, &secret, id, ts, payload, ts), no_match);
        assert_eq!(
            check(header, &secret, id, ts, payload, ts + TOLERANCE + 1),
            Err(VerifyError::Timestamp)
        );
        assert_eq!(
            check(header, &secret, id, ts, payload, ts - TOLERANCE - 1),
            Err(VerifyError::Timestamp)
        );
        assert_eq!(
            check(header, &secret, id, ts, payload, ts + TOLERANCE),
            Ok(())
        );
        // Unpadded base64 is accepted too.
        let unpadded = header.trim_end_matches('=');
        assert_eq!(check(unpadded, &secret, id, ts, payload, ts), Ok(()));
    }

    #[test]
    fn rotation_header_verifies_with_either_secret() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let header = signature_header(&[&new, &old], "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        for secret in [&old, &new] {
            assert_eq!(
                verify(
                    &header,
                    secret,
                    "msg_1",
                    1_700_000_000,
                    b"{}",
                    1_700_000_000,
                    5
                ),
                Ok(())
            );
        }
        let stranger = WebhookSecret::generate();
        assert_eq!(
            verify(
                &header,
                &stranger,
                "msg_1",
                1_700_000_000,
                b"{}",
                1_700_000_000,
                5
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(signature_header(&[], "msg_1", 1, b"{}"), "");
    }

    #[test]
    fn secret_forms() {
        let generated = WebhookSecret::generate();
        let form = generated.to_string_form();
        assert!(form.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse_new(&form).unwrap(), generated);
        assert_ne!(WebhookSecret::generate(), generated);
        assert_eq!(format!("{generated:?}"), "WebhookSecret(***)");

        let json = serde_json::to_value(&generated).unwrap();
        assert_eq!(json, serde_json::json!(form));
        assert_eq!(
            serde_json::from_value::<WebhookSecret>(json).unwrap(),
            generated
        );
        assert!(serde_json::from_value::<WebhookSecret>(serde_json::json!("nope")).is_err());

        // The spec's vector secrets are 24-byte keys written without padding.
        let vector = WebhookSecret::parse_new(VECTORS[0].0).unwrap();
        assert_eq!(vector.0.len(), 24);

        assert_eq!(WebhookSecret::parse("whsec_AQ==").unwrap().0, [1]);
        assert_eq!(WebhookSecret::parse("whsec_AQ").unwrap().0, [1]);
        assert_eq!(
            WebhookSecret::parse_new("whsec_AQ"),
            Err(SecretError::Length(1))
        );
        let b64 = |n: usize| format!("whsec_{}", BASE64.encode(vec![7u8; n]));
        assert_eq!(
            WebhookSecret::parse_new(&b64(23)),
            Err(SecretError::Length(23))
        );
        assert!(WebhookSecret::parse_new(&b64(24)).is_ok());
        assert!(WebhookSecret::parse_new(&b64(64)).is_ok());
        assert_eq!(
            WebhookSecret::parse_new(&b64(65)),
            Err(SecretError::Length(65))
        );
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Empty));
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8G"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_a b"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_a-_b"),
            Err(SecretError::NotBase64)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify(
            key in proptest::collection::vec(any::<u8>(), 1..80),
            id in "msg_[A-Za-z0-9]{1,30}",
            ts in 0i64..4_000_000_000,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            skew in -300i64..=300,
        ) {
            let secret = WebhookSecret(key);
            let header = sign(&secret, &id, ts, &payload);
            prop_assert_eq!(verify(&header, &secret, &id, ts, &payload, ts + skew, 300), Ok(()));
            let reparsed = WebhookSecret::parse(&secret.to_string_form()).unwrap();
            prop_assert_eq!(sign(&reparsed, &id, ts, &payload), header);
        }
    }
}
