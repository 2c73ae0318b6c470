//! The fault proxy, seen by the AWS SDK for Rust as the services' own
//! faults: each protocol's throttling and 5xx errors are recognised by their
//! codes and retried, dropped connections are retried, and the faults
//! "after" leave the call applied though the caller saw it fail.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use nuvem_aws::store::Store;
use nuvem_local::faults::{FaultCounts, FaultKind, FaultProxy, FaultSpec};
use nuvem_testkit::{emulator, unique_name};
use tokio::sync::watch;

/// A proxy with `spec` in front of the shared emulator, and an SDK config
/// pointing at it that makes `attempts` attempts per call.
async fn start_proxy(spec: &str, attempts: u32) -> (FaultProxy, SdkConfig, watch::Sender<bool>) {
    let emu = emulator().await;
    let (stop, stopped) = watch::channel(false);
    let (proxy, _task) =
        FaultProxy::start(spec.parse::<FaultSpec>().unwrap(), emu.endpoint(), stopped)
            .await
            .unwrap();
    let config = emu
        .sdk_config()
        .await
        .into_builder()
        .endpoint_url(&proxy.url)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    (proxy, config, stop)
}

/// A DynamoDB client of `config` with a retry token bucket of its own, and
/// unlimited: the SDK's default bucket (500 tokens, 5 a retry) is shared by
/// every client of the process, so the retries of tests running at once
/// would use up each other's.
fn db(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
    let partition = RetryPartition::custom(unique_name("faults"))
        .token_bucket(TokenBucket::unlimited())
        .build();
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .retry_partition(partition)
            .build(),
    )
}

async fn table() -> String {
    let db = aws_sdk_dynamodb::Client::new(&emulator().await.sdk_config().await);
    let name = unique_name("faults");
    db.create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    name
}

