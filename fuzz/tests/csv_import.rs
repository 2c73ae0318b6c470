//! Client lists uploaded to `POST /v1/rpa/clients/import`: CSV as Excel in
//! Brazil (Windows-1252, `;`), Google Sheets (UTF-8, `,`) or a person
//! (BOM, tabs, CRLF, blank lines, accents and any case in the column
//! names) writes it, damaged bytes, and any bytes at all, read through
//! `nuvem_aws::http::raw_body` and `client_import::parse`.
//!
//! Property: nothing panics. A file is refused whole only as the documented
//! client errors (413 over 1 MiB, 415 for another type, then 422 for an
//! empty, UTF-16, headerless or oversized file); otherwise every row gets
//! its own verdict, with its line in the file (increasing, within the
//! file), and every row accepted holds a valid client. A file of valid,
//! distinct rows is read entirely and exactly, whatever its encoding,
//! separator, quoting and line endings.

mod support;

use nuvem_aws::http::raw_body;
use nuvem_domain::document::DocumentKind;
use nuvem_domain::rpa::client_import::{ImportError, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, parse};
use nuvem_fuzz::documents::{valid_cnpj, valid_cpf, write_as};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, mixed_case, nasty_string};
use proptest::prelude::*;
use support::{assert_client_error, content_type, request};

/// The columns a file may have: the field and the names it is known by.
const COLUMNS: &[(&str, &[&str])] = &[
    ("legal_name", &["legal_name", "razao_social"]),
    ("sat_name", &["sat_name", "nome_sat"]),
    ("cnpj", &["cnpj"]),
    ("carrier", &["carrier", "operadora", "codigo_operadora"]),
    ("filter", &["filter", "filtro", "nome_filtro"]),
    ("service", &["service", "servico"]),
    ("sat_data", &["sat_data", "dados_sat"]),
    ("unit", &["unit", "unidade"]),
    ("portal_login", &["portal_login", "login_portal", "login"]),
    (
        "portal_password",
        &["portal_password", "senha_portal", "senha"],
    ),
    ("cpf", &["cpf"]),
    ("active", &["active", "ativo", "status_ativo"]),
];

/// A column name as a person writes it: any of its names, `_` as a space,
/// `-` or `.`, any case, accents on vowels, padded.
fn written_name(name: &str, seed: u64) -> String {
    let sep = [' ', '-', '.', '_'][(seed & 3) as usize];
    let accented: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| match (c, seed >> (2 + i % 60) & 1) {
            ('_', _) => sep,
            ('a', 1) => 'ã',
            ('e', 1) => 'é',
            ('i', 1) => 'í',
            ('o', 1) => 'ô',
            ('u', 1) => 'ú',
            ('c', 1) => 'ç',
            (c, _) => c,
        })
        .collect();
    let cased = if seed >> 62 & 1 == 1 {
        accented.to_uppercase()
    } else {
        mixed_case(&accented, seed >> 7)
    };
    if seed >> 63 == 1 {
        format!(" {cased} ")
    } else {
        cased
    }
}

/// Text Windows-1252 can hold, with Portuguese letters.
fn latin_text(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            6 => proptest::char::range('a', 'z'),
            2 => proptest::char::range('A', 'Z'),
            1 => proptest::char::range('0', '9'),
            2 => proptest::sample::select(vec![' ', '.', '-', '/', '&', ',', ';', '"', '\'']),
            2 => proptest::sample::select(vec!['ã', 'á', 'é', 'í', 'ó', 'ú', 'õ', 'ç', 'Ç', 'Ã', 'É']),
        ],
        min..=max,
    )
    .prop_map(|chars| {
        let s: String = chars.into_iter().collect();
        // Surrounding spaces are trimmed by the rules; keep the expected
        // value simple to state.
        let s = s.trim().to_owned();
        if s.is_empty() { "x".to_owned() } else { s }
    })
}

