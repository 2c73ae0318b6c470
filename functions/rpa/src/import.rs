//! `POST /v1/rpa/clients/import`: a CSV of clients, each row created,
//! updated (a client with the same CNPJ, carrier, unit and service exists)
//! or refused with its reasons. A row is one write, all or nothing, and an
//! import sent again gives the same clients: it can be repeated safely
//! after a timeout or a `failed` row.

use std::collections::HashSet;

use futures::StreamExt;
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::client::PasswordChange;
use nuvem_domain::rpa::client_import::{self, ImportError, ImportRow, MAX_IMPORT_BYTES, RowClient};
use nuvem_domain::validation::FieldError;
use serde::Serialize;

use crate::Deps;
use crate::clients::{changed_record, new_record, no_such_carrier};

/// Rows written side by side: enough to import the largest file well
/// within the API's 30 s, few enough not to throttle a small table.
const ROWS_IN_FLIGHT: usize = 8;
/// Attempts of a row whose client changes under it (another import or
/// request writing the same client at the same moment).
const ROW_ATTEMPTS: usize = 3;

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Created,
    Updated,
    /// The row states the client as it is already.
    Unchanged,
    /// The row is wrong; nothing was written.
    Refused,
    /// nuvem could not write the row now; nothing was written, and sending
    /// the file again is safe.
    Failed,
}

#[derive(Serialize)]
struct RowReport {
    line: u64,
    result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

#[derive(Serialize, Default)]
struct Summary {
    rows: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    refused: usize,
    failed: usize,
}

pub(crate) async fn import(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body = http::raw_body(req, MAX_IMPORT_BYTES, &["text/csv", "text/plain"])?;
    let rows = client_import::parse(body).map_err(file_problem)?;
    let carriers: HashSet<CarrierCode> = deps
        .core
        .store
        .all_carriers(&who.account_id)
        .await?
        .into_iter()
        .map(|c| c.code)
        .collect();
    let reports: Vec<RowReport> = futures::stream::iter(rows)
        .map(|row| import_row(deps, who, &carriers, row))
        .buffered(ROWS_IN_FLIGHT)
        .collect()
        .await;
    let mut summary = Summary {
        rows: reports.len(),
        ..Summary::default()
    };
    for r in &reports {
        *match r.result {
            Outcome::Created => &mut summary.created,
            Outcome::Updated => &mut summary.updated,
            Outcome::Unchanged => &mut summary.unchanged,
            Outcome::Refused => &mut summary.refused,
            Outcome::Failed => &mut summary.failed,
        } += 1;
    }
    http::json(
        200,
        &serde_json::json!({"summary": summary, "rows": reports}),
    )
}

fn file_problem(e: ImportError) -> Problem {
    match e {
        ImportError::Header(errors) => Problem::validation(errors),
        e => Problem::validation(vec![FieldError::new("body", e.to_string())]),
    }
}

async fn import_row(
    deps: &Deps,
    who: &Principal,
    carriers: &HashSet<CarrierCode>,
    row: ImportRow,
) -> RowReport {
    let report = |result, client_id, errors| RowReport {
        line: row.line,
        result,
        client_id,
        errors,
    };
    let client = match row.outcome {
        Ok(client) => client,
        Err(errors) => return report(Outcome::Refused, None, errors),
    };
    if !carriers.contains(&client.settings.carrier) {
        return report(
            Outcome::Refused,
            None,
            vec![no_such_carrier(&client.settings.carrier)],
        );
    }
    match upsert(deps, who, &client).await {
        Ok((outcome, id)) => report(outcome, Some(id), Vec::new()),
        Err(problem) => {
            tracing::warn!(line = row.line, detail = ?problem.detail, "import row not written");
            report(
                Outcome::Failed,
                None,
                vec![FieldError::new(
                    "row",
                    "could not be written now; send the file again",
                )],
            )
        }
    }
}

/// Creates the client, or updates the one with the same identity. An empty
/// password cell keeps the stored password.
async fn upsert(
    deps: &Deps,
    who: &Principal,
    row: &RowClient,
) -> Result<(Outcome, String), Problem> {
    let store = &deps.core.store;
    for _ in 0..ROW_ATTEMPTS {
        let existing = store
            .client_id_by_key(&who.account_id, &row.settings.unique_key())
            .await?;
        let Some(id) = existing else {
            let client = new_record(deps, who, row.settings.clone(), row.password.as_ref()).await?;
            match store.create_client(&client, false).await? {
                Ok(()) => return Ok((Outcome::Created, client.id)),
                // Made by someone else meanwhile: update it.
                Err(_) => continue,
            }
        };
        // Claimed but not yet (or no longer) written: look again.
        let Some(current) = store.get_client(&who.account_id, &id).await? else {
            continue;
        };
        let settings = row.applied_to(&current.settings);
        if settings == current.settings && row.password.is_none() {
            return Ok((Outcome::Unchanged, id));
        }
        let change = row
            .password
            .clone()
            .map_or(PasswordChange::Keep, PasswordChange::Set);
        let next = changed_record(deps, who, &current, settings, change).await?;
        match store.update_client(&current, &next, false).await? {
            Ok(()) => return Ok((Outcome::Updated, id)),
            // Changed meanwhile (imports do not check carriers: never
            // `NoCarrier`): read it again.
            Err(_) => continue,
        }
    }
    Err(Problem::conflict(
        "the client kept changing while it was imported",
    ))
}
