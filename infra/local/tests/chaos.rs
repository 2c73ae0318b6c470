//! Chaos: the onboarding, webhooks, quotas, WhatsApp and RPA flows through
//! a stack whose functions' AWS calls go through the fault proxy
//! (`NUVEM_CHAOS_RATE` of them get a throttling or 5xx error, a slow answer
//! or a dropped connection, before or after the emulator applied them; 20 %
//! by default) and whose back-office
//! functions (queue consumers and schedules) have `NUVEM_CHAOS_CRASHES` of
//! their invocations killed part-way (5 %). The flows must end as they end
//! without faults: one account, every fired event delivered to every
//! endpoint subscribed to it (a repeat only with the same `webhook-id`, which
//! is how Standard Webhooks receivers drop duplicates), each event kept once,
//! usage equal to S3's listing with each alert sent once, one bot reply per
//! customer message, at most one filing per process, and nothing in any
//! dead-letter queue.
//!
//! The client is the careful tenant the API documents: it retries 5xx
//! answers, with the same `Idempotency-Key` where the operation takes one,
//! and reads back what a retried create may already have done.
//!
//! `make test` runs every flow small (12 events, 3 messages, 4 processes);
//! `make chaos` runs them larger (`NUVEM_CHAOS_EVENTS`,
//! `NUVEM_CHAOS_MESSAGES`, `NUVEM_CHAOS_PROCESSES`) and prints the figures
//! that go in the README.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Api, activation_token, admin_key, alerts_to};
use nuvem_local::Runner;
use nuvem_local::faults::{FaultKind, FaultSpec};
use nuvem_testkit::emulator;
use nuvem_testkit::receiver::{Received, Receiver};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The API through a client that retries what a server fault answered.
struct Careful<'a> {
    api: Api<'a>,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl Careful<'_> {
    /// Calls until the answer is not a 5xx (the gateway's bare 500 of a
    /// crashed or timed-out function, or the API's 503), waiting as long as
    /// `Retry-After` asks, else a little more each time; the last answer and
    /// whether it needed a retry.
    async fn call(
        &self,
        method: Method,
        path: &str,
        credential: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, bool) {
        for attempt in 0u64.. {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let (status, answer, retry_after) = self
                .api
                .call_with(method.clone(), path, credential, body.clone(), headers)
                .await;
            if !status.is_server_error() || attempt >= 30 {
                return (status, answer, attempt > 0);
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let wait = match retry_after {
                Some(secs) => Duration::from_secs(secs.min(60)),
                None => Duration::from_millis(50 * (attempt + 1).min(10)),
            };
            tokio::time::sleep(wait).await;
        }
        unreachable!("the loop returns")
    }
}

/// Signup → approval → activation, reading back what a retried step had
/// already done: the account's id and the owner's credential.
async fn onboard(api: &Careful<'_>, admin: &str, email: &str) -> (String, String) {
    let signup = json!({
        "organization_name": "Transportadora Caótica", "document": "45.723.174/0001-10",
        "phone": "(31) 3222-1100", "email": email, "imperius_licenses": 2
    });
    let (status, created, retried) = api
        .call(Method::POST, "/v1/signup", None, Some(signup), &[])
        .await;
    let id = match status {
        StatusCode::CREATED => created["id"].as_str().unwrap().to_owned(),
        // The first attempt went through, its answer did not.
        StatusCode::CONFLICT if retried => {
            let (status, pending, _) = api
                .call(
                    Method::GET,
                    "/v1/admin/accounts?status=pending&limit=100",
                    Some(admin),
                    None,
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{pending}");
            let mine: Vec<&Value> = pending["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["email"] == email)
                .collect();
            assert_eq!(mine.len(), 1, "one account: {pending}");
            mine[0]["id"].as_str().unwrap().to_owned()
        }
        _ => panic!("signup: {status} {created}"),
    };

    let (status, approved, retried) = api
        .call(
            Method::POST,
            &format!("/v1/admin/accounts/{id}/approve"),
            Some(admin),
            Some(json!({"quota_gb": 1, "imperius_licenses": 2})),
            &[],
        )
        .await;
    assert!(
        status == StatusCode::OK || (retried && status == StatusCode::CONFLICT),
        "approve: {status} {approved}"
    );

    settle(
        api.api.runner,
        &format!("the activation email to {email}"),
        || async {
            let mails = emulator().await.sent_emails().await.unwrap();
            mails
                .iter()
                .any(|m| m.to.iter().any(|t| t == email))
                .then_some(())
        },
    )
    .await;
    let token = activation_token(email).await;
    common::secret(&token);
    let (status, key, _) = api
        .call(
            Method::POST,
            "/v1/activate",
            None,
            Some(json!({ "token": token })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "activate: {key}");
    (id, key["credential"].as_str().unwrap().to_owned())
}

/// A webhook endpoint for `event_types` at `url`; a create retried after
/// its first attempt went through leaves an endpoint whose secret this
/// client never saw, so it deletes every endpoint at `url` but its own.
async fn endpoint(api: &Careful<'_>, owner: &str, url: &str) -> (String, String) {
    let body = json!({"url": url, "event_types": ["custom.chaos.tick"]});
    let (status, created, _) = api
        .call(Method::POST, "/v1/webhooks", Some(owner), Some(body), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (status, list, _) = api
        .call(
            Method::GET,
            "/v1/webhooks?limit=100",
            Some(owner),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    for other in list["items"].as_array().unwrap() {
        if other["url"] == url && other["id"] != id.as_str() {
            let path = format!("/v1/webhooks/{}", other["id"].as_str().unwrap());
            let (status, answer, _) = api
                .call(Method::DELETE, &path, Some(owner), None, &[])
                .await;
            assert!(
                status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND,
                "{answer}"
            );
        }
    }
    (id, secret)
}

/// The distinct event ids an endpoint received, after checking that every
/// request was signed with its secret and that a repeat of an event carries
/// the first one's `webhook-id`; and how many requests were repeats.
fn delivered(received: &[Received], path: &str, secret: &str) -> (BTreeSet<String>, usize) {
    let mut by_webhook_id: BTreeMap<String, String> = BTreeMap::new();
    let mut by_event: BTreeMap<String, String> = BTreeMap::new();
    let mut requests = 0;
    for r in received.iter().filter(|r| r.path == path) {
        requests += 1;
        r.verify(secret).expect("signed with the endpoint's secret");
        let webhook_id = r.header("webhook-id").unwrap().to_owned();
        let event = r.json()["id"].as_str().unwrap().to_owned();
        let first = by_webhook_id
            .entry(webhook_id.clone())
            .or_insert(event.clone());
        assert_eq!(*first, event, "one webhook-id, one event");
        let id = by_event.entry(event).or_insert(webhook_id.clone());
        assert_eq!(*id, webhook_id, "a repeat keeps its webhook-id");
    }
    let events: BTreeSet<String> = by_event.into_keys().collect();
    let repeats = requests - events.len();
    (events, repeats)
}

/// Waits until `check` gives a value, running the outbox relay and the RPA
/// scheduler every few seconds as their schedules would: an event whose
/// first send failed waits for the relay (after its 60 s grace), an RPA
/// execution whose job message was lost for the scheduler's sweep (2
/// minutes overdue). Fails after ten minutes: the slowest recovery, a
/// schedule run whose claim's answer was lost, waits out its 5-minute
/// lease; only a stack that lost something takes longer.
async fn settle<T, F, Fut>(runner: &Runner, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    let mut relayed = started;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "gave up after 10 minutes waiting for {what}: {:?}",
            runner.fault_counts()
        );
        if relayed.elapsed() >= Duration::from_secs(2) {
            let _ = runner.run_schedule("OutboxRelay", "Every5Minutes").await;
            let _ = runner.run_schedule("RpaScheduler", "Tick").await;
            relayed = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One account for the email, the one onboarded, active (none left pending
/// by a retried signup).
async fn assert_one_active_account(api: &Careful<'_>, admin: &str, email: &str, account: &str) {
    let mut mine = Vec::new();
    for status in ["pending", "active"] {
        let path = format!("/v1/admin/accounts?status={status}&limit=100");
        let (code, page, _) = api.call(Method::GET, &path, Some(admin), None, &[]).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        mine.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["email"] == email)
                .map(|a| (a["id"].clone(), a["status"].clone())),
        );
    }
    assert_eq!(mine, [(json!(account), json!("active"))], "one account");
}

/// The stack at rest: every queue drained (after the outbox relay found
/// nothing left to send), and nothing in any dead-letter queue.
async fn assert_settled(runner: &Runner) {
    settle(runner, "every queue drained", || async {
        let (work, _) = queue_depths(runner).await;
        work.values().all(|n| *n == 0).then_some(())
    })
    .await;
    let (_, dead) = queue_depths(runner).await;
    assert!(dead.values().all(|n| *n == 0), "dead letters: {dead:?}");
}

/// Messages in the stack's queues (visible, in flight or delayed), by
/// queue: the work queues, and the dead-letter queues.
async fn queue_depths(runner: &Runner) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let sqs = aws_sdk_sqs::Client::new(&emulator().await.sdk_config().await);
    let (mut work, mut dead) = (BTreeMap::new(), BTreeMap::new());
    for (logical_id, queue) in &runner.stack().queues {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let n = count(A::ApproximateNumberOfMessages)
            + count(A::ApproximateNumberOfMessagesNotVisible)
            + count(A::ApproximateNumberOfMessagesDelayed);
        let side = if logical_id.ends_with("DLQ") {
            &mut dead
        } else {
            &mut work
        };
        side.insert(logical_id.clone(), n);
    }
    (work, dead)
}

/// How hard the chaos is: the share of AWS calls with a fault
/// (`NUVEM_CHAOS_RATE`) and of back-office invocations killed
/// (`NUVEM_CHAOS_CRASHES`).
fn rates() -> (f64, f64) {
    (
        env_or("NUVEM_CHAOS_RATE", 0.2),
        env_or("NUVEM_CHAOS_CRASHES", 0.05),
    )
}

/// The whole stack with the faults of [`rates`] and `params`.
async fn chaos_stack(name: &str, params: &[(&str, &str)]) -> Runner {
    let (rate, crash_rate) = rates();
    let faults: FaultSpec = format!("rate={rate}").parse().unwrap();
    // The functions that crash: those SQS and schedules invoke, where
    // nothing-lost-nothing-twice is the stack's own promise (an HTTP
    // function's crash is a 500 its client sees).
    let template =
        nuvem_testkit::Template::load(&nuvem_testkit::template_path(), &BTreeMap::new()).unwrap();
    let mut back_office: BTreeSet<String> = template
        .queue_consumers()
        .into_iter()
        .map(|(f, _)| f.logical_id.clone())
        .collect();
    back_office.extend(
        template
            .schedules()
            .into_iter()
            .map(|(f, _, _)| f.logical_id.clone()),
    );
    let crashes = format!(
        "rate={crash_rate},within-ms=300,functions={}",
        back_office.into_iter().collect::<Vec<_>>().join("+")
    );
    let mut all = vec![
        ("SignupsPerHourPerAddress", "1000"),
        // A key the authorizer could not check is answered 503 with
        // Retry-After for as long as API Gateway keeps that answer.
        ("AuthorizerCacheSeconds", "2"),
    ];
    all.extend_from_slice(params);
    common::stack_with(name, &all, |o| {
        o.faults = Some(faults);
        o.crashes = Some(crashes.parse().unwrap());
        // Failed records come back 5, 10, 20 and 40 s apart: their five
        // receives outlast a 60 s claim lease, as the queues' own
        // visibility timeouts (minutes) do.
        o.sqs_failure_visibility = Some(Duration::from_secs(5));
    })
    .await
}

fn careful<'a>(runner: &'a Runner) -> Careful<'a> {
    Careful {
        api: Api {
            http: Client::new(),
            runner,
        },
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    }
}

/// The figures of a chaos run, for the README.
fn report(flow: &str, runner: &Runner, api: &Careful<'_>, outcome: &str) {
    let (rate, crash_rate) = rates();
    let counts = runner.fault_counts();
    let report = format!(
        "chaos {flow}: {rate} of AWS calls faulted, {crash_rate} of back-office invocations killed\n\
         API requests {} ({} retried by the client)\n{}{outcome}\n",
        api.requests.load(Ordering::Relaxed),
        api.retries.load(Ordering::Relaxed),
        counts.describe(),
    );
    print!("{report}");
    // `make chaos` collects the figures here (the functions' output
    // drowns stdout).
    if let Ok(path) = std::env::var("NUVEM_CHAOS_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        file.write_all(report.as_bytes()).unwrap();
    }
    assert!(counts.injected() > 0, "faults were injected: {counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn under_faults_every_event_reaches_every_endpoint_once_and_nothing_is_dead_lettered() {
    let events: usize = env_or("NUVEM_CHAOS_EVENTS", 12);
    let runner = chaos_stack("chaos", &[("WebhookAllowLoopback", "true")]).await;
    let api = careful(&runner);
    let admin = admin_key(&runner);
    let email = "ti@caotica.com.br";
    let (account, owner) = onboard(&api, &admin, email).await;

    let receiver = Receiver::start().await;
    let paths = ["/erp", "/crm"];
    let mut endpoints = Vec::new();
    for path in paths {
        endpoints.push(endpoint(&api, &owner, &receiver.url(path)).await);
    }

    // Fire the events, each with its own Idempotency-Key, retried as needed.
    let mut fired = BTreeSet::new();
    for n in 0..events {
        let key = format!("chaos-tick-{n}");
        let body = json!({"type": "custom.chaos.tick", "data": {"n": n}});
        let (status, event, _) = api
            .call(
                Method::POST,
                "/v1/events",
                Some(&owner),
                Some(body),
                &[("idempotency-key", &key)],
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}");
        assert!(fired.insert(event["id"].as_str().unwrap().to_owned()));
    }

    // Every event at both endpoints.
    settle(&runner, "every event at both endpoints", || async {
        let received = receiver.received();
        endpoints
            .iter()
            .zip(paths)
            .all(|((_, secret), path)| delivered(&received, path, secret).0.is_superset(&fired))
            .then_some(())
    })
    .await;
    let received = receiver.received();
    let mut repeats = 0;
    for ((_, secret), path) in endpoints.iter().zip(paths) {
        let (got, repeated) = delivered(&received, path, secret);
        assert_eq!(got, fired, "{path}: every event, and only those fired");
        repeats += repeated;
    }
    let kept: Vec<String> = all_items(&api, &owner, "/v1/events")
        .await
        .iter()
        .filter(|e| e["type"] == "custom.chaos.tick")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kept.iter().cloned().collect::<BTreeSet<_>>(),
        fired,
        "each event kept"
    );
    assert_eq!(kept.len(), fired.len(), "each event kept once: {kept:?}");
    assert_one_active_account(&api, &admin, email, &account).await;
    assert_settled(&runner).await;

    report(
        "webhooks",
        &runner,
        &api,
        &format!(
            "events fired {}, deliveries {} (repeats with the same webhook-id: {repeats}), \
             items lost: 0, dead letters: 0",
            fired.len(),
            received.len()
        ),
    );
    common::assert_no_secret_logged();
}

#[tokio::test(flavor = "multi_thread")]
async fn under_faults_usage_stays_exact_and_each_alert_is_sent_once() {
    let emulator_url = emulator().await.endpoint().to_owned();
    let runner = chaos_stack("chaos-quota", &[("S3ClientEndpoint", &emulator_url)]).await;
    let api = careful(&runner);
    let admin = admin_key(&runner);
    let email = "ti@backup-caotico.com.br";
    let (account, owner) = onboard(&api, &admin, email).await;
    // 0.001 GB = 1 000 000 bytes.
    let (status, body, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/admin/accounts/{account}"),
            Some(&admin),
            Some(json!({"quota_gb": 0.001})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bucket; a create retried after its first attempt went through is
    // a 409, and the bucket is read back.
    let (status, created, retried) = api
        .call(
            Method::POST,
            "/v1/buckets",
            Some(&owner),
            Some(json!({"name": "copias"})),
            &[],
        )
        .await;
    let bucket = match status {
        StatusCode::CREATED => created["bucket"].as_str().unwrap().to_owned(),
        StatusCode::CONFLICT if retried => {
            let (status, list, _) = api
                .call(Method::GET, "/v1/buckets", Some(&owner), None, &[])
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            let found = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["name"] == "copias")
                .unwrap_or_else(|| panic!("{list}"));
            found["bucket"].as_str().unwrap().to_owned()
        }
        _ => panic!("create bucket: {status} {created}"),
    };

    // The tenant's backups, straight to S3 (the emulator), as a backup
    // client writes them: to 80 %, then to 100 %, then half deleted and
    // one overwritten twice. S3 notifies quota-alerts of each.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&emulator().await.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let put = |key: String, size: usize| {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(vec![7u8; size].into())
            .send()
    };
    let used = || async {
        let (status, usage, _) = api
            .call(Method::GET, "/v1/usage", Some(&owner), None, &[])
            .await;
        (status == StatusCode::OK).then(|| usage["used_bytes"].as_u64().unwrap_or(0))
    };
    // The alerts' levels, as emailed (an email is sent at least once: one
    // whose sending was in doubt may come twice, see below).
    let levels = || async {
        alerts_to(email)
            .await
            .iter()
            .filter_map(|subject| {
                ["80%", "95%", "100%"]
                    .into_iter()
                    .find(|l| subject.contains(l))
            })
            .collect::<BTreeSet<_>>()
    };
    let reach = |bytes: u64, expected: &'static [&'static str]| {
        let (used, levels) = (&used, &levels);
        let runner = &runner;
        async move {
            settle(
                runner,
                &format!("usage at {bytes} and the alerts {expected:?}"),
                || async {
                    (used().await == Some(bytes)
                        && levels().await == expected.iter().copied().collect())
                    .then_some(())
                },
            )
            .await
        }
    };
    for n in 0..8 {
        put(format!("dia-{n:02}.tar"), 100_000).await.unwrap();
    }
    reach(800_000, &["80%"]).await;
    for n in 8..10 {
        put(format!("dia-{n:02}.tar"), 100_000).await.unwrap();
    }
    reach(1_000_000, &["80%", "100%"]).await;
    for n in 0..5 {
        s3.delete_object()
            .bucket(&bucket)
            .key(format!("dia-{n:02}.tar"))
            .send()
            .await
            .unwrap();
    }
    put("dia-05.tar".to_owned(), 50_000).await.unwrap();
    put("dia-05.tar".to_owned(), 120_000).await.unwrap();
    reach(520_000, &["80%", "100%"]).await;
    assert_settled(&runner).await;

    // Exact against S3's own listing, and each alert once.
    let listed: i64 = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.size())
        .sum();
    assert_eq!(used().await, Some(listed as u64));
    // Each alert once, but for emails whose sending was in doubt: SES took
    // the message and its answer was lost (the SDK, or fanout, sends it
    // again: SES has no idempotency token), or fanout was killed between
    // the send and recording it. Email is at least once.
    let alerts = alerts_to(email).await;
    let counts = runner.fault_counts();
    let in_doubt = counts
        .faults
        .iter()
        .filter(|((kind, call), _)| {
            call == "ses:SendEmail"
                && matches!(
                    kind,
                    FaultKind::ErrorAfter | FaultKind::DropAfter | FaultKind::Slow
                )
        })
        .map(|(_, n)| *n)
        .sum::<u64>()
        + counts.crashes;
    assert!(
        alerts.len() as u64 <= 2 + in_doubt,
        "{alerts:?}, {in_doubt} in doubt"
    );
    assert!(
        alerts[0].contains("80%") && alerts.last().unwrap().contains("100%"),
        "{alerts:?}"
    );
    assert_one_active_account(&api, &admin, email, &account).await;
    report(
        "quotas",
        &runner,
        &api,
        &format!(
            "objects written 12, deleted 5, usage exact ({listed} bytes), alerts 80 % and 100 % in {} emails ({in_doubt} sends in doubt), dead letters: 0",
            alerts.len()
        ),
    );
    common::assert_no_secret_logged();
}

/// Meta's side of a webhook: the notification signed with the app secret,
/// sent again until it is answered 200 (as Meta retries), counted.
async fn meta_posts(api: &Careful<'_>, app_secret: &str, body: &Value) {
    let body = serde_json::to_vec(body).unwrap();
    let signature = nuvem_domain::whatsapp::signature::sign(app_secret, &body);
    let url = format!("{}/v1/whatsapp/webhook", api.api.runner.base_url());
    for attempt in 0..50 {
        api.requests.fetch_add(1, Ordering::Relaxed);
        let resp = api
            .api
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            return;
        }
        assert!(resp.status().is_server_error(), "{}", resp.status());
        api.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
    }
    panic!("the webhook was never answered 200");
}

