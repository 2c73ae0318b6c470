//! The local stack runner: everything `template.yaml` wires, run on this
//! machine against the AWS emulator.
//!
//! - every function is its own process (its release or debug binary)
//!   speaking the Lambda Runtime API to a small server of the runner's, one
//!   invocation at a time, with the template's timeout and memory size;
//! - the HTTP API routes are served as API Gateway HTTP APIs do (payload
//!   format 2.0), behind the Lambda REQUEST authorizer with its result cache;
//! - SQS event sources are long-polled with the template's batch size and
//!   partial batch failures;
//! - `rate`/`cron` schedules invoke their functions with the Scheduled Event.
//!
//! Everything comes from the template: a function added to it is served
//! without changing the runner.
//!
//! ```ignore
//! let runner = nuvem_local::Runner::start(nuvem_local::Options::default()).await?;
//! let resp = reqwest::get(format!("{}/v1/...", runner.base_url())).await?;
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nuvem_testkit::template::{EventSource, Template};
use nuvem_testkit::{ACCOUNT_ID, Emulator, REGION, Stack};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

pub mod faults;
mod gateway;
mod host;
mod log;
pub mod schedule;
mod sqs;
mod util;

pub use host::{INIT_TIMEOUT, InvokeError, Readiness};
pub use log::FunctionOutput;

/// How to run the stack.
#[derive(Clone, Debug)]
pub struct Options {
    /// The SAM template (default: [`nuvem_testkit::template_path`]).
    pub template: PathBuf,
    /// HTTP API port on 127.0.0.1; 0 picks a free one (the default).
    pub port: u16,
    /// Where the function binaries are (default: `<target dir>/debug`).
    pub bin_dir: PathBuf,
    /// An emulator to use (default: `NUVEM_EMULATOR_URL`, else a moto server
    /// of the runner's own, stopped with it).
    pub emulator_url: Option<String>,
    /// Resource names are `<stack name>-<LogicalId>`.
    pub stack_name: String,
    /// Template parameter overrides.
    pub params: BTreeMap<String, String>,
    /// Values given to the template's Secrets Manager secrets (logical id →
    /// secret string) before any function starts.
    pub secrets: BTreeMap<String, String>,
    /// Print start-up, restart and REPORT lines (stderr).
    pub log_runner: bool,
    /// Print what the functions print, prefixed `[LogicalId]` (stderr).
    pub log_functions: bool,
    /// Fire schedules on their timers (invoking by hand with
    /// [`Runner::run_schedule`] works either way).
    pub schedules: bool,
    /// Long-poll wait of the SQS pollers, 0..=20 s.
    pub sqs_wait_secs: i32,
    /// How long start-up waits for every function to poll for its first event.
    pub ready_timeout: Duration,
    /// Lambda's init phase limit: an invocation waiting for a process that
    /// has not asked for an event this long after its start fails.
    pub init_timeout: Duration,
    /// A floor for every function's timeout (default: none, the template's
    /// timeouts as they are). Tests on a loaded machine set one, so that a
    /// call that only waited for a CPU does not time out.
    pub min_function_timeout: Option<Duration>,
    /// Keep every line the functions print here, printed or not.
    pub capture_output: Option<FunctionOutput>,
    /// Start only this function (by logical id): no HTTP API, queue
    /// consumers or schedules, as `nuvem-local invoke` needs.
    pub only: Option<String>,
    /// When an SQS batch's invocation fails for want of a working process
    /// (timeout, crash, no process), its messages become visible again after
    /// this long (default: none, the queue's visibility timeout, as on
    /// Lambda). Tests set it: their waits are shorter than those timeouts.
    pub sqs_infra_failure_visibility: Option<Duration>,
    /// Like `sqs_infra_failure_visibility`, for every message an invocation
    /// did not process, reported item failures too, doubled with each
    /// receive (default: none). Chaos tests set it: their faults fail
    /// records that would otherwise wait out visibility timeouts of minutes.
    pub sqs_failure_visibility: Option<Duration>,
    /// The most instances of each function at once (at least 1, the
    /// default), within its `ReservedConcurrentExecutions`; an SQS event
    /// source polls as many batches at once, within its
    /// `ScalingConfig.MaximumConcurrency`. Instances after the first start
    /// when an invocation finds every started one busy.
    pub concurrency: usize,
    /// Faults given to the functions' AWS calls: their `AWS_ENDPOINT_URL`
    /// is a [`faults`] proxy in front of the emulator (default: none).
    pub faults: Option<faults::FaultSpec>,
    /// Kill a share of invocations' processes part-way (default: none).
    pub crashes: Option<faults::CrashSpec>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            template: nuvem_testkit::template_path(),
            port: 0,
            bin_dir: default_bin_dir(),
            emulator_url: std::env::var("NUVEM_EMULATOR_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            stack_name: "nuvem".into(),
            params: BTreeMap::new(),
            secrets: BTreeMap::new(),
            log_runner: true,
            log_functions: true,
            schedules: true,
            sqs_wait_secs: 5,
            ready_timeout: Duration::from_secs(20),
            init_timeout: host::INIT_TIMEOUT,
            min_function_timeout: None,
            only: None,
            capture_output: None,
            sqs_infra_failure_visibility: None,
            sqs_failure_visibility: None,
            concurrency: 1,
            faults: None,
            crashes: None,
        }
    }
}

