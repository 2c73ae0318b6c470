//! Secrets a deployment is configured with (Meta's app secret, the webhook
//! verify token, an LLM key): one JSON object in AWS Secrets Manager, named
//! by an environment variable, never in source or in the template's
//! parameters (which Lambda would show in plaintext).
//!
//! Read on first use and kept for [`REFRESH_AFTER`], so a rotated value is
//! picked up within minutes without a redeploy, and a warm function does
//! not call Secrets Manager per event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::config::{self, ConfigError};
use crate::lazy::OnFirstUse;

/// How long a read value is used before it is read again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager could not be read (unavailable, throttled, denied).
    #[error("secrets manager: {0}")]
    Unavailable(String),
    /// The secret is not the JSON object the function expects: a
    /// deployment mistake, reported without the value.
    #[error("the secret's value is not the expected JSON object: {0}")]
    Malformed(String),
}

/// The value last read, and when.
type Cached<T> = Arc<Mutex<Option<(Instant, Arc<T>)>>>;

/// A JSON secret read into `T`, refreshed every [`REFRESH_AFTER`].
pub struct DeploymentSecret<T> {
    client: OnFirstUse<Client>,
    secret_id: String,
    cached: Cached<T>,
}

impl<T> Clone for DeploymentSecret<T> {
    fn clone(&self) -> Self {
        DeploymentSecret {
            client: self.client.clone(),
            secret_id: self.secret_id.clone(),
            cached: self.cached.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DeploymentSecret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value.
        f.debug_struct("DeploymentSecret")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> DeploymentSecret<T> {
    pub fn new(sdk: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        DeploymentSecret {
            client: OnFirstUse::new(sdk, Client::new),
            secret_id: secret_id.into(),
            cached: Arc::default(),
        }
    }

    /// The secret named by the environment variable `var` (its ARN).
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
        var: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(sdk, config::required(lookup, var)?))
    }

    /// The current value: from memory when read less than
    /// [`REFRESH_AFTER`] ago, else from Secrets Manager. When a refresh
    /// fails, the value read before is used for one more period rather than
    /// failing every event during a Secrets Manager outage.
    pub async fn current(&self) -> Result<Arc<T>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, value)) = cached.as_ref()
            && read_at.elapsed() < REFRESH_AFTER
        {
            return Ok(value.clone());
        }
        match self.read().await {
            Ok(value) => {
                let value = Arc::new(value);
                *cached = Some((Instant::now(), value.clone()));
                Ok(value)
            }
            Err(e) => match cached.as_mut() {
                Some((read_at, value)) => {
                    tracing::warn!(secret = %self.secret_id, error = %e, "secret not refreshed; using the value read before");
                    *read_at = Instant::now();
                    Ok(value.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn read(&self) -> Result<T, SecretError> {
        let out = self
            .client
            .get()
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                SecretError::Unavailable(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| SecretError::Malformed("the secret has no string value".into()))?;
        // Only the kind and place of the mistake: serde's message may quote
        // the value it could not read.
        serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            if message.starts_with("missing field") {
                return SecretError::Malformed(message);
            }
            SecretError::Malformed(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }
}
