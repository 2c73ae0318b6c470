//! `/v1/storage-keys…`: S3 credentials for a tenant's backup software. An
//! owner creates a key for all of the account's buckets (present and
//! future) or for named ones, read-write or read-only; lists, revokes and
//! rotates keys. Each key is an IAM user under the tenant path, bounded by
//! the template's permissions boundary, with one inline policy from
//! `nuvem_domain::storage_key`. The secret is shown once and never stored.
//!
//! IAM calls are not transactional with the table, so the table leads: a
//! key is written `creating` before its user exists, becomes `active` only
//! once IAM has it, and is deleted from IAM before it is marked `revoked`.
//! Whatever a failure leaves behind, revoking the key cleans up.

use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::config::{ConfigError, S3ClientSettings};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::iam::IamError;
use nuvem_aws::storage_access::StorageAccess;
use nuvem_aws::store::{AuditRecord, StorageKeyRecord, StorageKeyStatus};
use nuvem_domain::bucket;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::ids;
use nuvem_domain::keys::Role;
use nuvem_domain::storage_key::{self, NewStorageKeyRequest};
use nuvem_domain::validation::FieldError;
use serde_json::json;

mod rotation;
mod view;

use view::{account_bucket_names, last_used, view, with_secret};

pub struct Deps {
    pub core: Core,
    pub access: StorageAccess,
    pub s3_client: S3ClientSettings,
}

impl Deps {
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deps, ConfigError> {
        Ok(Deps {
            core: Core::from_lookup(sdk, lookup)?,
            access: StorageAccess::from_lookup(sdk, lookup)?,
            s3_client: S3ClientSettings::from_lookup(sdk, lookup)?,
        })
    }
}

const OWNER: &[Role] = &[Role::Owner];
/// How long a client should wait before retrying when IAM is busy.
const RETRY_AFTER_SECS: u32 = 5;

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    let owner = || http::require(req, OWNER);
    match http::route(req) {
        "POST /v1/storage-keys" => create(deps, req, &owner()?).await,
        "GET /v1/storage-keys" => list(deps, req, &owner()?).await,
        "GET /v1/storage-keys/{id}" => show(deps, req, &owner()?).await,
        "DELETE /v1/storage-keys/{id}" => revoke(deps, req, &owner()?).await,
        "POST /v1/storage-keys/{id}/rotation" => rotation::rotate(deps, req, &owner()?).await,
        "POST /v1/storage-keys/{id}/rotation/confirm" => {
            rotation::confirm(deps, req, &owner()?).await
        }
        "DELETE /v1/storage-keys/{id}/rotation" => rotation::cancel(deps, req, &owner()?).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

pub(crate) fn iam_problem(e: IamError) -> Problem {
    match e {
        IamError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "IAM busy or at capacity");
            Problem::unavailable(
                "the storage credential service is busy; try again shortly",
                RETRY_AFTER_SECS,
            )
        }
        IamError::Other(cause) => Problem::internal(cause),
    }
}

/// The physical names of the named buckets, each checked to be the
/// account's (422 naming the ones that are not).
async fn physical_buckets(
    deps: &Deps,
    account_id: &str,
    names: &[String],
) -> Result<Vec<String>, Problem> {
    let mut physical = Vec::new();
    let mut errors = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let field = || format!("buckets[{i}]");
        let Ok(p) = bucket::physical_bucket_name(&deps.access.prefix, account_id, name) else {
            errors.push(FieldError::new(field(), format!("no bucket {name}")));
            continue;
        };
        match deps.core.store.get_bucket(account_id, &p).await? {
            Some(_) => physical.push(p),
            None => errors.push(FieldError::new(field(), format!("no bucket {name}"))),
        }
    }
    if errors.is_empty() {
        Ok(physical)
    } else {
        Err(Problem::validation(errors))
    }
}

