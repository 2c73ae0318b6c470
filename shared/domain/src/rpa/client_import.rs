//! Client lists as CSV, the way offices keep them: exported by Excel in
//! Brazil (Windows-1252, `;`), by Google Sheets (UTF-8, `,`) or by hand
//! (UTF-8 with a BOM). Column names are the API's field names or their
//! Portuguese names from the system nuvem replaces (`razao_social`,
//! `operadora`, `unidade` …), in any order, any case, with or without
//! accents.
//!
//! The file is refused whole only when it cannot be read as a table of
//! clients (encoding, header, size); otherwise every row gets its own
//! verdict, and a refused row changes nothing.

use std::collections::HashMap;

use super::client::{ClientRequest, ClientSettings, PortalPassword};
use crate::validation::FieldError;

/// Largest file accepted.
pub const MAX_IMPORT_BYTES: usize = 1024 * 1024;
/// Most rows in one file (one import answers within an API call).
pub const MAX_IMPORT_ROWS: usize = 1000;

/// The header of the documented template, in the API's field names.
pub const TEMPLATE_HEADER: &str = "legal_name,sat_name,cnpj,carrier,filter,service,sat_data,unit,portal_login,portal_password,cpf,active";

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "the file is UTF-16; save it as \"CSV UTF-8\" or \"CSV (separado por vírgulas)\" instead"
    )]
    Utf16,
    #[error("the header row is not usable")]
    Header(Vec<FieldError>),
    #[error("the file has more than {MAX_IMPORT_ROWS} rows; split it")]
    TooManyRows,
    #[error("the file is not CSV: {0}")]
    Malformed(String),
}

/// One data row and its verdict before anything is stored: a client to
/// create or update, or the reasons it is refused.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    pub outcome: Result<RowClient, Vec<FieldError>>,
}

/// The client a valid row states.
#[derive(Debug, Clone)]
pub struct RowClient {
    /// The client as the row makes it when it is new (absent columns take
    /// their defaults); its identity is the row's.
    pub settings: ClientSettings,
    /// A blank cell (or no column) keeps a stored password.
    pub password: Option<PortalPassword>,
    /// The fields the file has columns for.
    columns: Vec<&'static str>,
}

impl RowClient {
    /// The client the row makes of an existing one with its identity: the
    /// file's columns replace, fields it has no column for are kept.
    pub fn applied_to(&self, current: &ClientSettings) -> ClientSettings {
        let has = |field: &str| self.columns.contains(&field);
        let pick = |field: &str, row: &String, current: &String| {
            if has(field) { row } else { current }.clone()
        };
        let row = &self.settings;
        ClientSettings {
            legal_name: row.legal_name.clone(),
            sat_name: pick("sat_name", &row.sat_name, &current.sat_name),
            cnpj: row.cnpj.clone(),
            carrier: row.carrier.clone(),
            filter: pick("filter", &row.filter, &current.filter),
            service: pick("service", &row.service, &current.service),
            sat_data: pick("sat_data", &row.sat_data, &current.sat_data),
            unit: pick("unit", &row.unit, &current.unit),
            portal_login: pick("portal_login", &row.portal_login, &current.portal_login),
            cpf: if has("cpf") { &row.cpf } else { &current.cpf }.clone(),
            active: if has("active") {
                row.active
            } else {
                current.active
            },
        }
    }
}

/// The columns of a client, each with the names it is known by.
const COLUMNS: &[(&str, &[&str])] = &[
    ("legal_name", &["razao_social"]),
    ("sat_name", &["nome_sat"]),
    ("cnpj", &[]),
    ("carrier", &["operadora", "codigo_operadora"]),
    ("filter", &["filtro", "nome_filtro"]),
    ("service", &["servico"]),
    ("sat_data", &["dados_sat"]),
    ("unit", &["unidade"]),
    ("portal_login", &["login_portal", "login"]),
    ("portal_password", &["senha_portal", "senha"]),
    ("cpf", &[]),
    ("active", &["ativo", "status_ativo"]),
];
const REQUIRED: &[&str] = &["legal_name", "cnpj", "carrier"];

