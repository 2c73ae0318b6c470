//! Signatures on outside requests: Meta's `X-Hub-Signature-256` on every
//! WhatsApp webhook POST, and Standard Webhooks' `webhook-signature`
//! (`v1,<base64>`, several while a secret rotates) with its `whsec_`
//! secrets, which tenants also type into the API.
//!
//! Property: nothing panics; a body signed with the right secret verifies
//! however the header is cased or padded, and any single changed byte of
//! the body (or of the message id, or a timestamp outside the tolerance)
//! does not; a truncated, extended, non-hex or wrongly prefixed digest is
//! refused as malformed; no header verifies unless it carries the right
//! signature; a secret reads back as the key it was written from.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use nuvem_domain::webhook::signature::{
    self as standard, NEW_SECRET_BYTES, SecretError, VerifyError, WebhookSecret,
};
use nuvem_domain::whatsapp::signature::{self as meta, Malformed, SignatureError};
use nuvem_fuzz::text::{any_bytes, mixed_case, nasty_string, text};
use proptest::prelude::*;

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => any_bytes(200),
        1 => text(100).prop_map(String::into_bytes),
        1 => Just(br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec()),
    ]
}

/// `bytes` with the byte at `at` (modulo the length) changed by `delta`
/// (1–255), or one byte added when it is empty.
fn change_one_byte(bytes: &[u8], at: usize, delta: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        out.push(delta);
    } else {
        let i = at % out.len();
        out[i] = out[i].wrapping_add(delta);
    }
    out
}

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=80)
}

