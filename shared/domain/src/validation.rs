//! Field-level validation errors, shaped for API responses.

use std::fmt;

use serde::Serialize;

/// One problem with one request field. `message` is short, English and
/// safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A string that names none of an enum's variants (returned by `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

impl UnknownVariant {
    pub(crate) fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}

/// Trims `value` and checks its length in characters (not bytes) and that it
/// holds no control characters (which would break logs, CSV exports and
/// email headers).
pub(crate) fn text_field(
    field: &str,
    value: &str,
    min_chars: usize,
    max_chars: usize,
) -> Result<String, FieldError> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 && min_chars > 0 {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if len < min_chars || len > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be between {min_chars} and {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// The value if `result` is Ok, else records the error.
pub(crate) fn check<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

pub(crate) fn within(field: &str, value: u32, min: u32, max: u32) -> Result<u32, FieldError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

/// An optional text: absent, `null` or blank is `None`.
pub(crate) fn optional_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
    multiline: bool,
) -> Result<Option<String>, FieldError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if multiline {
        multiline_field(field, value, max_chars).map(Some)
    } else {
        text_field(field, value, 1, max_chars).map(Some)
    }
}

/// Like [`text_field`] with no minimum, but line breaks and tabs are kept:
/// prompts and messages are paragraphs. Other control characters are
/// refused.
pub(crate) fn multiline_field(
    field: &str,
    value: &str,
    max_chars: usize,
) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`,
/// through `#[serde(default)]`), for patches that can clear a field.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// An optional field that, when sent, must hold a value: the API documents
/// it as not nullable, so `null` is refused (a 422 on the field) instead of
/// being read as "absent". Use as
/// `#[serde(default, deserialize_with = "not_null")]`.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    match <Option<T> as serde::Deserialize>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "must not be null (leave the field out instead)",
        )),
    }
}

/// Text as people compare it by eye: case and runs of spaces do not count
/// (`" Filial  Norte"` and `"filial norte"` are the same unit).
pub(crate) fn fold_case_and_spacing(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Optional {
        #[serde(default, deserialize_with = "not_null")]
        active: Option<bool>,
        #[serde(default, deserialize_with = "not_null")]
        settings: Option<serde_json::Value>,
    }

    #[test]
    fn not_null_tells_absent_from_null() {
        let absent: Optional = serde_json::from_str("{}").unwrap();
        assert_eq!((absent.active, absent.settings), (None, None));
        let given: Optional =
            serde_json::from_str(r#"{"active": false, "settings": {"a": 1}}"#).unwrap();
        assert_eq!(given.active, Some(false));
        assert_eq!(given.settings, Some(serde_json::json!({"a": 1})));
        for body in [r#"{"active": null}"#, r#"{"settings": null}"#] {
            let err = serde_json::from_str::<Optional>(body).unwrap_err();
            assert!(
                err.to_string().contains("must not be null"),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn text_field_trims_and_counts_chars() {
        assert_eq!(text_field("f", "  Ação  ", 2, 4).unwrap(), "Ação");
        assert_eq!(
            text_field("f", "   ", 1, 4).unwrap_err(),
            FieldError::new("f", "must not be empty")
        );
        assert!(text_field("f", "a", 2, 4).is_err());
        assert!(text_field("f", "abcde", 2, 4).is_err());
        assert!(text_field("f", "a\u{7}b", 2, 4).is_err());
    }

    #[test]
    fn field_error_serializes_flat() {
        let json = serde_json::to_value(FieldError::new("email", "invalid domain")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"field": "email", "message": "invalid domain"})
        );
    }
}
