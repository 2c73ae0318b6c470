//! The runner's output: its own lines, the functions' lines and REPORT lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where output goes. `runner`: start-up, restarts, REPORT lines;
/// `functions`: what the function processes print; `capture`: every line
/// the functions print, printed or not (what CloudWatch would keep).
#[derive(Clone, Debug)]
pub struct Log {
    pub runner: bool,
    pub functions: bool,
    pub capture: Option<FunctionOutput>,
}

/// Every line the functions of a runner printed, as `[LogicalId] line`: for
/// tests that check what a deployment would log (no secret, say).
#[derive(Clone, Debug, Default)]
pub struct FunctionOutput(Arc<Mutex<Vec<String>>>);

impl FunctionOutput {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

impl Log {
    pub fn runner(&self, line: &str) {
        if self.runner {
            let _ = writeln!(std::io::stderr().lock(), "nuvem-local: {line}");
        }
    }

    pub fn function_line(&self, function: &str, line: &str, _stderr: bool) {
        if let Some(capture) = &self.capture {
            capture.push(format!("[{function}] {line}"));
        }
        if self.functions {
            let _ = writeln!(std::io::stderr().lock(), "[{function}] {line}");
        }
    }

    /// A line shaped like Lambda's REPORT line.
    pub fn report(
        &self,
        function: &str,
        request_id: &str,
        duration: Option<Duration>,
        init: Option<Duration>,
        memory: Option<(u64, u64)>,
        status: Option<&str>,
    ) {
        if !self.runner {
            return;
        }
        let mut line = format!("REPORT {function} RequestId: {request_id}");
        if let Some(d) = duration {
            let ms = d.as_secs_f64() * 1000.0;
            line.push_str(&format!(
                " Duration: {ms:.2} ms Billed Duration: {} ms",
                ms.ceil() as u64
            ));
        }
        if let Some((used, size)) = memory {
            line.push_str(&format!(
                " Memory Size: {size} MB Max Memory Used: {used} MB"
            ));
        }
        if let Some(i) = init {
            line.push_str(&format!(
                " Init Duration: {:.2} ms",
                i.as_secs_f64() * 1000.0
            ));
        }
        if let Some(s) = status {
            line.push(' ');
            line.push_str(s);
        }
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}