/// How many instances of a function may run at once: the runner's
/// `concurrency`, within the function's reserved concurrency.
fn instances(concurrency: usize, reserved: Option<u32>) -> usize {
    let reserved = reserved.map_or(usize::MAX, |r| r as usize);
    concurrency.max(1).min(reserved.max(1))
}

/// `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn default_bin_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("debug"),
        None => nuvem_testkit::workspace_root().join("target/debug"),
    }
}

/// What the runner serves, for printing.
#[derive(Clone, Debug)]
pub struct Summary {
    pub routes: Vec<(String, String, String, Option<String>)>,
    pub consumers: Vec<(String, String, i32, bool)>,
    pub schedules: Vec<(String, String, String, bool)>,
    pub functions: Vec<(String, PathBuf, Readiness)>,
}

/// A running local stack. Dropping it stops everything it started.
pub struct Runner {
    base_url: String,
    emulator_endpoint: String,
    stack: Stack,
    summary: Summary,
    hosts: Arc<BTreeMap<String, host::Host>>,
    faults: Faults,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Started {
    base_url: String,
    emulator_endpoint: String,
    stack: Stack,
    summary: Summary,
    hosts: Arc<BTreeMap<String, host::Host>>,
    faults: Faults,
}

/// The fault injectors a runner started, if any.
#[derive(Clone, Default)]
struct Faults {
    proxy: Option<faults::FaultProxy>,
    crashes: Option<Arc<faults::CrashInjector>>,
}

impl Runner {
    /// Starts the emulator (or connects to one), creates the stack, starts
    /// every function and trigger, and returns when all are up. The runner
    /// has its own thread and runtime, so it outlives the caller's runtime
    /// (handy for a runner shared by many `#[tokio::test]`s).
    pub async fn start(options: Options) -> Result<Runner> {
        let (ready_tx, ready_rx) = oneshot::channel::<Result<Started>>();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("nuvem-local".into())
            .spawn(move || run_thread(options, ready_tx, shutdown_rx))
            .context("cannot start the runner thread")?;
        let started = match ready_rx.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                bail!("the runner stopped while starting");
            }
        };
        Ok(Runner {
            base_url: started.base_url,
            emulator_endpoint: started.emulator_endpoint,
            stack: started.stack,
            summary: started.summary,
            hosts: started.hosts,
            faults: started.faults,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    pub fn emulator_endpoint(&self) -> &str {
        &self.emulator_endpoint
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// What the fault injectors did so far (all zero without them).
    pub fn fault_counts(&self) -> faults::FaultCounts {
        let mut counts = self
            .faults
            .proxy
            .as_ref()
            .map(|p| p.stats.counts())
            .unwrap_or_default();
        counts.crashes = self.faults.crashes.as_ref().map_or(0, |c| c.kills());
        counts
    }

    /// Invokes a function (by logical id) synchronously with a JSON event.
    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Value, InvokeError> {
        let host = self.hosts.get(function).ok_or_else(|| {
            InvokeError::Unavailable(format!("no function {function} in the template"))
        })?;
        let bytes = host.invoke(event.to_string().into_bytes()).await?;
        serde_json::from_slice(&bytes).map_err(|e| InvokeError::Function {
            error_type: "Runtime.InvalidResponse".into(),
            message: e.to_string(),
        })
    }

    /// Runs a function's schedule (`Events.<event>`) now, as EventBridge would.
    pub async fn run_schedule(&self, function: &str, event: &str) -> Result<Value, InvokeError> {
        let payload = schedule_payload(&self.stack, function, event, chrono::Utc::now())
            .map_err(|e| InvokeError::Unavailable(e.to_string()))?;
        self.invoke(function, &payload).await
    }

    /// The start-up description `nuvem-local` prints.
    pub fn describe(&self) -> String {
        describe(
            &self.emulator_endpoint,
            &self.stack.name,
            &self.base_url,
            &self.summary,
        )
    }

    /// Stops everything (same as dropping).
    pub fn stop(self) {}
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe(emulator: &str, stack: &str, base_url: &str, s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "emulator   {emulator}\nstack      {stack}\nhttp api   {base_url}\n"
    ));
    out.push_str("routes\n");
    let w = s.routes.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (method, path, function, auth) in &s.routes {
        let auth = auth.as_deref().unwrap_or("public");
        out.push_str(&format!(
            "  {method:<7} {path:<w$}  {function:<18} {auth}\n"
        ));
    }
    out.push_str("queue consumers\n");
    for (queue, function, batch, partial) in &s.consumers {
        let partial = if *partial {
            ", ReportBatchItemFailures"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {queue} -> {function} (batch {batch}{partial})\n"
        ));
    }
    out.push_str("schedules\n");
    for (expr, function, event, enabled) in &s.schedules {
        let off = if *enabled { "" } else { " (disabled)" };
        out.push_str(&format!("  {expr} -> {function} ({event}){off}\n"));
    }
    out.push_str("functions\n");
    let w = s
        .functions
        .iter()
        .map(|f| f.1.display().to_string().len())
        .max()
        .unwrap_or(0);
    for (name, bin, ready) in &s.functions {
        let state = match ready {
            Readiness::Ready(init) => format!("ready, init {:.1} ms", init.as_secs_f64() * 1000.0),
            Readiness::Starting => "starting (no /next yet)".into(),
            Readiness::Failed(e) => format!("FAILED: {e}"),
        };
        let bin = bin.display().to_string();
        out.push_str(&format!("  {name:<18} {bin:<w$}  {state}\n"));
    }
    out
}

/// The template's timeout, raised to `floor` if it is shorter.
fn function_timeout(template_secs: u64, floor: Option<Duration>) -> Duration {
    let timeout = Duration::from_secs(template_secs);
    floor.map_or(timeout, |floor| timeout.max(floor))
}

fn schedule_payload(
    stack: &Stack,
    function: &str,
    event: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Result<Value> {
    let f = stack.template.function(function)?;
    let e = f
        .events
        .iter()
        .find(|e| e.name == event)
        .ok_or_else(|| anyhow!("function {function} has no event {event}"))?;
    let EventSource::Schedule(s) = &e.source else {
        bail!("{function}.{event} is not a schedule");
    };
    match &s.input {
        Some(input) => serde_json::from_str(input)
            .with_context(|| format!("{function}.{event}: Input is not JSON")),
        None => Ok(schedule::scheduled_event(
            &format!("{}-{function}-{event}", stack.name),
            time,
        )),
    }
}

fn run_thread(
    options: Options,
    ready: oneshot::Sender<Result<Started>>,
    shutdown: watch::Receiver<bool>,
) {
    // Blocking start-up of the emulator happens on this thread, before the runtime.
    let emulator = match &options.emulator_url {
        Some(url) => Emulator::existing(url),
        None if !nuvem_testkit::moto_server_path().is_file() => Err(anyhow!(
            "moto_server not found at {}: run `make venv` (or pass --emulator-url / set NUVEM_EMULATOR_URL)",
            nuvem_testkit::moto_server_path().display()
        )),
        None => Emulator::start_owned(),
    };
    let emulator = match emulator {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nuvem-local-rt")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    runtime.block_on(async {
        let log = log::Log {
            runner: options.log_runner,
            functions: options.log_functions,
            capture: options.capture_output.clone(),
        };
        let (tasks, started) = match start(&options, &emulator, &log, shutdown.clone()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(started));
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|stop| *stop).await;
        // Supervisors kill their processes; give them a moment.
        let _ = tokio::time::timeout(Duration::from_secs(5), futures_join(tasks)).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(emulator);
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

async fn start(
    options: &Options,
    emulator: &Emulator,
    log: &log::Log,
    shutdown: watch::Receiver<bool>,
) -> Result<(Vec<tokio::task::JoinHandle<()>>, Started)> {
    let template = Template::load(&options.template, &options.params)?;
    let routes = template.routes()?;

    if let Some(only) = &options.only
        && !template.functions.contains_key(only)
    {
        bail!(
            "no function {only} in the template (its functions: {})",
            template
                .functions
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let wanted = |id: &str| options.only.as_deref().is_none_or(|only| only == id);

    // Every binary first: one clear error for all that are missing.
    let mut missing = Vec::new();
    for f in template
        .functions
        .values()
        .filter(|f| wanted(&f.logical_id))
    {
        let bin = options.bin_dir.join(&f.binary);
        if !bin.is_file() {
            missing.push(format!("  {} needs {}", f.logical_id, bin.display()));
        }
    }
    if !missing.is_empty() {
        bail!(
            "function binaries not found (build them with `cargo build --bins`):\n{}",
            missing.join("\n")
        );
    }
    let schedules: Vec<_> = template
        .schedules()
        .into_iter()
        .map(|(f, e, s)| {
            Ok((
                f.logical_id.clone(),
                e.to_owned(),
                s.clone(),
                schedule::Schedule::parse(&s.expression)?,
            ))
        })
        .collect::<Result<_>>()?;

    let stack = Stack::create_from(emulator, template, &options.stack_name)
        .await
        .context("creating the stack in the emulator")?;
    for (logical_id, value) in &options.secrets {
        stack
            .put_secret(emulator, logical_id, value)
            .await
            .with_context(|| format!("secret {logical_id}"))?;
    }
    let t = &stack.template;

    let mut tasks = Vec::new();
    let mut injectors = Faults::default();
    let mut functions_endpoint = emulator.endpoint().to_owned();
    if let Some(spec) = &options.faults {
        let (proxy, task) =
            faults::FaultProxy::start(spec.clone(), emulator.endpoint(), shutdown.clone()).await?;
        log.runner(&format!(
            "fault proxy {} in front of the emulator: {spec:?}",
            proxy.url
        ));
        functions_endpoint = proxy.url.clone();
        injectors.proxy = Some(proxy);
        tasks.push(task);
    }
    if let Some(spec) = &options.crashes {
        injectors.crashes = Some(Arc::new(faults::CrashInjector::new(spec.clone())?));
    }
    let mut hosts = BTreeMap::new();
    for f in t.functions.values().filter(|f| wanted(&f.logical_id)) {
        let mut env = stack.try_function_env(&f.logical_id)?;
        let name = stack.function_name(&f.logical_id);
        let fixed = [
            ("AWS_ENDPOINT_URL", functions_endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("_HANDLER", "bootstrap".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        for (k, v) in fixed {
            env.insert(k.to_owned(), v);
        }
        if let Ok(v) = std::env::var("RUST_BACKTRACE") {
            env.entry("RUST_BACKTRACE".into()).or_insert(v);
        }
        let spec = host::FunctionSpec {
            logical_id: f.logical_id.clone(),
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"),
            binary: options.bin_dir.join(&f.binary),
            env,
            timeout: function_timeout(f.timeout_secs, options.min_function_timeout),
            init_timeout: options.init_timeout,
            memory_mb: f.memory_mb,
            crashes: injectors
                .crashes
                .clone()
                .filter(|c| c.applies_to(&f.logical_id)),
        };
        let instances = instances(options.concurrency, f.reserved_concurrency);
        let (host, supervisors) = host::Host::start(spec, log.clone(), shutdown.clone(), instances);
        hosts.insert(f.logical_id.clone(), host);
        tasks.extend(supervisors);
    }
    let hosts = Arc::new(hosts);

    // HTTP API
    let base_url = match options.only {
        Some(_) => String::new(),
        None => serve_http_api(options.port, &routes, &hosts, log, &shutdown, &mut tasks).await?,
    };

    // SQS event sources
    let sdk = emulator.sdk_config().await;
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let mut consumers = Vec::new();
    for (f, s) in t.queue_consumers() {
        consumers.push((
            stack.queue(&s.queue).name.clone(),
            f.logical_id.clone(),
            s.batch_size as i32,
            s.report_batch_item_failures,
        ));
        if !s.enabled || options.only.is_some() {
            continue;
        }
        let consumer = sqs::Consumer {
            function: f.logical_id.clone(),
            queue: stack.queue(&s.queue).clone(),
            batch_size: s.batch_size.clamp(1, 10) as i32,
            report_batch_item_failures: s.report_batch_item_failures,
            wait_secs: options.sqs_wait_secs.clamp(0, 20),
            infra_failure_visibility: options
                .sqs_infra_failure_visibility
                .map(|d| d.as_secs().min(sqs::MAX_VISIBILITY_SECS) as i32),
            failure_visibility: options
                .sqs_failure_visibility
                .map(|d| d.as_secs().min(sqs::MAX_VISIBILITY_SECS) as i32),
            // SQS's default when the template sets none.
            queue_visibility: t
                .queues
                .get(&s.queue)
                .and_then(|q| q.visibility_timeout)
                .unwrap_or(30)
                .min(sqs::MAX_VISIBILITY_SECS) as i32,
        };
        let pollers = instances(options.concurrency, f.reserved_concurrency)
            .min(s.max_concurrency.map_or(usize::MAX, |m| m.max(1) as usize));
        for _ in 0..pollers {
            tasks.push(sqs::spawn(
                consumer.clone(),
                hosts[&f.logical_id].clone(),
                sqs_client.clone(),
                log.clone(),
                shutdown.clone(),
            ));
        }
    }

    // Schedules
    let mut schedule_lines = Vec::new();
    for (function, event, def, sched) in schedules {
        schedule_lines.push((
            def.expression.clone(),
            function.clone(),
            event.clone(),
            def.enabled,
        ));
        if !(def.enabled && options.schedules) || options.only.is_some() {
            continue;
        }
        let host = hosts[&function].clone();
        let stack_c = stack.clone();
        let log = log.clone();
        let mut stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let start = chrono::Utc::now();
            let mut last = start;
            while let Some(next) = sched.next_after(start, last) {
                let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                last = next;
                let payload = match schedule_payload(&stack_c, &function, &event, next) {
                    Ok(p) => p,
                    Err(e) => {
                        log.runner(&format!("schedule {function}.{event}: {e}"));
                        return;
                    }
                };
                // Asynchronous invocation: the schedule does not wait.
                let host = host.clone();
                let log = log.clone();
                let label = format!("schedule {function}.{event}");
                tokio::spawn(async move {
                    if let Err(e) = host.invoke(payload.to_string().into_bytes()).await {
                        log.runner(&format!("{label}: {e}"));
                    }
                });
            }
        }));
    }

    // Wait for every function to poll for its first event.
    let mut functions = Vec::new();
    let waits = hosts.values().map(|h| {
        let h = h.clone();
        let within = options.ready_timeout;
        async move {
            (
                h.spec.logical_id.clone(),
                h.spec.binary.clone(),
                h.wait_ready(within).await,
            )
        }
    });
    let mut handles = Vec::new();
    for w in waits {
        handles.push(tokio::spawn(w));
    }
    for h in handles {
        if let Ok((name, bin, r)) = h.await {
            if let Readiness::Failed(e) = &r {
                log.runner(&format!("{name} failed to start: {e}"));
            }
            functions.push((name, bin, r));
        }
    }

    let summary = Summary {
        routes: routes
            .iter()
            .map(|r| {
                let auth = r
                    .authorizer
                    .as_ref()
                    .map(|a| format!("auth {} ({}, cache {} s)", a.name, a.function, a.ttl_secs));
                (r.method.clone(), r.path.clone(), r.function.clone(), auth)
            })
            .collect(),
        consumers,
        schedules: schedule_lines,
        functions,
    };
    Ok((
        tasks,
        Started {
            base_url,
            emulator_endpoint: emulator.endpoint().to_owned(),
            stack,
            summary,
            hosts,
            faults: injectors,
        },
    ))
}

/// Serves the template's HTTP API on 127.0.0.1:`port` until shutdown; its
/// base URL.
async fn serve_http_api(
    port: u16,
    routes: &[nuvem_testkit::template::Route],
    hosts: &Arc<BTreeMap<String, host::Host>>,
    log: &log::Log,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let gw = Arc::new(gateway::Gateway::new(
        routes.to_vec(),
        hosts.clone(),
        log.clone(),
    ));
    let app = gw
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let mut stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }));
    Ok(base_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_floor_only_raises() {
        let secs = Duration::from_secs;
        assert_eq!(function_timeout(3, None), secs(3));
        assert_eq!(function_timeout(3, Some(secs(30))), secs(30));
        assert_eq!(function_timeout(900, Some(secs(30))), secs(900));
    }
}
