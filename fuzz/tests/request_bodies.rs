//! The JSON body of every route whose request type is public, as a client
//! sends it: the documented shape with fields dropped, nulled, retyped,
//! made huge or exotic or joined by unknown ones, damaged bytes, any JSON,
//! any bytes, under any `Content-Type`, read by
//! `nuvem_aws::http::json_body` and then the type's own `validate`/`apply`.
//!
//! Property: nothing panics and every refusal is the documented client
//! error, never a 5xx: 413 for a body over the route's limit, 415 for a
//! `Content-Type` that is not JSON, 400 for a body that is not JSON (or is
//! empty), 422 naming the field for JSON of the wrong shape (unknown
//! field, wrong type, a non-object) and for values `validate` refuses.
//! Which of these it is follows from the bytes alone, as the model in
//! `expected` says, and the documented example of each route is accepted.

mod support;

use chrono::{TimeZone, Utc};
use nuvem_aws::http::{DEFAULT_BODY_LIMIT, json_body};
use nuvem_domain::keys::{NewKeyRequest, Role};
use nuvem_domain::rpa::carrier::{CarrierPatch, CarrierRequest, CarrierSettings};
use nuvem_domain::rpa::client::{ClientPatch, ClientRequest, ClientSettings};
use nuvem_domain::rpa::schedule_settings::{SchedulePatch, ScheduleRequest, ScheduleSettings};
use nuvem_domain::rpa::upload::UploadRequest;
use nuvem_domain::signup::SignupRequest;
use nuvem_domain::storage_key::NewStorageKeyRequest;
use nuvem_domain::validation::FieldError;
use nuvem_domain::webhook::endpoint::{
    EndpointPatch, EndpointRequest, EndpointSettings, UrlPolicy,
};
use nuvem_domain::whatsapp::notices::NoticeRequest;
use nuvem_domain::whatsapp::outbound::SendRequest;
use nuvem_domain::whatsapp::store::{NumberRequest, StorePatch, StoreRequest, StoreSettings};
use nuvem_fuzz::json::{any_json, body_bytes, deeply_nested, near};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, text};
use proptest::prelude::*;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use support::{assert_client_error, content_type, essence, request};

const POLICY: UrlPolicy = UrlPolicy {
    allow_loopback: false,
};

/// One request as a client might send it.
#[derive(Clone)]
struct Case {
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
    as_text: bool,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field(
                "content_type",
                &self.content_type.as_deref().map(String::from_utf8_lossy),
            )
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("as_text", &self.as_text)
            .finish()
    }
}

/// Bodies near `base`, and bodies that have nothing to do with it.
fn case(base: Value) -> impl Strategy<Value = Case> {
    let serialised = serde_json::to_vec(&base).expect("a Value serialises");
    let body = prop_oneof![
        10 => near(base.clone(), 4).prop_flat_map(|v| body_bytes(&v)),
        2 => byte_edits(3).prop_map(move |edits| apply_byte_edits(serialised.clone(), &edits)),
        2 => any_json().prop_map(|v| serde_json::to_vec(&v).expect("a Value serialises")),
        1 => any_bytes(64),
        1 => text(8).prop_map(String::into_bytes),
        1 => (100..200usize, any::<bool>())
            .prop_map(|(depth, object)| deeply_nested(depth, object).into_bytes()),
        1 => Just(b" \r\n\t".to_vec()),
    ];
    (
        prop_oneof![3 => Just(Some(b"application/json".to_vec())), 2 => content_type()],
        body,
        any::<bool>(),
    )
        .prop_map(|(content_type, body, as_text)| Case {
            content_type,
            body,
            as_text,
        })
}

/// The status the documented rules give a request with these bytes, or
/// `None` when it parses as `T`.
fn expected<T: DeserializeOwned>(case: &Case, limit: usize) -> Option<u16> {
    let body = case.body.as_slice();
    if body.len() > limit {
        return Some(413);
    }
    if let Some(essence) = essence(case.content_type.as_deref())
        && essence != "application/json"
        && !essence.ends_with("+json")
    {
        return Some(415);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(400);
    }
    let is_json = serde_json::from_slice::<IgnoredAny>(body).is_ok();
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match (is_json, is_object) {
        (false, _) => Some(400),
        (true, false) => Some(422),
        (true, true) => serde_json::from_slice::<T>(body).err().map(|_| 422),
    }
}

