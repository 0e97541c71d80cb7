//! Side-by-side timing of `CsrMatrix::matmul` against sprs 0.11, of the masked weight
//! gradient against dense-then-mask, and of the two sparse × dense kernels against each other
//! (the crossover behind `PANEL_MIN_ENTRIES_PER_ROW`). Prints markdown tables.
//!
//! ```text
//! cargo run --release -p tessera-sparse --example vs_sprs -- [--reps 15] [--threads 1|2]
//!     [--products] [--gradient] [--kernels]
//! ```
//!
//! With no table named, all three are printed; with no `--threads`, the product and gradient
//! tables are printed for a one-thread and a two-thread rayon pool in turn (the kernel
//! crossover is always one thread).
//!
//! Method: the same masked weights (exact-count random mask, values in [-1, 1)) in both
//! libraries; for each shape and density the contenders run interleaved (A, B, C, A, B, C, …)
//! `reps` times and each keeps its best wall-clock time, so a load spike on this shared machine
//! hits all of them alike. sprs is timed on its two fastest paths for a row-major dense
//! operand, `&CsMat * &Array2` (allocates the output) and `csr_mulacc_dense_rowmaj` into a
//! reused output that is zeroed inside the timed region (the product accumulates), and the
//! faster of the two is the baseline. The whole timing loop runs on a worker of a rayon pool of
//! the stated size (`pool.install` around the loop, not around each call), so that no timed
//! call includes a hand-off between threads; sprs is single-threaded and simply runs on that
//! worker, and the other worker of a two-thread pool sleeps meanwhile (the program sleeps 1 ms
//! before every timed call, so no rayon worker is still spinning when sprs runs). Every tessera
//! product is checked to be bit-identical to sprs's (same products, same order, separately
//! rounded multiply and add).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{CsrMatrix, Mask, SpmmKernel};

/// (rows of W, columns of W = rows of B, columns of B).
const SHAPES: [(usize, usize, usize); 3] = [(1024, 1024, 256), (512, 2304, 128), (4096, 1024, 64)];
const DENSITIES: [f64; 6] = [0.5, 0.3, 0.1, 0.05, 0.01, 0.005];

struct Options {
    reps: usize,
    threads: Vec<usize>,
    products: bool,
    gradient: bool,
    kernels: bool,
    /// Only this shape (index into `SHAPES`) and density, when given.
    shape: Option<usize>,
    density: Option<f64>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        reps: 15,
        threads: vec![1, 2],
        products: false,
        gradient: false,
        kernels: false,
        shape: None,
        density: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" | "--threads" => {
                let value: usize = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v| v > 0)
                    .ok_or_else(|| format!("{arg} needs a positive integer"))?;
                if arg == "--reps" {
                    options.reps = value;
                } else {
                    options.threads = vec![value];
                }
            }
            "--shape" => {
                options.shape = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&v: &usize| v < SHAPES.len())
                        .ok_or("--shape needs 0, 1 or 2")?,
                )
            }
            "--density" => {
                options.density = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&v: &f64| v > 0.0 && v <= 1.0)
                        .ok_or("--density needs a value in (0, 1]")?,
                )
            }
            "--products" => options.products = true,
            "--gradient" => options.gradient = true,
            "--kernels" => options.kernels = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(options.products || options.gradient || options.kernels) {
        (options.products, options.gradient, options.kernels) = (true, true, true);
    }
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let filter = Filter {
        shape: options.shape,
        density: options.density,
    };
    if options.products {
        for &threads in &options.threads {
            products(threads, options.reps, &filter)?;
        }
    }
    if options.gradient {
        for &threads in &options.threads {
            gradients(threads, options.reps, &filter)?;
        }
    }
    if options.kernels {
        kernels(options.reps, &filter)?;
    }
    Ok(())
}

struct Filter {
    shape: Option<usize>,
    density: Option<f64>,
}

impl Filter {
    fn shapes(&self) -> Vec<(usize, usize, usize)> {
        match self.shape {
            Some(i) => vec![SHAPES[i]],
            None => SHAPES.to_vec(),
        }
    }