/// Reads a file into rows with their verdicts. Two rows naming the same
/// client (CNPJ, carrier, unit, service) are a mistake in the file: the
/// later one is refused, naming the earlier.
pub fn parse(bytes: &[u8]) -> Result<Vec<ImportRow>, ImportError> {
    let text = decode(bytes)?;
    let delimiter = delimiter(&text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ImportError::Malformed(e.to_string()))?
        .clone();
    let columns = columns(&header)?;
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines = LineCounter::new(&text);
    for record in reader.records() {
        let record = record.map_err(|e| ImportError::Malformed(e.to_string()))?;
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        if rows.len() == MAX_IMPORT_ROWS {
            return Err(ImportError::TooManyRows);
        }
        let line = lines.at(record.position().map_or(0, csv::Position::byte));
        let outcome = if record.len() == header.len() {
            row(&columns, &record)
        } else {
            Err(vec![FieldError::new(
                "row",
                format!(
                    "has {} cells where the header has {}",
                    record.len(),
                    header.len()
                ),
            )])
        };
        let outcome = outcome.and_then(|(settings, password)| {
            match seen.insert(settings.unique_key(), line) {
                Some(first) => {
                    seen.insert(settings.unique_key(), first);
                    Err(vec![FieldError::new(
                        "row",
                        format!("repeats the client of line {first} (same cnpj, carrier, unit and service)"),
                    )])
                }
                None => Ok(RowClient {
                    settings,
                    password,
                    columns: columns.clone(),
                }),
            }
        });
        rows.push(ImportRow { line, outcome });
    }
    Ok(rows)
}

/// Line numbers of byte offsets met in increasing order, counted here: the
/// csv crate skips blank lines in its own count and miscounts `\r\n`.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record the reader started at `offset` (not before
    /// the last one asked): the reader's offset comes before the blank
    /// lines it skipped.
    fn at(&mut self, offset: u64) -> u64 {
        let mut offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .clamp(self.offset, self.text.len());
        while matches!(self.text.get(offset), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        // A line ends at `\n`, `\r\n` or a lone `\r` (Excel's "CSV
        // (Macintosh)"), as the csv crate reads it.
        let segment = &self.text[self.offset..offset];
        let newlines = segment
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && segment.get(i + 1) != Some(&b'\n')))
            .count();
        self.line += newlines as u64;
        self.offset = offset;
        self.line
    }
}

/// UTF-8 (a BOM is dropped) or, when the bytes are not UTF-8, Windows-1252:
/// every byte sequence is valid Windows-1252, so a file that is neither
/// shows its mistakes in the rows rather than failing whole.
fn decode(bytes: &[u8]) -> Result<String, ImportError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(ImportError::Utf16);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    };
    if text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    Ok(text)
}

/// The separator the header row uses most: `;` (Excel in Brazil, where `,`
/// is the decimal mark), `,` or a tab.
fn delimiter(text: &str) -> u8 {
    let header = text.split(['\r', '\n']).next().unwrap_or("");
    [b';', b',', b'\t']
        .into_iter()
        .max_by_key(|d| header.bytes().filter(|b| b == d).count())
        .unwrap_or(b',')
}

/// A column name as people write it, reduced to `snake_case` ASCII.
fn fold_name(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            ' ' | '-' | '.' => '_',
            c => c,
        })
        .collect()
}