/// Reads the case as the route does and checks the verdict. Returns
/// whether the body was accepted whole (parsed and valid).
fn check<T: DeserializeOwned>(
    case: &Case,
    limit: usize,
    validate: impl FnOnce(T) -> Result<(), Vec<FieldError>>,
) -> Result<bool, TestCaseError> {
    let req = request(
        case.content_type.as_deref(),
        case.body.clone(),
        case.as_text,
        "",
    );
    let want = expected::<T>(case, limit);
    match json_body::<T>(&req, limit) {
        Err(problem) => {
            assert_client_error(&problem, &[400, 413, 415, 422])?;
            prop_assert_eq!(
                want,
                Some(problem.status),
                "{:?} for {:?}",
                problem,
                String::from_utf8_lossy(&case.body)
            );
            Ok(false)
        }
        Ok(parsed) => {
            prop_assert_eq!(
                want,
                None,
                "accepted {:?}",
                String::from_utf8_lossy(&case.body)
            );
            match validate(parsed) {
                Ok(()) => Ok(true),
                Err(errors) => {
                    // Answered as `Problem::validation(errors)`: a 422.
                    let problem = nuvem_aws::http::Problem::validation(errors);
                    assert_client_error(&problem, &[422])?;
                    Ok(false)
                }
            }
        }
    }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn signup() -> Value {
    json!({
        "organization_name": "Padaria Pão Quente Ltda",
        "document": "11.222.333/0001-81",
        "phone": "(11) 98765-4321",
        "email": "financeiro@paoquente.com.br",
        "imperius_licenses": 3,
        "locale": "pt-BR"
    })
}

fn new_key() -> Value {
    json!({"name": "backup server", "role": "operator", "expires_at": "2027-01-01T00:00:00Z"})
}

fn storage_key() -> Value {
    json!({"name": "Conector Imperius", "buckets": ["backups", "fotos"], "access": "read_only"})
}

fn endpoint() -> Value {
    json!({
        "url": "https://hooks.example.com/nuvem?tenant=1",
        "description": "ERP",
        "event_types": ["quota.threshold_crossed", "custom.order.paid"],
        "headers": {"Authorization": "Bearer erp-token"},
        "method": "PUT",
        "timeout_seconds": 10,
        "enabled": true,
        "ordered": true,
        "rate_limit_per_second": 5,
        "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    })
}

fn endpoint_patch() -> Value {
    json!({
        "description": "",
        "event_types": [],
        "headers": {"authorization": "[redacted]", "x-env": "prod"},
        "method": "POST",
        "rate_limit_per_second": null,
        "enabled": false
    })
}

fn current_endpoint() -> EndpointSettings {
    serde_json::from_value::<EndpointRequest>(endpoint())
        .expect("the example endpoint parses")
        .validate(&POLICY)
        .expect("the example endpoint is valid")
        .0
}

fn carrier() -> Value {
    json!({
        "code": "VIVO",
        "name": "Vivo Empresas",
        "has_rpa": true,
        "portal_url": "https://mve.vivo.com.br",
        "rpa_settings": {"perfil": "empresas", "tentativas": 2},
        "active": true,
        "job_timeout_minutes": 120,
        "max_attempts": 3
    })
}

fn carrier_patch() -> Value {
    json!({"name": "Vivo", "portal_url": null, "max_attempts": 2, "rpa_settings": {}})
}

fn current_carrier() -> CarrierSettings {
    serde_json::from_value::<CarrierRequest>(carrier())
        .expect("the example carrier parses")
        .validate()
        .expect("the example carrier is valid")
        .1
}

fn client() -> Value {
    json!({
        "legal_name": "Padaria Pão Quente Ltda",
        "sat_name": "PADARIA PAO QUENTE",
        "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO",
        "filter": "Fatura Móvel",
        "service": "Móvel",
        "sat_data": "CC 4.1.02",
        "unit": "Matriz",
        "portal_login": "financeiro@paoquente.com.br",
        "portal_password": "s3nh@ do portal",
        "cpf": "529.982.247-25",
        "active": true
    })
}

fn client_patch() -> Value {
    json!({"unit": "Filial Centro", "cpf": null, "portal_password": "", "active": false, "cnpj": "12ABC34501DE35"})
}

fn current_client() -> ClientSettings {
    serde_json::from_value::<ClientRequest>(client())
        .expect("the example client parses")
        .validate()
        .expect("the example client is valid")
        .0
}

fn schedule() -> Value {
    json!({
        "name": "Downloads do mês",
        "cron": "0 6 L * MON-FRI",
        "time_zone": "America/Sao_Paulo",
        "type": "run_downloads",
        "parameters": {"carriers": ["VIVO", "CLARO"], "month_offset": -1, "retention_days": 90},
        "active": true
    })
}

fn schedule_patch() -> Value {
    json!({"cron": "*/15 8-18 * * 1-5", "time_zone": "utc", "active": false, "parameters": {"month_offset": 0}})
}

fn current_schedule() -> ScheduleSettings {
    serde_json::from_value::<ScheduleRequest>(schedule())
        .expect("the example schedule parses")
        .validate()
        .expect("the example schedule is valid")
        .0
}

fn upload() -> Value {
    json!({"due_date": "2026-12-10", "amount_cents": 19990, "file_name": "fatura-dezembro.pdf"})
}

fn store() -> Value {
    json!({
        "name": "Cantina da Nonna",
        "store_type": "restaurante",
        "bot_name": "Nonna",
        "base_prompt": "Atenda clientes da Cantina da Nonna: cardápio, horários e pedidos.",
        "forbidden": ["política", "religião"],
        "message_limit": 30,
        "context_minutes": 60,
        "enabled": true,
        "fallback_text": "Um atendente já vai responder.",
        "language": "pt-BR"
    })
}

fn store_patch() -> Value {
    json!({"bot_name": null, "forbidden": ["futebol"], "message_limit": 50, "fallback_text": null, "language": "en"})
}

fn current_store() -> StoreSettings {
    serde_json::from_value::<StoreRequest>(store())
        .expect("the example store parses")
        .validate()
        .expect("the example store is valid")
}

fn number() -> Value {
    json!({
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "display_phone_number": "+55 11 98765-4321",
        "access_token": "EAAGm0PX4ZCpsBAKZC"
    })
}

fn send_text() -> Value {
    json!({"to": "+55 11 91234-5678", "text": "Seu pedido saiu para entrega!", "slot": 1})
}

fn send_template() -> Value {
    json!({
        "to": "BR.1349120865530270",
        "template": {"name": "pedido_saiu", "language": "pt_BR", "parameters": ["42", "amanhã"]}
    })
}

fn notice() -> Value {
    json!({
        "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "slot": 2,
        "to": "+55 11 91234-5678",
        "templates": {
            "quota.threshold_crossed": {"name": "alerta_cota", "language": "pt_BR"},
            "webhook.endpoint_disabled": {"name": "webhook_desligado", "language": "en_US"}
        }
    })
}

/// Each route: its example body, its limit and how it reads the body.
type Route = (
    &'static str,
    fn() -> Value,
    usize,
    fn(&Case) -> Result<bool, TestCaseError>,
);

const ROUTES: &[Route] = &[
    ("POST /v1/signup", signup, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: SignupRequest| {
            r.validate().map(drop)
        })
    }),
    ("POST /v1/keys", new_key, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: NewKeyRequest| {
            r.validate(now(), &Role::TENANT).map(drop)
        })
    }),
    (
        "POST /v1/storage-keys",
        storage_key,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: NewStorageKeyRequest| {
                r.validate().map(drop)
            })
        },
    ),
    ("POST /v1/webhooks", endpoint, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: EndpointRequest| {
            r.validate(&POLICY).map(drop)
        })
    }),
    (
        "PATCH /v1/webhooks/{id}",
        endpoint_patch,
        DEFAULT_BODY_LIMIT,
        |c| {
            let current = current_endpoint();
            check(c, DEFAULT_BODY_LIMIT, |r: EndpointPatch| {
                r.apply(&current, &POLICY).map(drop)
            })
        },
    ),
    ("POST /v1/rpa/carriers", carrier, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: CarrierRequest| {
            r.validate().map(drop)
        })
    }),
    (
        "PATCH /v1/rpa/carriers/{code}",
        carrier_patch,
        DEFAULT_BODY_LIMIT,
        |c| {
            let current = current_carrier();
            check(c, DEFAULT_BODY_LIMIT, |r: CarrierPatch| {
                r.apply(&current).map(drop)
            })
        },
    ),
    ("POST /v1/rpa/clients", client, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: ClientRequest| {
            r.validate().map(drop)
        })
    }),
    (
        "PATCH /v1/rpa/clients/{id}",
        client_patch,
        DEFAULT_BODY_LIMIT,
        |c| {
            let current = current_client();
            check(c, DEFAULT_BODY_LIMIT, |r: ClientPatch| {
                r.apply(&current).map(drop)
            })
        },
    ),
    (
        "POST /v1/rpa/schedules",
        schedule,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: ScheduleRequest| {
                r.validate().map(drop)
            })
        },
    ),
    (
        "PATCH /v1/rpa/schedules/{id}",
        schedule_patch,
        DEFAULT_BODY_LIMIT,
        |c| {
            let current = current_schedule();
            check(c, DEFAULT_BODY_LIMIT, |r: SchedulePatch| {
                r.apply(&current).map(drop)
            })
        },
    ),
    (
        "POST /v1/rpa/processes/{id}/invoice-upload",
        upload,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: UploadRequest| {
                r.validate().map(drop)
            })
        },
    ),
    ("POST /v1/whatsapp/stores", store, DEFAULT_BODY_LIMIT, |c| {
        check(c, DEFAULT_BODY_LIMIT, |r: StoreRequest| {
            r.validate().map(drop)
        })
    }),
    (
        "PATCH /v1/whatsapp/stores/{id}",
        store_patch,
        DEFAULT_BODY_LIMIT,
        |c| {
            let current = current_store();
            check(c, DEFAULT_BODY_LIMIT, |r: StorePatch| {
                r.apply(&current).map(drop)
            })
        },
    ),
    (
        "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
        number,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: NumberRequest| {
                r.validate().map(drop)
            })
        },
    ),
    (
        "POST /v1/whatsapp/stores/{id}/messages",
        send_text,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: SendRequest| {
                r.validate().map(drop)
            })
        },
    ),
    (
        "POST /v1/whatsapp/stores/{id}/messages (template)",
        send_template,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: SendRequest| {
                r.validate().map(drop)
            })
        },
    ),
    (
        "PUT /v1/whatsapp/notices",
        notice,
        DEFAULT_BODY_LIMIT,
        |c| {
            check(c, DEFAULT_BODY_LIMIT, |r: NoticeRequest| {
                r.validate().map(drop)
            })
        },
    ),
];

