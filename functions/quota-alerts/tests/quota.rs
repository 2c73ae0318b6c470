//! Exact usage and threshold alerts, against the emulator: records from the
//! emulator's own S3 notifications, and generated histories with real S3's
//! sequencers, duplicated and shuffled.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use nuvem_aws::Core;
use nuvem_aws::blobs::Blobs;
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use proptest::prelude::*;
use serde_json::{Value, json};

struct Env {
    t: TestStack,
    deps: quota_alerts::Deps,
    account: String,
    bucket: String,
}

/// An active account with a quota of `quota_bytes` and one bucket wired to S3 events.
async fn env(quota_bytes: u64) -> Env {
    let t = TestStack::new("quota").await;
    let core = Core::from_lookup(&t.sdk, &t.env("QuotaAlerts")).unwrap();
    let account = tenants::active_account(&core.store, quota_bytes, 0)
        .await
        .id;
    let bucket = tenants::tenant_bucket(&t, &core.store, &account, "dados").await;
    drain(&t.sqs, t.events_queue(), 50).await;
    Env {
        t,
        deps: quota_alerts::Deps { core },
        account,
        bucket,
    }
}

fn message(id: &str, body: String) -> SqsMessage {
    nuvem_testkit::fixtures::sqs_message(id, body)
}

async fn deliver(env: &Env, messages: Vec<SqsMessage>) -> Vec<String> {
    let answer =
        quota_alerts::handle(&env.deps, nuvem_testkit::fixtures::sqs_batch(messages)).await;
    nuvem_testkit::fixtures::failed_ids(&answer)
}

async fn usage(env: &Env) -> (i64, u64, u64) {
    let account = env
        .deps
        .core
        .store
        .account_usage(&env.account)
        .await
        .unwrap();
    let bucket = env.deps.core.store.bucket_usage(&env.bucket).await.unwrap();
    (account.bytes, bucket.bytes, bucket.objects)
}

/// The alerts queued for the account so far, by level.
async fn alerts(env: &Env) -> Vec<u64> {
    drain(&env.t.sqs, env.t.events_queue(), 50)
        .await
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.body()?).ok())
        .filter(|e| {
            e["type"] == "quota.threshold_crossed" && e["account_id"] == env.account.as_str()
        })
        .map(|e| e["data"]["level_percent"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_emulators_own_notifications_keep_usage_exact_and_alert_once_per_crossing() {
    let env = env(1_000).await;
    let s3 = Blobs::new(&env.t.sdk);
    let s3 = s3.client();
    let queue = env.t.stack.queue("S3EventsQueue").url.clone();
    let put = |key: &'static str, size: usize| {
        s3.put_object()
            .bucket(&env.bucket)
            .key(key)
            .body(vec![1u8; size].into())
            .send()
    };
    put("backup 1.tar", 500).await.unwrap();
    put("pasta/backup+2.tar", 300).await.unwrap();
    let first = drain(&env.t.sqs, &queue, 20).await;
    let messages: Vec<SqsMessage> = first
        .iter()
        .map(|m| message(m.message_id().unwrap(), m.body().unwrap().to_owned()))
        .collect();
    assert!(deliver(&env, messages.clone()).await.is_empty());
    assert_eq!(usage(&env).await, (800, 800, 2));
    // The same notifications again, as SQS may redeliver them: nothing changes.
    assert!(deliver(&env, messages).await.is_empty());
    assert_eq!(usage(&env).await, (800, 800, 2));
    assert_eq!(alerts(&env).await, vec![80]);

    // Overwrite grows one object; then 100 %.
    put("backup 1.tar", 700).await.unwrap();
    let more = drain(&env.t.sqs, &queue, 20).await;
    let more: Vec<SqsMessage> = more
        .iter()
        .map(|m| message(m.message_id().unwrap(), m.body().unwrap().to_owned()))
        .collect();
    assert!(deliver(&env, more).await.is_empty());
    assert_eq!(usage(&env).await, (1_000, 1_000, 2));
    assert_eq!(alerts(&env).await, vec![100]);

    // Deleting frees what was recorded, whatever the record says.
    s3.delete_object()
        .bucket(&env.bucket)
        .key("pasta/backup+2.tar")
        .send()
        .await
        .unwrap();
    let gone = drain(&env.t.sqs, &queue, 20).await;
    let gone: Vec<SqsMessage> = gone
        .iter()
        .map(|m| message(m.message_id().unwrap(), m.body().unwrap().to_owned()))
        .collect();
    assert!(deliver(&env, gone).await.is_empty());
    assert_eq!(usage(&env).await, (700, 700, 1));
    assert!(alerts(&env).await.is_empty(), "falling below alerts nobody");
}

/// An S3 notification of one record, as real S3 sends it (with a sequencer).
fn notification(
    bucket: &str,
    key: &str,
    event_name: &str,
    size: Option<u64>,
    sequencer: u64,
) -> String {
    let mut object = json!({
        "key": key.replace(' ', "+"),
        "sequencer": format!("{sequencer:016X}"),
    });
    if let Some(size) = size {
        object["size"] = json!(size);
        object["eTag"] = json!("d41d8cd98f00b204e9800998ecf8427e");
    }
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-24T12:00:00.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "nuvem-usage",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": object}
    }]})
    .to_string()
}

