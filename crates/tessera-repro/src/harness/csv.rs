//! CSV output (`<out>/<name>/results.csv`) and a small RFC 4180 reader for the harness's own
//! files (`claims.csv`).

use std::fmt::{Display, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _, Result};

/// A CSV table built row by row and written at the end.
///
/// Cells are quoted when they contain a comma, a double quote, a carriage return or a line
/// feed (quotes are doubled), as RFC 4180 says. A row of the wrong length is remembered and
/// reported by [`ResultsCsv::write`], so `row` can be chained without `?`.
#[derive(Debug, Clone)]
pub struct ResultsCsv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    bad_row: Option<(usize, usize)>,
}

/// Quotes one CSV cell if it needs it.
pub fn escape_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

impl ResultsCsv {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        ResultsCsv {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            bad_row: None,
        }
    }

    /// Appends a row of displayable values (numbers are written with `Display`, i.e. the
    /// shortest representation that round-trips).
    pub fn row(&mut self, cells: &[&dyn Display]) -> &mut Self {
        self.row_strings(cells.iter().map(|c| c.to_string()).collect())
    }

    /// Appends a row of strings.
    pub fn row_strings(&mut self, cells: Vec<String>) -> &mut Self {
        if cells.len() != self.header.len() && self.bad_row.is_none() {
            self.bad_row = Some((self.rows.len(), cells.len()));
        }
        self.rows.push(cells);
        self
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The CSV text (header first, `\n` line ends).
    ///
    /// # Errors
    /// A row whose length differs from the header's.
    pub fn to_text(&self) -> Result<String> {
        if let Some((index, len)) = self.bad_row {
            bail!(
                "results.csv row {index} has {len} cells, the header has {}",
                self.header.len()
            );
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| escape_cell(c)).collect();
            let _ = writeln!(out, "{}", cells.join(","));
        }
        Ok(out)
    }

    /// Writes the table to `path`.
    ///
    /// # Errors
    /// A row of the wrong length, or the file cannot be written.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = self.to_text()?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Parses CSV text (RFC 4180: quoted cells may hold commas, doubled quotes and line breaks)
/// into rows of cells. A trailing line end does not make an empty row.
///
/// # Errors
/// A quote that is never closed.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut row_started = false;
    while let Some(c) = chars.next() {
        row_started = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => in_quotes = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                row_started = false;
            }
            _ => cell.push(c),
        }
    }
    if in_quotes {
        bail!("unterminated quoted CSV cell");
    }
    if row_started {
        row.push(cell);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_quotes_only_when_needed() {
        assert_eq!(escape_cell("plain"), "plain");
        assert_eq!(escape_cell("a,b"), "\"a,b\"");
        assert_eq!(escape_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(escape_cell(""), "");
    }

    #[test]
    fn rows_are_written_and_read_back() {
        let mut csv = ResultsCsv::new(&["name", "value", "note"]);
        csv.row(&[&"dense", &0.5f64, &"x, y"]).row(&[
            &"sparse",
            &3usize,
            &"he said \"no\"\nthen left",
        ]);
        let text = csv.to_text().unwrap();
        assert_eq!(
            text,
            "name,value,note\ndense,0.5,\"x, y\"\nsparse,3,\"he said \"\"no\"\"\nthen left\"\n"
        );
        let rows = parse_csv(&text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["dense", "0.5", "x, y"]);
        assert_eq!(rows[2][2], "he said \"no\"\nthen left");
    }

    #[test]
    fn wrong_row_length_is_an_error() {
        let mut csv = ResultsCsv::new(&["a", "b"]);
        csv.row(&[&1]);
        let err = csv.to_text().unwrap_err().to_string();
        assert!(err.contains("row 0 has 1 cells"), "{err}");
    }

    #[test]
    fn parser_handles_crlf_empty_cells_and_missing_final_newline() {
        let rows = parse_csv("a,,c\r\n\"q\",2").unwrap();
        assert_eq!(rows, vec![vec!["a", "", "c"], vec!["q", "2"]]);
        assert!(parse_csv("\"open").is_err());
        assert!(parse_csv("").unwrap().is_empty());
    }
}
