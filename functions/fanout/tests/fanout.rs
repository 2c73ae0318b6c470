//! The email channel of `fanout` against the emulator's SQS, DynamoDB and SES,
//! from `events/fanout/account-approved.json`.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use nuvem_aws::mail::Mailer;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::store::{AccountRecord, Store};
use nuvem_domain::account::{AccountStatus, Locale};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_testkit::fixtures::{
    failed_ids, failed_ids_without_dead_letter_queue, fixture, sqs_batch, sqs_message,
};
use nuvem_testkit::{Emulator, SentEmail, TestStack};
use serde_json::json;

async fn deps() -> (fanout::Deps, &'static Emulator) {
    let t = TestStack::new("fanout").await;
    (deps_of(&t), t.emulator)
}

/// The function's dependencies on a test stack, as its `main` builds them.
fn deps_of(t: &TestStack) -> fanout::Deps {
    let env = t.env("Fanout");
    fanout::Deps {
        store: Store::new(&t.sdk, t.table()),
        mailer: Mailer::new(&t.sdk, env("MAIL_FROM").unwrap()),
        deliveries: nuvem_aws::deliveries::DeliveryQueue::new(
            &t.sdk,
            &t.stack.queue("DeliveriesQueue").url,
        ),
        outbound: nuvem_aws::whatsapp_jobs::OutboundQueue::new(
            &t.sdk,
            &t.stack.queue("WhatsAppOutboundQueue").url,
        ),
        public_base_url: "https://app.example.com.br/".into(),
        access: nuvem_aws::storage_access::StorageAccess::from_lookup(&t.sdk, &env).unwrap(),
    }
}

/// A stored account with a mailbox of its own, in `locale` and `status`.
async fn account(deps: &fanout::Deps, locale: Locale, status: AccountStatus) -> AccountRecord {
    nuvem_testkit::tenants::account_with(&deps.store, |account| {
        account.organization_name = "Café <Bom> & Cia".into();
        account.locale = locale;
        account.status = status;
        account.rejection_reason =
            (status == AccountStatus::Rejected).then(|| "CNPJ inativo na Receita".into());
    })
    .await
}

/// The fixture's record carrying `event` (and the token attribute if given).
fn record(message_id: &str, event: &Envelope, token: Option<&str>) -> SqsMessage {
    let fixture: SqsEvent = fixture("fanout/account-approved.json");
    let mut message = fixture.records.into_iter().next().unwrap();
    message.message_id = Some(message_id.into());
    message.body = Some(serde_json::to_string(event).unwrap());
    match token {
        Some(t) => {
            message
                .message_attributes
                .get_mut(ACTIVATION_TOKEN_ATTRIBUTE)
                .unwrap()
                .string_value = Some(t.into())
        }
        None => {
            message
                .message_attributes
                .remove(ACTIVATION_TOKEN_ATTRIBUTE);
        }
    }
    message
}

async fn mails_to(emu: &Emulator, to: &str) -> Vec<SentEmail> {
    emu.sent_emails()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .collect()
}

fn approved(account: &AccountRecord) -> Envelope {
    Envelope::new(
        EventType::AccountApproved,
        &account.id,
        json!({"quota_gb": 1.0, "imperius_licenses": 1, "activation_expires_at": "2026-12-01T12:00:00Z"}),
        Utc::now(),
    )
}

#[tokio::test]
async fn approval_sends_one_portuguese_activation_email_however_often_it_is_delivered() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let event = approved(&account);
    let token = "nvm_at_0123456789abcdefghijABCDEFGHIJ0123456789a";
    // Twice in one batch, then again in a later batch.
    let first = sqs_batch(vec![
        record("m1", &event, Some(token)),
        record("m2", &event, Some(token)),
    ]);
    let answer = fanout::handle(&deps, first).await;
    let failed = failed_ids(&answer);
    assert!(failed.is_empty(), "{failed:?}");
    let again = fanout::handle(&deps, sqs_batch(vec![record("m3", &event, Some(token))])).await;
    assert!(again.batch_item_failures.is_empty());

    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    let link = format!("https://app.example.com.br/activate?token={token}");
    // moto keeps one part of a Simple message (the HTML); the plain-text part
    // is rendered by `nuvem_domain::mail` and unit-tested there.
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(html.contains(&link));
    assert!(mail.text.as_deref().is_none_or(|t| t.contains(&link)));
    assert!(
        mail.html
            .as_deref()
            .unwrap()
            .contains("Café &lt;Bom&gt; &amp; Cia")
    );
    assert!(
        mail.subject.to_lowercase().contains("conta"),
        "pt-BR subject: {}",
        mail.subject
    );
}

