//! Account lifecycle, locale and quotas.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, UnknownVariant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Signed up, waiting for an approver.
    Pending,
    Active,
    Rejected,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 3] = [
        AccountStatus::Pending,
        AccountStatus::Active,
        AccountStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Pending => "pending",
            AccountStatus::Active => "active",
            AccountStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountStatus {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("account status", s))
    }
}

/// Language of the emails sent to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Locale {
    #[default]
    #[serde(rename = "pt-BR")]
    PtBr,
    #[serde(rename = "en")]
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::PtBr, Locale::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::PtBr => "pt-BR",
            Locale::En => "en",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = UnknownVariant;
    /// Case-insensitive (`pt-br` is accepted), unlike serde, which is exact.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownVariant::new("locale", s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an account that is {from}")]
pub struct TransitionError {
    pub from: AccountStatus,
    pub action: &'static str,
}

fn transition(
    from: AccountStatus,
    action: &'static str,
    required: AccountStatus,
    to: AccountStatus,
) -> Result<AccountStatus, TransitionError> {
    if from == required {
        Ok(to)
    } else {
        Err(TransitionError { from, action })
    }
}

/// Pending → Active.
pub fn approve(from: AccountStatus) -> Result<AccountStatus, TransitionError> {
    transition(
        from,
        "approve",
        AccountStatus::Pending,
        AccountStatus::Active,
    )
}

/// Pending → Rejected. Rejection is final: the tenant signs up again.
pub fn reject(from: AccountStatus) -> Result<AccountStatus, TransitionError> {
    transition(
        from,
        "reject",
        AccountStatus::Pending,
        AccountStatus::Rejected,
    )
}

/// Changing quota or licences is only meaningful on an active account.
pub fn adjust(from: AccountStatus) -> Result<AccountStatus, TransitionError> {
    transition(from, "adjust", AccountStatus::Active, AccountStatus::Active)
}

/// A new activation link is only for an approved account (the handler also
/// refuses one whose owner already activated it).
pub fn reissue_activation(from: AccountStatus) -> Result<AccountStatus, TransitionError> {
    transition(
        from,
        "reissue the activation link of",
        AccountStatus::Active,
        AccountStatus::Active,
    )
}

pub const MIN_QUOTA_GB: f64 = 0.001;
pub const MAX_QUOTA_GB: f64 = 1_000_000.0;
/// Storage is sold in decimal units, like disks and S3 pricing: 1 GB = 10^9
/// bytes (not 2^30).
pub const BYTES_PER_GB: u64 = 1_000_000_000;
pub const MAX_LICENSES: u32 = 1000;

/// A storage quota in decimal gigabytes, validated on construction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quota {
    pub quota_gb: f64,
}

impl Quota {
    pub fn new(quota_gb: f64) -> Result<Quota, FieldError> {
        validate_quota_gb(quota_gb).map(|quota_gb| Quota { quota_gb })
    }

    pub fn bytes(&self) -> u64 {
        quota_bytes(self.quota_gb)
    }
}

/// Accepts finite values in [`MIN_QUOTA_GB`, `MAX_QUOTA_GB`] (1 MB to 1 PB).
pub fn validate_quota_gb(quota_gb: f64) -> Result<f64, FieldError> {
    if quota_gb.is_finite() && (MIN_QUOTA_GB..=MAX_QUOTA_GB).contains(&quota_gb) {
        Ok(quota_gb)
    } else {
        Err(FieldError::new(
            "quota_gb",
            "must be a number between 0.001 and 1000000",
        ))
    }
}

/// Quota in bytes with 1 GB = 10^9 bytes, rounded to the nearest byte
/// (so 0.001 GB is exactly 1 000 000 bytes despite binary floating point).
/// Negative or NaN input gives 0; callers validate first.
pub fn quota_bytes(quota_gb: f64) -> u64 {
    // `as` saturates, and MAX_QUOTA_GB · 10^9 = 10^15 is far below u64::MAX.
    (quota_gb * BYTES_PER_GB as f64).round() as u64
}

pub fn validate_licenses(licenses: u32) -> Result<u32, FieldError> {
    if licenses <= MAX_LICENSES {
        Ok(licenses)
    } else {
        Err(FieldError::new(
            "imperius_licenses",
            "must be between 0 and 1000",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccountStatus::*;

    #[test]
    fn transition_table() {
        type Action = fn(AccountStatus) -> Result<AccountStatus, TransitionError>;
        let actions: [(&str, Action); 3] =
            [("approve", approve), ("reject", reject), ("adjust", adjust)];
        let expected = |status, action| match (status, action) {
            (Pending, "approve") => Some(Active),
            (Pending, "reject") => Some(Rejected),
            (Active, "adjust") => Some(Active),
            _ => None,
        };
        let mut checked = 0;
        for status in AccountStatus::ALL {
            for (name, action) in actions {
                let result = action(status);
                match expected(status, name) {
                    Some(to) => assert_eq!(result, Ok(to), "{name} {status}"),
                    None => assert_eq!(
                        result,
                        Err(TransitionError {
                            from: status,
                            action: name
                        }),
                        "{name} {status}"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 9);
    }

    #[test]
    fn transition_error_message() {
        assert_eq!(
            approve(Rejected).unwrap_err().to_string(),
            "cannot approve an account that is rejected"
        );
        assert_eq!(
            adjust(Pending).unwrap_err().to_string(),
            "cannot adjust an account that is pending"
        );
    }

    #[test]
    fn status_strings() {
        for status in AccountStatus::ALL {
            assert_eq!(status.as_str().parse::<AccountStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        assert!("Active".parse::<AccountStatus>().is_err());
    }

    #[test]
    fn locale_strings() {
        assert_eq!(Locale::default(), Locale::PtBr);
        assert_eq!(serde_json::to_string(&Locale::PtBr).unwrap(), "\"pt-BR\"");
        assert_eq!(
            serde_json::from_str::<Locale>("\"en\"").unwrap(),
            Locale::En
        );
        assert!(serde_json::from_str::<Locale>("\"pt\"").is_err());
        assert_eq!("pt-br".parse::<Locale>(), Ok(Locale::PtBr));
        assert_eq!("EN".parse::<Locale>(), Ok(Locale::En));
        assert!("es".parse::<Locale>().is_err());
    }

    #[test]
    fn quota_validation() {
        for ok in [0.001, 1.0, 2.5, 1_000_000.0] {
            assert_eq!(validate_quota_gb(ok), Ok(ok));
        }
        for bad in [
            0.0,
            0.0009,
            -1.0,
            1_000_000.1,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let err = validate_quota_gb(bad).unwrap_err();
            assert_eq!(err.field, "quota_gb");
        }
    }

    #[test]
    fn quota_bytes_is_decimal() {
        assert_eq!(quota_bytes(1.0), 1_000_000_000);
        assert_eq!(quota_bytes(0.001), 1_000_000);
        assert_eq!(quota_bytes(2.5), 2_500_000_000);
        assert_eq!(quota_bytes(1_000_000.0), 1_000_000_000_000_000);
        assert_eq!(quota_bytes(0.1 + 0.2), 300_000_000);
        assert_eq!(quota_bytes(f64::NAN), 0);
        assert_eq!(Quota::new(3.0).unwrap().bytes(), 3_000_000_000);
        assert!(Quota::new(0.0).is_err());
    }

    #[test]
    fn licenses() {
        assert_eq!(validate_licenses(0), Ok(0));
        assert_eq!(validate_licenses(1000), Ok(1000));
        assert_eq!(
            validate_licenses(1001).unwrap_err().field,
            "imperius_licenses"
        );
    }
}
