//! Consumes the `deliveries` queue: one signed HTTP attempt per task, then
//! the outcome rules decide what follows (done, the next attempt of the
//! schedule, exhausted, or the endpoint disabled).
//!
//! - The endpoints of a batch are served concurrently, so one slow
//!   receiver holds up only its own tasks.
//! - Each attempt is claimed first (`Store::claim_attempt`): a duplicated
//!   or stale task changes nothing, and a crashed attempt is taken over when
//!   its lease runs out (a duplicate that finds the attempt in flight comes
//!   back after the lease).
//! - The next attempt is queued *before* this one is recorded: a crash in
//!   between leaves this task in the queue to be made again, never a
//!   delivery without its next attempt.
//! - Waits beyond SQS's 15-minute delay are chained (`not_before`).
//! - Ordered endpoints: the events of one subject wait in a line
//!   (`store::lanes`); only the first is attempted, the others come back
//!   when it is due to be retried, and the next is sent as soon as the first
//!   succeeds or is parked (its schedule ran out).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::secrets::Sealer;
use nuvem_aws::store::{AttemptClaim, DeliveryStatus, EndpointRecord, HealthChange, LaneEntry};
use nuvem_aws::webhook::{self, OpenSecrets, Sender, secrets};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::webhook::delivery::{ordering_position, ordering_subject};
use nuvem_domain::webhook::retry::{Next, next_step, should_disable, sqs_delay};
use serde_json::json;

pub struct Deps {
    pub core: Core,
    pub queue: DeliveryQueue,
    pub sender: Sender,
    pub sealer: Sealer,
}

/// How long an attempt's lease outlives its timeout (signing, recording).
const LEASE_MARGIN_SECS: i64 = 30;
/// A task that arrives this close to its due time is made at once.
const DUE_SLACK_SECS: i64 = 1;
/// The window of an endpoint's rate limit.
const RATE_WINDOW_SECS: i64 = 1;
/// The time one invocation gives its attempts: the function's timeout
/// (330 s in the template) less a margin for recording the last ones.
const INVOCATION_BUDGET: Duration = Duration::from_secs(320);
/// How often an event behind an attempt in flight looks again.
const LANE_POLL_SECS: i64 = 5;

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    // Tasks of one endpoint go one after another, oldest event first (so an
    // ordered endpoint's line sees them in order); endpoints go concurrently.
    // A task whose attempt could outlast the invocation goes back to the
    // queue instead (ten slow tasks of one endpoint exceed any timeout).
    let deadline = Instant::now() + INVOCATION_BUDGET;
    let mut failed: Vec<(&SqsMessage, String)> = Vec::new();
    let mut lines: BTreeMap<String, Vec<(&SqsMessage, DeliveryTask)>> = BTreeMap::new();
    for record in &event.records {
        if let Some(task) = nuvem_aws::runtime::read_body::<DeliveryTask>(record, "delivery task") {
            lines
                .entry(task.endpoint_id.clone())
                .or_default()
                .push((record, task));
        }
    }
    let results = futures::future::join_all(lines.into_values().map(|mut line| async move {
        line.sort_by_key(|(_, task)| ordering_position(&task.event));
        let mut failed = Vec::new();
        for (record, task) in line {
            if let Err(e) = deliver_within(deps, task, Utc::now(), Some(deadline)).await {
                failed.push((record, e));
            }
        }
        failed
    }))
    .await;
    failed.extend(results.into_iter().flatten());
    let mut response = SqsBatchResponse::default();
    for (record, error) in failed {
        nuvem_aws::runtime::report_failed(
            &mut response,
            record,
            &error,
            "delivery task failed; it will be retried",
        );
    }
    response
}

/// Makes the task's attempt if it is due and still wanted.
pub async fn deliver(deps: &Deps, task: DeliveryTask, now: DateTime<Utc>) -> Result<(), String> {
    deliver_within(deps, task, now, None).await
}

