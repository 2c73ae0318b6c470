//! The email channel of `fanout` against the emulator's SQS, DynamoDB and SES,
//! from `events/fanout/account-approved.json`.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use nuvem_aws::mail::Mailer;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::store::{AccountRecord, Store};
use nuvem_domain::account::{AccountStatus, Locale};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_testkit::fixtures::fixture;
use nuvem_testkit::{Emulator, SentEmail, TestStack};
use serde_json::json;

async fn deps() -> (fanout::Deps, &'static Emulator) {
    let t = TestStack::new("fanout").await;
    let env = t.env("Fanout");
    let deps = fanout::Deps {
        store: Store::new(&t.sdk, t.table()),
        mailer: Mailer::new(&t.sdk, env("MAIL_FROM").unwrap()),
        public_base_url: "https://app.example.com.br/".into(),
    };
    (deps, t.emulator)
}

/// Stores an account as signup would, with a mailbox of its own.
async fn account(deps: &fanout::Deps, locale: Locale, status: AccountStatus) -> AccountRecord {
    let id = nuvem_domain::ids::new_id("acc");
    let now = Utc::now();
    let record = AccountRecord {
        id: id.clone(),
        organization_name: "Café <Bom> & Cia".into(),
        document: id[4..18].to_owned(),
        document_kind: "cnpj".into(),
        phone: "+5511987654321".into(),
        email: format!("{}@example.com", id),
        locale,
        status,
        imperius_licenses: 1,
        quota_gb: Some(1.0),
        rejection_reason: (status == AccountStatus::Rejected)
            .then(|| "CNPJ inativo na Receita".into()),
        created_at: now,
        updated_at: now,
        activated_at: None,
        licenses_in_use: 0,
        version: 1,
    };
    let event = Envelope::new(EventType::AccountSignedUp, &id, json!({}), now);
    deps.store
        .create_account(&record, &record.email, &event)
        .await
        .unwrap();
    record
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

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
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
    let first = batch(vec![
        record("m1", &event, Some(token)),
        record("m2", &event, Some(token)),
    ]);
    let answer = fanout::handle(&deps, first).await;
    let failed: Vec<_> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let again = fanout::handle(&deps, batch(vec![record("m3", &event, Some(token))])).await;
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
    let answer = fanout::handle(&deps, batch(vec![record("r1", &event, None)])).await;
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

#[tokio::test]
async fn a_poison_record_fails_alone() {
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
    let answer = fanout::handle(&deps, batch(vec![poison, good, orphan])).await;
    let mut failed: Vec<_> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["orphan".to_owned(), "poison".to_owned()]);
    assert_eq!(mails_to(emu, &account.email).await.len(), 1);
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
        batch(vec![record("q1", &event, None), record("q2", &event, None)]),
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
