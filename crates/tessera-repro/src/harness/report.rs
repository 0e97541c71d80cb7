//! `REPORT.md`: run metadata, a summary table of every claim, then one section per experiment.
//!
//! Layout and the `--only` merge:
//! - each experiment's section is stored between `<!-- begin NAME -->` and `<!-- end NAME -->`
//!   markers; a run with `--only NAME` reads the existing report, replaces only the sections
//!   it ran and keeps the others verbatim (in registry order);
//! - every run writes `<out>/<name>/claims.csv` (columns [`CLAIMS_HEADER`]; an experiment
//!   that failed gets one row with verdict `error`), and the summary table is regenerated
//!   from the `claims.csv` of every experiment that has a section in the merged report, so
//!   the table always matches the sections below it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::claim::{Claim, Expectation};
use super::csv::{parse_csv, ResultsCsv};

/// Formats a markdown table (cells are escaped with [`md_cell`]).
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| md_cell(h)).collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// Makes text safe inside a markdown table cell: `|` escaped, line breaks as spaces.
pub fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", " ")
        .replace('\n', " ")
}

/// Columns of `claims.csv`.
pub const CLAIMS_HEADER: [&str; 7] = [
    "experiment",
    "statement",
    "paper",
    "ours",
    "test",
    "verdict",
    "expectation",
];

/// One row of `claims.csv`: a claim in text form, or an experiment's error
/// (`verdict == "error"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The experiment's name.
    pub experiment: String,
    /// The paper's statement (or the error message).
    pub statement: String,
    /// The paper's number, empty if none.
    pub paper: String,
    /// What we measured.
    pub ours: String,
    /// The test applied.
    pub test: String,
    /// `reproduced`, `partly`, `not reproduced` or `error`.
    pub verdict: String,
    /// `always`, `full-only` or `never`.
    pub expectation: String,
}

impl ClaimRecord {
    /// The record of a claim of `experiment`.
    pub fn from_claim(experiment: &str, claim: &Claim) -> Self {
        ClaimRecord {
            experiment: experiment.to_string(),
            statement: claim.statement.clone(),
            paper: claim.paper.clone().unwrap_or_default(),
            ours: claim.ours.clone(),
            test: claim.test.clone(),
            verdict: claim.verdict.as_str().to_string(),
            expectation: claim.expectation.as_str().to_string(),
        }
    }

    /// The record of an experiment that failed with `message`.
    pub fn error(experiment: &str, message: &str) -> Self {
        ClaimRecord {
            experiment: experiment.to_string(),
            statement: format!("experiment failed: {message}"),
            paper: String::new(),
            ours: String::new(),
            test: String::new(),
            verdict: "error".to_string(),
            expectation: Expectation::Always.as_str().to_string(),
        }
    }
}

/// Writes `claims.csv`.
///
/// # Errors
/// The file cannot be written.
pub fn write_claims(path: &Path, records: &[ClaimRecord]) -> Result<()> {
    let mut csv = ResultsCsv::new(&CLAIMS_HEADER);
    for r in records {
        csv.row_strings(vec![
            r.experiment.clone(),
            r.statement.clone(),
            r.paper.clone(),
            r.ours.clone(),
            r.test.clone(),
            r.verdict.clone(),
            r.expectation.clone(),
        ]);
    }
    csv.write(path)
}

/// Reads `claims.csv` back.
///
/// # Errors
/// The file cannot be read or does not have the [`CLAIMS_HEADER`] columns.
pub fn read_claims(path: &Path) -> Result<Vec<ClaimRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows = parse_csv(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    let mut rows = rows.into_iter();
    let header = rows.next().unwrap_or_default();
    anyhow::ensure!(
        header == CLAIMS_HEADER,
        "{}: header {:?}, expected {:?}",
        path.display(),
        header,
        CLAIMS_HEADER
    );
    rows.map(|r| {
        anyhow::ensure!(
            r.len() == 7,
            "{}: a row has {} cells, not 7",
            path.display(),
            r.len()
        );
        let mut it = r.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(ClaimRecord {
            experiment: next(),
            statement: next(),
            paper: next(),
            ours: next(),
            test: next(),
            verdict: next(),
            expectation: next(),
        })
    })
    .collect()
}

