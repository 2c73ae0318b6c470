//! Meta Graph API errors: the error body, what a failed send means (retry
//! later, give the message up, or stop sending from the number), the retry
//! delay, and a number's status after a check.
//!
//! Meta asks integrators to decide on the error `code` (and `details`),
//! not on the HTTP status, the subcode or the title, which change. The HTTP
//! status only decides when there is no code to read (an empty or foreign
//! body, a gateway error) or the code is not one of [`KnownCode`].

use serde::{Deserialize, Deserializer, Serialize};

use super::store::NumberStatus;

/// The longest delay SQS accepts on a message, in seconds.
pub const SQS_MAX_DELAY_SECS: u32 = 900;
/// Wait after the first throttled attempt; each further one doubles it.
/// Meta allows about one message every 6 seconds to one recipient
/// (131056), so the first wait is longer than that.
pub const FIRST_RETRY_DELAY_SECS: u32 = 10;
/// A message is given up (recorded `failed`) when its last attempt is
/// still throttled: ten attempts span about 51 minutes.
pub const MAX_SEND_ATTEMPTS: u32 = 10;

/// Meta's error body: `{"error": {…}}`. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorBody {
    pub error: GraphError,
}

/// The `error` object of a Graph API answer, e.g.
///
/// ```json
/// {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
///   "code": 130429, "error_subcode": 2494055,
///   "error_data": {"messaging_product": "whatsapp",
///     "details": "Message failed to send because there were too many messages sent from this phone number in a short period of time"},
///   "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphError {
    /// The code and its title: `(#130429) Rate limit hit`.
    #[serde(default, deserialize_with = "string_or_null")]
    pub message: String,
    /// `OAuthException`, `GraphMethodException`, …
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub kind: Option<String>,
    /// What to decide on.
    pub code: i64,
    /// Deprecated by Meta (absent from v16.0 on for Cloud API errors) but
    /// still sent by Graph for generic errors (`100` / `33`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub error_subcode: Option<i64>,
    /// An object for messaging errors; the template API may send a plain
    /// string, kept as `details`; anything else is ignored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "error_data"
    )]
    pub error_data: Option<ErrorData>,
    /// Quoted to Meta's support.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub fbtrace_id: Option<String>,
}

/// `error.error_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// Always `whatsapp` for Cloud API answers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub messaging_product: Option<String>,
    /// Why the error most likely happened, sometimes how to fix it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub details: Option<String>,
}

/// `null` or a value of the wrong type is `None`, not a parse failure: an
/// error body is read to decide, and a stray field must not hide its code.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

fn string_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    lenient::<D, String>(deserializer).map(Option::unwrap_or_default)
}

fn error_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ErrorData>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(details) => Some(ErrorData {
            messaging_product: None,
            details: Some(details),
        }),
        value @ serde_json::Value::Object(_) => serde_json::from_value(value).ok(),
        _ => None,
    })
}

impl GraphError {
    /// The `error` of a Graph answer's body, when it is Meta's error shape.
    pub fn parse(body: &[u8]) -> Option<GraphError> {
        serde_json::from_slice::<GraphErrorBody>(body)
            .ok()
            .map(|b| b.error)
    }

    pub fn details(&self) -> Option<&str> {
        self.error_data.as_ref()?.details.as_deref()
    }

    pub fn known(&self) -> Option<KnownCode> {
        KnownCode::from_code(self.code)
    }
}

