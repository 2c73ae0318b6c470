//! Whether the bot answers an inbound message: the customer-service window,
//! the store's switch, the reply limit and the hand-off to a person.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use super::status::CUSTOMER_SERVICE_WINDOW;
use super::status::window_open;

/// Whether free-form messages may be sent at `now` to a customer who last
/// wrote at `last_customer_message_at` (`None`: never), by
/// [`window_open`]'s rule (Meta refuses with 131047 after 24 hours).
pub fn within_window(last_customer_message_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_customer_message_at.is_some_and(|last| window_open(last, now))
}

/// The oldest time the bot reads and counts its replies from, for a
/// context window of `context_minutes`.
pub fn context_start(now: DateTime<Utc>, context_minutes: u32) -> DateTime<Utc> {
    now - Duration::minutes(i64::from(context_minutes))
}

/// What is known when an inbound message reaches the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyInput {
    /// The store's bot switch.
    pub bot_enabled: bool,
    /// The message carries text for the bot: a text, or an interactive or
    /// button reply read as its text. Statuses, reactions, system messages
    /// and media without a caption do not.
    pub has_text: bool,
    /// When the customer last wrote (this message included).
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// Bot replies already sent in this conversation within the context
    /// window ([`context_start`]).
    pub replies_in_context: u32,
    /// The store's `message_limit`.
    pub message_limit: u32,
    /// The conversation has been handed to a person and not yet resumed.
    pub needs_human: bool,
}

/// Why the bot stays silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Nothing for the bot to read.
    NoText,
    /// More than 24 hours since the customer wrote: nothing free-form may
    /// be sent, the fallback text included.
    OutsideWindow,
    /// A person has the conversation (and was told once already).
    NeedsHuman,
}

/// Why the conversation goes to a person. Carried by
/// `whatsapp.conversation.handoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The bot has sent `message_limit` replies within the context window.
    LimitReached,
    /// The store's bot is switched off.
    BotDisabled,
    /// The model failed after its retries (decided by the caller, see
    /// [`after_model_failure`]).
    ModelFailed,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoText => "no_text",
            SkipReason::OutsideWindow => "outside_window",
            SkipReason::NeedsHuman => "needs_human",
        }
    }
}

impl HandoffReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::LimitReached => "limit_reached",
            HandoffReason::BotDisabled => "bot_disabled",
            HandoffReason::ModelFailed => "model_failed",
        }
    }
}

/// What to do with an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotDecision {
    /// Ask the model and send its answer.
    Reply,
    /// Do nothing.
    Skip(SkipReason),
    /// Mark the conversation `needs_human`, send the fallback text once and
    /// emit `whatsapp.conversation.handoff`.
    Handoff(HandoffReason),
}

/// Decides in this order: no text, outside the window, already with a
/// person → skip; bot disabled, limit reached → hand off (once: a
/// conversation already `needs_human` is skipped before); otherwise reply.
pub fn decide(input: &ReplyInput) -> BotDecision {
    if !input.has_text {
        return BotDecision::Skip(SkipReason::NoText);
    }
    if !within_window(input.last_customer_message_at, input.now) {
        return BotDecision::Skip(SkipReason::OutsideWindow);
    }
    if input.needs_human {
        return BotDecision::Skip(SkipReason::NeedsHuman);
    }
    if !input.bot_enabled {
        return BotDecision::Handoff(HandoffReason::BotDisabled);
    }
    if input.replies_in_context >= input.message_limit {
        return BotDecision::Handoff(HandoffReason::LimitReached);
    }
    BotDecision::Reply
}

