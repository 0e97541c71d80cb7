//! GMM-masked attention: the kernels of kernels/gmm_attention.cu run through the host shim in
//! the host API's launch sequence and compared with tessera-gmm on random inputs (heads 1/3,
//! tokens 1/5/17, head widths 1/8, both combinations, no mask, the element-wise mask); the
//! GPU host API against tessera-gmm when a device exists; bad input without a device.

use ndarray::{Array3, Array4, ArrayView3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gmm::{
    ElementwiseMask, GaussianMixtureMask, LogitMask, MaskCombine, MaskRef, TokenGrid,
};
use tessera_gpu::gmm_attention::{
    attention_backward, attention_backward_device, attention_forward, attention_forward_device,
    check_attention, check_attention_backward, gmm_mask, AttentionGradients, AttentionMask,
    AttentionOutput, DeviceBackwardInputs, Dims, GmmMask, BATCH_CHUNK,
};
use tessera_gpu::launch::grid_for;

use crate::shim::{self, guarded, payload, poisoned, ptr, ptr_mut, Shim};

const KERNELS: usize = 3;

/// Which mask a case uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MaskKind {
    None,
    Gmm(MaskCombine),
    Elementwise(MaskCombine),
}

#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    heads: usize,
    rows: usize,
    cols: usize,
    extra: usize,
    d_head: usize,
    d_value: usize,
    mask: MaskKind,
}

impl Case {
    fn tokens(&self) -> usize {
        self.extra + self.rows * self.cols
    }
}

fn random4(shape: (usize, usize, usize, usize), rng: &mut ChaCha8Rng) -> Array4<f32> {
    Array4::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

/// Random mixture parameters: α in [−2, 2], σ in [0.2, 3] with the first σ at 0 (the ε floor's
/// unit spike).
fn random_gmm_parameters(block: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut p: Vec<f32> = (0..block).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    p.extend((0..block).map(|i| {
        if i == 0 {
            0.0
        } else {
            rng.random_range(0.2f32..3.0)
        }
    }));
    p
}

/// Everything tessera-gmm computes for one case.
struct Expected {
    output: Array4<f32>,
    probabilities: Array4<f32>,
    grad_q: Array4<f32>,
    grad_k: Array4<f32>,
    grad_v: Array4<f32>,
    grad_parameters: Vec<f32>,
}

/// A case's inputs: q, k, v, dO, the CPU mask and its parameters.
struct Inputs {
    q: Array4<f32>,
    k: Array4<f32>,
    v: Array4<f32>,
    grad_output: Array4<f32>,
    mask: Option<Box<dyn LogitMask<f32>>>,
    parameters: Vec<f32>,
}

fn inputs(case: &Case, rng: &mut ChaCha8Rng) -> Inputs {
    let n = case.tokens();
    let qk = (case.batch, case.heads, n, case.d_head);
    let vo = (case.batch, case.heads, n, case.d_value);
    let (q, k, v, grad_output) = (
        random4(qk, rng),
        random4(qk, rng),
        random4(vo, rng),
        random4(vo, rng),
    );
    let (mask, parameters): (Option<Box<dyn LogitMask<f32>>>, Vec<f32>) = match case.mask {
        MaskKind::None => (None, Vec::new()),
        MaskKind::Gmm(combine) => {
            let grid = TokenGrid::new(case.rows, case.cols)
                .and_then(|g| g.with_extra_tokens(case.extra))
                .expect("grid");
            let m = GaussianMixtureMask::new(grid, case.heads, KERNELS, 0)
                .expect("mask")
                .with_combine(combine);
            (
                Some(Box::new(m)),
                random_gmm_parameters(KERNELS * case.heads, rng),
            )
        }
        MaskKind::Elementwise(combine) => {
            let m = ElementwiseMask::new(n, case.heads)
                .expect("mask")
                .with_combine(combine);
            (
                Some(Box::new(m)),
                (0..n * n).map(|_| rng.random_range(-2.0f32..2.0)).collect(),
            )
        }
    };
    Inputs {
        q,
        k,
        v,
        grad_output,
        mask,
        parameters,
    }
}

impl Inputs {
    fn mask_ref(&self) -> Option<MaskRef<'_, f32>> {
        self.mask
            .as_deref()
            .map(|m| MaskRef::new(m, &self.parameters))
    }

    fn dense_mask(&self) -> Option<Array3<f32>> {
        self.mask
            .as_deref()
            .map(|m| tessera_gmm::mask_array(m, &self.parameters).expect("mask array"))
    }

    /// The GPU crate's description of the mask (`dense` holds the element-wise mask's values).
    fn gpu_mask<'a>(
        &'a self,
        case: &Case,
        dense: Option<ArrayView3<'a, f32>>,
    ) -> Option<AttentionMask<'a>> {
        let block = KERNELS * case.heads;
        match case.mask {
            MaskKind::None => None,
            MaskKind::Gmm(combine) => Some(AttentionMask::Gmm(GmmMask {
                rows: case.rows,
                cols: case.cols,
                extra: case.extra,
                heads: case.heads,
                kernels: KERNELS,
                alpha: &self.parameters[..block],
                sigma: &self.parameters[block..],
                combine,
            })),
            MaskKind::Elementwise(combine) => Some(AttentionMask::Dense {
                values: dense.expect("dense mask"),
                combine,
            }),
        }
    }

    fn expected(&self) -> Expected {
        let mask = self.mask_ref();
        let (output, cache) =
            tessera_gmm::attention_forward(self.q.view(), self.k.view(), self.v.view(), mask)
                .expect("cpu forward");
        let mut grad_parameters = vec![0.0f32; self.parameters.len()];
        let grads = tessera_gmm::attention_backward(
            &cache,
            self.q.view(),
            self.k.view(),
            self.v.view(),
            self.grad_output.view(),
            mask,
            &mut grad_parameters,
        )
        .expect("cpu backward");
        Expected {
            output,
            probabilities: cache.probabilities().to_owned(),
            grad_q: grads.q,
            grad_k: grads.k,
            grad_v: grads.v,
            grad_parameters,
        }
    }
}