/// The Cloud API error codes nuvem acts on, with their meaning in Meta's
/// "WhatsApp Cloud API error codes" reference. The code decides, not the
/// HTTP status (Meta's table gives 429 for the throttling codes and 403 for
/// `368`, but copies of it disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownCode {
    // Throttling: back off and retry.
    /// `4` API Too Many Calls: the app has reached its Graph API call rate
    /// limit. Try again later.
    ApiTooManyCalls,
    /// `80007` Rate limit issues: the WhatsApp Business Account has reached
    /// its rate limit. Try again later.
    WabaRateLimit,
    /// `130429` Rate limit hit: Cloud API message throughput of the number
    /// has been reached (too many messages from this phone number in a
    /// short time). Try again later.
    RateLimitHit,
    /// `131056` (Business Account, Consumer Account) pair rate limit hit:
    /// too many messages from the sending number to the same recipient in
    /// a short time (about one every 6 seconds is allowed). Other
    /// recipients are not affected; wait and retry this one.
    PairRateLimitHit,

    // This message cannot be sent: failed, not retried.
    /// `131047` Re-engagement message: more than 24 hours have passed since
    /// the recipient last replied to the sender number; only a template
    /// may be sent until the customer writes again.
    ReEngagementRequired,
    /// `131026` Message undeliverable: the recipient is not a WhatsApp user,
    /// has not accepted the current terms and privacy policy, uses an old
    /// WhatsApp version, or cannot receive this kind of message.
    MessageUndeliverable,
    /// `131048` Spam rate limit hit: Meta restricts how many messages the
    /// number may send because too many earlier ones were blocked or
    /// flagged as spam (see the number's quality rating).
    SpamRateLimitHit,
    /// `131049` Meta chose not to deliver the message, to maintain healthy
    /// ecosystem engagement (a per-user limit on marketing messages). Meta
    /// advises against resending at once.
    EcosystemEngagement,
    /// `130472` The user's number is part of an experiment: Meta's
    /// marketing-message experiment withheld the message.
    UserInExperiment,

    // The number cannot send at all: mark it `error`.
    /// `190` Access token has expired (or was invalidated, or lost its
    /// permission): HTTP 401. A new token must be saved for the number.
    AccessTokenExpired,
    /// `368` Temporarily blocked for policies violations: the WhatsApp
    /// Business Account has been restricted or disabled for violating a
    /// platform policy.
    TemporarilyBlocked,
}

impl KnownCode {
    pub const ALL: [KnownCode; 11] = [
        KnownCode::ApiTooManyCalls,
        KnownCode::WabaRateLimit,
        KnownCode::RateLimitHit,
        KnownCode::PairRateLimitHit,
        KnownCode::ReEngagementRequired,
        KnownCode::MessageUndeliverable,
        KnownCode::SpamRateLimitHit,
        KnownCode::EcosystemEngagement,
        KnownCode::UserInExperiment,
        KnownCode::AccessTokenExpired,
        KnownCode::TemporarilyBlocked,
    ];

    pub fn code(self) -> i64 {
        match self {
            KnownCode::ApiTooManyCalls => 4,
            KnownCode::WabaRateLimit => 80007,
            KnownCode::RateLimitHit => 130429,
            KnownCode::PairRateLimitHit => 131056,
            KnownCode::ReEngagementRequired => 131047,
            KnownCode::MessageUndeliverable => 131026,
            KnownCode::SpamRateLimitHit => 131048,
            KnownCode::EcosystemEngagement => 131049,
            KnownCode::UserInExperiment => 130472,
            KnownCode::AccessTokenExpired => 190,
            KnownCode::TemporarilyBlocked => 368,
        }
    }

    pub fn from_code(code: i64) -> Option<KnownCode> {
        KnownCode::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn verdict(self) -> SendVerdict {
        match self {
            KnownCode::ApiTooManyCalls
            | KnownCode::WabaRateLimit
            | KnownCode::RateLimitHit
            | KnownCode::PairRateLimitHit => SendVerdict::Retry,
            KnownCode::ReEngagementRequired
            | KnownCode::MessageUndeliverable
            | KnownCode::SpamRateLimitHit
            | KnownCode::EcosystemEngagement
            | KnownCode::UserInExperiment => SendVerdict::Failed,
            KnownCode::AccessTokenExpired | KnownCode::TemporarilyBlocked => {
                SendVerdict::NumberError
            }
        }
    }
}

/// What a Graph call that did not succeed came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFailure<'a> {
    /// A non-2xx answer; `error` is its body when it is Meta's error shape.
    Response {
        status: u16,
        error: Option<&'a GraphError>,
    },
    /// No answer within the client's timeout.
    Timeout,
    /// Connection refused or reset, DNS or TLS failure.
    Network,
}

/// What a failed send means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendVerdict {
    /// Throttled or unavailable: send again after [`retry_delay_secs`].
    Retry,
    /// This message cannot be sent: record it `failed` with Meta's code
    /// and message; do not retry.
    Failed,
    /// The number cannot send: mark it `error` ([`number_status`]), send
    /// nothing more from it and emit `whatsapp.number.status_changed`.
    NumberError,
}

