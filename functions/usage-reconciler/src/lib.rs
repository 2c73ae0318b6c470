//! On a schedule, compares every ready tenant bucket's objects in S3 with
//! what `quota-alerts` recorded from notifications, and corrects the drift
//! that lost, missed or misordered notifications leave behind.
//!
//! Per bucket, S3's listing (ListObjectsV2, `page_size` keys a page) and the
//! bucket's recorded live objects (gsi1 `OBJECTS#<bucket>`, the same key
//! order) are merge-walked page by page, so memory stays bounded by a page:
//! a listed key is compared with its recorded state, and a recorded live key
//! in the page's key range that S3 did not list is gone. Each difference is
//! decided by [`nuvem_domain::usage::reconcile`] from a fresh, consistent
//! read of the key's state and written with `record_object_change`
//! conditioned on the revision read: if an event changed the key meanwhile,
//! the correction is dropped (counted as a lost race).
//!
//! The rule for changes in flight: a key is corrected only when both S3's
//! `LastModified` and the recorded state's `changed_at` are at least
//! `settle` (5 minutes) older than the run's start. Anything newer may have
//! an event still in the queue, or may have changed after its listing page
//! was read; it is left to the events, and to the next run if it really is
//! drift.
//!
//! Each run writes one `RECONCILE#<bucket>` / `RUN#<time>` record per bucket
//! (counts and deltas; logged too), then re-evaluates the owner's quota, so a
//! threshold the correction crossed is announced. A run stops at `deadline`
//! (after at least one page, so every run progresses) and saves where it was
//! (`RECONCILE#STATE`: bucket, S3 continuation token, last key compared); the
//! next run resumes there, and clears it when it reaches the last bucket.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::blobs::{Blobs, ObjectPage};
use nuvem_aws::store::{BucketRecord, BucketState, ReconcileCursor, ReconcileRun};
use nuvem_domain::usage::{Listed, Verdict, reconcile};
use serde::Serialize;

/// Changes younger than this are left to the events (see the module doc).
pub const SETTLE: Duration = Duration::minutes(5);
/// Time kept back from Lambda's deadline to save the cursor and report.
pub const SAFETY_MARGIN: Duration = Duration::seconds(60);
/// Keys per ListObjectsV2 page (S3's maximum).
pub const PAGE_SIZE: i32 = 1000;
/// Buckets per query of the bucket index.
const BUCKETS_PAGE: i32 = 100;

pub struct Deps {
    pub core: Core,
    pub blobs: Blobs,
    pub settle: Duration,
    pub page_size: i32,
}

