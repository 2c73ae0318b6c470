//! `webhook-delivery` against the emulator's DynamoDB and SQS and a receiver
//! on 127.0.0.1 that verifies signatures: success, each outcome rule,
//! duplicates, rotation, disabling, chained waits, rate limit and the SSRF
//! guard.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::store::{AttemptOutcome, EndpointRecord, Store};
use nuvem_aws::webhook::{Lookup, LookupFuture, Sender, secrets};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::webhook::delivery::delivery_id;
use nuvem_domain::webhook::signature::WebhookSecret;
use nuvem_testkit::fixtures::{fixture, sqs_batch};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::receiver::{Receiver, Reply};
use nuvem_testkit::tenants::TestEndpoint;
use nuvem_testkit::{TestStack, eventually, tenants};
use serde_json::json;
use webhook_delivery::{Deps, deliver};

struct World {
    t: TestStack,
    deps: Deps,
    receiver: Receiver,
    account_id: String,
}

impl World {
    async fn new() -> World {
        Self::with_sender(Sender::new(true)).await
    }

    async fn with_sender(sender: Sender) -> World {
        let t = TestStack::new("delivery").await;
        let core = Core::from_lookup(&t.sdk, &t.env("WebhookDelivery")).unwrap();
        let account = tenants::active_account(&core.store, 1_000_000_000, 1).await;
        let deps = Deps {
            core,
            queue: DeliveryQueue::new(&t.sdk, &t.stack.queue("DeliveriesQueue").url),
            sender,
            sealer: t.sealer(),
        };
        World {
            t,
            deps,
            receiver: Receiver::start().await,
            account_id: account.id,
        }
    }

    fn store(&self) -> &Store {
        &self.deps.core.store
    }

    /// An endpoint of the account at the receiver, with `settings` merged
    /// over a plain one.
    async fn endpoint(&self, settings: serde_json::Value) -> TestEndpoint {
        self.endpoint_at(settings, None).await
    }

    /// As [`World::endpoint`], with a URL stored as is (as if it had passed
    /// validation when it was saved).
    async fn endpoint_at(&self, settings: serde_json::Value, url: Option<&str>) -> TestEndpoint {
        let mut body = json!({
            "url": self.receiver.url("/hooks/nuvem"),
            "headers": {"authorization": "Bearer receiver-token"},
        });
        for (k, v) in settings.as_object().unwrap() {
            body[k] = v.clone();
        }
        tenants::webhook_endpoint(self.store(), &self.deps.sealer, &self.account_id, body, url)
            .await
    }

    fn event(&self) -> Envelope {
        Envelope::new(
            EventType::QuotaThresholdCrossed,
            self.account_id.clone(),
            json!({"level_percent": 80, "used_bytes": 800, "quota_bytes": 1000}),
            Utc::now(),
        )
    }

    fn task(&self, endpoint: &EndpointRecord, event: &Envelope) -> DeliveryTask {
        DeliveryTask {
            delivery_id: delivery_id(&event.id, &endpoint.id),
            endpoint_id: endpoint.id.clone(),
            attempt: 1,
            not_before: None,
            event: event.clone(),
        }
    }

    async fn attempts(&self, endpoint: &EndpointRecord) -> Vec<nuvem_aws::store::AttemptRecord> {
        self.store()
            .list_attempts(&self.account_id, &endpoint.id, None, 100, None)
            .await
            .unwrap()
            .items
    }

    async fn reload(&self, endpoint: &EndpointRecord) -> EndpointRecord {
        self.store()
            .get_endpoint(&self.account_id, &endpoint.id)
            .await
            .unwrap()
            .unwrap()
    }

    fn deliveries_url(&self) -> &str {
        &self.t.stack.queue("DeliveriesQueue").url
    }

    /// The tasks in the queue now (taking them out).
    async fn queued_now(&self) -> Vec<DeliveryTask> {
        drain(&self.t.sqs, self.deliveries_url(), 100)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }

