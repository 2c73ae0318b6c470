//! A fake of the RPA API on 127.0.0.1, with the contract
//! [`nuvem_aws::rpa_api`] describes, under a base such as
//! `http://127.0.0.1:<port>/rpa`.
//!
//! It checks `Authorization: Bearer <token>` on every call but `health` and
//! the invoice files (a missing or wrong token is `401 {"detail"}` and
//! changes nothing), checks each start's body (a missing field or a bad
//! `mes_ano`/`data_vencimento` is `422 {"detail"}`), records every request,
//! and runs each started job by a [`Behaviour`] chosen from a script by
//! matching the start request ([`Match`]).
//!
//! A job moves only when its status is read, never with the clock, so a
//! test on a slow machine sees exactly the same answers: with
//! `polls: n`, the first `GET /jobs/{id}` answers `queued`, the next ones
//! up to the `n`-th `running`, and the `n + 1`-th and later the outcome.
//! Each of those reads writes one log line (and the start writes one).
//!
//! ```ignore
//! let rpa = FakeRpa::start("token").await;
//! rpa.script(
//!     Match::Download { carrier: Some("VIVO".into()), cnpj: None },
//!     Behaviour::FailBusiness { polls: 1, message: "senha incorreta no portal".into() },
//! );
//! rpa.script_once(Match::Filing { cnpj: None }, Behaviour::DropStart);
//! // point the client at rpa.url()
//! ```
//!
//! A completed download's result names `{url}/faturas/{job_id}.pdf`, which
//! serves a small valid PDF ([`invoice_pdf`]), due on the 10th of the month
//! after `mes_ano`, for [`DEFAULT_AMOUNT`] BRL, with a valid NFCom access
//! key issued by [`ISSUER_CNPJ`] in the invoice's month
//! ([`nfcom_access_key`]). [`Behaviour::SucceedWith`] changes any of these.
//!
//! `make dev` serves it with [`FakeRpa::dev_script`]: jobs whose
//! `nome_filtro` or `servico` holds `[falha-negocio]`, `[falha-tecnica]` or
//! `[trava]` fail or hang, everything else succeeds after two polls.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use chrono::{Datelike, NaiveDate, Utc};
use nuvem_aws::rpa_api::JobKind;
use nuvem_domain::rpa::nfcom::AccessKey;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The path prefix [`FakeRpa::url`] ends with: the client must keep a base
/// URL's path.
pub const BASE_PATH: &str = "/rpa";
/// Requests and jobs kept for inspection: a `make dev` stack runs for
/// hours, so the oldest are dropped past this.
const KEPT: usize = 10_000;
/// Log lines kept per job (a hanging job logs on every poll).
const KEPT_LINES: usize = 5_000;
/// The most lines one `logs` answer holds, as the contract says.
const PAGE_LINES: usize = 200;

/// Polls before the outcome when the script does not say (and for the jobs
/// of [`Behaviour::DropStart`] and [`Behaviour::SlowStart`]).
pub const DEFAULT_POLLS: u32 = 2;
/// A completed download's amount, in BRL.
pub const DEFAULT_AMOUNT: f64 = 1234.56;
/// The issuer (carrier) CNPJ of the access keys the fake makes up.
pub const ISSUER_CNPJ: &str = "11222333000181";

/// The `make dev` markers (in `nome_filtro` or `servico`) and what they do.
pub const MARK_BUSINESS_FAILURE: &str = "[falha-negocio]";
pub const MARK_TECHNICAL_FAILURE: &str = "[falha-tecnica]";
pub const MARK_HANG: &str = "[trava]";
/// The messages of the `make dev` failures.
pub const DEV_BUSINESS_MESSAGE: &str = "senha incorreta no portal";
pub const DEV_TECHNICAL_MESSAGE: &str = "o portal da operadora não respondeu em 60 s";

/// Which start requests a script entry applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Any,
    /// A download, of this carrier (the code in the path) and for this
    /// client CNPJ when given.
    Download {
        carrier: Option<String>,
        cnpj: Option<String>,
    },
    /// A filing, for this client CNPJ when given.
    Filing {
        cnpj: Option<String>,
    },
    /// A start whose `nome_filtro` or `servico` contains this text (case
    /// ignored).
    Marker(String),
}

