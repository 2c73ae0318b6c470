//! What a tenant's RPA schedule does and when: a unique name, a cron
//! expression in a time zone (see [`super::schedule`]), a type and its
//! parameters.

use serde::{Deserialize, Serialize};

use super::carrier::CarrierCode;
use super::schedule::{CronSchedule, DEFAULT_TIME_ZONE};
use crate::ids;
use crate::validation::{FieldError, check, fold_case_and_spacing, text_field};

pub const SCHEDULE_ID_PREFIX: &str = "sch";
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_CARRIERS: usize = 50;
/// `month_offset` picks the month a run works on, from the month it runs
/// in: 0 this month, -1 the previous one.
pub const MIN_MONTH_OFFSET: i32 = -12;
pub const MAX_MONTH_OFFSET: i32 = 12;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
pub const MIN_RETENTION_DAYS: u32 = 7;
pub const MAX_RETENTION_DAYS: u32 = 3650;

pub fn new_schedule_id() -> String {
    ids::new_id(SCHEDULE_ID_PREFIX)
}

pub fn is_schedule_id(id: &str) -> bool {
    ids::has_prefix(id, SCHEDULE_ID_PREFIX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The month's process for every active client (of the chosen
    /// carriers) that has none.
    CreateMonthlyProcesses,
    /// A download for every process of the month awaiting one.
    RunDownloads,
    /// The monthly report, by email to the account.
    SendReport,
    /// Deletes execution logs older than `retention_days`.
    PurgeOldLogs,
    /// The account's RPA data as CSV in S3, emailed as a link.
    ExportData,
}

impl ScheduleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleKind::CreateMonthlyProcesses => "create_monthly_processes",
            ScheduleKind::RunDownloads => "run_downloads",
            ScheduleKind::SendReport => "send_report",
            ScheduleKind::PurgeOldLogs => "purge_old_logs",
            ScheduleKind::ExportData => "export_data",
        }
    }
}

/// A schedule's parameters; each type reads the ones that concern it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleParameters {
    /// Only these carriers' clients (`create_monthly_processes`,
    /// `run_downloads`); empty: every carrier.
    #[serde(default)]
    pub carriers: Vec<CarrierCode>,
    /// The month worked on, from the month the run falls in (local time).
    #[serde(default)]
    pub month_offset: i32,
    /// `purge_old_logs`: how old a log line may get.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

fn default_retention() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// `POST /v1/rpa/schedules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub name: String,
    pub cron: String,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub time_zone: Option<String>,
    #[serde(rename = "type")]
    pub kind: ScheduleKind,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub parameters: Option<ScheduleParameters>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
}

/// `PATCH /v1/rpa/schedules/{id}`: absent fields keep their value; the type
/// cannot change. `parameters` replaces them whole.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub cron: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub time_zone: Option<String>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub parameters: Option<ScheduleParameters>,
    #[serde(default, deserialize_with = "crate::validation::not_null")]
    pub active: Option<bool>,
}

/// A schedule's validated settings, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSettings {
    pub name: String,
    /// Normalized (`0 6 L * MON-FRI`).
    pub cron: String,
    pub time_zone: String,
    #[serde(rename = "type")]
    pub kind: ScheduleKind,
    pub parameters: ScheduleParameters,
    pub active: bool,
}

impl ScheduleSettings {
    /// The settings' cron in their zone (valid once validated).
    pub fn schedule(&self) -> Option<CronSchedule> {
        CronSchedule::parse(&self.cron, &self.time_zone).ok()
    }

    /// The name as uniqueness compares it: case and spacing do not count.
    pub fn name_key(&self) -> String {
        fold_case_and_spacing(&self.name)
    }
}

/// The month a run due at `due` works on: the month of its local date,
/// moved by the schedule's `month_offset`.
pub fn run_month(
    cron: &CronSchedule,
    parameters: &ScheduleParameters,
    due: chrono::DateTime<chrono::Utc>,
) -> super::month::Month {
    super::month::Month::of(cron.local_date(due)).offset(parameters.month_offset)
}

impl ScheduleRequest {
    pub fn validate(self) -> Result<(ScheduleSettings, CronSchedule), Vec<FieldError>> {
        validate(
            self.name,
            &self.cron,
            self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE),
            self.kind,
            self.parameters.unwrap_or_else(|| ScheduleParameters {
                retention_days: DEFAULT_RETENTION_DAYS,
                ..ScheduleParameters::default()
            }),
            self.active.unwrap_or(true),
        )
    }
}

impl SchedulePatch {
    pub fn apply(
        self,
        current: &ScheduleSettings,
    ) -> Result<(ScheduleSettings, CronSchedule), Vec<FieldError>> {
        let current = current.clone();
        validate(
            self.name.unwrap_or(current.name),
            self.cron.as_deref().unwrap_or(&current.cron),
            self.time_zone.as_deref().unwrap_or(&current.time_zone),
            current.kind,
            self.parameters.unwrap_or(current.parameters),
            self.active.unwrap_or(current.active),
        )
    }
}

