//! The sparse × dense kernels against each other, a naive loop and sprs (bit for bit), the
//! kernel choice, and thread-count determinism of the products and the masked gradient.

use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_sparse::{
    CsrMatrix, Float, Mask, SpmmKernel, PANEL_CACHE_BYTES, PANEL_MIN_ENTRIES_PER_ROW,
};

const KERNELS: [SpmmKernel; 3] = [
    SpmmKernel::Auto,
    SpmmKernel::RowGather,
    SpmmKernel::PackedPanels,
];

/// $W B$ by the definition: each entry the sum of its products in stored order, multiply and
/// add rounded separately.
fn naive_product<F: Float>(a: &CsrMatrix<F>, b: &Array2<F>) -> Array2<F> {
    let (m, _) = a.dim();
    let n = b.ncols();
    let mut out = Array2::zeros((m, n));
    for r in 0..m {
        let span = a.indptr()[r]..a.indptr()[r + 1];
        for j in 0..n {
            let mut acc = F::zero();
            for (&c, &v) in a.indices()[span.clone()]
                .iter()
                .zip(&a.values()[span.clone()])
            {
                acc += v * b[[c, j]];
            }
            out[[r, j]] = acc;
        }
    }
    out
}

/// A random `m × k` matrix whose mask keeps each entry with probability `density`, with row
/// `empty_row` (if any) emptied.
fn masked_matrix<F: Float>(
    m: usize,
    k: usize,
    density: f64,
    empty_row: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> CsrMatrix<F> {
    let w = Array2::from_shape_fn((m, k), |_| F::from_f64_rounded(rng.random_range(-1.0..1.0)));
    let mut keep: Vec<bool> = (0..m * k).map(|_| rng.random_bool(density)).collect();
    if let Some(r) = empty_row.filter(|&r| r < m) {
        keep[r * k..(r + 1) * k].fill(false);
    }
    CsrMatrix::from_masked(w.view(), &Mask::from_bools(&keep)).unwrap()
}

fn dense<F: Float>(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<F> {
    Array2::from_shape_fn((rows, cols), |_| {
        F::from_f64_rounded(rng.random_range(-1.0..1.0))
    })
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Widths up to 150 cover one and several panels of either precision, with ragged last
    /// panels and gather remainders of every width; densities span both sides of the
    /// kernel crossover, including no stored entries at all.
    #[test]
    fn every_kernel_is_bit_identical_to_the_naive_loop(
        m in 0usize..40, k in 0usize..80, n in 0usize..150,
        density in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        empty_row in prop::option::of(0usize..40),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a32 = masked_matrix::<f32>(m, k, density, empty_row, &mut rng);
        let b32 = dense::<f32>(k, n, &mut rng);
        let expected = naive_product(&a32, &b32);
        for kernel in KERNELS {
            prop_assert_eq!(&a32.matmul_with(b32.view(), kernel).unwrap(), &expected, "{:?}", kernel);
        }
        let a64 = masked_matrix::<f64>(m, k, density, empty_row, &mut rng);
        let b64 = dense::<f64>(k, n, &mut rng);
        let expected = naive_product(&a64, &b64);
        for kernel in KERNELS {
            prop_assert_eq!(&a64.matmul_with(b64.view(), kernel).unwrap(), &expected, "{:?}", kernel);
        }
        // A column-major operand takes the copying path of each kernel.
        let b_f = b64.t().as_standard_layout().into_owned().reversed_axes();
        for kernel in KERNELS {
            prop_assert_eq!(&a64.matmul_with(b_f.view(), kernel).unwrap(), &expected, "{:?}", kernel);
        }
    }

    /// sprs 0.11 accumulates `out += v·b` in stored order too: an independent implementation
    /// of the same sums, so the results must agree bit for bit.
    #[test]
    fn products_equal_sprs_bit_for_bit(
        m in 1usize..30, k in 1usize..60, n in 1usize..140,
        density in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = masked_matrix::<f32>(m, k, density, None, &mut rng);
        let b = dense::<f32>(k, n, &mut rng);
        let theirs = sprs::CsMat::new(
            (m, k),
            a.indptr().to_vec(),
            a.indices().to_vec(),
            a.values().to_vec(),
        );
        let expected = &theirs * &b;
        for kernel in KERNELS {
            prop_assert_eq!(&a.matmul_with(b.view(), kernel).unwrap(), &expected, "{:?}", kernel);
        }
    }
}

#[test]
fn the_kernel_choice_follows_entries_per_row_and_cache_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let t = PANEL_MIN_ENTRIES_PER_ROW;
    // A 256-byte panel of k rows takes exactly half of the assumed L2 at this k.
    let k = PANEL_CACHE_BYTES / 2 / 256;
    // 10 rows of `cols` columns with exactly `per_row` entries each.
    let build = |per_row: usize, cols: usize, rng: &mut ChaCha8Rng| {
        let mut keep = vec![false; 10 * cols];
        for r in 0..10 {
            for c in 0..per_row {
                keep[r * cols + c * 3 % cols] = true;
            }
        }
        let w = dense::<f32>(10, cols, rng);
        CsrMatrix::from_masked(w.view(), &Mask::from_bools(&keep)).unwrap()
    };
    let at = build(t, k, &mut rng);
    let below = build(t - 1, k, &mut rng);
    let taller = build(t, k + 1, &mut rng);
    assert_eq!(at.nnz(), 10 * t);
    // B (k × n f32) outgrows the cache from this width on.
    let spills = PANEL_CACHE_BYTES / (4 * k) + 1;
    assert_eq!(at.spmm_kernel(spills - 1), SpmmKernel::RowGather);
    assert_eq!(at.spmm_kernel(spills), SpmmKernel::PackedPanels);
    assert_eq!(at.spmm_kernel(10 * spills), SpmmKernel::PackedPanels);
    assert_eq!(below.spmm_kernel(spills), SpmmKernel::RowGather);
    assert_eq!(below.spmm_kernel(10 * spills), SpmmKernel::RowGather);
    // One row more and a panel no longer fits in half the cache.
    assert_eq!(taller.spmm_kernel(spills), SpmmKernel::RowGather);
    // An operand over 1 GiB is read in place rather than copied into panels.
    let gib_wide = (1 << 30) / (4 * k);
    assert_eq!(at.spmm_kernel(gib_wide), SpmmKernel::PackedPanels);
    assert_eq!(at.spmm_kernel(gib_wide + 1), SpmmKernel::RowGather);
    // A single panel (64 f32 columns) is never packed, however tall.
    assert_eq!(
        build(t, 16 * k, &mut rng).spmm_kernel(64),
        SpmmKernel::RowGather
    );
    // f64: 32 columns per 256-byte panel, so the same k, and B spills at half the width.
    let at64 = CsrMatrix::from_parts(
        at.dim().0,
        at.dim().1,
        at.indptr().to_vec(),
        at.indices().to_vec(),
        at.values().iter().map(|&v| f64::from(v)).collect(),
    )
    .unwrap();
    assert_eq!(at64.spmm_kernel(spills / 2), SpmmKernel::RowGather);
    assert_eq!(at64.spmm_kernel(spills / 2 + 1), SpmmKernel::PackedPanels);
    let empty = CsrMatrix::<f32>::from_parts(0, 5, vec![0], vec![], vec![]).unwrap();
    assert_eq!(
        empty
            .matmul(dense::<f32>(5, 100, &mut rng).view())
            .unwrap()
            .dim(),
        (0, 100)
    );
}

/// Rows of B that do not start on a cache line: the row gather copies B to aligned rows once
/// each row of B is read often enough (here ~100 times), and reads it in place otherwise
/// (here ~3 times); a column-major B is copied to aligned rows directly in the first case. Both paths, prefetching across tiles and rows (rows of 60–140 entries,
/// longer than the prefetch distance), give the naive loop's bits for every width class.
#[test]
fn operands_off_the_cache_line_match_the_naive_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for (m, k, density) in [(400, 150, 0.5), (12, 150, 0.5), (300, 200, 0.3)] {
        let a = masked_matrix::<f32>(m, k, density, Some(5), &mut rng);
        for n in [64, 128, 100, 257, 7] {
            let storage: Vec<f32> = dense::<f32>(k * n + 1, 1, &mut rng)
                .into_raw_vec_and_offset()
                .0;
            // One element in: no row starts on a 64-byte boundary for n a multiple of 16.
            let b = ndarray::ArrayView2::from_shape((k, n), &storage[1..]).unwrap();
            let expected = naive_product(&a, &b.to_owned());
            // The same operand column-major: copied once, to aligned rows when that pays.
            let transposed = b.t().to_owned();
            for threads in [pool(1), pool(2)] {
                for kernel in KERNELS {
                    for operand in [b, transposed.t()] {
                        let got = threads.install(|| a.matmul_with(operand, kernel)).unwrap();
                        assert_eq!(got, expected, "{m}×{k}·{k}×{n} at {density}, {kernel:?}");
                    }
                }
            }
        }
        let a = masked_matrix::<f64>(m, k, density, None, &mut rng);
        let storage: Vec<f64> = dense::<f64>(k * 40 + 1, 1, &mut rng)
            .into_raw_vec_and_offset()
            .0;
        let b = ndarray::ArrayView2::from_shape((k, 40), &storage[1..]).unwrap();
        assert_eq!(
            a.matmul(b).unwrap(),
            naive_product(&a, &b.to_owned()),
            "f64 {m}×{k}"
        );
    }
}