    /// Tasks queued for later, taken out as their delays end, once at least
    /// `n` came (`what` names them if they never do).
    async fn queued(&self, what: &str, n: usize) -> Vec<DeliveryTask> {
        let got = std::cell::RefCell::new(Vec::new());
        eventually(what, || async {
            let more = self.queued_now().await;
            let mut got = got.borrow_mut();
            got.extend(more);
            got.len() >= n
        })
        .await;
        got.into_inner()
    }

    async fn delayed_count(&self) -> i64 {
        let out = self
            .t
            .sqs
            .get_queue_attributes()
            .queue_url(self.deliveries_url())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        let get = |name| {
            attrs
                .get(&name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            + get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
    }
}

/// The fixture's record carrying `task`.
fn record(message_id: &str, task: &DeliveryTask) -> SqsMessage {
    let fixture: SqsEvent = fixture("webhook-delivery/delivery-task.json");
    let mut message = fixture.records.into_iter().next().unwrap();
    message.message_id = Some(message_id.into());
    message.body = Some(serde_json::to_string(task).unwrap());
    message
}

#[test]
fn the_fixture_is_a_delivery_task() {
    let event: SqsEvent = fixture("webhook-delivery/delivery-task.json");
    let task: DeliveryTask =
        serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(task.attempt, 1);
    assert_eq!(task.event.event_type, EventType::QuotaThresholdCrossed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_is_signed_logged_and_made_once() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    let event = w.event();
    let task = w.task(&endpoint, &event);
    // The same task twice in one batch and once more later: one request.
    let response = webhook_delivery::handle(
        &w.deps,
        sqs_batch(vec![record("m1", &task), record("m2", &task)]),
    )
    .await;
    assert!(response.batch_item_failures.is_empty() || response.batch_item_failures.len() == 1);
    webhook_delivery::handle(&w.deps, sqs_batch(vec![record("m3", &task)])).await;
    let received = w.receiver.wait_for(2, Duration::from_millis(500)).await;
    assert_eq!(received.len(), 1, "duplicates collapse");
    let request = &received[0];
    request
        .verify(&endpoint.secret)
        .expect("the signature verifies");
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/nuvem");
    assert_eq!(request.header("webhook-id"), Some(event.id.as_str()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer receiver-token")
    );
    let body: Envelope = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, event);
    assert!(
        request
            .verify(&WebhookSecret::generate().to_string_form())
            .is_err()
    );

    let attempts = w.attempts(&endpoint).await;
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(attempt.outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempt.response_status, Some(200));
    assert_eq!(attempt.event_id, event.id);
    let headers: std::collections::HashMap<_, _> =
        attempt.request_headers.iter().cloned().collect();
    assert_eq!(headers["webhook-signature"], "v1,[redacted]");
    assert_eq!(headers["authorization"], "[redacted]");
    assert_eq!(headers["webhook-id"], event.id);
    assert_eq!(w.delayed_count().await, 0, "nothing more to do");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_is_retried_on_schedule_then_succeeds() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    w.receiver
        .reply([Reply::status(500).body("database is down")]);
    let event = w.event();
    let started = Utc::now();
    deliver(&w.deps, w.task(&endpoint, &event), started)
        .await
        .unwrap();

    let failing = w.reload(&endpoint).await;
    assert!(failing.failing_since.is_some());
    let attempts = w.attempts(&endpoint).await;
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(attempts[0].response_status, Some(500));
    assert_eq!(attempts[0].response_excerpt, "database is down");
    let due = attempts[0].next_attempt_at.expect("a next attempt");
    let wait = (due - started).num_milliseconds();
    assert!((4_000..=6_000).contains(&wait), "5 s ± 20 %: {wait} ms");

    // The next attempt is a queued task, delayed by SQS.
    let next = w.queued("the next attempt", 1).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].attempt, 2);
    assert_eq!(next[0].delivery_id, delivery_id(&event.id, &endpoint.id));
    webhook_delivery::handle(&w.deps, sqs_batch(vec![record("m2", &next[0])])).await;
    let received = w.receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    received[1].verify(&endpoint.secret).unwrap();
    assert!(
        w.reload(&endpoint).await.failing_since.is_none(),
        "healthy again"
    );
    // Replaying attempt 1 or 2 changes nothing now.
    deliver(&w.deps, next[0].clone(), Utc::now()).await.unwrap();
    deliver(&w.deps, w.task(&endpoint, &event), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn outcome_rules_decide_the_next_attempt() {
    // (reply, expected status in the log, minimum wait, maximum wait)
    let cases: Vec<(Reply, Option<u16>, i64, i64)> = vec![
        (
            Reply::status(302).header("location", "/elsewhere"),
            Some(302),
            4,
            6,
        ),
        (Reply::status(404), Some(404), 4, 6),
        (Reply::status(503), Some(503), 4, 6),
        (
            Reply::status(429).header("retry-after", "120"),
            Some(429),
            120,
            121,
        ),
        (
            Reply::status(503).header("retry-after", "3600"),
            Some(503),
            3600,
            3601,
        ),
        // Retry-After is honoured only for back-off statuses.
        (
            Reply::status(500).header("retry-after", "3600"),
            Some(500),
            4,
            6,
        ),
    ];
    let w = World::new().await;
    for (reply, status, min, max) in cases {
        let endpoint = w.endpoint(json!({})).await;
        w.receiver.reply([reply.clone()]);
        let now = Utc::now();
        deliver(&w.deps, w.task(&endpoint, &w.event()), now)
            .await
            .unwrap();
        let attempt = &w.attempts(&endpoint).await[0];
        assert_eq!(attempt.response_status, status, "{reply:?}");
        assert_eq!(attempt.outcome, AttemptOutcome::Failed);
        let wait = (attempt.next_attempt_at.unwrap() - now).num_seconds();
        assert!((min..=max).contains(&wait), "{reply:?}: waits {wait} s");
    }
    // The redirect was not followed.
    assert!(
        w.receiver
            .received()
            .iter()
            .all(|r| r.path == "/hooks/nuvem")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_backs_off() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"timeout_seconds": 1})).await;
    // Far slower than the timeout: the attempt gives up long before.
    w.receiver
        .reply([Reply::status(200).delay(Duration::from_secs(30))]);
    deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
        .await
        .unwrap();
    let attempt = &w.attempts(&endpoint).await[0];
    assert_eq!(attempt.outcome, AttemptOutcome::Failed);
    assert_eq!(attempt.response_status, None);
    assert_eq!(attempt.error.as_deref(), Some("timed out"));
    assert!(
        (1_000..15_000).contains(&attempt.duration_ms),
        "{}",
        attempt.duration_ms
    );
    assert!(attempt.next_attempt_at.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_endpoint_and_tells_the_owner() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    w.receiver.reply([Reply::status(410)]);
    deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
        .await
        .unwrap();
    let disabled = w.reload(&endpoint).await;
    assert!(!disabled.settings.enabled);
    assert!(disabled.disabled_reason.unwrap().contains("410"));
    assert!(w.attempts(&endpoint).await[0].next_attempt_at.is_none());
    assert_eq!(w.delayed_count().await, 0, "no further attempt");
    let events = drain(&w.t.sqs, w.t.events_queue(), 10).await;
    let told: Vec<Envelope> = events
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].event_type, EventType::WebhookEndpointDisabled);
    assert_eq!(told[0].data["reason"], "gone");
    assert_eq!(told[0].data["webhook_id"], endpoint.id.as_str());
    // Tasks still queued for it are dropped, not sent.
    deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn five_days_of_failures_disable_the_endpoint() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    w.receiver.fallback(Reply::status(500));
    deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
        .await
        .unwrap();
    let since = w.reload(&endpoint).await.failing_since.unwrap();
    // Still failing four days later: still enabled.
    let later = w.reload(&endpoint).await;
    deliver(
        &w.deps,
        w.task(&later, &w.event()),
        since + chrono::Duration::days(4),
    )
    .await
    .unwrap();
    assert!(w.reload(&endpoint).await.settings.enabled);
    assert_eq!(
        w.reload(&endpoint).await.failing_since,
        Some(since),
        "the run's start stays"
    );
    deliver(
        &w.deps,
        w.task(&later, &w.event()),
        since + chrono::Duration::days(5),
    )
    .await
    .unwrap();
    let disabled = w.reload(&endpoint).await;
    assert!(!disabled.settings.enabled);
    assert!(disabled.disabled_reason.unwrap().contains("5 days"));
    let told = drain(&w.t.sqs, w.t.events_queue(), 10).await;
    assert_eq!(told.len(), 1);
    assert!(told[0].body().unwrap().contains("\"reason\":\"failing\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_attempt_exhausts_the_delivery() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    w.receiver.fallback(Reply::status(500));
    let event = w.event();
    let mut task = w.task(&endpoint, &event);
    // Attempts 1–9 are on record (made by earlier tasks).
    for attempt in 1..=9 {
        task.attempt = attempt;
        deliver(&w.deps, task.clone(), Utc::now()).await.unwrap();
    }
    let queued = w.delayed_count().await;
    assert_eq!(queued, 9, "each failed attempt queued the next");
    task.attempt = 10;
    deliver(&w.deps, task, Utc::now()).await.unwrap();
    let attempts = w.attempts(&endpoint).await;
    assert_eq!(attempts.len(), 10);
    assert_eq!(attempts[0].attempt, 10, "newest first");
    assert!(attempts[0].next_attempt_at.is_none());
    assert_eq!(w.delayed_count().await, queued, "no eleventh attempt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_beyond_fifteen_minutes_is_chained() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    let mut task = w.task(&endpoint, &w.event());
    task.not_before = Some(Utc::now() + chrono::Duration::hours(2));
    deliver(&w.deps, task.clone(), Utc::now()).await.unwrap();
    assert!(w.receiver.received().is_empty(), "not due yet");
    assert_eq!(
        w.delayed_count().await,
        1,
        "queued again for the rest of the wait"
    );
    // Once due, it is made.
    deliver(&w.deps, task, Utc::now() + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_signs_with_both_secrets() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    let now = Utc::now();
    let new = WebhookSecret::generate();
    let new_secret = new.to_string_form();
    let sealed = secrets::seal(&w.deps.sealer, &w.account_id, &endpoint.id, &new)
        .await
        .unwrap();
    w.store()
        .rotate_endpoint_secret(&endpoint, &sealed, now + chrono::Duration::hours(24), now)
        .await
        .unwrap()
        .unwrap();
    deliver(&w.deps, w.task(&endpoint, &w.event()), now)
        .await
        .unwrap();
    let signatures = |n: usize| {
        let request = &w.receiver.received()[n];
        request
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count()
    };
    let request = &w.receiver.received()[0];
    assert_eq!(signatures(0), 2);
    request
        .verify(&new_secret)
        .expect("the new secret verifies");
    request
        .verify(&endpoint.secret)
        .expect("the old secret still verifies");
    // After the overlap only the new secret signs.
    let later = now + chrono::Duration::hours(25);
    deliver(&w.deps, w.task(&endpoint, &w.event()), later)
        .await
        .unwrap();
    assert_eq!(signatures(1), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_and_delete_sign_the_empty_payload() {
    let w = World::new().await;
    for method in ["GET", "DELETE"] {
        let endpoint = w.endpoint(json!({"method": method})).await;
        deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
            .await
            .unwrap();
        let request = w.receiver.received().pop().unwrap();
        assert_eq!(request.method, method);
        assert!(request.body.is_empty());
        assert_eq!(request.header("content-type"), None);
        request.verify(&endpoint.secret).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_or_deleted_endpoints_get_nothing() {
    let w = World::new().await;
    let off = w.endpoint(json!({"enabled": false})).await;
    deliver(&w.deps, w.task(&off, &w.event()), Utc::now())
        .await
        .unwrap();
    let gone = w.endpoint(json!({})).await;
    w.store()
        .delete_endpoint(&w.account_id, &gone.id)
        .await
        .unwrap();
    deliver(&w.deps, w.task(&gone, &w.event()), Utc::now())
        .await
        .unwrap();
    assert!(w.receiver.received().is_empty());
    assert_eq!(w.delayed_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_holds_back_the_excess() {
    let w = World::new().await;
    let limited = w.endpoint(json!({"rate_limit_per_second": 2})).await;
    let tasks: Vec<SqsMessage> = (0..6)
        .map(|i| record(&format!("m{i}"), &w.task(&limited, &w.event())))
        .collect();
    let started = std::time::Instant::now();
    let response = webhook_delivery::handle(&w.deps, sqs_batch(tasks)).await;
    assert!(response.batch_item_failures.is_empty());
    let sent = w.receiver.received().len();
    // Within one second at most two go out (a batch straddling a second
    // boundary may use two windows).
    if started.elapsed() < Duration::from_millis(900) {
        assert!(sent <= 4, "{sent} sent");
    }
    assert!(sent >= 2, "{sent} sent");
    let requeued = w.queued("the excess, requeued", 6 - sent).await;
    assert_eq!(
        sent + requeued.len(),
        6,
        "the excess waits for the next second"
    );
    assert!(requeued.iter().all(|t| t.attempt == 1));
}

/// A resolver that answers from a table, to play DNS without a server.
struct FixedLookup(Vec<(&'static str, IpAddr)>);

impl Lookup for FixedLookup {
    fn lookup(&self, host: String) -> LookupFuture {
        let found: Vec<IpAddr> = self
            .0
            .iter()
            .filter(|(name, _)| *name == host)
            .map(|(_, ip)| *ip)
            .collect();
        Box::pin(async move {
            if found.is_empty() {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such host",
                ))
            } else {
                Ok(found)
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ssrf_guard_refuses_internal_addresses() {
    let lookup = Arc::new(FixedLookup(vec![
        ("hooks.internal.example", "10.0.0.5".parse().unwrap()),
        ("metadata.example", "169.254.169.254".parse().unwrap()),
        ("mixed.example", "8.8.8.8".parse().unwrap()),
        ("mixed.example", "192.168.1.10".parse().unwrap()),
        ("cgnat.example", "100.64.1.1".parse().unwrap()),
        ("v6-local.example", "fd00::1".parse().unwrap()),
        ("localhost", "127.0.0.1".parse().unwrap()),
    ]));
    let w = World::with_sender(Sender::with_lookup(false, lookup)).await;
    let port = w.receiver.url("").rsplit(':').next().unwrap().to_owned();
    let urls = [
        format!("http://hooks.internal.example:{port}/"),
        format!("http://metadata.example:{port}/latest/meta-data/"),
        format!("http://mixed.example:{port}/"),
        format!("http://cgnat.example:{port}/"),
        format!("http://v6-local.example:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ];
    for url in urls {
        // Stored as if it had been allowed at creation (a name re-pointed later).
        let endpoint = w.endpoint_at(json!({}), Some(&url)).await;
        deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
            .await
            .unwrap();
        let attempt = &w.attempts(&endpoint).await[0];
        assert_eq!(attempt.outcome, AttemptOutcome::Failed, "{url}");
        assert_eq!(attempt.response_status, None, "{url}");
        let error = attempt.error.clone().unwrap_or_default();
        assert!(error.contains("refused"), "{url}: {error}");
    }
    assert!(
        w.receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_reachable_only_when_allowed() {
    let lookup = Arc::new(FixedLookup(vec![(
        "localhost",
        "127.0.0.1".parse().unwrap(),
    )]));
    let w = World::with_sender(Sender::with_lookup(true, lookup)).await;
    let port = w.receiver.url("").rsplit(':').next().unwrap().to_owned();
    let endpoint = w
        .endpoint(json!({"url": format!("http://localhost:{port}/x")}))
        .await;
    deliver(&w.deps, w.task(&endpoint, &w.event()), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 1);
}

impl World {
    fn event_at(&self, offset_ms: i64, data: serde_json::Value) -> Envelope {
        Envelope::new(
            EventType::QuotaThresholdCrossed,
            self.account_id.clone(),
            data,
            Utc::now() + chrono::Duration::milliseconds(offset_ms),
        )
    }

    /// Runs the queued tasks (as the event source would), delayed ones as
    /// their delays end, until the queue is empty.
    async fn run_queue(&self) {
        eventually("the delivery queue to empty", || async {
            let messages = drain(&self.t.sqs, self.deliveries_url(), 10).await;
            if messages.is_empty() {
                return self.delayed_count().await == 0;
            }
            let records = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let task: DeliveryTask = serde_json::from_str(m.body().unwrap()).unwrap();
                    record(&format!("q{i}"), &task)
                })
                .collect();
            webhook_delivery::handle(&self.deps, sqs_batch(records)).await;
            false
        })
        .await;
    }

    fn received_ids(&self) -> Vec<String> {
        self.receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ordered_endpoint_gets_a_subjects_events_in_order() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"ordered": true})).await;
    let events: Vec<Envelope> = (0..3).map(|i| w.event_at(i, json!({"n": i}))).collect();
    // The first attempt of the first event fails; everything else succeeds.
    w.receiver
        .reply([Reply::status(503).header("retry-after", "1")]);
    let tasks: Vec<SqsMessage> = [2, 0, 1]
        .iter()
        .map(|&i| record(&format!("m{i}"), &w.task(&endpoint, &events[i])))
        .collect();
    webhook_delivery::handle(&w.deps, sqs_batch(tasks)).await;
    assert_eq!(
        w.received_ids(),
        [events[0].id.clone()],
        "only the first went"
    );
    // The first is retried after its wait; the others follow it, in order.
    w.run_queue().await;
    let expected: Vec<String> = [0, 0, 1, 2].iter().map(|&i| events[i].id.clone()).collect();
    assert_eq!(w.received_ids(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_event_is_parked_and_the_line_goes_on() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"ordered": true})).await;
    let poison = w.event_at(0, json!({}));
    let next = w.event_at(1, json!({}));
    w.receiver.fallback(Reply::status(500));
    let mut task = w.task(&endpoint, &poison);
    deliver(&w.deps, task.clone(), Utc::now()).await.unwrap();
    // The next event waits behind it.
    deliver(&w.deps, w.task(&endpoint, &next), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.received_ids(), std::slice::from_ref(&poison.id));
    // The poisoned event's whole schedule fails.
    for attempt in 2..=10 {
        task.attempt = attempt;
        deliver(&w.deps, task.clone(), Utc::now()).await.unwrap();
    }
    let attempts = w.attempts(&endpoint).await;
    assert_eq!(attempts.len(), 10);
    assert!(attempts[0].next_attempt_at.is_none(), "parked");
    // Parking it sent the next event at once.
    w.receiver.fallback(Reply::status(200));
    let queued = drain(&w.t.sqs, w.deliveries_url(), 100).await;
    let kicked: Vec<DeliveryTask> = queued
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .filter(|t: &DeliveryTask| t.event.id == next.id)
        .collect();
    assert!(!kicked.is_empty(), "the next event was sent");
    deliver(&w.deps, kicked[0].clone(), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.received_ids().last(), Some(&next.id));
    assert_eq!(w.received_ids().len(), 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn different_subjects_do_not_wait_for_each_other() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"ordered": true})).await;
    let stuck = w.event_at(0, json!({"bucket": "backups"}));
    let other = w.event_at(1, json!({"bucket": "fotos"}));
    w.receiver.reply([Reply::status(500)]);
    deliver(&w.deps, w.task(&endpoint, &stuck), Utc::now())
        .await
        .unwrap();
    deliver(&w.deps, w.task(&endpoint, &other), Utc::now())
        .await
        .unwrap();
    assert_eq!(w.received_ids(), [stuck.id.clone(), other.id.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_event_arriving_late_goes_first_without_unseating_the_retried_one() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"ordered": true})).await;
    let older = w.event_at(0, json!({}));
    let retried = w.event_at(10, json!({}));
    let newer = w.event_at(20, json!({}));
    w.receiver.reply([Reply::status(500)]);
    deliver(&w.deps, w.task(&endpoint, &retried), Utc::now())
        .await
        .unwrap();
    // The older event reaches delivery late: it is first in line, so it goes.
    deliver(&w.deps, w.task(&endpoint, &older), Utc::now())
        .await
        .unwrap();
    // Its success sends the next in line: the retried event's first task,
    // whose attempt was made; it changes nothing and keeps its place.
    let kicked: Vec<DeliveryTask> = drain(&w.t.sqs, w.deliveries_url(), 10)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert!(
        kicked
            .iter()
            .any(|t| t.event.id == retried.id && t.attempt == 1)
    );
    for task in kicked.into_iter().filter(|t| t.attempt == 1) {
        deliver(&w.deps, task, Utc::now()).await.unwrap();
    }
    // A newer event still waits behind the retried one.
    deliver(&w.deps, w.task(&endpoint, &newer), Utc::now())
        .await
        .unwrap();
    let mut second = w.task(&endpoint, &retried);
    second.attempt = 2;
    deliver(&w.deps, second, Utc::now()).await.unwrap();
    w.run_queue().await;
    let order: Vec<String> = [&retried, &older, &retried, &newer]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(w.received_ids(), order);
}

/// Nothing lost, nothing twice: every task of 4 events × 3 endpoints sent
/// two or three times, shuffled, to a receiver whose first answers fail,
/// ends in exactly one successful request per (event, endpoint).
#[tokio::test(flavor = "multi_thread")]
async fn duplicated_shuffled_tasks_with_failures_deliver_each_once() {
    let w = World::new().await;
    let mut endpoints = Vec::new();
    for j in 0..3 {
        let url = w.receiver.url(&format!("/endpoint-{j}"));
        endpoints.push(w.endpoint(json!({"url": url})).await);
    }
    let events: Vec<Envelope> = (0..4).map(|i| w.event_at(i, json!({"n": i}))).collect();
    w.receiver.reply((0..4).map(|_| Reply::status(503)));
    let mut tasks = Vec::new();
    for (i, event) in events.iter().enumerate() {
        for (j, endpoint) in endpoints.iter().enumerate() {
            for _ in 0..(2 + (i + j) % 2) {
                tasks.push(w.task(endpoint, event));
            }
        }
    }
    // A fixed permutation (no RNG): stride through the list.
    let n = tasks.len();
    let shuffled: Vec<DeliveryTask> = (0..n).map(|k| tasks[(k * 7) % n].clone()).collect();
    assert_ne!(n % 7, 0, "a permutation needs a stride prime to the length");
    for (c, chunk) in shuffled.chunks(10).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| record(&format!("s{c}-{i}"), t))
            .collect();
        let answer = webhook_delivery::handle(&w.deps, sqs_batch(records)).await;
        // A duplicate that finds its twin's attempt in flight is retried.
        for failure in answer.batch_item_failures {
            let (c, i) = failure.item_identifier[1..].split_once('-').unwrap();
            let task =
                shuffled[c.parse::<usize>().unwrap() * 10 + i.parse::<usize>().unwrap()].clone();
            deliver(&w.deps, task, Utc::now()).await.unwrap();
        }
    }
    w.run_queue().await;
    let received = w.receiver.received();
    let mut successes = std::collections::BTreeMap::new();
    for (k, request) in received.iter().enumerate() {
        // The first four answers were 503s; every later one a 200.
        if k >= 4 {
            let key = (
                request.header("webhook-id").unwrap().to_owned(),
                request.path.clone(),
            );
            *successes.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(
        received.len(),
        12 + 4,
        "each delivery once, plus the four failed attempts"
    );
    assert_eq!(successes.len(), 12, "every (event, endpoint) delivered");
    assert!(successes.values().all(|&n| n == 1), "{successes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_that_could_outlast_the_invocation_is_left_to_another() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"timeout_seconds": 30})).await;
    let task = w.task(&endpoint, &w.event());
    let soon = std::time::Instant::now() + Duration::from_secs(20);
    webhook_delivery::deliver_within(&w.deps, task.clone(), Utc::now(), Some(soon))
        .await
        .unwrap();
    assert!(w.receiver.received().is_empty(), "not started");
    let queued = w.queued_now().await;
    assert_eq!(
        queued,
        std::slice::from_ref(&task),
        "back in the queue, unchanged"
    );
    let later = std::time::Instant::now() + Duration::from_secs(60);
    webhook_delivery::deliver_within(&w.deps, task, Utc::now(), Some(later))
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 1);
}

/// KMS unavailable (or the key gone): the task fails before its attempt is
/// claimed, so the queue's retry delivers it at once, not after a lease.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_that_cannot_be_opened_leaves_the_task_for_a_retry() {
    let mut w = World::new().await;
    let endpoint = w.endpoint(json!({})).await;
    let task = w.task(&endpoint, &w.event());
    let sealer = w.deps.sealer.clone();
    w.deps.sealer = nuvem_aws::secrets::Sealer::new(&w.t.sdk, "alias/no-such-key");
    assert!(deliver(&w.deps, task.clone(), Utc::now()).await.is_err());
    assert!(w.receiver.received().is_empty());
    assert!(w.attempts(&endpoint).await.is_empty());
    w.deps.sealer = sealer;
    deliver(&w.deps, task, Utc::now()).await.unwrap();
    let received = w.receiver.received();
    assert_eq!(received.len(), 1);
    received[0].verify(&endpoint.secret).unwrap();
}

/// A duplicate that finds its attempt in flight (or held by a worker that
/// crashed) makes none, and comes back once the holder's lease is over; by
/// then the attempt is done, or the lease expired and it is taken over.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_of_an_attempt_in_flight_comes_back_after_the_lease() {
    let w = World::new().await;
    let endpoint = w.endpoint(json!({"timeout_seconds": 5})).await;
    let task = w.task(&endpoint, &w.event());
    let now = Utc::now();
    // A worker claimed it with a 35 s lease, then crashed.
    let claim = w
        .store()
        .claim_attempt(&task, chrono::Duration::seconds(35), now)
        .await
        .unwrap();
    assert_eq!(claim, nuvem_aws::store::AttemptClaim::Acquired);
    deliver(&w.deps, task.clone(), now).await.unwrap();
    assert!(
        w.receiver.received().is_empty(),
        "no second attempt in flight"
    );
    assert_eq!(w.delayed_count().await, 1, "back in the queue, delayed");
    // After the lease the duplicate takes the crashed attempt over.
    deliver(&w.deps, task, now + chrono::Duration::seconds(36))
        .await
        .unwrap();
    assert_eq!(w.receiver.received().len(), 1);
}

/// An `https://` endpoint is spoken to in TLS, with the crypto provider the
/// binary ships (aws-lc-rs, the AWS SDK's): here the receiver speaks plain
/// HTTP, so the handshake fails as an attempt's error, not as a panic, and
/// no request reaches it in the clear.
#[tokio::test(flavor = "multi_thread")]
async fn https_endpoints_are_spoken_to_in_tls() {
    let receiver = Receiver::start().await;
    let url = receiver.url("/tls").replacen("http://", "https://", 1);
    let sender = Sender::new(true);
    // The binaries link no fallback provider (ring): the sender installs one.
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    let sent = sender
        .send(nuvem_aws::webhook::sender::Outgoing {
            method: http::Method::POST,
            url,
            headers: vec![],
            body: b"{}".to_vec(),
            timeout: Duration::from_secs(5),
        })
        .await;
    let error = sent.error.expect("no TLS server there");
    assert_eq!(
        sent.response,
        nuvem_domain::webhook::retry::Response::Network,
        "{error}"
    );
    assert!(receiver.received().is_empty(), "nothing sent in the clear");
}
