//! One function = up to N processes speaking the Lambda Runtime API to a
//! small server of ours, each one invocation at a time (like Lambda
//! instances): the first starts with the runner, the others on demand, when
//! an invocation arrives while every started one is busy.
//!
//! Each process instance gets its own Runtime API listener, so nothing from a
//! killed instance (a pending long-poll, a late response) can reach the next.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::faults::CrashInjector;
use crate::log::Log;
use crate::util::{epoch_ms, trace_id, uuid};

/// How long a process may take from start to its first `/next` before an
/// invocation waiting for it fails (Lambda's init phase limit). Once it has
/// asked, init is over: the limit never applies again, however late the
/// first event comes.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Synchronous invocation payload and response limit of Lambda.
pub const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// What a function process is started with.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// Logical id in the template.
    pub logical_id: String,
    pub function_arn: String,
    pub binary: PathBuf,
    /// Complete environment of the process (nothing is inherited but `PATH`).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Lambda's init phase limit ([`INIT_TIMEOUT`]); shorter in tests.
    pub init_timeout: Duration,
    pub memory_mb: u64,
    /// Kills a share of invocations' processes part-way (fault injection).
    pub crashes: Option<Arc<CrashInjector>>,
}

/// Why an invocation did not produce a response.
#[derive(Clone, Debug, PartialEq)]
pub enum InvokeError {
    /// The handler answered through `/error`.
    Function { error_type: String, message: String },
    /// No answer within the function's timeout; the process was killed.
    Timeout(Duration),
    /// The process exited (or never became ready) during the invocation.
    Crashed(String),
    /// The process could not be started.
    Unavailable(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Function {
                error_type,
                message,
            } => write!(f, "{error_type}: {message}"),
            InvokeError::Timeout(d) => {
                write!(f, "Task timed out after {:.2} seconds", d.as_secs_f64())
            }
            InvokeError::Crashed(why) => write!(f, "Runtime exited: {why}"),
            InvokeError::Unavailable(why) => write!(f, "function unavailable: {why}"),
        }
    }
}

impl std::error::Error for InvokeError {}

struct Job {
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, InvokeError>>,
}

/// A running function: send it invocations with [`Host::invoke`].
#[derive(Clone)]
pub struct Host {
    pub spec: Arc<FunctionSpec>,
    jobs: mpsc::Sender<Job>,
    ready: watch::Receiver<Readiness>,
}

/// The state of the current process, for start-up.
#[derive(Clone, Debug, PartialEq)]
pub enum Readiness {
    Starting,
    /// Polling `/next`, after this init duration.
    Ready(Duration),
    Failed(String),
}

impl Host {
    /// Starts the first process and the supervisors of up to `instances`
    /// (at least one) on the current runtime. The supervisor tasks end (and
    /// kill their processes) when `shutdown` turns true.
    pub fn start(
        spec: FunctionSpec,
        log: Log,
        shutdown: watch::Receiver<bool>,
        instances: usize,
    ) -> (Host, Vec<tokio::task::JoinHandle<()>>) {
        let spec = Arc::new(spec);
        let (jobs, jobs_rx) = mpsc::channel(1024);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (ready_tx, ready) = watch::channel(Readiness::Starting);
        let tasks = (0..instances.max(1))
            .map(|slot| {
                let supervisor = Supervisor {
                    spec: spec.clone(),
                    jobs: jobs_rx.clone(),
                    // Only the first instance tells start-up it is ready.
                    ready: (slot == 0).then(|| ready_tx.clone()),
                    log: log.clone(),
                };
                tokio::spawn(supervisor.run(shutdown.clone()))
            })
            .collect();
        (Host { spec, jobs, ready }, tasks)
    }