/// HTTP statuses worth retrying when the body names no known code: request
/// timeout, too many requests, and every server error.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Judges a failed send: a [`KnownCode`] decides; otherwise a 408, 429,
/// 5xx, timeout or network failure is retried and anything else (an
/// unknown code with a 4xx, a 4xx without a body) fails the message.
///
/// A timeout is retried although Meta may have sent the message; the
/// sender's claim on the message keeps that to one more Graph call.
pub fn classify(failure: &GraphFailure<'_>) -> SendVerdict {
    match *failure {
        GraphFailure::Timeout | GraphFailure::Network => SendVerdict::Retry,
        GraphFailure::Response { status, error } => match error.and_then(GraphError::known) {
            Some(known) => known.verdict(),
            None if retryable_status(status) => SendVerdict::Retry,
            None => SendVerdict::Failed,
        },
    }
}

/// The SQS delay before attempt `attempt + 1`, `attempt` being the 1-based
/// number of the attempt just throttled (0 counts as 1): 10 s, doubling,
/// at most [`SQS_MAX_DELAY_SECS`] (10, 20, 40, … 640, 900, 900…).
pub fn retry_delay_secs(attempt: u32) -> u32 {
    let doublings = attempt.saturating_sub(1).min(31);
    let delay = u64::from(FIRST_RETRY_DELAY_SECS) << doublings;
    u32::try_from(delay.min(u64::from(SQS_MAX_DELAY_SECS))).unwrap_or(SQS_MAX_DELAY_SECS)
}

/// What the sender does after attempt `attempt` (1-based) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStep {
    /// Queue the message again with this SQS delay, in seconds.
    RetryAfter(u32),
    /// Record the message `failed`.
    GiveUp,
    /// Record the message `failed` and mark the number `error`.
    StopNumber,
}

/// The step after a failed attempt: retryable failures come back after
/// [`retry_delay_secs`] until [`MAX_SEND_ATTEMPTS`], then give up.
pub fn next_step(attempt: u32, verdict: SendVerdict) -> SendStep {
    match verdict {
        SendVerdict::Retry if attempt < MAX_SEND_ATTEMPTS => {
            SendStep::RetryAfter(retry_delay_secs(attempt))
        }
        SendVerdict::Retry | SendVerdict::Failed => SendStep::GiveUp,
        SendVerdict::NumberError => SendStep::StopNumber,
    }
}

/// The number's status once a send failed with `error` (a
/// [`SendVerdict::NumberError`]).
pub fn number_status(error: &GraphError) -> NumberStatus {
    NumberStatus::error(error.code, &error.message)
}

/// Graph's code for "the business phone number has been deleted", and the
/// subcode of `100` for "object does not exist or cannot be loaded".
const DELETED_NUMBER: i64 = 33;
const INVALID_PARAMETER: i64 = 100;