type MaskLauncher =
    unsafe extern "C" fn(u32, u32, *const f32, *const f32, i32, i32, i32, i32, i64, f32, *mut f32);
type ForwardLauncher = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const f32,
    i64,
    i32,
    i64,
    i32,
    i32,
    f32,
    i32,
    i32,
    *const f32,
    i32,
    i32,
    f32,
    *mut f32,
    *mut f32,
);
type ClassValuesLauncher =
    unsafe extern "C" fn(u32, u32, *const f32, *const f32, i32, i32, i32, i32, *mut f32);
type MatmulLauncher = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    i32,
    *const f32,
    i32,
    i64,
    i64,
    i64,
    i64,
    f32,
    *mut f32,
);
type RowDotLauncher = unsafe extern "C" fn(u32, u32, *const f32, *const f32, i64, i64, *mut f32);
type SoftmaxBackwardLauncher =
    unsafe extern "C" fn(u32, u32, *mut f32, *const f32, *const f32, i64, i64);
type GradMaskLauncher = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const f32,
    i64,
    i32,
    i64,
    i32,
    f32,
    i32,
    i64,
    *mut f32,
);
type ApplyMaskLauncher = unsafe extern "C" fn(u32, u32, *mut f32, *const f32, i64, i32, i64);
type ClassGradLauncher = unsafe extern "C" fn(u32, u32, *const f32, i32, i32, i32, i32, *mut f32);
type ParameterGradLauncher = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const f32,
    i32,
    i32,
    i32,
    i32,
    *mut f32,
);

fn combine_code(combine: MaskCombine) -> i32 {
    match combine {
        MaskCombine::Multiply => 0,
        MaskCombine::Add => 1,
    }
}

/// The mask operands of a launch as the kernels take them.
struct ShimMask {
    kind: i32,
    combine: i32,
    neutral: f32,
    /// The forward kernel's mask operand: the dense mask (kind 1) or the class table (kind 2).
    values: Vec<f32>,
    alpha: Vec<f32>,
    sigma: Vec<f32>,
}

impl ShimMask {
    fn new(shim: &Shim, case: &Case, inputs: &Inputs) -> Self {
        let block = KERNELS * case.heads;
        let placeholder = guarded(&[0.0]);
        match case.mask {
            MaskKind::None => ShimMask {
                kind: 0,
                combine: 0,
                neutral: 1.0,
                values: placeholder.clone(),
                alpha: placeholder.clone(),
                sigma: placeholder,
            },
            MaskKind::Gmm(c) => {
                let alpha = guarded(&inputs.parameters[..block]);
                let sigma = guarded(&inputs.parameters[block..]);
                ShimMask {
                    kind: 2,
                    combine: combine_code(c),
                    neutral: c.neutral(),
                    values: shim_class_table(shim, case, &alpha, &sigma),
                    alpha,
                    sigma,
                }
            }
            MaskKind::Elementwise(c) => ShimMask {
                kind: 1,
                combine: combine_code(c),
                neutral: c.neutral(),
                values: guarded(
                    inputs
                        .dense_mask()
                        .expect("mask")
                        .as_slice()
                        .expect("standard"),
                ),
                alpha: placeholder.clone(),
                sigma: placeholder,
            },
        }
    }
}

