//! An execution is one attempt of one step of a process: a download or a
//! tax filing run by the outside RPA, or a person's upload. The rules here
//! decide what happens after each thing the RPA says, so that the worker
//! only carries them out:
//!
//! - a technical failure is retried with a growing delay up to the
//!   carrier's attempts; a business failure (wrong password, no invoice
//!   yet) is not retried;
//! - nothing stays `running` past its deadline (`timed_out`);
//! - a download whose start is uncertain may be started again, but a
//!   filing whose start is uncertain goes to a person (`needs_review`):
//!   filing twice with the tax system cannot be undone.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const EXECUTION_ID_PREFIX: &str = "exe";

/// SQS delays messages by at most 15 minutes; longer waits are chains.
pub const MAX_QUEUE_DELAY_SECS: i64 = 15 * 60;
/// The first retry of a technical failure waits this long, doubling after.
pub const FIRST_RETRY_DELAY_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    DownloadInvoice,
    TaxFiling,
    ManualUpload,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::DownloadInvoice => "download_invoice",
            Step::TaxFiling => "tax_filing",
            Step::ManualUpload => "manual_upload",
        }
    }

    /// Whether running the step twice has an effect outside nuvem that
    /// cannot be taken back (a second filing with the tax system).
    pub fn is_unrepeatable(self) -> bool {
        self == Step::TaxFiling
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    /// Failed for a technical reason; another attempt is scheduled.
    Retrying,
    Cancelled,
    TimedOut,
    /// A filing whose start is uncertain: a person decides.
    NeedsReview,
}

impl ExecutionStatus {
    /// Whether nothing more happens to the execution by itself.
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionStatus::Running | ExecutionStatus::Retrying)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Retrying => "retrying",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::TimedOut => "timed_out",
            ExecutionStatus::NeedsReview => "needs_review",
        }
    }
}

/// Where an execution is in carrying out its current attempt. Each change
/// of phase is one conditional write, so of two deliveries of the same job
/// message only one moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The attempt's job is to be started (at the execution's `watch_at`).
    Pending,
    /// A worker claimed the start and is calling the RPA: if the claim
    /// outlives [`CLAIM_EXPIRY_SECS`], the worker died mid-call and whether
    /// the job started cannot be known.
    Starting,
    /// The job started (its id is recorded) and is polled.
    Polling,
    /// Nothing more happens to it.
    Done,
}

/// Longer than the worker's timeout (template: 120 s): a start claimed this
/// long ago belongs to an invocation that no longer runs.
pub const CLAIM_EXPIRY_SECS: i64 = 5 * 60;

/// The step a process in `status` is waiting for, if an RPA runs it.
pub fn step_for(status: super::process::ProcessStatus) -> Option<Step> {
    use super::process::ProcessStatus::*;
    match status {
        AwaitingDownload => Some(Step::DownloadInvoice),
        AwaitingTaxFiling => Some(Step::TaxFiling),
        AwaitingApproval | Filed => None,
    }
}

/// Why a step failed, as the RPA reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The RPA ran and the portal or the tax system said no: retrying
    /// changes nothing until a person acts.
    Business,
    /// The RPA, a portal or the network failed: another attempt may work.
    Technical,
}

/// What to do after an attempt ends without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start attempt `attempt` after `delay`.
    Retry { attempt: u32, delay: Duration },
    /// Record the execution as finally `status`.
    Stop(ExecutionStatus),
}

/// After attempt `attempt` (from 1) of a step failed as `kind`, with the
/// carrier's `max_attempts`.
pub fn after_failure(kind: FailureKind, attempt: u32, max_attempts: u32) -> AfterFailure {
    match kind {
        FailureKind::Business => AfterFailure::Stop(ExecutionStatus::Failed),
        FailureKind::Technical if attempt < max_attempts => AfterFailure::Retry {
            attempt: attempt + 1,
            delay: retry_delay(attempt),
        },
        FailureKind::Technical => AfterFailure::Stop(ExecutionStatus::Failed),
    }
}

/// After a start whose outcome nuvem cannot know (the request went out and
/// no answer came back): a download may be started again (a second
/// download harms nothing); a filing goes to a person.
pub fn after_uncertain_start(step: Step, attempt: u32, max_attempts: u32) -> AfterFailure {
    if step.is_unrepeatable() {
        AfterFailure::Stop(ExecutionStatus::NeedsReview)
    } else {
        after_failure(FailureKind::Technical, attempt, max_attempts)
    }
}

/// The wait before the attempt after `attempt`: 1, 2, 4, 8 … minutes, at
/// most the longest delay a queue gives.
pub fn retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(10);
    Duration::seconds((FIRST_RETRY_DELAY_SECS << doublings).min(MAX_QUEUE_DELAY_SECS))
}