pub(crate) fn audit(
    who: &Principal,
    action: &str,
    key: &StorageKeyRecord,
    now: DateTime<Utc>,
) -> AuditRecord {
    AuditRecord {
        id: ids::new_id(ids::AUDIT),
        account_id: who.account_id.clone(),
        action: action.to_owned(),
        actor_key_id: who.key_id.clone(),
        actor_role: who.role.as_str().to_owned(),
        before: json!({ "storage_key_id": key.id }),
        after: json!({
            "storage_key_id": key.id, "name": key.name, "status": key.status,
            "access_key_id": key.access_key_id,
            "pending_access_key_id": key.pending_access_key_id,
            "key_name": who.key_name,
        }),
        at: now,
    }
}

async fn create(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let body: NewStorageKeyRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let valid = body.validate().map_err(Problem::validation)?;
    if let Some(names) = &valid.buckets {
        physical_buckets(deps, &owner.account_id, names).await?;
    }
    let now = Utc::now();
    let id = ids::new_id(ids::STORAGE_KEY);
    let mut key = StorageKeyRecord {
        iam_user: storage_key::user_name(&deps.access.prefix, &id),
        id,
        account_id: owner.account_id.clone(),
        name: valid.name,
        access: valid.access,
        buckets: valid.buckets,
        status: StorageKeyStatus::Creating,
        access_key_id: None,
        pending_access_key_id: None,
        writes_blocked: false,
        created_at: now,
        created_by: owner.actor(),
        rotated_at: None,
        revoked_at: None,
        version: 0,
    };
    // A hard-quota account at its quota gets keys that cannot write.
    key.writes_blocked = deps
        .core
        .store
        .account_usage(&owner.account_id)
        .await?
        .writes_blocked;
    let policy = deps.access.policy(&key).map_err(Problem::internal)?;
    if !deps.core.store.begin_storage_key(&key).await? {
        return Err(Problem::conflict(format!(
            "the account holds {} storage keys, the most it may; revoke one first",
            storage_key::MAX_KEYS_PER_ACCOUNT
        )));
    }
    let tag = bucket::account_tag(&key.account_id).map_err(|e| Problem::internal(e.message))?;
    let made = async {
        deps.access
            .users
            .create_user(
                &key.iam_user,
                &storage_key::user_path(&deps.access.prefix, &key.account_id),
                &[
                    (storage_key::ACCOUNT_TAG_KEY, key.account_id.as_str()),
                    (storage_key::BUCKET_TAG_KEY, tag),
                ],
                &policy,
            )
            .await?;
        deps.access.users.create_access_key(&key.iam_user).await
    }
    .await;
    let secret = match made {
        Ok(secret) => secret,
        Err(e) => {
            undo_creation(deps, &key).await;
            return Err(iam_problem(e));
        }
    };
    let before = key.clone();
    key.status = StorageKeyStatus::Active;
    key.access_key_id = Some(secret.access_key_id.clone());
    key.version = before.version + 1;
    let buckets = account_bucket_names(deps, &key.account_id).await?;
    let event = Envelope::new(
        EventType::StorageKeyCreated,
        &key.account_id,
        json!({
            "storage_key_id": key.id, "name": key.name,
            "access_key_id": key.access_key_id, "access": key.access,
            "all_buckets": key.buckets.is_none(),
            "buckets": key.buckets.as_deref().unwrap_or(&buckets),
            "by": key.created_by,
        }),
        now,
    );
    let saved = deps
        .core
        .store
        .save_storage_key(
            &before,
            &key,
            Some(&event),
            Some(&audit(owner, "storage_key.created", &key, now)),
        )
        .await;
    if !matches!(saved, Ok(true)) {
        undo_creation(deps, &before).await;
        return Err(match saved {
            Err(e) => e.into(),
            _ => Problem::conflict("the key was revoked while it was being created"),
        });
    }
    deps.core.emit(&event, None).await;
    with_secret(deps, 201, &key, &buckets, &secret)
}