impl Match {
    fn matches(&self, kind: JobKind, carrier: &str, body: &Value) -> bool {
        let cnpj_is = |cnpj: &Option<String>| {
            cnpj.as_deref()
                .is_none_or(|c| body["cnpj"].as_str() == Some(c))
        };
        match self {
            Match::Any => true,
            Match::Download {
                carrier: wanted,
                cnpj,
            } => {
                kind == JobKind::Download
                    && wanted.as_deref().is_none_or(|c| c == carrier)
                    && cnpj_is(cnpj)
            }
            Match::Filing { cnpj } => kind == JobKind::Filing && cnpj_is(cnpj),
            Match::Marker(text) => {
                let text = text.to_lowercase();
                ["nome_filtro", "servico"].iter().any(|field| {
                    body[*field]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&text))
                })
            }
        }
    }
}

/// What a started job does (or how its start is answered).
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Queued on the first poll, running up to the `polls`-th, completed
    /// from the next one on (with `polls: 0`, completed at once).
    Succeed { polls: u32 },
    /// As `Succeed`, with these fields of `result` in place of the default
    /// ones (`{"amount": 10.005}`, `{"access_key": null}`,
    /// `{"protocol": "…"}`).
    SucceedWith { polls: u32, result: Value },
    /// As `Succeed`, then `failed` with `error_type: business`.
    FailBusiness { polls: u32, message: String },
    /// As `Succeed`, then `failed` with `error_type: technical`.
    FailTechnical { polls: u32, message: String },
    /// Queued, then running forever, logging a line per poll.
    Hang,
    /// The start is answered `status` with `{"detail"}`; no job is started.
    RefuseStart { status: u16 },
    /// The job is started, then the connection is closed without an answer
    /// (the client cannot know whether it started). The job then succeeds
    /// after [`DEFAULT_POLLS`] polls.
    DropStart,
    /// The job is started and the answer never comes: the client's timeout
    /// ends the call. The job then succeeds after [`DEFAULT_POLLS`] polls.
    SlowStart,
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RpaRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The parsed JSON body (`Null` when there is none or it is not JSON).
    pub body: Value,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// The status answered; `None` when the connection was dropped or the
    /// answer never came.
    pub status: Option<u16>,
}

impl RpaRequest {
    /// A `POST …/executar/{code}` other than `sat`.
    pub fn is_download_start(&self) -> bool {
        self.method == "POST"
            && self
                .path
                .strip_prefix(&format!("{BASE_PATH}/executar/"))
                .is_some_and(|code| code != "sat")
    }

    /// A `POST …/executar/sat`.
    pub fn is_filing_start(&self) -> bool {
        self.method == "POST" && self.path == format!("{BASE_PATH}/executar/sat")
    }
}

/// A job as the fake runs it.
#[derive(Debug, Clone)]
pub struct FakeJob {
    pub id: String,
    pub kind: JobKind,
    /// The code in the path (`sat` for filings).
    pub carrier: String,
    /// The start request's body.
    pub request: Value,
    pub behaviour: Behaviour,
    /// Status reads so far.
    pub polls: u32,
    /// `queued`, `running`, `completed` or `failed`, as last answered
    /// (`queued` before the first read).
    pub status: String,
}

#[derive(Debug, Clone)]
struct Line {
    seq: u64,
    at: String,
    level: &'static str,
    message: String,
}

#[derive(Debug)]
struct Job {
    public: FakeJob,
    number: u64,
    /// The last answer once the job completed or failed.
    outcome: Option<Value>,
    lines: VecDeque<Line>,
    last_seq: u64,
    invoice: Option<Vec<u8>>,
}

impl Job {
    fn log(&mut self, level: &'static str, message: String) {
        self.last_seq += 1;
        self.lines.push_back(Line {
            seq: self.last_seq,
            at: Utc::now().to_rfc3339(),
            level,
            message,
        });
        if self.lines.len() > KEPT_LINES {
            self.lines.pop_front();
        }
    }
}

struct FakeState {
    base: String,
    token: String,
    /// Used once each, oldest first, before `rules`.
    once: VecDeque<(Match, Behaviour)>,
    /// The newest first matching applies.
    rules: Vec<(Match, Behaviour)>,
    default: Behaviour,
    jobs: HashMap<String, Job>,
    job_order: VecDeque<String>,
    requests: VecDeque<RpaRequest>,
    started: u64,
    id_prefix: String,
    read_failures: VecDeque<u16>,
}

