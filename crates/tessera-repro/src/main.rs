//! `tessera-repro`: runs the paper reproductions and writes `REPORT.md`.
//!
//! Every experiment is deterministic from its seed, writes its numbers (CSV/NPY) and an SVG
//! plot under `<out>/<name>/`, and returns one markdown section of the report.

mod experiments;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use crate::report::Context;

#[derive(Debug, Parser)]
#[command(
    name = "tessera-repro",
    about = "Reproduce the papers' headline effects in miniature"
)]
struct Cli {
    /// Output directory for CSVs, plots and REPORT.md.
    #[arg(long, default_value = "target/repro")]
    out: PathBuf,
    /// Run only the experiment(s) with this name.
    #[arg(long)]
    only: Vec<String>,
    /// Smaller, faster versions of every experiment.
    #[arg(long)]
    quick: bool,
    /// List the experiments and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let all = experiments::all();
    if cli.list {
        for exp in &all {
            println!("{:<18} {}", exp.name, exp.about);
        }
        return Ok(());
    }
    for name in &cli.only {
        if !all.iter().any(|e| e.name == name) {
            let names: Vec<_> = all.iter().map(|e| e.name).collect();
            bail!("unknown experiment `{name}`; known: {}", names.join(", "));
        }
    }
    let selected: Vec<_> = all
        .iter()
        .filter(|e| cli.only.is_empty() || cli.only.iter().any(|n| n == e.name))
        .collect();
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;

    let mut report = String::from("# tessera reproduction report\n\n");
    report.push_str(&format!(
        "Mode: {}. Each section was produced by `cargo xtask repro{}`; the numbers behind \
         every table and plot are in the experiment's folder.\n\n",
        if cli.quick { "quick" } else { "full" },
        if cli.quick { " --quick" } else { "" }
    ));
    for exp in selected {
        let dir = cli.out.join(exp.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ctx = Context {
            dir,
            quick: cli.quick,
        };
        eprintln!("== {} ({})", exp.name, exp.paper);
        let start = Instant::now();
        let section = (exp.run)(&ctx).with_context(|| format!("experiment `{}`", exp.name))?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!("   done in {secs:.1} s");
        report.push_str(&format!("## {}\n\n*Paper:* {}\n\n", exp.name, exp.paper));
        report.push_str(&section);
        report.push_str(&format!("\n\n*Run time:* {secs:.1} s\n\n"));
    }
    let path = cli.out.join("REPORT.md");
    std::fs::write(&path, report).with_context(|| format!("cannot write {}", path.display()))?;
    println!("report written to {}", path.display());
    Ok(())
}
