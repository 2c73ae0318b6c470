//! A test-only Lambda for the runner's tests, one binary in several roles
//! (env `ROLE`): `http` echoes the request event, `authorizer` allows
//! `Bearer allow-*`, `sqs` fails bodies starting with `fail`, `schedule`
//! returns its event. `sqs` forwards what it sees to `OBSERVED_QUEUE_URL`.
//! `INIT_DELAY_MS` holds back the first poll for an event (a slow init).

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

static CALLS: AtomicU64 = AtomicU64::new(0);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let role = std::env::var("ROLE").unwrap_or_default();
    let delay = std::env::var("INIT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    tokio::time::sleep(std::time::Duration::from_millis(delay.unwrap_or(0))).await;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sqs = &sqs;
    let role = role.as_str();
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| async move {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        match role {
            "authorizer" => authorizer(e.payload, n),
            "http" => http(e.payload, &e.context).await,
            "sqs" => consume(e.payload, sqs).await,
            "schedule" => Ok(e.payload),
            other => Err(format!("unknown ROLE {other:?}").into()),
        }
    }))
    .await
}

fn authorizer(event: Value, n: u64) -> Result<Value, Error> {
    let token = event["identitySource"][0].as_str().unwrap_or_default();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    match token {
        "deny" => Ok(json!({"isAuthorized": false})),
        "boom" => Err("the authorizer exploded".into()),
        t if t.starts_with("allow") => Ok(json!({
            "isAuthorized": true,
            "context": {"who": t, "calls": n, "routeKey": event["routeKey"], "routeArn": event["routeArn"]}
        })),
        _ => Ok(json!({"isAuthorized": false})),
    }
}

async fn http(event: Value, ctx: &lambda_runtime::Context) -> Result<Value, Error> {
    let path = event["rawPath"].as_str().unwrap_or_default().to_owned();
    let last = path.rsplit('/').next().unwrap_or_default();
    match last {
        "sleep" => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok(json!({"statusCode": 200}))
        }
        "crash" => std::process::exit(3),
        // Creates `<path>.entered`, then answers its pid once the file
        // `?file=<path>` exists: a test holds this instance busy for as long
        // as it needs, without a clock.
        "gate" => {
            let query = event["rawQueryString"].as_str().unwrap_or_default();
            let file = query.strip_prefix("file=").unwrap_or_default().to_owned();
            let _ = std::fs::write(format!("{file}.entered"), b"");
            while !std::path::Path::new(&file).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Ok(json!({"statusCode": 200, "body": std::process::id().to_string()}))
        }
        "fail" => Err("handler failed on purpose".into()),
        "bare" => Ok(json!({"hello": "world"})),
        "say" => {
            let words = event["rawQueryString"].as_str().unwrap_or_default();
            println!("said {words}");
            eprintln!("said {words} (stderr)");
            Ok(json!({"statusCode": 204}))
        }
        "cookies" => Ok(json!({
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "x-one": "1"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2; Path=/"],
            "body": "made"
        })),
        "binary" => Ok(json!({
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "isBase64Encoded": true,
            "body": "AAH/"
        })),
        _ => {
            let env: serde_json::Map<String, Value> = std::env::vars()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = json!({
                "event": event,
                "env": env,
                "pid": std::process::id(),
                "requestId": ctx.request_id,
                "deadline": ctx.deadline,
                "functionArn": ctx.invoked_function_arn,
            });
            Ok(json!({
                "statusCode": 200,
                "headers": {"content-type": "application/json"},
                "body": body.to_string()
            }))
        }
    }
}

async fn consume(event: Value, sqs: &aws_sdk_sqs::Client) -> Result<Value, Error> {
    let observed = std::env::var("OBSERVED_QUEUE_URL")?;
    let mut failures = Vec::new();
    for r in event["Records"].as_array().cloned().unwrap_or_default() {
        sqs.send_message()
            .queue_url(&observed)
            .message_body(r.to_string())
            .send()
            .await?;
        if r["body"].as_str().unwrap_or_default().starts_with("fail") {
            failures.push(json!({"itemIdentifier": r["messageId"]}));
        }
    }
    Ok(json!({"batchItemFailures": failures}))
}
