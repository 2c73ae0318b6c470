//! End to end through the local stack's HTTP port, as a user of `make dev`
//! would: every function runs as its own process behind the Lambda Runtime
//! API, the authorizer in front, the events queue polled into `fanout`, and
//! the activation email read back from the emulator.

mod common;

use std::time::Duration;

use common::{Api, admin_key, onboard};
use nuvem_local::Runner;
use reqwest::{Client, Method, StatusCode};
use serde_json::json;

/// Short, so the test sees revocation take effect; the deployed default is
/// in the template and the README.
const AUTHORIZER_CACHE_SECS: u64 = 2;

async fn stack(name: &str) -> Runner {
    common::stack(
        name,
        &[("AuthorizerCacheSeconds", &AUTHORIZER_CACHE_SECS.to_string())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_from_signup_to_a_revoked_operator_key() {
    let runner = stack("e2e-onboarding").await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let (_, owner) = onboard(&api, &admin, "390.533.447-05", "ops@rapida.com.br").await;

    let (status, op) = api
        .call(
            Method::POST,
            "/v1/keys",
            Some(&owner),
            Some(json!({"name": "backup server", "role": "operator"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{op}");
    let operator = op["credential"].as_str().unwrap().to_owned();
    let op_id = op["key"]["id"].as_str().unwrap().to_owned();

    // The operator is authenticated, but managing keys is for owners.
    let (status, problem) = api
        .call(Method::GET, "/v1/keys", Some(&operator), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, listed) = api.call(Method::GET, "/v1/keys", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/keys/{op_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // After the authorizer cache expires the revoked key is refused.
    tokio::time::sleep(Duration::from_secs(AUTHORIZER_CACHE_SECS) + Duration::from_millis(500))
        .await;
    let (status, problem) = api
        .call(Method::GET, "/v1/keys", Some(&operator), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["status"], 401);

    // No credential at all, and a malformed one.
    assert_eq!(
        api.call(Method::GET, "/v1/keys", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::GET, "/v1/keys", Some("nonsense"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // An owner is no admin.
    assert_eq!(
        api.call(Method::GET, "/v1/admin/accounts", Some(&owner), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    common::assert_no_secret_logged();
}

/// The `$default` route answers what no other route does, as a deployed API
/// would: a wrong method on a path of ours is a 405 naming the right ones, and
/// any other path a 404, both as problems, with or without a credential.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_are_405_and_unknown_paths_404() {
    let runner = stack("e2e-fallback").await;
    let http = Client::new();
    let send = |method: Method, path: &str| {
        http.request(method, format!("{}{path}", runner.base_url()))
            .header("authorization", "Bearer key_x.y")
            .send()
    };
    for (method, path, allow) in [
        (Method::GET, "/v1/signup", "POST"),
        (Method::PUT, "/v1/keys", "GET, POST"),
        (
            Method::GET,
            "/v1/keys/key_01jdq4a1b2c3d4e5f6g7h8j9k0",
            "DELETE",
        ),
        (Method::POST, "/v1/webhooks/wh_1", "DELETE, GET, PATCH"),
    ] {
        let resp = send(method.clone(), path).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], 405);
    }
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/v1/nothing"),
        (Method::POST, "/v2/signup"),
        (Method::GET, "/v1/keys/"),
        (Method::DELETE, "/v1/keys/a/b"),
    ] {
        let resp = send(method.clone(), path).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert!(resp.headers().get("allow").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_one_account_cannot_read_or_change_another() {
    let runner = stack("e2e-isolation").await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let (a, owner_a) = onboard(&api, &admin, "145.382.206-20", "a@empresa-a.com.br").await;
    let (b, owner_b) = onboard(&api, &admin, "11.444.777/0001-61", "b@empresa-b.com.br").await;
    assert_ne!(a, b);

    let (_, keys_b) = api
        .call(Method::GET, "/v1/keys", Some(&owner_b), None)
        .await;
    let key_b = keys_b["items"][0]["id"].as_str().unwrap().to_owned();

    // A sees only its own keys.
    let (_, keys_a) = api
        .call(Method::GET, "/v1/keys", Some(&owner_a), None)
        .await;
    assert!(!keys_a.to_string().contains(&key_b));
    // A cannot revoke B's key: to A it does not exist.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/keys/{key_b}"),
            Some(&owner_a),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A cannot create a key in B's account by naming it.
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/keys",
            Some(&owner_a),
            Some(json!({"name": "x", "role": "owner", "account_id": b})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nor read B's account through the admin routes.
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/admin/accounts/{b}"),
            Some(&owner_a),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // B's key still works.
    let (status, still) = api
        .call(Method::GET, "/v1/keys", Some(&owner_b), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(still.to_string().contains(&key_b));
    common::assert_no_secret_logged();
}