    /// Invokes the function synchronously with a JSON payload; the raw
    /// response bytes, or why there are none.
    pub async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, InvokeError> {
        if payload.len() > PAYLOAD_LIMIT {
            return Err(InvokeError::Unavailable(format!(
                "request payload of {} bytes exceeds the {PAYLOAD_LIMIT}-byte limit",
                payload.len()
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { payload, reply })
            .await
            .map_err(|_| InvokeError::Unavailable("the runner is stopping".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(InvokeError::Unavailable("the runner is stopping".into())))
    }

    /// Waits until the first process polls `/next` (or fails to start).
    pub async fn wait_ready(&self, within: Duration) -> Readiness {
        let mut rx = self.ready.clone();
        let waited = tokio::time::timeout(within, rx.wait_for(|r| *r != Readiness::Starting)).await;
        match waited {
            Ok(Ok(r)) => r.clone(),
            _ => self.ready.borrow().clone(),
        }
    }
}

/// One delivered event, as `/next` hands it to the process.
struct Invocation {
    id: String,
    payload: Vec<u8>,
    timeout_ms: u64,
    trace_id: String,
    delivered: oneshot::Sender<Instant>,
}

enum Outcome {
    Response(Vec<u8>),
    Error { error_type: String, message: String },
}

/// State shared between one process instance's Runtime API server and its supervisor.
struct Shared {
    function_arn: String,
    next: Mutex<mpsc::Receiver<Invocation>>,
    current: std::sync::Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    first_next: watch::Sender<Option<Instant>>,
    init_error: std::sync::Mutex<Option<String>>,
}

struct Instance {
    child: Child,
    pid: u32,
    spawned: Instant,
    shared: Arc<Shared>,
    invocations: mpsc::Sender<Invocation>,
    server: tokio::task::JoinHandle<()>,
    invoked: u64,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
    }
}

async fn spawn_instance(spec: &FunctionSpec, log: &Log) -> Result<Instance, String> {
    let (tx, rx) = mpsc::channel(1);
    let (first_next, _) = watch::channel(None);
    let shared = Arc::new(Shared {
        function_arn: spec.function_arn.clone(),
        next: Mutex::new(rx),
        current: std::sync::Mutex::new(None),
        first_next,
        init_error: std::sync::Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind a Runtime API port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = runtime_api(shared.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut cmd = Command::new(&spec.binary);
    cmd.env_clear()
        .envs(&spec.env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    if log.functions || log.capture.is_some() {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    } else {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    // The process dies with the runner, even when the runner is killed.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let spawned = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            server.abort();
            return Err(format!("cannot start {}: {e}", spec.binary.display()));
        }
    };
    let pid = child.id().unwrap_or_default();
    for (stream, is_err) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            true,
        ),
    ] {
        if let Some(stream) = stream {
            let log = log.clone();
            let name = spec.logical_id.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.function_line(&name, &line, is_err);
                }
            });
        }
    }
    Ok(Instance {
        child,
        pid,
        spawned,
        shared,
        invocations: tx,
        server,
        invoked: 0,
    })
}

/// One instance slot of a function: starts a process (the first slot at
/// once, the others on their first invocation), feeds it invocations from
/// the function's queue one at a time, restarts it when it dies.
struct Supervisor {
    spec: Arc<FunctionSpec>,
    /// Shared by the function's slots: an idle slot takes the next job.
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    ready: Option<watch::Sender<Readiness>>,
    log: Log,
}

impl Supervisor {
    async fn next_job(&self) -> Option<Job> {
        self.jobs.lock().await.recv().await
    }