/// Whether the item is in the table, read past the proxy.
async fn stored(table: &str, pk: &str) -> bool {
    let db = aws_sdk_dynamodb::Client::new(&emulator().await.sdk_config().await);
    db.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

async fn put(config: &SdkConfig, table: &str, pk: &str) -> Result<(), String> {
    db(config)
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .map(drop)
        .map_err(|e| {
            use aws_sdk_dynamodb::error::ProvideErrorMetadata;
            e.code().map_or_else(|| format!("{e:?}"), str::to_owned)
        })
}

fn faults(counts: &FaultCounts, kind: FaultKind) -> u64 {
    counts.of_kind(kind)
}

#[tokio::test]
async fn throttling_comes_in_each_services_own_codes_and_is_retried() {
    let table = table().await;
    let (proxy, config, _stop) = start_proxy("rate=1,kinds=throttle", 3).await;

    // DynamoDB (awsJson 1.0): one of its three throttling codes, after the
    // SDK's three attempts.
    let code = put(&config, &table, "a").await.unwrap_err();
    assert!(
        [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded"
        ]
        .contains(&code.as_str()),
        "{code}"
    );
    assert!(
        !stored(&table, "a").await,
        "a throttled call is not applied"
    );
    let counts = proxy.stats.counts();
    assert_eq!((counts.requests, counts.retries), (3, 2), "{counts:?}");

    // S3 (restXml): SlowDown.
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let e = s3.list_buckets().send().await.unwrap_err();
    assert_eq!(e.code(), Some("SlowDown"), "{e:?}");

    // SQS (awsJson 1.0 with query error codes).
    let sqs = aws_sdk_sqs::Client::new(&config);
    let e = sqs.list_queues().send().await.unwrap_err();
    let code = aws_sdk_sqs::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
    assert!(
        matches!(
            code.as_deref(),
            Some("RequestThrottled" | "ThrottlingException")
        ),
        "{e:?}"
    );
    let counts = proxy.stats.counts();
    assert_eq!(counts.requests, 9, "every call was tried three times");
    assert_eq!(faults(&counts, FaultKind::Throttle), 9);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried_until_one_gets_through() {
    let table = table().await;
    for kind in ["error", "drop"] {
        let (proxy, config, _stop) = start_proxy(&format!("rate=1,kinds={kind}"), 4).await;
        assert!(put(&config, &table, kind).await.is_err(), "{kind}");
        assert!(!stored(&table, kind).await, "{kind}: not forwarded");
        let counts = proxy.stats.counts();
        assert_eq!(
            (counts.requests, counts.retries),
            (4, 3),
            "{kind}: {counts:?}"
        );
    }
    // At 30 % of the calls, the SDK's retries get through: of 40 puts with
    // 10 attempts each, every one is stored (all 10 faulted: p = 6e-6).
    let (proxy, config, _stop) = start_proxy("rate=0.3,kinds=error+drop+throttle", 10).await;
    for i in 0..40 {
        let pk = format!("half-{i}");
        put(&config, &table, &pk).await.unwrap();
        assert!(stored(&table, &pk).await);
    }
    let counts = proxy.stats.counts();
    assert!(
        counts.injected() > 0 && counts.retries == counts.injected(),
        "{counts:?}"
    );
}

#[tokio::test]
async fn faults_after_forwarding_leave_the_call_applied_though_it_failed() {
    let table = table().await;
    for kind in ["error-after", "drop-after"] {
        let (proxy, config, _stop) = start_proxy(&format!("rate=1,kinds={kind}"), 1).await;
        let pk = format!("after-{kind}");
        assert!(put(&config, &table, &pk).await.is_err(), "{kind}");
        assert!(stored(&table, &pk).await, "{kind}: the emulator applied it");
        assert_eq!(faults(&proxy.stats.counts(), kind.parse().unwrap()), 1);
    }
}

#[tokio::test]
async fn only_the_targeted_operations_get_faults_and_slow_ones_still_answer() {
    let table = table().await;
    let (proxy, config, _stop) =
        start_proxy("rate=1,kinds=throttle,targets=dynamodb:GetItem", 1).await;
    put(&config, &table, "t").await.unwrap();
    let db = db(&config);
    let get = db
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("t".into()))
        .send()
        .await;
    assert!(get.is_err());
    let counts = proxy.stats.counts();
    assert_eq!(counts.faults.len(), 1);
    assert!(
        counts
            .faults
            .contains_key(&(FaultKind::Throttle, "dynamodb:GetItem".to_owned()))
    );

    let (proxy, config, _stop) = start_proxy("rate=1,kinds=slow,slow-ms=20", 1).await;
    put(&config, &table, "slow").await.unwrap();
    assert_eq!(faults(&proxy.stats.counts(), FaultKind::Slow), 1);
}

#[tokio::test]
async fn conditional_refusals_are_counted() {
    let table = table().await;
    let (proxy, config, _stop) = start_proxy("rate=0", 1).await;
    let db = db(&config);
    for _ in 0..2 {
        let _ = db
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("once".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
    }
    let counts = proxy.stats.counts();
    assert_eq!((counts.requests, counts.conditional_refusals), (2, 1));
}

/// Two stores of a new stack's table: one behind a proxy where half the
/// puts are applied and then go unanswered (20 attempts leave none without
/// an answer: p = 1e-6), and one straight to the emulator.
async fn stores_with_lost_put_answers(
    prefix: &str,
) -> (FaultProxy, Store, Store, watch::Sender<bool>) {
    stores_with_lost_answers(prefix, "dynamodb:PutItem").await
}

/// [`stores_with_lost_put_answers`] for the operation `target`.
async fn stores_with_lost_answers(
    prefix: &str,
    target: &str,
) -> (FaultProxy, Store, Store, watch::Sender<bool>) {
    let emu = emulator().await;
    let stack = nuvem_testkit::Stack::create(emu, &unique_name(prefix), &Default::default())
        .await
        .unwrap();
    let (proxy, config, stop) = start_proxy(
        &format!("rate=0.5,kinds=drop-after+error-after,targets={target}"),
        20,
    )
    .await;
    let faulty = Store::from_client(db(&config), stack.table("Table"));
    let direct = Store::new(&emu.sdk_config().await, stack.table("Table"));
    (proxy, faulty, direct, stop)
}

/// A claim whose first attempt was written but not answered is retried by
/// the SDK with the same holder: it finds its own claim and takes it,
/// instead of waiting out the lease as if another delivery held it.
#[tokio::test]
async fn a_retried_claim_takes_its_own_first_attempt() {
    use nuvem_aws::idempotency::Claim;
    let (proxy, store, direct, _stop) = stores_with_lost_put_answers("claims").await;
    for n in 0..30 {
        let claim = store
            .claim("test", &format!("event-{n}"), 60, chrono::Utc::now(), None)
            .await
            .unwrap();
        assert_eq!(claim, Claim::Acquired, "event-{n}");
    }
    let counts = proxy.stats.counts();
    assert!(counts.retries > 0, "some claims were retried: {counts:?}");
    // Another delivery of the same event, without faults, finds it busy.
    let other = direct
        .claim("test", "event-0", 60, chrono::Utc::now(), None)
        .await;
    assert_eq!(other.unwrap(), Claim::Busy);
}

/// A transaction retried by the SDK after its first attempt was applied
/// but not answered carries the same ClientRequestToken: the emulator (as
/// DynamoDB) answers it as done instead of failing its conditions.
#[tokio::test]
async fn a_retried_transaction_is_answered_as_done() {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
    let table = table().await;
    let (proxy, config, _stop) = start_proxy(
        "rate=0.5,kinds=drop-after+error-after,targets=dynamodb:TransactWriteItems",
        20,
    )
    .await;
    let db = db(&config);
    for n in 0..30 {
        let put = |pk: String| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .item("pk", AttributeValue::S(pk))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let result = db
            .transact_write_items()
            .transact_items(put(format!("tx-{n}-a")))
            .transact_items(put(format!("tx-{n}-b")))
            .send()
            .await;
        assert!(result.is_ok(), "tx-{n}: {result:?}");
    }
    assert!(proxy.stats.counts().retries > 0);
}

/// A conditional create written by one put (no transaction, so no token)
/// and retried by the SDK after its first attempt was applied but not
/// answered finds its own item: it is created, not "already exists".
#[tokio::test]
async fn a_retried_conditional_create_is_not_its_own_conflict() {
    use nuvem_aws::store::CarrierRecord;
    use nuvem_domain::rpa::carrier::CarrierRequest;
    let (proxy, store, direct, _stop) = stores_with_lost_put_answers("creates").await;
    let carrier = |code: &str| {
        let request: CarrierRequest =
            serde_json::from_value(serde_json::json!({"code": code, "name": code})).unwrap();
        let (code, settings) = request.validate().unwrap();
        let now = chrono::Utc::now();
        CarrierRecord {
            code,
            account_id: "acc_01jd0000000000000000000001".into(),
            settings,
            created_at: now,
            created_by: nuvem_testkit::rpa_records::actor(),
            updated_at: now,
            updated_by: nuvem_testkit::rpa_records::actor(),
        }
    };
    for n in 0..30 {
        let code = format!("OP{n}");
        assert!(
            store.create_carrier(&carrier(&code)).await.unwrap(),
            "{code}"
        );
    }
    assert!(proxy.stats.counts().retries > 0);
    // Another create of an existing code, without faults, is refused.
    assert!(!direct.create_carrier(&carrier("OP0")).await.unwrap());
}

/// A conditional step made by one update (a WhatsApp message's `queued →
/// sending`) and retried by the SDK after its first attempt was applied but
/// not answered finds its own change: the step is taken, instead of being
/// left to "another delivery" that does not exist.
#[tokio::test]
async fn a_retried_conditional_step_is_not_taken_for_another_writers() {
    use nuvem_aws::store::{ConversationRecord, OutboundRecord};
    use nuvem_domain::whatsapp::identity::Recipient;
    use nuvem_domain::whatsapp::outbound::{Origin, OutboundContent};
    let (proxy, store, direct, _stop) =
        stores_with_lost_answers("steps", "dynamodb:UpdateItem").await;
    let now = chrono::Utc::now();
    let conversation = ConversationRecord {
        id: "wcv_01jd0000000000000000000001".into(),
        account_id: "acc_01jd0000000000000000000001".into(),
        store_id: "wst_01jd0000000000000000000001".into(),
        wa_id: Some("5511912345678".into()),
        user_id: None,
        name: None,
        needs_human: false,
        resumed_at: None,
        last_customer_at: Some(now),
        last_activity_at: now,
        created_at: now,
    };
    let message = |n: usize| {
        OutboundRecord::queued(
            format!("wo_{n:026}"),
            &conversation,
            "106540352242923",
            Recipient::Phone("5511912345678".into()),
            OutboundContent::Text { body: "Oi".into() },
            Origin::Api,
            now,
        )
    };
    for n in 0..30 {
        let queued = message(n);
        assert!(direct.create_outbound(&queued).await.unwrap());
        assert!(
            store.claim_outbound(&queued, None, now).await.unwrap(),
            "message {n}"
        );
    }
    assert!(proxy.stats.counts().retries > 0);
    // Another delivery's claim of a message already sending is refused.
    assert!(!direct.claim_outbound(&message(0), None, now).await.unwrap());
}

/// A webhook delivery attempt claimed through lost answers is the
/// claimer's: the SDK's retry finds its own lease (by its mark), not
/// another worker's, so the attempt is made now instead of after the lease.
#[tokio::test]
async fn a_retried_attempt_claim_is_its_own() {
    use nuvem_aws::deliveries::DeliveryTask;
    use nuvem_aws::store::AttemptClaim;
    use nuvem_domain::events::{Envelope, EventType};
    let (proxy, store, direct, _stop) =
        stores_with_lost_answers("attempts", "dynamodb:UpdateItem").await;
    let now = chrono::Utc::now();
    let task = |n: usize| DeliveryTask {
        delivery_id: format!("dlv_{n:026}"),
        endpoint_id: "wh_01jd0000000000000000000001".into(),
        attempt: 1,
        not_before: None,
        event: Envelope::new(
            EventType::AccountUpdated,
            "acc_01jd0000000000000000000001",
            serde_json::json!({}),
            now,
        ),
    };
    let lease = chrono::Duration::seconds(60);
    for n in 0..30 {
        let claim = store.claim_attempt(&task(n), lease, now).await.unwrap();
        assert_eq!(claim, AttemptClaim::Acquired, "delivery {n}");
    }
    assert!(proxy.stats.counts().retries > 0);
    // Another worker's claim of the same attempt is refused.
    let other = direct.claim_attempt(&task(0), lease, now).await.unwrap();
    assert_eq!(other, AttemptClaim::Busy);
}

/// A secret rotation whose answer was lost, retried by the SDK, answers
/// the rotated endpoint rather than "rotated meanwhile" by someone else.
#[tokio::test]
async fn a_retried_secret_rotation_answers_its_own_rotation() {
    use nuvem_aws::store::EndpointRecord;
    use nuvem_aws::table_keys as k;
    let (proxy, store, direct, _stop) =
        stores_with_lost_answers("rotations", "dynamodb:UpdateItem").await;
    let now = chrono::Utc::now();
    let account = "acc_01jd0000000000000000000001";
    aws_sdk_dynamodb::Client::new(&emulator().await.sdk_config().await)
        .put_item()
        .table_name(direct.table())
        .item("pk", AttributeValue::S(k::account_pk(account)))
        .item("sk", AttributeValue::S(k::ACCOUNT_SK.into()))
        .send()
        .await
        .unwrap();
    let settings = serde_json::from_value(serde_json::json!({
        "url": "https://example.com/hook", "description": "", "event_types": [],
        "headers": {}, "method": "POST", "timeout_seconds": 10, "enabled": true,
        "ordered": false, "rate_limit_per_second": null
    }))
    .unwrap();
    let mut endpoint = EndpointRecord::new(
        "wh_01jd0000000000000000000001".into(),
        account,
        settings,
        "sealed-0".into(),
        now,
    );
    direct.create_endpoint(&endpoint).await.unwrap().unwrap();
    for n in 1..=30 {
        let new = format!("sealed-{n}");
        let until = now + chrono::Duration::hours(24);
        endpoint = store
            .rotate_endpoint_secret(&endpoint, &new, until, now)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("rotation {n} was taken for another's"));
        assert_eq!(endpoint.sealed_secret, new);
        assert_eq!(
            endpoint.sealed_previous_secret,
            Some(format!("sealed-{}", n - 1))
        );
    }
    assert!(proxy.stats.counts().retries > 0);
    // A rotation based on a stale read is refused.
    let mut stale = endpoint.clone();
    stale.sealed_secret = "sealed-0".into();
    let refused = direct
        .rotate_endpoint_secret(&stale, "sealed-x", now, now)
        .await
        .unwrap();
    assert!(refused.is_none());
}

/// A delete whose first attempt was applied but not answered is retried by
/// the SDK: the caller still learns that it deleted the item, rather than
/// that there was none (a `DELETE` answering 404 for its own deletion).
#[tokio::test]
async fn a_retried_delete_finds_its_own_deletion() {
    use nuvem_aws::table_keys as k;
    let (proxy, store, direct, _stop) =
        stores_with_lost_answers("deletes", "dynamodb:DeleteItem+dynamodb:TransactWriteItems")
            .await;
    let db = aws_sdk_dynamodb::Client::new(&emulator().await.sdk_config().await);
    for n in 0..30 {
        let account = format!("acc_01jd00000000000000000000{n:02}");
        db.put_item()
            .table_name(direct.table())
            .item("pk", AttributeValue::S(k::account_pk(&account)))
            .item("sk", AttributeValue::S(k::WHATSAPP_NOTICES_SK.into()))
            .send()
            .await
            .unwrap();
        assert!(
            store.delete_whatsapp_notices(&account).await.unwrap(),
            "delete {n} found nothing to delete"
        );
        assert!(!direct.delete_whatsapp_notices(&account).await.unwrap());
    }
    assert!(proxy.stats.counts().retries > 0);
}
