//! `cargo xtask`: thin wrappers that run cargo with the right flags.
//!
//! * `cargo xtask repro [--out DIR] [--only NAME] [--quick] [--list]` builds the release binary
//!   `tessera-repro` and runs the paper reproductions.
//! * `cargo xtask ci` runs `.ci/run`, the one definition of what CI checks (fmt, clippy
//!   `-D warnings`, tests, docs `-D warnings`, bench compilation, the `lapack` feature, the
//!   repro smoke test).
//! * `cargo xtask bench [ARGS]` runs the criterion benches in release mode.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "tessera developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Reproduce each paper's headline effect in miniature (release build of tessera-repro).
    Repro {
        /// Output directory for CSVs, plots and REPORT.md.
        #[arg(long, default_value = "target/repro")]
        out: PathBuf,
        /// Run only the experiment with this name (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Smaller, faster versions of every experiment.
        #[arg(long)]
        quick: bool,
        /// List the experiments and exit.
        #[arg(long)]
        list: bool,
    },
    /// Everything CI checks: runs `.ci/run`.
    Ci,
    /// Run the criterion benches (arguments go to `cargo bench`).
    Bench {
        /// Extra arguments for `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Repro {
            out,
            only,
            quick,
            list,
        } => {
            let mut cmd = cargo();
            cmd.args(["run", "--release", "--package", "tessera-repro", "--"]);
            cmd.arg("--out").arg(out);
            for name in only {
                cmd.arg("--only").arg(name);
            }
            if quick {
                cmd.arg("--quick");
            }
            if list {
                cmd.arg("--list");
            }
            run(cmd)
        }
        Task::Ci => {
            // `.ci/run` is the one definition of what CI checks; running it here keeps the two
            // from drifting apart.
            let mut ci = Command::new("bash");
            ci.arg(".ci/run");
            run(ci)
        }
        Task::Bench { args } => {
            let mut cmd = cargo();
            cmd.args(["bench", "--workspace"]).args(args);
            run(cmd)
        }
    }
}