    fn set_ready(&self, readiness: Readiness) {
        if let Some(ready) = &self.ready {
            ready.send_replace(readiness);
        }
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let spec = &self.spec;
        let log = &self.log;
        let mut instance: Option<Instance> = None;
        // A job taken before this slot had a process (slots after the first).
        let mut pending: Option<Job> = None;
        let mut backoff = Duration::ZERO;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if instance.is_none() && self.ready.is_none() && pending.is_none() {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    job = self.next_job() => match job {
                        Some(job) => pending = Some(job),
                        None => break,
                    },
                }
                continue;
            }
            if instance.is_none() {
                match spawn_instance(spec, log).await {
                    Ok(i) => {
                        if let Some(ready) = self.ready.clone() {
                            let mut first = i.shared.first_next.subscribe();
                            let spawned = i.spawned;
                            tokio::spawn(async move {
                                if let Ok(at) = first.wait_for(Option::is_some).await {
                                    let init = at.expect("some").duration_since(spawned);
                                    ready.send_replace(Readiness::Ready(init));
                                }
                            });
                        }
                        instance = Some(i);
                    }
                    Err(e) => {
                        log.runner(&format!("{}: {e}", spec.logical_id));
                        self.set_ready(Readiness::Failed(e.clone()));
                        if let Some(job) = pending.take() {
                            let _ = job.reply.send(Err(InvokeError::Unavailable(e.clone())));
                        }
                        backoff =
                            (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
                        let until = tokio::time::Instant::now() + backoff;
                        // Answer what arrives meanwhile, without a process.
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep_until(until) => break,
                                _ = shutdown.changed() => break,
                                job = self.next_job() => match job {
                                    Some(job) => { let _ = job.reply.send(Err(InvokeError::Unavailable(e.clone()))); }
                                    None => return,
                                },
                            }
                        }
                        continue;
                    }
                }
            }
            let inst = instance.as_mut().expect("instance");
            let job = match pending.take() {
                Some(job) => job,
                None => tokio::select! {
                    status = inst.child.wait() => {
                        // Died while idle (e.g. failed init): restart, slower if it keeps dying.
                        let why = exit_reason(status, &inst.shared);
                        log.runner(&format!("{}: process {} exited while idle: {why}", spec.logical_id, inst.pid));
                        if inst.invoked == 0 {
                            self.set_ready(Readiness::Failed(why));
                        }
                        let quick = inst.spawned.elapsed() < Duration::from_secs(2);
                        instance = None;
                        backoff = if quick { (backoff * 2).clamp(Duration::from_millis(200), Duration::from_secs(5)) } else { Duration::ZERO };
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                    _ = shutdown.changed() => continue,
                    job = self.next_job() => match job {
                        Some(job) => job,
                        None => break,
                    },
                },
            };
            let (result, keep) = run(spec, inst, job.payload, log).await;
            let _ = job.reply.send(result);
            if keep {
                backoff = Duration::ZERO;
            } else {
                instance = None;
            }
        }
        if let Some(mut inst) = instance.take() {
            let _ = inst.child.start_kill();
            let _ = inst.child.wait().await;
        }
        if let Some(job) = pending.take() {
            let _ = job.reply.send(Err(InvokeError::Unavailable(
                "the runner is stopping".into(),
            )));
        }
        while let Ok(job) = self.jobs.lock().await.try_recv() {
            let _ = job.reply.send(Err(InvokeError::Unavailable(
                "the runner is stopping".into(),
            )));
        }
    }
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>, shared: &Shared) -> String {
    let mut why = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    if let Some(init) = shared.init_error.lock().expect("lock").clone() {
        why = format!("{why} (init error: {init})");
    }
    why
}

/// Runs one invocation on an instance. Returns the result and whether the
/// instance is still usable.
async fn run(
    spec: &FunctionSpec,
    inst: &mut Instance,
    payload: Vec<u8>,
    log: &Log,
) -> (Result<Vec<u8>, InvokeError>, bool) {
    let id = uuid();
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let (delivered_tx, delivered_rx) = oneshot::channel();
    *inst.shared.current.lock().expect("lock") = Some((id.clone(), outcome_tx));
    let first_of_instance = inst.invoked == 0;
    inst.invoked += 1;
    let invocation = Invocation {
        id: id.clone(),
        payload,
        timeout_ms: spec.timeout.as_millis() as u64,
        trace_id: trace_id(),
        delivered: delivered_tx,
    };
    if inst.invocations.send(invocation).await.is_err() {
        return (
            Err(InvokeError::Crashed("runtime API closed".into())),
            false,
        );
    }

    // Init: until the process first asks for an event, as on Lambda. Only an
    // instance that has never asked can run out of init time.
    if let Err(why) = finish_init(spec, inst).await {
        let status = match &why {
            InvokeError::Crashed(reason) if reason.starts_with("init did not finish") => {
                "Status: timeout (init)".to_owned()
            }
            other => format!("Status: error, Error Type: Runtime.ExitError ({other})"),
        };
        log.report(&spec.logical_id, &id, None, None, None, Some(&status));
        return (Err(why), false);
    }
    // The process has asked before, so it takes the event as soon as it asks
    // again; one that does not within a generous bound (a loaded machine may
    // hold it back a while) is stuck, and its invocation times out.
    let delivered_at = tokio::select! {
        at = delivered_rx => match at {
            Ok(at) => at,
            Err(_) => return (Err(InvokeError::Crashed("event not delivered".into())), false),
        },
        status = inst.child.wait() => {
            let why = exit_reason(status, &inst.shared);
            log.report(&spec.logical_id, &id, None, None, None, Some(&format!("Status: error, Error Type: Runtime.ExitError ({why})")));
            return (Err(InvokeError::Crashed(why)), false);
        }
        _ = tokio::time::sleep(spec.timeout + INIT_TIMEOUT) => {
            let _ = inst.child.start_kill();
            log.report(&spec.logical_id, &id, None, None, None, Some("Status: timeout"));
            return (Err(InvokeError::Timeout(spec.timeout)), false);
        }
    };
    let init = if first_of_instance {
        inst.shared
            .first_next
            .borrow()
            .map(|at| at.duration_since(inst.spawned))
    } else {
        None
    };

    let deadline = delivered_at + spec.timeout;
    let kill_at = spec
        .crashes
        .as_ref()
        .and_then(|c| c.draw())
        .map(|after| delivered_at + after);
    let (result, keep, status) = tokio::select! {
        outcome = outcome_rx => match outcome {
            Ok(Outcome::Response(bytes)) => (Ok(bytes), true, None),
            Ok(Outcome::Error { error_type, message }) => {
                let s = format!("Status: error, Error Type: {error_type}");
                (Err(InvokeError::Function { error_type, message }), true, Some(s))
            }
            Err(_) => (Err(InvokeError::Crashed("no outcome".into())), false, Some("Status: error".to_owned())),
        },
        status = inst.child.wait() => {
            let why = exit_reason(status, &inst.shared);
            let s = format!("Status: error, Error Type: Runtime.ExitError ({why})");
            (Err(InvokeError::Crashed(why)), false, Some(s))
        }
        _ = tokio::time::sleep_until(deadline.into()) => {
            let _ = inst.child.start_kill();
            (Err(InvokeError::Timeout(spec.timeout)), false, Some("Status: timeout".to_owned()))
        }
        _ = tokio::time::sleep_until(kill_at.unwrap_or(deadline).into()), if kill_at.is_some() => {
            let _ = inst.child.start_kill();
            let _ = inst.child.wait().await;
            if let Some(crashes) = &spec.crashes {
                crashes.killed();
            }
            let why = "signal: 9 (SIGKILL) (killed by the fault injector)".to_owned();
            let s = format!("Status: error, Error Type: Runtime.ExitError ({why})");
            (Err(InvokeError::Crashed(why)), false, Some(s))
        }
    };
    let duration = delivered_at.elapsed();
    let rss = max_rss_mb(inst.pid);
    log.report(
        &spec.logical_id,
        &id,
        Some(duration),
        init,
        rss.map(|r| (r, spec.memory_mb)),
        status.as_deref(),
    );
    (result, keep)
}

