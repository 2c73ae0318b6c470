//! The verification request Meta sends when a webhook URL is configured:
//! `GET ?hub.mode=subscribe&hub.verify_token=<ours>&hub.challenge=<n>`,
//! answered with the challenge as the body when the token is ours.
//!
//! Anything else gets no challenge back (the caller answers 403), so the
//! endpoint never reflects arbitrary input.

use subtle::ConstantTimeEq;

/// Longest challenge echoed back. Meta's are short decimal numbers; the
/// bound keeps the endpoint from echoing large attacker-chosen input.
pub const MAX_CHALLENGE_LEN: usize = 256;

/// The three query parameters of the handshake, as received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeQuery<'a> {
    pub mode: Option<&'a str>,
    pub verify_token: Option<&'a str>,
    pub challenge: Option<&'a str>,
    /// One of the three parameters appeared more than once: ambiguous, so
    /// the handshake is refused.
    pub repeated: bool,
}

impl<'a> HandshakeQuery<'a> {
    /// Picks `hub.mode`, `hub.verify_token` and `hub.challenge` out of
    /// decoded query pairs; other parameters are ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HandshakeQuery<'a> {
        let mut query = HandshakeQuery::default();
        for (name, value) in pairs {
            let slot = match name {
                "hub.mode" => &mut query.mode,
                "hub.verify_token" => &mut query.verify_token,
                "hub.challenge" => &mut query.challenge,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                query.repeated = true;
            }
        }
        query
    }

    /// The challenge to answer with, or `None` (answer 403).
    pub fn answer(&self, configured_token: &str) -> Option<&'a str> {
        if self.repeated {
            return None;
        }
        answer(
            self.mode,
            self.verify_token,
            self.challenge,
            configured_token,
        )
    }
}

/// `Some(challenge)` only when `mode` is `subscribe`, `verify_token` equals
/// `configured_token` (compared in constant time; an empty configured token
/// never matches) and the challenge is plausible: 1 to
/// [`MAX_CHALLENGE_LEN`] characters from the URL-unreserved set
/// (`A-Z a-z 0-9 - . _ ~`), which covers Meta's numeric challenges and
/// keeps markup or control characters out of the response.
pub fn answer<'a>(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'a str>,
    configured_token: &str,
) -> Option<&'a str> {
    if mode != Some("subscribe") || configured_token.is_empty() {
        return None;
    }
    let token = verify_token?;
    if !bool::from(token.as_bytes().ct_eq(configured_token.as_bytes())) {
        return None;
    }
    challenge.filter(|c| plausible_challenge(c))
}

fn plausible_challenge(challenge: &str) -> bool {
    (1..=MAX_CHALLENGE_LEN).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "meu-token-de-verificacao";

    fn query<'a>(pairs: &[(&'a str, &'a str)]) -> HandshakeQuery<'a> {
        HandshakeQuery::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn answers_the_challenge_to_a_subscribe_with_our_token() {
        let q = query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", TOKEN),
            ("other", "ignored"),
        ]);
        assert_eq!(q.answer(TOKEN), Some("1158201444"));
    }

    #[test]
    fn refuses_a_wrong_or_missing_token() {
        for token in [
            None,
            Some(""),
            Some("meu-token"),
            Some("MEU-TOKEN-DE-VERIFICACAO"),
        ] {
            assert_eq!(answer(Some("subscribe"), token, Some("1"), TOKEN), None);
        }
    }

    #[test]
    fn refuses_another_mode() {
        for mode in [None, Some(""), Some("unsubscribe"), Some("Subscribe")] {
            assert_eq!(answer(mode, Some(TOKEN), Some("1"), TOKEN), None);
        }
    }

    #[test]
    fn an_empty_configured_token_never_matches() {
        assert_eq!(answer(Some("subscribe"), Some(""), Some("1"), ""), None);
    }

    #[test]
    fn refuses_empty_long_or_odd_challenges() {
        let long = "9".repeat(MAX_CHALLENGE_LEN + 1);
        let longest = "9".repeat(MAX_CHALLENGE_LEN);
        assert_eq!(
            answer(Some("subscribe"), Some(TOKEN), Some(&longest), TOKEN),
            Some(longest.as_str())
        );
        for challenge in [
            None,
            Some(""),
            Some(long.as_str()),
            Some("<script>"),
            Some("a b"),
            Some("ä"),
        ] {
            assert_eq!(
                answer(Some("subscribe"), Some(TOKEN), challenge, TOKEN),
                None
            );
        }
    }

    #[test]
    fn refuses_repeated_parameters() {
        let q = query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "guess"),
            ("hub.verify_token", TOKEN),
            ("hub.challenge", "1"),
        ]);
        assert!(q.repeated);
        assert_eq!(q.answer(TOKEN), None);
    }
}
