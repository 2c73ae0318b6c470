//! Lambda's init limit applies only until a process first asks for an
//! event: an instance that asked long ago, whether warm or never invoked,
//! answers its events, and one that never asks fails at the limit.

use std::time::Duration;

mod echo;

use nuvem_local::{InvokeError, Runner};
use nuvem_testkit::{emulator, unique_name};
use serde_json::{Value, json};

/// A runner whose init limit is `limit`, its functions delaying their first
/// poll for an event by `init_delay`; start-up waits `ready` for that poll.
async fn runner(limit: Duration, init_delay: Duration, ready: Duration) -> Runner {
    let emu = emulator().await;
    let mut options = echo::options(&unique_name("init"), emu.endpoint());
    options.init_timeout = limit;
    options.ready_timeout = ready;
    options.schedules = false;
    options
        .params
        .insert("InitDelayMs".into(), init_delay.as_millis().to_string());
    Runner::start(options).await.expect("runner starts")
}

/// The echo's answer to a direct invocation: its process id.
async fn pid_of(r: &Runner, function: &str) -> Result<u64, InvokeError> {
    let answer = r.invoke(function, &json!({"rawPath": "/items/x"})).await?;
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    Ok(body["pid"].as_u64().unwrap())
}

#[tokio::test]
async fn instances_older_than_the_init_limit_answer_first_and_warm_events() {
    let limit = Duration::from_millis(300);
    // A generous wait for start-up: the processes must have asked.
    let r = runner(limit, Duration::ZERO, Duration::from_secs(120)).await;
    // Start-up returns once every process has asked for its first event, so
    // after twice the limit each instance is older than the limit.
    tokio::time::sleep(limit * 2).await;
    let first = pid_of(&r, "Echo")
        .await
        .expect("a never-invoked old instance answers");
    tokio::time::sleep(limit * 2).await;
    let warm = pid_of(&r, "Echo")
        .await
        .expect("a warm old instance answers");
    assert_eq!(
        first, warm,
        "the same instance served both: nothing restarted"
    );
    tokio::time::sleep(limit * 2).await;
    pid_of(&r, "Fragile")
        .await
        .expect("another function's instance, idle since start-up, answers");
}

#[tokio::test]
async fn an_event_waits_for_an_init_within_the_limit() {
    // The processes are still in their init when the runner returns (it waits
    // only briefly for them); the invocation waits for the first poll.
    // A limit far above the delay: only the wait for the first poll is tested.
    let r = runner(
        Duration::from_secs(120),
        Duration::from_millis(1500),
        Duration::ZERO,
    )
    .await;
    pid_of(&r, "Echo")
        .await
        .expect("answers once its init is done");
}

#[tokio::test]
async fn a_process_that_never_asks_for_an_event_fails_at_the_init_limit() {
    let limit = Duration::from_millis(500);
    // Far beyond the limit: the invocation must fail long before this.
    let r = runner(limit, Duration::from_secs(600), Duration::ZERO).await;
    match pid_of(&r, "Echo").await {
        Err(InvokeError::Crashed(why)) => assert!(why.contains("init did not finish"), "{why}"),
        other => panic!("expected an init timeout, got {other:?}"),
    }
}