/// The outbox relay's copy of an event whose direct message is still at
/// work (here: its invocation died after claiming the email) is
/// acknowledged, not retried into the DLQ; the direct message, received
/// again, sends the email at once instead of waiting out the claim's lease.
#[tokio::test]
async fn a_copy_of_an_event_in_progress_is_acknowledged_and_its_holder_sends_on_return() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let event = approved(&account);
    let token = "nvm_at_0123456789abcdefghijABCDEFGHIJ0123456789b";
    let received = |message_id: &str, count: u32| {
        let mut r = record(message_id, &event, Some(token));
        r.attributes
            .insert("ApproximateReceiveCount".into(), count.to_string());
        r
    };
    let delivery = nuvem_aws::idempotency::Delivery {
        message_id: "direct",
        receive_count: 1,
    };
    let claim = deps
        .store
        .claim("fanout-email", &event.id, 60, Utc::now(), Some(delivery))
        .await
        .unwrap();
    assert_eq!(claim, nuvem_aws::idempotency::Claim::Acquired);

    let copy = fanout::handle(&deps, sqs_batch(vec![received("relayed", 1)])).await;
    assert!(copy.batch_item_failures.is_empty());
    assert!(mails_to(emu, &account.email).await.is_empty());

    let back = fanout::handle(&deps, sqs_batch(vec![received("direct", 2)])).await;
    assert!(back.batch_item_failures.is_empty());
    let again = fanout::handle(&deps, sqs_batch(vec![received("relayed", 2)])).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(mails_to(emu, &account.email).await.len(), 1);
}

/// An approval that reaches fanout without its token (the outbox relay's
/// copy, when the request's own send never happened) still gets its
/// account an activation link: a new token, stored by its hash, emailed
/// once however often the copy comes; an activated account gets none.
#[tokio::test]
async fn a_relayed_approval_without_its_token_emails_a_new_working_link_once() {
    let t = TestStack::new("fanout-relayed").await;
    let deps = deps_of(&t);
    let waiting =
        nuvem_testkit::tenants::account_with(&deps.store, |a| a.activated_at = None).await;
    let activated = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let (first, other) = (approved(&waiting), approved(&activated));
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![
            record("relayed-1", &first, None),
            record("relayed-2", &first, None),
            record("relayed-3", &other, None),
        ]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    assert!(mails_to(t.emulator, &activated.email).await.is_empty());
    let mails = mails_to(t.emulator, &waiting.email).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let html = mails[0].html.as_deref().unwrap();
    let token = html
        .split("activate?token=")
        .nth(1)
        .and_then(|rest| rest.split(['"', '<', '&']).next())
        .expect("a link with a token");
    let db = aws_sdk_dynamodb::Client::new(&t.sdk);
    let stored = nuvem_testkit::inspect::scan_all(&db, t.table()).await;
    let pk = format!("ACTIVATION#{}", nuvem_domain::token::hash_token(token));
    let activation = stored
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
        .expect("the emailed token is stored by its hash");
    assert_eq!(
        activation["account_id"].as_s().unwrap(),
        &waiting.id,
        "{activation:?}"
    );
}

