//! Shared plumbing for experiments: the run context and small CSV helpers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// What every experiment receives.
#[derive(Debug, Clone)]
pub struct Context {
    /// The experiment's own output folder (already created).
    pub dir: PathBuf,
    /// Run the smaller, faster variant.
    pub quick: bool,
}

impl Context {
    /// Path of a file inside the experiment's folder.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Writes a CSV file with a header row and rows of already-formatted cells.
#[allow(dead_code)]
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Formats a markdown table.
#[allow(dead_code)]
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}
