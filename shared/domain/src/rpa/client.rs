//! A tenant's clients: whose telecom invoice is downloaded every month from
//! a carrier's portal and filed with the tax system (SAT).
//!
//! A client is unique per account by (CNPJ, carrier, unit, service): the
//! same company may have one invoice per branch and per service of a
//! carrier. Unit and service compare without regard to case or repeated
//! spaces, as people type them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::carrier::CarrierCode;
use crate::document::{Document, DocumentKind};
use crate::ids;
use crate::validation::{
    FieldError, check, fold_case_and_spacing, optional_text, present, text_field,
};

pub const CLIENT_ID_PREFIX: &str = "cli";
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_FIELD_CHARS: usize = 200;
pub const MAX_SAT_DATA_CHARS: usize = 1000;
pub const MAX_PASSWORD_CHARS: usize = 200;

pub fn new_client_id() -> String {
    ids::new_id(CLIENT_ID_PREFIX)
}

/// Whether `id` has the shape of a client id (a malformed one is a 404
/// without a lookup).
pub fn is_client_id(id: &str) -> bool {
    ids::has_prefix(id, CLIENT_ID_PREFIX)
}

/// The password of a client's carrier portal. Sealed before it is stored,
/// never returned by the API; `Debug` prints `[redacted]` and there is no
/// `Display`. It serializes as the plain password: the only thing that
/// serializes it is the RPA request that logs into the portal with it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PortalPassword(String);

impl PortalPassword {
    /// A password as opened from its sealed form (validation happened when
    /// it was given).
    pub fn new(password: impl Into<String>) -> PortalPassword {
        PortalPassword(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PortalPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `POST /v1/rpa/clients`, and one row of a CSV import.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub legal_name: String,
    /// The name in the tax system; absent or blank: the legal name.
    #[serde(default)]
    pub sat_name: Option<String>,
    pub cnpj: String,
    pub carrier: String,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub sat_data: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub portal_login: Option<String>,
    #[serde(default)]
    pub portal_password: Option<String>,
    #[serde(default)]
    pub cpf: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
}

/// `PATCH /v1/rpa/clients/{id}`: absent fields keep their value. `null`
/// (or `""`) clears `cpf` and `portal_password`, and blanks the optional
/// texts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub legal_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub sat_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub cnpj: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub carrier: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub filter: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub service: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub sat_data: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub unit: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub portal_login: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub portal_password: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub cpf: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
}

/// A client's validated settings, as stored and shown (the password is
/// kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub legal_name: String,
    pub sat_name: String,
    pub cnpj: Document,
    pub carrier: CarrierCode,
    pub filter: String,
    pub service: String,
    pub sat_data: String,
    pub unit: String,
    pub portal_login: String,
    pub cpf: Option<Document>,
    pub active: bool,
}

/// What a change does to the stored portal password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    Keep,
    Clear,
    Set(PortalPassword),
}