#[tokio::test]
async fn rejection_is_emailed_in_the_accounts_language_with_the_reason() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::En, AccountStatus::Rejected).await;
    let event = Envelope::new(
        EventType::AccountRejected,
        &account.id,
        json!({"reason": "x"}),
        Utc::now(),
    );
    let answer = fanout::handle(&deps, sqs_batch(vec![record("r1", &event, None)])).await;
    assert!(answer.batch_item_failures.is_empty());
    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1);
    let body = mails[0]
        .html
        .as_deref()
        .or(mails[0].text.as_deref())
        .unwrap();
    assert!(body.contains("CNPJ inativo na Receita"));
    assert!(
        mails[0].subject.contains("update on your nuvem signup"),
        "English subject: {}",
        mails[0].subject
    );
}

/// A record whose body is not an event is set aside for the dead-letter
/// queue (see whatsapp-outbound's test of `set_aside`), not failed; the
/// others are handled, and one that fails fails alone.
#[tokio::test]
async fn a_poison_record_is_set_aside_and_a_failing_one_fails_alone() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let good = record("good", &approved(&account), Some("nvm_at_tok"));
    let mut poison = good.clone();
    poison.message_id = Some("poison".into());
    poison.body = Some("{not json".into());
    let mut orphan = record("orphan", &approved(&account), Some("nvm_at_tok2"));
    let mut ghost = approved(&account);
    ghost.account_id = "acc_01jd0000000000000000000404".into();
    orphan.body = Some(serde_json::to_string(&ghost).unwrap());
    let answer = fanout::handle(&deps, sqs_batch(vec![poison, good, orphan])).await;
    assert_eq!(failed_ids(&answer), ["orphan"]);
    assert_eq!(mails_to(emu, &account.email).await.len(), 1);
    assert_eq!(
        failed_ids_without_dead_letter_queue(answer).await,
        ["orphan", "poison"],
        "without a queue to go to, it comes back"
    );
}

#[tokio::test]
async fn a_quota_crossing_is_emailed_with_the_usage_and_the_biggest_buckets() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let event = Envelope::new(
        EventType::QuotaThresholdCrossed,
        &account.id,
        json!({"level_percent": 95, "used_bytes": 9_500_000_000u64, "quota_bytes": 10_000_000_000u64,
               "biggest_buckets": [{"name": "backups-diarios", "used_bytes": 9_000_000_000u64}]}),
        Utc::now(),
    );
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![record("q1", &event, None), record("q2", &event, None)]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1, "one email per event");
    let body = mails[0].html.as_deref().unwrap();
    assert!(
        body.contains("9,5 GB") && body.contains("10,0 GB"),
        "{body}"
    );
    assert!(body.contains("backups-diarios"));
}

#[tokio::test]
async fn a_disabled_webhook_endpoint_is_emailed_to_the_owner_in_their_language() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::En, AccountStatus::Active).await;
    let event = Envelope::new(
        EventType::WebhookEndpointDisabled,
        &account.id,
        json!({"webhook_id": "wh_01jd0000000000000000000000", "url": "https://erp.example.com/hooks",
               "reason": "gone", "detail": "the endpoint answered 410 Gone", "failing_since": null}),
        Utc::now(),
    );
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![record("d1", &event, None), record("d2", &event, None)]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1, "one email per event");
    assert!(
        mails[0].subject.contains("disabled"),
        "{}",
        mails[0].subject
    );
    let body = mails[0].html.as_deref().unwrap();
    assert!(
        body.contains("https://erp.example.com/hooks") && body.contains("410"),
        "{body}"
    );
}

#[tokio::test]
async fn an_rpa_process_that_moved_on_is_emailed_once_in_the_accounts_language() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let event = Envelope::new(
        EventType::RpaProcessStatusChanged,
        &account.id,
        EventType::RpaProcessStatusChanged.example_data(),
        Utc::now(),
    );
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![record("r1", &event, None), record("r2", &event, None)]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1, "one email per event");
    assert_eq!(
        mails[0].subject,
        "Padaria Pão Quente Ltda (2026-11): fatura aprovada"
    );
    let body = mails[0].html.as_deref().unwrap();
    assert!(body.contains("aguarda o envio ao SAT"), "{body}");
}