#[test]
fn every_documented_example_is_accepted() {
    for (route, base, _, read) in ROUTES {
        let case = Case {
            content_type: Some(b"application/json; charset=utf-8".to_vec()),
            body: serde_json::to_vec(&base()).unwrap(),
            as_text: true,
        };
        match read(&case) {
            Ok(true) => {}
            other => panic!("{route}: the example is refused: {other:?}"),
        }
    }
}

/// Regression: `json_body` read the object and ignored what followed it,
/// so `{…}x` was accepted although it is not JSON.
#[test]
fn bytes_after_the_object_are_refused() {
    for tail in ["a", "}", "{}", ",", "\u{0}", "\u{feff}"] {
        let mut body = serde_json::to_vec(&signup()).unwrap();
        body.extend_from_slice(tail.as_bytes());
        let req = request(Some(b"application/json"), body, true, "");
        let problem = json_body::<SignupRequest>(&req, DEFAULT_BODY_LIMIT)
            .expect_err("trailing bytes accepted");
        assert_eq!(problem.status, 400, "{tail:?}: {problem:?}");
    }
    // Trailing whitespace is still fine.
    let mut body = serde_json::to_vec(&signup()).unwrap();
    body.extend_from_slice(b" \r\n");
    let req = request(Some(b"application/json"), body, true, "");
    assert!(json_body::<SignupRequest>(&req, DEFAULT_BODY_LIMIT).is_ok());
}