/// `out = alpha · op(a) · op(b)` through the shim, as the host API's `Product` launches it.
#[allow(clippy::too_many_arguments)]
fn shim_matmul(
    shim: &Shim,
    a: &[f32],
    a_trans: bool,
    b: &[f32],
    b_trans: bool,
    planes: usize,
    rows: usize,
    inner: usize,
    cols: usize,
    alpha: f32,
) -> Vec<f32> {
    let launch = shim.launcher::<MatmulLauncher>("attention_batched_matmul");
    let len = planes * rows * cols;
    let mut out = poisoned(len);
    let (grid, block) = grid_for(len);
    // SAFETY: (test) a and b hold planes·rows·inner and planes·inner·cols values (guarded),
    // out planes·rows·cols; the signature is the launcher's.
    unsafe {
        launch(
            grid,
            block,
            ptr(a),
            i32::from(a_trans),
            ptr(b),
            i32::from(b_trans),
            planes as i64,
            rows as i64,
            inner as i64,
            cols as i64,
            alpha,
            ptr_mut(&mut out),
        )
    };
    payload(&out, "matmul out");
    out
}

/// Forward and backward of one case through the shim; returns the same fields as tessera-gmm.
fn run_shim(shim: &Shim, case: &Case, inputs: &Inputs) -> Expected {
    let n = case.tokens();
    let planes = case.batch * case.heads;
    let rows = planes * n;
    let scale = (case.d_head as f32).sqrt().recip();
    let q = guarded(inputs.q.as_slice().expect("standard"));
    let k = guarded(inputs.k.as_slice().expect("standard"));
    let v = guarded(inputs.v.as_slice().expect("standard"));
    let grad_out = guarded(inputs.grad_output.as_slice().expect("standard"));
    let m = ShimMask::new(shim, case, inputs);

    let forward = shim.launcher::<ForwardLauncher>("gmm_attention_forward");
    let mut out = poisoned(rows * case.d_value);
    let mut probs = poisoned(rows * n);
    let (grid, block) = grid_for(rows);
    // SAFETY: (test) buffer sizes as the kernel expects (guarded); the signature is the launcher's.
    unsafe {
        forward(
            grid,
            block,
            ptr(&q),
            ptr(&k),
            ptr(&v),
            case.batch as i64,
            case.heads as i32,
            n as i64,
            case.d_head as i32,
            case.d_value as i32,
            scale,
            m.kind,
            m.combine,
            ptr(&m.values),
            case.cols as i32,
            case.extra as i32,
            m.neutral,
            ptr_mut(&mut out),
            ptr_mut(&mut probs),
        )
    };
    let output = payload(&out, "out").to_vec();
    let probabilities = payload(&probs, "probs").to_vec();

    let mut grad = shim_matmul(
        shim,
        &grad_out,
        false,
        &v,
        true,
        planes,
        n,
        case.d_value,
        n,
        1.0,
    );
    let mut row_dot = poisoned(rows);
    let (grid, block) = grid_for(rows);
    // SAFETY: (test) grad and probs hold rows·n values, row_dot rows.
    unsafe {
        shim.launcher::<RowDotLauncher>("attention_row_dot")(
            grid,
            block,
            ptr(&grad),
            ptr(&probs),
            rows as i64,
            n as i64,
            ptr_mut(&mut row_dot),
        )
    };
    payload(&row_dot, "row_dot");
    let (grid, block) = grid_for(rows * n);
    // SAFETY: (test) as above.
    unsafe {
        shim.launcher::<SoftmaxBackwardLauncher>("attention_softmax_backward")(
            grid,
            block,
            ptr_mut(&mut grad),
            ptr(&probs),
            ptr(&row_dot),
            rows as i64,
            n as i64,
        )
    };
    payload(&grad, "grad logits");

    let mut grad_parameters = Vec::new();
    if case.mask != MaskKind::None {
        let per_mask = case.heads * n * n;
        let mut dg = poisoned(per_mask);
        let (grid, block) = grid_for(per_mask);
        // SAFETY: (test) grad holds batch·heads·n² values, q and k batch·heads·n·d_head, dg
        // heads·n².
        unsafe {
            shim.launcher::<GradMaskLauncher>("gmm_attention_grad_mask")(
                grid,
                block,
                ptr(&grad),
                ptr(&q),
                ptr(&k),
                case.batch as i64,
                case.heads as i32,
                n as i64,
                case.d_head as i32,
                scale,
                m.combine,
                BATCH_CHUNK as i64,
                ptr_mut(&mut dg),
            )
        };
        let dg_values = payload(&dg, "grad mask").to_vec();
        if m.combine == 0 {
            let dense = if m.kind == 1 {
                m.values.clone()
            } else {
                shim_gmm_mask(shim, case, &m)
            };
            let (grid, block) = grid_for(rows * n);
            // SAFETY: (test) grad holds batch·heads·n² values, the mask heads·n².
            unsafe {
                shim.launcher::<ApplyMaskLauncher>("attention_apply_mask")(
                    grid,
                    block,
                    ptr_mut(&mut grad),
                    ptr(&dense),
                    case.batch as i64,
                    case.heads as i32,
                    n as i64,
                )
            };
            payload(&grad, "masked grad logits");
        }
        grad_parameters = match case.mask {
            MaskKind::Gmm(_) => shim_parameter_grad(shim, case, &m, &dg),
            _ => {
                let dg_array =
                    Array3::from_shape_vec((case.heads, n, n), dg_values).expect("shape");
                let mut g = vec![0.0f32; inputs.parameters.len()];
                let mask = inputs.mask.as_deref().expect("mask");
                mask.accumulate_gradient(&inputs.parameters, dg_array.view(), &mut g)
                    .expect("accumulate");
                g
            }
        };
    }
    let grad_q = shim_matmul(
        shim,
        &grad,
        false,
        &k,
        false,
        planes,
        n,
        n,
        case.d_head,
        scale,
    );
    let grad_k = shim_matmul(
        shim,
        &grad,
        true,
        &q,
        false,
        planes,
        n,
        n,
        case.d_head,
        scale,
    );
    let grad_v = shim_matmul(
        shim,
        &probs,
        true,
        &grad_out,
        false,
        planes,
        n,
        n,
        case.d_value,
        1.0,
    );
    let shape_qk = (case.batch, case.heads, n, case.d_head);
    let shape_v = (case.batch, case.heads, n, case.d_value);
    let array = |buffer: &[f32], shape| {
        Array4::from_shape_vec(shape, payload(buffer, "grad").to_vec()).expect("shape")
    };
    Expected {
        output: Array4::from_shape_vec(shape_v, output).expect("shape"),
        probabilities: Array4::from_shape_vec((case.batch, case.heads, n, n), probabilities)
            .expect("shape"),
        grad_q: array(&grad_q, shape_qk),
        grad_k: array(&grad_k, shape_qk),
        grad_v: array(&grad_v, shape_v),
        grad_parameters,
    }
}