/// How long to wait before asking the RPA about a job again, by how long
/// it has run: every 10 s in its first 2 minutes (most jobs end there),
/// every 30 s up to 10 minutes, then every minute. Never past `deadline`
/// by more than needed to see it pass.
pub fn poll_delay(
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Duration {
    let running = now - started_at;
    let every = if running < Duration::minutes(2) {
        Duration::seconds(10)
    } else if running < Duration::minutes(10) {
        Duration::seconds(30)
    } else {
        Duration::minutes(1)
    };
    let until_deadline = (deadline - now).max(Duration::seconds(1));
    every.min(until_deadline)
}

/// Whether `now` is at or past a job's deadline (its start plus the
/// carrier's `job_timeout_minutes`).
pub fn is_past_deadline(deadline: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn business_failures_stop_and_technical_ones_retry_until_the_attempts_run_out() {
        assert_eq!(
            after_failure(FailureKind::Business, 1, 3),
            AfterFailure::Stop(ExecutionStatus::Failed)
        );
        assert_eq!(
            after_failure(FailureKind::Technical, 1, 3),
            AfterFailure::Retry {
                attempt: 2,
                delay: Duration::minutes(1)
            }
        );
        assert_eq!(
            after_failure(FailureKind::Technical, 2, 3),
            AfterFailure::Retry {
                attempt: 3,
                delay: Duration::minutes(2)
            }
        );
        assert_eq!(
            after_failure(FailureKind::Technical, 3, 3),
            AfterFailure::Stop(ExecutionStatus::Failed)
        );
    }

    #[test]
    fn an_uncertain_filing_goes_to_a_person_and_a_download_is_tried_again() {
        assert_eq!(
            after_uncertain_start(Step::TaxFiling, 1, 3),
            AfterFailure::Stop(ExecutionStatus::NeedsReview)
        );
        assert!(matches!(
            after_uncertain_start(Step::DownloadInvoice, 1, 3),
            AfterFailure::Retry { attempt: 2, .. }
        ));
        assert_eq!(
            after_uncertain_start(Step::DownloadInvoice, 3, 3),
            AfterFailure::Stop(ExecutionStatus::Failed)
        );
    }

    #[test]
    fn polls_slow_down_as_a_job_runs_and_meet_the_deadline() {
        let start = Utc::now();
        let deadline = start + Duration::hours(2);
        assert_eq!(poll_delay(start, start, deadline), Duration::seconds(10));
        let later = start + Duration::minutes(5);
        assert_eq!(poll_delay(start, later, deadline), Duration::seconds(30));
        let late = start + Duration::minutes(30);
        assert_eq!(poll_delay(start, late, deadline), Duration::minutes(1));
        let almost = deadline - Duration::seconds(20);
        assert_eq!(poll_delay(start, almost, deadline), Duration::seconds(20));
        assert!(is_past_deadline(deadline, deadline));
        assert!(!is_past_deadline(deadline, almost));
    }

    #[test]
    fn a_process_waits_for_a_download_or_a_filing_and_for_nothing_else() {
        use super::super::process::ProcessStatus::*;
        assert_eq!(step_for(AwaitingDownload), Some(Step::DownloadInvoice));
        assert_eq!(step_for(AwaitingTaxFiling), Some(Step::TaxFiling));
        assert_eq!(step_for(AwaitingApproval), None);
        assert_eq!(step_for(Filed), None);
    }

    #[test]
    fn only_running_and_retrying_executions_move_on_by_themselves() {
        use ExecutionStatus::*;
        for s in [Running, Retrying] {
            assert!(!s.is_final());
        }
        for s in [Succeeded, Failed, Cancelled, TimedOut, NeedsReview] {
            assert!(s.is_final(), "{}", s.as_str());
        }
    }

    proptest! {
        /// Retries wait longer each time, within what a queue can delay,
        /// and a step is tried at most `max_attempts` times.
        #[test]
        fn retries_grow_and_end(max_attempts in 1u32..=10) {
            let mut attempt = 1;
            let mut last = Duration::zero();
            while let AfterFailure::Retry { attempt: next, delay } =
                after_failure(FailureKind::Technical, attempt, max_attempts)
            {
                prop_assert_eq!(next, attempt + 1);
                prop_assert!(delay >= last);
                prop_assert!(delay <= Duration::seconds(MAX_QUEUE_DELAY_SECS));
                last = delay;
                attempt = next;
            }
            prop_assert_eq!(attempt, max_attempts);
        }

        /// A poll is never scheduled past the deadline (beyond the second
        /// it takes to see it passed) nor sooner than a second.
        #[test]
        fn polls_stay_within_the_deadline(ran in 0i64..10_000, left in -100i64..10_000) {
            let start = Utc::now();
            let now = start + Duration::seconds(ran);
            let deadline = now + Duration::seconds(left);
            let delay = poll_delay(start, now, deadline);
            prop_assert!(delay >= Duration::seconds(1));
            prop_assert!(now + delay <= deadline.max(now + Duration::seconds(1)));
        }
    }
}