fn secret_of(key: &[u8]) -> WebhookSecret {
    WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode(key))).expect("a valid secret")
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn meta_signed_bodies_verify_and_changed_ones_do_not(
        secret in text(40),
        body in body(),
        mask: u64,
        pad in "[ \t]{0,2}",
        at: usize,
        delta in 1..=255u8,
    ) {
        let header = meta::sign(&secret, &body);
        prop_assert!(header.starts_with("sha256=") && header.len() == 71);
        let written = format!("{pad}{}{pad}", mixed_case(&header, mask));
        prop_assert_eq!(meta::verify(&secret, Some(&written), &body), Ok(()));
        let changed = change_one_byte(&body, at, delta);
        prop_assert_eq!(meta::verify(&secret, Some(&header), &changed), Err(SignatureError::Mismatch));
        // Another secret (here: one byte more) does not verify either.
        prop_assert_eq!(
            meta::verify(&format!("{secret}x"), Some(&header), &body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn meta_malformed_headers_are_named(
        secret in text(20),
        body in body(),
        cut in 1..64usize,
        extra in "[0-9a-f]{1,4}",
        at in 0..64usize,
        bad in "[g-zG-Z!#/ ]",
        prefix in prop_oneof![Just("sha1="), Just("sha256:"), Just("sha256 "), Just(""), Just("sha512="), Just("=")],
    ) {
        let header = meta::sign(&secret, &body);
        let digest = &header["sha256=".len()..];
        let verdict = |h: &str| meta::verify(&secret, Some(h), &body);
        prop_assert_eq!(
            verdict(&format!("sha256={}", &digest[..64 - cut])),
            Err(SignatureError::Malformed(Malformed::WrongLength(64 - cut)))
        );
        prop_assert_eq!(
            verdict(&format!("{header}{extra}")),
            Err(SignatureError::Malformed(Malformed::WrongLength(64 + extra.len())))
        );
        let mut not_hex = digest.to_owned();
        not_hex.replace_range(at..=at, &bad);
        prop_assert_eq!(
            verdict(&format!("sha256={not_hex}")),
            Err(SignatureError::Malformed(if bad == " " && at == 63 {
                // The trailing space is trimmed: one digit short.
                Malformed::WrongLength(63)
            } else {
                Malformed::NotHex
            }))
        );
        prop_assert_eq!(
            verdict(&format!("{prefix}{digest}")),
            Err(SignatureError::Malformed(Malformed::MissingPrefix))
        );
        prop_assert_eq!(meta::verify(&secret, None, &body), Err(SignatureError::Missing));
        prop_assert_eq!(verdict(" \t"), Err(SignatureError::Missing));
        // Two signatures are not a list in Meta's header.
        let twice = format!("{header},{header}");
        prop_assert!(verdict(&twice).is_err());
    }

    #[test]
    fn meta_no_header_verifies_without_the_right_digest(
        secret in text(20),
        body in body(),
        header in prop_oneof![
            2 => nasty_string(),
            2 => "sha256=[0-9a-fA-F]{0,70}",
            1 => any_bytes(80).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        if meta::verify(&secret, Some(&header), &body).is_ok() {
            prop_assert_eq!(header.trim().to_ascii_lowercase(), meta::sign(&secret, &body));
        }
    }

    #[test]
    fn standard_secrets_read_back(key in key_bytes(), padded: bool, junk in nasty_string()) {
        let encoded = if padded { STANDARD.encode(&key) } else { STANDARD_NO_PAD.encode(&key) };
        let secret = WebhookSecret::parse(&format!("whsec_{encoded}"));
        prop_assert!(secret.is_ok(), "{:?}", secret);
        let secret = secret.unwrap();
        prop_assert_eq!(secret.to_string_form(), format!("whsec_{}", STANDARD.encode(&key)));
        prop_assert_eq!(WebhookSecret::parse(&secret.to_string_form()), Ok(secret.clone()));
        let new = WebhookSecret::parse_new(&format!("whsec_{encoded}"));
        if NEW_SECRET_BYTES.contains(&key.len()) {
            prop_assert_eq!(new, Ok(secret));
        } else {
            prop_assert_eq!(new, Err(SecretError::Length(key.len())));
        }
        // Anything else is refused or read as some key, never a panic.
        if let Ok(other) = WebhookSecret::parse(&junk) {
            prop_assert!(junk.starts_with("whsec_"));
            prop_assert_eq!(WebhookSecret::parse(&other.to_string_form()), Ok(other));
        }
        prop_assert_eq!(WebhookSecret::parse(&encoded).err(), Some(SecretError::MissingPrefix));
    }

    #[test]
    fn standard_signatures_verify_only_for_the_signed_delivery(
        key in key_bytes(),
        msg_id in "msg_[0-9A-Za-z]{1,30}",
        timestamp in 0i64..4_000_000_000,
        skew in -600i64..600,
        payload in body(),
        at: usize,
        delta in 1..=255u8,
        others in proptest::collection::vec(prop_oneof![
            "v1,[A-Za-z0-9+/]{43}=",
            "v2,[A-Za-z0-9+/=]{10,44}",
            "[a-z0-9,]{0,10}",
        ], 0..3),
        position: usize,
        garbage in "[A-Za-z0-9+/=]{1,3}",
    ) {
        const TOLERANCE: i64 = 300;
        let secret = secret_of(&key);
        let now = timestamp + skew;
        let signature = standard::sign(&secret, &msg_id, timestamp, &payload);
        let verify = |header: &str, id: &str, payload: &[u8]| {
            standard::verify(header, &secret, id, timestamp, payload, now, TOLERANCE)
        };
        let in_time = skew.abs() <= TOLERANCE;
        // The right signature among others, in any place.
        let mut list = others.clone();
        list.insert(position % (list.len() + 1), signature.clone());
        let header = list.join(" ");
        prop_assert_eq!(
            verify(&header, &msg_id, &payload),
            if in_time { Ok(()) } else { Err(VerifyError::Timestamp) }
        );
        if in_time {
            // Unpadded base64 is the same signature.
            prop_assert_eq!(verify(signature.trim_end_matches('='), &msg_id, &payload), Ok(()));
            let changed = change_one_byte(&payload, at, delta);
            prop_assert_eq!(verify(&header, &msg_id, &changed), Err(VerifyError::NoMatch));
            prop_assert_eq!(verify(&header, &format!("{msg_id}x"), &payload), Err(VerifyError::NoMatch));
            let v2 = signature.replacen("v1,", "v2,", 1);
            prop_assert_eq!(verify(&v2, &msg_id, &payload), Err(VerifyError::NoMatch));
            let truncated = &signature[..signature.len() - 2];
            prop_assert_eq!(verify(truncated, &msg_id, &payload), Err(VerifyError::NoMatch));
            let extended = format!("{signature}{garbage}");
            prop_assert_eq!(verify(&extended, &msg_id, &payload), Err(VerifyError::NoMatch));
            // Another key does not verify (HMAC pads keys with zeros, so a
            // key with a zero byte more would be the same key).
            let mut other_key = key.clone();
            other_key[0] ^= 0x80;
            let other = standard::verify(&header, &secret_of(&other_key), &msg_id, timestamp, &payload, now, TOLERANCE);
            prop_assert_eq!(other, Err(VerifyError::NoMatch));
        }
    }

    #[test]
    fn standard_no_header_verifies_without_the_right_signature(
        key in key_bytes(),
        header in prop_oneof![
            2 => nasty_string(),
            2 => "(v1,[A-Za-z0-9+/=]{0,50} ?){0,3}",
        ],
        timestamp in any::<i64>(),
        now in any::<i64>(),
        tolerance in any::<i64>(),
        payload in body(),
    ) {
        let secret = secret_of(&key);
        let verdict = standard::verify(&header, &secret, "msg_1", timestamp, &payload, now, tolerance);
        if verdict.is_ok() {
            let expected = standard::sign(&secret, "msg_1", timestamp, &payload);
            let expected = expected.trim_end_matches('=');
            prop_assert!(header.split_whitespace().any(|s| s.trim_end_matches('=') == expected));
        }
    }
}