/// After the model failed for good on a message [`decide`] said to reply
/// to: hand off, unless a person took the conversation meanwhile or the
/// window closed while the model was retried.
pub fn after_model_failure(
    needs_human: bool,
    last_customer_message_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> BotDecision {
    if !within_window(last_customer_message_at, now) {
        BotDecision::Skip(SkipReason::OutsideWindow)
    } else if needs_human {
        BotDecision::Skip(SkipReason::NeedsHuman)
    } else {
        BotDecision::Handoff(HandoffReason::ModelFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap()
    }

    fn input() -> ReplyInput {
        ReplyInput {
            bot_enabled: true,
            has_text: true,
            last_customer_message_at: Some(now()),
            now: now(),
            replies_in_context: 0,
            message_limit: 30,
            needs_human: false,
        }
    }

    #[test]
    fn window() {
        let now = now();
        assert!(within_window(Some(now), now));
        assert!(within_window(Some(now - Duration::hours(23)), now));
        assert!(within_window(
            Some(now - CUSTOMER_SERVICE_WINDOW + Duration::seconds(1)),
            now
        ));
        assert!(!within_window(Some(now - CUSTOMER_SERVICE_WINDOW), now));
        assert!(!within_window(Some(now - Duration::days(3)), now));
        assert!(!within_window(None, now));
        assert!(within_window(Some(now + Duration::seconds(5)), now));
        assert_eq!(context_start(now, 60), now - Duration::hours(1));
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(&input()), BotDecision::Reply);
        assert_eq!(
            decide(&ReplyInput {
                has_text: false,
                ..input()
            }),
            BotDecision::Skip(SkipReason::NoText)
        );
        assert_eq!(
            decide(&ReplyInput {
                last_customer_message_at: Some(now() - Duration::hours(25)),
                ..input()
            }),
            BotDecision::Skip(SkipReason::OutsideWindow)
        );
        assert_eq!(
            decide(&ReplyInput {
                last_customer_message_at: None,
                ..input()
            }),
            BotDecision::Skip(SkipReason::OutsideWindow)
        );
        assert_eq!(
            decide(&ReplyInput {
                needs_human: true,
                ..input()
            }),
            BotDecision::Skip(SkipReason::NeedsHuman)
        );
        assert_eq!(
            decide(&ReplyInput {
                bot_enabled: false,
                ..input()
            }),
            BotDecision::Handoff(HandoffReason::BotDisabled)
        );
        assert_eq!(
            decide(&ReplyInput {
                replies_in_context: 29,
                ..input()
            }),
            BotDecision::Reply
        );
        assert_eq!(
            decide(&ReplyInput {
                replies_in_context: 30,
                ..input()
            }),
            BotDecision::Handoff(HandoffReason::LimitReached)
        );
        assert_eq!(
            decide(&ReplyInput {
                replies_in_context: 31,
                ..input()
            }),
            BotDecision::Handoff(HandoffReason::LimitReached)
        );
    }

    #[test]
    fn handoff_happens_once() {
        for handoff in [
            ReplyInput {
                bot_enabled: false,
                ..input()
            },
            ReplyInput {
                replies_in_context: 30,
                ..input()
            },
        ] {
            assert!(matches!(decide(&handoff), BotDecision::Handoff(_)));
            let after = ReplyInput {
                needs_human: true,
                ..handoff
            };
            assert_eq!(decide(&after), BotDecision::Skip(SkipReason::NeedsHuman));
        }
        // No text: no hand-off either, even with the bot off.
        assert_eq!(
            decide(&ReplyInput {
                bot_enabled: false,
                has_text: false,
                ..input()
            }),
            BotDecision::Skip(SkipReason::NoText)
        );
    }

    #[test]
    fn model_failure() {
        let now = now();
        assert_eq!(
            after_model_failure(false, Some(now), now),
            BotDecision::Handoff(HandoffReason::ModelFailed)
        );
        assert_eq!(
            after_model_failure(true, Some(now), now),
            BotDecision::Skip(SkipReason::NeedsHuman)
        );
        assert_eq!(
            after_model_failure(false, Some(now - Duration::days(2)), now),
            BotDecision::Skip(SkipReason::OutsideWindow)
        );
    }

    #[test]
    fn reasons_serialize_as_their_names() {
        for r in [
            HandoffReason::LimitReached,
            HandoffReason::BotDisabled,
            HandoffReason::ModelFailed,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for r in [
            SkipReason::NoText,
            SkipReason::OutsideWindow,
            SkipReason::NeedsHuman,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    fn any_input() -> impl Strategy<Value = ReplyInput> {
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(-200_000i64..200_000),
            0u32..600,
            1u32..=500,
            any::<bool>(),
        )
            .prop_map(
                |(bot_enabled, has_text, ago_secs, replies, limit, needs_human)| ReplyInput {
                    bot_enabled,
                    has_text,
                    last_customer_message_at: ago_secs.map(|s| now() - Duration::seconds(s)),
                    now: now(),
                    replies_in_context: replies,
                    message_limit: limit,
                    needs_human,
                },
            )
    }

    proptest! {
        #[test]
        fn never_replies_outside_the_window_or_to_a_human_conversation(input in any_input()) {
            let decision = decide(&input);
            if !within_window(input.last_customer_message_at, input.now) || input.needs_human {
                prop_assert!(matches!(decision, BotDecision::Skip(_)), "{:?}", decision);
            }
            if decision == BotDecision::Reply {
                prop_assert!(input.has_text && input.bot_enabled && !input.needs_human);
                prop_assert!(input.replies_in_context < input.message_limit);
                prop_assert!(within_window(input.last_customer_message_at, input.now));
            }
            if let BotDecision::Handoff(_) = decision {
                prop_assert!(!input.needs_human && input.has_text);
            }
        }
    }
}