    fn densities(&self, all: &[f64]) -> Vec<f64> {
        match self.density {
            Some(d) => vec![d],
            None => all.to_vec(),
        }
    }
}

fn random_matrix(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unavailable".into())
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build()
}

/// Runs the contenders interleaved `reps` times (after one untimed warm-up call each) and
/// returns each one's best time in milliseconds.
fn best_of(reps: usize, contenders: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for run in contenders.iter_mut() {
        run();
    }
    let mut best = vec![Duration::MAX; contenders.len()];
    for _ in 0..reps {
        for (run, best) in contenders.iter_mut().zip(&mut best) {
            std::thread::sleep(Duration::from_millis(1));
            let start = Instant::now();
            run();
            *best = (*best).min(start.elapsed());
        }
    }
    best.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

/// The masked weight as both libraries' CSR matrix, plus the mask and the dense masked copy.
struct Layer {
    ours: CsrMatrix<f32>,
    theirs: sprs::CsMat<f32>,
    mask: Mask,
}

fn layer(
    m: usize,
    k: usize,
    density: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Layer, Box<dyn std::error::Error>> {
    let mask = Mask::exact_count(m * k, density, rng)?;
    let mut w = random_matrix(m, k, rng);
    mask.apply_view(w.view_mut())?;
    let ours = CsrMatrix::from_masked(w.view(), &mask)?;
    // From our CSR arrays rather than `csr_from_dense`, so that a kept weight that happens to
    // be zero is stored in both.
    let theirs = sprs::CsMat::try_new(
        (m, k),
        ours.indptr().to_vec(),
        ours.indices().to_vec(),
        ours.values().to_vec(),
    )
    .map_err(|(.., e)| e)?;
    Ok(Layer { ours, theirs, mask })
}

fn products(
    threads: usize,
    reps: usize,
    filter: &Filter,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = pool(threads)?;
    println!(
        "\n### Sparse × dense, tessera on {threads} thread(s) vs sprs (1 thread), best of {reps}\n"
    );
    println!("loadavg before: {}\n", loadavg());
    println!("| W · B | density | entries/row | kernel | tessera ms | sprs `*` ms | sprs mulacc ms | sprs / tessera |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for (m, k, n) in filter.shapes() {
        let b = random_matrix(k, n, &mut rng);
        for density in filter.densities(&DENSITIES) {
            let Layer { ours, theirs, .. } = layer(m, k, density, &mut rng)?;
            let expected = &theirs * &b;
            let got = pool.install(|| ours.matmul(b.view()))?;
            if got != expected {
                return Err(
                    format!("{m}×{k}·{k}×{n} at {density}: tessera and sprs differ").into(),
                );
            }
            let mut reused = Array2::<f32>::zeros((m, n));
            let times = pool.install(|| {
                best_of(
                    reps,
                    &mut [
                        &mut || {
                            black_box(ours.matmul(b.view()).ok());
                        },
                        &mut || {
                            black_box(&theirs * &b);
                        },
                        &mut || {
                            reused.fill(0.0);
                            sprs::prod::csr_mulacc_dense_rowmaj(
                                theirs.view(),
                                b.view(),
                                reused.view_mut(),
                            );
                            black_box(&reused);
                        },
                    ],
                )
            });
            let sprs_best = times[1].min(times[2]);
            println!(
                "| {m}×{k}·{k}×{n} | {density} | {:.1} | {:?} | {:.3} | {:.3} | {:.3} | **{:.2}** |",
                ours.nnz() as f64 / m as f64,
                ours.spmm_kernel(n),
                times[0],
                times[1],
                times[2],
                sprs_best / times[0],
            );
        }
    }
    println!("\nloadavg after: {}", loadavg());
    Ok(())
}

fn gradients(
    threads: usize,
    reps: usize,
    filter: &Filter,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = pool(threads)?;
    println!(
        "\n### Masked weight gradient (dY Xᵀ) ⊙ M, tessera on {threads} thread(s) vs dense-then-mask (1 thread), best of {reps}\n"
    );
    println!("dY is m×n and X is k×n (W is m×k, batch n). Dense-then-mask: `dy.dot(&x.t())` (matrixmultiply) then the mask applied in place; sprs has no sampled dense–dense product.\n");
    println!("loadavg before: {}\n", loadavg());
    println!("| W (m×k), batch n | density | tessera ms | dense-then-mask ms | dense / tessera | max rel. diff |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    for (m, k, n) in filter.shapes() {
        let dy = random_matrix(m, n, &mut rng);
        let x = random_matrix(k, n, &mut rng);
        for density in filter.densities(&DENSITIES) {
            let Layer { ours, mask, .. } = layer(m, k, density, &mut rng)?;
            let dense_then_mask = || -> Result<Array2<f32>, tessera_sparse::Error> {
                let mut g = dy.dot(&x.t());
                mask.apply_view(g.view_mut())?;
                Ok(g)
            };
            let expected = dense_then_mask()?;
            let got = pool
                .install(|| ours.masked_gradient(dy.view(), x.view()))?
                .to_dense();
            let scale = expected
                .iter()
                .fold(0.0f32, |a, v| a.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let diff = (&got - &expected)
                .iter()
                .fold(0.0f32, |a, v| a.max(v.abs()))
                / scale;
            if diff > 1e-5 {
                return Err(format!(
                    "gradient {m}×{k}, n {n} at {density}: relative difference {diff}"
                )
                .into());
            }
            let times = pool.install(|| {
                best_of(
                    reps,
                    &mut [
                        &mut || {
                            black_box(
                                pool.install(|| ours.masked_gradient(dy.view(), x.view()))
                                    .ok(),
                            );
                        },
                        &mut || {
                            black_box(dense_then_mask().ok());
                        },
                    ],
                )
            });
            println!(
                "| {m}×{k}, n {n} | {density} | {:.3} | {:.3} | **{:.2}** | {diff:.1e} |",
                times[0],
                times[1],
                times[1] / times[0],
            );
        }
    }
    println!("\nloadavg after: {}", loadavg());
    Ok(())
}

fn kernels(reps: usize, filter: &Filter) -> Result<(), Box<dyn std::error::Error>> {
    let pool = pool(1)?;
    println!("\n### Kernel crossover, 1 thread, best of {reps}: row gather vs packed panels\n");
    println!("loadavg before: {}\n", loadavg());
    println!("| W · B | density | entries/row | gather ms | panels ms | gather / panels | auto |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let densities = [0.5, 0.3, 0.1, 0.05, 0.03, 0.02, 0.015, 0.01, 0.0075, 0.005];
    let kernels = [SpmmKernel::RowGather, SpmmKernel::PackedPanels];
    for (m, k, n) in filter.shapes() {
        let b = random_matrix(k, n, &mut rng);
        for density in filter.densities(&densities) {
            let Layer { ours, .. } = layer(m, k, density, &mut rng)?;
            let reference = pool.install(|| ours.matmul_with(b.view(), SpmmKernel::RowGather))?;
            for kernel in kernels {
                if pool.install(|| ours.matmul_with(b.view(), kernel))? != reference {
                    return Err(format!("{m}×{k}·{k}×{n} at {density}: {kernel:?} differs").into());
                }
            }
            let run = |kernel| {
                black_box(ours.matmul_with(b.view(), kernel).ok());
            };
            let times = pool.install(|| {
                best_of(
                    reps,
                    &mut [&mut || run(kernels[0]), &mut || run(kernels[1])],
                )
            });
            println!(
                "| {m}×{k}·{k}×{n} | {density} | {:.1} | {:.3} | {:.3} | {:.2} | {:?} |",
                ours.nnz() as f64 / m as f64,
                times[0],
                times[1],
                times[0] / times[1],
                ours.spmm_kernel(n),
            );
        }
    }
    println!("\nloadavg after: {}", loadavg());
    Ok(())
}