/// [`deliver`], unless the attempt could outlast `deadline` (the
/// invocation's budget): then the task goes back to the queue at once, for
/// another invocation.
pub async fn deliver_within(
    deps: &Deps,
    task: DeliveryTask,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let store = &deps.core.store;
    if let Some(due) = task.not_before
        && due > now + chrono::Duration::seconds(DUE_SLACK_SECS)
    {
        return requeue(deps, &task, due - now).await;
    }
    let Some(endpoint) = store
        .get_endpoint(&task.event.account_id, &task.endpoint_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return cancel(deps, &task, "endpoint deleted").await;
    };
    let lane = endpoint
        .settings
        .ordered
        .then(|| Lane::of(&endpoint, &task));
    if !endpoint.settings.enabled {
        if let Some(lane) = &lane {
            lane.leave(deps).await?;
        }
        return cancel(deps, &task, "endpoint disabled").await;
    }
    if let Some(deadline) = deadline {
        let needs = Duration::from_secs(u64::from(endpoint.settings.timeout_seconds) + 10);
        if Instant::now() + needs > deadline {
            return requeue(deps, &task, chrono::Duration::zero()).await;
        }
    }
    if let Some(lane) = &lane
        && let Some(wait) = lane.wait(deps, &task, now).await?
    {
        return requeue(deps, &task, wait).await;
    }
    if let Some(limit) = endpoint.settings.rate_limit_per_second {
        let allowed = store
            .take_rate_slot("webhook", &endpoint.id, limit, RATE_WINDOW_SECS, now)
            .await
            .map_err(|e| e.to_string())?;
        if !allowed {
            // Over the endpoint's rate: try again in the next window; the
            // message leaves this batch, so other endpoints go on.
            return requeue(deps, &task, chrono::Duration::seconds(RATE_WINDOW_SECS)).await;
        }
    }
    // Opened before the claim: a KMS failure leaves the task to be retried
    // at once, not behind a lease of its own.
    let secrets = secrets::open(&deps.sealer, &endpoint, now)
        .await
        .map_err(|e| e.to_string())?;
    let lease =
        chrono::Duration::seconds(i64::from(endpoint.settings.timeout_seconds) + LEASE_MARGIN_SECS);
    match store
        .claim_attempt(&task, lease, now)
        .await
        .map_err(|e| e.to_string())?
    {
        AttemptClaim::Stale => return Ok(()),
        AttemptClaim::Done => {
            // A duplicate of a delivery that is over: it must not hold the line.
            if let Some(lane) = &lane {
                lane.finish(deps).await?;
            }
            return Ok(());
        }
        // Another worker holds the attempt: look again once its lease is
        // over (done by then, or taken over if the holder crashed), rather
        // than after the queue's long visibility timeout.
        AttemptClaim::Busy => return requeue(deps, &task, lease).await,
        AttemptClaim::Acquired => {}
    }
    attempt_and_record(deps, &endpoint, &secrets, task, lane.as_ref(), now).await
}

async fn attempt_and_record(
    deps: &Deps,
    endpoint: &EndpointRecord,
    secrets: &OpenSecrets,
    task: DeliveryTask,
    lane: Option<&Lane>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let mut attempted = webhook::attempt(
        &deps.sender,
        endpoint,
        secrets,
        &task.event,
        &task.delivery_id,
        task.attempt,
        now,
    )
    .await;
    let next = next_step(
        task.attempt,
        attempted.verdict,
        attempted.retry_after,
        jitter(),
    );
    let status = match next {
        Next::Done => DeliveryStatus::Succeeded,
        Next::RetryAfter(wait) => {
            let wait = chrono::Duration::from_std(wait).map_err(|e| e.to_string())?;
            let due = now + wait;
            let next_task = DeliveryTask {
                attempt: task.attempt + 1,
                not_before: Some(due),
                ..task.clone()
            };
            deps.queue
                .send_delayed(&next_task, sqs_delay(wait.to_std().unwrap_or_default()))
                .await
                .map_err(|e| e.to_string())?;
            attempted.record.next_attempt_at = Some(due);
            DeliveryStatus::Pending
        }
        Next::Exhausted | Next::Disable => DeliveryStatus::Exhausted,
    };
    tracing::info!(
        delivery_id = %task.delivery_id,
        endpoint_id = %endpoint.id,
        event_id = %task.event.id,
        attempt = task.attempt,
        status = ?attempted.record.response_status,
        outcome = status.as_str(),
        "delivery attempt"
    );
    deps.core
        .store
        .record_attempt(&attempted.record, status)
        .await
        .map_err(|e| e.to_string())?;
    nuvem_aws::metrics::delivery_attempt(status == DeliveryStatus::Succeeded);
    if status == DeliveryStatus::Exhausted {
        nuvem_aws::metrics::delivery_exhausted();
    }
    if let Some(lane) = lane {
        match attempted.record.next_attempt_at {
            Some(due) => lane.retry_at(deps, due).await?,
            None => lane.finish(deps).await?,
        }
    }
    health(deps, endpoint, next, now).await
}

/// The line of an ordered endpoint that a task's event stands in.
struct Lane {
    key: String,
    position: String,
}