/// Undoes a creation that failed half-way. If IAM does not answer even to
/// that, the record stays `creating` and revoking it finishes the job.
async fn undo_creation(deps: &Deps, key: &StorageKeyRecord) {
    match deps.access.users.delete_user(&key.iam_user).await {
        Ok(()) => {
            if let Err(e) = deps.core.store.forget_storage_key(key).await {
                tracing::warn!(storage_key_id = %key.id, error = %e, "failed creation left in `creating`");
            }
        }
        Err(e) => {
            tracing::warn!(storage_key_id = %key.id, error = %e, "failed creation left in `creating`; revoke it to clean up");
        }
    }
}

async fn list(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let page = http::listing(
        deps.core
            .store
            .list_storage_keys(
                &owner.account_id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let buckets = account_bucket_names(deps, &owner.account_id).await?;
    let used = futures::future::join_all(page.items.iter().map(|k| last_used(deps, k))).await;
    let items: Vec<view::KeyView> = page
        .items
        .iter()
        .zip(used)
        .map(|(k, at)| view(k, &buckets, at))
        .collect();
    http::json(
        200,
        &json!({ "items": items, "next_cursor": page.next_cursor }),
    )
}

/// The caller's key named in the path, or 404 (another account's included).
pub(crate) async fn load(
    deps: &Deps,
    req: &Request,
    owner: &Principal,
) -> Result<StorageKeyRecord, Problem> {
    let id = http::path_param(req, "id")?;
    let missing = || Problem::not_found(format!("no storage key {id}"));
    if !ids::has_prefix(id, ids::STORAGE_KEY) {
        return Err(missing());
    }
    deps.core
        .store
        .get_storage_key(&owner.account_id, id)
        .await?
        .ok_or_else(missing)
}

async fn show(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let key = load(deps, req, owner).await?;
    let buckets = account_bucket_names(deps, &owner.account_id).await?;
    let at = last_used(deps, &key).await;
    http::json(200, &view(&key, &buckets, at))
}

/// Saves a change made by `change` to the freshly read key, re-reading and
/// re-applying it if a concurrent request changed the key first.
pub(crate) async fn save_change(
    deps: &Deps,
    req: &Request,
    owner: &Principal,
    mut key: StorageKeyRecord,
    change: impl Fn(
        &StorageKeyRecord,
    ) -> Result<(StorageKeyRecord, Option<Envelope>, AuditRecord), Problem>,
) -> Result<StorageKeyRecord, Problem> {
    for _ in 0..3 {
        let (after, event, audit) = change(&key)?;
        if deps
            .core
            .store
            .save_storage_key(&key, &after, event.as_ref(), Some(&audit))
            .await?
        {
            if let Some(event) = event {
                deps.core.emit(&event, None).await;
            }
            return Ok(after);
        }
        key = load(deps, req, owner).await?;
    }
    Err(Problem::conflict(
        "the storage key kept changing while this request was made; read it and try again",
    ))
}

/// `DELETE /v1/storage-keys/{id}`: deletes the IAM user (its access keys
/// and policy with it), then marks the key revoked. Repeatable: a revoked
/// key answers 204 again, and a key a failure left half-made is finished.
async fn revoke(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let key = load(deps, req, owner).await?;
    if key.status == StorageKeyStatus::Revoked {
        return http::no_content();
    }
    deps.access
        .users
        .delete_user(&key.iam_user)
        .await
        .map_err(iam_problem)?;
    let now = Utc::now();
    save_change(deps, req, owner, key, |key| {
        let mut after = key.clone();
        after.status = StorageKeyStatus::Revoked;
        after.pending_access_key_id = None;
        after.revoked_at = Some(now);
        // A key that never became active was never announced.
        let event = (key.status == StorageKeyStatus::Active).then(|| {
            Envelope::new(
                EventType::StorageKeyRevoked,
                &key.account_id,
                json!({
                    "storage_key_id": key.id, "name": key.name,
                    "access_key_id": key.access_key_id, "by": owner.actor(),
                }),
                now,
            )
        });
        Ok((
            after.clone(),
            event,
            audit(owner, "storage_key.revoked", &after, now),
        ))
    })
    .await?;
    http::no_content()
}