/// A number's status after a check (`GET /{version}/{phone_number_id}` with
/// its token). `Ok` is `connected`. A number Meta no longer has (code 33,
/// code 100 with subcode 33, or a 404) is `disconnected`. A throttled or
/// unavailable Graph API says nothing about the number: `None`, keep the
/// status and check later. Any other refusal is `error` with Meta's code and
/// message (the HTTP status stands in for a missing body).
pub fn status_after_check(result: Result<(), &GraphFailure<'_>>) -> Option<NumberStatus> {
    let failure = match result {
        Ok(()) => return Some(NumberStatus::Connected),
        Err(failure) => failure,
    };
    let GraphFailure::Response { status, error } = *failure else {
        return None;
    };
    match error {
        Some(e)
            if e.code == DELETED_NUMBER
                || (e.code == INVALID_PARAMETER && e.error_subcode == Some(DELETED_NUMBER)) =>
        {
            Some(NumberStatus::Disconnected)
        }
        _ if classify(failure) == SendVerdict::Retry => None,
        Some(e) => Some(number_status(e)),
        None if status == 404 => Some(NumberStatus::Disconnected),
        None => Some(NumberStatus::error(
            i64::from(status),
            &format!("Graph API answered HTTP {status} without an error body"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn error(code: i64) -> GraphError {
        GraphError {
            message: format!("(#{code}) title"),
            kind: Some("OAuthException".into()),
            code,
            error_subcode: None,
            error_data: None,
            fbtrace_id: None,
        }
    }

    fn verdict(status: u16, code: Option<i64>) -> SendVerdict {
        let e = code.map(error);
        classify(&GraphFailure::Response {
            status,
            error: e.as_ref(),
        })
    }

    #[test]
    fn parses_metas_error_body() {
        let body = br#"{"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
            "code": 130429, "error_subcode": 2494055,
            "error_data": {"messaging_product": "whatsapp",
              "details": "Message failed to send because there were too many messages sent from this phone number in a short period of time"},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam", "is_transient": true}, "extra": 1}"#;
        let e = GraphError::parse(body).unwrap();
        assert_eq!(e.code, 130429);
        assert_eq!(e.message, "(#130429) Rate limit hit");
        assert_eq!(e.kind.as_deref(), Some("OAuthException"));
        assert_eq!(e.error_subcode, Some(2494055));
        assert_eq!(
            e.error_data.as_ref().unwrap().messaging_product.as_deref(),
            Some("whatsapp")
        );
        assert!(e.details().unwrap().starts_with("Message failed to send"));
        assert_eq!(e.fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
        assert_eq!(e.known(), Some(KnownCode::RateLimitHit));

        let round = serde_json::to_value(GraphErrorBody { error: e.clone() }).unwrap();
        assert_eq!(round["error"]["type"], "OAuthException");
        assert_eq!(
            serde_json::from_value::<GraphErrorBody>(round)
                .unwrap()
                .error,
            e
        );
    }

    #[test]
    fn parsing_is_lenient() {
        let e = GraphError::parse(br#"{"error": {"code": 190}}"#).unwrap();
        assert_eq!((e.code, e.message.as_str(), e.details()), (190, "", None));
        let e = GraphError::parse(
            br#"{"error": {"code": 100, "message": null, "type": 5, "error_subcode": "x",
                "error_data": "Invalid parameter", "fbtrace_id": null}}"#,
        )
        .unwrap();
        assert_eq!(e.code, 100);
        assert_eq!(e.kind, None);
        assert_eq!(e.error_subcode, None);
        assert_eq!(e.details(), Some("Invalid parameter"));
        let e = GraphError::parse(br#"{"error": {"code": 1, "error_data": [1, 2]}}"#).unwrap();
        assert_eq!(e.error_data, None);
        let e =
            GraphError::parse(br#"{"error": {"code": 1, "error_data": {"details": 7}}}"#).unwrap();
        assert_eq!(e.error_data, Some(ErrorData::default()));

        for not_meta in [
            &b""[..],
            b"<html>502 Bad Gateway</html>",
            b"{}",
            b"{\"error\": \"oops\"}",
            b"{\"error\": {\"message\": \"no code\"}}",
            b"{\"error\": {\"code\": \"190\"}}",
        ] {
            assert_eq!(GraphError::parse(not_meta), None);
        }
    }

    #[test]
    fn every_listed_code() {
        for (code, expected) in [
            (130429, SendVerdict::Retry),
            (131056, SendVerdict::Retry),
            (4, SendVerdict::Retry),
            (80007, SendVerdict::Retry),
            (131047, SendVerdict::Failed),
            (131026, SendVerdict::Failed),
            (131048, SendVerdict::Failed),
            (131049, SendVerdict::Failed),
            (130472, SendVerdict::Failed),
            (190, SendVerdict::NumberError),
            (368, SendVerdict::NumberError),
        ] {
            let known = KnownCode::from_code(code).unwrap();
            assert_eq!(known.code(), code);
            assert_eq!(known.verdict(), expected, "{code}");
            // The code decides whatever the HTTP status says.
            for status in [400, 401, 403, 429, 500, 503] {
                assert_eq!(verdict(status, Some(code)), expected, "{code} / {status}");
            }
        }
        assert_eq!(KnownCode::ALL.len(), 11);
        for k in KnownCode::ALL {
            assert_eq!(KnownCode::from_code(k.code()), Some(k));
        }
    }

    #[test]
    fn other_codes_and_bare_statuses() {
        for code in [0, 1, 2, 10, 100, 131000, 131009, 132001, 133010, -1] {
            assert_eq!(KnownCode::from_code(code), None);
            assert_eq!(verdict(400, Some(code)), SendVerdict::Failed, "{code}");
            assert_eq!(verdict(403, Some(code)), SendVerdict::Failed, "{code}");
            assert_eq!(verdict(500, Some(code)), SendVerdict::Retry, "{code}");
            assert_eq!(verdict(503, Some(code)), SendVerdict::Retry, "{code}");
            assert_eq!(verdict(429, Some(code)), SendVerdict::Retry, "{code}");
        }
        for (status, expected) in [
            (400, SendVerdict::Failed),
            (401, SendVerdict::Failed),
            (404, SendVerdict::Failed),
            (408, SendVerdict::Retry),
            (429, SendVerdict::Retry),
            (500, SendVerdict::Retry),
            (502, SendVerdict::Retry),
            (599, SendVerdict::Retry),
            (302, SendVerdict::Failed),
        ] {
            assert_eq!(verdict(status, None), expected, "{status}");
        }
        assert_eq!(classify(&GraphFailure::Timeout), SendVerdict::Retry);
        assert_eq!(classify(&GraphFailure::Network), SendVerdict::Retry);
    }

    #[test]
    fn retry_delays() {
        let delays: Vec<u32> = (1..=10).map(retry_delay_secs).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]);
        assert_eq!(retry_delay_secs(0), 10);
        assert_eq!(retry_delay_secs(u32::MAX), 900);
        let total: u32 = (1..MAX_SEND_ATTEMPTS).map(retry_delay_secs).sum();
        assert_eq!(total, 3070);
    }

    #[test]
    fn steps() {
        assert_eq!(next_step(1, SendVerdict::Retry), SendStep::RetryAfter(10));
        assert_eq!(next_step(9, SendVerdict::Retry), SendStep::RetryAfter(900));
        assert_eq!(next_step(10, SendVerdict::Retry), SendStep::GiveUp);
        assert_eq!(next_step(1, SendVerdict::Failed), SendStep::GiveUp);
        assert_eq!(next_step(1, SendVerdict::NumberError), SendStep::StopNumber);
        assert_eq!(
            next_step(50, SendVerdict::NumberError),
            SendStep::StopNumber
        );
    }

    #[test]
    fn number_error_status_keeps_metas_code_and_message() {
        let e = GraphError::parse(
            json!({"error": {"message": "Error validating access token: Session has expired",
                "type": "OAuthException", "code": 190, "error_subcode": 463}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            e.known().map(KnownCode::verdict),
            Some(SendVerdict::NumberError)
        );
        assert_eq!(
            number_status(&e),
            NumberStatus::Error {
                code: 190,
                message: "Error validating access token: Session has expired".into()
            }
        );
    }

    #[test]
    fn check_outcomes() {
        let check = |status: u16, e: Option<GraphError>| {
            status_after_check(Err(&GraphFailure::Response {
                status,
                error: e.as_ref(),
            }))
        };
        assert_eq!(status_after_check(Ok(())), Some(NumberStatus::Connected));
        assert_eq!(
            check(401, Some(error(190))),
            Some(number_status(&error(190)))
        );
        assert_eq!(
            check(403, Some(error(368))),
            Some(number_status(&error(368)))
        );
        assert_eq!(check(403, Some(error(10))), Some(number_status(&error(10))));
        assert_eq!(
            check(400, Some(error(33))),
            Some(NumberStatus::Disconnected)
        );
        let mut missing = error(100);
        missing.error_subcode = Some(33);
        assert_eq!(check(400, Some(missing)), Some(NumberStatus::Disconnected));
        assert_eq!(
            check(400, Some(error(100))),
            Some(number_status(&error(100)))
        );
        assert_eq!(check(404, None), Some(NumberStatus::Disconnected));
        assert_eq!(
            check(401, None),
            Some(NumberStatus::Error {
                code: 401,
                message: "Graph API answered HTTP 401 without an error body".into()
            })
        );
        // Throttled or unavailable: the number's status is unknown.
        assert_eq!(check(400, Some(error(4))), None);
        assert_eq!(check(400, Some(error(80007))), None);
        assert_eq!(check(503, None), None);
        assert_eq!(check(500, Some(error(2))), None);
        assert_eq!(status_after_check(Err(&GraphFailure::Timeout)), None);
        assert_eq!(status_after_check(Err(&GraphFailure::Network)), None);
    }

    proptest! {
        #[test]
        fn retry_delay_grows_and_stays_within_sqs(a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(retry_delay_secs(lo) <= retry_delay_secs(hi));
            prop_assert!(retry_delay_secs(hi) <= SQS_MAX_DELAY_SECS);
            prop_assert!(retry_delay_secs(lo) >= FIRST_RETRY_DELAY_SECS);
        }

        #[test]
        fn retry_delay_strictly_grows_until_the_cap(attempt in 1u32..100) {
            let (now, next) = (retry_delay_secs(attempt), retry_delay_secs(attempt + 1));
            prop_assert!(next > now || next == SQS_MAX_DELAY_SECS);
        }

        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = GraphError::parse(&body);
        }
    }
}