#[tokio::test]
async fn a_paused_schedule_is_emailed_with_its_last_error() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::En, AccountStatus::Active).await;
    let event = Envelope::new(
        EventType::RpaSchedulePaused,
        &account.id,
        EventType::RpaSchedulePaused.example_data(),
        Utc::now(),
    );
    let answer = fanout::handle(&deps, sqs_batch(vec![record("s1", &event, None)])).await;
    assert!(answer.batch_item_failures.is_empty());
    let mails = mails_to(emu, &account.email).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Schedule paused: Processos do mês");
    let body = mails[0].html.as_deref().unwrap();
    assert!(
        body.contains("failed 10 times in a row") && body.contains("did not answer in time"),
        "{body}"
    );
}

#[tokio::test]
async fn a_monthly_report_and_an_export_are_emailed_once_each() {
    let (deps, emu) = deps().await;
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let event = |kind: EventType| Envelope::new(kind, &account.id, kind.example_data(), Utc::now());
    let report = event(EventType::RpaReportGenerated);
    let export = event(EventType::RpaExportCompleted);
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![
            record("r1", &report, None),
            record("e1", &export, None),
            record("r2", &report, None),
        ]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let mut mails = mails_to(emu, &account.email).await;
    mails.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(mails.len(), 2, "one email per event");
    assert!(
        mails[0].subject.starts_with("Exportação dos dados de RPA"),
        "{}",
        mails[0].subject
    );
    let body = mails[0].html.as_deref().unwrap();
    assert!(body.contains("processes.csv (1440 linhas)"), "{body}");
    assert!(
        body.contains("href=\"https://nuvem-invoices.s3.sa-east-1.amazonaws.com/exports/"),
        "{body}"
    );
    assert_eq!(mails[1].subject, "Relatório das faturas de 2026-11");
    let body = mails[1].html.as_deref().unwrap();
    assert!(
        body.contains("VIVO: 2 processos") && body.contains("R$ 189,90"),
        "{body}"
    );
}

// ---------------------------------------------------------------- webhooks

mod webhooks {
    use super::*;
    use nuvem_aws::deliveries::DeliveryTask;
    use nuvem_testkit::inspect::drain;
    use nuvem_testkit::receiver::Receiver;
    use nuvem_testkit::tenants::TestEndpoint;

    struct World {
        t: TestStack,
        deps: fanout::Deps,
    }

    async fn world() -> World {
        let t = TestStack::new("fanout-wh").await;
        World {
            deps: deps_of(&t),
            t,
        }
    }

    async fn endpoint(
        w: &World,
        account_id: &str,
        url: &str,
        settings: serde_json::Value,
    ) -> TestEndpoint {
        let mut body = json!({ "url": url });
        for (k, v) in settings.as_object().unwrap() {
            body[k] = v.clone();
        }
        let sealer = w.t.sealer();
        nuvem_testkit::tenants::webhook_endpoint(&w.deps.store, &sealer, account_id, body, None)
            .await
    }

    fn quota_event(account_id: &str) -> Envelope {
        Envelope::new(
            EventType::QuotaThresholdCrossed,
            account_id,
            json!({"level_percent": 80, "used_bytes": 800, "quota_bytes": 1000, "biggest_buckets": []}),
            Utc::now(),
        )
    }