impl Deps {
    pub fn new(core: Core, blobs: Blobs) -> Self {
        Deps {
            core,
            blobs,
            settle: SETTLE,
            page_size: PAGE_SIZE,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Buckets this run worked on (a resumed one counts again).
    pub buckets: u64,
    pub listed: u64,
    pub added: u64,
    pub fixed: u64,
    pub removed: u64,
    pub bytes_delta: i64,
    pub objects_delta: i64,
    pub settling: u64,
    pub lost_races: u64,
    /// Buckets skipped for an error (retried next cycle).
    pub failed: u64,
    /// The bucket this run resumed in, if it continued a stopped one.
    pub resumed_from: Option<String>,
    /// True when the cycle reached the last bucket; false when the deadline
    /// stopped it (the cursor is saved).
    pub finished: bool,
}

impl Report {
    fn add(&mut self, run: &ReconcileRun) {
        self.buckets += 1;
        self.listed += run.listed;
        self.added += run.added;
        self.fixed += run.fixed;
        self.removed += run.removed;
        self.bytes_delta += run.bytes_delta;
        self.objects_delta += run.objects_delta;
        self.settling += run.settling;
        self.lost_races += run.lost_races;
    }
}

pub async fn handle(deps: &Deps, now: DateTime<Utc>, deadline: DateTime<Utc>) -> Report {
    let mut report = Report::default();
    let store = &deps.core.store;
    let mut resume = match store.reconcile_cursor().await {
        Ok(cursor) => cursor,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the reconciliation cursor");
            return report;
        }
    };
    report.resumed_from = resume.as_ref().map(|c| c.bucket.clone());
    let from = report.resumed_from.clone();
    let mut progressed = false;
    let mut page_cursor: Option<String> = None;
    loop {
        let page = match store
            .all_buckets(from.as_deref(), BUCKETS_PAGE, page_cursor.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the buckets; the cycle goes on next run");
                return report;
            }
        };
        for bucket in page.items {
            if bucket.state != BucketState::Ready {
                continue;
            }
            let start = resume.take().filter(|c| c.bucket == bucket.bucket);
            if progressed && Utc::now() >= deadline {
                return stop(deps, report, stopped_at(&bucket, None, None, now)).await;
            }
            match reconcile_bucket(deps, &bucket, start, now, deadline, &mut progressed).await {
                Ok((run, stopped)) => {
                    report.add(&run);
                    if let Some(cursor) = stopped {
                        return stop(deps, report, cursor).await;
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(bucket = %bucket.bucket, error = %e, "bucket not reconciled");
                }
            }
        }
        page_cursor = page.next_cursor;
        if page_cursor.is_none() {
            break;
        }
    }
    if let Err(e) = store.clear_reconcile_cursor().await {
        tracing::error!(error = %e, "cycle finished but its cursor stays; the next run repeats its end");
    }
    report.finished = true;
    tracing::info!(report = ?report, "usage reconciled");
    report
}

fn stopped_at(
    bucket: &BucketRecord,
    continuation_token: Option<String>,
    last_key: Option<String>,
    now: DateTime<Utc>,
) -> ReconcileCursor {
    ReconcileCursor {
        bucket: bucket.bucket.clone(),
        continuation_token,
        last_key,
        saved_at: now,
    }
}

async fn stop(deps: &Deps, report: Report, cursor: ReconcileCursor) -> Report {
    if let Err(e) = deps.core.store.save_reconcile_cursor(&cursor).await {
        tracing::error!(error = %e, "cannot save the reconciliation cursor; the next run starts over");
    }
    tracing::info!(report = ?report, bucket = %cursor.bucket, last_key = ?cursor.last_key, "usage reconciliation stopped at the deadline");
    report
}

/// Reconciles one bucket from `start` (or its beginning) to its end or the
/// deadline; returns what it did and, when stopped, where.
async fn reconcile_bucket(
    deps: &Deps,
    bucket: &BucketRecord,
    start: Option<ReconcileCursor>,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
    progressed: &mut bool,
) -> Result<(ReconcileRun, Option<ReconcileCursor>), String> {
    let mut run = ReconcileRun {
        bucket: bucket.bucket.clone(),
        account_id: bucket.account_id.clone(),
        started_at: now,
        ..ReconcileRun::default()
    };
    let cutoff = (now - deps.settle).timestamp();
    let (mut token, mut last_key) = start
        .map(|c| (c.continuation_token, c.last_key))
        .unwrap_or_default();
    let mut stopped = None;
    loop {
        if *progressed && Utc::now() >= deadline {
            stopped = Some(stopped_at(bucket, token, last_key, now));
            break;
        }
        let page = list(deps, &bucket.bucket, token.as_deref(), last_key.as_deref()).await?;
        *progressed = true;
        run.listed += page.objects.len() as u64;
        let through = match (&page.next, page.objects.last()) {
            (None, _) => None,
            (Some(_), Some(last)) => Some(last.key.clone()),
            // An empty page that is not the last: nothing to compare yet.
            (Some(next), None) => {
                token = Some(next.clone());
                continue;
            }
        };
        compare_page(
            deps,
            bucket,
            &page,
            last_key.as_deref(),
            through.as_deref(),
            cutoff,
            &mut run,
        )
        .await?;
        if let Some(last) = page.objects.last() {
            last_key = Some(last.key.clone());
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    run.complete = stopped.is_none();
    tracing::info!(run = ?run, "bucket reconciled");
    deps.core
        .store
        .record_reconcile_run(&run)
        .await
        .map_err(|e| e.to_string())?;
    deps.core
        .evaluate_quota(&bucket.account_id, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok((run, stopped))
}

/// A page from S3's token, or after the last key when S3 no longer accepts
/// the token (it is opaque and may not outlive a long pause).
async fn list(
    deps: &Deps,
    bucket: &str,
    token: Option<&str>,
    last_key: Option<&str>,
) -> Result<ObjectPage, String> {
    match deps
        .blobs
        .list_objects(bucket, token, last_key, deps.page_size)
        .await
    {
        Ok(page) => Ok(page),
        Err(e) if token.is_some() && last_key.is_some() => {
            tracing::warn!(bucket, error = %e, "continuation token refused; listing after the last key");
            deps.blobs
                .list_objects(bucket, None, last_key, deps.page_size)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Compares one listing page, covering the keys after `after` up to
/// `through` (`None`: to the end), with the recorded live objects in that
/// range, and corrects each difference.
async fn compare_page(
    deps: &Deps,
    bucket: &BucketRecord,
    page: &ObjectPage,
    after: Option<&str>,
    through: Option<&str>,
    cutoff: i64,
    run: &mut ReconcileRun,
) -> Result<(), String> {
    let listed: HashMap<&str, Listed> = page
        .objects
        .iter()
        .map(|o| {
            (
                o.key.as_str(),
                Listed {
                    size: o.size,
                    last_modified: o.last_modified,
                },
            )
        })
        .collect();
    let mut agreeing: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let recorded = deps
            .core
            .store
            .live_objects(
                &bucket.bucket,
                after,
                through,
                deps.page_size,
                cursor.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
        for object in recorded.items {
            match listed.get(object.key.as_str()) {
                Some(l) if l.size == object.object.state.size => {
                    agreeing.insert(object.key);
                }
                // A different size is corrected with the listed objects below.
                Some(_) => {}
                None => check(deps, bucket, &object.key, None, cutoff, run).await?,
            }
        }
        cursor = recorded.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    for object in &page.objects {
        if !agreeing.contains(&object.key) {
            let l = listed[object.key.as_str()];
            check(deps, bucket, &object.key, Some(&l), cutoff, run).await?;
        }
    }
    Ok(())
}

/// Decides one key from a consistent read of its recorded state and
/// corrects it, unless an event changes it first.
async fn check(
    deps: &Deps,
    bucket: &BucketRecord,
    key: &str,
    listed: Option<&Listed>,
    cutoff: i64,
    run: &mut ReconcileRun,
) -> Result<(), String> {
    let store = &deps.core.store;
    let previous = store
        .object_state(&bucket.bucket, key)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = match reconcile(
        listed,
        previous.as_ref().map(|p| &p.state),
        previous.as_ref().and_then(|p| p.changed_at),
        cutoff,
    ) {
        Verdict::Agrees => return Ok(()),
        Verdict::Settling => {
            run.settling += 1;
            return Ok(());
        }
        Verdict::Correct(outcome) => outcome,
    };
    let written = store
        .record_object_change(
            &bucket.account_id,
            &bucket.bucket,
            key,
            previous.as_ref(),
            &outcome,
            Utc::now().timestamp(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if !written {
        run.lost_races += 1;
        return Ok(());
    }
    let was_live = previous.as_ref().is_some_and(|p| p.state.live);
    match (listed.is_some(), was_live) {
        (true, false) => run.added += 1,
        (true, true) => run.fixed += 1,
        (false, _) => run.removed += 1,
    }
    run.bytes_delta += outcome.bytes_delta;
    run.objects_delta += outcome.objects_delta;
    tracing::info!(bucket = %bucket.bucket, key, bytes_delta = outcome.bytes_delta, objects_delta = outcome.objects_delta, "usage corrected");
    Ok(())
}
