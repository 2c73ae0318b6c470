//! The IAM users behind storage keys (see `nuvem_domain::storage_key`):
//! created under the tenant path with the template's permissions boundary,
//! one inline policy each, at most two access keys (a rotation holds both).
//!
//! Every step is safe to repeat: a retried creation finds its user, a
//! retried deletion finds nothing left to delete.

use aws_sdk_iam::Client;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use chrono::{DateTime, Utc};
use nuvem_domain::storage_key::POLICY_NAME;

use crate::lazy::OnFirstUse;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// IAM throttled us, or the AWS account is out of users or keys (a
    /// capacity problem of the deployment, never the tenant's mistake).
    #[error("iam is busy or at capacity: {0}")]
    Unavailable(String),
    #[error("iam: {0}")]
    Other(String),
}

fn iam_error<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E>) -> IamError {
    // IAM's own words for "at capacity" and "failing", besides the ones
    // every service uses.
    let busy = crate::sdk_error::is_unavailable(&e)
        || matches!(e.code(), Some("LimitExceeded" | "ServiceFailure"));
    let text = aws_sdk_iam::error::DisplayErrorContext(e).to_string();
    if busy {
        IamError::Unavailable(text)
    } else {
        IamError::Other(text)
    }
}

fn is_code<E: ProvideErrorMetadata>(e: &SdkError<E>, code: &str) -> bool {
    e.code() == Some(code)
}

/// A new access key: the secret exists only in this value, on its way to
/// the tenant; nuvem never stores it.
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct StorageUsers {
    iam: OnFirstUse<Client>,
    /// ARN of the managed policy every storage user is bounded by.
    boundary_arn: String,
}

impl StorageUsers {
    pub fn new(config: &aws_config::SdkConfig, boundary_arn: impl Into<String>) -> Self {
        StorageUsers {
            iam: OnFirstUse::new(config, Client::new),
            boundary_arn: boundary_arn.into(),
        }
    }

    /// With a client configured by the caller (tests that look at requests).
    pub fn from_client(client: Client, boundary_arn: impl Into<String>) -> Self {
        StorageUsers {
            iam: OnFirstUse::ready(client),
            boundary_arn: boundary_arn.into(),
        }
    }

    /// Creates the user (or finds it, on a retry) with the boundary and its
    /// tags, and writes its policy.
    pub async fn create_user(
        &self,
        user: &str,
        path: &str,
        tags: &[(&str, &str)],
        policy: &serde_json::Value,
    ) -> Result<(), IamError> {
        let mut create = self
            .iam
            .get()
            .create_user()
            .user_name(user)
            .path(path)
            .permissions_boundary(&self.boundary_arn);
        for (k, v) in tags {
            let tag = Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .map_err(|e| IamError::Other(e.to_string()))?;
            create = create.tags(tag);
        }
        match create.send().await {
            Ok(_) => {}
            Err(e) if is_code(&e, "EntityAlreadyExists") => {}
            Err(e) => return Err(iam_error(e)),
        }
        self.put_policy(user, policy).await
    }

    /// Replaces the user's one inline policy.
    pub async fn put_policy(&self, user: &str, policy: &serde_json::Value) -> Result<(), IamError> {
        self.iam
            .get()
            .put_user_policy()
            .user_name(user)
            .policy_name(POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(iam_error)?;
        Ok(())
    }

    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        let out = self
            .iam
            .get()
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(iam_error)?;
        let key = out
            .access_key
            .ok_or_else(|| IamError::Other("CreateAccessKey answered no key".into()))?;
        Ok(NewAccessKey {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
        })
    }

    /// The ids of the user's access keys (none if the user is gone).
    pub async fn access_keys(&self, user: &str) -> Result<Vec<String>, IamError> {
        match self
            .iam
            .get()
            .list_access_keys()
            .user_name(user)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .access_key_metadata
                .into_iter()
                .filter_map(|k| k.access_key_id)
                .collect()),
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(Vec::new()),
            Err(e) => Err(iam_error(e)),
        }
    }

    /// Deletes an access key; one already gone is not an error.
    pub async fn delete_access_key(&self, user: &str, access_key_id: &str) -> Result<(), IamError> {
        match self
            .iam
            .get()
            .delete_access_key()
            .user_name(user)
            .access_key_id(access_key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
            Err(e) => Err(iam_error(e)),
        }
    }

    /// Deletes the user's access keys other than `keep`: keys a crashed
    /// request made and never recorded (nobody holds their secret).
    pub async fn delete_access_keys_except(
        &self,
        user: &str,
        keep: &[&str],
    ) -> Result<(), IamError> {
        for id in self.access_keys(user).await? {
            if !keep.contains(&id.as_str()) {
                self.delete_access_key(user, &id).await?;
            }
        }
        Ok(())
    }

    /// When an access key was last used, as IAM tracks it (hours late at
    /// worst, and `None` for a key never used or already deleted).
    pub async fn last_used(&self, access_key_id: &str) -> Result<Option<DateTime<Utc>>, IamError> {
        match self
            .iam
            .get()
            .get_access_key_last_used()
            .access_key_id(access_key_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .access_key_last_used
                .and_then(|u| u.last_used_date)
                .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()))),
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(None),
            Err(e) => Err(iam_error(e)),
        }
    }

    /// Deletes the user with its keys and policy; a user already gone (or
    /// never created) is not an error.
    pub async fn delete_user(&self, user: &str) -> Result<(), IamError> {
        self.delete_access_keys_except(user, &[]).await?;
        match self
            .iam
            .get()
            .delete_user_policy()
            .user_name(user)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_code(&e, "NoSuchEntity") => {}
            Err(e) => return Err(iam_error(e)),
        }
        match self.iam.get().delete_user().user_name(user).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
            Err(e) => Err(iam_error(e)),
        }
    }
}