/// The guarded `(heads, rows · cols)` class table from the `gmm_class_values` kernel.
fn shim_class_table(shim: &Shim, case: &Case, alpha: &[f32], sigma: &[f32]) -> Vec<f32> {
    let len = case.heads * case.rows * case.cols;
    let mut table = poisoned(len);
    let (grid, block) = grid_for(len);
    // SAFETY: (test) alpha and sigma hold kernels·heads values, table heads·rows·cols.
    unsafe {
        shim.launcher::<ClassValuesLauncher>("gmm_class_values")(
            grid,
            block,
            ptr(alpha),
            ptr(sigma),
            case.heads as i32,
            KERNELS as i32,
            case.rows as i32,
            case.cols as i32,
            ptr_mut(&mut table),
        )
    };
    payload(&table, "class table");
    table
}

/// The guarded `(heads, n, n)` mixture mask from the `gmm_mask` kernel.
fn shim_gmm_mask(shim: &Shim, case: &Case, m: &ShimMask) -> Vec<f32> {
    let n = case.tokens();
    let len = case.heads * n * n;
    let mut out = poisoned(len);
    let (grid, block) = grid_for(len);
    // SAFETY: (test) alpha and sigma hold kernels·heads values, out heads·n².
    unsafe {
        shim.launcher::<MaskLauncher>("gmm_mask")(
            grid,
            block,
            ptr(&m.alpha),
            ptr(&m.sigma),
            case.heads as i32,
            KERNELS as i32,
            case.cols as i32,
            case.extra as i32,
            n as i64,
            m.neutral,
            ptr_mut(&mut out),
        )
    };
    payload(&out, "gmm mask");
    out
}

/// The two passes of the parameter gradient from the guarded mask gradient `dg`.
fn shim_parameter_grad(shim: &Shim, case: &Case, m: &ShimMask, dg: &[f32]) -> Vec<f32> {
    let classes = case.rows * case.cols;
    let mut class_grad = poisoned(case.heads * classes);
    let (grid, block) = grid_for(case.heads * classes);
    // SAFETY: (test) dg holds heads·n² values, class_grad heads·classes.
    unsafe {
        shim.launcher::<ClassGradLauncher>("gmm_class_grad")(
            grid,
            block,
            ptr(dg),
            case.heads as i32,
            case.rows as i32,
            case.cols as i32,
            case.extra as i32,
            ptr_mut(&mut class_grad),
        )
    };
    payload(&class_grad, "class grad");
    let len = 2 * KERNELS * case.heads;
    let mut grad = poisoned(len);
    let (grid, block) = grid_for(len);
    // SAFETY: (test) class_grad heads·classes values, alpha/sigma kernels·heads, grad 2·K·H.
    unsafe {
        shim.launcher::<ParameterGradLauncher>("gmm_parameter_grad")(
            grid,
            block,
            ptr(&class_grad),
            ptr(&m.alpha),
            ptr(&m.sigma),
            case.heads as i32,
            KERNELS as i32,
            case.rows as i32,
            case.cols as i32,
            ptr_mut(&mut grad),
        )
    };
    payload(&grad, "parameter grad").to_vec()
}

