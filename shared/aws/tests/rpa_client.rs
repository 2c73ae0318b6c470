//! `RpaClient` against the fake RPA API: each job state, log paging, the
//! token, each class of start failure (refused, unavailable, uncertain),
//! the invoice with and without the size cap, and amounts in cents. Jobs
//! move one step per status read, so nothing here waits on the clock; the
//! one timeout (a start that never answers) is the client's own.

use std::time::Duration;

use chrono::NaiveDate;
use nuvem_aws::rpa_api::{
    CallError, DownloadRequest, FailureKind, FilingRequest, JobId, JobKind, JobResult, JobState,
    LogLevel, PortalPassword, PresignedUrl, RpaApiConfig, RpaClient, RpaToken, StartError,
};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::nfcom::AccessKey;
use nuvem_testkit::fake_rpa::{self, Behaviour, FakeRpa, Match};
use serde_json::json;

const TOKEN: &str = "rpa-test-token";
const CNPJ: &str = "11444777000161";
const OTHER_CNPJ: &str = "11222333000181";
/// The invoices the tests accept.
const MAX_INVOICE: u64 = 20 * 1024 * 1024;

async fn setup() -> (FakeRpa, RpaClient, RpaToken) {
    let rpa = FakeRpa::start(TOKEN).await;
    let client = RpaClient::new(RpaApiConfig::new(&rpa.url()).unwrap());
    (rpa, client, RpaToken::new(TOKEN))
}

fn vivo() -> CarrierCode {
    CarrierCode::parse("VIVO").unwrap()
}

fn download(cnpj: &str) -> DownloadRequest {
    DownloadRequest {
        cnpj: cnpj.into(),
        legal_name: "Cliente Exemplo Ltda".into(),
        carrier: "VIVO".into(),
        filter: "CLIENTE EXEMPLO".into(),
        unit: "Matriz".into(),
        service: "Móvel".into(),
        portal_login: "financeiro@cliente.com.br".into(),
        portal_password: PortalPassword::new("senha-do-portal"),
        cpf: Some("52998224725".into()),
        month: Month::parse("2026-06").unwrap(),
        settings: json!({"perfil": "empresa", "tentativas_login": 2}),
    }
}

fn filing(cnpj: &str) -> FilingRequest {
    FilingRequest {
        cnpj: cnpj.into(),
        legal_name: "Cliente Exemplo Ltda".into(),
        carrier: "VIVO".into(),
        filter: "CLIENTE EXEMPLO".into(),
        unit: "Matriz".into(),
        service: "Móvel".into(),
        sat_data: "conta 4455".into(),
        file_name: "VIVO-2026-06.pdf".into(),
        due_date: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
        invoice_url: PresignedUrl::new(
            "https://invoices.s3.amazonaws.com/a/c/2026-06.pdf?X-Amz-Signature=abc",
        ),
    }
}

