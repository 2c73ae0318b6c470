//! `export_data`: an account's RPA data as CSV files (UTF-8, `,`), one per
//! kind. The clients' file has exactly the import template's columns, with
//! the portal password left blank (it never leaves sealed), so it imports
//! back as it is: into another account, or into this one to keep every
//! client as it was.

use chrono::{DateTime, NaiveDate, Utc};

use super::carrier::{CarrierCode, CarrierSettings};
use super::client::ClientSettings;
use super::client_import::TEMPLATE_HEADER;
use super::month::Month;
use super::process::{Invoice, ProcessStatus};
use super::report::reais;
use crate::keys::Actor;

pub const EXPORT_ID_PREFIX: &str = "exp";
/// Most rows one file holds; the event and the email say when a file was
/// cut there.
pub const MAX_EXPORT_ROWS: usize = 200_000;

pub const CARRIERS_HEADER: &str =
    "code,name,has_rpa,portal_url,rpa_settings,active,job_timeout_minutes,max_attempts";
pub const PROCESSES_HEADER: &str = "id,client_id,legal_name,carrier,month,status,invoice_file_name,due_date,amount_brl,access_key,manual_upload,approved_by_key_id,approved_by_key_name,approved_at,filed_at,filing_protocol,download_attempts,filing_attempts,created_at";

/// One process as the export shows it.
pub struct ProcessRow<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub legal_name: &'a str,
    pub carrier: &'a CarrierCode,
    pub month: Month,
    pub status: ProcessStatus,
    pub invoice: Option<&'a Invoice>,
    pub manual_upload: bool,
    pub approved_by: Option<&'a Actor>,
    pub approved_at: Option<DateTime<Utc>>,
    pub filed_at: Option<DateTime<Utc>>,
    pub filing_protocol: Option<&'a str>,
    pub download_attempts: u32,
    pub filing_attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// A file of an export as its event and email name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportedFile {
    pub name: String,
    pub rows: usize,
    pub bytes: usize,
    pub truncated: bool,
    /// A presigned GET, valid until the export's `expires_at`.
    pub url: String,
}

/// A CSV file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    pub name: &'static str,
    /// Data rows written (the header not counted).
    pub rows: usize,
    /// Whether rows past [`MAX_EXPORT_ROWS`] were left out.
    pub truncated: bool,
    pub bytes: Vec<u8>,
}

pub fn carriers_csv<'a>(
    carriers: impl IntoIterator<Item = (&'a CarrierCode, &'a CarrierSettings)>,
) -> CsvFile {
    write(
        "carriers.csv",
        CARRIERS_HEADER,
        carriers.into_iter().map(|(code, c)| {
            vec![
                code.as_str().to_owned(),
                c.name.clone(),
                c.has_rpa.to_string(),
                c.portal_url.clone().unwrap_or_default(),
                c.rpa_settings.to_string(),
                c.active.to_string(),
                c.job_timeout_minutes.to_string(),
                c.max_attempts.to_string(),
            ]
        }),
    )
}

pub fn clients_csv<'a>(clients: impl IntoIterator<Item = &'a ClientSettings>) -> CsvFile {
    write(
        "clients.csv",
        TEMPLATE_HEADER,
        clients.into_iter().map(|c| {
            vec![
                c.legal_name.clone(),
                c.sat_name.clone(),
                c.cnpj.as_str().to_owned(),
                c.carrier.as_str().to_owned(),
                c.filter.clone(),
                c.service.clone(),
                c.sat_data.clone(),
                c.unit.clone(),
                c.portal_login.clone(),
                String::new(),
                c.cpf
                    .as_ref()
                    .map(|d| d.as_str().to_owned())
                    .unwrap_or_default(),
                c.active.to_string(),
            ]
        }),
    )
}

pub fn processes_csv<'a>(processes: impl IntoIterator<Item = ProcessRow<'a>>) -> CsvFile {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    write(
        "processes.csv",
        PROCESSES_HEADER,
        processes.into_iter().map(|p| {
            let invoice = p.invoice;
            vec![
                p.id.to_owned(),
                p.client_id.to_owned(),
                p.legal_name.to_owned(),
                p.carrier.as_str().to_owned(),
                p.month.to_string(),
                p.status.as_str().to_owned(),
                invoice.map(|i| i.file_name.clone()).unwrap_or_default(),
                invoice
                    .and_then(|i| i.due_date)
                    .map(|d: NaiveDate| d.to_string())
                    .unwrap_or_default(),
                invoice
                    .and_then(|i| i.amount_cents)
                    .map(reais)
                    .unwrap_or_default(),
                invoice
                    .and_then(|i| i.access_key.clone())
                    .unwrap_or_default(),
                p.manual_upload.to_string(),
                p.approved_by.map(|a| a.key_id.clone()).unwrap_or_default(),
                p.approved_by
                    .map(|a| a.key_name.clone())
                    .unwrap_or_default(),
                time(p.approved_at),
                time(p.filed_at),
                p.filing_protocol.unwrap_or_default().to_owned(),
                p.download_attempts.to_string(),
                p.filing_attempts.to_string(),
                p.created_at.to_rfc3339(),
            ]
        }),
    )
}