/// Relative tolerance of the comparisons; differences relative to `max(|expected|, FLOOR)`.
const TOLERANCE: f32 = 1e-5;
const FLOOR: f32 = 1e-2;
/// The floor of the device parity test, whose inputs are fresh every run: the CPU's GEMM may
/// fuse multiply-adds and the device's `expf` differs from glibc's by an ulp or two, and
/// cancellation in sums of terms of both signs turns that into large relative differences on
/// entries near zero (the shim, with fixed seeds, stays within 7e-6 at the 1e-2 floor).
const DEVICE_FLOOR: f32 = 1e-1;

fn assert_close(name: &str, found: &[f32], expected: &[f32], case: &Case) {
    assert_close_above(name, found, expected, FLOOR, case);
}

fn assert_close_above(name: &str, found: &[f32], expected: &[f32], floor: f32, case: &Case) {
    let difference = crate::max_relative_difference(found, expected, floor);
    assert!(
        difference <= TOLERANCE,
        "{name}: relative difference {difference} in {case:?}"
    );
}

fn compare(found: &Expected, expected: &Expected, case: &Case) {
    compare_above(found, expected, FLOOR, case);
}

/// [`compare`] with differences relative to `max(|expected|, floor)`.
fn compare_above(found: &Expected, expected: &Expected, floor: f32, case: &Case) {
    let arrays = [
        ("output", &found.output, &expected.output),
        (
            "probabilities",
            &found.probabilities,
            &expected.probabilities,
        ),
        ("grad q", &found.grad_q, &expected.grad_q),
        ("grad k", &found.grad_k, &expected.grad_k),
        ("grad v", &found.grad_v, &expected.grad_v),
    ];
    for (name, found, expected) in arrays {
        let (found, expected) = (found.as_slice(), expected.as_slice());
        let standard = "standard layout";
        assert_close_above(
            name,
            found.expect(standard),
            expected.expect(standard),
            floor,
            case,
        );
    }
    // Parameter gradients sum up to batch · tokens² terms: relative to the largest one.
    let scale = expected
        .grad_parameters
        .iter()
        .fold(floor, |m, g| m.max(g.abs()));
    let difference =
        crate::max_relative_difference(&found.grad_parameters, &expected.grad_parameters, scale);
    assert!(
        difference <= TOLERANCE,
        "mask parameter gradients: {difference} in {case:?}"
    );
}

/// Grids of 1, 5 and 17 tokens (a CLS token before 2×2 and 4×4 grids) and a 17-token 3×5
/// grid after two extra tokens.
const GRIDS: [(usize, usize, usize); 4] = [(1, 1, 0), (2, 2, 1), (4, 4, 1), (3, 5, 2)];

fn cases(mask: MaskKind) -> Vec<Case> {
    let mut cases = Vec::new();
    for heads in [1, 3] {
        for (rows, cols, extra) in GRIDS {
            for (d_head, d_value) in [(1, 2), (8, 8)] {
                // Batch 9 crosses a BATCH_CHUNK boundary of the mask gradient's sum; 6 × 3
                // heads × 17 tokens makes the per-row kernels span two blocks.
                let batch = if heads == 1 { 9 } else { 6 };
                cases.push(Case {
                    batch,
                    heads,
                    rows,
                    cols,
                    extra,
                    d_head,
                    d_value,
                    mask,
                });
            }
        }
    }
    cases
}

fn shim_matches_cpu(shim: &Shim, mask: MaskKind, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for case in cases(mask) {
        let inputs = inputs(&case, &mut rng);
        compare(&run_shim(shim, &case, &inputs), &inputs.expected(), &case);
    }
}

#[test]
fn shim_gmm_multiplicative_attention_matches_tessera_gmm() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    shim_matches_cpu(&shim, MaskKind::Gmm(MaskCombine::Multiply), 11);
}

#[test]
fn shim_gmm_additive_attention_matches_tessera_gmm() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    shim_matches_cpu(&shim, MaskKind::Gmm(MaskCombine::Add), 12);
}

#[test]
fn shim_unmasked_and_elementwise_attention_match_tessera_gmm() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    shim_matches_cpu(&shim, MaskKind::None, 13);
    shim_matches_cpu(&shim, MaskKind::Elementwise(MaskCombine::Multiply), 14);
    shim_matches_cpu(&shim, MaskKind::Elementwise(MaskCombine::Add), 15);
}

