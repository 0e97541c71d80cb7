//! `cargo xtask`: thin wrappers that run cargo with the right flags.
//!
//! * `cargo xtask repro [ARGS]` builds the release binary `tessera-repro` and runs the paper
//!   reproductions; every argument (`--quick`, `--only NAME`, `--check`, `--seed N`, `--out DIR`,
//!   `--list`, `--help`) goes to that binary unchanged.
//! * `cargo xtask ci` runs `.ci/run`, the one definition of what CI checks (fmt, clippy
//!   `-D warnings`, tests, docs `-D warnings`, bench compilation, the `lapack` feature, the
//!   repro smoke test).
//! * `cargo xtask bench [ARGS]` runs the criterion benches in release mode.

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
    /// Reproduce each paper's headline effect in miniature (release build of tessera-repro);
    /// every argument is passed to `tessera-repro` unchanged (`cargo xtask repro --help`).
    #[command(disable_help_flag = true)]
    Repro {
        /// Arguments for `tessera-repro`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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
        Task::Repro { args } => {
            let mut cmd = cargo();
            cmd.args(["run", "--release", "--package", "tessera-repro", "--"]);
            cmd.args(args);
            // Propagate tessera-repro's exit code as is (`--check` failures, experiment errors).
            eprintln!("xtask: running {cmd:?}");
            let status = cmd
                .status()
                .with_context(|| format!("could not start {cmd:?}"))?;
            std::process::exit(status.code().unwrap_or(1))
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