/// The bot's replies in each conversation of the store, by customer:
/// (state, error reason), oldest first.
async fn bot_replies(
    api: &Careful<'_>,
    owner: &str,
    store: &str,
) -> BTreeMap<String, Vec<(String, String)>> {
    let path = format!("/v1/whatsapp/stores/{store}/conversations?limit=100");
    let (status, conversations, _) = api.call(Method::GET, &path, Some(owner), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{conversations}");
    let mut out = BTreeMap::new();
    for c in conversations["items"].as_array().unwrap() {
        let path = format!(
            "/v1/whatsapp/stores/{store}/conversations/{}/messages?limit=100",
            c["id"].as_str().unwrap()
        );
        let (status, page, _) = api.call(Method::GET, &path, Some(owner), None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let replies = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "outbound" && m["origin"] == "bot")
            .map(|m| {
                let state = m["state"].as_str().unwrap_or("sent").to_owned();
                let reason = m["error"]["reason"].as_str().unwrap_or("").to_owned();
                (state, reason)
            })
            .collect();
        out.insert(c["wa_id"].as_str().unwrap_or_default().to_owned(), replies);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn under_faults_each_customer_message_gets_one_reply_and_none_twice() {
    use nuvem_testkit::fake_chat::FakeChat;
    use nuvem_testkit::fake_graph::FakeGraph;
    const NUMBER: &str = "106540352242923";
    const TOKEN: &str = "EAAGm0PX4ZCpsE2F";
    const APP_SECRET: &str = "segredo-do-app-caos";
    const CHAT_KEY: &str = "sk-or-v1-caos";
    let rounds: usize = env_or("NUVEM_CHAOS_MESSAGES", 3);
    let customers: Vec<String> = (1..=4).map(|n| format!("551190000000{n}")).collect();

    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+55 11 98765-4322", "Pizzaria Caótica");
    let chat = FakeChat::start(CHAT_KEY).await;
    let runner = chaos_stack(
        "chaos-zap",
        &[("GraphApiUrl", &graph.url()), ("ChatApiUrl", &chat.url())],
    )
    .await;
    common::put_secret(
        &runner,
        "WhatsAppSecret",
        json!({"app_secret": APP_SECRET, "verify_token": "v"}),
    )
    .await;
    common::put_secret(&runner, "ChatApiSecret", json!({"api_key": CHAT_KEY})).await;
    let api = careful(&runner);
    let admin = admin_key(&runner);
    let email = "zap@caotica.com.br";
    let (account, owner) = onboard(&api, &admin, email).await;

    // The store and its number. A create retried after its first attempt
    // went through leaves a second store without a number: harmless, the
    // number routes to the one that holds it.
    let (status, store, _) = api
        .call(
            Method::POST,
            "/v1/whatsapp/stores",
            Some(&owner),
            Some(json!({"name": "Pizzaria Caótica", "store_type": "restaurante", "message_limit": 500})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    let store = store["id"].as_str().unwrap().to_owned();
    let (status, slot, _) = api
        .call(
            Method::PUT,
            &format!("/v1/whatsapp/stores/{store}/numbers/1"),
            Some(&owner),
            Some(
                json!({"phone_number_id": NUMBER, "waba_id": "102290129340399",
                        "display_phone_number": "+55 11 98765-4322", "access_token": TOKEN}),
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{slot}");

    // Rounds of the customers writing at once; Meta sends each webhook
    // twice. A round ends when every customer's message has its reply in
    // a final state.
    let notification = |customer: &str, wamid: &str, text: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340399", "changes": [{
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "5511987654322", "phone_number_id": NUMBER},
                "contacts": [{"profile": {"name": "Cliente"}, "wa_id": customer}],
                "messages": [{"from": customer, "id": wamid, "type": "text",
                              "timestamp": chrono::Utc::now().timestamp().to_string(),
                              "text": {"body": text}}]
            }
        }]}]})
    };
    let mut inbound = BTreeSet::new();
    for round in 0..rounds {
        for customer in &customers {
            let wamid = format!("wamid.caos.{customer}.{round}");
            let body = notification(customer, &wamid, &format!("Pedido {round} de {customer}"));
            for _ in 0..2 {
                meta_posts(&api, APP_SECRET, &body).await;
            }
            inbound.insert(wamid);
        }
        settle(
            &runner,
            &format!("the replies of round {round}"),
            || async {
                let replies = bot_replies(&api, &owner, &store).await;
                customers
                    .iter()
                    .all(|c| {
                        replies.get(c).is_some_and(|r| {
                            r.len() == round + 1
                                && r.iter()
                                    .all(|(state, _)| state == "sent" || state == "failed")
                        })
                    })
                    .then_some(())
            },
        )
        .await;
    }
    assert_settled(&runner).await;

    // At the Graph API: never two replies to one message, only replies to
    // the customers' messages.
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for s in graph.sends() {
        let to = s.body["context"]["message_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        *sends.entry(to).or_default() += 1;
    }
    assert!(
        sends.values().all(|n| *n == 1),
        "a message answered twice: {sends:?}"
    );
    assert!(sends.keys().all(|to| inbound.contains(to)), "{sends:?}");
    // Each message's reply is sent, or recorded failed because its sender
    // stopped mid-call (outcome unknown: not sent again, for a person to see).
    // A reply recorded `outcome_unknown` may have reached Meta or not (its
    // sender stopped after the call, or before): so every reply recorded
    // sent was taken by Meta, and Meta took no more than those and the
    // unknown ones.
    let replies = bot_replies(&api, &owner, &store).await;
    let (mut sent, mut unknown) = (0, 0);
    for customer in &customers {
        let mine = &replies[customer];
        assert_eq!(mine.len(), rounds, "{customer}: {mine:?}");
        for (state, reason) in mine {
            match state.as_str() {
                "sent" => sent += 1,
                "failed" if reason == "outcome_unknown" => unknown += 1,
                _ => panic!("{customer}: {mine:?}"),
            }
        }
    }
    assert_eq!(sent + unknown, inbound.len());
    assert!(
        sent <= sends.len() && sends.len() <= sent + unknown,
        "{sent} recorded sent, {unknown} unknown, {} taken by Meta",
        sends.len()
    );
    assert_one_active_account(&api, &admin, email, &account).await;
    report(
        "whatsapp",
        &runner,
        &api,
        &format!(
            "customer messages {} (each webhook twice), replies recorded sent {sent}, recorded outcome unknown \
             {unknown} (of which Meta took {}), replies twice: 0, model calls {}, dead letters: 0",
            inbound.len(),
            sends.len() - sent,
            chat.requests().len()
        ),
    );
    common::assert_no_secret_logged();
}