/// Waits, if the instance has never asked for an event, until it does: at
/// most `init_timeout` from its start, and never again once it has asked.
async fn finish_init(spec: &FunctionSpec, inst: &mut Instance) -> Result<(), InvokeError> {
    let mut asked = inst.shared.first_next.subscribe();
    if asked.borrow().is_some() {
        return Ok(());
    }
    let limit = inst.spawned + spec.init_timeout;
    tokio::select! {
        _ = asked.wait_for(Option::is_some) => Ok(()),
        status = inst.child.wait() => Err(InvokeError::Crashed(exit_reason(status, &inst.shared))),
        _ = tokio::time::sleep_until(limit.into()) => Err(InvokeError::Crashed(format!(
            "init did not finish within {:.1} s",
            spec.init_timeout.as_secs_f64()
        ))),
    }
}

/// Peak resident set size of a process in MB (`VmHWM`).
fn max_rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.div_ceil(1024))
}

// ------------------------------------------------------------ the Runtime API

fn runtime_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT + 1024))
        .with_state(shared)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_next.send_if_modified(|at| {
        if at.is_none() {
            *at = Some(Instant::now());
            true
        } else {
            false
        }
    });
    let invocation = shared.next.lock().await.recv().await;
    let Some(inv) = invocation else {
        return (StatusCode::GONE, "runner stopping").into_response();
    };
    let deadline_ms = epoch_ms() + inv.timeout_ms;
    let _ = inv.delivered.send(Instant::now());
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, "content-type", "application/json".into());
    put(
        &mut headers,
        "lambda-runtime-aws-request-id",
        inv.id.clone(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        inv.trace_id.clone(),
    );
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline_ms.to_string(),
    );
    (StatusCode::OK, headers, inv.payload).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    let mut current = shared.current.lock().expect("lock");
    match current.take() {
        Some((cur, tx)) if cur == id => {
            let _ = tx.send(outcome);
            accepted()
        }
        other => {
            *current = other;
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errorMessage": format!("Invalid request ID: {id}"), "errorType": "InvalidRequestID"})),
            )
                .into_response()
        }
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    finish(&shared, &id, Outcome::Response(body.to_vec()))
}

fn error_of(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error_type = v["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".into());
    let message = v["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, message)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = error_of(&headers, &body);
    finish(
        &shared,
        &id,
        Outcome::Error {
            error_type,
            message,
        },
    )
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = error_of(&headers, &body);
    *shared.init_error.lock().expect("lock") = Some(format!("{error_type}: {message}"));
    accepted()
}