/// S3's test event and a bucket nuvem does not know are acknowledged; a
/// body that is no notification is set aside for the dead-letter queue
/// (SQS would only deliver the same bytes again), not retried.
#[tokio::test]
async fn test_events_and_unknown_buckets_are_acknowledged_and_garbage_is_set_aside() {
    let env = env(1_000).await;
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-24T12:00:00.000Z",
        "Bucket": env.bucket, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
    let stranger = notification("somebody-else", "x", "ObjectCreated:Put", Some(10), 1);
    let failed = deliver(
        &env,
        vec![
            message("test", test_event.to_string()),
            message("stranger", stranger),
            message("garbage", "{\"Records\": 7}".into()),
            message("not-json", "{\"Records\": [".into()),
        ],
    )
    .await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(usage(&env).await, (0, 0, 0));
    // Without a dead-letter queue to go to, they come back.
    let failed =
        nuvem_testkit::fixtures::failed_ids_without_dead_letter_queue(Default::default()).await;
    assert_eq!(failed, ["garbage", "not-json"]);
}

/// One step of a generated history on a few keys.
#[derive(Debug, Clone)]
enum Step {
    Put(usize, u64),
    Delete(usize),
}

fn history() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0..3usize, 1..400u64).prop_map(|(k, s)| Step::Put(k, s)),
            1 => (0..3usize).prop_map(Step::Delete),
        ],
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the delivery does (duplicates, any order, any batching),
    /// usage equals the live objects of the history, and no crossing is
    /// announced twice.
    #[test]
    fn usage_is_exact_under_duplicates_reordering_and_batching(
        steps in history(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        seed in any::<u64>(),
        batch in 1..10usize,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let env = env(1_000).await;
            let keys = ["a", "pasta/b c", "ção"];
            let mut live: [Option<u64>; 3] = [None; 3];
            let mut messages = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                let seq = 100 + i as u64;
                let body = match *step {
                    Step::Put(k, size) => { live[k] = Some(size); notification(&env.bucket, keys[k], "ObjectCreated:Put", Some(size), seq) }
                    Step::Delete(k) => { live[k] = None; notification(&env.bucket, keys[k], "ObjectRemoved:Delete", None, seq) }
                };
                messages.push(message(&format!("m{i}"), body));
            }
            for d in &duplicates {
                let copy = messages[d.index(messages.len())].clone();
                messages.push(copy);
            }
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..messages.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                messages.swap(i, (state % (i as u64 + 1)) as usize);
            }
            for chunk in messages.chunks(batch) {
                prop_assert!(deliver(&env, chunk.to_vec()).await.is_empty());
            }
            let bytes: u64 = live.iter().flatten().sum();
            let objects = live.iter().flatten().count() as u64;
            prop_assert_eq!(usage(&env).await, (bytes as i64, bytes, objects));
            let alerts = alerts(&env).await;
            let mut unique = alerts.clone();
            unique.dedup();
            prop_assert_eq!(&unique, &alerts, "an alert repeated without falling below first");
            Ok(())
        })?;
    }
}

