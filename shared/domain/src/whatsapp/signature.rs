//! The signature Meta puts on every webhook POST:
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
//!
//! The HMAC covers the exact bytes on the wire. Meta escapes non-ASCII
//! characters and slashes (`\u00e4`, `\/`), so a body that was parsed and
//! serialised again has different bytes and no longer verifies: verify
//! before parsing, over the raw body, and never re-serialise it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature (HTTP header names are
/// case-insensitive; this is the lower-case form API Gateway delivers).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";
/// Bytes of an HMAC-SHA256.
const MAC_LEN: usize = 32;

/// Why a signature header was refused. Every variant means "answer 401 and
/// do not look at the body".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is malformed: {0}")]
    Malformed(Malformed),
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// What is wrong with a header that is present but not `sha256=<64 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("it must start with \"sha256=\"")]
    MissingPrefix,
    #[error("the digest must be hexadecimal")]
    NotHex,
    #[error("the digest must be 64 hex digits, not {0}")]
    WrongLength(usize),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(app_secret: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(app_secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

/// Checks `header` (the value of [`SIGNATURE_HEADER`], if the request had
/// one) against the raw `body`. `app_secret` is the app secret exactly as
/// the App Dashboard shows it: its UTF-8 bytes are the HMAC key.
///
/// The comparison is constant-time. Surrounding whitespace in the header is
/// ignored, and the prefix and hex digits may be in either case.
pub fn verify(app_secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let digest = header
        .get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))
        .map(|_| &header[PREFIX.len()..])
        .ok_or(SignatureError::Malformed(Malformed::MissingPrefix))?;
    let expected = decode_hex(digest).map_err(SignatureError::Malformed)?;
    mac(app_secret, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: `sha256=<lower-case hex>`.
/// For tests and for the fake Meta of `make dev`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let digest = mac(app_secret, body).finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 2 * MAC_LEN);
    out.push_str(PREFIX);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(digits: &str) -> Result<[u8; MAC_LEN], Malformed> {
    let bytes = digits.as_bytes();
    if bytes.len() != 2 * MAC_LEN {
        // Checked first so that a wrong length is reported as such even
        // when it also contains non-hex characters.
        if bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(Malformed::WrongLength(bytes.len()));
        }
        return Err(Malformed::NotHex);
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; MAC_LEN];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
            _ => return Err(Malformed::NotHex),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "6f3c1a0e2b9d47c58e1f0a2b3c4d5e6f";

    #[test]
    fn accepts_its_own_signature() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(SECRET, body);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), 7 + 64);
        assert_eq!(verify(SECRET, Some(&header), body), Ok(()));
        // upper-case digits and prefix, surrounding blanks
        let shouty = format!("  SHA256={}  ", header[7..].to_ascii_uppercase());
        assert_eq!(verify(SECRET, Some(&shouty), body), Ok(()));
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rejects_a_missing_header() {
        assert_eq!(verify(SECRET, None, b"{}"), Err(SignatureError::Missing));
        assert_eq!(
            verify(SECRET, Some(" "), b"{}"),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        let good = sign(SECRET, b"{}");
        let digest = &good[7..];
        let cases = [
            (digest.to_string(), Malformed::MissingPrefix),
            (format!("sha1={digest}"), Malformed::MissingPrefix),
            ("sha".to_string(), Malformed::MissingPrefix),
            (
                format!("sha256={}", &digest[..62]),
                Malformed::WrongLength(62),
            ),
            (format!("sha256={digest}00"), Malformed::WrongLength(66)),
            ("sha256=".to_string(), Malformed::WrongLength(0)),
            (format!("sha256={}zz", &digest[..62]), Malformed::NotHex),
            (format!("sha256={}é", &digest[..62]), Malformed::NotHex),
        ];
        for (header, why) in cases {
            assert_eq!(
                verify(SECRET, Some(&header), b"{}"),
                Err(SignatureError::Malformed(why)),
                "{header}"
            );
        }
    }

    #[test]
    fn rejects_another_secret_or_body() {
        let header = sign(SECRET, b"{}");
        assert_eq!(
            verify("another", Some(&header), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&header), b"{} "),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verifies_the_raw_bytes_not_a_re_serialisation() {
        // Meta escapes non-ASCII and slashes; serde_json writes them plainly.
        let raw = br#"{"entry":[{"changes":[{"value":{"messages":[{"text":{"body":"J\u00e4 \/ \u00e7\u00e3o"}}]}}]}]}"#;
        let header = sign(SECRET, raw);
        assert_eq!(verify(SECRET, Some(&header), raw), Ok(()));

        let parsed: serde_json::Value = serde_json::from_slice(raw).unwrap();
        let reserialised = serde_json::to_vec(&parsed).unwrap();
        assert_ne!(reserialised.as_slice(), raw.as_slice());
        assert!(String::from_utf8_lossy(&reserialised).contains("Jä / ção"));
        assert_eq!(
            verify(SECRET, Some(&header), &reserialised),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_is_caught(
            secret in "[ -~]{0,64}",
            body in proptest::collection::vec(any::<u8>(), 1..512),
            at in any::<prop::sample::Index>(),
            delta in 1u8..=255,
        ) {
            let header = sign(&secret, &body);
            prop_assert_eq!(verify(&secret, Some(&header), &body), Ok(()));

            let mut changed = body.clone();
            let i = at.index(changed.len());
            changed[i] = changed[i].wrapping_add(delta);
            prop_assert_eq!(
                verify(&secret, Some(&header), &changed),
                Err(SignatureError::Mismatch)
            );
        }
    }
}
