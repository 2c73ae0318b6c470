//! Carriers (telecom operators such as VIVO or OI): whose portal the RPA
//! downloads invoices from, how long one of its jobs may run and how often
//! a technical failure is retried.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, check, optional_text, present, text_field, within};

pub const MAX_CODE_CHARS: usize = 20;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PORTAL_URL_CHARS: usize = 500;
/// `rpa_settings` as compact JSON; it is passed to the RPA with each job.
pub const MAX_RPA_SETTINGS_BYTES: usize = 4096;
/// How long a job of the carrier may run before nuvem gives up on it.
pub const DEFAULT_JOB_TIMEOUT_MINUTES: u32 = 120;
pub const MIN_JOB_TIMEOUT_MINUTES: u32 = 5;
pub const MAX_JOB_TIMEOUT_MINUTES: u32 = 24 * 60;
/// Attempts of a step that keeps failing for technical reasons (the first
/// included); business failures are never retried.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const MAX_MAX_ATTEMPTS: u32 = 10;

/// The RPA API files with the tax system at `/executar/sat`, beside the
/// carriers' `/executar/{code}`: a carrier may not take that name.
const RESERVED_CODES: &[&str] = &["SAT"];

/// A carrier's code: `A–Z`, `0–9`, `_` and `-`, 2 to 20 characters, stored
/// uppercase. It names the carrier in the API, in CSV imports and in the
/// RPA's path, and is unique per account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CarrierCode(String);

impl CarrierCode {
    /// Trims and uppercases; the message says what is wrong.
    pub fn parse(input: &str) -> Result<CarrierCode, &'static str> {
        let code = input.trim().to_ascii_uppercase();
        if code.len() < 2 || code.len() > MAX_CODE_CHARS {
            return Err("must be 2 to 20 characters");
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("may hold only letters A-Z, digits, '_' and '-'");
        }
        if !code.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("must start with a letter or a digit");
        }
        if RESERVED_CODES.contains(&code.as_str()) {
            return Err("is reserved: the RPA API files with the tax system under that name");
        }
        Ok(CarrierCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CarrierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CarrierCode {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CarrierCode::parse(&value)
    }
}

impl From<CarrierCode> for String {
    fn from(code: CarrierCode) -> String {
        code.0
    }
}

/// `POST /v1/rpa/carriers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierRequest {
    pub code: String,
    pub name: String,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub has_rpa: Option<bool>,
    #[serde(default)]
    pub portal_url: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub rpa_settings: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub job_timeout_minutes: Option<u32>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub max_attempts: Option<u32>,
}

/// `PATCH /v1/rpa/carriers/{code}`: absent fields keep their value; the
/// code is the carrier's name in every client and cannot change.
/// `portal_url: null` clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierPatch {
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub has_rpa: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub portal_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub rpa_settings: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub job_timeout_minutes: Option<u32>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub max_attempts: Option<u32>,
}

/// A carrier's validated settings, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierSettings {
    pub name: String,
    /// Whether the RPA can download this carrier's invoices; without it
    /// invoices arrive by manual upload only.
    pub has_rpa: bool,
    pub portal_url: Option<String>,
    /// Passed to the RPA as given: a JSON object. Stored as text, so that
    /// any JSON number survives (DynamoDB numbers hold 38 digits).
    #[serde(with = "crate::json_text")]
    pub rpa_settings: serde_json::Value,
    pub active: bool,
    pub job_timeout_minutes: u32,
    pub max_attempts: u32,
}

impl CarrierRequest {
    /// The code and the settings, with every problem reported at once.
    pub fn validate(self) -> Result<(CarrierCode, CarrierSettings), Vec<FieldError>> {
        let mut errors = Vec::new();
        let code = check(
            &mut errors,
            CarrierCode::parse(&self.code).map_err(|m| FieldError::new("code", m)),
        );
        let settings = Fields {
            name: self.name,
            has_rpa: self.has_rpa.unwrap_or(true),
            portal_url: self.portal_url,
            rpa_settings: self.rpa_settings,
            active: self.active.unwrap_or(true),
            job_timeout_minutes: self
                .job_timeout_minutes
                .unwrap_or(DEFAULT_JOB_TIMEOUT_MINUTES),
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        }
        .validate(&mut errors);
        match (code, settings) {
            (Some(code), Some(settings)) if errors.is_empty() => Ok((code, settings)),
            _ => Err(errors),
        }
    }
}

impl CarrierPatch {
    /// The settings after this change, validated as a whole.
    pub fn apply(self, current: &CarrierSettings) -> Result<CarrierSettings, Vec<FieldError>> {
        let current = current.clone();
        let mut errors = Vec::new();
        let settings = Fields {
            name: self.name.unwrap_or(current.name),
            has_rpa: self.has_rpa.unwrap_or(current.has_rpa),
            portal_url: self.portal_url.unwrap_or(current.portal_url),
            rpa_settings: Some(self.rpa_settings.unwrap_or(current.rpa_settings)),
            active: self.active.unwrap_or(current.active),
            job_timeout_minutes: self
                .job_timeout_minutes
                .unwrap_or(current.job_timeout_minutes),
            max_attempts: self.max_attempts.unwrap_or(current.max_attempts),
        }
        .validate(&mut errors);
        settings.filter(|_| errors.is_empty()).ok_or(errors)
    }
}

/// The fields shared by creation and change, before validation.
struct Fields {
    name: String,
    has_rpa: bool,
    portal_url: Option<String>,
    rpa_settings: Option<serde_json::Value>,
    active: bool,
    job_timeout_minutes: u32,
    max_attempts: u32,
}

