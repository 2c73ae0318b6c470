//! What RPA schedules send by email when they run: the monthly report
//! (`send_report`) and the links of an export (`export_data`).

use chrono::{DateTime, Utc};

use super::{Link, Text, format_date, render};
use crate::account::Locale;
use crate::mail::Message;
use crate::rpa::export::ExportedFile;
use crate::rpa::process::ProcessStatus;
use crate::rpa::report::{MonthlyReport, Tally};

/// BRL as people read it: `R$ 1.234,56`, `BRL 1,234.56`.
fn brl(locale: Locale, cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let (thousands, decimal, prefix) = match locale {
        Locale::PtBr => ('.', ',', "R$ "),
        Locale::En => (',', '.', "BRL "),
    };
    let digits = (abs / 100).to_string();
    let mut whole = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            whole.push(thousands);
        }
        whole.push(d);
    }
    format!("{sign}{prefix}{whole}{decimal}{:02}", abs % 100)
}

fn tally_line(locale: Locale, name: &str, t: &Tally) -> String {
    let count = |s: ProcessStatus| t.by_status.get(&s).copied().unwrap_or(0);
    let words = match locale {
        Locale::PtBr => [
            "processos",
            "aguardando download",
            "aguardando aprovação",
            "aguardando envio ao SAT",
            "enviados ao SAT",
        ],
        Locale::En => [
            "processes",
            "awaiting download",
            "awaiting approval",
            "awaiting tax filing",
            "filed",
        ],
    };
    let statuses = [
        ProcessStatus::AwaitingDownload,
        ProcessStatus::AwaitingApproval,
        ProcessStatus::AwaitingTaxFiling,
        ProcessStatus::Filed,
    ];
    let counts: Vec<String> = statuses
        .iter()
        .zip(&words[1..])
        .map(|(s, w)| format!("{} {w}", count(*s)))
        .collect();
    format!(
        "{name}: {} {} ({}), {}",
        t.processes,
        words[0],
        counts.join(", "),
        brl(locale, t.amount_cents)
    )
}

/// `rpa.report.generated`: a month's processes per carrier and in total.
pub fn rpa_report_email(
    locale: Locale,
    organization_name: &str,
    report: &MonthlyReport,
) -> Message {
    let month = report.month.to_string();
    let (total_name, intro, csv, subject, greeting, closing) = match locale {
        Locale::PtBr => (
            "Total",
            format!("Relatório mensal das faturas de {organization_name}, {month}:"),
            format!(
                "O mesmo relatório em CSV: GET /v1/rpa/reports/monthly?month={month} com Accept: text/csv."
            ),
            format!("Relatório das faturas de {month}"),
            "Olá!",
            "Atenciosamente,\nEquipe nuvem",
        ),
        Locale::En => (
            "Total",
            format!("Monthly invoice report of {organization_name}, {month}:"),
            format!(
                "The same report as CSV: GET /v1/rpa/reports/monthly?month={month} with Accept: text/csv."
            ),
            format!("Invoice report of {month}"),
            "Hello!",
            "Best regards,\nThe nuvem team",
        ),
    };
    let lines: Vec<String> = report
        .by_carrier
        .iter()
        .map(|(carrier, t)| tally_line(locale, carrier.as_str(), t))
        .chain(std::iter::once(tally_line(
            locale,
            total_name,
            &report.total,
        )))
        .collect();
    let table = lines.join("\n");
    render(
        locale,
        subject,
        &[
            &[Text(greeting)],
            &[Text(&intro)],
            &[Text(&table)],
            &[Text(&csv)],
            &[Text(closing)],
        ],
    )
}

