//! Request and answer headers with a grammar of their own: the
//! `Authorization: Bearer <key id>.<secret>` the authorizer reads, the
//! `Idempotency-Key` of write routes, `Accept`, and the `Retry-After` that
//! webhook receivers and the RPA API answer with.
//!
//! Property: nothing panics; a well-formed credential is read back exactly
//! and any single changed character of its secret is refused (its CRC-32
//! catches it); an idempotency key is 1–255 visible ASCII characters or a
//! 400; a `Retry-After` is never more than the cap, and a date `k` seconds
//! ahead is a wait of `k` seconds.

mod support;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use lambda_http::http::HeaderValue;
use nuvem_aws::http::{accepts, idempotency_key};
use nuvem_domain::keys::parse_credential;
use nuvem_domain::webhook::retry::{RETRY_AFTER_CAP, parse_retry_after};
use nuvem_fuzz::text::{any_bytes, any_char, mixed_case, nasty_string};
use proptest::prelude::*;
use support::{assert_client_error, request};

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `nvm_sk_`, 32 base62 characters and the 6 base62 digits of their CRC-32.
fn secret() -> impl Strategy<Value = String> {
    "[0-9A-Za-z]{32}".prop_map(|payload| {
        let mut n = u64::from(crc32(payload.as_bytes()));
        let mut check = [b'0'; 6];
        for d in check.iter_mut().rev() {
            *d = BASE62[(n % 62) as usize];
            n /= 62;
        }
        format!("nvm_sk_{payload}{}", std::str::from_utf8(&check).unwrap())
    })
}

/// `key_` and a lowercase ULID.
fn key_id() -> impl Strategy<Value = String> {
    "[0-7][0-9a-hjkmnp-tv-z]{25}".prop_map(|ulid| format!("key_{ulid}"))
}

fn scheme() -> impl Strategy<Value = String> {
    (any::<u64>(), "[ \t]{1,3}", "[ \t]{0,2}")
        .prop_map(|(mask, gap, pad)| format!("{pad}{}{gap}", mixed_case("Bearer", mask)))
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn a_well_formed_credential_reads_back(scheme in scheme(), id in key_id(), secret in secret(), tail in "[ \t]{0,2}") {
        let header = format!("{scheme}{id}.{secret}{tail}");
        let credential = parse_credential(&header);
        prop_assert!(credential.is_ok(), "{:?}: {:?}", header, credential);
        let credential = credential.unwrap();
        prop_assert_eq!(credential.key_id, id);
        prop_assert_eq!(credential.secret, secret);
    }

    #[test]
    fn a_changed_secret_is_refused(id in key_id(), secret in secret(), at in 7..45usize, c in any_char()) {
        let mut chars: Vec<char> = secret.chars().collect();
        // A change, not a rewrite of the same character (no rejection, so a
        // million cases never run out of proptest's reject budget).
        chars[at] = if chars[at] == c { if c == 'a' { 'b' } else { 'a' } } else { c };
        let changed: String = chars.into_iter().collect();
        let header = format!("Bearer {id}.{changed}");
        prop_assert!(parse_credential(&header).is_err(), "{} accepted", header);
    }

    #[test]
    fn any_authorization_header_is_safe(header in prop_oneof![
        3 => (scheme(), key_id(), secret(), any::<usize>(), any_char()).prop_map(|(s, id, secret, at, c)| {
            let mut chars: Vec<char> = format!("{s}{id}.{secret}").chars().collect();
            let i = at % chars.len();
            chars.insert(i, c);
            chars.into_iter().collect()
        }),
        2 => nasty_string(),
        1 => "Bearer [a-z_0-9.]{0,80}",
    ]) {
        if let Ok(credential) = parse_credential(&header) {
            prop_assert!(header.len() <= 200);
            prop_assert!(credential.key_id.starts_with("key_") && credential.secret.starts_with("nvm_sk_"));
            let again = parse_credential(&format!("Bearer {}.{}", credential.key_id, credential.secret));
            prop_assert_eq!(again, Ok(credential));
        }
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_or_a_400(value in prop_oneof![
        3 => "[!-~]{1,255}".prop_map(String::into_bytes),
        1 => "[!-~]{256,300}".prop_map(String::into_bytes),
        2 => any_bytes(40),
        1 => nasty_string().prop_map(String::into_bytes),
    ], accept in any_bytes(30)) {
        let mut req = request(None, Vec::new(), true, "");
        let sent = HeaderValue::from_bytes(&value).ok();
        if let Some(v) = sent.clone() {
            req.headers_mut().insert("idempotency-key", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&accept) {
            req.headers_mut().insert("accept", v);
        }
        let _ = accepts(&req, "text/csv");
        match (idempotency_key(&req), sent) {
            (Ok(None), None) => {}
            (Ok(Some(key)), Some(v)) => {
                prop_assert_eq!(key.as_str().as_bytes(), v.as_bytes());
                prop_assert!((1..=255).contains(&key.as_str().len()));
                prop_assert!(key.as_str().bytes().all(|b| b.is_ascii_graphic()));
            }
            (Err(problem), Some(v)) => {
                prop_assert!(v.is_empty() || v.len() > 255 || !v.as_bytes().iter().all(u8::is_ascii_graphic));
                assert_client_error(&problem, &[400])?;
            }
            (result, sent) => prop_assert!(false, "{:?} for {:?}", result, sent),
        }
    }

    #[test]
    fn retry_after_is_capped_and_dates_count_from_now(
        ahead in -100_000i64..200_000,
        digits in "[0-9]{1,30}",
        other in nasty_string(),
        form in 0..3u8,
    ) {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let date = (now + chrono::Duration::seconds(ahead)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let (value, expected) = match form {
            0 => (date, Some(Duration::from_secs(ahead.max(0) as u64).min(RETRY_AFTER_CAP))),
            1 => {
                let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
                (format!(" {digits} "), Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP)))
            }
            _ => (other, None),
        };
        let wait = parse_retry_after(&value, now);
        if let Some(wait) = wait {
            prop_assert!(wait <= RETRY_AFTER_CAP);
        }
        if expected.is_some() {
            prop_assert_eq!(wait, expected, "{:?}", value);
        }
    }
}
