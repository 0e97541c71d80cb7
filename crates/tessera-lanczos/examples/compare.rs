//! Runs the tessera side of `benches/compare/lanczos_scipy.py` on the .npy matrices it wrote.
//! Prints one `RESULT key=value …` line per (matrix, task).
//!
//! `cargo run --release -p tessera-lanczos --example compare -- target/lanczos-compare`

use std::time::Instant;

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use tessera_lanczos::{Slq, SlqConfig, StopRule, TopEigen, TopEigenConfig, Which};

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("at least one repeat"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/lanczos-compare".into());
    for name in ["wigner", "marchenko_pastur", "spiked"] {
        let a: Array2<f64> = read_npy(format!("{dir}/{name}.npy"))?;
        let eigs: Array1<f64> = read_npy(format!("{dir}/{name}_eigvals.npy"))?;
        let n = eigs.len();

        let plan = TopEigen::new(TopEigenConfig::new(5, Which::LargestAlgebraic, 1e-8))?;
        let (seconds, pairs) = best_of(3, || plan.compute(&a));
        let pairs = pairs?;
        let max_rel_err = (0..5)
            .map(|i| ((pairs.values[i] - eigs[n - 1 - i]) / eigs[n - 1 - i]).abs())
            .fold(0.0, f64::max);
        println!(
            "RESULT matrix={name} task=top5 matvecs={} seconds={seconds:.4} max_rel_err={max_rel_err:.1e} restarts={}",
            pairs.matvecs, pairs.restarts
        );

        // SLQ density: n_v = 10 Rademacher probes, m = 100 steps, full reorthogonalisation,
        // run as one batched Lanczos (one n × 10 blocked product per step).
        let slq = Slq::new(SlqConfig { steps: 100, rule: StopRule::fixed(10), ..Default::default() })?;
        let (seconds, density) = best_of(3, || slq.spectral_density(&a));
        let density = density?;
        let span = eigs[n - 1] - eigs[0];
        let w1 = density.wasserstein1(eigs.view())? / span;
        println!("RESULT matrix={name} task=slq matvecs=1000 seconds={seconds:.4} w1_over_span={w1:.1e}");

        // Traces from the same kind of run (n_v = 10, m = 100).
        let (seconds, traces) = best_of(1, || -> Result<_, tessera_lanczos::Error> {
            let q = slq.quadrature(&a)?;
            let trace = q.samples(&|x| x)?;
            let logdet = q.samples(&|x: f64| x.ln()).ok();
            Ok((q.matvecs, trace, logdet))
        });
        let (matvecs, trace, logdet) = traces?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let exact_trace = eigs.sum();
        let trace_err = ((mean(&trace) - exact_trace) / exact_trace).abs();
        let logdet_err = match (&logdet, eigs[0] > 0.0) {
            (Some(l), true) => {
                let exact: f64 = eigs.iter().map(|v| v.ln()).sum();
                format!("{:.1e}", ((mean(l) - exact) / exact).abs())
            }
            _ => "n/a".to_string(),
        };
        println!(
            "RESULT matrix={name} task=trace matvecs={matvecs} seconds={seconds:.4} trace_rel_err={trace_err:.1e} logdet_rel_err={logdet_err}"
        );
    }
    Ok(())
}