/// `rpa.export.completed`: a link per file, and until when they work.
pub fn rpa_export_email(
    locale: Locale,
    organization_name: &str,
    files: &[ExportedFile],
    expires_at: DateTime<Utc>,
) -> Message {
    let until = format_date(locale, expires_at);
    let describe = |f: &ExportedFile| match (locale, f.truncated) {
        (Locale::PtBr, false) => format!("{} ({} linhas): ", f.name, f.rows),
        (Locale::PtBr, true) => format!("{} ({} linhas; cortado aí, há mais): ", f.name, f.rows),
        (Locale::En, false) => format!("{} ({} rows): ", f.name, f.rows),
        (Locale::En, true) => format!("{} ({} rows; cut there, there are more): ", f.name, f.rows),
    };
    let described: Vec<String> = files.iter().map(describe).collect();
    let (subject, greeting, intro, note, closing) = match locale {
        Locale::PtBr => (
            format!("Exportação dos dados de RPA de {organization_name}"),
            "Olá!",
            format!(
                "A exportação dos dados de RPA de {organization_name} está pronta. Os links valem até {until}:"
            ),
            "O arquivo de clientes tem as colunas do modelo de importação (sem as senhas dos portais) e pode ser importado de volta com POST /v1/rpa/clients/import.",
            "Atenciosamente,\nEquipe nuvem",
        ),
        Locale::En => (
            format!("RPA data export of {organization_name}"),
            "Hello!",
            format!(
                "The RPA data export of {organization_name} is ready. The links work until {until}:"
            ),
            "The clients' file has the import template's columns (without portal passwords) and imports back with POST /v1/rpa/clients/import.",
            "Best regards,\nThe nuvem team",
        ),
    };
    let links: Vec<[super::Part<'_>; 2]> = files
        .iter()
        .zip(&described)
        .map(|(f, d)| [Text(d), Link(&f.url)])
        .collect();
    let greeting = [Text(greeting)];
    let intro = [Text(&intro)];
    let mut paragraphs: Vec<&[super::Part<'_>]> = vec![&greeting, &intro];
    for link in &links {
        paragraphs.push(link);
    }
    let note = [Text(note)];
    paragraphs.push(&note);
    let closing = [Text(closing)];
    paragraphs.push(&closing);
    render(locale, subject, &paragraphs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpa::carrier::CarrierCode;
    use crate::rpa::month::Month;
    use crate::rpa::report::{Counted, monthly};

    #[test]
    fn amounts_read_as_in_each_language() {
        assert_eq!(brl(Locale::PtBr, 123_456_789), "R$ 1.234.567,89");
        assert_eq!(brl(Locale::En, 123_456_789), "BRL 1,234,567.89");
        assert_eq!(brl(Locale::PtBr, 5), "R$ 0,05");
        assert_eq!(brl(Locale::PtBr, 100_000), "R$ 1.000,00");
        assert_eq!(brl(Locale::En, -99_999), "-BRL 999.99");
    }

    #[test]
    fn the_report_names_every_carrier_and_the_total() {
        let vivo = CarrierCode::parse("VIVO").unwrap();
        let oi = CarrierCode::parse("OI").unwrap();
        let report = monthly(
            Month::parse("2026-11").unwrap(),
            &[
                Counted {
                    carrier: &vivo,
                    status: ProcessStatus::Filed,
                    amount_cents: Some(18990),
                },
                Counted {
                    carrier: &oi,
                    status: ProcessStatus::AwaitingDownload,
                    amount_cents: None,
                },
            ],
        );
        let pt = rpa_report_email(Locale::PtBr, "Contábil <Souza>", &report);
        assert_eq!(pt.subject, "Relatório das faturas de 2026-11");
        assert!(pt.text.contains("OI: 1 processos (1 aguardando download, 0 aguardando aprovação, 0 aguardando envio ao SAT, 0 enviados ao SAT), R$ 0,00"), "{}", pt.text);
        assert!(pt.text.contains("VIVO: 1 processos (0 aguardando download, 0 aguardando aprovação, 0 aguardando envio ao SAT, 1 enviados ao SAT), R$ 189,90"));
        assert!(pt.text.contains("Total: 2 processos"));
        assert!(pt.html.contains("Contábil &lt;Souza&gt;"));
        let en = rpa_report_email(Locale::En, "Souza", &report);
        assert!(en.text.contains("Total: 2 processes (1 awaiting download, 0 awaiting approval, 0 awaiting tax filing, 1 filed), BRL 189.90"), "{}", en.text);
    }

    #[test]
    fn the_export_links_every_file_and_says_until_when() {
        let file = |name: &str, truncated| ExportedFile {
            name: name.into(),
            rows: 3,
            bytes: 100,
            truncated,
            url: format!("https://bucket.example/{name}?X-Amz-Signature=a&b=c"),
        };
        let files = [file("clients.csv", false), file("processes.csv", true)];
        let until = "2026-11-30T06:00:00Z".parse().unwrap();
        let pt = rpa_export_email(Locale::PtBr, "Souza", &files, until);
        assert!(
            pt.text.contains("valem até 30/11/2026 06:00 UTC"),
            "{}",
            pt.text
        );
        assert!(pt.text.contains(
            "clients.csv (3 linhas): https://bucket.example/clients.csv?X-Amz-Signature=a&b=c"
        ));
        assert!(
            pt.text
                .contains("processes.csv (3 linhas; cortado aí, há mais)")
        );
        assert!(
            pt.html
                .contains("href=\"https://bucket.example/clients.csv?X-Amz-Signature=a&amp;b=c\"")
        );
        let en = rpa_export_email(Locale::En, "Souza", &files, until);
        assert!(
            en.text
                .contains("processes.csv (3 rows; cut there, there are more): https://")
        );
    }
}
