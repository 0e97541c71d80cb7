//! `tessera-repro`: runs the paper reproductions and writes `REPORT.md`
//! (all logic lives in [`tessera_repro::harness::cli`]).

fn main() -> std::process::ExitCode {
    tessera_repro::harness::cli::main()
}