#[test]
fn shim_gmm_mask_matches_mask_array() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for combine in [MaskCombine::Multiply, MaskCombine::Add] {
        for case in cases(MaskKind::Gmm(combine)) {
            let inputs = inputs(&case, &mut rng);
            let expected = inputs.dense_mask().expect("mask");
            let m = ShimMask::new(&shim, &case, &inputs);
            let found = shim_gmm_mask(&shim, &case, &m);
            assert_close(
                "mask",
                payload(&found, "mask"),
                expected.as_slice().expect("standard"),
                &case,
            );
            // The class table holds the same numbers bit for bit at every grid pair.
            let table = payload(&m.values, "class table");
            let grid = case.rows * case.cols;
            for ((h, i, j), &g) in expected.indexed_iter() {
                let (Some(gi), Some(gj)) = (i.checked_sub(case.extra), j.checked_sub(case.extra))
                else {
                    assert_eq!(g, combine.neutral::<f32>());
                    continue;
                };
                let dr = (gi / case.cols).abs_diff(gj / case.cols);
                let dc = (gi % case.cols).abs_diff(gj % case.cols);
                assert_eq!(table[h * grid + dr * case.cols + dc].to_bits(), g.to_bits());
            }
        }
    }
}

/// Forward and backward through the GPU host API.
fn host_api(
    context: &tessera_gpu::GpuContext,
    inputs: &Inputs,
    mask: Option<&AttentionMask<'_>>,
) -> (AttentionOutput, AttentionGradients) {
    let (q, k, v) = (inputs.q.view(), inputs.k.view(), inputs.v.view());
    let forward = attention_forward(context, q, k, v, mask).expect("gpu forward");
    let probabilities = forward.probabilities.view();
    let grads = attention_backward(
        context,
        q,
        k,
        v,
        probabilities,
        inputs.grad_output.view(),
        mask,
    )
    .expect("gpu backward");
    (forward, grads)
}

/// The GPU host API against tessera-gmm (skips without a device).
#[test]
fn gpu_gmm_attention_matches_tessera_gmm() {
    let Some(context) = crate::device() else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for mask in [
        MaskKind::Gmm(MaskCombine::Multiply),
        MaskKind::Gmm(MaskCombine::Add),
        MaskKind::None,
        MaskKind::Elementwise(MaskCombine::Multiply),
    ] {
        for case in cases(mask) {
            let inputs = inputs(&case, &mut rng);
            let dense = inputs.dense_mask();
            let gpu_mask = inputs.gpu_mask(&case, dense.as_ref().map(|d| d.view()));
            let (forward, grads) = host_api(&context, &inputs, gpu_mask.as_ref());
            let grad_parameters = match (&case.mask, &grads.mask) {
                (MaskKind::Gmm(_), _) => grads.mask_parameters.clone(),
                (MaskKind::Elementwise(_), Some(dg)) => {
                    let mut g = vec![0.0f32; inputs.parameters.len()];
                    let mask = inputs.mask.as_deref().expect("mask");
                    mask.accumulate_gradient(&inputs.parameters, dg.view(), &mut g)
                        .expect("accumulate");
                    g
                }
                _ => Vec::new(),
            };
            let found = Expected {
                output: forward.output,
                probabilities: forward.probabilities,
                grad_q: grads.q,
                grad_k: grads.k,
                grad_v: grads.v,
                grad_parameters,
            };
            compare_above(&found, &inputs.expected(), DEVICE_FLOOR, &case);
            if let (MaskKind::Gmm(_), Some(AttentionMask::Gmm(m))) = (case.mask, gpu_mask) {
                let g = gmm_mask(&context, &m).expect("gpu mask");
                let expected = dense.expect("mask");
                assert_close(
                    "mask",
                    g.as_slice().expect("standard"),
                    expected.as_slice().expect("standard"),
                    &case,
                );
            }
        }
    }
}