impl Lane {
    fn of(endpoint: &EndpointRecord, task: &DeliveryTask) -> Lane {
        Lane {
            key: nuvem_aws::table_keys::lane_pk(
                &endpoint.account_id,
                &endpoint.id,
                &ordering_subject(&task.event),
            ),
            position: ordering_position(&task.event),
        }
    }

    /// Puts a new event in line and says how long it must wait, if it is
    /// not first: until the first's next attempt, or a short poll while
    /// that attempt is in flight.
    async fn wait(
        &self,
        deps: &Deps,
        task: &DeliveryTask,
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, String> {
        let store = &deps.core.store;
        if task.attempt == 1 {
            let entry = LaneEntry {
                position: self.position.clone(),
                task: DeliveryTask {
                    not_before: None,
                    ..task.clone()
                },
                next_attempt_at: None,
            };
            store
                .lane_enter(&self.key, &entry)
                .await
                .map_err(|e| e.to_string())?;
        }
        let head = store
            .lane_head(&self.key)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match head {
            Some(head) if head.position != self.position => Some(
                head.next_attempt_at
                    .map(|due| due - now)
                    .filter(|wait| *wait > chrono::Duration::zero())
                    .unwrap_or(chrono::Duration::seconds(LANE_POLL_SECS)),
            ),
            _ => None,
        })
    }

    async fn retry_at(&self, deps: &Deps, due: DateTime<Utc>) -> Result<(), String> {
        deps.core
            .store
            .lane_retry_at(&self.key, &self.position, due)
            .await
            .map_err(|e| e.to_string())
    }

    async fn leave(&self, deps: &Deps) -> Result<(), String> {
        deps.core
            .store
            .lane_leave(&self.key, &self.position)
            .await
            .map_err(|e| e.to_string())
    }

    /// Leaves the line and sends the next event at once (it would also come
    /// back by itself, after its wait).
    async fn finish(&self, deps: &Deps) -> Result<(), String> {
        self.leave(deps).await?;
        let next = deps
            .core
            .store
            .lane_head(&self.key)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(next) = next {
            deps.queue
                .send_delayed(&next.task, 0)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// What the attempt says about the endpoint: healthy again, failing, or to
/// be disabled (410 Gone at once; any failure after 5 failing days).
async fn health(
    deps: &Deps,
    endpoint: &EndpointRecord,
    next: Next,
    now: DateTime<Utc>,
) -> Result<(), String> {
    // `reason` is a code for the owner's email; `detail` is what the API shows.
    let disable = |reason: &str, detail: &str| {
        let event = Envelope::new(
            EventType::WebhookEndpointDisabled,
            endpoint.account_id.clone(),
            json!({
                "webhook_id": endpoint.id,
                "url": endpoint.settings.url,
                "reason": reason,
                "detail": detail,
                "failing_since": endpoint.failing_since,
            }),
            now,
        );
        HealthChange::Disable {
            reason: detail.to_owned(),
            event,
        }
    };
    let change = match next {
        Next::Done => HealthChange::Healthy,
        Next::Disable => disable("gone", "the endpoint answered 410 Gone"),
        Next::RetryAfter(_) | Next::Exhausted => match endpoint.failing_since {
            Some(since) if should_disable(since, now) => {
                disable("failing", "every delivery failed for 5 days")
            }
            _ => HealthChange::Failing(now),
        },
    };
    let event = match &change {
        HealthChange::Disable { event, .. } => Some(event.clone()),
        _ => None,
    };
    let disabled = deps
        .core
        .store
        .record_endpoint_health(endpoint, change, now)
        .await
        .map_err(|e| e.to_string())?;
    if let (true, Some(event)) = (disabled, event) {
        tracing::warn!(endpoint_id = %endpoint.id, "endpoint disabled");
        deps.core.emit(&event, None).await;
    }
    Ok(())
}

async fn requeue(deps: &Deps, task: &DeliveryTask, wait: chrono::Duration) -> Result<(), String> {
    deps.queue
        .send_delayed(task, sqs_delay(wait.to_std().unwrap_or_default()))
        .await
        .map_err(|e| e.to_string())
}

async fn cancel(deps: &Deps, task: &DeliveryTask, why: &str) -> Result<(), String> {
    tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, why, "delivery cancelled");
    deps.core
        .store
        .cancel_delivery(&task.delivery_id)
        .await
        .map_err(|e| e.to_string())
}

/// Uniform in [-1, 1]: spreads retries of many deliveries that failed
/// together (an outage) so that they do not return together.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}