impl ClientSettings {
    /// The client's identity within its account: a fixed-length digest of
    /// (CNPJ, carrier, unit, service), unit and service compared without
    /// regard to case or repeated spaces.
    pub fn unique_key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.cnpj.as_str(),
            self.carrier.as_str(),
            &fold_case_and_spacing(&self.unit),
            &fold_case_and_spacing(&self.service),
        ] {
            hash.update(part.as_bytes());
            // A separator no part can hold (control characters are refused).
            hash.update([0x1f]);
        }
        hex(&hash.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClientRequest {
    /// The settings and the password (if one was given), with every problem
    /// reported at once.
    pub fn validate(self) -> Result<(ClientSettings, Option<PortalPassword>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let settings = self.fields().validate(&mut errors);
        let password = check(&mut errors, password(self.portal_password.as_deref()));
        match (settings, password) {
            (Some(settings), Some(password)) if errors.is_empty() => Ok((settings, password)),
            _ => Err(errors),
        }
    }

    fn fields(&self) -> Fields {
        Fields {
            legal_name: self.legal_name.clone(),
            sat_name: self.sat_name.clone(),
            cnpj: self.cnpj.clone(),
            carrier: self.carrier.clone(),
            filter: self.filter.clone(),
            service: self.service.clone(),
            sat_data: self.sat_data.clone(),
            unit: self.unit.clone(),
            portal_login: self.portal_login.clone(),
            cpf: self.cpf.clone(),
            active: self.active.unwrap_or(true),
        }
    }
}

impl ClientPatch {
    /// The settings after this change, validated as a whole, and what it
    /// does to the password.
    pub fn apply(
        self,
        current: &ClientSettings,
    ) -> Result<(ClientSettings, PasswordChange), Vec<FieldError>> {
        let current = current.clone();
        let keep = |given: Option<Option<String>>, current: String| -> Option<String> {
            given.unwrap_or(Some(current))
        };
        let mut errors = Vec::new();
        let settings = Fields {
            legal_name: self.legal_name.unwrap_or(current.legal_name),
            sat_name: keep(self.sat_name, current.sat_name),
            cnpj: self
                .cnpj
                .unwrap_or_else(|| current.cnpj.as_str().to_owned()),
            carrier: self
                .carrier
                .unwrap_or_else(|| current.carrier.as_str().to_owned()),
            filter: keep(self.filter, current.filter),
            service: keep(self.service, current.service),
            sat_data: keep(self.sat_data, current.sat_data),
            unit: keep(self.unit, current.unit),
            portal_login: keep(self.portal_login, current.portal_login),
            cpf: self
                .cpf
                .unwrap_or_else(|| current.cpf.map(|c| c.as_str().to_owned())),
            active: self.active.unwrap_or(current.active),
        }
        .validate(&mut errors);
        let change = match self.portal_password {
            None => Some(PasswordChange::Keep),
            Some(given) => check(&mut errors, password(given.as_deref())).map(|p| match p {
                Some(p) => PasswordChange::Set(p),
                None => PasswordChange::Clear,
            }),
        };
        match (settings, change) {
            (Some(settings), Some(change)) if errors.is_empty() => Ok((settings, change)),
            _ => Err(errors),
        }
    }
}

/// The fields shared by creation, change and import, before validation.
struct Fields {
    legal_name: String,
    sat_name: Option<String>,
    cnpj: String,
    carrier: String,
    filter: Option<String>,
    service: Option<String>,
    sat_data: Option<String>,
    unit: Option<String>,
    portal_login: Option<String>,
    cpf: Option<String>,
    active: bool,
}

impl Fields {
    fn validate(self, errors: &mut Vec<FieldError>) -> Option<ClientSettings> {
        let legal_name = check(
            errors,
            text_field("legal_name", &self.legal_name, 1, MAX_NAME_CHARS),
        );
        let sat_name = check(
            errors,
            optional_text("sat_name", self.sat_name.as_deref(), MAX_NAME_CHARS, false),
        );
        let cnpj = check(errors, document("cnpj", &self.cnpj, DocumentKind::Cnpj));
        let carrier = check(
            errors,
            CarrierCode::parse(&self.carrier).map_err(|m| FieldError::new("carrier", m)),
        );
        let mut text = |field: &str, value: Option<String>, max: usize| {
            check(errors, optional_text(field, value.as_deref(), max, false))
                .map(Option::unwrap_or_default)
        };
        let filter = text("filter", self.filter, MAX_FIELD_CHARS);
        let service = text("service", self.service, MAX_FIELD_CHARS);
        let sat_data = text("sat_data", self.sat_data, MAX_SAT_DATA_CHARS);
        let unit = text("unit", self.unit, MAX_FIELD_CHARS);
        let portal_login = text("portal_login", self.portal_login, MAX_FIELD_CHARS);
        let cpf = match self.cpf.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => Some(None),
            Some(cpf) => check(errors, document("cpf", cpf, DocumentKind::Cpf)).map(Some),
        };
        let legal_name = legal_name?;
        Some(ClientSettings {
            sat_name: sat_name?.unwrap_or_else(|| legal_name.clone()),
            legal_name,
            cnpj: cnpj?,
            carrier: carrier?,
            filter: filter?,
            service: service?,
            sat_data: sat_data?,
            unit: unit?,
            portal_login: portal_login?,
            cpf: cpf?,
            active: self.active,
        })
    }
}

/// A CPF or CNPJ of the kind the field names, formatted or not.
fn document(field: &str, value: &str, kind: DocumentKind) -> Result<Document, FieldError> {
    match Document::parse(value) {
        Ok(doc) if doc.kind() == kind => Ok(doc),
        Ok(_) | Err(crate::document::DocumentError::WrongLength { .. }) => Err(FieldError::new(
            field,
            match kind {
                DocumentKind::Cnpj => "must be a CNPJ: 14 characters, the last two digits",
                DocumentKind::Cpf => "must be a CPF: 11 digits",
            },
        )),
        Err(e) => Err(FieldError::new(field, e.to_string())),
    }
}

