//! What a delivery attempt's outcome means, and when to try again.

use std::time::Duration;

use chrono::{DateTime, Utc};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// Wait before each attempt; index = attempt number − 1 (attempt 1 goes out
/// immediately). Ten attempts span about 3.2 days.
pub const SCHEDULE: [Duration; 10] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(14 * HOUR),
    Duration::from_secs(20 * HOUR),
    Duration::from_secs(24 * HOUR),
];

pub const MAX_ATTEMPTS: u32 = SCHEDULE.len() as u32;

/// The longest `Retry-After` honoured: a receiver cannot park a delivery
/// for longer than the longest step of the schedule.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * HOUR);

/// An endpoint whose deliveries have failed without a success in between
/// for this long is disabled.
pub const DISABLE_AFTER_FAILING: chrono::Duration = chrono::Duration::days(5);

/// The longest delay SQS accepts on a message.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

/// Share of a scheduled wait that jitter may add or take away, so that
/// deliveries failing together do not all come back at the same moment.
const JITTER: f64 = 0.2;

/// What came back from one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    Status(u16),
    /// No answer within the endpoint's timeout.
    Timeout,
    /// Connection refused or reset, DNS failure, TLS failure.
    Network,
    /// The SSRF guard refused every address the host resolved to.
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// 410 Gone: the receiver says the endpoint no longer exists; disable
    /// it now.
    Gone,
    /// `backoff`: the receiver is overloaded or unavailable (429, 502, 503,
    /// 504, timeout) and its `Retry-After` is honoured.
    Retry {
        backoff: bool,
    },
}

/// Judges one attempt. Redirects are not followed (the signed request would
/// go somewhere nobody checked), so a 3xx is a failure. A blocked address is
/// retried like a network error: the name may later resolve elsewhere, and
/// an endpoint that stays blocked is disabled after
/// [`DISABLE_AFTER_FAILING`].
pub fn verdict(response: &Response) -> Verdict {
    match *response {
        Response::Status(200..=299) => Verdict::Succeeded,
        Response::Status(410) => Verdict::Gone,
        Response::Status(429 | 502 | 503 | 504) | Response::Timeout => {
            Verdict::Retry { backoff: true }
        }
        Response::Status(_) | Response::Network | Response::Blocked => {
            Verdict::Retry { backoff: false }
        }
    }
}

/// A `Retry-After` header value, delta-seconds or an HTTP date, as a wait
/// from `now`: a past date is 0, anything longer is [`RETRY_AFTER_CAP`].
/// `None` when it is neither form.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP));
    }
    // RFC 2822 parsing covers the IMF-fixdate form HTTP uses.
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (date.with_timezone(&Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(RETRY_AFTER_CAP))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Done,
    /// Try again after this wait.
    RetryAfter(Duration),
    /// The last attempt failed: the delivery is given up (dead-lettered).
    Exhausted,
    /// Disable the endpoint (410 Gone).
    Disable,
}

/// What follows attempt number `attempt` (1-based, the one just made).
/// `jitter` is a random value in [-1, 1] that scales the scheduled wait by
/// up to ±20 %; `retry_after` is honoured, up to [`RETRY_AFTER_CAP`], only
/// when the verdict asks for backoff.
pub fn next_step(
    attempt: u32,
    verdict: Verdict,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Next {
    let backoff = match verdict {
        Verdict::Succeeded => return Next::Done,
        Verdict::Gone => return Next::Disable,
        Verdict::Retry { .. } if attempt >= MAX_ATTEMPTS => return Next::Exhausted,
        Verdict::Retry { backoff } => backoff,
    };
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(-1.0, 1.0)
    };
    let scheduled = SCHEDULE[attempt as usize];
    let mut wait = scheduled.mul_f64(1.0 + JITTER * jitter);
    if backoff && let Some(retry_after) = retry_after {
        wait = wait.max(retry_after.min(RETRY_AFTER_CAP));
    }
    Next::RetryAfter(wait)
}

/// Whether an endpoint failing since `failing_since` has failed long enough
/// to be disabled.
pub fn should_disable(failing_since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - failing_since >= DISABLE_AFTER_FAILING
}

