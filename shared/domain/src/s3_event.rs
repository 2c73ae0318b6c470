//! Pieces of S3 event notifications that need care: the object key's
//! encoding, the ordering of `sequencer` values, and the lenient shape
//! both S3 consumers read.

use std::cmp::Ordering;

use serde::Deserialize;

/// The fields of an S3 notification that nuvem depends on. Deliberately
/// lenient: `aws_lambda_events::s3::S3Event` requires fields (user identity,
/// request parameters) that S3-compatible servers and the local emulator
/// leave out, and a missing field there must not stop a consumer.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    #[serde(rename = "Records")]
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub event_name: String,
    pub s3: Entity,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    pub bucket: Bucket,
    pub object: Object,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bucket {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Object {
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sequencer: Option<String>,
}

impl Notification {
    /// An SQS message's body as an S3 notification; `None` for the
    /// `s3:TestEvent` S3 sends when notifications are configured.
    pub fn parse(body: &str) -> Result<Option<Notification>, String> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
            return Ok(None);
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| format!("not an S3 notification: {e}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    /// `%` not followed by two hex digits; `at` is the byte offset of the `%`.
    #[error("invalid percent escape at byte {at}")]
    InvalidEscape { at: usize },
    #[error("decoded key is not valid UTF-8")]
    InvalidUtf8,
}

/// Decodes an object key as S3 puts it in notifications: URL-encoded the way
/// HTML forms are (`+` for a space, `%xx` for any byte), over UTF-8. So
/// `my+file%2B1.txt` is `my file+1.txt`.
///
/// Strict: a malformed escape or bytes that are not UTF-8 are errors, never
/// guessed at, because the decoded key identifies the object whose size is
/// recorded; a wrong guess would make its delete free nothing.
pub fn decode_key(raw: &str) -> Result<String, KeyDecodeError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(KeyDecodeError::InvalidEscape { at: i });
                };
                // Two hex digits make at most 0xff.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyDecodeError::InvalidUtf8)
}

/// Orders two S3 `sequencer` values of the same object key.
///
/// Sequencers are hexadecimal strings whose length may differ between
/// events; AWS documents that the shorter one is right-padded with zeros
/// before a lexicographic comparison. Hex digits compare case-insensitively.
/// (Other characters, which S3 never sends, compare by their ASCII-lowercase
/// byte; the order stays total.) Padding means `"a"` and `"a0"` are equal.
///
/// Sequencers of different keys are not comparable in any useful sense.
pub fn sequencer_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let at = |s: &[u8], i: usize| s.get(i).map_or(b'0', u8::to_ascii_lowercase);
    (0..a.len().max(b.len()))
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Form-encodes every byte but unreserved ASCII, with `+` for spaces.
    fn encode(key: &str) -> String {
        let mut out = String::new();
        for b in key.bytes() {
            match b {
                b' ' => out.push('+'),
                b if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) => out.push(b as char),
                b => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    #[test]
    fn decodes_form_encoding() {
        assert_eq!(decode_key("my+file%2B1.txt").unwrap(), "my file+1.txt");
        assert_eq!(
            decode_key("backups/2026/relat%C3%B3rio+final.zip").unwrap(),
            "backups/2026/relatório final.zip"
        );
        assert_eq!(decode_key("a%2fb%2Fc").unwrap(), "a/b/c");
        assert_eq!(decode_key("%25").unwrap(), "%");
        assert_eq!(decode_key("").unwrap(), "");
        // Unencoded non-ASCII passes through.
        assert_eq!(decode_key("ação").unwrap(), "ação");
    }

    #[test]
    fn refuses_malformed_keys() {
        assert_eq!(
            decode_key("abc%"),
            Err(KeyDecodeError::InvalidEscape { at: 3 })
        );
        assert_eq!(
            decode_key("a%4"),
            Err(KeyDecodeError::InvalidEscape { at: 1 })
        );
        assert_eq!(
            decode_key("a%zz"),
            Err(KeyDecodeError::InvalidEscape { at: 1 })
        );
        assert_eq!(
            decode_key("%+1"),
            Err(KeyDecodeError::InvalidEscape { at: 0 })
        );
        assert_eq!(decode_key("%C3"), Err(KeyDecodeError::InvalidUtf8));
        assert_eq!(decode_key("%FF%FE"), Err(KeyDecodeError::InvalidUtf8));
        assert_eq!(
            KeyDecodeError::InvalidEscape { at: 3 }.to_string(),
            "invalid percent escape at byte 3"
        );
    }

    #[test]
    fn sequencer_examples() {
        use Ordering::*;
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Less
        );
        assert_eq!(
            sequencer_cmp("0055aed6dcd90281e5", "0055AED6DCD90281E5"),
            Equal
        );
        // Right-padding, not numeric comparison: "1" is "10", above "0F".
        assert_eq!(sequencer_cmp("1", "0F"), Greater);
        assert_eq!(sequencer_cmp("A", "A0"), Equal);
        assert_eq!(sequencer_cmp("A", "A1"), Less);
        assert_eq!(sequencer_cmp("", "00"), Equal);
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E500"),
            Equal
        );
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E501"),
            Less
        );
    }

    fn hex(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[0-9a-fA-F]{{0,{max}}}")).unwrap()
    }

    proptest! {
        #[test]
        fn key_encoding_round_trips(key in "\\PC{0,40}") {
            prop_assert_eq!(decode_key(&encode(&key)).unwrap(), key);
        }

        #[test]
        fn decode_never_panics(raw in "[%+a-zA-Z0-9\u{e7}]{0,30}") {
            let _ = decode_key(&raw);
        }

        #[test]
        fn equal_length_order_is_plain_and_survives_padding(
            (a, b) in (1usize..24).prop_flat_map(|n| {
                let s = || proptest::string::string_regex(&format!("[0-9a-fA-F]{{{n}}}")).unwrap();
                (s(), s())
            }),
            pad_a in 0usize..6,
            pad_b in 0usize..6,
        ) {
            let plain = a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase());
            prop_assert_eq!(sequencer_cmp(&a, &b), plain);
            let a_padded = format!("{a}{}", "0".repeat(pad_a));
            let b_padded = format!("{b}{}", "0".repeat(pad_b));
            prop_assert_eq!(sequencer_cmp(&a_padded, &b_padded), plain);
            prop_assert_eq!(sequencer_cmp(&a_padded, &b), plain);
        }

        #[test]
        fn cmp_is_a_total_order(a in hex(12), b in hex(12), c in hex(12)) {
            prop_assert_eq!(sequencer_cmp(&a, &a), Ordering::Equal);
            prop_assert_eq!(sequencer_cmp(&a, &b), sequencer_cmp(&b, &a).reverse());
            let mut sorted = [&a, &b, &c];
            sorted.sort_by(|x, y| sequencer_cmp(x, y));
            let [x, y, z] = sorted;
            // Transitivity: after sorting, the ends are in order too.
            prop_assert_ne!(sequencer_cmp(x, y), Ordering::Greater);
            prop_assert_ne!(sequencer_cmp(y, z), Ordering::Greater);
            prop_assert_ne!(sequencer_cmp(x, z), Ordering::Greater);
            if sequencer_cmp(&a, &b).is_le() && sequencer_cmp(&b, &c).is_le() {
                prop_assert!(sequencer_cmp(&a, &c).is_le());
            }
            if sequencer_cmp(&a, &b).is_eq() && sequencer_cmp(&b, &c).is_eq() {
                prop_assert!(sequencer_cmp(&a, &c).is_eq());
            }
        }
    }
}