/// The begin marker of a section.
pub fn begin_marker(name: &str) -> String {
    format!("<!-- begin {name} -->")
}

/// The end marker of a section.
pub fn end_marker(name: &str) -> String {
    format!("<!-- end {name} -->")
}

/// The sections of an existing report, in order: `(name, body)` where body is the text
/// between the markers (without them). Text outside markers is ignored; an unterminated
/// section is dropped.
pub fn extract_sections(report: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = report;
    while let Some(start) = rest.find("<!-- begin ") {
        let after = &rest[start + "<!-- begin ".len()..];
        let Some(close) = after.find(" -->") else {
            break;
        };
        let name = after[..close].trim().to_string();
        let body_start = &after[close + " -->".len()..];
        let end = end_marker(&name);
        let Some(end_pos) = body_start.find(&end) else {
            break;
        };
        let body = body_start[..end_pos].trim_matches('\n').to_string();
        out.push((name, body));
        rest = &body_start[end_pos + end.len()..];
    }
    out
}

/// The sections of the new report: for each name of `order` (the registry order), the
/// section from `updated` if this run produced one, else the one from `existing`; names with
/// neither are left out, as are stored sections of experiments no longer registered.
pub fn merge_sections(
    existing: &[(String, String)],
    updated: &[(String, String)],
    order: &[&str],
) -> Vec<(String, String)> {
    order
        .iter()
        .filter_map(|name| {
            let pick = |list: &[(String, String)]| {
                list.iter()
                    .find(|(n, _)| n == name)
                    .map(|(n, b)| (n.clone(), b.clone()))
            };
            pick(updated).or_else(|| pick(existing))
        })
        .collect()
}

/// Metadata of the run that writes the report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    /// `git rev-parse --short HEAD`, or "unknown".
    pub commit: String,
    /// UTC date and time.
    pub date: String,
    /// Rayon threads.
    pub threads: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Wall time of this invocation, seconds.
    pub total_secs: f64,
    /// `quick` or `full`.
    pub mode: String,
    /// The seed.
    pub seed: u64,
    /// The experiments this invocation ran.
    pub ran: Vec<String>,
    /// Whether only some experiments ran (`--only`).
    pub partial: bool,
}

/// The paper's figure of a claim for a table cell (a dash when the paper gives none).
fn paper_cell(r: &ClaimRecord) -> String {
    if r.paper.is_empty() {
        "—".into()
    } else {
        r.paper.clone()
    }
}

/// The markdown body of one experiment's section: heading, paper, its claims table (with the
/// tests), the experiment's own text and a run line.
pub fn section_body(
    name: &str,
    paper: &str,
    records: &[ClaimRecord],
    body: &str,
    run_line: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {name}\n\n*Paper:* {paper}\n");
    if !records.is_empty() {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.statement.clone(),
                    paper_cell(r),
                    r.ours.clone(),
                    r.test.clone(),
                    format!("**{}**", r.verdict),
                    r.expectation.clone(),
                ]
            })
            .collect();
        out.push_str(&markdown_table(
            &["claim", "paper", "ours", "test", "verdict", "expected"],
            &rows,
        ));
        out.push('\n');
    }
    out.push_str(body.trim_end());
    let _ = write!(out, "\n\n*Run:* {run_line}");
    out
}

