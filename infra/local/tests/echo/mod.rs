//! The runner on tests/fixtures/template.yaml, whose functions are all the
//! `echo` example in different roles: options shared by the runner's tests.

use std::path::PathBuf;
use std::time::Duration;

use nuvem_local::Options;

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/template.yaml")
}

/// `target/debug/examples`, next to this test's `target/debug/deps`.
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// Generous start-up limits (a loaded machine starts processes slowly; the
/// runner returns as soon as every function is up). The template's function
/// timeouts stay as they are: the runner's timeout test needs a short one.
pub fn options(stack: &str, endpoint: &str) -> Options {
    Options {
        template: fixture(),
        bin_dir: examples_dir(),
        emulator_url: Some(endpoint.to_owned()),
        stack_name: stack.to_owned(),
        log_functions: std::env::var_os("NUVEM_LOCAL_TEST_LOGS").is_some(),
        sqs_wait_secs: 1,
        init_timeout: Duration::from_secs(60),
        ready_timeout: Duration::from_secs(120),
        ..Options::default()
    }
}