/// Large enough for several rayon tasks; the gradient takes its dense-GEMM path at density 0.3
/// and its sparse path with three column blocks of `x` at 0.15 (700 rows of 400 bytes, 327 per 128 KiB block).
#[test]
fn one_and_two_threads_give_the_same_bits() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (one, two) = (pool(1), pool(2));
    for (m, k, n, density) in [
        (300, 200, 130, 0.3),
        (500, 300, 40, 0.02),
        (64, 700, 100, 0.15),
    ] {
        let a = masked_matrix::<f32>(m, k, density, Some(3), &mut rng);
        let b = dense::<f32>(k, n, &mut rng);
        let dy = dense::<f32>(m, n, &mut rng);
        for kernel in KERNELS {
            let single = one.install(|| a.matmul_with(b.view(), kernel)).unwrap();
            let double = two.install(|| a.matmul_with(b.view(), kernel)).unwrap();
            assert_eq!(single, double, "{m}×{k}·{k}×{n} {kernel:?}");
        }
        let single = one
            .install(|| a.masked_gradient(dy.view(), b.view()))
            .unwrap();
        let double = two
            .install(|| a.masked_gradient(dy.view(), b.view()))
            .unwrap();
        assert_eq!(single, double, "gradient {m}×{k}, n {n}");
        // And against the f64 dense-then-mask reference.
        let dy64 = dy.mapv(f64::from);
        let b64 = b.mapv(f64::from);
        let expected = a.mask().masked(&dy64.dot(&b64.t())).unwrap();
        let got = single.to_dense().mapv(f64::from);
        let worst = (&got - &expected)
            .iter()
            .fold(0.0f64, |w, d| w.max(d.abs()));
        assert!(worst < 1e-4, "gradient {m}×{k}, n {n}: {worst}");
    }
}

