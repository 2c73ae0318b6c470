//! `/v1/buckets…`: tenant buckets. An owner creates and deletes them; every
//! tenant role may read them. The bucket a tenant names is created in S3
//! under the deployment's prefix and the account's tag, private, tagged and
//! wired to the `s3-events` queue that keeps usage exact.

use chrono::Utc;
use nuvem_aws::blobs::{BlobError, Blobs};
use nuvem_aws::config::{self, ConfigError};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::iam::IamError;
use nuvem_aws::storage_access::{AccessError, StorageAccess};
use nuvem_aws::store::{BucketClaim, BucketRecord, BucketState, LicenseChange, Store};
use nuvem_domain::account::quota_bytes;
use nuvem_domain::bucket;
use nuvem_domain::keys::Role;
use serde::{Deserialize, Serialize};

pub struct Deps {
    pub store: Store,
    pub blobs: Blobs,
    /// Deployment prefix of every physical bucket name.
    pub prefix: String,
    /// ARN of the `s3-events` queue the buckets notify.
    pub events_queue_arn: String,
    /// What an S3 client (e.g. Imperius Backup) must be configured with.
    pub s3_client: config::S3ClientSettings,
    /// The storage keys' policies, which a deleted bucket leaves.
    pub access: StorageAccess,
}

impl Deps {
    /// From the function's configuration (`lookup` is the environment in
    /// Lambda).
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deps, ConfigError> {
        Ok(Deps {
            store: Store::new(sdk, config::required(lookup, "TABLE_NAME")?),
            blobs: Blobs::new(sdk),
            prefix: config::required(lookup, "BUCKET_PREFIX")?,
            events_queue_arn: config::required(lookup, "S3_EVENTS_QUEUE_ARN")?,
            s3_client: config::S3ClientSettings::from_lookup(sdk, lookup)?,
            access: StorageAccess::from_lookup(sdk, lookup)?,
        })
    }
}

const READERS: [Role; 3] = [Role::Owner, Role::Approver, Role::Operator];

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    match http::route(req) {
        "POST /v1/buckets" => create(deps, req, &http::require(req, &[Role::Owner])?).await,
        "GET /v1/buckets" => list(deps, req, &http::require(req, &READERS)?).await,
        "GET /v1/buckets/{name}" => show(deps, req, &http::require(req, &READERS)?).await,
        "DELETE /v1/buckets/{name}" => {
            delete(deps, req, &http::require(req, &[Role::Owner])?).await
        }
        "PATCH /v1/buckets/{name}" => {
            license(deps, req, &http::require(req, &[Role::Owner])?).await
        }
        "GET /v1/usage" => usage(deps, &http::require(req, &READERS)?).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
}

/// A bucket as the API shows it, with what an S3 client needs to use it.
#[derive(Serialize)]
struct BucketView<'a> {
    name: &'a str,
    bucket: &'a str,
    region: &'a str,
    endpoint: &'a str,
    state: BucketState,
    imperius_license: bool,
    used_bytes: u64,
    object_count: u64,
    created_at: chrono::DateTime<Utc>,
}

async fn view(deps: &Deps, record: &BucketRecord) -> HttpResult {
    let usage = deps.store.bucket_usage(&record.bucket).await?;
    let status = if record.state == BucketState::Ready {
        200
    } else {
        202
    };
    http::json(
        status,
        &BucketView {
            name: &record.name,
            bucket: &record.bucket,
            region: &deps.s3_client.region,
            endpoint: &deps.s3_client.endpoint,
            state: record.state,
            imperius_license: record.imperius_license,
            used_bytes: usage.bytes,
            object_count: usage.objects,
            created_at: record.created_at,
        },
    )
}

fn physical(deps: &Deps, owner: &Principal, name: &str) -> Result<String, Problem> {
    bucket::validate_bucket_name(name)
        .and_then(|()| bucket::physical_bucket_name(&deps.prefix, &owner.account_id, name))
        .map_err(|e| Problem::validation(vec![e]))
}

async fn create(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let body: CreateBody = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let physical = physical(deps, owner, &body.name)?;
    let mut record = BucketRecord {
        name: body.name,
        bucket: physical,
        account_id: owner.account_id.clone(),
        state: BucketState::Creating,
        imperius_license: false,
        created_at: Utc::now(),
    };
    if deps.store.claim_bucket(&record).await? == BucketClaim::Exists {
        return Err(Problem::conflict(format!(
            "a bucket named {} exists",
            record.name
        )));
    }
    match deps
        .blobs
        .create_tenant_bucket(&record.bucket, &owner.account_id, &deps.events_queue_arn)
        .await
    {
        Ok(()) => {}
        Err(BlobError::NameTaken) => {
            // Outside this deployment: give the claim back, nothing remains.
            deps.store
                .forget_bucket(&owner.account_id, &record.bucket)
                .await?;
            return Err(Problem::conflict(
                "that bucket name is taken in S3; choose another",
            ));
        }
        // The claim stays `creating`; the same request again finishes the job.
        Err(e) => return Err(Problem::fault(e)),
    }
    deps.store.bucket_ready(&record.bucket).await?;
    record.state = BucketState::Ready;
    let mut reply = view(deps, &record).await?;
    *reply.status_mut() = http::Status::CREATED;
    Ok(reply)
}