impl FakeState {
    fn behaviour_for(&mut self, kind: JobKind, carrier: &str, body: &Value) -> Behaviour {
        if let Some(at) = self
            .once
            .iter()
            .position(|(m, _)| m.matches(kind, carrier, body))
            && let Some((_, behaviour)) = self.once.remove(at)
        {
            return behaviour;
        }
        self.rules
            .iter()
            .rev()
            .find(|(m, _)| m.matches(kind, carrier, body))
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    fn create_job(&mut self, kind: JobKind, carrier: &str, body: Value, b: Behaviour) -> String {
        self.started += 1;
        let id = format!("{}-{}", self.id_prefix, self.started);
        let mut job = Job {
            public: FakeJob {
                id: id.clone(),
                kind,
                carrier: carrier.to_owned(),
                request: body,
                behaviour: b,
                polls: 0,
                status: "queued".into(),
            },
            number: self.started,
            outcome: None,
            lines: VecDeque::new(),
            last_seq: 0,
            invoice: None,
        };
        let what = match kind {
            JobKind::Download => format!("download da fatura ({carrier})"),
            JobKind::Filing => "envio ao SAT".to_owned(),
        };
        job.log("info", format!("Job {id} recebido: {what}"));
        self.jobs.insert(id.clone(), job);
        self.job_order.push_back(id.clone());
        if self.job_order.len() > KEPT
            && let Some(oldest) = self.job_order.pop_front()
        {
            self.jobs.remove(&oldest);
        }
        id
    }

    fn record(&mut self, request: RpaRequest) {
        self.requests.push_back(request);
        if self.requests.len() > KEPT {
            self.requests.pop_front();
        }
    }
}

/// The start's `mes_ano` as (year, month).
fn month_of(body: &Value) -> Option<(i32, u32)> {
    let text = body["mes_ano"].as_str()?;
    let (month, year) = text.split_once('/')?;
    let shaped = month.len() == 2
        && year.len() == 4
        && month
            .bytes()
            .chain(year.bytes())
            .all(|b| b.is_ascii_digit());
    let (month, year): (u32, i32) = (month.parse().ok()?, year.parse().ok()?);
    (shaped && (1..=12).contains(&month)).then_some((year, month))
}

/// A date as `YYYY-MM-DD`, exactly.
fn is_date(text: &str) -> bool {
    text.len() == 10 && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// Why a start's body is not as the contract says.
fn check_start(kind: JobKind, body: &Value) -> Result<(), String> {
    if !body.is_object() {
        return Err("o corpo deve ser um objeto JSON".into());
    }
    let common = [
        "cnpj",
        "razao",
        "operadora",
        "nome_filtro",
        "unidade",
        "servico",
    ];
    let own: &[&str] = match kind {
        JobKind::Download => &["login_portal", "senha_portal"],
        JobKind::Filing => &["dados_sat", "nome_arquivo"],
    };
    for field in common.iter().chain(own) {
        if !body[*field].is_string() {
            return Err(format!("campo {field}: texto obrigatório"));
        }
    }
    match kind {
        JobKind::Download => {
            if !(body["cpf"].is_null() || body["cpf"].is_string()) {
                return Err("campo cpf: texto ou null".into());
            }
            if month_of(body).is_none() {
                return Err("campo mes_ano: deve ser MM/AAAA".into());
            }
            if !body["configuracao"].is_object() {
                return Err("campo configuracao: objeto obrigatório".into());
            }
        }
        JobKind::Filing => {
            if !body["data_vencimento"].as_str().is_some_and(is_date) {
                return Err("campo data_vencimento: deve ser AAAA-MM-DD".into());
            }
            let url = body["url_fatura"].as_str().unwrap_or("");
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err("campo url_fatura: URL http(s) obrigatória".into());
            }
        }
    }
    Ok(())
}

/// A valid NFCom access key: issued in São Paulo (35) by `issuer_cnpj` in
/// `year`/`month`, series 1, invoice `number` (mod 10⁹), normal emission,
/// with a random code derived from the number and the check digit that
/// [`AccessKey::parse`] accepts. `None` when `issuer_cnpj` is not a valid
/// CNPJ or the month is not 1–12.
pub fn nfcom_access_key(issuer_cnpj: &str, year: i32, month: u32, number: u64) -> Option<String> {
    let number = number % 1_000_000_000;
    let code = (number * 7919 + 1_234_567) % 10_000_000;
    let first_43 = format!(
        "35{:02}{month:02}{issuer_cnpj}62001{number:09}10{code:07}",
        year.rem_euclid(100)
    );
    (first_43.len() == 43)
        .then(|| {
            (0..=9)
                .map(|digit| format!("{first_43}{digit}"))
                .find(|key| AccessKey::parse(key).is_ok())
        })
        .flatten()
}

/// A small, well-formed one-page PDF showing `title` (in Helvetica, with
/// the cross-reference table at the right offsets).
pub fn invoice_pdf(title: &str) -> Vec<u8> {
    let text: String = title
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '(' | ')' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    let content = format!("BT /F1 18 Tf 72 770 Td ({text}) Tj ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        table.push_str(&format!("{offset:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.extend_from_slice(table.as_bytes());
    pdf
}

/// A fake RPA API; clones share it.
#[derive(Clone)]
pub struct FakeRpa {
    base: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeRpa {
    /// Starts on an ephemeral port of 127.0.0.1, accepting `token`; it runs
    /// until the runtime ends. Every job succeeds after [`DEFAULT_POLLS`]
    /// polls until scripted otherwise.
    pub async fn start(token: &str) -> FakeRpa {
        FakeRpa::start_on("127.0.0.1:0", token)
            .await
            .expect("bind a local port")
    }

    /// Starts on `addr` (`make dev` serves it on a fixed local port).
    pub async fn start_on(addr: &str, token: &str) -> std::io::Result<FakeRpa> {
        let listener = KillableListener(tokio::net::TcpListener::bind(addr).await?);
        let local = listener.0.local_addr()?;
        let base = format!("http://{local}{BASE_PATH}");
        // Job ids differ between runs, so a job id kept from an earlier
        // `make dev` is unknown here rather than someone else's job.
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let state = Arc::new(Mutex::new(FakeState {
            base: base.clone(),
            token: token.to_owned(),
            once: VecDeque::new(),
            rules: Vec::new(),
            default: Behaviour::Succeed {
                polls: DEFAULT_POLLS,
            },
            jobs: HashMap::new(),
            job_order: VecDeque::new(),
            requests: VecDeque::new(),
            started: 0,
            id_prefix: format!("job-{started_ms:x}"),
            read_failures: VecDeque::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone())
            .into_make_service_with_connect_info::<Connection>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeRpa { base, state })
    }

    /// The base URL, `http://127.0.0.1:<port>/rpa`.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every start matching `matcher` gets `behaviour` (the newest matching
    /// entry wins; [`FakeRpa::script_once`] entries come first).
    pub fn script(&self, matcher: Match, behaviour: Behaviour) {
        self.lock().rules.push((matcher, behaviour));
    }

    /// The next start matching `matcher` gets `behaviour`; later ones go on
    /// to the other entries.
    pub fn script_once(&self, matcher: Match, behaviour: Behaviour) {
        self.lock().once.push_back((matcher, behaviour));
    }

    /// What unmatched starts get ([`Behaviour::Succeed`] after
    /// [`DEFAULT_POLLS`] unless set).
    pub fn set_default(&self, behaviour: Behaviour) {
        self.lock().default = behaviour;
    }

    /// Forgets the script (the default stays).
    pub fn clear_script(&self) {
        let mut state = self.lock();
        state.once.clear();
        state.rules.clear();
    }

    /// The `make dev` script: `[falha-negocio]` in `nome_filtro` or
    /// `servico` fails as a business error ("senha incorreta no portal"),
    /// `[falha-tecnica]` as a technical one, `[trava]` hangs; everything else
    /// succeeds after [`DEFAULT_POLLS`] polls.
    pub fn dev_script(&self) {
        self.script(
            Match::Marker(MARK_BUSINESS_FAILURE.into()),
            Behaviour::FailBusiness {
                polls: DEFAULT_POLLS,
                message: DEV_BUSINESS_MESSAGE.into(),
            },
        );
        self.script(
            Match::Marker(MARK_TECHNICAL_FAILURE.into()),
            Behaviour::FailTechnical {
                polls: DEFAULT_POLLS,
                message: DEV_TECHNICAL_MESSAGE.into(),
            },
        );
        self.script(Match::Marker(MARK_HANG.into()), Behaviour::Hang);
        self.set_default(Behaviour::Succeed {
            polls: DEFAULT_POLLS,
        });
    }

    /// The next status or log reads (authorised ones) are answered with
    /// these statuses, one each, as an outage would.
    pub fn fail_reads(&self, statuses: impl IntoIterator<Item = u16>) {
        self.lock().read_failures.extend(statuses);
    }

    /// Adds a log line to a job (`info`, `warning` or `error`); false when
    /// the job is unknown.
    pub fn log(&self, job_id: &str, level: &'static str, message: &str) -> bool {
        match self.lock().jobs.get_mut(job_id) {
            Some(job) => {
                job.log(level, message.to_owned());
                true
            }
            None => false,
        }
    }

    /// Serves `bytes` at the job's invoice URL (from now on, whatever the
    /// job's state); false when the job is unknown.
    pub fn put_invoice(&self, job_id: &str, bytes: Vec<u8>) -> bool {
        match self.lock().jobs.get_mut(job_id) {
            Some(job) => {
                job.invoice = Some(bytes);
                true
            }
            None => false,
        }
    }

    /// The requests received (the last 10,000), oldest first.
    pub fn requests(&self) -> Vec<RpaRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The start requests (downloads and filings) received.
    pub fn starts(&self) -> Vec<RpaRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_download_start() || r.is_filing_start())
            .collect()
    }

    /// The jobs started (the last 10,000), oldest first.
    pub fn jobs(&self) -> Vec<FakeJob> {
        let state = self.lock();
        state
            .job_order
            .iter()
            .filter_map(|id| state.jobs.get(id))
            .map(|job| job.public.clone())
            .collect()
    }

    pub fn job(&self, job_id: &str) -> Option<FakeJob> {
        self.lock().jobs.get(job_id).map(|job| job.public.clone())
    }
}

fn json_answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn detail(status: u16, text: &str) -> (u16, Value) {
    (status, json!({ "detail": text }))
}

/// The `detail` of a scripted refusal.
fn refusal_detail(status: u16) -> &'static str {
    match status {
        400 => "requisição inválida",
        401 => "Invalid token",
        403 => "Not authorized",
        404 => "operadora desconhecida",
        408 => "tempo esgotado lendo a requisição",
        409 => "já existe um job para esta requisição",
        422 => "dados do cliente recusados",
        429 => "muitas requisições; tente mais tarde",
        502 => "bad gateway",
        503 => "serviço indisponível",
        _ => "erro",
    }
}

/// How a request is answered.
enum Outcome {
    Answer(u16, Value),
    Pdf(Vec<u8>),
    /// Close the connection without answering.
    Drop,
    /// Never answer.
    Stall,
}

/// A job's status read: moves it one poll on (until it has an outcome),
/// logging what happened.
fn poll_job(job: &mut Job, base: &str) -> Value {
    if let Some(outcome) = &job.outcome {
        return outcome.clone();
    }
    job.public.polls += 1;
    let poll = job.public.polls;
    let id = job.public.id.clone();
    let (polls, failure): (Option<u32>, Option<(&'static str, String)>) = match &job
        .public
        .behaviour
    {
        Behaviour::Succeed { polls } | Behaviour::SucceedWith { polls, .. } => (Some(*polls), None),
        Behaviour::FailBusiness { polls, message } => {
            (Some(*polls), Some(("business", message.clone())))
        }
        Behaviour::FailTechnical { polls, message } => {
            (Some(*polls), Some(("technical", message.clone())))
        }
        Behaviour::Hang => (None, None),
        Behaviour::RefuseStart { .. } | Behaviour::DropStart | Behaviour::SlowStart => {
            (Some(DEFAULT_POLLS), None)
        }
    };
    let status = |status: &str| json!({"job_id": id, "status": status});
    match polls {
        Some(n) if poll > n => {
            let answer = match failure {
                Some((error_type, message)) => {
                    job.log("error", message.clone());
                    json!({"job_id": id, "status": "failed", "error_type": error_type, "error": message})
                }
                None => {
                    let result = result_of(job, base);
                    let line = match job.public.kind {
                        JobKind::Download => format!(
                            "Fatura baixada: vencimento {}, valor {}",
                            result["due_date"], result["amount"]
                        ),
                        JobKind::Filing => format!("Protocolo SAT {}", result["protocol"]),
                    };
                    job.log("info", line);
                    json!({"job_id": id, "status": "completed", "result": result})
                }
            };
            job.public.status = answer["status"].as_str().unwrap_or("").to_owned();
            job.outcome = Some(answer.clone());
            answer
        }
        _ if poll == 1 => {
            job.log("info", "Na fila: aguardando um robô livre".into());
            job.public.status = "queued".into();
            status("queued")
        }
        _ => {
            let doing = match job.public.kind {
                JobKind::Download => "Acessando o portal da operadora",
                JobKind::Filing => "Preenchendo a declaração no SAT",
            };
            job.log("info", format!("{doing} (consulta {poll})"));
            if poll.is_multiple_of(5) {
                job.log("warning", "O portal está lento; aguardando".into());
            }
            job.public.status = "running".into();
            status("running")
        }
    }
}

/// A completed job's `result`: the default one, with the script's fields
/// over it.
fn result_of(job: &Job, base: &str) -> Value {
    let mut result = match job.public.kind {
        JobKind::Download => {
            let (year, month) = month_of(&job.public.request).unwrap_or((2026, 1));
            let next = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 10)
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 10)
            };
            json!({
                "invoice_url": format!("{base}/faturas/{}.pdf", job.public.id),
                "due_date": next.map(|d| d.format("%Y-%m-%d").to_string()),
                "amount": DEFAULT_AMOUNT,
                "access_key": nfcom_access_key(ISSUER_CNPJ, year, month, job.number),
            })
        }
        JobKind::Filing => {
            let today = Utc::now().date_naive();
            json!({
                "protocol": format!(
                    "SAT-{:04}{:02}{:02}-{:06}",
                    today.year(),
                    today.month(),
                    today.day(),
                    job.number
                )
            })
        }
    };
    if let Behaviour::SucceedWith {
        result: Value::Object(fields),
        ..
    } = &job.public.behaviour
    {
        for (name, value) in fields {
            result[name] = value.clone();
        }
    }
    result
}

fn authorised(state: &FakeState, headers: &HeaderMap) -> Result<(), (u16, Value)> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match given {
        None | Some("") => Err(detail(401, "Not authenticated")),
        Some(token) if token != state.token => Err(detail(401, "Invalid token")),
        Some(_) => Ok(()),
    }
}