/// One valid client row, by field.
#[derive(Debug, Clone)]
struct Row {
    legal_name: String,
    cnpj: String,
    cnpj_written: String,
    carrier: String,
    unit: String,
    service: String,
    password: String,
    cpf: Option<(String, String)>,
    active: Option<(bool, String)>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        (
            latin_text(1, 30),
            valid_cnpj(),
            0..6u8,
            any::<u64>(),
            "[A-Za-z][A-Za-z0-9_-]{1,10}",
        ),
        (latin_text(1, 12), latin_text(1, 12), "[ -~]{0,16}"),
        proptest::option::of((valid_cpf(), 0..6u8)),
        proptest::option::of(proptest::sample::select(vec![
            (true, "sim"),
            (true, "SIM"),
            (true, "1"),
            (true, "true"),
            (true, "Ativo"),
            (true, "yes"),
            (false, "não"),
            (false, "NAO"),
            (false, "0"),
            (false, "false"),
            (false, "inativo"),
            (false, "n"),
        ])),
    )
        .prop_map(
            |((legal_name, cnpj, style, mask, carrier), (unit, service, password), cpf, active)| {
                Row {
                    legal_name,
                    cnpj_written: write_as(&cnpj, style % 4, mask),
                    cnpj,
                    // `SAT` names the tax system, not a carrier.
                    carrier: if carrier.eq_ignore_ascii_case("sat") {
                        format!("{carrier}1")
                    } else {
                        carrier
                    },
                    unit,
                    service,
                    password: password.trim().to_owned(),
                    cpf: cpf.map(|(c, style)| (write_as(&c, style % 4, 0), c)),
                    active: active.map(|(b, s)| (b, s.to_owned())),
                }
            },
        )
}

/// A cell as CSV writes it: quoted when it must be (or at random).
fn cell(value: &str, delimiter: char, quote_anyway: bool) -> String {
    if quote_anyway || value.contains([delimiter, '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A file of valid, distinct rows and what it must read as.
#[derive(Clone)]
struct File {
    bytes: Vec<u8>,
    rows: Vec<Row>,
    lines: Vec<u64>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("bytes", &String::from_utf8_lossy(&self.bytes))
            .field("lines", &self.lines)
            .finish()
    }
}

fn valid_file() -> impl Strategy<Value = File> {
    (
        proptest::collection::vec(row(), 1..8),
        proptest::sample::subsequence(
            [1].into_iter().chain(4..COLUMNS.len()).collect::<Vec<_>>(),
            0..=9,
        ),
        proptest::sample::select(vec![';', ',', '\t']),
        proptest::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<u64>(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        proptest::collection::vec(0..3usize, 8),
    )
        .prop_map(
            |(mut rows, extra, delimiter, eol, seed, (bom, cp1252, quote_all), blanks)| {
                // Distinct clients: the unit says which row it is.
                for (i, r) in rows.iter_mut().enumerate() {
                    r.unit = format!("{} {i}", r.unit);
                }
                // Required columns first (in a shuffled order), then the others.
                let mut fields: Vec<usize> = vec![0, 2, 3];
                fields.rotate_left((seed % 3) as usize);
                fields.extend(extra);
                let header: Vec<String> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        let names = COLUMNS[f].1;
                        let name = names[(seed >> (i * 2)) as usize % names.len()];
                        cell(
                            &written_name(name, seed.rotate_left(i as u32 * 7)),
                            delimiter,
                            quote_all,
                        )
                    })
                    .collect();
                let d = delimiter.to_string();
                let mut text = header.join(&d) + eol;
                let mut line = 1u64;
                let mut lines = Vec::new();
                for (i, r) in rows.iter().enumerate() {
                    for _ in 0..blanks[i % blanks.len()] {
                        text.push_str(eol);
                        line += 1;
                    }
                    let cells: Vec<String> = fields
                        .iter()
                        .map(|&f| {
                            let v = match COLUMNS[f].0 {
                                "legal_name" => r.legal_name.clone(),
                                "cnpj" => r.cnpj_written.clone(),
                                "carrier" => r.carrier.clone(),
                                "unit" => r.unit.clone(),
                                "service" => r.service.clone(),
                                "portal_password" => r.password.clone(),
                                "cpf" => r.cpf.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
                                "active" => {
                                    r.active.as_ref().map(|a| a.1.clone()).unwrap_or_default()
                                }
                                _ => String::new(),
                            };
                            cell(&v, delimiter, quote_all)
                        })
                        .collect();
                    text.push_str(&cells.join(&d));
                    text.push_str(eol);
                    line += 1;
                    lines.push(line);
                }
                let mut bytes = if cp1252 {
                    encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
                } else {
                    text.into_bytes()
                };
                if bom && !cp1252 {
                    bytes.splice(0..0, *b"\xEF\xBB\xBF");
                }
                File { bytes, rows, lines }
            },
        )
}

/// Files that are near valid ones, and anything else.
fn any_file() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        24 => (valid_file(), byte_edits(4)).prop_map(|(f, edits)| apply_byte_edits(f.bytes, &edits)),
        12 => (valid_file(), any::<usize>(), nasty_string()).prop_map(|(f, at, junk)| {
            // Text spliced in anywhere: extra cells, stray quotes, controls.
            let mut bytes = f.bytes;
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, junk.into_bytes());
            bytes
        }),
        1 => valid_file().prop_map(|f| {
            // Too many rows: the first data row over and over.
            let text = String::from_utf8_lossy(&f.bytes).into_owned();
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("").to_owned();
            let first = lines.find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            let mut out = header + "\n";
            for _ in 0..=MAX_IMPORT_ROWS {
                out.push_str(&first);
                out.push('\n');
            }
            out.into_bytes()
        }),
        6 => prop_oneof![
            Just(b"\xFF\xFEl\0e\0".to_vec()),
            Just(b"\xFE\xFF\0l\0e".to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just(b" \r\n\t".to_vec()),
            Just(b"cnpj;carrier\n".to_vec()),
            Just(b"\"legal_name,cnpj,carrier\n".to_vec()),
        ],
        12 => any_bytes(200),
    ]
}