/// `m` rows holding 0, 1, 2, … `longest` stored entries in turn (so most rows are very
/// short), over `k` columns.
fn short_rows<F: Float>(m: usize, k: usize, longest: usize, rng: &mut ChaCha8Rng) -> CsrMatrix<F> {
    let mut triplets = Vec::new();
    for r in 0..m {
        let first = rng.random_range(0..k);
        for t in 0..r % (longest + 1) {
            let value = F::from_f64_rounded(rng.random_range(-1.0..1.0));
            triplets.push((r, (first + 7 * t) % k, value));
        }
    }
    CsrMatrix::from_triplets(m, k, &triplets).unwrap()
}

/// The short-row paths of the row gather: the output is collected tile by tile when `n` is a
/// multiple of the block width (64 `f32`, 32 `f64`); otherwise it is appended block by block
/// on one thread and written into zeroed row slices on two. Rows of 0, 1, 2, … entries,
/// ragged and whole-block widths, both precisions, and enough rows for several rayon tasks.
#[test]
fn short_rows_match_the_naive_loop_on_one_and_two_threads() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (one, two) = (pool(1), pool(2));
    for (m, k, n) in [
        (3000, 60, 64),
        (2500, 90, 128),
        (1200, 50, 100),
        (7, 9, 3),
        (900, 40, 257),
    ] {
        let a = short_rows::<f32>(m, k, 3, &mut rng);
        let b = dense::<f32>(k, n, &mut rng);
        let expected = naive_product(&a, &b);
        for threads in [&one, &two] {
            for kernel in KERNELS {
                let got = threads.install(|| a.matmul_with(b.view(), kernel)).unwrap();
                assert_eq!(got, expected, "f32 {m}×{k}·{k}×{n} {kernel:?}");
            }
        }
        let a = short_rows::<f64>(m, k, 2, &mut rng);
        let b = dense::<f64>(k, n / 2 + 1, &mut rng);
        let expected = naive_product(&a, &b);
        for threads in [&one, &two] {
            let got = threads.install(|| a.matmul(b.view())).unwrap();
            assert_eq!(got, expected, "f64 {m}×{k}·{k}×{}", n / 2 + 1);
        }
        let b = dense::<f64>(k, 64, &mut rng);
        let expected = naive_product(&a, &b);
        for threads in [&one, &two] {
            let got = threads.install(|| a.matmul(b.view())).unwrap();
            assert_eq!(got, expected, "f64 {m}×{k}·{k}×64");
        }
    }
}

/// An overflow in one entry of a short-row product is an error on every path (collected in
/// tiles, appended, written into row slices), in a whole block and in the scalar tail.
#[test]
fn overflowing_short_row_products_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let (one, two) = (pool(1), pool(2));
    let mut a = short_rows::<f32>(3000, 60, 3, &mut rng);
    // Row 1 holds one entry, 4, and B's entry 1e38 in its row makes the product overflow.
    let (start, end) = (a.indptr()[1], a.indptr()[2]);
    assert_eq!(end - start, 1);
    let c = a.indices()[start];
    a.values_mut()[start] = 4.0;
    // 64: one whole block (tiles); 101: 64 + 32 + 4 + a scalar column.
    for n in [64, 101] {
        let mut b = dense::<f32>(60, n, &mut rng);
        for j in [0, n - 1] {
            b[[c, j]] = 1e38;
            for threads in [&one, &two] {
                let e = threads.install(|| a.matmul(b.view())).unwrap_err();
                assert!(e.to_string().contains("overflow"), "n {n}, column {j}: {e}");
            }
            b[[c, j]] = f32::NAN;
            for threads in [&one, &two] {
                assert!(
                    threads.install(|| a.matmul(b.view())).is_err(),
                    "n {n}: NaN"
                );
            }
            b[[c, j]] = 0.5;
        }
        assert!(two.install(|| a.matmul(b.view())).is_ok());
    }
}
