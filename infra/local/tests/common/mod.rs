//! Helpers shared by the end-to-end tests: the local stack, a platform admin
//! credential, the activation token read back from the emulator's mail, and
//! a whole onboarding through the HTTP API.

// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use nuvem_local::{FunctionOutput, Options, Runner};
use nuvem_testkit::{emulator, eventually_some, unique_name};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// The `PublicBaseUrl` the test stacks use; activation links start with it.
pub const PUBLIC_BASE_URL: &str = "https://app.nuvem.test";

/// The whole template run locally against the shared emulator, with
/// `params` overriding the template's defaults, made to hold on a loaded
/// machine: generous start-up limits, no function timeout under 30 s (the
/// template's 3 s authorizer would fail calls that only waited for a CPU),
/// and a queue batch whose invocation failed that way is retried in a
/// second instead of after the queue's visibility timeout (minutes).
pub async fn stack(name: &str, params: &[(&str, &str)]) -> Runner {
    stack_with(name, params, |_| {}).await
}

/// [`stack`], with its options changed by `customize` before it starts.
pub async fn stack_with(
    name: &str,
    params: &[(&str, &str)],
    customize: impl FnOnce(&mut Options),
) -> Runner {
    let emu = emulator().await;
    // Outside APIs default to a closed local port: a test that needs one
    // starts its fake and names it; nothing ever leaves 127.0.0.1.
    let mut all = BTreeMap::from([
        ("PublicBaseUrl".to_owned(), PUBLIC_BASE_URL.to_owned()),
        ("GraphApiUrl".to_owned(), "http://127.0.0.1:9".to_owned()),
        (
            "ChatApiUrl".to_owned(),
            "http://127.0.0.1:9/api/v1".to_owned(),
        ),
        ("RpaApiUrl".to_owned(), "http://127.0.0.1:9/rpa".to_owned()),
        // The most a deployment would log: what `assert_no_secret_logged`
        // searches.
        ("LogLevel".to_owned(), "debug".to_owned()),
    ]);
    all.extend(
        params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let output = FunctionOutput::default();
    OUTPUTS.lock().unwrap().push(output.clone());
    let stack_name = unique_name(name);
    STACK_OUTPUTS
        .lock()
        .unwrap()
        .insert(stack_name.clone(), output.clone());
    let mut options = Options {
        capture_output: Some(output),
        emulator_url: Some(emu.endpoint().to_owned()),
        stack_name,
        params: all,
        schedules: false,
        sqs_wait_secs: 1,
        init_timeout: Duration::from_secs(60),
        ready_timeout: Duration::from_secs(120),
        min_function_timeout: Some(Duration::from_secs(30)),
        sqs_infra_failure_visibility: Some(Duration::from_secs(1)),
        ..Options::default()
    };
    customize(&mut options);
    Runner::start(options).await.expect(
        "the local stack starts (build the functions first: cargo build --workspace --bins)",
    )
}

/// The secrets the end-to-end tests of this test binary saw (sent or
/// answered through the API, or given to the stack), and everything the
/// functions of their stacks printed: no line may hold a secret.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static OUTPUTS: Mutex<Vec<FunctionOutput>> = Mutex::new(Vec::new());
/// Each stack's output, by stack name.
static STACK_OUTPUTS: Mutex<BTreeMap<String, FunctionOutput>> = Mutex::new(BTreeMap::new());

/// The sum of the CloudWatch EMF values of `metric` with exactly the
/// dimensions `dims` that the functions of `runner`'s stack printed so far,
/// in the stack's namespace (`nuvem/<stack>`).
pub fn metric_sum(runner: &Runner, metric: &str, dims: &[(&str, &str)]) -> f64 {
    let name = &runner.stack().name;
    let output = STACK_OUTPUTS.lock().unwrap()[name].clone();
    let namespace = format!("nuvem/{name}");
    let mut sum = 0.0;
    for line in output.lines() {
        let Some(doc) = line
            .split_once("] ")
            .and_then(|(_, json)| serde_json::from_str::<Value>(json).ok())
        else {
            continue;
        };
        let Some(directive) = doc["_aws"]["CloudWatchMetrics"].get(0) else {
            continue;
        };
        let names: BTreeSet<&str> = directive["Dimensions"][0]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let wanted: BTreeSet<&str> = dims.iter().map(|(k, _)| *k).collect();
        let emitted = directive["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["Name"] == metric);
        if directive["Namespace"] != namespace.as_str()
            || !emitted
            || names != wanted
            || dims.iter().any(|(k, v)| doc[*k] != *v)
        {
            continue;
        }
        sum += match &doc[metric] {
            Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
            value => value.as_f64().unwrap_or(0.0),
        };
    }
    sum
}

/// Fields whose string values are secrets, in request and answer bodies.
const SECRET_FIELDS: &[&str] = &[
    "credential",
    "secret",
    "secret_access_key",
    "token",
    "access_token",
    "password",
    "portal_password",
    "app_secret",
    "verify_token",
    "api_key",
];

/// Remembers a secret, to be looked for in the functions' output.
pub fn secret(value: &str) {
    // Short values (a test's "x") would match by accident.
    if value.len() >= 12 {
        SECRETS.lock().unwrap().push(value.to_owned());
    }
}

/// Remembers every secret field's value in `value` (any depth).
pub fn secrets_in(value: &Value) {
    match value {
        Value::Object(fields) => {
            for (name, v) in fields {
                match v {
                    Value::String(text) if SECRET_FIELDS.contains(&name.as_str()) => secret(text),
                    Value::String(text) => {
                        // Secrets Manager values are JSON text.
                        if let Ok(inner @ Value::Object(_)) = serde_json::from_str(text) {
                            secrets_in(&inner);
                        }
                    }
                    other => secrets_in(other),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(secrets_in),
        _ => {}
    }
}

/// No line any function of this binary's stacks printed holds a secret
/// the tests saw: the key secrets, activation tokens, webhook signing
/// secrets, access tokens and passwords that went through the API.
pub fn assert_no_secret_logged() {
    let secrets = SECRETS.lock().unwrap().clone();
    assert!(
        !secrets.is_empty(),
        "the tests saw no secret: are they remembered?"
    );
    // Each secret, and the secret part of a credential `<key id>.<secret>`.
    let needles: BTreeSet<&str> = secrets
        .iter()
        .flat_map(|s| [Some(s.as_str()), s.rsplit_once('.').map(|(_, part)| part)])
        .flatten()
        .filter(|needle| needle.len() >= 12)
        .collect();
    for output in OUTPUTS.lock().unwrap().iter() {
        for line in output.lines() {
            for needle in &needles {
                assert!(!line.contains(needle), "a function logged a secret: {line}");
            }
        }
    }
}

/// Gives the stack's Secrets Manager secret `logical_id` its value, as an
/// operator does after deploying (and remembers its secrets).
pub async fn put_secret(runner: &Runner, logical_id: &str, value: Value) {
    secrets_in(&value);
    runner
        .stack()
        .put_secret(emulator().await, logical_id, &value.to_string())
        .await
        .unwrap();
}

/// A platform admin credential, minted by the operator CLI as `make admin-key` does.
pub fn admin_key(runner: &Runner) -> String {
    let cli = nuvem_local::default_bin_dir().join("nuvem-admin");
    let out = std::process::Command::new(&cli)
        .args(["create-admin-key", "--table", runner.stack().table("Table")])
        .env("AWS_ENDPOINT_URL", runner.emulator_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cli.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credential = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    secret(&credential);
    credential
}

/// Waits for the activation email to `to` and returns the token of its link.
pub async fn activation_token(to: &str) -> String {
    let link = format!("{PUBLIC_BASE_URL}/activate?token=");
    let mail = eventually_some(&format!("the activation email to {to}"), || async {
        let mails = emulator().await.sent_emails().await.unwrap();
        mails.into_iter().find(|m| m.to.iter().any(|t| t == to))
    })
    .await;
    let body = mail
        .html
        .as_deref()
        .or(mail.text.as_deref())
        .unwrap_or_default();
    let start = body.find(&link).expect("activation link") + link.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

pub struct Api<'a> {
    pub http: Client,
    pub runner: &'a Runner,
}

impl Api<'_> {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, answer, _) = self.call_with(method, path, credential, body, &[]).await;
        (status, answer)
    }

    /// [`Api::call`] with more request headers, and the answer's
    /// `Retry-After` (seconds), if it had one.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        credential: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, Option<u64>) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.runner.base_url()));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(c) = credential {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        if let Some(b) = body {
            secrets_in(&b);
            req = req.json(&b);
        }
        let resp = req.send().await.expect("HTTP call");
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = resp.text().await.unwrap_or_default();
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        secrets_in(&answer);
        (status, answer, retry_after)
    }
}

/// Signup → approval → emailed token → activation: the new owner's credential.
pub async fn onboard(api: &Api<'_>, admin: &str, document: &str, email: &str) -> (String, String) {
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/signup",
            None,
            Some(json!({
                "organization_name": "Transportadora Rápida", "document": document,
                "phone": "(31) 3222-1100", "email": email, "imperius_licenses": 2
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, pending) = api
        .call(
            Method::GET,
            "/v1/admin/accounts?status=pending&limit=100",
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str())
    );

    let (status, approved) = api
        .call(
            Method::POST,
            &format!("/v1/admin/accounts/{id}/approve"),
            Some(admin),
            Some(json!({"quota_gb": 0.01, "imperius_licenses": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");

    let token = activation_token(email).await;
    secret(&token);
    let (status, key) = api
        .call(
            Method::POST,
            "/v1/activate",
            None,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["key"]["role"], "owner");
    (id, key["credential"].as_str().unwrap().to_owned())
}

/// Subjects of the quota alerts sent to `to` so far, oldest first.
pub async fn alerts_to(to: &str) -> Vec<String> {
    emulator()
        .await
        .sent_emails()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to) && m.subject.contains("da cota"))
        .map(|m| m.subject)
        .collect()
}

/// Makes a schedule due now (as if its minute had come), `offset` seconds
/// ago, so that the next tick runs it.
pub async fn due_now(store: &nuvem_aws::store::Store, account: &str, id: &str, offset: i64) {
    let current = store.get_schedule(account, id).await.unwrap().unwrap();
    let next = nuvem_aws::store::ScheduleRecord {
        next_run: Some(chrono::Utc::now() - chrono::Duration::seconds(offset)),
        version: current.version + 1,
        ..current.clone()
    };
    assert!(
        store
            .update_schedule_with_event(&current, &next, None)
            .await
            .unwrap()
    );
}
