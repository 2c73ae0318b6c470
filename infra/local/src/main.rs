//! `nuvem-local`: runs template.yaml's functions, HTTP API, queue consumers
//! and schedules on this machine. See the crate docs and `--help`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nuvem_local::{Options, Runner};
use nuvem_testkit::Template;

const HELP: &str = "\
nuvem-local: run template.yaml locally against the AWS emulator

USAGE:
  nuvem-local [OPTIONS]
  nuvem-local invoke <LogicalId> [-e <event.json>] [OPTIONS]
      one invocation of one function, as `sam local invoke` does: its answer
      on stdout, its output and REPORT line on stderr; exit status 1 when the
      function fails. The event comes from the file (`-` for stdin), else {}.
      Against a fresh emulator unless --emulator-url names one (make dev's:
      http://127.0.0.1:4566, where the stack already exists).

OPTIONS:
  --template <file>        SAM template [default: template.yaml]
  --port <port>            HTTP API port on 127.0.0.1 [default: 3000]
  --bin-dir <dir>          where the function binaries are [default: target/debug]
  --emulator-url <url>     use this emulator [default: $NUVEM_EMULATOR_URL, else start moto]
  --stack-name <name>      resources are named <name>-<LogicalId> [default: nuvem]
  --param <Name=Value>     template parameter override (repeatable)
  --concurrency <n>        up to <n> instances of each function at once (within its
                           ReservedConcurrentExecutions), and as many batches at
                           once per queue (within MaximumConcurrency) [default: 1]
  --faults <spec>          give a share of the functions' AWS calls a fault, through a
                           proxy in front of the emulator: <rate> or
                           rate=<0..1>[,kinds=throttle+error+error-after+slow+drop+drop-after]
                           [,targets=dynamodb:PutItem+sqs+s3...][,slow-ms=<n>]; the counts
                           are printed when nuvem-local stops
  --crashes <rate>[,within-ms=<n>][,functions=<Id>+<Id>]
                           kill that share of invocations' processes (of those
                           functions, else of all) at a random moment within n ms
                           of the event's delivery [n: 300]
  --no-schedules           do not fire schedules
  --quiet-functions        do not print the functions' output
  --secret <Id=Value>      value of the template's secret <Id> (repeatable)
  --fake-graph <addr>      serve a fake WhatsApp Graph API on <addr> (127.0.0.1:port)
                           and point GraphApiUrl at it, with one known number;
                           WhatsAppSecret gets the dev app secret and verify token
  --fake-chat <addr>       serve a fake chat-completions API on <addr> and point
                           ChatApiUrl at it; ChatApiSecret gets its key
  --fake-rpa <addr>        serve a fake RPA API on <addr> (jobs succeed after two
                           polls; [falha-negocio], [falha-tecnica] or [trava] in a
                           client's filter or service fail or hang them) and point
                           RpaApiUrl at it; RpaApiSecret gets its token (each only
                           if the template declares it)
  -h, --help               this help
";

/// The runner's options, and the addresses of the fake outside APIs to
/// serve.
struct Cli {
    options: Options,
    /// `invoke <LogicalId>`: the function and the event file, if any.
    invoke: Option<(String, Option<PathBuf>)>,
    fake_graph: Option<String>,
    fake_chat: Option<String>,
    fake_rpa: Option<String>,
}

/// The number and token the fake Graph API of `--fake-graph` knows.
const DEV_NUMBER: (&str, &str) = ("106540352242922", "dev-whatsapp-token");
/// The Meta app secret and webhook verify token of `--fake-graph` stacks
/// (`scripts/whatsapp_inbound.py` signs with the same secret).
const DEV_WHATSAPP_SECRET: &str =
    r#"{"app_secret":"dev-app-secret","verify_token":"dev-verify-token"}"#;
/// The key the fake chat API of `--fake-chat` accepts.
const DEV_CHAT_KEY: &str = "dev-chat-key";
/// The bearer token the fake RPA API of `--fake-rpa` accepts.
const DEV_RPA_TOKEN: &str = "dev-rpa-token";
/// The template parameter that holds the RPA API's base URL, and the
/// secret that holds its token as `{"token": …}`.
const RPA_URL_PARAM: &str = "RpaApiUrl";
const RPA_SECRET: &str = "RpaApiSecret";

/// Points the template at the fake RPA API on `addr`: `RpaApiUrl` and the
/// `RpaApiSecret` token, each only when the template declares it (and the
/// command line did not set it), so that the flag also works with a
/// template that has no RPA functions yet. What was not wired is returned,
/// to be said.
fn wire_fake_rpa(options: &mut Options, addr: &str, template: &Template) -> Vec<String> {
    let mut not_wired = Vec::new();
    if template.parameters.contains_key(RPA_URL_PARAM) {
        options
            .params
            .entry(RPA_URL_PARAM.to_owned())
            .or_insert_with(|| format!("http://{addr}{}", nuvem_testkit::fake_rpa::BASE_PATH));
    } else {
        not_wired.push(format!("parameter {RPA_URL_PARAM}"));
    }
    if template.secrets.contains_key(RPA_SECRET) {
        options
            .secrets
            .entry(RPA_SECRET.to_owned())
            .or_insert_with(|| format!(r#"{{"token":"{DEV_RPA_TOKEN}"}}"#));
    } else {
        not_wired.push(format!("secret {RPA_SECRET}"));
    }
    not_wired
}

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Cli>> {
    let mut fake_graph = None;
    let mut fake_chat = None;
    let mut fake_rpa = None;
    let mut o = Options {
        template: PathBuf::from("template.yaml"),
        port: 3000,
        bin_dir: PathBuf::from("target/debug"),
        ..Options::default()
    };
    let mut params = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut args = args.peekable();
    let mut invoke = None;
    if args.peek().map(String::as_str) == Some("invoke") {
        args.next();
        let function = args
            .next()
            .filter(|f| !f.starts_with('-'))
            .context("invoke needs a function's logical id (see --help)")?;
        invoke = Some((function, None));
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().with_context(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--template" => o.template = value("--template")?.into(),
            "--port" => o.port = value("--port")?.parse().context("--port")?,
            "--bin-dir" => o.bin_dir = value("--bin-dir")?.into(),
            "--emulator-url" => o.emulator_url = Some(value("--emulator-url")?),
            "--stack-name" => o.stack_name = value("--stack-name")?,
            "--param" => {
                let p = value("--param")?;
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("--param {p}: expected Name=Value"))?;
                params.insert(k.to_owned(), v.to_owned());
            }
            "--secret" => {
                let p = value("--secret")?;
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("--secret {p}: expected Id=Value"))?;
                secrets.insert(k.to_owned(), v.to_owned());
            }
            "--concurrency" => {
                o.concurrency = value("--concurrency")?.parse().context("--concurrency")?;
            }
            "--faults" => o.faults = Some(value("--faults")?.parse()?),
            "--crashes" => o.crashes = Some(value("--crashes")?.parse()?),
            "--no-schedules" => o.schedules = false,
            "--quiet-functions" => o.log_functions = false,
            "--fake-graph" => fake_graph = Some(value("--fake-graph")?),
            "--fake-chat" => fake_chat = Some(value("--fake-chat")?),
            "--fake-rpa" => fake_rpa = Some(value("--fake-rpa")?),
            "-e" | "--event" if invoke.is_some() => {
                let file = value("--event")?;
                if let Some((_, event)) = invoke.as_mut() {
                    *event = Some(PathBuf::from(file));
                }
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if let Some(addr) = &fake_graph {
        params
            .entry("GraphApiUrl".to_owned())
            .or_insert_with(|| format!("http://{addr}"));
        secrets
            .entry("WhatsAppSecret".to_owned())
            .or_insert_with(|| DEV_WHATSAPP_SECRET.to_owned());
    }
    if let Some(addr) = &fake_chat {
        params
            .entry("ChatApiUrl".to_owned())
            .or_insert_with(|| format!("http://{addr}{}", nuvem_testkit::fake_chat::BASE_PATH));
        secrets
            .entry("ChatApiSecret".to_owned())
            .or_insert_with(|| format!(r#"{{"api_key":"{DEV_CHAT_KEY}"}}"#));
    }
    o.params = params;
    o.secrets = secrets;
    if let Some((function, _)) = &invoke {
        o.only = Some(function.clone());
        o.schedules = false;
    }
    Ok(Some(Cli {
        options: o,
        invoke,
        fake_graph,
        fake_chat,
        fake_rpa,
    }))
}

fn main() -> Result<()> {
    let Some(Cli {
        mut options,
        invoke,
        fake_graph,
        fake_chat,
        fake_rpa,
    }) = parse(std::env::args().skip(1))?
    else {
        print!("{HELP}");
        return Ok(());
    };
    // Which of the RPA names the template declares: read without the
    // overrides (an unreadable template is reported by the runner).
    let rpa_not_wired = match &fake_rpa {
        Some(addr) => match Template::load(&options.template, &BTreeMap::new()) {
            Ok(template) => wire_fake_rpa(&mut options, addr, &template),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Before anything is started or "ready" printed: a signal sent as
        // soon as the ready line is read must stop us cleanly, not kill us.
        // One that arrives during start-up stops the runner once it is up.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;

        // Outside APIs are never called from a local stack: Meta's is faked.
        let graph = match &fake_graph {
            Some(addr) => {
                let graph = nuvem_testkit::fake_graph::FakeGraph::start_on(addr)
                    .await
                    .with_context(|| format!("--fake-graph {addr}"))?;
                graph.add_number(
                    DEV_NUMBER.0,
                    DEV_NUMBER.1,
                    "+55 11 98765-4321",
                    "Loja de teste",
                );
                Some(graph)
            }
            None => None,
        };
        let chat = match &fake_chat {
            Some(addr) => Some(
                nuvem_testkit::fake_chat::FakeChat::start_on(addr, DEV_CHAT_KEY)
                    .await
                    .with_context(|| format!("--fake-chat {addr}"))?,
            ),
            None => None,
        };
        let rpa = match &fake_rpa {
            Some(addr) => {
                let rpa = nuvem_testkit::fake_rpa::FakeRpa::start_on(addr, DEV_RPA_TOKEN)
                    .await
                    .with_context(|| format!("--fake-rpa {addr}"))?;
                rpa.dev_script();
                Some(rpa)
            }
            None => None,
        };
        if let Some((function, event)) = invoke {
            return invoke_once(options, &function, event.as_deref()).await;
        }
        let runner = Runner::start(options).await?;
        let mut out = std::io::stdout().lock();
        write!(out, "{}", runner.describe())?;
        if let Some(graph) = &graph {
            writeln!(
                out,
                "fake Graph API on {}: phone_number_id {}, access_token {}",
                graph.url(),
                DEV_NUMBER.0,
                DEV_NUMBER.1
            )?;
            writeln!(
                out,
                "WhatsApp webhook: app secret dev-app-secret, verify token dev-verify-token"
            )?;
        }
        if let Some(chat) = &chat {
            writeln!(
                out,
                "fake chat API on {}: answers \"Resposta: <the customer's message>\"",
                chat.url()
            )?;
        }
        if let Some(rpa) = &rpa {
            writeln!(
                out,
                "fake RPA API on {}: token {DEV_RPA_TOKEN}; jobs succeed after 2 polls, \
                 [falha-negocio] / [falha-tecnica] / [trava] in a client's filter or service fail or hang them",
                rpa.url()
            )?;
            if !rpa_not_wired.is_empty() {
                writeln!(
                    out,
                    "fake RPA API: the template has no {}; not wired",
                    rpa_not_wired.join(" and no ")
                )?;
            }
        }
        writeln!(out, "nuvem-local ready on {}", runner.base_url())?;
        out.flush()?;
        drop(out);

        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("nuvem-local: stopping");
        let counts = runner.fault_counts();
        if counts.requests > 0 || counts.crashes > 0 {
            eprint!("nuvem-local: {}", counts.describe());
        }
        drop(runner);
        Ok(())
    })
}

/// `nuvem-local invoke`: starts the one function, invokes it once with the
/// event, prints its answer (stdout) and exits 1 if it failed.
async fn invoke_once(
    options: Options,
    function: &str,
    event: Option<&std::path::Path>,
) -> Result<()> {
    let event: serde_json::Value = match event {
        None => serde_json::json!({}),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the event from stdin")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the event {}", path.display()))?
            };
            serde_json::from_str(&text)
                .with_context(|| format!("the event {} is not JSON", path.display()))?
        }
    };
    let runner = Runner::start(options).await?;
    let answer = runner.invoke(function, &event).await;
    drop(runner);
    let mut out = std::io::stdout().lock();
    match answer {
        Ok(value) => {
            writeln!(out, "{value}")?;
            Ok(())
        }
        Err(nuvem_local::InvokeError::Function {
            error_type,
            message,
        }) => {
            let failure = serde_json::json!({"errorType": error_type, "errorMessage": message});
            writeln!(out, "{failure}")?;
            out.flush()?;
            std::process::exit(1)
        }
        Err(e) => bail!("{function}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn parses_the_command_line() {
        let o = parse(args("--port 4000 --param A=1 --param=B=x=y --stack-name s --emulator-url http://127.0.0.1:4566"))
            .unwrap()
            .unwrap()
            .options;
        assert_eq!(o.port, 4000);
        assert_eq!(o.params["A"], "1");
        assert_eq!(o.params["B"], "x=y");
        assert_eq!(o.stack_name, "s");
        assert_eq!(o.emulator_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(o.template, PathBuf::from("template.yaml"));
        assert!(parse(args("--help")).unwrap().is_none());
        assert!(parse(args("--nope")).is_err());
        assert!(parse(args("--param novalue")).is_err());
        let cli = parse(args("--fake-graph 127.0.0.1:3002")).unwrap().unwrap();
        assert_eq!(cli.fake_graph.as_deref(), Some("127.0.0.1:3002"));
        assert_eq!(cli.options.params["GraphApiUrl"], "http://127.0.0.1:3002");
        assert_eq!(cli.options.secrets["WhatsAppSecret"], DEV_WHATSAPP_SECRET);
        let cli = parse(args("--fake-chat 127.0.0.1:3003")).unwrap().unwrap();
        assert_eq!(cli.fake_chat.as_deref(), Some("127.0.0.1:3003"));
        assert_eq!(
            cli.options.params["ChatApiUrl"],
            "http://127.0.0.1:3003/api/v1"
        );
        assert!(cli.options.secrets["ChatApiSecret"].contains(DEV_CHAT_KEY));
        let cli = parse(args(
            "invoke Signup -e events/signup/signup.json --stack-name s",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            cli.invoke,
            Some((
                "Signup".to_owned(),
                Some(PathBuf::from("events/signup/signup.json"))
            ))
        );
        assert_eq!(cli.options.only.as_deref(), Some("Signup"));
        assert!(!cli.options.schedules);
        assert_eq!(cli.options.stack_name, "s");
        assert!(parse(args("invoke")).is_err(), "which function?");
        assert!(parse(args("invoke --port 1")).is_err());
        assert!(parse(args("-e x.json")).is_err(), "-e is invoke's");
        let cli = parse(args(
            "--fake-graph 127.0.0.1:3002 --param GraphApiUrl=http://127.0.0.1:9",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(cli.options.params["GraphApiUrl"], "http://127.0.0.1:9");
    }

    #[test]
    fn faults_and_crashes_are_options() {
        let o = parse(args(
            "--faults rate=0.2,kinds=drop --crashes 0.05,within-ms=50",
        ))
        .unwrap()
        .unwrap()
        .options;
        let faults = o.faults.unwrap();
        assert_eq!((faults.rate, faults.kinds.len()), (0.2, 1));
        let crashes = o.crashes.unwrap();
        assert_eq!(crashes.rate, 0.05);
        assert_eq!(crashes.within, std::time::Duration::from_millis(50));
        let o = parse(args("--crashes=0.1")).unwrap().unwrap().options;
        assert_eq!(o.crashes.unwrap().rate, 0.1);
        for bad in [
            "--faults 2",
            "--crashes x",
            "--crashes 0.1,every=3",
            "--crashes 1.5",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fake_rpa_is_wired_where_the_template_declares_it() {
        let cli = parse(args("--fake-rpa 127.0.0.1:3004")).unwrap().unwrap();
        assert_eq!(cli.fake_rpa.as_deref(), Some("127.0.0.1:3004"));
        // Nothing is set before the template is known.
        assert!(!cli.options.params.contains_key(RPA_URL_PARAM));

        let declared = Template::parse(
            "Parameters:\n  RpaApiUrl:\n    Type: String\n    Default: https://rpa.example.com\n\
             Resources:\n  RpaApiSecret:\n    Type: AWS::SecretsManager::Secret\n    \
             Properties:\n      SecretString: '{\"token\": \"\"}'\n",
            &BTreeMap::new(),
        )
        .unwrap();
        let mut options = cli.options.clone();
        assert!(wire_fake_rpa(&mut options, "127.0.0.1:3004", &declared).is_empty());
        assert_eq!(options.params[RPA_URL_PARAM], "http://127.0.0.1:3004/rpa");
        let secret: serde_json::Value = serde_json::from_str(&options.secrets[RPA_SECRET]).unwrap();
        assert_eq!(secret["token"], DEV_RPA_TOKEN);

        // A value given on the command line wins.
        let mut options = parse(args(
            "--fake-rpa 127.0.0.1:3004 --param RpaApiUrl=http://127.0.0.1:9",
        ))
        .unwrap()
        .unwrap()
        .options;
        wire_fake_rpa(&mut options, "127.0.0.1:3004", &declared);
        assert_eq!(options.params[RPA_URL_PARAM], "http://127.0.0.1:9");

        // A template without them is left alone (an undeclared parameter
        // would fail the stack).
        let bare = Template::parse("Resources: {}\n", &BTreeMap::new()).unwrap();
        let mut options = cli.options;
        assert_eq!(
            wire_fake_rpa(&mut options, "127.0.0.1:3004", &bare),
            ["parameter RpaApiUrl", "secret RpaApiSecret"]
        );
        assert!(options.params.is_empty() && options.secrets.is_empty());
    }
}
