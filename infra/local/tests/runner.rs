//! The runner against tests/fixtures/template.yaml, whose functions are all
//! the `echo` example in different roles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod echo;

use echo::options;
use nuvem_local::{InvokeError, Options, Runner};
use nuvem_testkit::{emulator, eventually, unique_name};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

static RUNNER: OnceCell<Runner> = OnceCell::const_new();

async fn runner() -> &'static Runner {
    RUNNER
        .get_or_init(|| async {
            let emu = emulator().await;
            Runner::start(options(&unique_name("rt"), emu.endpoint()))
                .await
                .expect("runner starts")
        })
        .await
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(path: &str, auth: Option<&str>) -> (u16, String, Value) {
    get_on(runner().await, path, auth).await
}

async fn get_on(r: &Runner, path: &str, auth: Option<&str>) -> (u16, String, Value) {
    let mut req = http().get(format!("{}{path}", r.base_url()));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (
        status,
        ctype,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn an_authorized_route_gets_the_payload_2_event_and_the_function_env() {
    let r = runner().await;
    let before = epoch_ms();
    let resp = http()
        .get(format!("{}/items/a%20b?x=1&x=2&y=%C3%A9", r.base_url()))
        .header("authorization", "Bearer allow-shape")
        .header("x-multi", "one")
        .header("X-Multi", "two")
        .header("cookie", "s=1; t=2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("apigw-requestid"));
    let body: Value = resp.json().await.unwrap();
    let after = epoch_ms();
    let e = &body["event"];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["rawPath"], "/items/a%20b");
    assert_eq!(e["rawQueryString"], "x=1&x=2&y=%C3%A9");
    assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": "é"}));
    assert_eq!(e["pathParameters"], json!({"id": "a b"}));
    assert_eq!(e["headers"]["x-multi"], "one,two");
    assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("body").is_none());
    let ctx = &e["requestContext"];
    assert_eq!(ctx["http"]["method"], "GET");
    assert_eq!(ctx["http"]["path"], "/items/a%20b");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["routeKey"], "GET /items/{id}");
    assert_eq!(ctx["accountId"], "123456789012");
    assert!(ctx["timeEpoch"].as_i64().unwrap() > 0);
    let lambda = &ctx["authorizer"]["lambda"];
    assert_eq!(lambda["who"], "allow-shape");
    assert_eq!(lambda["routeKey"], "GET /items/{id}");
    assert!(
        lambda["routeArn"]
            .as_str()
            .unwrap()
            .ends_with("/$default/GET/items/a%20b"),
        "{lambda}"
    );

    let env = &body["env"];
    let stack = r.stack();
    assert_eq!(
        env["AWS_LAMBDA_FUNCTION_NAME"],
        format!("{}-Echo", stack.name)
    );
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_ENDPOINT_URL"], r.emulator_endpoint());
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["WORK_QUEUE_URL"], stack.queue("Work").url);
    assert_eq!(env["WORK_QUEUE_ARN"], stack.queue("Work").arn);
    assert_eq!(env["OBSERVED_QUEUE_URL"], stack.queue("Observed").url);
    assert_eq!(env["GREETING"], "olá from us-east-1, 123456789012");
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        env.get("HOME").is_none(),
        "the environment is the function's only"
    );
    assert!(
        body["functionArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":function:{}-Echo", stack.name))
    );
    // The deadline is the function's timeout from when the event was handed
    // over: somewhere between sending the request and reading the answer.
    let deadline = body["deadline"].as_u64().unwrap();
    let timeout = 1000 * stack.template.function("Echo").unwrap().timeout_secs;
    assert!(
        (before + timeout..=after + timeout).contains(&deadline),
        "deadline {deadline}, timeout {timeout} ms, request from {before} to {after}"
    );
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn public_routes_skip_the_authorizer() {
    let (status, _, body) = get("/public/thing", None).await;
    assert_eq!(status, 200);
    assert!(body["event"]["requestContext"].get("authorizer").is_none());
    assert_eq!(body["event"]["routeKey"], "GET /public/{what}");
}

/// Without a `$default` route API Gateway answers a bare 404 both for an
/// unknown path and for a known path asked with the wrong method.
#[tokio::test]
async fn unmatched_requests_are_api_gateways_404() {
    let (status, _, body) = get("/nothing/here", None).await;
    assert_eq!((status, body), (404, json!({"message": "Not Found"})));
    let (status, _, _) = get("/items/x/extra", Some("Bearer allow-x")).await;
    assert_eq!(status, 404);

    let r = runner().await;
    let resp = http()
        .delete(format!("{}/items/abc", r.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("allow").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": "Not Found"}));
}

#[tokio::test]
async fn greedy_paths_and_any_method() {
    let r = runner().await;
    let resp = http()
        .put(format!("{}/files/a/b/c.txt", r.base_url()))
        .header("authorization", "Bearer allow-files")
        .body("conteúdo")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["event"]["routeKey"], "ANY /files/{proxy+}");
    assert_eq!(body["event"]["pathParameters"]["proxy"], "a/b/c.txt");
    assert_eq!(body["event"]["body"], "conteúdo");
    assert_eq!(body["event"]["isBase64Encoded"], false);
}

#[tokio::test]
async fn binary_bodies_arrive_base64_encoded() {
    let r = runner().await;
    let resp = http()
        .post(format!("{}/items/bin", r.base_url()))
        .header("authorization", "Bearer allow-bin")
        .body(vec![0u8, 1, 0xff])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["event"]["isBase64Encoded"], true);
    assert_eq!(body["event"]["body"], "AAH/");
}

#[tokio::test]
async fn bodies_of_some_megabytes_pass() {
    let r = runner().await;
    let resp = http()
        .post(format!("{}/items/mid", r.base_url()))
        .header("authorization", "Bearer allow-mid")
        .body(vec![b'a'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["event"]["body"].as_str().unwrap().len(),
        3 * 1024 * 1024
    );
}

#[tokio::test]
async fn bodies_over_10_mb_are_413() {
    let r = runner().await;
    let resp = http()
        .post(format!("{}/items/big", r.base_url()))
        .header("authorization", "Bearer allow-big")
        .body(vec![b'a'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

/// The authorizer's context as the function got it.
fn authorizer_context(body: &Value) -> &Value {
    &body["event"]["requestContext"]["authorizer"]["lambda"]
}

/// The request path the authorizer was asked about (its `routeArn`'s end):
/// a decision from the cache carries the path of the request it was made for.
fn authorized_path(body: &Value) -> &str {
    let arn = authorizer_context(body)["routeArn"].as_str().unwrap();
    &arn[arn.find("/$default/GET").expect("a GET route ARN") + "/$default/GET".len()..]
}

#[tokio::test]
async fn the_authorizer_answers_401_403_500_and_its_cache_expires() {
    assert_eq!(get("/items/1", None).await.0, 401);
    assert_eq!(
        get("/items/1", None).await.2,
        json!({"message": "Unauthorized"})
    );
    assert_eq!(get("/items/1", Some("")).await.0, 401);
    let (status, _, body) = get("/items/1", Some("Bearer deny")).await;
    assert_eq!((status, body), (403, json!({"message": "Forbidden"})));
    let (status, _, body) = get("/items/1", Some("Bearer boom")).await;
    assert_eq!(
        (status, body),
        (500, json!({"message": "Internal Server Error"}))
    );

    // Cached per identity for ReauthorizeEvery (1 s in the fixture), counted
    // from the decision, which came before the first answer: past the TTL the
    // authorizer is asked again, about the new request.
    let token = format!("Bearer allow-{}", unique_name("c"));
    let first = get("/items/1", Some(&token)).await.2;
    assert_eq!(authorized_path(&first), "/items/1");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = get("/items/3", Some(&token)).await.2;
    assert_eq!(
        authorized_path(&again),
        "/items/3",
        "re-authorized after the TTL"
    );
}

#[tokio::test]
async fn an_authorizer_decision_is_reused_within_its_ttl() {
    // A stack of its own whose cache outlasts any stall between two requests.
    let emu = emulator().await;
    let mut o = options(&unique_name("cache"), emu.endpoint());
    o.params.insert("CacheSeconds".into(), "3600".into());
    let r = Runner::start(o).await.expect("runner starts");
    let token = format!("Bearer allow-{}", unique_name("c"));
    let first = get_on(&r, "/items/1", Some(&token)).await.2;
    let second = get_on(&r, "/items/2", Some(&token)).await.2;
    assert_eq!(authorized_path(&first), "/items/1");
    // The decision made for /items/1, context and all (a new one would name
    // /items/2 and count one more call).
    assert_eq!(
        authorizer_context(&second),
        authorizer_context(&first),
        "second answer from the cache"
    );
    // Another identity is another decision.
    let other = get_on(&r, "/items/2", Some("Bearer allow-other")).await.2;
    assert_eq!(authorized_path(&other), "/items/2");
    assert_eq!(authorizer_context(&other)["who"], "allow-other");
}

#[tokio::test]
async fn function_responses_in_the_v2_format() {
    let (status, ctype, body) = get("/public/bare", None).await;
    assert_eq!(
        (status, ctype.as_str(), body),
        (200, "application/json", json!({"hello": "world"}))
    );

    let r = runner().await;
    let resp = http()
        .get(format!("{}/public/cookies", r.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-one"], "1");
    let many: Vec<_> = resp
        .headers()
        .get_all("x-many")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(many, ["a", "b"]);
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(resp.text().await.unwrap(), "made");

    let resp = http()
        .get(format!("{}/public/binary", r.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &[0u8, 1, 0xff]);
}

#[tokio::test]
async fn errors_timeouts_and_crashes_are_500_and_the_process_comes_back() {
    let pid = |b: &Value| b["pid"].as_u64().unwrap();
    let before = get("/fragile/ok", None).await;
    assert_eq!(before.0, 200);

    let (status, _, body) = get("/fragile/fail", None).await;
    assert_eq!(
        (status, body),
        (500, json!({"message": "Internal Server Error"}))
    );
    let after_error = get("/fragile/ok", None).await;
    assert_eq!(
        pid(&after_error.2),
        pid(&before.2),
        "an error reply keeps the process"
    );

    // The handler sleeps 30 s; the function's timeout is far shorter. The
    // answer cannot come before the timeout (counted from when the process
    // took the event), and comes long before the handler would be done.
    let timeout = Duration::from_secs(
        runner()
            .await
            .stack()
            .template
            .function("Fragile")
            .unwrap()
            .timeout_secs,
    );
    let started = Instant::now();
    assert_eq!(get("/fragile/sleep", None).await.0, 500);
    let took = started.elapsed();
    assert!(
        took >= timeout && took < Duration::from_secs(25),
        "timeout {timeout:?}, took {took:?}"
    );
    let after_timeout = get("/fragile/ok", None).await;
    assert_eq!(after_timeout.0, 200);
    assert_ne!(
        pid(&after_timeout.2),
        pid(&before.2),
        "a timeout restarts the process"
    );

    assert_eq!(get("/fragile/crash", None).await.0, 500);
    let after_crash = get("/fragile/ok", None).await;
    assert_eq!(after_crash.0, 200);
    assert_ne!(pid(&after_crash.2), pid(&after_timeout.2));
}

#[tokio::test]
async fn sqs_partial_batch_failures_are_redelivered_then_dead_lettered() {
    let r = runner().await;
    let stack = r.stack();
    let sqs = aws_sdk_sqs::Client::new(&emulator().await.sdk_config().await);
    let tag = unique_name("m");
    let (ok, bad) = (format!("ok-{tag}"), format!("fail-{tag}"));
    for body in [&ok, &bad] {
        sqs.send_message()
            .queue_url(&stack.queue("Work").url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // The failing message lands in the DLQ after maxReceiveCount (2) receives.
    eventually(&format!("{bad} in the DLQ"), || async {
        nuvem_testkit::inspect::drain(&sqs, &stack.queue("WorkDLQ").url, 10)
            .await
            .iter()
            .any(|m| m.body() == Some(bad.as_str()))
    })
    .await;

    let seen: Vec<Value> = nuvem_testkit::inspect::drain(&sqs, &stack.queue("Observed").url, 100)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let receives = |body: &str| -> Vec<String> {
        seen.iter()
            .filter(|r| r["body"] == body)
            .map(|r| {
                r["attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        receives(&ok),
        ["1"],
        "the good message is processed once and deleted"
    );
    assert_eq!(
        receives(&bad),
        ["1", "2"],
        "the bad one is redelivered once, then dead-lettered"
    );
    let record = seen.iter().find(|r| r["body"] == ok.as_str()).unwrap();
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(record["eventSourceARN"], stack.queue("Work").arn);
    assert_eq!(record["awsRegion"], "us-east-1");
    assert!(record["md5OfBody"].is_string());
    assert!(record["receiptHandle"].is_string());
    for attr in [
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ] {
        assert!(record["attributes"][attr].is_string(), "{attr} in {record}");
    }
}

/// With `sqs_infra_failure_visibility`, a batch whose invocation failed for
/// want of a working process is received again within seconds, not after
/// the queue's visibility timeout (an hour for `Held`): here every process
/// exits at once, so after two receives the message is dead-lettered.
#[tokio::test]
async fn a_batch_failed_by_its_process_is_retried_soon_when_asked() {
    let emu = emulator().await;
    let bin_dir = std::env::temp_dir().join(unique_name("no-echo"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink("/bin/false", bin_dir.join("echo")).unwrap();
    let mut o = options(&unique_name("held"), emu.endpoint());
    o.bin_dir = bin_dir.clone();
    o.log_runner = false;
    o.ready_timeout = Duration::ZERO;
    o.sqs_infra_failure_visibility = Some(Duration::from_secs(1));
    let r = Runner::start(o).await.expect("runner starts");
    let stack = r.stack();
    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let body = unique_name("held");
    sqs.send_message()
        .queue_url(&stack.queue("Held").url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    eventually(&format!("{body} in Held's DLQ"), || async {
        nuvem_testkit::inspect::drain(&sqs, &stack.queue("HeldDLQ").url, 10)
            .await
            .iter()
            .any(|m| m.body() == Some(body.as_str()))
    })
    .await;
    drop(r);
    let _ = std::fs::remove_dir_all(bin_dir);
}

#[tokio::test]
async fn schedules_deliver_the_scheduled_event_or_their_input() {
    let r = runner().await;
    let event = r.run_schedule("Ticker", "Tick").await.unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["version"], "0");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(event["detail"], json!({}));
    assert!(
        event["resources"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("rule/{}-Ticker-Tick", r.stack().name))
    );
    assert_eq!(
        r.run_schedule("Ticker", "Nightly").await.unwrap(),
        json!({"job": "nightly"})
    );
    assert!(matches!(
        r.run_schedule("Ticker", "Nope").await,
        Err(InvokeError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_summary_lists_routes_consumers_and_schedules() {
    let text = runner().await.describe();
    assert!(text.contains("GET     /public/{what}"), "{text}");
    assert!(text.contains("public"));
    assert!(text.contains("auth Gate (Gate, cache 1 s)"));
    assert!(text.contains("-Work -> Consumer (batch 5, ReportBatchItemFailures)"));
    assert!(text.contains("rate(1 minute) -> Ticker (Tick)"));
    assert!(text.contains("cron(0 3 * * ? *) -> Ticker (Nightly)"));
    assert!(!text.contains("FAILED"), "{text}");
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error() {
    let emu = emulator().await;
    let mut o = options(&unique_name("nobin"), emu.endpoint());
    o.bin_dir = PathBuf::from("/nonexistent");
    let err = Runner::start(o).await.err().expect("fails").to_string();
    assert!(err.contains("cargo build --bins"), "{err}");
    assert!(err.contains("/nonexistent/echo"), "{err}");
}

/// What the functions print is kept, printed or not, for the tests that
/// check what a deployment would log (no secret).
#[tokio::test]
async fn every_line_a_function_prints_is_captured() {
    let output = nuvem_local::FunctionOutput::default();
    let r = Runner::start(nuvem_local::Options {
        capture_output: Some(output.clone()),
        log_functions: false,
        ..options(&unique_name("cap"), emulator().await.endpoint())
    })
    .await
    .expect("runner starts");
    let event = json!({"rawPath": "/say", "rawQueryString": "ola=mundo"});
    assert_eq!(r.invoke("Echo", &event).await.unwrap()["statusCode"], 204);
    let lines = nuvem_testkit::eventually_some("both lines to be captured", || {
        let output = output.clone();
        async move {
            let lines = output.lines();
            (lines.len() >= 2).then_some(lines)
        }
    })
    .await;
    assert!(
        lines.contains(&"[Echo] said ola=mundo".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"[Echo] said ola=mundo (stderr)".to_owned()),
        "{lines:?}"
    );
}

/// With `concurrency: 2`, a second instance answers while the first is
/// held busy; with the default, calls wait for the one instance.
#[tokio::test]
async fn a_second_instance_answers_while_the_first_is_busy() {
    let emu = emulator().await;
    let r = Runner::start(Options {
        concurrency: 2,
        ..options(&unique_name("rt-conc"), emu.endpoint())
    })
    .await
    .expect("runner starts");
    let dir = std::env::temp_dir().join(unique_name("gate"));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = dir.join("open");
    let url = format!("{}/public/gate?file={}", r.base_url(), gate.display());
    let held =
        tokio::spawn(async move { http().get(url).send().await.unwrap().text().await.unwrap() });
    let entered = dir.join("open.entered");
    eventually("the first call is being handled", || {
        let entered = entered.clone();
        async move { entered.exists() }
    })
    .await;

    let (status, _, other) = get_on(&r, "/public/other", None).await;
    assert_eq!(status, 200, "answered while the first instance is busy");
    std::fs::write(&gate, b"").unwrap();
    let first_pid: u64 = held.await.unwrap().parse().unwrap();
    assert_ne!(
        other["pid"].as_u64().unwrap(),
        first_pid,
        "by another process"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With crashes at every invocation, the process is killed part-way: the
/// call fails as a crashed function's does (the HTTP API's bare 500), and
/// the function is started again for the next call.
#[tokio::test]
async fn the_crash_injector_kills_processes_mid_invocation() {
    let emu = emulator().await;
    let r = Runner::start(Options {
        crashes: Some("rate=1,within-ms=0".parse().unwrap()),
        ..options(&unique_name("rt-crash"), emu.endpoint())
    })
    .await
    .expect("runner starts");
    let dir = std::env::temp_dir().join(unique_name("crash"));
    std::fs::create_dir_all(&dir).unwrap();
    // A gate never opened: only the kill ends these invocations.
    let path = format!("/public/gate?file={}", dir.join("never").display());
    for n in 1..=2 {
        let (status, _, body) = get_on(&r, &path, None).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["message"], "Internal Server Error");
        assert_eq!(r.fault_counts().crashes, n);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