/// Which client field each cell of a row holds; every unknown, repeated or
/// missing column named at once.
fn columns(header: &csv::StringRecord) -> Result<Vec<&'static str>, ImportError> {
    let mut errors = Vec::new();
    let mut fields: Vec<&'static str> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let folded = fold_name(name);
        let field = COLUMNS
            .iter()
            .find(|(field, aliases)| *field == folded || aliases.contains(&folded.as_str()))
            .map(|(field, _)| *field);
        match field {
            Some(field) if fields.contains(&field) => errors.push(FieldError::new(
                format!("header.{}", i + 1),
                format!("repeats the column {field}"),
            )),
            Some(field) => fields.push(field),
            None => errors.push(FieldError::new(
                format!("header.{}", i + 1),
                format!(
                    "unknown column {:?}; the columns are {TEMPLATE_HEADER}",
                    name.trim()
                ),
            )),
        }
    }
    for required in REQUIRED {
        if !fields.contains(required) {
            errors.push(FieldError::new(
                "header",
                format!("the column {required} is required"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(ImportError::Header(errors))
    }
}

/// One row's client, validated like `POST /v1/rpa/clients`. Empty cells are
/// absent values; a row states the whole client.
fn row(
    columns: &[&'static str],
    record: &csv::StringRecord,
) -> Result<(ClientSettings, Option<PortalPassword>), Vec<FieldError>> {
    let mut request = ClientRequest::default();
    let mut errors = Vec::new();
    for (field, cell) in columns.iter().zip(record.iter()) {
        let value = || Some(cell.to_owned()).filter(|c| !c.trim().is_empty());
        match *field {
            "legal_name" => request.legal_name = cell.to_owned(),
            "sat_name" => request.sat_name = value(),
            "cnpj" => request.cnpj = cell.to_owned(),
            "carrier" => request.carrier = cell.to_owned(),
            "filter" => request.filter = value(),
            "service" => request.service = value(),
            "sat_data" => request.sat_data = value(),
            "unit" => request.unit = value(),
            "portal_login" => request.portal_login = value(),
            // Kept as typed: spaces may be part of a password.
            "portal_password" => request.portal_password = value().map(|_| cell.to_owned()),
            "cpf" => request.cpf = value(),
            "active" => match yes_or_no(cell) {
                Ok(active) => request.active = active,
                Err(e) => errors.push(e),
            },
            _ => unreachable!("columns() yields only known fields"),
        }
    }
    match request.validate() {
        Ok(client) if errors.is_empty() => Ok(client),
        Ok(_) => Err(errors),
        Err(mut more) => {
            more.extend(errors);
            Err(more)
        }
    }
}

/// `active` as spreadsheets say it; blank is absent (active).
fn yes_or_no(cell: &str) -> Result<Option<bool>, FieldError> {
    match fold_name(cell).as_str() {
        "" => Ok(None),
        "true" | "1" | "sim" | "s" | "yes" | "y" | "ativo" | "verdadeiro" => Ok(Some(true)),
        "false" | "0" | "nao" | "n" | "no" | "inativo" | "falso" => Ok(Some(false)),
        _ => Err(FieldError::new(
            "active",
            "must be true or false (sim or não, 1 or 0)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use proptest::prelude::*;

    const A: &str = "11.222.333/0001-81";
    const B: &str = "11.444.777/0001-61";

    fn verdicts(rows: &[ImportRow]) -> Vec<(u64, Result<String, Vec<String>>)> {
        rows.iter()
            .map(|r| {
                (
                    r.line,
                    r.outcome
                        .as_ref()
                        .map(|c| c.settings.legal_name.clone())
                        .map_err(|e| e.iter().map(|e| e.field.clone()).collect()),
                )
            })
            .collect()
    }

    #[test]
    fn the_template_header_reads_as_every_column() {
        let file = format!(
            "{TEMPLATE_HEADER}\nACME,ACME SAT,{A},vivo,f,Dados,sd,Matriz,acme,\"p,w\",529.982.247-25,sim\n"
        );
        let rows = parse(file.as_bytes()).unwrap();
        let client = rows[0].outcome.as_ref().unwrap();
        let (s, password) = (&client.settings, &client.password);
        assert_eq!(rows[0].line, 2);
        assert_eq!(s.sat_name, "ACME SAT");
        assert_eq!(s.carrier.as_str(), "VIVO");
        assert_eq!(s.service, "Dados");
        assert_eq!(s.cpf.as_ref().map(Document::as_str), Some("52998224725"));
        assert_eq!(password.as_ref().unwrap().expose(), "p,w");
        assert!(s.active);
    }

    #[test]
    fn excel_in_brazil_writes_windows_1252_with_semicolons() {
        let text = format!(
            "Razão Social;CNPJ;Operadora;Unidade;Ativo\r\nAçúcar S/A;{A};OI;São Paulo;não\r\n"
        );
        let cp1252 = encoding_rs::WINDOWS_1252.encode(&text).0.into_owned();
        assert!(
            std::str::from_utf8(&cp1252).is_err(),
            "the file is not UTF-8"
        );
        let rows = parse(&cp1252).unwrap();
        assert_eq!(rows.len(), 1);
        let s = &rows[0].outcome.as_ref().unwrap().settings;
        assert_eq!(s.legal_name, "Açúcar S/A");
        assert_eq!(s.unit, "São Paulo");
        assert!(!s.active);
    }

    #[test]
    fn utf8_with_a_bom_and_accented_headers() {
        let mut file = b"\xEF\xBB\xBF".to_vec();
        file.extend_from_slice(
            format!("razão_social,cnpj,operadora,serviço,nome_filtro\nAçúcar S/A,{A},OI,Voz,Fatura Voz\n")
                .as_bytes(),
        );
        let rows = parse(&file).unwrap();
        let s = &rows[0].outcome.as_ref().unwrap().settings;
        assert_eq!(s.legal_name, "Açúcar S/A");
        assert_eq!(s.service, "Voz");
        // The RPA's own name for the filter reads too.
        assert_eq!(s.filter, "Fatura Voz");
    }

    #[test]
    fn good_and_bad_rows_get_their_own_verdicts() {
        let file = format!(
            "legal_name;cnpj;carrier;unit;active\n\
             One;{A};VIVO;Matriz;1\n\
             Two;{A};VIVO;Filial;talvez\n\
             ;;;;\n\
             Three;{B};SAT;;\n\
             Four;{A};vivo; MATRIZ ;0\n\
             Five;{B};OI\n\
             Six;{B};OI;;\n"
        );
        let rows = parse(file.as_bytes()).unwrap();
        assert_eq!(
            verdicts(&rows),
            [
                (2, Ok("One".into())),
                (3, Err(vec!["active".into()])),
                (5, Err(vec!["carrier".into()])),
                (6, Err(vec!["row".into()])),
                (7, Err(vec!["row".into()])),
                (8, Ok("Six".into())),
            ]
        );
        let repeat = &rows[3].outcome.as_ref().unwrap_err()[0].message;
        assert!(repeat.contains("line 2"), "{repeat}");
    }

    #[test]
    fn an_update_keeps_what_the_file_has_no_column_for() {
        let full = format!(
            "{TEMPLATE_HEADER}\nACME,ACME SAT,{A},VIVO,f,Dados,sd,,acme,pw,529.982.247-25,não\n"
        );
        let current = parse(full.as_bytes()).unwrap()[0]
            .outcome
            .clone()
            .unwrap()
            .settings;
        let partial =
            format!("legal_name,cnpj,carrier,service,filter\nACME Nova,{A},VIVO,Dados,\n");
        let row = parse(partial.as_bytes()).unwrap()[0]
            .outcome
            .clone()
            .unwrap();
        assert_eq!(row.settings.unique_key(), current.unique_key());
        let next = row.applied_to(&current);
        assert_eq!(next.legal_name, "ACME Nova");
        assert_eq!(next.filter, "", "a blank cell clears");
        assert_eq!(next.sat_name, "ACME SAT");
        assert_eq!(next.portal_login, "acme");
        assert_eq!(next.cpf, current.cpf);
        assert!(!next.active);
        assert_eq!(row.password, None);
    }

    #[test]
    fn lines_are_counted_with_any_line_ending() {
        for eol in ["\n", "\r\n"] {
            let file = format!("legal_name,cnpj,carrier{eol}A,{A},OI{eol}{eol}B,{B},OI{eol}");
            let lines: Vec<u64> = parse(file.as_bytes())
                .unwrap()
                .iter()
                .map(|r| r.line)
                .collect();
            assert_eq!(lines, [2, 4], "{eol:?}");
        }
    }

    #[test]
    fn unusable_files_are_refused_whole() {
        assert_eq!(parse(b"").unwrap_err(), ImportError::Empty);
        assert_eq!(parse(b"\xFF\xFEl\0").unwrap_err(), ImportError::Utf16);
        let ImportError::Header(errors) = parse(b"nome,cnpj,cnpj\nx,y,z\n").unwrap_err() else {
            panic!("header")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["header.1", "header.3", "header", "header"]);
        let many = format!(
            "legal_name,cnpj,carrier\n{}",
            format!("X,{A},OI\n").repeat(MAX_IMPORT_ROWS + 1)
        );
        assert_eq!(
            parse(many.as_bytes()).unwrap_err(),
            ImportError::TooManyRows
        );
    }

    proptest! {
        /// Whatever the encoding, separator and BOM, a file of valid rows
        /// reads as the same clients.
        #[test]
        fn encodings_and_separators_do_not_change_the_clients(
            names in proptest::collection::vec("[A-Za-zÀ-ÿ ]{1,20}", 1..8),
            semicolon in any::<bool>(),
            bom in any::<bool>(),
            cp1252 in any::<bool>(),
        ) {
            prop_assume!(names.iter().all(|n| !n.trim().is_empty()));
            let d = if semicolon { ';' } else { ',' };
            let mut text = format!("legal_name{d}cnpj{d}carrier{d}unit\n");
            for (i, name) in names.iter().enumerate() {
                text.push_str(&format!("{name}{d}{A}{d}VIVO{d}u{i}\n"));
            }
            let bytes: Vec<u8> = if cp1252 {
                encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
            } else if bom {
                [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()
            } else {
                text.into_bytes()
            };
            let rows = parse(&bytes).unwrap();
            let got: Vec<String> = rows
                .iter()
                .map(|r| r.outcome.as_ref().unwrap().settings.legal_name.clone())
                .collect();
            let want: Vec<String> = names.iter().map(|n| n.trim().to_owned()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