fn write(name: &'static str, header: &str, rows: impl Iterator<Item = Vec<String>>) -> CsvFile {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail; every row has the header's width.
    let _ = out.write_record(header.split(','));
    let mut written = 0;
    let mut truncated = false;
    for row in rows {
        if written == MAX_EXPORT_ROWS {
            truncated = true;
            break;
        }
        let _ = out.write_record(&row);
        written += 1;
    }
    CsvFile {
        name,
        rows: written,
        truncated,
        bytes: out.into_inner().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpa::client::ClientRequest;
    use crate::rpa::client_import;
    use serde_json::json;

    fn client(legal_name: &str, unit: &str) -> ClientSettings {
        serde_json::from_value::<ClientRequest>(json!({
            "legal_name": legal_name, "sat_name": "PADARIA", "cnpj": "11.222.333/0001-81",
            "carrier": "VIVO", "filter": "conta 1; \"sede\"", "service": "Móvel",
            "sat_data": "linha 1, \"linha 2\"", "unit": unit, "portal_login": "financeiro@padaria.com.br",
            "portal_password": "s3nh@", "cpf": "529.982.247-25", "active": false
        }))
        .unwrap()
        .validate()
        .unwrap()
        .0
    }

    #[test]
    fn the_clients_file_imports_back_as_the_same_clients_without_passwords() {
        let clients = [
            client("Padaria Pão Quente, Ltda", "Matriz"),
            client("=HYPERLINK(\"x\")", "Filial"),
        ];
        let file = clients_csv(&clients);
        assert_eq!((file.rows, file.truncated), (2, false));
        let text = String::from_utf8(file.bytes.clone()).unwrap();
        assert!(!text.contains("s3nh@"), "{text}");
        let rows = client_import::parse(&file.bytes).unwrap();
        assert_eq!(rows.len(), 2);
        for (row, expected) in rows.iter().zip(&clients) {
            let back = row.outcome.as_ref().expect("a valid row");
            assert_eq!(&back.settings, expected);
            assert!(
                back.password.is_none(),
                "a blank password keeps the stored one"
            );
        }
    }

    #[test]
    fn processes_show_their_invoice_and_approval() {
        let vivo = CarrierCode::parse("VIVO").unwrap();
        let at = "2026-11-05T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let invoice = Invoice {
            s3_key: "acc/cli/2026-11.pdf".into(),
            file_name: "fatura, novembro.pdf".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 11, 20),
            amount_cents: Some(18990),
            access_key: None,
            received_at: at,
        };
        let approver = Actor {
            key_id: "key_1".into(),
            key_name: "financeiro".into(),
        };
        let row = |status, invoice, approved_by| ProcessRow {
            id: "prc_1",
            client_id: "cli_1",
            legal_name: "Padaria",
            carrier: &vivo,
            month: Month::parse("2026-11").unwrap(),
            status,
            invoice,
            manual_upload: false,
            approved_by,
            approved_at: approved_by.map(|_| at),
            filed_at: None,
            filing_protocol: None,
            download_attempts: 1,
            filing_attempts: 0,
            created_at: at,
        };
        let file = processes_csv([
            row(
                ProcessStatus::AwaitingTaxFiling,
                Some(&invoice),
                Some(&approver),
            ),
            row(ProcessStatus::AwaitingDownload, None, None),
        ]);
        let mut reader = csv::Reader::from_reader(file.bytes.as_slice());
        assert_eq!(
            reader
                .headers()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
                .join(","),
            PROCESSES_HEADER
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][5], "awaiting_tax_filing");
        assert_eq!(&rows[0][6], "fatura, novembro.pdf");
        assert_eq!(&rows[0][7], "2026-11-20");
        assert_eq!(&rows[0][8], "189.90");
        assert_eq!(&rows[0][12], "financeiro");
        assert_eq!(&rows[1][8], "");
        assert_eq!(&rows[1][13], "");
    }

    #[test]
    fn a_file_stops_at_its_row_limit_and_says_so() {
        let rows = (0..MAX_EXPORT_ROWS + 1).map(|i| vec![i.to_string()]);
        let file = write("n.csv", "n", rows);
        assert_eq!((file.rows, file.truncated), (MAX_EXPORT_ROWS, true));
        let exact = write("n.csv", "n", (0..3).map(|i| vec![i.to_string()]));
        assert_eq!((exact.rows, exact.truncated), (3, false));
    }
}