impl Fields {
    fn validate(self, errors: &mut Vec<FieldError>) -> Option<CarrierSettings> {
        let name = check(errors, text_field("name", &self.name, 1, MAX_NAME_CHARS));
        let portal_url = check(errors, portal_url(self.portal_url.as_deref()));
        let rpa_settings = check(errors, rpa_settings(self.rpa_settings));
        let job_timeout_minutes = check(
            errors,
            within(
                "job_timeout_minutes",
                self.job_timeout_minutes,
                MIN_JOB_TIMEOUT_MINUTES,
                MAX_JOB_TIMEOUT_MINUTES,
            ),
        );
        let max_attempts = check(
            errors,
            within("max_attempts", self.max_attempts, 1, MAX_MAX_ATTEMPTS),
        );
        Some(CarrierSettings {
            name: name?,
            has_rpa: self.has_rpa,
            portal_url: portal_url?,
            rpa_settings: rpa_settings?,
            active: self.active,
            job_timeout_minutes: job_timeout_minutes?,
            max_attempts: max_attempts?,
        })
    }
}

/// An absolute `http(s)` URL, for people to open; blank is none.
fn portal_url(value: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(value) = optional_text("portal_url", value, MAX_PORTAL_URL_CHARS, false)? else {
        return Ok(None);
    };
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(value)),
        _ => Err(FieldError::new(
            "portal_url",
            "must be an absolute http or https URL",
        )),
    }
}

/// A JSON object (absent: `{}`) of at most [`MAX_RPA_SETTINGS_BYTES`].
fn rpa_settings(value: Option<serde_json::Value>) -> Result<serde_json::Value, FieldError> {
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    if !value.is_object() {
        return Err(FieldError::new("rpa_settings", "must be a JSON object"));
    }
    if value.to_string().len() > MAX_RPA_SETTINGS_BYTES {
        return Err(FieldError::new(
            "rpa_settings",
            format!("must be at most {MAX_RPA_SETTINGS_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> Result<(CarrierCode, CarrierSettings), Vec<FieldError>> {
        serde_json::from_value::<CarrierRequest>(body)
            .expect("shape")
            .validate()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_carrier_takes_its_defaults() {
        let (code, s) = request(json!({"code": " vivo ", "name": "Vivo"})).unwrap();
        assert_eq!(code.as_str(), "VIVO");
        assert_eq!(s.name, "Vivo");
        assert!(s.has_rpa && s.active);
        assert_eq!(s.portal_url, None);
        assert_eq!(s.rpa_settings, json!({}));
        assert_eq!(s.job_timeout_minutes, DEFAULT_JOB_TIMEOUT_MINUTES);
        assert_eq!(s.max_attempts, DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let errors = request(json!({
            "code": "sat",
            "name": " ",
            "portal_url": "ftp://portal.example",
            "rpa_settings": [1, 2],
            "job_timeout_minutes": 1,
            "max_attempts": 0,
        }))
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "code",
                "name",
                "portal_url",
                "rpa_settings",
                "job_timeout_minutes",
                "max_attempts"
            ]
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_value::<CarrierRequest>(json!({"code": "OI", "name": "Oi", "x": 1}))
                .is_err()
        );
    }

    #[test]
    fn codes_are_uppercase_words() {
        assert_eq!(CarrierCode::parse("embratel").unwrap().as_str(), "EMBRATEL");
        assert_eq!(
            CarrierCode::parse("DIGITAL-NET_2").unwrap().as_str(),
            "DIGITAL-NET_2"
        );
        for bad in [
            "",
            "A",
            "VI VO",
            "VIVÓ",
            "-OI",
            "SAT",
            "sat",
            &"X".repeat(21),
        ] {
            assert!(CarrierCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oversize_settings_are_refused() {
        let big = "x".repeat(MAX_RPA_SETTINGS_BYTES);
        let errors =
            request(json!({"code": "OI", "name": "Oi", "rpa_settings": {"k": big}})).unwrap_err();
        assert_eq!(fields(&errors), ["rpa_settings"]);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let (_, current) = request(json!({
            "code": "OI", "name": "Oi", "portal_url": "https://portal.oi.example",
            "rpa_settings": {"profile": "empresas"}, "max_attempts": 5
        }))
        .unwrap();
        let patch: CarrierPatch =
            serde_json::from_value(json!({"active": false, "portal_url": null})).unwrap();
        let next = patch.apply(&current).unwrap();
        assert!(!next.active);
        assert_eq!(next.portal_url, None);
        assert_eq!(next.rpa_settings, json!({"profile": "empresas"}));
        assert_eq!(next.max_attempts, 5);
        let bad: CarrierPatch = serde_json::from_value(json!({"max_attempts": 11})).unwrap();
        assert_eq!(fields(&bad.apply(&current).unwrap_err()), ["max_attempts"]);
    }

    #[test]
    fn settings_keep_any_json_number_through_storage() {
        let (_, s) = request(json!({
            "code": "OI", "name": "Oi",
            "rpa_settings": {"big": 123456789012345678901234567890123456789012_f64, "n": -0.5}
        }))
        .unwrap();
        let stored = serde_json::to_value(&s).unwrap();
        assert!(stored["rpa_settings"].is_string());
        let back: CarrierSettings = serde_json::from_value(stored).unwrap();
        assert_eq!(back, s);
    }

    proptest! {
        #[test]
        fn a_valid_code_parses_to_itself(code in "[A-Z0-9][A-Z0-9_-]{1,19}") {
            prop_assume!(code != "SAT");
            let parsed = CarrierCode::parse(&code.to_lowercase()).unwrap();
            prop_assert_eq!(parsed.as_str(), code.as_str());
        }
    }
}