    async fn queued(w: &World) -> Vec<DeliveryTask> {
        drain(&w.t.sqs, &w.t.stack.queue("DeliveriesQueue").url, 100)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn each_subscribed_enabled_endpoint_of_the_account_gets_one_task() {
        let w = world().await;
        let store = &w.deps.store;
        let mine = nuvem_testkit::tenants::active_account(store, 1_000, 0).await;
        let theirs = nuvem_testkit::tenants::active_account(store, 1_000, 0).await;
        let url = "http://127.0.0.1:9/hook";
        let all = endpoint(&w, &mine.id, url, json!({})).await;
        let quota = endpoint(
            &w,
            &mine.id,
            url,
            json!({"event_types": ["quota.threshold_crossed"]}),
        )
        .await;
        let _keys = endpoint(&w, &mine.id, url, json!({"event_types": ["key.created"]})).await;
        let _off = endpoint(&w, &mine.id, url, json!({"enabled": false})).await;
        let _other_account = endpoint(&w, &theirs.id, url, json!({})).await;

        let event = quota_event(&mine.id);
        // Delivered twice: the tasks repeat with the same delivery ids.
        let answer = fanout::handle(&w.deps, sqs_batch(vec![record("m1", &event, None)])).await;
        assert!(answer.batch_item_failures.is_empty());
        fanout::handle(&w.deps, sqs_batch(vec![record("m2", &event, None)])).await;
        let tasks = queued(&w).await;
        assert_eq!(tasks.len(), 4);
        let mut targets: Vec<&str> = tasks.iter().map(|t| t.endpoint_id.as_str()).collect();
        targets.sort();
        targets.dedup();
        let mut expected = vec![all.id.as_str(), quota.id.as_str()];
        expected.sort();
        assert_eq!(targets, expected);
        for task in &tasks {
            assert_eq!(task.attempt, 1);
            assert_eq!(task.event, event);
            assert_eq!(
                task.delivery_id,
                nuvem_domain::webhook::delivery::delivery_id(&event.id, &task.endpoint_id)
            );
        }
    }

    #[tokio::test]
    async fn a_duplicated_event_reaches_each_endpoint_once() {
        let w = world().await;
        let store = &w.deps.store;
        let receiver = Receiver::start().await;
        let account = nuvem_testkit::tenants::active_account(store, 1_000, 0).await;
        let a = endpoint(&w, &account.id, &receiver.url("/a"), json!({})).await;
        let b = endpoint(&w, &account.id, &receiver.url("/b"), json!({})).await;
        let event = quota_event(&account.id);
        fanout::handle(
            &w.deps,
            sqs_batch(vec![record("m1", &event, None), record("m2", &event, None)]),
        )
        .await;
        fanout::handle(&w.deps, sqs_batch(vec![record("m3", &event, None)])).await;
        let tasks = queued(&w).await;
        assert_eq!(tasks.len(), 6);
        let delivery = webhook_delivery::Deps {
            core: nuvem_aws::Core::from_lookup(&w.t.sdk, &w.t.env("WebhookDelivery")).unwrap(),
            queue: w.deps.deliveries.clone(),
            sender: nuvem_aws::webhook::Sender::new(true),
            sealer: w.t.sealer(),
        };
        let records: Vec<SqsMessage> = tasks
            .iter()
            .enumerate()
            .map(|(i, task)| sqs_message(format!("d{i}"), serde_json::to_string(task).unwrap()))
            .collect();
        // Concurrent duplicates may find the attempt in flight and be retried.
        let answer = webhook_delivery::handle(&delivery, sqs_batch(records.clone())).await;
        let retried: Vec<SqsMessage> = records
            .into_iter()
            .filter(|r| {
                answer
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(&f.item_identifier) == r.message_id.as_ref())
            })
            .collect();
        if !retried.is_empty() {
            webhook_delivery::handle(&delivery, sqs_batch(retried)).await;
        }
        let received = receiver.received();
        let mut paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["/a", "/b"], "one request per endpoint");
        received
            .iter()
            .find(|r| r.path == "/a")
            .unwrap()
            .verify(&a.secret)
            .unwrap();
        received
            .iter()
            .find(|r| r.path == "/b")
            .unwrap()
            .verify(&b.secret)
            .unwrap();
    }

    #[tokio::test]
    async fn custom_events_reach_only_endpoints_that_take_them() {
        let w = world().await;
        let store = &w.deps.store;
        let account = nuvem_testkit::tenants::active_account(store, 1_000, 0).await;
        let url = "http://127.0.0.1:9/hook";
        let all = endpoint(&w, &account.id, url, json!({})).await;
        let paid = endpoint(
            &w,
            &account.id,
            url,
            json!({"event_types": ["custom.order.paid"]}),
        )
        .await;
        let _other = endpoint(
            &w,
            &account.id,
            url,
            json!({"event_types": ["custom.order.cancelled"]}),
        )
        .await;
        let event = Envelope::new(
            nuvem_domain::events::CustomEventType::parse("custom.order.paid").unwrap(),
            account.id.clone(),
            json!({"order": 42}),
            Utc::now(),
        );
        fanout::handle(&w.deps, sqs_batch(vec![record("m1", &event, None)])).await;
        let mut targets: Vec<String> = queued(&w)
            .await
            .into_iter()
            .map(|t| t.endpoint_id)
            .collect();
        targets.sort();
        let mut expected = vec![all.id.clone(), paid.id.clone()];
        expected.sort();
        assert_eq!(targets, expected);
    }
}

