//! The usage reconciler against the emulator: S3 changes whose notifications
//! never reached `quota-alerts` are found and corrected, a second run finds
//! nothing, a run stopped by its deadline resumes where it stopped, and a
//! correction that crosses a threshold announces it.

use chrono::{Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::blobs::Blobs;
use nuvem_domain::usage::{ObjectState, Outcome};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use serde_json::Value;
use usage_reconciler::{Deps, Report, handle};

struct Env {
    t: TestStack,
    deps: Deps,
    account: String,
    bucket: String,
}

/// An active account with a quota of `quota_bytes` and one ready bucket
/// wired to S3 events (which these tests never deliver).
async fn env(quota_bytes: u64) -> Env {
    let t = TestStack::new("reconcile").await;
    let core = Core::from_lookup(&t.sdk, &t.env("UsageReconciler")).unwrap();
    let id = tenants::active_account(&core.store, quota_bytes, 0)
        .await
        .id;
    let bucket = tenants::tenant_bucket(&t, &core.store, &id, "backups").await;
    let blobs = Blobs::new(&t.sdk);
    drain(&t.sqs, t.events_queue(), 50).await;
    let mut deps = Deps::new(core, blobs);
    // Everything here is older than the run: nothing is in flight.
    deps.settle = Duration::zero();
    Env {
        t,
        deps,
        account: id,
        bucket,
    }
}

impl Env {
    async fn put(&self, key: &str, size: usize) {
        self.deps
            .blobs
            .client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(vec![7u8; size].into())
            .send()
            .await
            .unwrap();
    }

    async fn delete(&self, key: &str) {
        self.deps
            .blobs
            .client()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }

    /// Records a put as `quota-alerts` would have, from an event.
    async fn record(&self, key: &str, size: u64) {
        let store = &self.deps.core.store;
        let previous = store.object_state(&self.bucket, key).await.unwrap();
        let was = previous
            .as_ref()
            .filter(|p| p.state.live)
            .map_or((0, 0), |p| (p.state.size as i64, 1));
        let state = ObjectState {
            size,
            live: true,
            sequencer: Some("0055AED6DCD90281E5".into()),
        };
        assert!(
            store
                .record_object_change(
                    &self.account,
                    &self.bucket,
                    key,
                    previous.as_ref(),
                    &Outcome {
                        new_state: state,
                        bytes_delta: size as i64 - was.0,
                        objects_delta: 1 - was.1,
                    },
                    Utc::now().timestamp(),
                )
                .await
                .unwrap()
        );
    }

    /// (account bytes, bucket bytes, bucket objects).
    async fn usage(&self) -> (i64, u64, u64) {
        let store = &self.deps.core.store;
        let account = store.account_usage(&self.account).await.unwrap();
        let bucket = store.bucket_usage(&self.bucket).await.unwrap();
        (account.bytes, bucket.bytes, bucket.objects)
    }

    async fn run(&self) -> Report {
        let now = Utc::now();
        handle(&self.deps, now, now + Duration::minutes(10)).await
    }

    /// The account's threshold alerts queued so far, by level.
    async fn alerts(&self) -> Vec<u64> {
        drain(&self.t.sqs, self.t.events_queue(), 50)
            .await
            .iter()
            .filter_map(|m| serde_json::from_str::<Value>(m.body()?).ok())
            .filter(|e| {
                e["type"] == "quota.threshold_crossed" && e["account_id"] == self.account.as_str()
            })
            .map(|e| e["data"]["level_percent"].as_u64().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn drift_is_corrected_once_and_recent_changes_are_left_to_the_events() {
    let mut env = env(1_000_000).await;
    // Put in S3, never delivered.
    env.put("novo.tar", 100).await;
    // Delivered, and right.
    env.put("certo.tar", 200).await;
    env.record("certo.tar", 200).await;
    // Delivered with a wrong size (e.g. an overwrite's event lost).
    env.put("pasta/tamanho errado.tar", 300).await;
    env.record("pasta/tamanho errado.tar", 10).await;
    // Deleted behind nuvem's back: its delete event never delivered.
    env.put("apagado.tar", 50).await;
    env.record("apagado.tar", 50).await;
    env.delete("apagado.tar").await;
    assert_eq!(env.usage().await, (260, 260, 3));

    // With the default settling time all of this is too recent to touch.
    env.deps.settle = usage_reconciler::SETTLE;
    let report = env.run().await;
    assert_eq!(
        (report.added, report.fixed, report.removed, report.settling),
        (0, 0, 0, 3)
    );
    assert!(report.finished);
    assert_eq!(env.usage().await, (260, 260, 3));

    env.deps.settle = Duration::zero();
    let report = env.run().await;
    assert_eq!(report.listed, 3);
    assert_eq!(
        (report.added, report.fixed, report.removed, report.settling),
        (1, 1, 1, 0)
    );
    assert_eq!((report.bytes_delta, report.objects_delta), (340, 0));
    assert!(report.finished);
    assert_eq!(env.usage().await, (600, 600, 3));
    let state = env
        .deps
        .core
        .store
        .object_state(&env.bucket, "apagado.tar")
        .await
        .unwrap()
        .unwrap();
    assert!(!state.state.live);

    let again = env.run().await;
    assert_eq!(
        (again.added, again.fixed, again.removed, again.bytes_delta),
        (0, 0, 0, 0)
    );
    assert_eq!(again.listed, 3);
    assert_eq!(env.usage().await, (600, 600, 3));

    // Every run left its record for the bucket.
    let runs = env
        .deps
        .core
        .store
        .reconcile_runs(&env.bucket)
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(
        (
            runs[1].added,
            runs[1].fixed,
            runs[1].removed,
            runs[1].bytes_delta
        ),
        (1, 1, 1, 340)
    );
    assert!(
        runs.iter()
            .all(|r| r.complete && r.account_id == env.account)
    );
    assert!(env.alerts().await.is_empty());
}

#[tokio::test]
async fn a_run_stopped_by_its_deadline_resumes_from_its_cursor() {
    let mut env = env(1_000_000).await;
    env.deps.page_size = 10;
    for i in 0..25 {
        env.put(&format!("k{i:02}"), 10 + i).await;
    }
    // Recorded objects S3 no longer has, in the first, second and last page
    // ranges (after the last listed key too).
    for key in ["k05x", "k12x", "zz"] {
        env.put(key, 1_000).await;
        env.record(key, 1_000).await;
        env.delete(key).await;
    }
    let expected: u64 = (0..25).map(|i| 10 + i).sum();
    let past = Utc::now() - Duration::seconds(1);
    let mut listed = 0;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let report = handle(&env.deps, Utc::now(), past).await;
        listed += report.listed;
        runs.push(report.clone());
        if report.finished {
            break;
        }
        let cursor = env
            .deps
            .core
            .store
            .reconcile_cursor()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cursor.bucket, env.bucket);
        assert_eq!(
            cursor.last_key.as_deref(),
            Some(format!("k{:02}", runs.len() * 10 - 1).as_str())
        );
    }
    // One page per run: 10 + 10 + 5 objects, each listed once.
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(listed, 25);
    assert_eq!(runs[0].resumed_from, None);
    assert_eq!(runs[1].resumed_from.as_deref(), Some(env.bucket.as_str()));
    assert_eq!(runs.iter().map(|r| r.added).sum::<u64>(), 25);
    assert_eq!(
        runs.iter().map(|r| r.removed).collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
    assert_eq!(
        env.usage().await,
        (expected as i64, expected, 25),
        "usage is exact once the cycle is done"
    );
    assert!(
        env.deps
            .core
            .store
            .reconcile_cursor()
            .await
            .unwrap()
            .is_none()
    );
    let runs = env
        .deps
        .core
        .store
        .reconcile_runs(&env.bucket)
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.complete).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    // The next cycle starts over and finds nothing.
    let again = env.run().await;
    assert_eq!((again.listed, again.added, again.removed), (25, 0, 0));
}

#[tokio::test]
async fn a_correction_that_crosses_80_percent_is_announced_once() {
    let env = env(1_000).await;
    env.put("a.tar", 300).await;
    env.record("a.tar", 300).await;
    // 550 more bytes whose events were lost: 850 of 1000 bytes.
    env.put("b.tar", 550).await;
    assert_eq!(env.run().await.bytes_delta, 550);
    assert_eq!(env.usage().await, (850, 850, 2));
    assert_eq!(env.alerts().await, vec![80]);
    let again = env.run().await;
    assert_eq!(again.bytes_delta, 0);
    assert!(env.alerts().await.is_empty());
}
