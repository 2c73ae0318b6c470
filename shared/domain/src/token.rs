//! Single-use activation tokens, emailed to a tenant when its account is
//! approved. Only their SHA-256 is stored.

use chrono::{DateTime, Duration, Utc};

use crate::secret::{Secret, is_base62, random_base62, sha256_hex};

pub const TOKEN_PREFIX: &str = "nvm_at_";
/// 43 uniform base62 characters ≈ 256 bits, as much as 32 random bytes.
const PAYLOAD_LEN: usize = 43;
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + PAYLOAD_LEN;

pub const ACTIVATION_TTL: Duration = Duration::days(7);

/// How long after its use a token still answers the key it bought: a
/// client whose answer was lost (a dropped connection, a 5xx after the
/// activation applied) retries and gets the same credential instead of a
/// 422 and an account it cannot enter.
pub const ACTIVATION_REPEAT_WINDOW: Duration = Duration::hours(1);

/// Whether a token used at `used_at` may repeat its answer at `now`.
pub fn repeat_allowed(used_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - used_at <= ACTIVATION_REPEAT_WINDOW
}

/// `nvm_at_` + 43 random base62 characters. Safe in URLs as is.
pub fn generate_activation_token() -> Secret {
    Secret::new(format!("{TOKEN_PREFIX}{}", random_base62(PAYLOAD_LEN)))
}

/// Whether `token` has the shape of a generated token, to refuse garbage
/// before a lookup. Never panics.
pub fn looks_like_activation_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|payload| payload.bytes().all(is_base62))
}

/// Hex SHA-256 of a token; a fast hash suffices for 256 random bits.
pub fn hash_token(token: &str) -> String {
    sha256_hex(token)
}

/// Never panics: a time at the end of chrono's range saturates.
pub fn activation_expires_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_add_signed(ACTIVATION_TTL)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn token_shape() {
        let token = generate_activation_token();
        let t = token.expose();
        assert_eq!(t.len(), 50);
        assert!(t.starts_with("nvm_at_"));
        assert!(looks_like_activation_token(t));
        assert_ne!(generate_activation_token().expose(), t);
        assert_eq!(format!("{token:?}"), "Secret(***)");
        assert!(!looks_like_activation_token(&t[..49]));
        assert!(!looks_like_activation_token(
            &t.replace("nvm_at_", "nvm_sk_")
        ));
        assert!(!looks_like_activation_token(&format!("{}-", &t[..49])));
    }

    #[test]
    fn hash_is_hex_sha256() {
        let hash = hash_token("nvm_at_x");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash_token("nvm_at_x"));
        assert_ne!(hash, hash_token("nvm_at_y"));
    }

    #[test]
    fn expires_after_seven_days() {
        let now = Utc.with_ymd_and_hms(2026, 12, 28, 9, 30, 0).unwrap();
        assert_eq!(
            activation_expires_at(now),
            Utc.with_ymd_and_hms(2027, 1, 4, 9, 30, 0).unwrap()
        );
        assert_eq!(
            activation_expires_at(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn a_used_token_repeats_its_answer_for_an_hour() {
        let used = Utc.with_ymd_and_hms(2026, 12, 28, 9, 30, 0).unwrap();
        assert!(repeat_allowed(used, used));
        assert!(repeat_allowed(used, used + Duration::minutes(60)));
        assert!(!repeat_allowed(used, used + Duration::minutes(61)));
        assert!(!repeat_allowed(used, used + ACTIVATION_TTL));
    }

    proptest! {
        #[test]
        fn shape_check_never_panics(input in "\\PC{0,60}") {
            let _ = looks_like_activation_token(&input);
        }
    }
}