#[test]
fn bad_input_is_an_error_naming_the_parameter_without_a_device() {
    let q = Array4::<f32>::zeros((2, 3, 5, 4));
    let v = Array4::<f32>::zeros((2, 3, 5, 6));
    let name = |e: tessera_gpu::GpuError| match e {
        tessera_gpu::GpuError::Input(e) => e.name().to_string(),
        other => panic!("not an input error: {other}"),
    };
    let bad_k = Array4::<f32>::zeros((2, 3, 5, 3));
    assert_eq!(
        name(check_attention(&q.view(), &bad_k.view(), &v.view(), None).unwrap_err()),
        "k"
    );
    let bad_v = Array4::<f32>::zeros((2, 3, 4, 6));
    assert_eq!(
        name(check_attention(&q.view(), &q.view(), &bad_v.view(), None).unwrap_err()),
        "v"
    );
    let mut nan_q = q.clone();
    nan_q[[1, 2, 4, 3]] = f32::NAN;
    assert_eq!(
        name(check_attention(&nan_q.view(), &q.view(), &v.view(), None).unwrap_err()),
        "q"
    );

    let (alpha, sigma) = (vec![1.0f32; 6], vec![1.0f32; 6]);
    let good = GmmMask {
        rows: 2,
        cols: 2,
        extra: 1,
        heads: 3,
        kernels: 2,
        alpha: &alpha,
        sigma: &sigma,
        combine: MaskCombine::Multiply,
    };
    assert!(check_attention(
        &q.view(),
        &q.view(),
        &v.view(),
        Some(&AttentionMask::Gmm(good))
    )
    .is_ok());
    let wrong_tokens = GmmMask { extra: 0, ..good };
    let e = check_attention(
        &q.view(),
        &q.view(),
        &v.view(),
        Some(&AttentionMask::Gmm(wrong_tokens)),
    )
    .unwrap_err();
    assert_eq!(name(e), "mask");
    let short_alpha = GmmMask {
        alpha: &alpha[..5],
        ..good
    };
    let e = check_attention(
        &q.view(),
        &q.view(),
        &v.view(),
        Some(&AttentionMask::Gmm(short_alpha)),
    )
    .unwrap_err();
    assert_eq!(name(e), "alpha");
    let infinite = vec![f32::INFINITY; 6];
    let bad_sigma = GmmMask {
        sigma: &infinite,
        ..good
    };
    assert_eq!(name(bad_sigma.validate().unwrap_err()), "sigma");
    assert_eq!(
        name(GmmMask { kernels: 0, ..good }.validate().unwrap_err()),
        "kernels"
    );

    let dense = Array3::<f32>::zeros((3, 5, 4));
    let e = check_attention(
        &q.view(),
        &q.view(),
        &v.view(),
        Some(&AttentionMask::Dense {
            values: dense.view(),
            combine: MaskCombine::Add,
        }),
    )
    .unwrap_err();
    assert_eq!(name(e), "mask");

    let probabilities = Array4::<f32>::zeros((2, 3, 5, 4));
    let e = check_attention_backward(
        &q.view(),
        &q.view(),
        &v.view(),
        &probabilities.view(),
        &v.view(),
        None,
    )
    .unwrap_err();
    assert_eq!(name(e), "probabilities");
    let probabilities = Array4::<f32>::zeros((2, 3, 5, 5));
    let e = check_attention_backward(
        &q.view(),
        &q.view(),
        &v.view(),
        &probabilities.view(),
        &q.view(),
        None,
    )
    .unwrap_err();
    assert_eq!(name(e), "grad_output");
}

/// The batched product on rectangular operands in all four transpositions against ndarray
/// (the attention calls only use square transposed operands, where a row/column mix-up would
/// go unseen).
#[test]
fn shim_batched_matmul_matches_ndarray_for_every_transposition() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (planes, rows, inner, cols) = (3, 5, 7, 2);
    for (a_trans, b_trans) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if a_trans {
            (planes, inner, rows)
        } else {
            (planes, rows, inner)
        };
        let b_shape = if b_trans {
            (planes, cols, inner)
        } else {
            (planes, inner, cols)
        };
        let a = Array3::from_shape_fn(a_shape, |_| rng.random_range(-1.0f32..1.0));
        let b = Array3::from_shape_fn(b_shape, |_| rng.random_range(-1.0f32..1.0));
        let out = shim_matmul(
            &shim,
            &guarded(a.as_slice().expect("standard")),
            a_trans,
            &guarded(b.as_slice().expect("standard")),
            b_trans,
            planes,
            rows,
            inner,
            cols,
            0.5,
        );
        let mut expected = Vec::new();
        for p in 0..planes {
            let ap = a.index_axis(ndarray::Axis(0), p);
            let bp = b.index_axis(ndarray::Axis(0), p);
            let ap = if a_trans { ap.t() } else { ap };
            let bp = if b_trans { bp.t() } else { bp };
            expected.extend(ap.dot(&bp).iter().map(|x| 0.5 * x));
        }
        let difference = crate::max_relative_difference(payload(&out, "out"), &expected, 1.0);
        assert!(difference <= 1e-6, "{a_trans} {b_trans}: {difference}");
    }
}

#[test]
fn device_sizes_are_checked_without_a_device() {
    let dims = Dims {
        batch: 2,
        heads: 3,
        tokens: 5,
        d_head: 4,
        d_value: 6,
    };
    assert!(dims.validate().is_ok());
    let name = |d: Dims| match d.validate().unwrap_err() {
        tessera_gpu::GpuError::Input(e) => e.name(),
        other => panic!("not an input error: {other}"),
    };
    assert_eq!(name(Dims { tokens: 0, ..dims }), "tokens");
    assert_eq!(name(Dims { d_value: 0, ..dims }), "d_value");
    assert_eq!(
        name(Dims {
            tokens: 1 << 20,
            ..dims
        }),
        "batch * heads * tokens * tokens"
    );
}