fn logs_page(job: &Job, query: Option<&str>) -> (u16, Value) {
    let mut after = 0u64;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some(value) = pair.strip_prefix("after=") {
            match value.parse() {
                Ok(n) => after = n,
                Err(_) => return detail(422, "after: inteiro não negativo"),
            }
        }
    }
    let lines: Vec<Value> = job
        .lines
        .iter()
        .filter(|line| line.seq > after)
        .take(PAGE_LINES)
        .map(|line| {
            json!({"seq": line.seq, "at": line.at, "level": line.level, "message": line.message})
        })
        .collect();
    let next = lines
        .last()
        .and_then(|line| line["seq"].as_u64())
        .unwrap_or(after);
    (200, json!({"lines": lines, "next": next}))
}

/// Decides the answer to one request (and records it).
fn decide(
    state: &mut FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Outcome {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut request = RpaRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body: parsed.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        status: None,
    };
    let outcome = route(state, method, uri, headers, parsed);
    request.status = match &outcome {
        Outcome::Answer(status, _) => Some(*status),
        Outcome::Pdf(_) => Some(200),
        Outcome::Drop | Outcome::Stall => None,
    };
    state.record(request);
    outcome
}

fn route(
    state: &mut FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Value,
) -> Outcome {
    let answer = |(status, body): (u16, Value)| Outcome::Answer(status, body);
    let Some(rest) = uri.path().strip_prefix(BASE_PATH) else {
        return answer(detail(404, "Not Found"));
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (get, post) = (*method == Method::GET, *method == Method::POST);
    let wrong_method = || answer(detail(405, "Method Not Allowed"));
    match segments.as_slice() {
        ["health"] if get => answer((200, json!({"status": "ok"}))),
        ["faturas", file] if get => {
            let invoice = file.strip_suffix(".pdf").and_then(|id| state.jobs.get(id));
            match invoice {
                Some(job) if job.invoice.is_some() => {
                    Outcome::Pdf(job.invoice.clone().unwrap_or_default())
                }
                Some(job)
                    if job.public.kind == JobKind::Download && job.public.status == "completed" =>
                {
                    Outcome::Pdf(invoice_pdf(&format!("Fatura {}", job.public.id)))
                }
                _ => answer(detail(404, "fatura não encontrada")),
            }
        }
        ["executar", code] if post && !code.is_empty() => {
            if let Err(refusal) = authorised(state, headers) {
                return answer(refusal);
            }
            let kind = if *code == "sat" {
                JobKind::Filing
            } else {
                JobKind::Download
            };
            if let Err(why) = check_start(kind, &body) {
                return answer(detail(422, &why));
            }
            match state.behaviour_for(kind, code, &body) {
                Behaviour::RefuseStart { status } => answer(detail(status, refusal_detail(status))),
                b @ Behaviour::DropStart => {
                    state.create_job(kind, code, body, b);
                    Outcome::Drop
                }
                b @ Behaviour::SlowStart => {
                    state.create_job(kind, code, body, b);
                    Outcome::Stall
                }
                b => {
                    let id = state.create_job(kind, code, body, b);
                    answer((202, json!({ "job_id": id })))
                }
            }
        }
        ["jobs", id] | ["jobs", id, "logs"] if get => {
            if let Err(refusal) = authorised(state, headers) {
                return answer(refusal);
            }
            if let Some(status) = state.read_failures.pop_front() {
                return answer(detail(status, refusal_detail(status)));
            }
            let base = state.base.clone();
            let Some(job) = state.jobs.get_mut(*id) else {
                return answer(detail(404, "job não encontrado"));
            };
            if segments.len() == 3 {
                answer(logs_page(job, uri.query()))
            } else {
                answer((200, poll_job(job, &base)))
            }
        }
        ["health"] | ["faturas", _] | ["executar", _] | ["jobs", _] | ["jobs", _, "logs"] => {
            wrong_method()
        }
        _ => answer(detail(404, "Not Found")),
    }
}

async fn answer(
    State(state): State<Arc<Mutex<FakeState>>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        decide(&mut state, &method, &uri, &headers, &body)
    };
    match outcome {
        Outcome::Answer(status, body) => {
            let mut response = json_answer(status, body);
            if status == 401 {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
        Outcome::Pdf(bytes) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            )],
            bytes,
        )
            .into_response(),
        Outcome::Drop => {
            // Nothing of this answer reaches the client: its first write
            // fails, and the server drops the connection.
            connection.kill();
            StatusCode::ACCEPTED.into_response()
        }
        Outcome::Stall => std::future::pending().await,
    }
}

