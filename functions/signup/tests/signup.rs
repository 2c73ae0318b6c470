//! `POST /v1/signup` against the emulator, from `events/signup/signup.json`.

use nuvem_aws::Core;
use nuvem_aws::http::Request;
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{http_event, reply, with_body, with_json, with_source_ip};
use nuvem_testkit::inspect::{drain, partition_keys};
use serde_json::{Value, json};

struct Env {
    deps: signup::Deps,
    t: TestStack,
}

async fn env() -> Env {
    let t = TestStack::new("signup").await;
    let core = Core::from_lookup(&t.sdk, &t.env("Signup")).unwrap();
    Env {
        deps: signup::Deps {
            core,
            per_address_per_hour: 5,
        },
        t,
    }
}

fn body() -> Value {
    json!({
        "organization_name": "Padaria Pão Quente Ltda",
        "document": "11.222.333/0001-81",
        "phone": "(11) 98765-4321",
        "email": "financeiro@paoquente.com.br",
        "imperius_licenses": 3
    })
}

fn request(body: &Value) -> Request {
    with_json(http_event("signup/signup.json"), body)
}

async fn call(env: &Env, req: Request) -> (u16, String, Value) {
    reply(&signup::handle(&env.deps, req).await)
}

#[tokio::test]
async fn the_fixture_signs_up_a_pending_account_and_queues_its_event() {
    let env = env().await;
    let (status, _, answer) = call(&env, http_event("signup/signup.json")).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["status"], "pending");
    let id = answer["id"].as_str().unwrap();
    assert!(id.starts_with("acc_"));

    let account = env
        .deps
        .core
        .store
        .get_account(id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(account.document, "11222333000181");
    assert_eq!(account.phone, "+5511987654321");
    assert_eq!(account.imperius_licenses, 3);

    let messages = drain(&env.t.sqs, env.t.events_queue(), 10).await;
    assert_eq!(messages.len(), 1);
    let event: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "account.signed_up");
    assert_eq!(event["account_id"], id);
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
}

#[tokio::test]
async fn a_document_or_email_can_sign_up_only_once() {
    let env = env().await;
    assert_eq!(call(&env, request(&body())).await.0, 201);

    // Same CNPJ written differently, other email.
    let mut same_doc = body();
    same_doc["document"] = json!("11222333000181");
    same_doc["email"] = json!("outro@example.com.br");
    let (status, ct, answer) = call(&env, request(&same_doc)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(answer["errors"][0]["field"], "document");

    // Same email in other case, other document (a valid CPF).
    let mut same_email = body();
    same_email["document"] = json!("529.982.247-25");
    same_email["email"] = json!("FINANCEIRO@PaoQuente.com.br");
    let (status, _, answer) = call(&env, request(&same_email)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "email");
}

#[tokio::test]
async fn concurrent_signups_with_one_document_create_one_account() {
    let env = env().await;
    let attempts = (0..6).map(|i| {
        let mut b = body();
        b["email"] = json!(format!("user{i}@example.com"));
        let req = with_source_ip(request(&b), &format!("198.51.100.{i}"));
        call(&env, req)
    });
    // Polled together, so that the writes really race.
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.0 == 201).count();
    let conflicts = results.iter().filter(|r| r.0 == 409).count();
    assert_eq!((created, conflicts), (1, 5), "{results:?}");
    let accounts = partition_keys(&env.t.db, env.t.table())
        .await
        .into_iter()
        .filter(|pk| pk.starts_with("ACCOUNT#"))
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(accounts.len(), 1);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_stores_nothing() {
    let env = env().await;
    let mut cases: Vec<(&str, Request, u16)> = vec![
        (
            "malformed JSON",
            with_body(http_event("signup/signup.json"), "{\"organization_name\": "),
            400,
        ),
        (
            "truncated after an unknown key",
            with_body(http_event("signup/signup.json"), "{\"nickname\": "),
            400,
        ),
        (
            "not an object",
            with_body(http_event("signup/signup.json"), "[1,2]"),
            422,
        ),
        (
            "empty body",
            with_body(http_event("signup/signup.json"), ""),
            400,
        ),
        (
            "oversize body",
            with_body(
                http_event("signup/signup.json"),
                format!("{{\"organization_name\": \"{}\"}}", "a".repeat(17 * 1024)),
            ),
            413,
        ),
    ];
    let mut wrong_ct = http_event("signup/signup.json");
    wrong_ct
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    cases.push(("wrong content type", wrong_ct, 415));
    let field_cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong type",
            json!({"imperius_licenses": "three"}),
            "imperius_licenses",
        ),
        (
            "negative licences",
            json!({"imperius_licenses": -1}),
            "imperius_licenses",
        ),
        (
            "too many licences",
            json!({"imperius_licenses": 1001}),
            "imperius_licenses",
        ),
        ("unknown field", json!({"admin": true}), ""),
        (
            "bad CNPJ check digits",
            json!({"document": "11.222.333/0001-82"}),
            "document",
        ),
        ("bad CPF", json!({"document": "111.111.111-11"}), "document"),
        (
            "not a Brazilian phone",
            json!({"phone": "+1 415 555 0100"}),
            "phone",
        ),
        ("bad email", json!({"email": "financeiro@"}), "email"),
        (
            "blank name",
            json!({"organization_name": "  "}),
            "organization_name",
        ),
    ];
    for (name, patch, field) in &field_cases {
        let mut b = body();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (status, ct, answer) = call(&env, request(&b)).await;
        assert_eq!(status, 422, "{name}: {answer}");
        assert_eq!(ct, "application/problem+json", "{name}");
        if !field.is_empty() {
            assert_eq!(answer["errors"][0]["field"], *field, "{name}: {answer}");
        }
    }
    let mut missing = body();
    missing.as_object_mut().unwrap().remove("phone");
    cases.push(("missing field", request(&missing), 422));
    for (name, req, expected) in cases {
        let (status, ct, answer) = call(&env, req).await;
        assert_eq!(status, expected, "{name}: {answer}");
        assert_eq!(ct, "application/problem+json", "{name}");
        assert_eq!(answer["status"], expected, "{name}");
    }
    assert!(
        partition_keys(&env.t.db, env.t.table()).await.is_empty(),
        "nothing stored"
    );
    assert!(
        drain(&env.t.sqs, env.t.events_queue(), 10).await.is_empty(),
        "nothing queued"
    );
}

#[tokio::test]
async fn one_address_is_limited_to_five_signups_an_hour() {
    let env = env().await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let mut b = body();
        b["email"] = json!(format!("loja{i}@example.com"));
        b["document"] = json!(
            [
                "529.982.247-25",
                "11.222.333/0001-81",
                "12.ABC.345/01DE-35",
                "390.533.447-05",
                "11.444.777/0001-61",
                "145.382.206-20",
                "04.252.011/0001-10"
            ][i]
        );
        statuses.push(
            call(&env, with_source_ip(request(&b), "192.0.2.77"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, vec![201, 201, 201, 201, 201, 429, 429]);
    // Another address is not affected.
    let mut b = body();
    b["email"] = json!("outra@example.com");
    b["document"] = json!("00.000.000/0001-91");
    assert_eq!(
        call(&env, with_source_ip(request(&b), "192.0.2.78"))
            .await
            .0,
        201
    );
}
