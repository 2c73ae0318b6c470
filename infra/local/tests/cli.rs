//! The `nuvem-local` binary: starts its own emulator, prints the ready line,
//! serves, and stops everything on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_binary_serves_until_sigterm_and_cleans_up() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let examples = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nuvem-local"))
        .args([
            "--template",
            manifest
                .join("tests/fixtures/template.yaml")
                .to_str()
                .unwrap(),
        ])
        .args([
            "--port",
            "0",
            "--stack-name",
            "cli",
            "--param",
            "Greeting=oi",
            "--quiet-functions",
        ])
        .arg("--bin-dir")
        .arg(&examples)
        .env_remove("NUVEM_EMULATOR_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines.next().expect("output before ready").unwrap();
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("nuvem-local ready on ") {
            break url.to_owned();
        }
    };
    let text = printed.join("\n");
    let emulator = printed
        .iter()
        .find_map(|l| l.strip_prefix("emulator").map(|u| u.trim().to_owned()))
        .expect("emulator line");
    assert!(text.contains("stack      cli"), "{text}");
    assert!(text.contains("/items/{id}"), "{text}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("{base}/public/x"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(body["env"]["GREETING"], "oi from us-east-1, 123456789012");
    let function_pid = body["pid"].as_u64().unwrap();

    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = until("nuvem-local to stop", || child.try_wait().unwrap());
    assert!(status.success(), "{status}");
    // What it started goes with it (the last of it may take a moment).
    until("the function process to go", || {
        gone(function_pid as i32).then_some(())
    });
    let addr = emulator.trim_start_matches("http://");
    until(&format!("the emulator at {addr} to go"), || {
        std::net::TcpStream::connect(addr).is_err().then_some(())
    });
}

/// Polls `check` until it returns `Some`; fails after a cap that only a
/// hung process reaches.
fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when the process `pid` (an `echo` function) no longer runs: no such
/// process, a zombie waiting to be reaped, or the pid reused by another.
fn gone(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return true;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    comm != "echo" || matches!(state, Some('Z' | 'X'))
}

/// `nuvem-local invoke`, as SAM users run `sam local invoke`: one
/// invocation of one function with an event file; its answer on stdout, the
/// REPORT line on stderr, exit status 1 when the function fails.
#[test]
fn invoke_runs_one_function_once_with_an_event_file() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emulator = rt.block_on(nuvem_testkit::emulator()).endpoint().to_owned();
    let dir = std::env::temp_dir().join(format!("nuvem-invoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let invoke = |function: &str, event: &serde_json::Value| {
        let file = dir.join(format!("{function}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let examples = std::env::current_exe().unwrap();
        let examples = examples
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples");
        Command::new(env!("CARGO_BIN_EXE_nuvem-local"))
            .args(["invoke", function, "-e"])
            .arg(&file)
            .arg("--template")
            .arg(manifest.join("tests/fixtures/template.yaml"))
            .arg("--bin-dir")
            .arg(&examples)
            .args(["--stack-name", "cli-invoke", "--emulator-url", &emulator])
            .output()
            .unwrap()
    };

    let out = invoke("Echo", &serde_json::json!({"rawPath": "/public/hello"}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    assert_eq!(answer["statusCode"], 200);
    let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["event"]["rawPath"], "/public/hello",
        "the file's event"
    );
    assert!(stderr.contains("REPORT Echo RequestId:"), "{stderr}");

    let out = invoke("Echo", &serde_json::json!({"rawPath": "/fail"}));
    assert_eq!(out.status.code(), Some(1));
    let failure: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failure["errorMessage"], "handler failed on purpose");

    let out = invoke("Nope", &serde_json::json!({}));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no function Nope in the template"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
