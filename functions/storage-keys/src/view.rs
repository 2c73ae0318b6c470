//! What the API shows of a key: never a secret, except in the one answer
//! that creates (or rotates) it.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Problem};
use nuvem_aws::iam::NewAccessKey;
use nuvem_aws::store::{StorageKeyRecord, StorageKeyStatus};
use nuvem_domain::keys::Actor;
use nuvem_domain::storage_key::Access;
use serde::Serialize;
use serde_json::json;

use crate::Deps;

/// A key as the API shows it: never a secret.
#[derive(Serialize)]
pub(crate) struct KeyView<'a> {
    id: &'a str,
    name: &'a str,
    access: Access,
    all_buckets: bool,
    /// The bucket names it covers now (for `all_buckets`, the account's).
    buckets: &'a [String],
    status: StorageKeyStatus,
    access_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_access_key_id: Option<&'a str>,
    writes_blocked: bool,
    created_at: DateTime<Utc>,
    created_by: &'a Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

pub(crate) fn view<'a>(
    key: &'a StorageKeyRecord,
    account_buckets: &'a [String],
    last_used_at: Option<DateTime<Utc>>,
) -> KeyView<'a> {
    KeyView {
        id: &key.id,
        name: &key.name,
        access: key.access,
        all_buckets: key.buckets.is_none(),
        buckets: key.buckets.as_deref().unwrap_or(account_buckets),
        status: key.status,
        access_key_id: key.access_key_id.as_deref(),
        pending_access_key_id: key.pending_access_key_id.as_deref(),
        writes_blocked: key.writes_blocked,
        created_at: key.created_at,
        created_by: &key.created_by,
        rotated_at: key.rotated_at,
        revoked_at: key.revoked_at,
        last_used_at,
    }
}

/// When the key's credentials were last used, from IAM (the newest of a
/// rotation's two); unknown rather than an error when IAM does not answer.
pub(crate) async fn last_used(deps: &Deps, key: &StorageKeyRecord) -> Option<DateTime<Utc>> {
    if key.status != StorageKeyStatus::Active {
        return None;
    }
    let mut newest = None;
    for id in [&key.access_key_id, &key.pending_access_key_id]
        .into_iter()
        .flatten()
    {
        match deps.access.users.last_used(id).await {
            Ok(at) => newest = newest.max(at),
            Err(e) => tracing::warn!(storage_key_id = %key.id, error = %e, "last use unknown"),
        }
    }
    newest
}

/// The tenant names of the account's buckets, in name order.
pub(crate) async fn account_bucket_names(
    deps: &Deps,
    account_id: &str,
) -> Result<Vec<String>, Problem> {
    let mut names = Vec::new();
    let mut cursor = None;
    loop {
        let page = http::listing(
            deps.core
                .store
                .list_buckets(account_id, 100, cursor.as_deref())
                .await,
        )?;
        names.extend(page.items.into_iter().map(|b| b.name));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// The answer that carries a secret: everything an S3 client asks for.
pub(crate) fn with_secret(
    deps: &Deps,
    status: u16,
    key: &StorageKeyRecord,
    buckets: &[String],
    secret: &NewAccessKey,
) -> HttpResult {
    http::json(
        status,
        &json!({
            "storage_key": view(key, buckets, None),
            "access_key_id": secret.access_key_id,
            "secret_access_key": secret.secret_access_key,
            "endpoint": deps.s3_client.endpoint,
            "region": deps.s3_client.region,
            "buckets": key.buckets.as_deref().unwrap_or(buckets),
            "note": "store the secret access key now: it is shown only once",
        }),
    )
}
