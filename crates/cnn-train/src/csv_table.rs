//! Every CSV file cnn writes or reads goes through the `csv` crate
//! (RFC 4180): `steps.csv`, `metrics.csv`, a comparison's `summary.csv`,
//! a learning curve's `learning_curve.csv` and
//! `learning_curve_summary.csv`, and `lr_find.csv`.
//!
//! Writing: `\n` ends a record, and a field is quoted only when it holds
//! a comma, a double quote, `\r` or `\n` (quotes doubled inside), so files
//! of plain numbers and words are byte for byte what a plain
//! comma-join gives. Callers format their own numbers (Rust's `Display`,
//! the shortest text that reads back to the same `f64`) and hand over
//! text, so the bytes do not depend on how the crate formats floats.
//!
//! Reading: the header must be the expected one; blank lines are skipped,
//! `\r\n` line ends and spaces around fields are accepted, and every error
//! names the file and the line.

use std::path::Path;

use crate::error::{Result, TrainError};

/// The text of a CSV file: `header` (comma-separated, as written) and one
/// record per row, each field quoted where it needs to be.
pub fn csv_text<R, F>(header: &str, rows: R) -> String
where
    R: IntoIterator<Item = F>,
    F: IntoIterator,
    F::Item: AsRef<[u8]>,
{
    let mut out = String::with_capacity(header.len() + 1);
    out.push_str(header);
    out.push('\n');
    // Rows of different lengths are the caller's business (metrics.csv's
    // are all equal), so the writer does not check them; writing into a
    // `Vec` has no I/O to fail, so no record can fail to write.
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for row in rows {
        if let Err(e) = writer.write_record(row) {
            unreachable_write(&e);
        }
    }
    match writer.into_inner() {
        Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
        Err(e) => unreachable_write(e.error()),
    }
    out
}

/// A write into memory failed: the `csv` crate reports only I/O errors
/// for a flexible writer, and a `Vec` has none.
#[cold]
fn unreachable_write(e: &dyn std::fmt::Display) -> ! {
    panic!("writing CSV into memory cannot fail, but did: {e}")
}

/// One record read back: its line in the file (1-based) and its fields,
/// trimmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: u64,
    pub fields: Vec<String>,
}

/// Parse CSV `text` whose header must be `header`; `origin` names the file
/// in errors.
pub fn read_rows(text: &str, header: &str, origin: &Path) -> Result<Vec<Row>> {
    let bad = |line: u64, m: String| TrainError::bad_file(origin, format!("line {line}: {m}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let first = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(bad(error_line(text, &e), e.to_string())),
        None => {
            return Err(TrainError::bad_file(
                origin,
                "empty file (expected a header)",
            ));
        }
    };
    let expected: Vec<&str> = header.split(',').collect();
    if first.iter().collect::<Vec<_>>() != expected {
        let line = first.position().map_or(1, |p| line_at(text, p));
        let found: Vec<&str> = first.iter().collect();
        return Err(bad(
            line,
            format!(
                "expected the header `{header}`, found `{}`",
                found.join(",")
            ),
        ));
    }
    let mut out = Vec::new();
    for record in records {
        let record = record.map_err(|e| bad(error_line(text, &e), e.to_string()))?;
        let line = record.position().map_or(0, |p| line_at(text, p));
        if record.iter().all(str::is_empty) {
            continue;
        }
        out.push(Row {
            line,
            fields: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

fn error_line(text: &str, e: &csv::Error) -> u64 {
    e.position().map_or(0, |p| line_at(text, p))
}

/// The line (1-based) of the record at `pos`: the reader's position can
/// sit before the previous record's line end, so the line is counted at
/// the first character past it that ends no line.
fn line_at(text: &str, pos: &csv::Position) -> u64 {
    let start = usize::try_from(pos.byte()).map_or(text.len(), |b| b.min(text.len()));
    let first = text.as_bytes()[start..]
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .map_or(text.len(), |i| start + i);
    1 + text.as_bytes()[..first]
        .iter()
        .filter(|&&c| c == b'\n')
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_are_written_as_a_comma_join() {
        let text = csv_text("a,b,c", [["1", "0.5", "x"], ["2", "", "NaN"]]);
        assert_eq!(text, "a,b,c\n1,0.5,x\n2,,NaN\n");
    }

    #[test]
    fn a_field_with_cr_quote_comma_and_newline_round_trips() {
        let hostile = "a\rb \"quoted\", c\nd";
        let text = csv_text("name,value", [[hostile, "1"]]);
        assert_eq!(text, "name,value\n\"a\rb \"\"quoted\"\", c\nd\",1\n");
        // A lone `\r` is quoted too (the hand-written writer missed it).
        assert_eq!(csv_text("x", [["a\rb"]]), "x\n\"a\rb\"\n");
        let rows = read_rows(&text, "name,value", Path::new("t.csv")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].fields, vec![hostile.to_string(), "1".to_string()]);
    }

    #[test]
    fn reading_checks_the_header_and_names_the_line() {
        let err = read_rows("a,c\n1,2\n", "a,b", Path::new("t.csv")).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: expected the header `a,b`, found `a,c`"),
            "{err}"
        );
        let err = read_rows("", "a,b", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().contains("empty file"), "{err}");
        let rows = read_rows("a,b\r\n1, 2\r\n\r\n3,4\n", "a,b", Path::new("t.csv")).unwrap();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(rows[0].fields, vec!["1", "2"]);
    }
}
