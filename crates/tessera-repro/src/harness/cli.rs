//! The `tessera-repro` command line: runs the selected experiments, writes each one's
//! `claims.csv`, merges their sections into `<out>/REPORT.md`, and computes the exit code
//! (`--check`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use super::claim::Claim;
use super::context::{Context, DataSource, Mode};
use super::outcome::Experiment;
use super::report::{
    extract_sections, merge_sections, read_claims, render_report, section_body, utc_date,
    write_claims, ClaimRecord, RunMeta,
};

/// The default `--seed`.
pub const DEFAULT_SEED: u64 = 20_240_101;

/// Command-line options (`cargo xtask repro` passes every argument through unchanged).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tessera-repro",
    about = "Reproduce the papers' headline effects in miniature and write REPORT.md"
)]
pub struct Cli {
    /// Output directory for CSVs, plots and REPORT.md.
    #[arg(long, default_value = "target/repro")]
    pub out: PathBuf,
    /// Run only this experiment (repeatable); its section of an existing REPORT.md is
    /// replaced and the other sections are kept.
    #[arg(long)]
    pub only: Vec<String>,
    /// Smaller, faster versions of every experiment (the CI smoke test).
    #[arg(long)]
    pub quick: bool,
    /// Seed every experiment derives its randomness from.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// List the experiments and exit.
    #[arg(long)]
    pub list: bool,
    /// Exit non-zero when a claim expected to hold in this mode is not reproduced.
    #[arg(long)]
    pub check: bool,
    /// Root folder of a real dataset (with `--dataset`); experiments that support it
    /// (ssl-audio) run on it instead of generated data.
    #[arg(long, requires = "dataset")]
    pub data: Option<PathBuf>,
    /// The layout of `--data`.
    #[arg(long, requires = "data", value_parser = ["esc10", "urbansound8k", "speechcommands"])]
    pub dataset: Option<String>,
    /// Where tessera-nn's dense and convolution layers (and the other GPU routes) run:
    /// `cpu` keeps everything on the CPU (`TESSERA_DEVICE=cpu`), `cuda` requires a usable CUDA
    /// device (built with `--features cuda`) and fails otherwise, `auto` uses one when present.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub device: String,
}

/// The variable that keeps tessera-gpu off the device (`tessera_gpu::DEVICE_ENV`).
const DEVICE_ENV: &str = "TESSERA_DEVICE";

/// Whether a CUDA device is usable, or why not.
fn cuda_status() -> std::result::Result<(), String> {
    #[cfg(feature = "cuda")]
    {
        tessera_gpu::default_context_status()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("tessera-repro was built without the `cuda` feature".into())
    }
}

/// Checks `--device` before anything runs: `cuda` without a usable device is an error that
/// says why; `cpu` sets `TESSERA_DEVICE=cpu` for the whole process.
fn select_device(device: &str) -> Result<()> {
    match device {
        "cpu" => {
            std::env::set_var(DEVICE_ENV, "cpu");
            Ok(())
        }
        "cuda" => cuda_status().map_err(|reason| {
            anyhow::anyhow!(
                "--device cuda: no usable CUDA device: {reason} (use --device cpu or auto)"
            )
        }),
        _ => Ok(()),
    }
}

/// What a run produced, for the exit code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Experiments that returned an error (or panicked), with the message.
    pub errors: Vec<(String, String)>,
    /// Claims expected to hold in this mode whose verdict is not reproduced:
    /// (experiment, statement, verdict).
    pub check_failures: Vec<(String, String, String)>,
    /// Every claim of this run, per experiment.
    pub claims: Vec<(String, Claim)>,
}

/// The claims of `claims` that `--check` in `mode` counts as failures.
pub fn check_failures(claims: &[(String, Claim)], mode: Mode) -> Vec<(String, String, String)> {
    claims
        .iter()
        .filter(|(_, c)| c.fails_check(mode))
        .map(|(e, c)| (e.clone(), c.statement.clone(), c.verdict.to_string()))
        .collect()
}

/// The process exit code: 1 when an experiment failed, or when `check` is set and an
/// expected claim did not hold; 0 otherwise. (2 is used by [`main`] for usage and I/O errors.)
pub fn exit_code(summary: &RunSummary, check: bool) -> u8 {
    if !summary.errors.is_empty() || (check && !summary.check_failures.is_empty()) {
        1
    } else {
        0
    }
}