/// An invocation killed after it recorded a record's change but before it
/// evaluated the account leaves the crossing to the record's redelivery,
/// which finds the change recorded and still announces it, once.
#[tokio::test]
async fn a_redelivery_announces_the_crossing_its_dead_first_delivery_recorded() {
    use nuvem_domain::usage::{Change, apply};
    let env = env(1_000).await;
    let body = notification(&env.bucket, "tudo.tar", "ObjectCreated:Put", Some(1_000), 7);
    let sequencer = format!("{:016X}", 7);
    let outcome = apply(None, &Change::Put { size: 1_000 }, Some(&sequencer)).unwrap();
    let recorded = env
        .deps
        .core
        .store
        .record_object_change(&env.account, &env.bucket, "tudo.tar", None, &outcome, 0)
        .await
        .unwrap();
    assert!(recorded);
    assert!(alerts(&env).await.is_empty(), "the first delivery died");

    assert!(
        deliver(&env, vec![message("m1", body.clone())])
            .await
            .is_empty()
    );
    assert_eq!(usage(&env).await, (1_000, 1_000, 1));
    assert_eq!(alerts(&env).await, vec![100]);
    assert!(deliver(&env, vec![message("m1", body)]).await.is_empty());
    assert!(alerts(&env).await.is_empty(), "announced once");
}

#[tokio::test]
async fn a_quota_change_moves_the_level_at_once_without_an_alert_storm() {
    use nuvem_testkit::fixtures::{as_principal, http_event, reply, with_json, with_path_id};
    let env = env(2_000_000).await; // 0.002 GB: the smallest quotas the admin may set are 0.001 GB
    let body = notification(
        &env.bucket,
        "grande.tar",
        "ObjectCreated:Put",
        Some(1_700_000),
        1,
    );
    assert!(deliver(&env, vec![message("m1", body)]).await.is_empty());
    assert_eq!(alerts(&env).await, vec![80]);

    let approval = approval::Deps {
        core: env.deps.core.clone(),
    };
    let adjust = |quota_gb: f64| {
        let req = with_json(
            with_path_id(http_event("approval/adjust.json"), &env.account),
            &json!({ "quota_gb": quota_gb }),
        );
        as_principal(req, "platform", "key_01jd00000000000000000000ad", "admin")
    };
    // Raised to 0.01 GB: 17 % is below every level; nobody is alerted.
    let (status, _, answer) = reply(&approval::handle(&approval, adjust(0.01)).await);
    assert_eq!(status, 200, "{answer}");
    assert!(alerts(&env).await.is_empty());
    assert_eq!(
        env.deps
            .core
            .store
            .account_usage(&env.account)
            .await
            .unwrap()
            .level,
        0
    );
    // Cut below usage: alerted at once, at 100 %.
    let (status, _, _) = reply(&approval::handle(&approval, adjust(0.001)).await);
    assert_eq!(status, 200);
    assert_eq!(alerts(&env).await, vec![100]);
}

#[tokio::test]
async fn the_fixture_counts_its_decoded_key_once() {
    let env = env(1_000_000).await;
    let mut event: SqsEvent = nuvem_testkit::fixtures::fixture("quota-alerts/s3-put.json");
    for record in &mut event.records {
        record.body = record
            .body
            .as_ref()
            .map(|b| b.replace("nuvem-t-example0-dados", &env.bucket));
    }
    let twice = vec![event.records[0].clone(), event.records[0].clone()];
    assert!(deliver(&env, twice).await.is_empty());
    assert_eq!(usage(&env).await, (1024, 1024, 1));
    let stored = env
        .deps
        .core
        .store
        .object_state(&env.bucket, "backups/dia 01ç.tar")
        .await
        .unwrap();
    assert!(
        stored.is_some_and(|o| o.state.live && o.state.size == 1024),
        "stored under the decoded key"
    );
}