fn validate(
    name: String,
    cron: &str,
    time_zone: &str,
    kind: ScheduleKind,
    parameters: ScheduleParameters,
    active: bool,
) -> Result<(ScheduleSettings, CronSchedule), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = check(&mut errors, text_field("name", &name, 1, MAX_NAME_CHARS));
    let schedule = CronSchedule::parse(cron, time_zone)
        .map_err(|e| errors.extend(e))
        .ok();
    if parameters.carriers.len() > MAX_CARRIERS {
        errors.push(FieldError::new(
            "parameters.carriers",
            format!("must list at most {MAX_CARRIERS} carriers"),
        ));
    }
    if !(MIN_MONTH_OFFSET..=MAX_MONTH_OFFSET).contains(&parameters.month_offset) {
        errors.push(FieldError::new(
            "parameters.month_offset",
            format!("must be between {MIN_MONTH_OFFSET} and {MAX_MONTH_OFFSET}"),
        ));
    }
    if !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&parameters.retention_days) {
        errors.push(FieldError::new(
            "parameters.retention_days",
            format!("must be between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS}"),
        ));
    }
    let mut parameters = parameters;
    parameters.carriers.sort();
    parameters.carriers.dedup();
    match (name, schedule) {
        (Some(name), Some(schedule)) if errors.is_empty() => Ok((
            ScheduleSettings {
                name,
                cron: schedule.expr().to_owned(),
                time_zone: schedule.time_zone().to_owned(),
                kind,
                parameters,
                active,
            },
            schedule,
        )),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        body: serde_json::Value,
    ) -> Result<(ScheduleSettings, CronSchedule), Vec<FieldError>> {
        serde_json::from_value::<ScheduleRequest>(body)
            .expect("shape")
            .validate()
    }

    #[test]
    fn a_schedule_takes_its_defaults() {
        let (s, _) = request(json!({
            "name": "Processos do mês", "cron": "0 6 1 * *", "type": "create_monthly_processes"
        }))
        .unwrap();
        assert_eq!(s.time_zone, "America/Sao_Paulo");
        assert!(s.active);
        assert_eq!(s.parameters.month_offset, 0);
        assert_eq!(s.parameters.retention_days, DEFAULT_RETENTION_DAYS);
        assert!(s.parameters.carriers.is_empty());
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let errors = request(json!({
            "name": "", "cron": "0 6 * *", "time_zone": "Brasil/Brasilia", "type": "send_report",
            "parameters": {"month_offset": 13, "retention_days": 1}
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "cron",
                "time_zone",
                "parameters.month_offset",
                "parameters.retention_days"
            ]
        );
        assert!(
            serde_json::from_value::<ScheduleRequest>(json!({
                "name": "x", "cron": "* * * * *", "type": "backup"
            }))
            .is_err()
        );
        assert!(serde_json::from_value::<ScheduleRequest>(json!({
            "name": "x", "cron": "* * * * *", "type": "run_downloads", "parameters": {"carrier": "VIVO"}
        }))
        .is_err());
    }

    #[test]
    fn a_patch_keeps_the_type_and_what_it_does_not_name() {
        let (current, _) = request(json!({
            "name": "Downloads", "cron": "0 8 * * mon-fri", "type": "create_monthly_processes",
            "parameters": {"carriers": ["VIVO", "OI", "VIVO"]}
        }))
        .unwrap();
        assert_eq!(current.cron, "0 8 * * MON-FRI");
        assert_eq!(current.parameters.carriers.len(), 2);
        let patch: SchedulePatch =
            serde_json::from_value(json!({"active": false, "time_zone": "UTC"})).unwrap();
        let (next, _) = patch.apply(&current).unwrap();
        assert_eq!(
            (next.kind, next.active, next.time_zone.as_str()),
            (ScheduleKind::CreateMonthlyProcesses, false, "UTC")
        );
        assert_eq!(next.parameters, current.parameters);
    }

    #[test]
    fn a_run_works_on_its_local_month_moved_by_the_offset() {
        let (s, cron) = request(json!({
            "name": "x", "cron": "0 0 1 * *", "type": "create_monthly_processes",
            "parameters": {"month_offset": -1}
        }))
        .unwrap();
        // 2026-12-01 00:00 in São Paulo is 03:00 UTC: December there, so
        // the previous month is November.
        let due = "2026-12-01T03:00:00Z".parse().unwrap();
        assert_eq!(run_month(&cron, &s.parameters, due).to_string(), "2026-11");
        // 02:59 UTC is still 30 November in São Paulo.
        let before = "2026-12-01T02:59:00Z".parse().unwrap();
        assert_eq!(
            run_month(&cron, &s.parameters, before).to_string(),
            "2026-10"
        );
    }

    #[test]
    fn names_compare_without_case_or_spacing() {
        let (a, _) = request(
            json!({"name": " Downloads  Diários", "cron": "* * * * *", "type": "create_monthly_processes"}),
        )
        .unwrap();
        let (b, _) = request(
            json!({"name": "downloads diários", "cron": "* * * * *", "type": "create_monthly_processes"}),
        )
        .unwrap();
        assert_eq!(a.name_key(), b.name_key());
    }
}
