//! Access keys: roles, secrets, the `Authorization` credential and the rules
//! for creating and using keys.
//!
//! A client sends `Authorization: Bearer <key id>.<secret>`, e.g.
//! `Bearer key_01j9z3k8m2n4p6q8r0s2t4v6w8.nvm_sk_<32 base62><6 base62>`.
//! Only the SHA-256 of the secret is stored.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::ids;
pub use crate::secret::Secret;
use crate::secret::{
    base62_fixed, derived_base62, is_base62, random_base62, sha256_hex, sha256_matches,
};
use crate::validation::{FieldError, UnknownVariant, text_field};

/// The account of the platform's admin keys (minted by `nuvem-admin`): not
/// a tenant, so it has no account record and nothing to notify.
pub const PLATFORM_ACCOUNT: &str = "platform";

/// Who did something: the key and the name it had. Records keep both, so
/// that the trail stays readable after the key is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub key_id: String,
    pub key_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// nuvem staff. Never assignable through the API.
    Admin,
    Owner,
    Approver,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Owner, Role::Approver, Role::Operator];
    /// Roles a tenant may give its own keys.
    pub const TENANT: [Role; 3] = [Role::Owner, Role::Approver, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Approver => "approver",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("role", s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 2] = [KeyStatus::Active, KeyStatus::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyStatus {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("key status", s))
    }
}

// ---- secrets -------------------------------------------------------------

pub const SECRET_PREFIX: &str = "nvm_sk_";
/// 32 uniform base62 characters ≈ 190 bits of entropy.
const PAYLOAD_LEN: usize = 32;
/// CRC32 (< 2^32) always fits in 6 base62 digits (62^6 ≈ 5.7 · 10^10).
const CHECKSUM_LEN: usize = 6;
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + PAYLOAD_LEN + CHECKSUM_LEN;

/// A new key secret: `nvm_sk_` + 32 random base62 characters + 6 base62
/// characters of the CRC32 of those 32. The prefix lets secret scanners
/// recognise a leaked key; the checksum lets them (and support staff, and
/// the authorizer before any database read) tell a real key from a typo
/// offline. The checksum is not a security measure.
pub fn generate_secret() -> Secret {
    with_checksum(random_base62(PAYLOAD_LEN))
}

/// The secret of the owner key an activation token buys: derived from the
/// token (256 random bits) and a random `salt` kept in the table, so that a
/// repeated activation can answer the same credential again without the
/// secret being stored anywhere. The salt keeps the emailed token alone (a
/// mailbox read later) from computing the key's secret.
pub fn first_key_secret(activation_token: &str, salt: &str) -> Secret {
    with_checksum(derived_base62(
        activation_token,
        &format!("nuvem first owner key {salt}"),
        PAYLOAD_LEN,
    ))
}

/// A fresh salt for [`first_key_secret`].
pub fn new_key_salt() -> String {
    random_base62(PAYLOAD_LEN)
}

fn with_checksum(payload: String) -> Secret {
    let checksum = checksum(payload.as_bytes());
    Secret::new(format!("{SECRET_PREFIX}{payload}{checksum}"))
}

fn checksum(payload: &[u8]) -> String {
    base62_fixed(u64::from(crc32fast::hash(payload)), CHECKSUM_LEN)
}

/// Whether `secret` has the shape of a generated secret and its checksum
/// matches. Never panics.
pub fn checksum_ok(secret: &str) -> bool {
    let Some(rest) = secret.strip_prefix(SECRET_PREFIX) else {
        return false;
    };
    let rest = rest.as_bytes();
    if rest.len() != PAYLOAD_LEN + CHECKSUM_LEN || !rest.iter().all(|&b| is_base62(b)) {
        return false;
    }
    let (payload, given) = rest.split_at(PAYLOAD_LEN);
    checksum(payload).as_bytes() == given
}

/// Hex SHA-256 of a key secret, the only form that is stored.
///
/// A slow password KDF (argon2, bcrypt) is unnecessary here: the secret is
/// random with ~190 bits of entropy, so brute-forcing a leaked hash is
/// infeasible even at billions of SHA-256 per second, and a fast hash keeps
/// the authorizer cheap.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret)
}

