//! CPU cost of one authorizer verification, without I/O: parse the API
//! Gateway request, parse and check the credential, verify the secret
//! against its stored hash, and serialise the answer.
//!
//! `cargo run --release -p authorizer --example cpu` (run by `make measure`).

use std::hint::black_box;
use std::time::Instant;

use authorizer::{AuthorizerRequest, AuthorizerResponse};
use chrono::Utc;
use nuvem_aws::store::KeyRecord;
use nuvem_domain::keys::{self, KeyStatus, Role};

fn main() {
    let secret = keys::generate_secret();
    let key = KeyRecord {
        id: nuvem_domain::ids::new_id("key"),
        account_id: nuvem_domain::ids::new_id("acc"),
        name: "bench".into(),
        role: Role::Operator,
        status: KeyStatus::Active,
        secret_hash: keys::hash_secret(secret.expose()),
        created_at: Utc::now(),
        expires: None,
        last_used_at: Some(Utc::now()),
        revoked_at: None,
    };
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/authorizer/request.json"
    ))
    .expect("events/authorizer/request.json");
    let mut request: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    request["headers"]["authorization"] = format!("Bearer {}.{}", key.id, secret.expose()).into();
    let payload = serde_json::to_vec(&request).unwrap();

    let verify = |payload: &[u8]| {
        let req: AuthorizerRequest = serde_json::from_slice(payload).unwrap();
        let header = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let credential = authorizer::credential(header).unwrap();
        let mut answer = AuthorizerResponse::default();
        answer.is_authorized = true;
        answer.context = authorizer::admit(&key, &credential.secret, Utc::now()).unwrap();
        serde_json::to_vec(&answer).unwrap()
    };
    for _ in 0..1_000 {
        black_box(verify(black_box(&payload)));
    }
    let runs = 100_000;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(verify(black_box(&payload)));
    }
    let per = start.elapsed() / runs;
    println!(
        "authorizer verification: {:.1} µs per request ({runs} runs, no I/O)",
        per.as_nanos() as f64 / 1000.0
    );
}