/// Regression: a typed parse that serde calls a syntax error although the
/// body is JSON (an array for an enum, a number too large for any type)
/// was answered 400 "not valid JSON" instead of 422 on the field.
#[test]
fn valid_json_of_the_wrong_type_is_a_422_on_the_field() {
    for (body, field) in [
        (r#"{"name": "k", "access": ["read_only"]}"#, "access"),
        (r#"{"name": "k", "access": {"read_only": 1}}"#, "access"),
        (r#"{"name": "k", "buckets": [1e400]}"#, "buckets[0]"),
    ] {
        let req = request(
            Some(b"application/json"),
            body.as_bytes().to_vec(),
            true,
            "",
        );
        let problem = json_body::<NewStorageKeyRequest>(&req, DEFAULT_BODY_LIMIT)
            .expect_err("a wrong type accepted");
        assert_eq!(problem.status, 422, "{body}: {problem:?}");
        assert!(
            problem.errors[0].field.starts_with(field),
            "{body}: {problem:?}"
        );
    }
}

/// Any route, and a request to it.
fn any_route_case() -> impl Strategy<Value = (usize, Case)> {
    (0..ROUTES.len()).prop_flat_map(|i| (Just(i), case((ROUTES[i].1)())))
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn bodies_get_their_documented_answer((route, case) in any_route_case()) {
        let (name, _, limit, read) = ROUTES[route];
        let _ = limit;
        read(&case).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    }
}
