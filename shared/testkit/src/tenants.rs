//! Tenant state seeded straight into a test stack, as onboarding and the
//! bucket and webhook routes would have left it: an approved account with a
//! quota, a ready bucket wired to the stack's S3 events queue, a webhook
//! endpoint.

use chrono::Utc;
use nuvem_aws::blobs::Blobs;
use nuvem_aws::secrets::Sealer;
use nuvem_aws::store::{
    AccountRecord, BucketRecord, BucketState, EndpointRecord, NumberRecord, Store, StoreRecord,
};
use nuvem_aws::webhook::secrets;
use nuvem_domain::account::{AccountStatus, Locale};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::ids;
use nuvem_domain::webhook::endpoint::{EndpointRequest, UrlPolicy};
use nuvem_domain::webhook::signature::WebhookSecret;
use serde_json::json;

use crate::TestStack;

/// An active, activated account with `quota_bytes` of quota (stored as GB,
/// 1 GB = 10^9 bytes; below the API's 0.001 GB minimum if a test wants) and
/// `licenses` Imperius licences.
pub async fn active_account(store: &Store, quota_bytes: u64, licenses: u32) -> AccountRecord {
    account_with(store, |account| {
        account.imperius_licenses = licenses;
        account.quota_gb = Some(quota_bytes as f64 / 1e9);
    })
    .await
}

/// An active account like [`active_account`]'s (1 GB, one licence), as
/// `edit` changes it (language, status, name…), stored with its own
/// document and mailbox (`<id>@example.com`).
pub async fn account_with(store: &Store, edit: impl FnOnce(&mut AccountRecord)) -> AccountRecord {
    let id = nuvem_domain::ids::new_id("acc");
    let now = Utc::now();
    let mut account = AccountRecord {
        id: id.clone(),
        organization_name: "Padaria Pão Quente Ltda".into(),
        document: id.clone(),
        document_kind: "cnpj".into(),
        phone: "+5511987654321".into(),
        email: format!("{id}@example.com"),
        locale: Locale::PtBr,
        status: AccountStatus::Active,
        imperius_licenses: 1,
        licenses_in_use: 0,
        quota_gb: Some(1.0),
        enforce_quota: false,
        rejection_reason: None,
        created_at: now,
        updated_at: now,
        activated_at: Some(now),
        version: 1,
    };
    edit(&mut account);
    let approved = Envelope::new(EventType::AccountApproved, &id, json!({}), now);
    store
        .create_account(&account, &account.email, &approved)
        .await
        .expect("account stored");
    account
}

/// A ready bucket of the account, created in the emulator's S3 and wired to
/// the stack's `S3EventsQueue`; returns its physical name.
pub async fn tenant_bucket(t: &TestStack, store: &Store, account_id: &str, name: &str) -> String {
    let prefix = t.env("Buckets")("BUCKET_PREFIX").expect("BUCKET_PREFIX");
    let bucket = nuvem_domain::bucket::physical_bucket_name(&prefix, account_id, name)
        .expect("a valid bucket name");
    let record = BucketRecord {
        name: name.into(),
        bucket: bucket.clone(),
        account_id: account_id.into(),
        state: BucketState::Creating,
        imperius_license: false,
        created_at: Utc::now(),
    };
    store.claim_bucket(&record).await.expect("bucket claimed");
    let queue_arn = &t.stack.queue("S3EventsQueue").arn;
    Blobs::new(&t.sdk)
        .create_tenant_bucket(&bucket, account_id, queue_arn)
        .await
        .expect("bucket created");
    store.bucket_ready(&bucket).await.expect("bucket ready");
    bucket
}

/// A stored webhook endpoint and its signing secret in the clear (the record
/// keeps it sealed), for tests to verify signatures with.
pub struct TestEndpoint {
    pub record: EndpointRecord,
    /// `whsec_…`
    pub secret: String,
}

impl std::ops::Deref for TestEndpoint {
    type Target = EndpointRecord;
    fn deref(&self) -> &EndpointRecord {
        &self.record
    }
}