/// The SQS `DelaySeconds` for a wait of `remaining`: whole seconds rounded
/// up, at most [`SQS_MAX_DELAY`]. A longer wait is chained: the consumer
/// receives the message early and queues it again until it is due.
pub fn sqs_delay(remaining: Duration) -> u32 {
    let capped = remaining.min(SQS_MAX_DELAY);
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    secs as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const RETRY: Verdict = Verdict::Retry { backoff: false };
    const BACKOFF: Verdict = Verdict::Retry { backoff: true };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap()
    }

    #[test]
    fn verdicts() {
        for (response, expected) in [
            (Response::Status(200), Verdict::Succeeded),
            (Response::Status(204), Verdict::Succeeded),
            (Response::Status(299), Verdict::Succeeded),
            (Response::Status(301), RETRY),
            (Response::Status(308), RETRY),
            (Response::Status(400), RETRY),
            (Response::Status(401), RETRY),
            (Response::Status(404), RETRY),
            (Response::Status(410), Verdict::Gone),
            (Response::Status(429), BACKOFF),
            (Response::Status(500), RETRY),
            (Response::Status(501), RETRY),
            (Response::Status(502), BACKOFF),
            (Response::Status(503), BACKOFF),
            (Response::Status(504), BACKOFF),
            (Response::Status(101), RETRY),
            (Response::Timeout, BACKOFF),
            (Response::Network, RETRY),
            (Response::Blocked, RETRY),
        ] {
            assert_eq!(verdict(&response), expected, "{response:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = now();
        let secs = Duration::from_secs;
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(secs(0)));
        assert_eq!(
            parse_retry_after("999999999999999999999999", now),
            Some(RETRY_AFTER_CAP)
        );
        assert_eq!(parse_retry_after("90000", now), Some(RETRY_AFTER_CAP));
        assert_eq!(
            parse_retry_after("Wed, 01 Jul 2026 10:05:00 GMT", now),
            Some(secs(300))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 Jul 2026 09:00:00 GMT", now),
            Some(secs(0))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2027 00:00:00 GMT", now),
            Some(RETRY_AFTER_CAP)
        );
        for bad in ["", "-5", "1.5", "soon", "2026-07-01T10:05:00Z"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn schedule_steps() {
        assert_eq!(next_step(1, Verdict::Succeeded, None, 0.0), Next::Done);
        assert_eq!(next_step(10, Verdict::Succeeded, None, 0.0), Next::Done);
        assert_eq!(next_step(3, Verdict::Gone, None, 0.0), Next::Disable);
        assert_eq!(
            next_step(1, RETRY, None, 0.0),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(1, RETRY, None, 1.0),
            Next::RetryAfter(Duration::from_secs(6))
        );
        assert_eq!(
            next_step(1, RETRY, None, -1.0),
            Next::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(
            next_step(2, RETRY, None, 0.0),
            Next::RetryAfter(Duration::from_secs(300))
        );
        assert_eq!(
            next_step(9, RETRY, None, 0.0),
            Next::RetryAfter(Duration::from_secs(24 * HOUR))
        );
        assert_eq!(next_step(10, RETRY, None, 0.0), Next::Exhausted);
        assert_eq!(
            next_step(10, BACKOFF, Some(Duration::ZERO), 0.0),
            Next::Exhausted
        );
        // Retry-After only counts for backoff verdicts, and only upward.
        let hour = Duration::from_secs(HOUR);
        assert_eq!(
            next_step(1, RETRY, Some(hour), 0.0),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(1, BACKOFF, Some(hour), 0.0),
            Next::RetryAfter(hour)
        );
        assert_eq!(
            next_step(9, BACKOFF, Some(hour), 0.0),
            Next::RetryAfter(Duration::from_secs(24 * HOUR))
        );
        assert_eq!(
            next_step(1, BACKOFF, Some(Duration::from_secs(100 * HOUR)), 0.0),
            Next::RetryAfter(RETRY_AFTER_CAP)
        );
        assert_eq!(
            next_step(1, RETRY, None, f64::NAN),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(1, RETRY, None, 7.0),
            Next::RetryAfter(Duration::from_secs(6))
        );
    }

    #[test]
    fn disable_after_five_days_failing() {
        let now = now();
        assert!(!should_disable(
            now - chrono::Duration::days(5) + chrono::Duration::seconds(1),
            now
        ));
        assert!(should_disable(now - chrono::Duration::days(5), now));
        assert!(should_disable(now - chrono::Duration::days(30), now));
        assert!(!should_disable(now + chrono::Duration::days(1), now));
    }

    #[test]
    fn sqs_delays() {
        assert_eq!(sqs_delay(Duration::ZERO), 0);
        assert_eq!(sqs_delay(Duration::from_millis(1)), 1);
        assert_eq!(sqs_delay(Duration::from_millis(5_000)), 5);
        assert_eq!(sqs_delay(Duration::from_millis(5_001)), 6);
        assert_eq!(sqs_delay(Duration::from_secs(899)), 899);
        assert_eq!(sqs_delay(Duration::from_millis(899_500)), 900);
        assert_eq!(sqs_delay(Duration::from_secs(900)), 900);
        assert_eq!(sqs_delay(Duration::from_secs(24 * HOUR)), 900);
        assert_eq!(sqs_delay(Duration::MAX), 900);
    }

    fn any_verdict() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::Succeeded),
            Just(Verdict::Gone),
            any::<bool>().prop_map(|backoff| Verdict::Retry { backoff }),
        ]
    }

    proptest! {
        #[test]
        fn waits_stay_within_the_schedule(
            attempt in 1u32..=12,
            verdict in any_verdict(),
            retry_after in proptest::option::of(0u64..200_000),
            jitter in -1.0f64..=1.0,
        ) {
            let retry_after = retry_after.map(Duration::from_secs);
            let next = next_step(attempt, verdict, retry_after, jitter);
            match verdict {
                Verdict::Succeeded => prop_assert_eq!(next, Next::Done),
                Verdict::Gone => prop_assert_eq!(next, Next::Disable),
                Verdict::Retry { .. } if attempt >= MAX_ATTEMPTS => {
                    prop_assert_eq!(next, Next::Exhausted)
                }
                Verdict::Retry { backoff } => {
                    let Next::RetryAfter(wait) = next else {
                        return Err(TestCaseError::fail(format!("{next:?}")));
                    };
                    let scheduled = SCHEDULE[attempt as usize].as_secs_f64();
                    let wait = wait.as_secs_f64();
                    let tolerance = 1e-6;
                    match retry_after.filter(|_| backoff) {
                        Some(ra) => {
                            let ra = ra.min(RETRY_AFTER_CAP).as_secs_f64();
                            prop_assert!(wait + tolerance >= ra);
                            prop_assert!(wait + tolerance >= scheduled * 0.8);
                            prop_assert!(wait <= ra.max(scheduled * 1.2) + tolerance);
                        }
                        None => {
                            prop_assert!(wait + tolerance >= scheduled * 0.8);
                            prop_assert!(wait <= scheduled * 1.2 + tolerance);
                        }
                    }
                    prop_assert!(wait <= RETRY_AFTER_CAP.as_secs_f64() + scheduled * 1.2 + tolerance);
                }
            }
        }

        #[test]
        fn failing_forever_gives_up_after_exactly_ten_attempts(
            backoff in any::<bool>(),
            jitter in -1.0f64..=1.0,
        ) {
            let mut attempt = 1;
            while let Next::RetryAfter(_) = next_step(attempt, Verdict::Retry { backoff }, None, jitter) {
                attempt += 1;
            }
            prop_assert_eq!(attempt, MAX_ATTEMPTS);
            prop_assert_eq!(next_step(attempt, Verdict::Retry { backoff }, None, jitter), Next::Exhausted);
        }

        #[test]
        fn sqs_delay_never_exceeds_the_limit(millis in any::<u64>()) {
            let d = sqs_delay(Duration::from_millis(millis));
            prop_assert!(d <= 900);
            prop_assert!(u64::from(d) * 1000 >= millis.min(900_000));
        }

        #[test]
        fn retry_after_never_panics(value in "\\PC{0,40}") {
            let _ = parse_retry_after(&value, now());
        }
    }
}
