//! A person's upload of a process's invoice: the API hands out a presigned
//! PUT to a staging key, and the upload's S3 event decides whether the file
//! becomes the process's invoice. A presigned PUT cannot cap the size, so
//! the check happens after the fact: at most [`MAX_UPLOAD_BYTES`] and a
//! PDF, else the file is deleted and the upload refused with the reason.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::month::Month;
use super::process::ProcessStatus;
use crate::validation::{FieldError, check, optional_text};

pub const UPLOAD_ID_PREFIX: &str = "upl";
/// The largest invoice a person may upload.
pub const MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
pub const MAX_FILE_NAME_CHARS: usize = 200;
/// Where uploads land before they are checked.
pub const STAGING_PREFIX: &str = "uploads/";

/// `POST /v1/rpa/processes/{id}/invoice-upload`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// `YYYY-MM-DD`: the tax filing needs it.
    pub due_date: String,
    /// BRL cents.
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub amount_cents: Option<i64>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub file_name: Option<String>,
}

/// What a valid upload request says about the invoice to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    pub due_date: NaiveDate,
    pub amount_cents: Option<i64>,
    pub file_name: Option<String>,
}

impl UploadRequest {
    pub fn validate(self) -> Result<UploadSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let due_date = NaiveDate::parse_from_str(&self.due_date, "%Y-%m-%d")
            .ok()
            .filter(|d| self.due_date.len() == 10 && (2000..=2999).contains(&d.year_ce().1))
            .ok_or_else(|| errors.push(FieldError::new("due_date", "must be a date, YYYY-MM-DD")));
        if let Some(amount) = self.amount_cents
            && !(0..=100_000_000_000).contains(&amount)
        {
            errors.push(FieldError::new(
                "amount_cents",
                "must be from 0 to 100000000000 (BRL cents)",
            ));
        }
        let file_name = check(
            &mut errors,
            optional_text(
                "file_name",
                self.file_name.as_deref(),
                MAX_FILE_NAME_CHARS,
                false,
            ),
        )
        .flatten();
        if file_name
            .as_deref()
            .is_some_and(|n| n.contains(['/', '\\']))
        {
            errors.push(FieldError::new("file_name", "must not contain / or \\"));
        }
        match (due_date, errors.is_empty()) {
            (Ok(due_date), true) => Ok(UploadSettings {
                due_date,
                amount_cents: self.amount_cents,
                file_name,
            }),
            _ => Err(errors),
        }
    }
}

/// Whether a process in `status` takes an uploaded invoice (one that is
/// not approved yet may be replaced).
pub fn takes_upload(status: ProcessStatus) -> bool {
    matches!(
        status,
        ProcessStatus::AwaitingDownload | ProcessStatus::AwaitingApproval
    )
}

/// The staging key of an upload.
pub fn staging_key(account_id: &str, process_id: &str, upload_id: &str) -> String {
    format!("{STAGING_PREFIX}{account_id}/{process_id}/{upload_id}.pdf")
}

/// Where a staged file is copied before it is judged: a key the uploader
/// cannot write, one per check (`check_id`), so the bytes judged are the
/// bytes that become the invoice even if the presigned PUT is used again
/// meanwhile.
pub const CHECKED_PREFIX: &str = "checked/";
pub fn checked_key(account_id: &str, upload_id: &str, check_id: &str) -> String {
    format!("{CHECKED_PREFIX}{account_id}/{upload_id}/{check_id}.pdf")
}

/// The account, process and upload a staging key names.
pub fn parse_staging_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(STAGING_PREFIX)?;
    let mut parts = rest.split('/');
    let (account, process, file) = (parts.next()?, parts.next()?, parts.next()?);
    let upload = file.strip_suffix(".pdf")?;
    (parts.next().is_none() && [account, process, upload].iter().all(|p| !p.is_empty()))
        .then_some((account, process, upload))
}

/// Why an uploaded file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the file has {size} bytes; an invoice may have at most {MAX_UPLOAD_BYTES}")]
    TooLarge { size: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a PDF")]
    NotPdf,
    #[error("the process is {0}; it no longer takes an invoice")]
    NotTaking(ProcessStatus),
    #[error("a download of the process is under way")]
    Busy,
}