/// Parses the command line, runs, prints the outcome and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = crate::experiments::all();
    match run(&cli, &registry) {
        Ok(summary) => {
            for (name, err) in &summary.errors {
                eprintln!("error: experiment `{name}` failed: {err}");
            }
            if cli.check {
                for (name, statement, verdict) in &summary.check_failures {
                    eprintln!("check failed: {name}: \"{statement}\" is {verdict}");
                }
            }
            ExitCode::from(exit_code(&summary, cli.check))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn now() -> String {
    utc_date(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Runs one experiment, turning a panic into an error.
fn run_one(exp: &dyn Experiment, ctx: &Context) -> Result<super::Outcome> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| exp.run(ctx))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            bail!("panicked: {msg}")
        }
    }
}

/// Runs the experiments `cli` selects from `registry`, writes `claims.csv` per experiment and
/// `<out>/REPORT.md`, and returns the summary (errors of experiments are in it, not `Err`).
///
/// # Errors
/// An unknown `--only` name, or the output folder or report cannot be written.
pub fn run(cli: &Cli, registry: &[Box<dyn Experiment>]) -> Result<RunSummary> {
    if cli.list {
        for exp in registry {
            println!("{:<20} {}", exp.name(), exp.about());
        }
        return Ok(RunSummary::default());
    }
    for name in &cli.only {
        if !registry.iter().any(|e| e.name() == name) {
            let names: Vec<_> = registry.iter().map(|e| e.name()).collect();
            bail!(
                "unknown experiment `{name}` in --only; known: {}",
                names.join(", ")
            );
        }
    }
    select_device(&cli.device)?;
    let mode = if cli.quick { Mode::Quick } else { Mode::Full };
    let data = match (&cli.data, &cli.dataset) {
        (Some(dir), Some(dataset)) => Some(DataSource {
            dir: dir.clone(),
            dataset: dataset.clone(),
        }),
        (None, None) => None,
        _ => bail!("--data DIR and --dataset NAME go together"),
    };
    let out: &Path = &cli.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let commit = git_commit();
    let started = Instant::now();
    let mut summary = RunSummary::default();
    let mut updated = Vec::new();
    let mut ran = Vec::new();
    for exp in registry
        .iter()
        .filter(|e| cli.only.is_empty() || cli.only.iter().any(|n| n == e.name()))
    {
        let name = exp.name();
        ran.push(name.to_string());
        eprintln!("== {name} ({})", exp.paper());
        let start = Instant::now();
        let result = Context::new(out, name, cli.seed, mode)
            .and_then(|ctx| run_one(exp.as_ref(), &ctx.with_data(data.clone())));
        let secs = start.elapsed().as_secs_f64();
        let run_line = format!(
            "{} mode, seed {}, {secs:.1} s, commit `{commit}`, {}.",
            mode.as_str(),
            cli.seed,
            now()
        );
        let (records, body) = match result {
            Ok(outcome) => {
                eprintln!("   done in {secs:.1} s");
                for c in &outcome.claims {
                    eprintln!("   [{}] {}", c.verdict, c.statement);
                    summary.claims.push((name.to_string(), c.clone()));
                }
                let records: Vec<ClaimRecord> = outcome
                    .claims
                    .iter()
                    .map(|c| ClaimRecord::from_claim(name, c))
                    .collect();
                (records, outcome.section)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("   FAILED after {secs:.1} s: {msg}");
                summary.errors.push((name.to_string(), msg.clone()));
                (
                    vec![ClaimRecord::error(name, &msg)],
                    format!("**This experiment failed:** `{}`", msg.replace('`', "'")),
                )
            }
        };
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_claims(&dir.join("claims.csv"), &records)?;
        updated.push((
            name.to_string(),
            section_body(name, exp.paper(), &records, &body, &run_line),
        ));
    }
    summary.check_failures = check_failures(&summary.claims, mode);

    let report_path = out.join("REPORT.md");
    let existing = if cli.only.is_empty() {
        Vec::new()
    } else {
        std::fs::read_to_string(&report_path)
            .map(|t| extract_sections(&t))
            .unwrap_or_default()
    };
    let order: Vec<&str> = registry.iter().map(|e| e.name()).collect();
    let sections = merge_sections(&existing, &updated, &order);
    let mut records = Vec::new();
    for (name, _) in &sections {
        let path = out.join(name).join("claims.csv");
        match read_claims(&path) {
            Ok(r) => records.extend(r),
            Err(e) => records.push(ClaimRecord::error(name, &format!("{e:#}"))),
        }
    }
    let meta = RunMeta {
        commit,
        date: now(),
        threads: rayon::current_num_threads(),
        cpu: cpu_model(),
        total_secs: started.elapsed().as_secs_f64(),
        mode: mode.as_str().to_string(),
        seed: cli.seed,
        ran,
        partial: !cli.only.is_empty(),
    };
    std::fs::write(&report_path, render_report(&meta, &records, &sections))
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    println!("report written to {}", report_path.display());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{Expectation, Outcome, Verdict};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        name: &'static str,
        fail: bool,
        runs: AtomicUsize,
        verdict: Verdict,
    }

    impl Experiment for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn paper(&self) -> &'static str {
            "A paper"
        }
        fn about(&self) -> &'static str {
            "fake"
        }
        fn run(&self, ctx: &Context) -> Result<Outcome> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                bail!("no data for {}", ctx.seed);
            }
            Ok(Outcome {
                section: format!("body of {} run {n}", self.name),
                claims: vec![
                    Claim::new("it works", format!("run {n}"), "t", self.verdict)
                        .expect(Expectation::Always),
                ],
            })
        }
    }

    fn fake(name: &'static str, fail: bool, verdict: Verdict) -> Box<dyn Experiment> {
        Box::new(Fake {
            name,
            fail,
            runs: AtomicUsize::new(0),
            verdict,
        })
    }

    fn cli(out: &Path, only: &[&str], check: bool) -> Cli {
        Cli {
            out: out.to_path_buf(),
            only: only.iter().map(|s| s.to_string()).collect(),
            quick: true,
            seed: 7,
            list: false,
            check,
            data: None,
            dataset: None,
            device: "auto".into(),
        }
    }

    #[test]
    fn device_is_checked_and_cuda_without_a_device_is_a_clear_error() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["tessera-repro"], args].concat());
        assert_eq!(parse(&[]).unwrap().device, "auto");
        assert_eq!(parse(&["--device", "cuda"]).unwrap().device, "cuda");
        assert!(parse(&["--device", "tpu"]).is_err());
        assert!(select_device("auto").is_ok());
        match cuda_status() {
            Ok(()) => assert!(select_device("cuda").is_ok()),
            Err(reason) => {
                let e = select_device("cuda").unwrap_err().to_string();
                assert!(e.contains("--device cuda") && e.contains(&reason), "{e}");
            }
        }
    }

    #[test]
    fn data_and_dataset_go_together_and_the_layout_is_checked() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["tessera-repro"], args].concat());
        let cli = parse(&["--data", "/d", "--dataset", "esc10"]).unwrap();
        assert_eq!(cli.data.as_deref(), Some(Path::new("/d")));
        assert_eq!(cli.dataset.as_deref(), Some("esc10"));
        assert!(parse(&["--data", "/d"]).is_err());
        assert!(parse(&["--dataset", "esc10"]).is_err());
        assert!(parse(&["--data", "/d", "--dataset", "audioset"]).is_err());
        assert!(parse(&[]).unwrap().data.is_none());
    }

    #[test]
    fn exit_code_logic() {
        let mut s = RunSummary::default();
        assert_eq!(exit_code(&s, true), 0);
        s.check_failures
            .push(("a".into(), "c".into(), "partly".into()));
        assert_eq!(exit_code(&s, false), 0);
        assert_eq!(exit_code(&s, true), 1);
        s.check_failures.clear();
        s.errors.push(("b".into(), "boom".into()));
        assert_eq!(exit_code(&s, false), 1);
    }

    #[test]
    fn full_run_then_only_keeps_other_sections() {
        let out = std::env::temp_dir().join(format!("tessera-repro-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let registry = vec![
            fake("alpha", false, Verdict::Reproduced),
            fake("beta", true, Verdict::Reproduced),
            fake("gamma", false, Verdict::Partly),
        ];
        let summary = run(&cli(&out, &[], true), &registry).unwrap();
        assert_eq!(summary.errors.len(), 1);
        assert_eq!(summary.errors[0].0, "beta");
        assert_eq!(summary.check_failures.len(), 1);
        assert_eq!(summary.check_failures[0].0, "gamma");
        assert_eq!(exit_code(&summary, true), 1);
        let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
        assert!(report.contains("body of alpha run 0"));
        assert!(report.contains("This experiment failed"));
        assert!(report.contains("| beta | experiment failed: no data for 7"));
        assert!(report.contains("| gamma | it works | — | run 0 | **partly** | always |"));

        let summary = run(&cli(&out, &["alpha"], true), &registry).unwrap();
        assert!(summary.errors.is_empty());
        assert_eq!(exit_code(&summary, true), 0);
        let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
        assert!(report.contains("body of alpha run 1"));
        assert!(!report.contains("body of alpha run 0"));
        assert!(report.contains("| alpha | it works | — | run 1 |"));
        // The other sections and their summary rows are kept.
        assert!(report.contains("body of gamma run 0"));
        assert!(report.contains("| gamma | it works | — | run 0 | **partly** | always |"));
        assert!(report.contains("This experiment failed"));
        assert!(run(&cli(&out, &["nope"], false), &registry).is_err());
        let _ = std::fs::remove_dir_all(&out);
    }
}