/// A webhook endpoint of the account as `POST /v1/webhooks` would store it:
/// `settings` is the request body (loopback allowed, as in `make dev`);
/// `stored_url`, when given, replaces the validated URL, as if a name had
/// passed validation and been re-pointed since.
pub async fn webhook_endpoint(
    store: &Store,
    sealer: &Sealer,
    account_id: &str,
    settings: serde_json::Value,
    stored_url: Option<&str>,
) -> TestEndpoint {
    let request: EndpointRequest = serde_json::from_value(settings).expect("an endpoint request");
    let (mut settings, secret) = request
        .validate(&UrlPolicy {
            allow_loopback: true,
        })
        .expect("valid endpoint settings");
    if let Some(url) = stored_url {
        settings.url = url.to_owned();
    }
    let id = ids::new_id(ids::WEBHOOK);
    let secret = secret.unwrap_or_else(WebhookSecret::generate);
    let sealed = secrets::seal(sealer, account_id, &id, &secret)
        .await
        .expect("secret sealed");
    let record = EndpointRecord::new(id, account_id, settings, sealed, Utc::now());
    store
        .create_endpoint(&record)
        .await
        .expect("endpoint stored")
        .expect("room for the endpoint");
    TestEndpoint {
        record,
        secret: secret.to_string_form(),
    }
}

/// A WhatsApp store of `account_id` named `name` (a restaurant, default bot
/// settings), not yet written.
pub fn whatsapp_store_record(account_id: &str, name: &str) -> StoreRecord {
    use nuvem_domain::whatsapp::store::{StoreRequest, new_store_id};
    let request: StoreRequest = serde_json::from_value(json!({
        "name": name,
        "store_type": "restaurante",
    }))
    .expect("a store request");
    StoreRecord {
        id: new_store_id(),
        account_id: account_id.to_owned(),
        settings: request.validate().expect("valid store settings"),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// Number `phone_number_id` in `slot` of `store`, unchecked, with a
/// placeholder for its sealed token; not yet written.
pub fn whatsapp_number_record(
    store: &StoreRecord,
    slot: u8,
    phone_number_id: &str,
) -> NumberRecord {
    use nuvem_domain::whatsapp::store::{NumberSettings, NumberStatus, Slot};
    NumberRecord {
        account_id: store.account_id.clone(),
        store_id: store.id.clone(),
        slot: Slot::new(slot).expect("slot 1-3"),
        settings: NumberSettings {
            phone_number_id: phone_number_id.to_owned(),
            waba_id: "102290129340398".into(),
            display_phone_number: "+15550783881".into(),
        },
        sealed_token: format!("sealed-for-{phone_number_id}"),
        status: NumberStatus::Unchecked,
        checked_at: None,
        updated_at: Utc::now(),
    }
}

/// Writes `record` and puts `number` in its slot, as the `whatsapp`
/// routes leave them: webhooks for the number route to the store.
async fn write_store_with(store: &Store, record: &StoreRecord, number: &NumberRecord) {
    store
        .create_whatsapp_store(record)
        .await
        .expect("store written")
        .expect("store created");
    store
        .put_whatsapp_number(number, None)
        .await
        .expect("number written")
        .expect("number claimed");
}

/// A WhatsApp store of `account_id` with `phone_number_id` in slot 1
/// (unchecked, its token a placeholder).
pub async fn whatsapp_store_with_number(
    store: &Store,
    account_id: &str,
    phone_number_id: &str,
) -> StoreRecord {
    let record = whatsapp_store_record(account_id, "Cantina da Nonna");
    let number = whatsapp_number_record(&record, 1, phone_number_id);
    write_store_with(store, &record, &number).await;
    record
}

/// A WhatsApp store of `account_id` whose slot 1 holds `phone_number_id`,
/// `connected`, with `token` sealed as the `whatsapp` routes seal it: the
/// sender and the bot can open it and call the (fake) Graph API.
pub async fn whatsapp_store_with_connected_number(
    store: &Store,
    sealer: &Sealer,
    account_id: &str,
    phone_number_id: &str,
    token: &str,
) -> StoreRecord {
    use nuvem_aws::secrets::SealContext;
    use nuvem_domain::whatsapp::store::NumberStatus;
    let record = whatsapp_store_record(account_id, "Cantina da Nonna");
    let mut number = whatsapp_number_record(&record, 1, phone_number_id);
    number.sealed_token = sealer
        .seal(
            token,
            &SealContext::whatsapp_access_token(account_id, phone_number_id),
        )
        .await
        .expect("token sealed");
    number.status = NumberStatus::Connected;
    write_store_with(store, &record, &number).await;
    record
}
