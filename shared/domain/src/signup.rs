//! The public signup request and its validation.

use serde::Deserialize;

use crate::account::{Locale, validate_licenses};
use crate::document::Document;
use crate::email::Email;
use crate::phone::Phone;
use crate::validation::{FieldError, text_field};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub organization_name: String,
    pub document: String,
    pub phone: String,
    pub email: String,
    pub imperius_licenses: u32,
    #[serde(default)]
    pub locale: Option<Locale>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidSignup {
    pub organization_name: String,
    pub document: Document,
    pub phone: Phone,
    pub email: Email,
    pub imperius_licenses: u32,
    pub locale: Locale,
}

impl SignupRequest {
    /// Validates every field and reports all problems at once, in field
    /// order, so the form can show them together.
    pub fn validate(self) -> Result<ValidSignup, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let organization_name = keep(
            e,
            "organization_name",
            text_field("organization_name", &self.organization_name, 2, 200).map_err(|e| e.message),
        );
        let document = keep(
            e,
            "document",
            Document::parse(&self.document).map_err(|e| e.to_string()),
        );
        let phone = keep(
            e,
            "phone",
            Phone::parse(&self.phone).map_err(|e| e.to_string()),
        );
        let email = keep(
            e,
            "email",
            Email::parse(&self.email).map_err(|e| e.to_string()),
        );
        let imperius_licenses = keep(
            e,
            "imperius_licenses",
            validate_licenses(self.imperius_licenses).map_err(|e| e.message),
        );
        match (organization_name, document, phone, email, imperius_licenses) {
            (
                Some(organization_name),
                Some(document),
                Some(phone),
                Some(email),
                Some(imperius_licenses),
            ) => Ok(ValidSignup {
                organization_name,
                document,
                phone,
                email,
                imperius_licenses,
                locale: self.locale.unwrap_or_default(),
            }),
            _ => Err(errors),
        }
    }
}

/// The value if `result` is Ok, else records its message under `field`.
fn keep<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> SignupRequest {
        serde_json::from_value(body).unwrap()
    }

    fn valid_body() -> serde_json::Value {
        json!({
            "organization_name": "  Padaria Pão Quente Ltda ",
            "document": "12.ABC.345/01DE-35",
            "phone": "(11) 98765-4321",
            "email": "Contato@PaoQuente.com.br",
            "imperius_licenses": 10
        })
    }

    #[test]
    fn valid_signup() {
        let signup = request(valid_body()).validate().unwrap();
        assert_eq!(signup.organization_name, "Padaria Pão Quente Ltda");
        assert_eq!(signup.document.as_str(), "12ABC34501DE35");
        assert_eq!(signup.phone.e164(), "+5511987654321");
        assert_eq!(signup.email.normalized(), "contato@paoquente.com.br");
        assert_eq!(signup.imperius_licenses, 10);
        assert_eq!(signup.locale, Locale::PtBr);

        let mut body = valid_body();
        body["locale"] = json!("en");
        assert_eq!(request(body).validate().unwrap().locale, Locale::En);
        let mut body = valid_body();
        body["locale"] = json!(null);
        assert_eq!(request(body).validate().unwrap().locale, Locale::PtBr);
    }

    #[test]
    fn collects_every_field_error() {
        let errors = request(json!({
            "organization_name": " X ",
            "document": "111.111.111-11",
            "phone": "+1 212 555 0100",
            "email": "not-an-email",
            "imperius_licenses": 5000
        }))
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "organization_name",
                "document",
                "phone",
                "email",
                "imperius_licenses"
            ]
        );
        assert_eq!(errors[1].message, "all digits are the same");
        assert_eq!(
            errors[2].message,
            "only Brazilian numbers (+55) are accepted"
        );
    }

    #[test]
    fn organization_name_rules() {
        for (name, ok) in [
            ("AB", true),
            ("Ação", true),
            ("A", false),
            ("   ", false),
            ("Tab\tInside", false),
            ("Line\nBreak", false),
        ] {
            let mut body = valid_body();
            body["organization_name"] = json!(name);
            let result = request(body).validate();
            assert_eq!(result.is_ok(), ok, "{name:?}");
        }
        let mut body = valid_body();
        body["organization_name"] = json!("é".repeat(200));
        assert!(request(body.clone()).validate().is_ok());
        body["organization_name"] = json!("é".repeat(201));
        assert!(request(body).validate().is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_locales() {
        let mut body = valid_body();
        body["admin"] = json!(true);
        assert!(serde_json::from_value::<SignupRequest>(body).is_err());
        let mut body = valid_body();
        body["locale"] = json!("fr");
        assert!(serde_json::from_value::<SignupRequest>(body).is_err());
        let mut body = valid_body();
        body["imperius_licenses"] = json!(-1);
        assert!(serde_json::from_value::<SignupRequest>(body).is_err());
    }
}