/// Blank is no password; otherwise kept exactly as typed (spaces count in
/// a password), up to [`MAX_PASSWORD_CHARS`], without control characters.
fn password(value: Option<&str>) -> Result<Option<PortalPassword>, FieldError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_PASSWORD_CHARS {
        return Err(FieldError::new(
            "portal_password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            "portal_password",
            "must not contain control characters",
        ));
    }
    Ok(Some(PortalPassword(value.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const CNPJ: &str = "11.222.333/0001-81";

    fn client(extra: serde_json::Value) -> ClientRequest {
        let mut body = json!({"legal_name": "ACME Ltda", "cnpj": CNPJ, "carrier": "vivo"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value(body).expect("shape")
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_client_is_normalized_with_its_defaults() {
        let (s, password) = client(json!({"unit": " Matriz ", "cpf": "529.982.247-25"}))
            .validate()
            .unwrap();
        assert_eq!(s.cnpj.as_str(), "11222333000181");
        assert_eq!(s.carrier.as_str(), "VIVO");
        assert_eq!(s.sat_name, "ACME Ltda");
        assert_eq!(s.unit, "Matriz");
        assert_eq!(s.service, "");
        assert_eq!(s.cpf.unwrap().as_str(), "52998224725");
        assert!(s.active);
        assert_eq!(password, None);
    }

    #[test]
    fn alphanumeric_cnpjs_are_clients_too() {
        let cnpj = Document::with_check_digits("12ABC34501DE").unwrap();
        let (s, _) = client(json!({"cnpj": cnpj.as_str().to_lowercase()}))
            .validate()
            .unwrap();
        assert_eq!(s.cnpj, cnpj);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let errors = client(json!({
            "legal_name": "",
            "cnpj": "11.222.333/0001-82",
            "carrier": "S A T",
            "cpf": "11222333000181",
            "portal_password": "a\u{0}b",
            "unit": "x".repeat(MAX_FIELD_CHARS + 1),
        }))
        .validate()
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "legal_name",
                "cnpj",
                "carrier",
                "unit",
                "cpf",
                "portal_password"
            ]
        );
        let errors = client(json!({"cnpj": "529.982.247-25"}))
            .validate()
            .unwrap_err();
        assert_eq!(fields(&errors), ["cnpj"]);
    }

    #[test]
    fn the_password_is_kept_as_typed_and_never_printed() {
        let (_, password) = client(json!({"portal_password": " s3nha secreta "}))
            .validate()
            .unwrap();
        let password = password.unwrap();
        assert_eq!(password.expose(), " s3nha secreta ");
        assert!(!format!("{password:?}").contains("s3nha"));
    }

    #[test]
    fn the_unique_key_ignores_case_and_spacing_of_unit_and_service() {
        let a = client(json!({"unit": "Filial  Norte", "service": "Dados"}))
            .validate()
            .unwrap()
            .0;
        let b = client(json!({"unit": "filial norte", "service": " DADOS", "legal_name": "Other"}))
            .validate()
            .unwrap()
            .0;
        assert_eq!(a.unique_key(), b.unique_key());
        let c = client(json!({"unit": "Filial Sul", "service": "Dados"}))
            .validate()
            .unwrap()
            .0;
        assert_ne!(a.unique_key(), c.unique_key());
        let d = client(json!({"carrier": "OI", "unit": "Filial Norte", "service": "Dados"}))
            .validate()
            .unwrap()
            .0;
        assert_ne!(a.unique_key(), d.unique_key());
        assert_eq!(a.unique_key().len(), 64);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let (current, _) = client(json!({"unit": "Matriz", "cpf": "529.982.247-25"}))
            .validate()
            .unwrap();
        let patch: ClientPatch = serde_json::from_value(
            json!({"cpf": null, "portal_password": "nova", "active": false}),
        )
        .unwrap();
        let (next, change) = patch.apply(&current).unwrap();
        assert_eq!(next.cpf, None);
        assert!(!next.active);
        assert_eq!(next.unit, "Matriz");
        assert_eq!(next.cnpj, current.cnpj);
        assert!(matches!(change, PasswordChange::Set(p) if p.expose() == "nova"));
        let (_, change) = serde_json::from_value::<ClientPatch>(json!({"portal_password": null}))
            .unwrap()
            .apply(&current)
            .unwrap();
        assert_eq!(change, PasswordChange::Clear);
        let (_, change) = ClientPatch::default().apply(&current).unwrap();
        assert_eq!(change, PasswordChange::Keep);
        let bad: ClientPatch = serde_json::from_value(json!({"cnpj": "1"})).unwrap();
        assert_eq!(fields(&bad.apply(&current).unwrap_err()), ["cnpj"]);
    }

    proptest! {
        /// Whatever the spacing and case of unit and service, the key is
        /// the same; a different CNPJ gives a different key.
        #[test]
        fn unique_keys_follow_the_tuple(
            unit in "[A-Za-z]{1,8}( [A-Za-z]{1,8}){0,2}",
            spaces in 1usize..4,
        ) {
            let spaced = unit.replace(' ', &" ".repeat(spaces)).to_uppercase();
            let a = client(json!({"unit": unit})).validate().unwrap().0;
            let b = client(json!({"unit": format!(" {spaced} ")})).validate().unwrap().0;
            prop_assert_eq!(a.unique_key(), b.unique_key());
            let c = client(json!({"unit": unit, "cnpj": "11.444.777/0001-61"}))
                .validate()
                .unwrap()
                .0;
            prop_assert_ne!(a.unique_key(), c.unique_key());
        }
    }
}
