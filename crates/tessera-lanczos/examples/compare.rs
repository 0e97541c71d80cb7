//! Runs the tessera side of `benches/compare/lanczos_scipy.py` on the .npy matrices it wrote.
//! Prints one `RESULT key=value …` line per (matrix, task).
//!
//! `cargo run --release -p tessera-lanczos --example compare -- target/lanczos-compare`

use std::time::Instant;

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use tessera_lanczos::{TopEigen, TopEigenConfig, Which};

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
    }
    Ok(())
}