/// Judges an uploaded file by its size and its first bytes.
pub fn judge_file(size: u64, head: &[u8]) -> Result<(), Refusal> {
    if size > MAX_UPLOAD_BYTES {
        return Err(Refusal::TooLarge { size });
    }
    if size == 0 {
        return Err(Refusal::Empty);
    }
    if !looks_like_pdf(head) {
        return Err(Refusal::NotPdf);
    }
    Ok(())
}

/// Whether `bytes` start as a PDF does: `%PDF-` within the first 1,024
/// bytes, where readers look for it.
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
}

/// The name an invoice gets when nobody gave one.
pub fn default_file_name(carrier: &str, month: Month) -> String {
    format!("fatura-{}-{month}.pdf", carrier.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn request(v: serde_json::Value) -> Result<UploadSettings, Vec<FieldError>> {
        serde_json::from_value::<UploadRequest>(v)
            .unwrap()
            .validate()
    }

    #[test]
    fn an_upload_request_names_a_due_date_and_maybe_an_amount_and_a_name() {
        let ok = request(json!({"due_date": "2026-11-10", "amount_cents": 18990})).unwrap();
        assert_eq!(ok.due_date.to_string(), "2026-11-10");
        assert_eq!(ok.file_name, None);
        let named = request(json!({"due_date": "2026-11-10", "file_name": " fatura.pdf "}));
        assert_eq!(named.unwrap().file_name.as_deref(), Some("fatura.pdf"));
        for (bad, field) in [
            (json!({"due_date": "10/11/2026"}), "due_date"),
            (json!({"due_date": "2026-02-30"}), "due_date"),
            (
                json!({"due_date": "2026-11-10", "amount_cents": -1}),
                "amount_cents",
            ),
            (
                json!({"due_date": "2026-11-10", "file_name": "../x.pdf"}),
                "file_name",
            ),
            (
                json!({"due_date": "2026-11-10", "file_name": "a\nb"}),
                "file_name",
            ),
        ] {
            let errors = request(bad.clone()).unwrap_err();
            assert_eq!(errors[0].field, field, "{bad}");
        }
        assert!(
            serde_json::from_value::<UploadRequest>(json!({"due_date": "2026-11-10", "x": 1}))
                .is_err()
        );
    }

    #[test]
    fn a_file_is_taken_when_it_is_a_pdf_within_the_limit() {
        assert_eq!(judge_file(10, b"%PDF-1.7\n"), Ok(()));
        assert_eq!(judge_file(10, b"\xef\xbb\xbf%PDF-1.4"), Ok(()));
        assert_eq!(judge_file(10, b"<html>%PDF"), Err(Refusal::NotPdf));
        assert_eq!(judge_file(0, b""), Err(Refusal::Empty));
        assert_eq!(
            judge_file(MAX_UPLOAD_BYTES + 1, b"%PDF-1.7"),
            Err(Refusal::TooLarge {
                size: MAX_UPLOAD_BYTES + 1
            })
        );
        assert_eq!(judge_file(MAX_UPLOAD_BYTES, b"%PDF-1.7"), Ok(()));
        let mut late = vec![b' '; 1024];
        late.extend_from_slice(b"%PDF-1.7");
        assert!(!looks_like_pdf(&late));
    }

    #[test]
    fn only_a_process_before_approval_takes_an_upload() {
        for status in ProcessStatus::ALL {
            assert_eq!(
                takes_upload(status),
                super::super::process::next(status, super::super::process::Move::ReceiveInvoice)
                    .is_ok()
            );
        }
    }

    proptest! {
        #[test]
        fn staging_keys_name_their_upload(
            account in "acc_[0-9a-z]{26}",
            process in "prc_[0-9a-z]{26}_[0-9]{6}",
            upload in "upl_[0-9a-z]{26}",
        ) {
            let key = staging_key(&account, &process, &upload);
            prop_assert_eq!(
                parse_staging_key(&key),
                Some((account.as_str(), process.as_str(), upload.as_str()))
            );
        }

        #[test]
        fn other_keys_name_no_upload(key in "[a-z/._]{0,40}") {
            if let Some((a, p, u)) = parse_staging_key(&key) {
                prop_assert_eq!(staging_key(a, p, u), key);
            }
        }
    }
}