/// The device-resident variants give the host API's results, and reject buffers of the wrong
/// length (skips without a device).
#[test]
fn gpu_device_resident_attention_matches_the_host_api() {
    let Some(context) = crate::device() else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    let case = Case {
        batch: 3,
        heads: 2,
        rows: 3,
        cols: 2,
        extra: 1,
        d_head: 4,
        d_value: 3,
        mask: MaskKind::Gmm(MaskCombine::Multiply),
    };
    let inputs = inputs(&case, &mut rng);
    let mask = inputs.gpu_mask(&case, None);
    let dims = Dims {
        batch: case.batch,
        heads: case.heads,
        tokens: case.tokens(),
        d_head: case.d_head,
        d_value: case.d_value,
    };
    let (host, host_grads) = host_api(&context, &inputs, mask.as_ref());
    let upload = |a: &Array4<f32>| context_upload(&context, a);
    let (q, k, v, grad_output) = (
        upload(&inputs.q),
        upload(&inputs.k),
        upload(&inputs.v),
        upload(&inputs.grad_output),
    );
    let forward = attention_forward_device(&context, dims, &q, &k, &v, mask.as_ref())
        .expect("device forward");
    let device_inputs = DeviceBackwardInputs {
        q: &q,
        k: &k,
        v: &v,
        probabilities: &forward.probabilities,
        grad_output: &grad_output,
    };
    let grads = attention_backward_device(&context, dims, &device_inputs, mask.as_ref())
        .expect("device backward");
    let download = |s| context.download(s).expect("download");
    assert_eq!(
        download(&forward.output),
        host.output.as_slice().expect("standard")
    );
    assert_eq!(
        download(&grads.q),
        host_grads.q.as_slice().expect("standard")
    );
    assert_eq!(
        download(&grads.k),
        host_grads.k.as_slice().expect("standard")
    );
    assert_eq!(
        download(&grads.v),
        host_grads.v.as_slice().expect("standard")
    );
    assert_eq!(grads.mask_parameters, host_grads.mask_parameters);
    let short = DeviceBackwardInputs {
        probabilities: &q,
        ..device_inputs
    };
    let e = attention_backward_device(&context, dims, &short, mask.as_ref()).unwrap_err();
    assert!(
        matches!(&e, tessera_gpu::GpuError::Input(i) if i.name() == "probabilities"),
        "{e}"
    );

    // Finite inputs whose logits overflow f32: an error from both variants, never NaN.
    let huge = inputs.q.mapv(|x| x * 1e20);
    let e =
        attention_forward(&context, huge.view(), huge.view(), inputs.v.view(), None).unwrap_err();
    assert!(matches!(e, tessera_gpu::GpuError::Overflow { .. }), "{e}");
    let huge = context_upload(&context, &huge);
    let e = attention_forward_device(&context, dims, &huge, &huge, &v, None).unwrap_err();
    assert!(matches!(e, tessera_gpu::GpuError::Overflow { .. }), "{e}");
}

fn context_upload(
    context: &tessera_gpu::GpuContext,
    a: &Array4<f32>,
) -> cudarc::driver::CudaSlice<f32> {
    context
        .upload(a.as_slice().expect("standard"))
        .expect("upload")
}

type NonfinitePartialLauncher = unsafe extern "C" fn(u32, u32, *const f32, i64, i64, i64, *mut f32);
type NonfiniteTotalLauncher = unsafe extern "C" fn(u32, u32, *const f32, i64, *mut f32);

/// The two-pass count of non-finite values (the device-resident variants' result check)
/// against a count on the host, with chunks that do and do not divide the length.
#[test]
fn shim_nonfinite_count_matches_the_host() {
    let Some(shim) = shim::load("gmm_attention") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    for (len, chunk) in [(1usize, 1024usize), (2500, 1024), (700, 7), (513, 1)] {
        for bad in [0usize, 1, 5] {
            let mut values: Vec<f32> = (0..len).map(|_| rng.random_range(-1e30f32..1e30)).collect();
            for b in 0..bad.min(len) {
                let at = rng.random_range(0..len);
                values[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][b % 3];
            }
            let expected = values.iter().filter(|v| !v.is_finite()).count() as f32;
            let chunks = len.div_ceil(chunk);
            let values = guarded(&values);
            let mut partial = poisoned(chunks);
            let (grid, block) = grid_for(chunks);
            // SAFETY: (test) values holds len values, partial chunks.
            unsafe {
                shim.launcher::<NonfinitePartialLauncher>("attention_nonfinite_partial")(
                    grid,
                    block,
                    ptr(&values),
                    len as i64,
                    chunk as i64,
                    chunks as i64,
                    ptr_mut(&mut partial),
                )
            };
            payload(&partial, "partial");
            let mut total = poisoned(1);
            let (grid, block) = grid_for(1);
            // SAFETY: (test) partial holds chunks values, total 1.
            unsafe {
                shim.launcher::<NonfiniteTotalLauncher>("attention_nonfinite_total")(
                    grid,
                    block,
                    ptr(&partial),
                    chunks as i64,
                    ptr_mut(&mut total),
                )
            };
            assert_eq!(payload(&total, "total")[0], expected, "{len} {chunk} {bad}");
        }
    }
}