async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let page = http::listing(
        deps.store
            .list_buckets(
                &who.account_id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let items: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|b| {
            serde_json::json!({
                "name": b.name, "bucket": b.bucket, "state": b.state,
                "imperius_license": b.imperius_license, "created_at": b.created_at,
            })
        })
        .collect();
    http::json(
        200,
        &serde_json::json!({ "items": items, "next_cursor": page.next_cursor }),
    )
}

/// The caller's bucket named in the path, or 404 (another account's included).
async fn load(deps: &Deps, req: &Request, who: &Principal) -> Result<BucketRecord, Problem> {
    let name = http::path_param(req, "name")?;
    let missing = || Problem::not_found(format!("no bucket {name}"));
    let physical = physical(deps, who, name).map_err(|_| missing())?;
    deps.store
        .get_bucket(&who.account_id, &physical)
        .await?
        .ok_or_else(missing)
}

async fn show(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    view(deps, &load(deps, req, who).await?).await
}

async fn delete(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let record = load(deps, req, owner).await?;
    if record.imperius_license {
        return Err(Problem::conflict(
            "turn the Imperius licence off before deleting the bucket",
        ));
    }
    match deps.blobs.delete_empty_bucket(&record.bucket).await {
        Ok(()) => {}
        Err(BlobError::NotEmpty) => {
            return Err(Problem::conflict(
                "the bucket is not empty; delete its objects first",
            ));
        }
        Err(e) => return Err(Problem::fault(e)),
    }
    // Before the name is given back: while the claim stands nobody can
    // make a bucket of that name that an old grant would reach.
    deps.access
        .forget_bucket(&deps.store, &owner.account_id, &record.name)
        .await
        .map_err(|e| match e {
            AccessError::Iam(IamError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "IAM busy; the bucket's grants stay until a retry");
                Problem::unavailable(
                    "storage keys could not be updated now; send the same request again",
                    5,
                )
            }
            other => Problem::internal(other),
        })?;
    deps.store
        .forget_bucket(&owner.account_id, &record.bucket)
        .await?;
    http::no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenseBody {
    imperius_license: bool,
}

/// `PATCH …/{name} {"imperius_license": true|false}`.
async fn license(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let body: LicenseBody = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let record = load(deps, req, owner).await?;
    match deps
        .store
        .set_bucket_license(&owner.account_id, &record.bucket, body.imperius_license)
        .await?
    {
        LicenseChange::Changed | LicenseChange::Unchanged => {}
        LicenseChange::NotFound => {
            return Err(Problem::not_found(format!("no bucket {}", record.name)));
        }
        LicenseChange::NoneLeft => {
            return Err(Problem::conflict(
                "every contracted Imperius licence is in use; turn one off or ask for more",
            ));
        }
    }
    let record = BucketRecord {
        imperius_license: body.imperius_license,
        ..record
    };
    view(deps, &record).await
}

/// How much of its quota the account uses, bucket by bucket.
async fn usage(deps: &Deps, who: &Principal) -> HttpResult {
    let account = deps
        .store
        .get_account(&who.account_id)
        .await?
        .ok_or_else(|| Problem::not_found("no such account"))?;
    let mut buckets = Vec::new();
    let mut cursor = None;
    loop {
        let page = http::listing(
            deps.store
                .list_buckets(&who.account_id, 100, cursor.as_deref())
                .await,
        )?;
        buckets.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let names: Vec<String> = buckets.iter().map(|b| b.bucket.clone()).collect();
    let usages = deps.store.bucket_usages(&names).await?;
    let rows: Vec<serde_json::Value> = buckets
        .iter()
        .map(|b| {
            let u = usages.get(&b.bucket).cloned().unwrap_or_default();
            serde_json::json!({
                "name": b.name, "bucket": b.bucket, "used_bytes": u.bytes,
                "object_count": u.objects, "imperius_license": b.imperius_license,
            })
        })
        .collect();
    let used: u64 = usages.values().map(|u| u.bytes).sum();
    let quota = account.quota_gb.map(quota_bytes).unwrap_or(0);
    let percent = if quota == 0 {
        None
    } else {
        Some(used as f64 * 100.0 / quota as f64)
    };
    http::json(
        200,
        &serde_json::json!({
            "quota_gb": account.quota_gb,
            "quota_bytes": quota,
            "used_bytes": used,
            "used_percent": percent,
            "buckets": rows,
            "imperius_licenses": {
                "contracted": account.imperius_licenses,
                "in_use": account.licenses_in_use,
            },
        }),
    )
}