/// Accepts TCP connections whose writes can be made to fail, so that a
/// handler can close its connection without answering.
struct KillableListener(tokio::net::TcpListener);

impl axum::serve::Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    return (
                        KillableStream {
                            inner: stream,
                            killed: Arc::default(),
                        },
                        addr,
                    );
                }
                // Out of file descriptors and the like: wait, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

struct KillableStream {
    inner: tokio::net::TcpStream,
    killed: Arc<AtomicBool>,
}

/// A handler's hold on its connection.
#[derive(Clone)]
struct Connection(Arc<AtomicBool>);

impl Connection {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        Connection(stream.io().killed.clone())
    }
}

impl KillableStream {
    fn killed(&self) -> Option<std::io::Error> {
        self.killed
            .load(Ordering::SeqCst)
            .then(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "rpa-test-token";

    fn download(filter: &str) -> Value {
        json!({
            "cnpj": "11444777000161", "razao": "Cliente Ltda", "operadora": "VIVO",
            "nome_filtro": filter, "unidade": "Matriz", "servico": "Móvel",
            "login_portal": "l", "senha_portal": "s", "cpf": null, "mes_ano": "12/2026",
            "configuracao": {}
        })
    }

    async fn call(rpa: &FakeRpa, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", rpa.url());
        let mut request = client.request(method, url).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn poll_until_final(rpa: &FakeRpa, id: &str) -> Vec<Value> {
        let mut answers = Vec::new();
        for _ in 0..10 {
            let (_, answer) = call(rpa, Method::GET, &format!("/jobs/{id}"), None).await;
            let done = matches!(answer["status"].as_str(), Some("completed" | "failed"));
            answers.push(answer);
            if done {
                break;
            }
        }
        answers
    }

    #[test]
    fn made_up_access_keys_are_valid_nfcom_keys() {
        for number in [1, 2, 999_999_999, 1_000_000_123] {
            let key = nfcom_access_key(ISSUER_CNPJ, 2026, 6, number).unwrap();
            let parsed = AccessKey::parse(&key).unwrap();
            assert_eq!(parsed.cnpj(), ISSUER_CNPJ);
            assert_eq!(parsed.year_month(), (2026, 6));
            assert_eq!(u64::from(parsed.number()), number % 1_000_000_000);
        }
        assert_eq!(nfcom_access_key("11222333000182", 2026, 6, 1), None);
        assert_eq!(nfcom_access_key(ISSUER_CNPJ, 2026, 13, 1), None);
    }

    #[test]
    fn the_invoice_is_a_well_formed_pdf() {
        let pdf = invoice_pdf("Fatura (teste) \\ 1");
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        let text = String::from_utf8_lossy(&pdf).into_owned();
        assert!(text.contains("(Fatura \\(teste\\) \\\\ 1) Tj"));
        assert!(text.ends_with("%%EOF\n"));
        // startxref points at the table, and each entry at its object.
        let startxref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(pdf[startxref..].starts_with(b"xref\n0 6\n"));
        // (The text has the binary comment's bytes replaced: read the table
        // from the bytes.)
        let table = String::from_utf8(pdf[startxref..].to_vec()).unwrap();
        for (i, entry) in table.lines().skip(3).take(5).enumerate() {
            assert_eq!(entry.len(), 19, "{entry:?} (20 bytes with the newline)");
            let offset: usize = entry[..10].parse().unwrap();
            assert!(pdf[offset..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()));
        }
    }

    #[tokio::test]
    async fn the_dev_script_fails_and_hangs_by_marker() {
        let rpa = FakeRpa::start(TOKEN).await;
        rpa.dev_script();
        let mut ids = Vec::new();
        for filter in [
            "CLIENTE A",
            "CLIENTE B [falha-negocio]",
            "CLIENTE C [FALHA-TECNICA]",
            "CLIENTE D [trava]",
        ] {
            let (status, answer) = call(
                &rpa,
                Method::POST,
                "/executar/VIVO",
                Some(&download(filter)),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            ids.push(answer["job_id"].as_str().unwrap().to_owned());
        }
        let ok = poll_until_final(&rpa, &ids[0]).await;
        let statuses: Vec<&str> = ok.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["queued", "running", "completed"]);
        let result = &ok[2]["result"];
        assert_eq!(result["due_date"], "2027-01-10");
        assert_eq!(result["amount"], DEFAULT_AMOUNT);
        assert!(AccessKey::parse(result["access_key"].as_str().unwrap()).is_ok());

        let business = poll_until_final(&rpa, &ids[1]).await;
        assert_eq!(business.len(), 3);
        assert_eq!(business[2]["error_type"], "business");
        assert_eq!(business[2]["error"], DEV_BUSINESS_MESSAGE);
        let technical = poll_until_final(&rpa, &ids[2]).await;
        assert_eq!(technical[2]["error_type"], "technical");
        let hang = poll_until_final(&rpa, &ids[3]).await;
        assert_eq!(hang.len(), 10);
        assert_eq!(hang[9]["status"], "running");

        // The start line, and one per poll.
        let (_, logs) = call(&rpa, Method::GET, &format!("/jobs/{}/logs", ids[3]), None).await;
        let lines = logs["lines"].as_array().unwrap();
        assert!(lines.len() > 10, "{logs}");
        assert_eq!(logs["next"], lines.last().unwrap()["seq"]);
    }

    #[tokio::test]
    async fn bad_starts_and_tokens_are_refused_without_a_job() {
        let rpa = FakeRpa::start(TOKEN).await;
        let mut bad = download("x");
        bad["mes_ano"] = json!("2026-12");
        let (status, answer) = call(&rpa, Method::POST, "/executar/VIVO", Some(&bad)).await;
        assert_eq!(
            (status, answer["detail"].as_str()),
            (422, Some("campo mes_ano: deve ser MM/AAAA"))
        );
        let (status, answer) =
            call(&rpa, Method::POST, "/executar/sat", Some(&download("x"))).await;
        assert_eq!(status, 422, "{answer}");
        let response = reqwest::Client::new()
            .post(format!("{}/executar/VIVO", rpa.url()))
            .bearer_auth("wrong")
            .json(&download("x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert!(rpa.jobs().is_empty());
        assert_eq!(rpa.starts().len(), 3);
        let (status, _) = call(&rpa, Method::GET, "/executar/VIVO", None).await;
        assert_eq!(status, 405);
        let (status, _) = call(&rpa, Method::GET, "/nada", None).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn requests_and_jobs_are_capped() {
        let rpa = FakeRpa::start(TOKEN).await;
        {
            let mut state = rpa.lock();
            for _ in 0..KEPT + 5 {
                state.create_job(JobKind::Download, "VIVO", download("x"), Behaviour::Hang);
                state.record(RpaRequest {
                    method: "GET".into(),
                    path: "/".into(),
                    query: None,
                    body: Value::Null,
                    authorization: None,
                    status: Some(200),
                });
            }
            assert_eq!(state.jobs.len(), KEPT);
        }
        assert_eq!(rpa.jobs().len(), KEPT);
        assert_eq!(rpa.requests().len(), KEPT);
        let first = rpa.jobs()[0].id.clone();
        assert!(first.ends_with("-6"), "{first}");
        for _ in 0..KEPT_LINES + 3 {
            rpa.log(&first, "info", "x");
        }
        let (_, logs) = call(
            &rpa,
            Method::GET,
            &format!("/jobs/{first}/logs?after=0"),
            None,
        )
        .await;
        assert_eq!(logs["lines"].as_array().unwrap().len(), PAGE_LINES);
        assert_eq!(logs["lines"][0]["seq"], 5);
    }
}