/// Compares SHA-256(`secret`) with the stored hex digest in constant time.
pub fn verify_secret(secret: &str, stored_hash_hex: &str) -> bool {
    sha256_matches(secret, stored_hash_hex)
}

// ---- credential ----------------------------------------------------------

/// Longer `Authorization` values are refused before any parsing.
pub const MAX_CREDENTIAL_LEN: usize = 200;

/// A syntactically valid credential; its secret is still to be verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub key_id: String,
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("key_id", &self.key_id)
            .field("secret", &"***")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credential is too long")]
    TooLong,
    #[error("expected the Bearer scheme")]
    Scheme,
    #[error("expected <key id>.<secret>")]
    Malformed,
    #[error("malformed key id")]
    KeyId,
    #[error("secret has an unknown prefix")]
    SecretPrefix,
    #[error("secret checksum does not match")]
    Checksum,
}

/// Parses an `Authorization` header value, `Bearer <key id>.<secret>`. The
/// scheme is case-insensitive and surrounding or repeated whitespace is
/// tolerated. Never panics, whatever the input.
pub fn parse_credential(header_value: &str) -> Result<Credential, CredentialError> {
    if header_value.len() > MAX_CREDENTIAL_LEN {
        return Err(CredentialError::TooLong);
    }
    let value = header_value.trim();
    let (scheme, token) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(CredentialError::Scheme);
    }
    let token = token.trim();
    if token.contains(char::is_whitespace) {
        return Err(CredentialError::Malformed);
    }
    let (key_id, secret) = token.split_once('.').ok_or(CredentialError::Malformed)?;
    if !ids::has_prefix(key_id, ids::KEY) {
        return Err(CredentialError::KeyId);
    }
    if !secret.starts_with(SECRET_PREFIX) {
        return Err(CredentialError::SecretPrefix);
    }
    if !checksum_ok(secret) {
        return Err(CredentialError::Checksum);
    }
    Ok(Credential {
        key_id: key_id.to_owned(),
        secret: secret.to_owned(),
    })
}

// ---- key creation and use ------------------------------------------------

pub const MAX_KEY_NAME_CHARS: usize = 100;
/// Keys may be set to expire at most this far ahead (calendar months).
pub const MAX_KEY_LIFETIME_MONTHS: u32 = 24;
/// The authorizer records `last_used_at` at most this often per key.
pub const LAST_USED_INTERVAL: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNewKey {
    pub name: String,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKeyRequest {
    /// `allowed_roles` are the roles the caller may hand out (usually
    /// [`Role::TENANT`] or a subset). `Admin` is refused even if listed.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        allowed_roles: &[Role],
    ) -> Result<ValidNewKey, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = text_field("name", &self.name, 1, MAX_KEY_NAME_CHARS)
            .map_err(|e| errors.push(e))
            .ok();
        if self.role == Role::Admin {
            errors.push(FieldError::new(
                "role",
                "the admin role cannot be assigned through the API",
            ));
        } else if !allowed_roles.contains(&self.role) {
            errors.push(FieldError::new(
                "role",
                format!("you cannot create keys with the {} role", self.role),
            ));
        }
        if let Some(expires_at) = self.expires_at {
            let latest = now.checked_add_months(Months::new(MAX_KEY_LIFETIME_MONTHS));
            if expires_at <= now {
                errors.push(FieldError::new("expires_at", "must be in the future"));
            } else if latest.is_none_or(|latest| expires_at > latest) {
                errors.push(FieldError::new(
                    "expires_at",
                    "must be at most 2 years from now",
                ));
            }
        }
        match name {
            Some(name) if errors.is_empty() => Ok(ValidNewKey {
                name,
                role: self.role,
                expires_at: self.expires_at,
            }),
            _ => Err(errors),
        }
    }
}

/// Whether a key may authenticate now: active and not yet expired.
pub fn is_usable(status: KeyStatus, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    status == KeyStatus::Active && expires_at.is_none_or(|expires_at| now < expires_at)
}

/// Whether the authorizer should write `last_used_at`: never written, or
/// written [`LAST_USED_INTERVAL`] or more ago. Limits writes to one a
/// minute per key, whatever the request rate.
pub fn last_used_due(last_used: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_used.is_none_or(|at| now - at >= LAST_USED_INTERVAL)
}

#[cfg(test)]
mod tests;