/// The whole report: title, metadata, summary table (from `records`), then `sections`
/// wrapped in their markers.
pub fn render_report(
    meta: &RunMeta,
    records: &[ClaimRecord],
    sections: &[(String, String)],
) -> String {
    let mut out = String::from("# tessera reproduction report\n\n");
    let _ = writeln!(
        out,
        "Written by `cargo xtask repro{}{}` — commit `{}`, {}, {} mode, seed {}, {} rayon \
         thread(s), CPU: {}; this invocation ran {} in {:.1} s.{}\n",
        if meta.mode == "quick" { " --quick" } else { "" },
        if meta.partial {
            meta.ran
                .iter()
                .map(|n| format!(" --only {n}"))
                .collect::<String>()
        } else {
            String::new()
        },
        meta.commit,
        meta.date,
        meta.mode,
        meta.seed,
        meta.threads,
        meta.cpu,
        if meta.ran.is_empty() {
            "nothing".to_string()
        } else {
            meta.ran.join(", ")
        },
        meta.total_secs,
        if meta.partial {
            " Sections of other experiments were kept from earlier runs; each section's *Run* \
             line says when and how it was produced."
        } else {
            ""
        }
    );
    out.push_str(
        "Every number behind the tables and plots is in `<experiment>/results.csv`; the claims \
         below are in `<experiment>/claims.csv`. *expected* says when `--check` requires a \
         claim to be reproduced (always, full-only, never).\n\n## Summary\n\n",
    );
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.experiment.clone(),
                r.statement.clone(),
                paper_cell(r),
                r.ours.clone(),
                format!("**{}**", r.verdict),
                r.expectation.clone(),
            ]
        })
        .collect();
    out.push_str(&markdown_table(
        &[
            "experiment",
            "claim",
            "paper",
            "ours",
            "verdict",
            "expected",
        ],
        &rows,
    ));
    for (name, body) in sections {
        let _ = write!(
            out,
            "\n{}\n{}\n{}\n",
            begin_marker(name),
            body,
            end_marker(name)
        );
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (proleptic Gregorian calendar).
pub fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Verdict;

    #[test]
    fn table_cells_are_escaped() {
        let t = markdown_table(&["a", "b"], &[vec!["x|y".into(), "two\nlines".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| x\\|y | two lines |\n");
    }

    #[test]
    fn sections_round_trip_and_merge() {
        let meta = RunMeta {
            commit: "abc".into(),
            date: "d".into(),
            threads: 2,
            cpu: "cpu".into(),
            total_secs: 1.0,
            mode: "quick".into(),
            seed: 1,
            ran: vec!["a".into(), "b".into()],
            partial: false,
        };
        let sections = vec![
            ("a".to_string(), "## a\n\nold a".to_string()),
            (
                "b".to_string(),
                "## b\n\nkeep b\n<!-- not a marker -->".to_string(),
            ),
        ];
        let text = render_report(&meta, &[], &sections);
        let parsed = extract_sections(&text);
        assert_eq!(parsed, sections);

        let updated = vec![("a".to_string(), "## a\n\nnew a".to_string())];
        let merged = merge_sections(&parsed, &updated, &["a", "b", "c"]);
        assert_eq!(merged[0].1, "## a\n\nnew a");
        assert_eq!(merged[1], sections[1]);
        assert_eq!(merged.len(), 2);
        // Registry order wins over the stored order; unregistered sections are dropped.
        let merged = merge_sections(&parsed, &[], &["b", "a"]);
        assert_eq!(merged[0].0, "b");
        assert_eq!(merge_sections(&parsed, &[], &["b"]).len(), 1);
    }

    #[test]
    fn unterminated_sections_are_dropped() {
        let text = "<!-- begin a -->\nA\n<!-- end a -->\n<!-- begin b -->\nB";
        assert_eq!(
            extract_sections(text),
            vec![("a".to_string(), "A".to_string())]
        );
    }

    #[test]
    fn claims_csv_round_trips() {
        let dir = std::env::temp_dir().join(format!("tessera-repro-claims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let claim = Claim::new(
            "gap shrinks, \"clearly\"",
            "4.1 ± 0.8 -> 1.2",
            "a < b",
            Verdict::Partly,
        )
        .paper("80.66% -> 8.96%")
        .expect(Expectation::FullOnly);
        let records = vec![
            ClaimRecord::from_claim("x", &claim),
            ClaimRecord::error("y", "boom,\nbang"),
        ];
        let path = dir.join("claims.csv");
        write_claims(&path, &records).unwrap();
        assert_eq!(read_claims(&path).unwrap(), records);
        assert_eq!(records[0].verdict, "partly");
        assert_eq!(records[0].expectation, "full-only");
        std::fs::write(&path, "a,b\n").unwrap();
        assert!(read_claims(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2000-03-01 12:34 UTC = 951_914_040.
        assert_eq!(utc_date(951_914_040), "2000-03-01 12:34 UTC");
        // 2024-02-29 23:59 UTC = 1_709_251_140.
        assert_eq!(utc_date(1_709_251_140), "2024-02-29 23:59 UTC");
    }
}