/// Every item of a listing (all pages).
async fn all_items(api: &Careful<'_>, key: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
            None => format!("{path}{sep}limit=100"),
        };
        let (status, page, _) = api
            .call(Method::GET, &page_path, Some(key), None, &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{page_path}: {page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// A create that, retried after its first attempt went through, may answer
/// 409: either is done.
fn created_or_retried(what: &str, (status, answer, retried): &(StatusCode, Value, bool)) {
    assert!(
        status.is_success() || (*retried && *status == StatusCode::CONFLICT),
        "{what}: {status} {answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn under_faults_each_process_is_filed_once_at_most() {
    use nuvem_aws::store::Store;
    use nuvem_testkit::fake_rpa::{Behaviour, FakeRpa};
    const TOKEN: &str = "token-do-rpa-caos";
    let processes: usize = env_or("NUVEM_CHAOS_PROCESSES", 4);

    let rpa = FakeRpa::start(TOKEN).await;
    rpa.set_default(Behaviour::Succeed { polls: 0 });
    let runner = chaos_stack("chaos-rpa", &[("RpaApiUrl", &rpa.url())]).await;
    common::put_secret(&runner, "RpaApiSecret", json!({"token": TOKEN})).await;
    let api = careful(&runner);
    let admin = admin_key(&runner);
    let email = "rpa@caotica.com.br";
    let (account, owner) = onboard(&api, &admin, email).await;
    let (status, approver, _) = api
        .call(
            Method::POST,
            "/v1/keys",
            Some(&owner),
            Some(json!({"name": "Aprovação", "role": "approver", "expires_at": null})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approver}");
    let approver = approver["credential"].as_str().unwrap().to_owned();

    let carrier = api
        .call(
            Method::POST,
            "/v1/rpa/carriers",
            Some(&owner),
            Some(json!({"code": "VIVO", "name": "Vivo Empresas"})),
            &[],
        )
        .await;
    created_or_retried("carrier", &carrier);
    for n in 1..=processes {
        let client = api
            .call(
                Method::POST,
                "/v1/rpa/clients",
                Some(&owner),
                Some(json!({
                    "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
                    "carrier": "VIVO", "unit": format!("Unidade {n}"),
                    "portal_login": "financeiro", "portal_password": "s3nh@-do-portal",
                    "sat_data": "ie 123"
                })),
                &[],
            )
            .await;
        created_or_retried("client", &client);
    }
    let units: BTreeMap<String, String> = all_items(&api, &owner, "/v1/rpa/clients")
        .await
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["unit"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(units.len(), processes, "one client per unit: {units:?}");
    let schedule = api
        .call(
            Method::POST,
            "/v1/rpa/schedules",
            Some(&owner),
            Some(json!({"name": "Processos do mês", "cron": "0 6 1 * *",
                        "type": "create_monthly_processes", "parameters": {"carriers": ["VIVO"]}})),
            &[],
        )
        .await;
    created_or_retried("schedule", &schedule);
    // The month comes: the schedule is due.
    let store = Store::new(
        &emulator().await.sdk_config().await,
        runner.stack().table("Table"),
    );
    let schedules = all_items(&api, &owner, "/v1/rpa/schedules").await;
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    common::due_now(&store, &account, schedules[0]["id"].as_str().unwrap(), 1).await;

    // The scheduler ticks (each minute in a deployment) until the month's
    // processes exist; an operator starts each download.
    let created = settle(&runner, "the month's processes", || async {
        let created = all_items(&api, &owner, "/v1/rpa/processes?status=awaiting_download").await;
        (created.len() == processes).then_some(created)
    })
    .await;
    for p in &created {
        let id = p["id"].as_str().unwrap();
        let download = api
            .call(
                Method::POST,
                &format!("/v1/rpa/processes/{id}/download"),
                Some(&owner),
                None,
                &[],
            )
            .await;
        created_or_retried("download", &download);
    }
    let waiting = settle(&runner, "every invoice downloaded", || async {
        let waiting = all_items(&api, &owner, "/v1/rpa/processes?status=awaiting_approval").await;
        (waiting.len() == processes).then_some(waiting)
    })
    .await;
    for p in &waiting {
        let id = p["id"].as_str().unwrap();
        let approved = api
            .call(
                Method::POST,
                &format!("/v1/rpa/processes/{id}/approve"),
                Some(&approver),
                None,
                &[],
            )
            .await;
        created_or_retried("approve", &approved);
        let filing = api
            .call(
                Method::POST,
                &format!("/v1/rpa/processes/{id}/tax-filing"),
                Some(&owner),
                None,
                &[],
            )
            .await;
        created_or_retried("tax filing", &filing);
    }

    // Each process ends filed, or waiting for a person where its filing's
    // start is uncertain (a worker stopped mid-call): never filed twice.
    let outcome = settle(&runner, "every filing settled", || async {
        let mut filed = 0;
        let mut review = 0;
        for p in &waiting {
            let id = p["id"].as_str().unwrap();
            let path = format!("/v1/rpa/processes/{id}");
            let (_, process, _) = api.call(Method::GET, &path, Some(&owner), None, &[]).await;
            if process["status"] == "filed" {
                filed += 1;
                continue;
            }
            let executions = all_items(&api, &owner, &format!("{path}/executions")).await;
            let latest = executions.iter().find(|e| e["step"] == "tax_filing");
            match latest {
                Some(e) if e["status"] == "needs_review" => review += 1,
                _ => return None,
            }
        }
        Some((filed, review))
    })
    .await;
    assert_settled(&runner).await;
    let mut filings: BTreeMap<String, usize> = BTreeMap::new();
    for start in rpa.starts().iter().filter(|s| s.is_filing_start()) {
        *filings
            .entry(start.body["unidade"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    assert!(
        filings.values().all(|n| *n == 1),
        "a process filed twice: {filings:?}"
    );
    assert!(
        filings.keys().all(|u| units.values().any(|v| v == u)),
        "{filings:?}"
    );
    let (filed, review) = outcome;
    assert_eq!(filed + review, processes);
    assert!(
        filings.len() >= filed,
        "every filed process was filed: {filings:?}"
    );
    assert_one_active_account(&api, &admin, email, &account).await;
    report(
        "rpa",
        &runner,
        &api,
        &format!(
            "processes {processes}: filed {filed}, left to a person (filing start uncertain) {review}, \
             filed twice: 0, downloads started {}, dead letters: 0",
            rpa.starts()
                .iter()
                .filter(|s| s.is_download_start())
                .count()
        ),
    );
    common::assert_no_secret_logged();
}
