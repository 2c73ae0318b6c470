//! Rotation: a second access key for the same IAM user, both working
//! until the tenant confirms (the old one is deleted) or cancels (the new
//! one is).

use chrono::Utc;
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::store::{StorageKeyRecord, StorageKeyStatus};

use crate::view::{account_bucket_names, view, with_secret};
use crate::{Deps, audit, iam_problem, load, save_change};

pub(crate) fn must_be_active(key: &StorageKeyRecord) -> Result<(), Problem> {
    match key.status {
        StorageKeyStatus::Active => Ok(()),
        other => Err(Problem::conflict(format!(
            "the storage key is {}",
            other.as_str()
        ))),
    }
}

/// `POST …/{id}/rotation`: a second access key for the same user. Both work
/// until the tenant confirms (the old one is deleted) or cancels (the new
/// one is).
pub(crate) async fn rotate(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let key = load(deps, req, owner).await?;
    must_be_active(&key)?;
    if key.pending_access_key_id.is_some() {
        return Err(Problem::conflict(
            "a rotation is in progress: confirm it or cancel it first",
        ));
    }
    let current: Vec<&str> = key.access_key_id.iter().map(String::as_str).collect();
    // Keys an interrupted rotation made and never recorded: nobody has
    // their secret, and IAM allows only two per user.
    deps.access
        .users
        .delete_access_keys_except(&key.iam_user, &current)
        .await
        .map_err(iam_problem)?;
    let secret = deps
        .access
        .users
        .create_access_key(&key.iam_user)
        .await
        .map_err(iam_problem)?;
    let now = Utc::now();
    let new_id = secret.access_key_id.clone();
    let user = key.iam_user.clone();
    let saved = save_change(deps, req, owner, key, |key| {
        must_be_active(key)?;
        if key.pending_access_key_id.is_some() {
            return Err(Problem::conflict(
                "a rotation is in progress: confirm it or cancel it first",
            ));
        }
        let mut after = key.clone();
        after.pending_access_key_id = Some(new_id.clone());
        Ok((
            after.clone(),
            None,
            audit(owner, "storage_key.rotation_started", &after, now),
        ))
    })
    .await;
    let key = match saved {
        Ok(key) => key,
        Err(problem) => {
            if let Err(e) = deps.access.users.delete_access_key(&user, &new_id).await {
                tracing::warn!(error = %e, "an unrecorded access key is left; the next rotation deletes it");
            }
            return Err(problem);
        }
    };
    let buckets = account_bucket_names(deps, &owner.account_id).await?;
    with_secret(deps, 200, &key, &buckets, &secret)
}

/// `POST …/{id}/rotation/confirm`: the old access key is deleted; the new
/// one is the key's from now on.
pub(crate) async fn confirm(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let key = load(deps, req, owner).await?;
    must_be_active(&key)?;
    let Some(new_id) = key.pending_access_key_id.clone() else {
        return Err(Problem::conflict("no rotation is in progress"));
    };
    if let Some(old) = &key.access_key_id {
        deps.access
            .users
            .delete_access_key(&key.iam_user, old)
            .await
            .map_err(iam_problem)?;
    }
    let now = Utc::now();
    let key = save_change(deps, req, owner, key, |key| {
        if key.pending_access_key_id.as_deref() != Some(new_id.as_str()) {
            return Err(Problem::conflict(
                "the rotation changed; read the key and try again",
            ));
        }
        let mut after = key.clone();
        after.access_key_id = Some(new_id.clone());
        after.pending_access_key_id = None;
        after.rotated_at = Some(now);
        Ok((
            after.clone(),
            None,
            audit(owner, "storage_key.rotated", &after, now),
        ))
    })
    .await?;
    let buckets = account_bucket_names(deps, &owner.account_id).await?;
    http::json(200, &view(&key, &buckets, None))
}

/// `DELETE …/{id}/rotation`: the new access key is deleted; the old one
/// stays the key's.
pub(crate) async fn cancel(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let key = load(deps, req, owner).await?;
    must_be_active(&key)?;
    let Some(new_id) = key.pending_access_key_id.clone() else {
        return Err(Problem::conflict("no rotation is in progress"));
    };
    deps.access
        .users
        .delete_access_key(&key.iam_user, &new_id)
        .await
        .map_err(iam_problem)?;
    let now = Utc::now();
    let key = save_change(deps, req, owner, key, |key| {
        let mut after = key.clone();
        after.pending_access_key_id = None;
        Ok((
            after.clone(),
            None,
            audit(owner, "storage_key.rotation_cancelled", &after, now),
        ))
    })
    .await?;
    let buckets = account_bucket_names(deps, &owner.account_id).await?;
    http::json(200, &view(&key, &buckets, None))
}
