//! `/v1/rpa/schedules…`: what `rpa-scheduler` starts, and when.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::store::{ScheduleRecord, ScheduleWriteError};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::schedule::CronSchedule;
use nuvem_domain::rpa::schedule_settings::{
    self as rules, SchedulePatch, ScheduleRequest, ScheduleSettings,
};
use serde::Serialize;

use crate::Deps;

/// A schedule as the API shows it.
#[derive(Serialize)]
struct ScheduleView<'a> {
    id: &'a str,
    #[serde(flatten)]
    settings: &'a ScheduleSettings,
    next_run: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    paused_reason: Option<&'a str>,
    created_at: DateTime<Utc>,
    created_by: &'a Actor,
    updated_at: DateTime<Utc>,
    updated_by: &'a Actor,
}

impl<'a> From<&'a ScheduleRecord> for ScheduleView<'a> {
    fn from(s: &'a ScheduleRecord) -> Self {
        ScheduleView {
            id: &s.id,
            settings: &s.settings,
            next_run: s.next_run,
            last_run: s.last_run,
            consecutive_failures: s.consecutive_failures,
            paused_reason: s.paused_reason.as_deref(),
            created_at: s.created_at,
            created_by: &s.created_by,
            updated_at: s.updated_at,
            updated_by: &s.updated_by,
        }
    }
}

fn no_schedule() -> Problem {
    Problem::not_found("no such schedule")
}

fn write_problem(e: ScheduleWriteError) -> Problem {
    match e {
        ScheduleWriteError::NameTaken => {
            Problem::conflict("the account has a schedule of this name already")
        }
        ScheduleWriteError::Changed => {
            Problem::conflict("the schedule changed while this request was made; try again")
        }
    }
}

/// When an active schedule runs next, from now.
fn next_run(
    settings: &ScheduleSettings,
    cron: &CronSchedule,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if settings.active {
        cron.next_after(now)
    } else {
        None
    }
}

async fn schedule(deps: &Deps, req: &Request, who: &Principal) -> Result<ScheduleRecord, Problem> {
    let id = http::path_param(req, "id")?;
    if !rules::is_schedule_id(id) {
        return Err(no_schedule());
    }
    deps.core
        .store
        .get_schedule(&who.account_id, id)
        .await?
        .ok_or_else(no_schedule)
}

pub(crate) async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: ScheduleRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let (settings, cron) = body.validate().map_err(Problem::validation)?;
    let now = Utc::now();
    let schedule = ScheduleRecord {
        id: rules::new_schedule_id(),
        account_id: who.account_id.clone(),
        next_run: next_run(&settings, &cron, now),
        settings,
        last_run: None,
        consecutive_failures: 0,
        paused_reason: None,
        created_at: now,
        created_by: who.actor(),
        updated_at: now,
        updated_by: who.actor(),
        version: 1,
    };
    deps.core
        .store
        .create_schedule(&schedule)
        .await?
        .map_err(write_problem)?;
    http::json(201, &ScheduleView::from(&schedule))
}

pub(crate) async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let limit = http::page_limit(req)?;
    let page = http::listing(
        deps.core
            .store
            .list_schedules(&who.account_id, limit, http::query(req, "cursor"))
            .await,
    )?;
    http::page_json(&page, ScheduleView::from)
}

pub(crate) async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &ScheduleView::from(&schedule(deps, req, who).await?))
}

/// A change of when it runs, or making it active again (after a pause
/// too), counts from now and forgets past failures.
pub(crate) async fn update(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let patch: SchedulePatch = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let current = schedule(deps, req, who).await?;
    let reactivated = patch.active == Some(true);
    let (settings, cron) = patch
        .apply(&current.settings)
        .map_err(Problem::validation)?;
    let now = Utc::now();
    let timing_changed = settings.cron != current.settings.cron
        || settings.time_zone != current.settings.time_zone
        || settings.active != current.settings.active;
    let mut next = ScheduleRecord {
        updated_at: now,
        updated_by: who.actor(),
        version: current.version + 1,
        ..current.clone()
    };
    if timing_changed || reactivated {
        next.next_run = next_run(&settings, &cron, now);
    }
    if reactivated {
        next.consecutive_failures = 0;
        next.paused_reason = None;
    }
    next.settings = settings;
    deps.core
        .store
        .update_schedule(&current, &next)
        .await?
        .map_err(write_problem)?;
    http::json(200, &ScheduleView::from(&next))
}

pub(crate) async fn delete(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let id = http::path_param(req, "id")?;
    if rules::is_schedule_id(id) && deps.core.store.delete_schedule(&who.account_id, id).await? {
        http::no_content()
    } else {
        Err(no_schedule())
    }
}
