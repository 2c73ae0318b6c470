//! Time of one reconciliation of a bucket of 10,000 objects against the
//! emulator: first with 1 % drift (100 objects whose events were lost),
//! then again with nothing to correct (the daily case: listing and index
//! pages only).
//!
//! Seeding is not what is measured, so it takes the short way: the bucket's
//! event notifications are switched off while the objects are put (each put
//! would otherwise queue an S3 event in the emulator), and the recorded
//! objects are written with BatchWriteItem, as `quota-alerts` would have
//! recorded them, except every 100th (the drift).
//!
//! `cargo run -p usage-reconciler --example per_10k [objects]`

use futures::StreamExt;
use std::time::Instant;

use chrono::{Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::blobs::Blobs;
use nuvem_testkit::{TestStack, tenants};

#[tokio::main]
async fn main() {
    let objects: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let t = TestStack::new("reconcile-bench").await;
    let core = Core::from_lookup(&t.sdk, &t.env("UsageReconciler")).unwrap();
    let id = tenants::active_account(&core.store, 1_000_000_000_000, 0)
        .await
        .id;
    let bucket = tenants::tenant_bucket(&t, &core.store, &id, "bench").await;
    let blobs = Blobs::new(&t.sdk);
    let s3 = blobs.client().clone();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .unwrap();

    let started = Instant::now();
    futures::stream::iter(0..objects)
        .map(|i| {
            let s3 = s3.clone();
            let bucket = bucket.clone();
            async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key(object_key(i))
                    .body(vec![1u8; size(i) as usize].into())
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    eprintln!("created {objects} objects in {:.1?}", started.elapsed());

    // Recorded as quota-alerts would have, an hour ago, except every 100th.
    let db = aws_sdk_dynamodb::Client::new(&t.sdk);
    let drift: Vec<usize> = (0..objects).step_by(100).collect();
    let recorded: Vec<usize> = (0..objects).filter(|i| i % 100 != 0).collect();
    let an_hour_ago = (Utc::now() - Duration::hours(1)).timestamp();
    for chunk in recorded.chunks(25) {
        use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
        use nuvem_aws::table_keys as k;
        let writes = chunk
            .iter()
            .map(|&i| {
                let key = object_key(i);
                let stored = nuvem_aws::store::StoredObject {
                    state: nuvem_domain::usage::ObjectState {
                        size: size(i),
                        live: true,
                        sequencer: None,
                    },
                    rev: 1,
                    changed_at: Some(an_hour_ago),
                };
                let mut item: std::collections::HashMap<String, AttributeValue> =
                    serde_dynamo::to_item(&stored).unwrap();
                item.insert(k::PK.into(), AttributeValue::S(k::object_pk(&bucket, &key)));
                item.insert(k::SK.into(), AttributeValue::S(k::OBJECT_SK.into()));
                item.insert(
                    k::GSI1PK.into(),
                    AttributeValue::S(k::objects_of_bucket(&bucket)),
                );
                item.insert(k::GSI1SK.into(), AttributeValue::S(key));
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        let out = db
            .batch_write_item()
            .request_items(t.table(), writes)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.is_none_or(|u| u.is_empty()));
    }

    let mut deps = usage_reconciler::Deps::new(core, blobs);
    deps.settle = Duration::zero();
    let far = Utc::now() + Duration::hours(1);
    for label in ["1 % drift", "no drift"] {
        let started = Instant::now();
        let report = usage_reconciler::handle(&deps, Utc::now(), far).await;
        let elapsed = started.elapsed();
        assert!(report.finished);
        assert_eq!(report.listed, objects as u64);
        let per_10k = elapsed.as_secs_f64() * 10_000.0 / objects as f64;
        println!(
            "{label}: {objects} objects in {:.2} s = {per_10k:.2} s per 10,000 objects \
             (added {}, fixed {}, removed {})",
            elapsed.as_secs_f64(),
            report.added,
            report.fixed,
            report.removed,
        );
    }
    let usage = deps.core.store.bucket_usage(&bucket).await.unwrap();
    assert_eq!(usage.objects, drift.len() as u64);
}

fn object_key(i: usize) -> String {
    format!("backups/{:03}/file-{i:06}.bin", i % 97)
}

fn size(i: usize) -> u64 {
    100 + (i % 900) as u64
}
