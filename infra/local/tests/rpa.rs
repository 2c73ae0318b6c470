//! End to end through the local stack, as an RPA team would run a month:
//! carrier and clients through the API, a `create_monthly_processes` and a
//! `run_downloads` schedule that come due, downloads by `rpa-worker`
//! against the fake RPA API on 127.0.0.1 (jobs and polls through delayed
//! SQS messages), a person's approval, the filing, and a webhook receiver
//! that sees each `rpa.process.status_changed` once.

mod common;

use common::{Api, admin_key, onboard};
use nuvem_aws::store::Store;
use nuvem_testkit::fake_rpa::{Behaviour, FakeRpa};
use nuvem_testkit::receiver::{Received, Receiver};
use nuvem_testkit::{emulator, eventually_some};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "token-do-rpa";

async fn call(api: &Api<'_>, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
    let (status, answer) = api.call(method.clone(), path, Some(key), body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

fn status_changes(receiver: &Receiver) -> Vec<Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.json()["type"] == "rpa.process.status_changed")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_month_runs_from_schedule_to_filing() {
    let rpa = FakeRpa::start(TOKEN).await;
    // Completed at the first poll: each step waits one poll delay.
    rpa.set_default(Behaviour::Succeed { polls: 0 });
    let runner = common::stack(
        "e2e-rpa",
        &[("WebhookAllowLoopback", "true"), ("RpaApiUrl", &rpa.url())],
    )
    .await;
    common::put_secret(&runner, "RpaApiSecret", json!({"token": TOKEN})).await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let (account, owner) = onboard(&api, &admin, "45.723.174/0001-10", "rpa@rapida.com.br").await;
    let approver = call(
        &api,
        Method::POST,
        "/v1/keys",
        &owner,
        Some(json!({"name": "Aprovação", "role": "approver", "expires_at": null})),
    )
    .await;
    let approver = approver["credential"].as_str().unwrap().to_owned();

    let receiver = Receiver::start().await;
    call(
        &api,
        Method::POST,
        "/v1/webhooks",
        &owner,
        Some(json!({
            "url": receiver.url("/rpa"),
            "event_types": ["rpa.process.status_changed"],
        })),
    )
    .await;

    call(
        &api,
        Method::POST,
        "/v1/rpa/carriers",
        &owner,
        Some(json!({"code": "VIVO", "name": "Vivo Empresas"})),
    )
    .await;
    for unit in ["Matriz", "Filial"] {
        call(
            &api,
            Method::POST,
            "/v1/rpa/clients",
            &owner,
            Some(json!({
                "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
                "carrier": "VIVO", "unit": unit, "portal_login": "financeiro",
                "portal_password": "s3nh@-do-portal", "sat_data": "ie 123"
            })),
        )
        .await;
    }
    let mut schedules = Vec::new();
    for (name, kind) in [
        ("Processos do mês", "create_monthly_processes"),
        ("Downloads", "run_downloads"),
    ] {
        let s = call(
            &api,
            Method::POST,
            "/v1/rpa/schedules",
            &owner,
            Some(json!({
                "name": name, "cron": "0 6 1 * *", "type": kind,
                "parameters": {"carriers": ["VIVO"]}
            })),
        )
        .await;
        schedules.push(s["id"].as_str().unwrap().to_owned());
    }
    let store = Store::new(
        &emulator().await.sdk_config().await,
        runner.stack().table("Table"),
    );
    common::due_now(&store, &account, &schedules[0], 2).await;
    common::due_now(&store, &account, &schedules[1], 1).await;
    let tick = runner.run_schedule("RpaScheduler", "Tick").await.unwrap();
    assert_eq!(tick["succeeded"], 2, "{tick}");

    // Both downloads complete and the processes await approval.
    let waiting = eventually_some("both invoices downloaded", || async {
        let page = call(
            &api,
            Method::GET,
            "/v1/rpa/processes?status=awaiting_approval",
            &owner,
            None,
        )
        .await;
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 2).then_some(items)
    })
    .await;
    let process = waiting[0]["id"].as_str().unwrap().to_owned();
    assert!(waiting[0]["invoice"]["access_key"].is_string());
    let link = call(
        &api,
        Method::GET,
        &format!("/v1/rpa/processes/{process}/invoice"),
        &owner,
        None,
    )
    .await;
    let pdf = Client::new()
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));

    call(
        &api,
        Method::POST,
        &format!("/v1/rpa/processes/{process}/approve"),
        &approver,
        None,
    )
    .await;
    call(
        &api,
        Method::POST,
        &format!("/v1/rpa/processes/{process}/tax-filing"),
        &owner,
        None,
    )
    .await;
    let filed = eventually_some("the filing", || async {
        let p = call(
            &api,
            Method::GET,
            &format!("/v1/rpa/processes/{process}"),
            &owner,
            None,
        )
        .await;
        (p["status"] == "filed").then_some(p)
    })
    .await;
    assert!(filed["filing_protocol"].is_string());

    // Each change reached the receiver once: two downloads, one approval,
    // one filing.
    let changes = eventually_some("four status changes delivered", || async {
        let got = status_changes(&receiver);
        (got.len() >= 4).then_some(got)
    })
    .await;
    let mut ids: Vec<&str> = changes
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), changes.len(), "an event delivered twice");
    let mut moves: Vec<String> = changes
        .iter()
        .map(|r| {
            let data = &r.json()["data"];
            format!(
                "{}>{}",
                data["from"].as_str().unwrap(),
                data["to"].as_str().unwrap()
            )
        })
        .collect();
    moves.sort();
    assert_eq!(
        moves,
        vec![
            "awaiting_approval>awaiting_tax_filing",
            "awaiting_download>awaiting_approval",
            "awaiting_download>awaiting_approval",
            "awaiting_tax_filing>filed",
        ]
    );
    let starts = rpa.starts();
    assert_eq!(starts.iter().filter(|s| s.is_download_start()).count(), 2);
    assert_eq!(starts.iter().filter(|s| s.is_filing_start()).count(), 1);
    let executions = call(
        &api,
        Method::GET,
        &format!("/v1/rpa/processes/{process}/executions"),
        &owner,
        None,
    )
    .await;
    let steps: Vec<&str> = executions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["tax_filing", "download_invoice"]);
    common::assert_no_secret_logged();
}