/// Reads the job's status until it is final (at most `max` reads); every
/// state seen.
async fn poll(
    client: &RpaClient,
    token: &RpaToken,
    id: &JobId,
    kind: JobKind,
    max: usize,
) -> Vec<JobState> {
    let mut states = Vec::new();
    for _ in 0..max {
        let state = client.job(token, id, kind).await.unwrap();
        let done = state.is_final();
        states.push(state);
        if done {
            break;
        }
    }
    states
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_download_is_queued_then_running_then_completed() {
    let (rpa, client, token) = setup().await;
    client.health().await.unwrap();
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();

    let starts = rpa.starts();
    assert_eq!(starts.len(), 1);
    let start = &starts[0];
    assert_eq!(start.path, "/rpa/executar/VIVO");
    assert_eq!(
        start.authorization.as_deref(),
        Some("Bearer rpa-test-token")
    );
    assert_eq!(start.status, Some(202));
    assert_eq!(
        start.body,
        json!({
            "cnpj": CNPJ, "razao": "Cliente Exemplo Ltda", "operadora": "VIVO",
            "nome_filtro": "CLIENTE EXEMPLO", "unidade": "Matriz", "servico": "Móvel",
            "login_portal": "financeiro@cliente.com.br", "senha_portal": "senha-do-portal",
            "cpf": "52998224725", "mes_ano": "06/2026",
            "configuracao": {"perfil": "empresa", "tentativas_login": 2}
        })
    );

    let states = poll(&client, &token, &id, JobKind::Download, 10).await;
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(states[0], JobState::Queued);
    assert_eq!(states[1], JobState::Running);
    let JobState::Completed(JobResult::Download {
        invoice_url,
        due_date,
        amount_cents,
        access_key,
    }) = &states[2]
    else {
        panic!("{:?}", states[2])
    };
    assert_eq!(*invoice_url, format!("{}/faturas/{id}.pdf", rpa.url()));
    assert_eq!(*due_date, NaiveDate::from_ymd_opt(2026, 7, 10).unwrap());
    assert_eq!(*amount_cents, 123_456);
    let key = AccessKey::parse(access_key.as_deref().unwrap()).unwrap();
    assert_eq!(key.cnpj(), fake_rpa::ISSUER_CNPJ);
    assert_eq!(key.year_month(), (2026, 6));

    // A final state stays as it is.
    assert_eq!(
        client.job(&token, &id, JobKind::Download).await.unwrap(),
        states[2]
    );
    let reads: Vec<_> = rpa
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/rpa/jobs/{id}"))
        .collect();
    assert_eq!(reads.len(), 4);
    assert!(
        reads
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer rpa-test-token"))
    );
}

#[tokio::test]
async fn a_filing_completes_with_a_protocol_and_is_sent_once() {
    let (rpa, client, token) = setup().await;
    rpa.script(
        Match::Filing {
            cnpj: Some(CNPJ.into()),
        },
        Behaviour::SucceedWith {
            polls: 1,
            result: json!({"protocol": "2026.000123-4"}),
        },
    );
    let id = client.start_filing(&token, &filing(CNPJ)).await.unwrap();
    let states = poll(&client, &token, &id, JobKind::Filing, 10).await;
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Completed(JobResult::Filing {
                protocol: "2026.000123-4".into()
            })
        ]
    );
    let filings: Vec<_> = rpa
        .requests()
        .into_iter()
        .filter(|r| r.is_filing_start())
        .collect();
    assert_eq!(filings.len(), 1, "one filing sent");
    assert_eq!(
        filings[0].body,
        json!({
            "cnpj": CNPJ, "razao": "Cliente Exemplo Ltda", "operadora": "VIVO",
            "nome_filtro": "CLIENTE EXEMPLO", "unidade": "Matriz", "servico": "Móvel",
            "dados_sat": "conta 4455", "nome_arquivo": "VIVO-2026-06.pdf",
            "data_vencimento": "2026-07-10",
            "url_fatura": "https://invoices.s3.amazonaws.com/a/c/2026-06.pdf?X-Amz-Signature=abc"
        })
    );
    assert_eq!(rpa.job(id.as_str()).unwrap().kind, JobKind::Filing);
}

#[tokio::test]
async fn failures_say_whether_they_are_business_or_technical() {
    let (rpa, client, token) = setup().await;
    rpa.script(
        Match::Download {
            carrier: Some("VIVO".into()),
            cnpj: Some(CNPJ.into()),
        },
        Behaviour::FailBusiness {
            polls: 1,
            message: "senha incorreta no portal".into(),
        },
    );
    rpa.script(
        Match::Download {
            carrier: None,
            cnpj: Some(OTHER_CNPJ.into()),
        },
        Behaviour::FailTechnical {
            polls: 0,
            message: "o portal não carregou".into(),
        },
    );
    let business = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    let technical = client
        .start_download(&token, &vivo(), &download(OTHER_CNPJ))
        .await
        .unwrap();
    let states = poll(&client, &token, &business, JobKind::Download, 10).await;
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Failed {
                kind: FailureKind::Business,
                message: "senha incorreta no portal".into()
            }
        ]
    );
    let states = poll(&client, &token, &technical, JobKind::Download, 10).await;
    assert_eq!(
        states,
        [JobState::Failed {
            kind: FailureKind::Technical,
            message: "o portal não carregou".into()
        }]
    );
    // The failure is the last log line.
    let page = client.logs(&token, &business, 0).await.unwrap();
    let last = page.lines.last().unwrap();
    assert_eq!(
        (last.level, last.message.as_str()),
        (LogLevel::Error, "senha incorreta no portal")
    );
}

