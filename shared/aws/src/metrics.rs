//! Business metrics in CloudWatch Embedded Metric Format (EMF): counters
//! through the `metrics` facade, written to stdout as EMF documents at the
//! end of each invocation by `metrics_cloudwatch_embedded`. CloudWatch Logs
//! turns those lines into metrics: no API call, nothing on the request path.
//!
//! Every metric nuvem emits is named here, with its dimensions, so the
//! template's alarms and dashboards have one list to follow (README,
//! "Metrics"). The namespace comes from `METRICS_NAMESPACE` (the template:
//! `nuvem/<stack name>`); without it nothing is recorded, so tests and tools
//! that do not set it print no EMF lines.

use std::sync::OnceLock;

use metrics_cloudwatch_embedded::{Builder, Collector};

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Installs the recorder once per process (cheap: no I/O). A later call, or
/// one without `METRICS_NAMESPACE`, does nothing.
pub fn install() {
    COLLECTOR.get_or_init(|| {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())?;
        Builder::new()
            .cloudwatch_namespace(namespace)
            .init()
            .map_err(|e| tracing::warn!(error = %e, "metrics not recorded"))
            .ok()
    });
}

/// Writes what was counted since the last flush as EMF lines on stdout.
pub fn flush() {
    if let Some(Some(collector)) = COLLECTOR.get() {
        let out = std::io::stdout();
        if let Err(e) = collector.flush(out.lock()) {
            tracing::warn!(error = %e, "metrics not written");
        }
    }
}

fn count(name: &'static str, labels: &[(&'static str, &'static str)]) {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::from_static_parts(k, v))
        .collect();
    metrics::counter!(name, labels).increment(1);
}

/// `UnreadableMessages`: a queue message whose body can never be read, set
/// aside for the dead-letter queue instead of being retried.
pub fn unreadable_message() {
    count("UnreadableMessages", &[]);
}

/// `Signups`: an account signed up (it waits for review).
pub fn signup() {
    count("Signups", &[]);
}

/// `AccountReviews{decision}`: an admin approved or rejected an account.
pub fn account_review(decision: &'static str) {
    count("AccountReviews", &[("decision", decision)]);
}

/// `WebhookDeliveryAttempts{outcome}`: one attempt to deliver an event to a
/// tenant's endpoint, `succeeded` or `failed` (whether retried or not). The
/// delivery failure-rate alarm is `failed` over both.
pub fn delivery_attempt(succeeded: bool) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    count("WebhookDeliveryAttempts", &[("outcome", outcome)]);
}

/// `WebhookDeliveriesExhausted`: a delivery that will not be tried again
/// (attempts spent, or the endpoint disabled).
pub fn delivery_exhausted() {
    count("WebhookDeliveriesExhausted", &[]);
}

/// `QuotaAlerts{threshold}`: an account crossed 80, 95 or 100 % of its quota.
pub fn quota_alert(percent: u8) {
    let threshold = match percent {
        80 => "80",
        95 => "95",
        _ => "100",
    };
    count("QuotaAlerts", &[("threshold", threshold)]);
}

/// `WhatsAppInbound`: a customer's message stored (a first delivery, not
/// Meta's retries).
pub fn whatsapp_inbound() {
    count("WhatsAppInbound", &[]);
}

/// `WhatsAppOutbound{outcome}`: a message to a customer `sent` to the Graph
/// API, or `failed` for good.
pub fn whatsapp_outbound(sent: bool) {
    let outcome = if sent { "sent" } else { "failed" };
    count("WhatsAppOutbound", &[("outcome", outcome)]);
}

/// `BotDecisions{decision}`: what the bot did with a message: `reply`,
/// `handoff` (to a person) or `skip`.
pub fn bot_decision(decision: &'static str) {
    count("BotDecisions", &[("decision", decision)]);
}

/// `RpaExecutions{step,status}`: an RPA execution ended (`succeeded`,
/// `failed`, `timed_out`, `needs_review`, `cancelled`).
pub fn rpa_execution(step: &'static str, status: &'static str) {
    count("RpaExecutions", &[("step", step), ("status", status)]);
}