/// Checks what `parse` made of `bytes`, whatever they are.
fn check_rows(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse(bytes) {
        Ok(rows) => {
            prop_assert!(rows.len() <= MAX_IMPORT_ROWS);
            let text = String::from_utf8_lossy(bytes);
            let physical_lines = text.split(['\n', '\r']).count() as u64;
            let mut last = 1;
            let mut keys = std::collections::HashSet::new();
            for row in &rows {
                prop_assert!(row.line > last, "line {} after {}", row.line, last);
                prop_assert!(
                    row.line <= physical_lines,
                    "line {} of {}",
                    row.line,
                    physical_lines
                );
                last = row.line;
                match &row.outcome {
                    Ok(client) => {
                        let s = &client.settings;
                        prop_assert_eq!(s.cnpj.kind(), DocumentKind::Cnpj);
                        prop_assert!(s.cpf.as_ref().is_none_or(|c| c.kind() == DocumentKind::Cpf));
                        prop_assert!(
                            !s.legal_name.is_empty() && s.legal_name == s.legal_name.trim()
                        );
                        prop_assert!(!s.legal_name.chars().any(char::is_control));
                        prop_assert!(keys.insert(s.unique_key()), "a repeated client accepted");
                        if let Some(p) = &client.password {
                            prop_assert!(!p.expose().trim().is_empty());
                        }
                    }
                    Err(errors) => prop_assert!(!errors.is_empty()),
                }
            }
        }
        Err(ImportError::Header(errors)) => prop_assert!(!errors.is_empty()),
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Regression: lines ending in a lone `\r` (Excel for Mac's "CSV
/// (Macintosh)") were not counted, so every row was reported at line 1,
/// and the separator was guessed from the whole file rather than the
/// header.
#[test]
fn lines_ending_in_a_lone_carriage_return_are_counted() {
    let file = "legal_name;cnpj;carrier\rA;11.222.333/0001-81;OI\r\rB, C;11.444.777/0001-61;OI\r";
    let rows = parse(file.as_bytes()).unwrap();
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4]);
    assert_eq!(
        rows[1].outcome.as_ref().unwrap().settings.legal_name,
        "B, C"
    );
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn a_file_of_valid_rows_reads_exactly(file in valid_file()) {
        let rows = parse(&file.bytes);
        prop_assert!(rows.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&file.bytes), rows);
        let rows = rows.unwrap();
        prop_assert_eq!(rows.len(), file.rows.len());
        for ((got, want), line) in rows.iter().zip(&file.rows).zip(&file.lines) {
            prop_assert_eq!(got.line, *line);
            let client = got.outcome.as_ref();
            prop_assert!(client.is_ok(), "line {}: {:?} in {:?}", line, client, String::from_utf8_lossy(&file.bytes));
            let client = client.unwrap();
            let s = &client.settings;
            prop_assert_eq!(&s.legal_name, &want.legal_name);
            prop_assert_eq!(s.cnpj.as_str(), want.cnpj.as_str());
            prop_assert_eq!(s.carrier.as_str(), want.carrier.to_ascii_uppercase());
        }
        check_rows(&file.bytes)?;
    }

    #[test]
    fn any_upload_gets_a_verdict_per_row_or_a_4xx(
        bytes in any_file(),
        content_type in prop_oneof![2 => Just(Some(b"text/csv".to_vec())), 1 => content_type()],
        as_text: bool,
    ) {
        let req = request(content_type.as_deref(), bytes, as_text, "");
        match raw_body(&req, MAX_IMPORT_BYTES, &["text/csv", "text/plain"]) {
            Ok(body) => check_rows(body)?,
            Err(problem) => assert_client_error(&problem, &[413, 415])?,
        }
    }
}