#[tokio::test]
async fn a_hanging_job_keeps_running_and_logging() {
    let (rpa, client, token) = setup().await;
    rpa.script_once(Match::Any, Behaviour::Hang);
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    let states = poll(&client, &token, &id, JobKind::Download, 6).await;
    assert_eq!(states.len(), 6);
    assert_eq!(states[0], JobState::Queued);
    assert!(states[1..].iter().all(|s| *s == JobState::Running));
    let page = client.logs(&token, &id, 0).await.unwrap();
    // The start's line and one per poll (a warning every fifth).
    let infos = page
        .lines
        .iter()
        .filter(|l| l.level == LogLevel::Info)
        .count();
    assert_eq!(infos, 1 + 6, "{page:?}");
    assert_eq!(page.next, page.lines.last().unwrap().seq);

    // The script entry was used once: the next job succeeds.
    let next = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    let states = poll(&client, &token, &next, JobKind::Download, 10).await;
    assert!(matches!(states.last(), Some(JobState::Completed(_))));
}

#[tokio::test]
async fn logs_are_read_page_by_page_after_a_cursor() {
    let (rpa, client, token) = setup().await;
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    for n in 0..449 {
        assert!(rpa.log(id.as_str(), "info", &format!("passo {n}")));
    }
    // 450 lines with the start's: 200, 200, 50, then none.
    let mut after = 0;
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = client.logs(&token, &id, after).await.unwrap();
        sizes.push(page.lines.len());
        if page.lines.is_empty() {
            assert_eq!(page.next, after, "no new lines: the cursor stays");
            break;
        }
        seen.extend(page.lines.iter().map(|l| l.seq));
        after = page.next;
    }
    assert_eq!(sizes, [200, 200, 50, 0]);
    assert_eq!(seen, (1..=450).collect::<Vec<u64>>());
    let query: Vec<_> = rpa
        .requests()
        .into_iter()
        .filter_map(|r| r.path.ends_with("/logs").then_some(r.query))
        .collect();
    assert_eq!(
        query,
        [
            Some("after=0".to_owned()),
            Some("after=200".to_owned()),
            Some("after=400".to_owned()),
            Some("after=450".to_owned())
        ]
    );

    // New lines after the last read.
    rpa.log(id.as_str(), "warning", "mais um");
    let page = client.logs(&token, &id, after).await.unwrap();
    assert_eq!(page.lines.len(), 1);
    assert_eq!(page.lines[0].seq, 451);
    assert_eq!(page.lines[0].level, LogLevel::Warning);
    assert_eq!(page.next, 451);
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let (rpa, client, token) = setup().await;
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    let wrong = RpaToken::new("not-the-token");
    let refused = client
        .start_download(&wrong, &vivo(), &download(CNPJ))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        StartError::Refused {
            status: 401,
            detail: "Invalid token".into()
        }
    );
    assert!(!refused.may_have_started());
    assert!(!refused.to_string().contains("not-the-token"));
    let refused = client
        .start_filing(&wrong, &filing(CNPJ))
        .await
        .unwrap_err();
    assert!(matches!(refused, StartError::Refused { status: 401, .. }));
    assert_eq!(rpa.jobs().len(), 1, "nothing started with a wrong token");

    assert_eq!(
        client.job(&wrong, &id, JobKind::Download).await,
        Err(CallError::Unauthorized)
    );
    assert_eq!(
        client.logs(&wrong, &id, 0).await,
        Err(CallError::Unauthorized)
    );
    assert_eq!(
        client.job(&RpaToken::new(""), &id, JobKind::Download).await,
        Err(CallError::Unauthorized)
    );
    // The job did not move on a refused read.
    assert_eq!(rpa.job(id.as_str()).unwrap().polls, 0);
    // No token is needed for health.
    client.health().await.unwrap();
}

#[tokio::test]
async fn an_unknown_job_is_not_found() {
    let (_rpa, client, token) = setup().await;
    let unknown = JobId::parse("job-que-nao-existe").unwrap();
    assert_eq!(
        client.job(&token, &unknown, JobKind::Download).await,
        Err(CallError::NotFound)
    );
    assert_eq!(
        client.logs(&token, &unknown, 0).await,
        Err(CallError::NotFound)
    );
}

#[tokio::test]
async fn a_refused_start_started_nothing_and_is_not_retryable() {
    let (rpa, client, token) = setup().await;
    rpa.script_once(Match::Any, Behaviour::RefuseStart { status: 422 });
    rpa.script_once(Match::Any, Behaviour::RefuseStart { status: 409 });
    let first = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap_err();
    assert_eq!(
        first,
        StartError::Refused {
            status: 422,
            detail: "dados do cliente recusados".into()
        }
    );
    let second = client
        .start_filing(&token, &filing(CNPJ))
        .await
        .unwrap_err();
    assert!(matches!(second, StartError::Refused { status: 409, .. }));
    assert!(rpa.jobs().is_empty());
}

