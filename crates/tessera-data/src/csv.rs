//! A minimal CSV reader for the datasets' metadata files.
//!
//! Written by hand because the files are small, comma-separated with a header row and at
//! most simple double-quoted fields; a CSV crate would be the only reason for a new workspace
//! dependency.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A parsed CSV file: its header and its data rows with their one-based line numbers.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) path: PathBuf,
    header: Vec<String>,
    pub(crate) rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Reads `path`; a missing file is [`Error::MissingMetadata`] with `hint`.
    pub(crate) fn read(path: &Path, hint: &str) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingMetadata {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
            .filter(|(_, line)| !line.trim().is_empty());
        let malformed = |line: usize, reason: String| Error::MalformedMetadata {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let (header_line, header) = lines
            .next()
            .ok_or_else(|| malformed(0, "the file is empty (no header row)".into()))?;
        let header = split_fields(header).map_err(|reason| malformed(header_line, reason))?;
        let mut rows = Vec::new();
        for (line, text) in lines {
            let fields = split_fields(text).map_err(|reason| malformed(line, reason))?;
            if fields.len() != header.len() {
                return Err(malformed(
                    line,
                    format!(
                        "{} fields, but the header has {}",
                        fields.len(),
                        header.len()
                    ),
                ));
            }
            rows.push((line, fields));
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// Index of the column called `name`.
    pub(crate) fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::MalformedMetadata {
                path: self.path.clone(),
                line: 1,
                reason: format!("no column `{name}` in the header {:?}", self.header),
            })
    }

    /// A malformed-metadata error at `line`.
    pub(crate) fn error(&self, line: usize, reason: impl Into<String>) -> Error {
        Error::MalformedMetadata {
            path: self.path.clone(),
            line,
            reason: reason.into(),
        }
    }

    /// Parses field `column` of a row as an integer.
    pub(crate) fn integer(&self, line: usize, fields: &[String], column: usize) -> Result<i64> {
        fields[column].parse::<i64>().map_err(|_| {
            self.error(
                line,
                format!(
                    "column `{}` = `{}` is not an integer",
                    self.header[column], fields[column]
                ),
            )
        })
    }
}

/// Splits one line into trimmed fields, honouring double quotes (`""` inside quotes is a
/// literal quote).
fn split_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => in_quotes = !in_quotes,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            (other, _) => field.push(other),
        }
    }
    if in_quotes {
        return Err("unterminated double quote".into());
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_crlf() {
        let table = Table::parse(
            Path::new("x.csv"),
            "\u{feff}a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n\r\n2,z,w\r\n",
        )
        .unwrap();
        assert_eq!(table.column("c").unwrap(), 2);
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[0].0, 2);
        assert_eq!(table.rows[0].1, vec!["1", "x, y", "say \"hi\""]);
        assert_eq!(table.rows[1].0, 4);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let err = Table::parse(Path::new("m.csv"), "a,b\n1,2,3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("3 fields"), "{err}");
        let table = Table::parse(Path::new("m.csv"), "a,b\n1,2\n").unwrap();
        let err = table.column("fold").unwrap_err().to_string();
        assert!(err.contains("`fold`"), "{err}");
        let err = Table::parse(Path::new("m.csv"), "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        let err = Table::parse(Path::new("m.csv"), "a\n\"x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("quote"), "{err}");
    }
}