#[tokio::test]
async fn an_account_that_chose_whatsapp_notices_gets_each_once_as_its_template() {
    use nuvem_aws::store::NoticeRecord;
    use nuvem_domain::whatsapp::notices::{NoticeRequest, notice_id};
    use nuvem_domain::whatsapp::outbound::{Origin, OutboundContent};

    let t = TestStack::new("fanout-wa").await;
    let deps = deps_of(&t);
    let account = account(&deps, Locale::PtBr, AccountStatus::Active).await;
    let store = nuvem_testkit::tenants::whatsapp_store_with_number(
        &deps.store,
        &account.id,
        "106540352242922",
    )
    .await;
    let quota = |level: u64| {
        Envelope::new(
            EventType::QuotaThresholdCrossed,
            &account.id,
            json!({"level_percent": level, "used_bytes": 9_500_000_000u64, "quota_bytes": 10_000_000_000u64,
                   "biggest_buckets": []}),
            Utc::now(),
        )
    };
    let outbound_jobs =
        || nuvem_testkit::inspect::drain(&t.sqs, &t.stack.queue("WhatsAppOutboundQueue").url, 50);

    // Nothing chosen: email only.
    let before = quota(80);
    assert!(
        fanout::handle(&deps, sqs_batch(vec![record("n0", &before, None)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(outbound_jobs().await.is_empty());

    let request: NoticeRequest = serde_json::from_value(json!({
        "store_id": store.id, "slot": 1, "to": "+55 11 91234-5678",
        "templates": {"quota.threshold_crossed": {"name": "alerta_cota", "language": "pt_BR"}}
    }))
    .unwrap();
    deps.store
        .put_whatsapp_notices(
            &account.id,
            &NoticeRecord {
                settings: request.validate().unwrap(),
                updated_at: Utc::now(),
            },
        )
        .await
        .unwrap();
    let event = quota(95);
    let answer = fanout::handle(
        &deps,
        sqs_batch(vec![record("n1", &event, None), record("n2", &event, None)]),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    let notice = deps
        .store
        .get_outbound(&account.id, &notice_id(&event.id))
        .await
        .unwrap()
        .expect("one notice for the event");
    assert_eq!(notice.origin, Origin::Notice);
    assert_eq!(notice.phone_number_id, "106540352242922");
    assert_eq!(
        notice.message,
        OutboundContent::Template {
            name: "alerta_cota".into(),
            language: "pt_BR".into(),
            parameters: vec!["95".into(), "9,5".into(), "10,0".into()],
        }
    );
    let jobs = outbound_jobs().await;
    assert!(!jobs.is_empty());
    assert!(
        jobs.iter().all(|j| j.body().unwrap().contains(&notice.id)),
        "only this notice is queued"
    );

    // A notice type without a template: email only.
    let disabled = Envelope::new(
        EventType::WebhookEndpointDisabled,
        &account.id,
        EventType::WebhookEndpointDisabled.example_data(),
        Utc::now(),
    );
    fanout::handle(&deps, sqs_batch(vec![record("n3", &disabled, None)])).await;
    assert!(
        deps.store
            .get_outbound(&account.id, &notice_id(&disabled.id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(outbound_jobs().await.is_empty());
}