#[tokio::test]
async fn throttled_or_unavailable_starts_are_known_not_started() {
    let (rpa, client, token) = setup().await;
    for status in [429, 503, 502, 408] {
        rpa.script_once(Match::Any, Behaviour::RefuseStart { status });
        let e = client
            .start_filing(&token, &filing(CNPJ))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StartError::Unavailable { .. }),
            "{status}: {e:?}"
        );
        assert!(!e.may_have_started());
    }
    assert!(rpa.jobs().is_empty());

    // Nothing listening: the request was never sent.
    let closed = format!("http://127.0.0.1:{}/rpa", closed_port().await);
    let offline = RpaClient::new(RpaApiConfig::new(&closed).unwrap());
    let e = offline
        .start_filing(&token, &filing(CNPJ))
        .await
        .unwrap_err();
    assert!(matches!(e, StartError::Unavailable { .. }), "{e:?}");
    let id = JobId::parse("j-1").unwrap();
    assert!(matches!(
        offline.job(&token, &id, JobKind::Filing).await,
        Err(CallError::Unavailable { .. })
    ));
    assert!(matches!(
        offline.health().await,
        Err(CallError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_server_error_or_a_dropped_connection_leaves_the_start_uncertain() {
    let (rpa, client, token) = setup().await;
    rpa.script_once(Match::Any, Behaviour::RefuseStart { status: 500 });
    let e = client
        .start_filing(&token, &filing(CNPJ))
        .await
        .unwrap_err();
    assert!(e.may_have_started(), "{e:?}");

    rpa.script_once(
        Match::Filing {
            cnpj: Some(CNPJ.into()),
        },
        Behaviour::DropStart,
    );
    let e = client
        .start_filing(&token, &filing(CNPJ))
        .await
        .unwrap_err();
    let StartError::Uncertain { reason } = &e else {
        panic!("{e:?}")
    };
    assert!(reason.starts_with("no answer: "), "{reason}");
    // And indeed the filing is under way at the RPA: sending it again would
    // file twice.
    let jobs = rpa.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::Filing);
    let starts = rpa.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1].status, None, "never answered");
}

#[tokio::test]
async fn a_start_answered_after_the_timeout_is_uncertain() {
    let rpa = FakeRpa::start(TOKEN).await;
    let mut config = RpaApiConfig::new(&rpa.url()).unwrap();
    // Long enough that even a starved machine has sent the request by then
    // (the fake never answers it, so this is all the test waits).
    config.timeout = Duration::from_secs(2);
    let client = RpaClient::new(config);
    let token = RpaToken::new(TOKEN);
    rpa.script_once(Match::Any, Behaviour::SlowStart);
    let e = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StartError::Uncertain {
            reason: "timed out".into()
        }
    );
    assert_eq!(rpa.jobs().len(), 1, "the job started all the same");
    // The client still works for the next call.
    client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_invoice_is_fetched_within_the_size_cap() {
    let (rpa, client, token) = setup().await;
    rpa.script_once(Match::Any, Behaviour::Succeed { polls: 0 });
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    let Ok(JobState::Completed(JobResult::Download { invoice_url, .. })) =
        client.job(&token, &id, JobKind::Download).await
    else {
        panic!()
    };
    let pdf = client
        .fetch_invoice(&invoice_url, MAX_INVOICE)
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let fetch = rpa.requests().pop().unwrap();
    assert_eq!(fetch.path, format!("/rpa/faturas/{id}.pdf"));
    assert_eq!(fetch.authorization, None, "the token stays with the API");

    assert_eq!(
        client.fetch_invoice(&invoice_url, 100).await,
        Err(CallError::TooLarge { limit: 100 })
    );
    let exact = pdf.len() as u64;
    assert_eq!(
        client.fetch_invoice(&invoice_url, exact).await.unwrap(),
        pdf
    );
    assert_eq!(
        client.fetch_invoice(&invoice_url, exact - 1).await,
        Err(CallError::TooLarge { limit: exact - 1 })
    );

    let big = vec![b'x'; 3 * 1024 * 1024];
    rpa.put_invoice(id.as_str(), big.clone());
    assert_eq!(
        client
            .fetch_invoice(&invoice_url, MAX_INVOICE)
            .await
            .unwrap(),
        big
    );
    assert_eq!(
        client.fetch_invoice(&invoice_url, 1024 * 1024).await,
        Err(CallError::TooLarge { limit: 1024 * 1024 })
    );

    let missing = format!("{}/faturas/nenhum.pdf", rpa.url());
    assert_eq!(
        client.fetch_invoice(&missing, MAX_INVOICE).await,
        Err(CallError::NotFound)
    );
    assert!(matches!(
        client
            .fetch_invoice("file:///etc/passwd", MAX_INVOICE)
            .await,
        Err(CallError::Invalid(_))
    ));
}

#[tokio::test]
async fn amounts_are_rounded_to_the_cent_and_negative_ones_refused() {
    let (rpa, client, token) = setup().await;
    let cases = [
        (json!(10.005), Ok(1001)),
        (json!(0.29), Ok(29)),
        (json!(99.999), Ok(10_000)),
        (json!(150), Ok(15_000)),
        (json!(1234.5), Ok(123_450)),
        (json!(-0.01), Err(())),
        (json!("1234.56"), Err(())),
    ];
    for (amount, expected) in cases {
        rpa.script_once(
            Match::Any,
            Behaviour::SucceedWith {
                polls: 0,
                result: json!({ "amount": amount, "access_key": null }),
            },
        );
        let id = client
            .start_download(&token, &vivo(), &download(CNPJ))
            .await
            .unwrap();
        let got = match client.job(&token, &id, JobKind::Download).await {
            Ok(JobState::Completed(JobResult::Download {
                amount_cents,
                access_key,
                ..
            })) => {
                assert_eq!(access_key, None);
                Ok(amount_cents)
            }
            Err(CallError::Invalid(why)) => {
                assert!(why.contains("amount"), "{why}");
                Err(())
            }
            other => panic!("{amount}: {other:?}"),
        };
        assert_eq!(got, expected, "{amount}");
    }
}

#[tokio::test]
async fn reads_during_an_outage_are_unavailable_then_resume() {
    let (rpa, client, token) = setup().await;
    let id = client
        .start_download(&token, &vivo(), &download(CNPJ))
        .await
        .unwrap();
    rpa.fail_reads([503, 429]);
    assert!(matches!(
        client.job(&token, &id, JobKind::Download).await,
        Err(CallError::Unavailable { .. })
    ));
    assert!(matches!(
        client.logs(&token, &id, 0).await,
        Err(CallError::Unavailable { .. })
    ));
    assert_eq!(
        client.job(&token, &id, JobKind::Download).await,
        Ok(JobState::Queued),
        "an outage does not move the job"
    );
}

#[tokio::test]
async fn the_make_dev_script_fails_or_hangs_by_marker() {
    let (rpa, client, token) = setup().await;
    rpa.dev_script();
    let start = |filter: &str, service: &str| {
        let mut request = download(CNPJ);
        request.filter = filter.into();
        request.service = service.into();
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .start_download(&token, &vivo(), &request)
                .await
                .unwrap()
        }
    };
    let ok = start("CLIENTE", "Móvel").await;
    let business = start("CLIENTE [falha-negocio]", "Móvel").await;
    let technical = start("CLIENTE", "Fixo [falha-tecnica]").await;
    let hang = start("CLIENTE [trava]", "Móvel").await;

    let states = poll(&client, &token, &ok, JobKind::Download, 10).await;
    assert_eq!(states.len(), 3);
    assert!(matches!(states[2], JobState::Completed(_)));
    let states = poll(&client, &token, &business, JobKind::Download, 10).await;
    assert_eq!(
        states[2],
        JobState::Failed {
            kind: FailureKind::Business,
            message: fake_rpa::DEV_BUSINESS_MESSAGE.into()
        }
    );
    let states = poll(&client, &token, &technical, JobKind::Download, 10).await;
    assert!(matches!(
        states[2],
        JobState::Failed {
            kind: FailureKind::Technical,
            ..
        }
    ));
    let states = poll(&client, &token, &hang, JobKind::Download, 10).await;
    assert_eq!(states.len(), 10);
    assert_eq!(states[9], JobState::Running);

    // Filings follow the same markers.
    let mut request = filing(CNPJ);
    request.filter = "CLIENTE [falha-negocio]".into();
    let id = client.start_filing(&token, &request).await.unwrap();
    let states = poll(&client, &token, &id, JobKind::Filing, 10).await;
    assert!(matches!(
        states.last(),
        Some(JobState::Failed {
            kind: FailureKind::Business,
            ..
        })
    ));
}
