//! tessera-nn's Dense and Conv2d layers: the nn.cu kernels through the host shim (with a
//! naive host GEMM in place of cuBLAS) against the CPU layers, the input checks without a
//! device, and GPU-vs-CPU parity when a device exists.

use ndarray::{Array2, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::launch::grid_for;
use tessera_gpu::nn::{
    check_conv2d, check_dense, conv2d_backward, conv2d_forward, dense_backward, dense_forward,
};
use tessera_gpu::{BackwardRequest, ConvGeometry};
use tessera_nn::layers::{Conv2d, Dense};
use tessera_nn::{Context, Layer, Recorded};

use crate::shim::{self, guarded, payload, poisoned, ptr, ptr_mut};

type BiasAdd = unsafe extern "C" fn(u32, u32, *mut f32, i64, i32, i64, *const f32, i32);
type BiasGrad = unsafe extern "C" fn(u32, u32, *const f32, i64, i32, i64, *mut f32);
type SumBatch = unsafe extern "C" fn(u32, u32, *const f32, i64, i64, i32, *mut f32);
/// The launcher of nn_im2col / nn_col2im: grid, block, input, batch, the 11 geometry ints,
/// the extra arguments, output.
macro_rules! unroll_launcher {
    ($($extra:ty),*) => {
        unsafe extern "C" fn(
            u32, u32, *const f32, i64, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32,
            $($extra,)* *mut f32,
        )
    };
}
type Im2col = unroll_launcher!();
type Col2im = unroll_launcher!(i32);

/// Values are compared relative to max(|expected|, 1): the layers' values are of order one,
/// and products near zero after cancellation carry an absolute rounding error.
const FLOOR: f32 = 1.0;
/// The shim runs the element-wise kernels exactly; only the host GEMM sums in another order.
const SHIM_TOLERANCE: f32 = 1e-5;

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `C = op(A)·op(B)` for row-major slices, summed in f64: the reference for cuBLAS.
fn naive_gemm(a: &[f32], ta: bool, b: &[f32], tb: bool, m: usize, n: usize, k: usize) -> Vec<f32> {
    let a_at = |i: usize, l: usize| if ta { a[l * m + i] } else { a[i * k + l] };
    let b_at = |l: usize, j: usize| if tb { b[j * k + l] } else { b[l * n + j] };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|l| f64::from(a_at(i, l)) * f64::from(b_at(l, j)))
                .sum();
            c[i * n + j] = s as f32;
        }
    }
    c
}

/// The geometries of the tests: 1×1 kernels, strides, padding, non-square kernels, odd
/// sizes, a single image, and outputs that are not multiples of the block size.
fn geometries() -> Vec<(usize, ConvGeometry)> {
    let g = |c, h, w, o, kernel, stride, padding| ConvGeometry {
        channels: c,
        height: h,
        width: w,
        out_channels: o,
        kernel,
        stride,
        padding,
    };
    vec![
        (1, g(1, 1, 1, 1, [1, 1], [1, 1], [0, 0])),
        (2, g(3, 7, 5, 4, [3, 3], [1, 1], [1, 1])),
        (3, g(2, 9, 8, 3, [3, 2], [2, 3], [1, 2])),
        (1, g(4, 6, 6, 5, [5, 5], [1, 1], [0, 0])),
        (2, g(1, 5, 5, 2, [3, 3], [2, 2], [2, 2])),
        (5, g(3, 11, 13, 7, [4, 3], [3, 2], [0, 1])),
    ]
}

fn conv_layer(g: &ConvGeometry) -> Conv2d {
    Conv2d::new(g.channels, g.out_channels, g.kernel, g.stride, g.padding).unwrap()
}

struct ConvCase {
    batch: usize,
    g: ConvGeometry,
    out: [usize; 2],
    x: Array4<f32>,
    params: Vec<f32>,
    delta: Array4<f32>,
}

impl ConvCase {
    fn new(rng: &mut ChaCha8Rng, batch: usize, g: ConvGeometry) -> Self {
        let (oh, ow) = g.output_size().unwrap();
        let n_params = Layer::<f32>::parameter_count(&conv_layer(&g));
        let x_shape = (batch, g.channels, g.height, g.width);
        let x = Array4::from_shape_vec(
            x_shape,
            random(rng, batch * g.channels * g.height * g.width),
        );
        let d_shape = (batch, g.out_channels, oh, ow);
        let delta = Array4::from_shape_vec(d_shape, random(rng, batch * g.out_channels * oh * ow));
        ConvCase {
            batch,
            g,
            out: [oh, ow],
            x: x.unwrap(),
            params: random(rng, n_params),
            delta: delta.unwrap(),
        }
    }

    fn k(&self) -> usize {
        self.g.channels * self.g.kernel[0] * self.g.kernel[1]
    }

    fn p(&self) -> usize {
        self.out[0] * self.out[1]
    }

    fn weight(&self) -> &[f32] {
        &self.params[..self.g.out_channels * self.k()]
    }

    fn bias(&self) -> &[f32] {
        &self.params[self.g.out_channels * self.k()..]
    }

    fn ints(&self) -> [i32; 11] {
        let g = &self.g;
        [
            g.channels,
            g.height,
            g.width,
            g.kernel[0],
            g.kernel[1],
            g.stride[0],
            g.stride[1],
            g.padding[0],
            g.padding[1],
            self.out[0],
            self.out[1],
        ]
        .map(|v| v as i32)
    }

    /// The CPU layer's output, weight and bias gradients, and input gradient.
    fn cpu(&self) -> (Array4<f32>, Vec<f32>, Vec<f32>, Array4<f32>) {
        let layer = conv_layer(&self.g);
        let x = self.x.view().into_dyn();
        let (y, cache) = layer
            .forward(&self.params, &mut [], x.clone(), Context::eval())
            .unwrap();
        let rec = Recorded {
            params: &self.params,
            buffers: &[],
            input: x,
            output: y.view(),
            cache: &cache,
        };
        let mut grads = vec![0.0f32; self.params.len()];
        let dx = layer
            .backward(&rec, self.delta.view().into_dyn(), Some(&mut grads), true)
            .unwrap()
            .unwrap();
        let gb = grads.split_off(self.g.out_channels * self.k());
        let into4 = |a: ndarray::ArrayD<f32>| a.into_dimensionality::<ndarray::Ix4>().unwrap();
        (into4(y), grads, gb, into4(dx))
    }

    fn shim_im2col(&self, shim: &shim::Shim) -> Vec<f32> {
        let im2col = shim.launcher::<Im2col>("nn_im2col");
        let x = guarded(self.x.as_slice().unwrap());
        let len = self.batch * self.k() * self.p();
        let mut cols = poisoned(len);
        let (grid, block) = grid_for(len);
        let i = self.ints();
        // SAFETY: (test) the launcher's signature is nn_im2col's; x holds batch·C·H·W values
        // and cols batch·K·P, each between canaries.
        unsafe {
            im2col(
                grid,
                block,
                ptr(&x),
                self.batch as i64,
                i[0],
                i[1],
                i[2],
                i[3],
                i[4],
                i[5],
                i[6],
                i[7],
                i[8],
                i[9],
                i[10],
                ptr_mut(&mut cols),
            )
        };
        payload(&x, "x");
        payload(&cols, "cols").to_vec()
    }

    fn shim_col2im(&self, shim: &shim::Shim, cols: &[f32], start: Option<&[f32]>) -> Vec<f32> {
        let col2im = shim.launcher::<Col2im>("nn_col2im");
        let cols = guarded(cols);
        let len = self.x.len();
        let mut dx = match start {
            Some(start) => guarded(start),
            None => poisoned(len),
        };
        let (grid, block) = grid_for(len);
        let i = self.ints();
        // SAFETY: (test) the launcher's signature is nn_col2im's; cols holds batch·K·P values
        // and dx batch·C·H·W, each between canaries.
        unsafe {
            col2im(
                grid,
                block,
                ptr(&cols),
                self.batch as i64,
                i[0],
                i[1],
                i[2],
                i[3],
                i[4],
                i[5],
                i[6],
                i[7],
                i[8],
                i[9],
                i[10],
                i32::from(start.is_some()),
                ptr_mut(&mut dx),
            )
        };
        payload(&cols, "cols");
        payload(&dx, "dx").to_vec()
    }
}

/// Runs nn_bias_add on `values` viewed as `(outer, channels, inner)`.
fn shim_bias_add(
    shim: &shim::Shim,
    values: &[f32],
    outer: usize,
    bias: &[f32],
    inner: usize,
    relu: bool,
) -> Vec<f32> {
    let bias_add = shim.launcher::<BiasAdd>("nn_bias_add");
    let mut v = guarded(values);
    let b = guarded(bias);
    let (grid, block) = grid_for(values.len());
    // SAFETY: (test) the launcher's signature is nn_bias_add's; values holds
    // outer·channels·inner values and bias `channels`, each between canaries.
    unsafe {
        bias_add(
            grid,
            block,
            ptr_mut(&mut v),
            outer as i64,
            bias.len() as i32,
            inner as i64,
            ptr(&b),
            i32::from(relu),
        )
    };
    payload(&b, "bias");
    payload(&v, "values").to_vec()
}

fn shim_bias_grad(
    shim: &shim::Shim,
    delta: &[f32],
    outer: usize,
    channels: usize,
    inner: usize,
) -> Vec<f32> {
    let bias_grad = shim.launcher::<BiasGrad>("nn_bias_grad");
    let d = guarded(delta);
    let mut g = poisoned(channels);
    let (grid, block) = grid_for(channels);
    // SAFETY: (test) the launcher's signature is nn_bias_grad's; delta holds
    // outer·channels·inner values and grad `channels`, each between canaries.
    unsafe {
        bias_grad(
            grid,
            block,
            ptr(&d),
            outer as i64,
            channels as i32,
            inner as i64,
            ptr_mut(&mut g),
        )
    };
    payload(&d, "delta");
    payload(&g, "grad").to_vec()
}

/// nn_sum_batch over `partials` (images of `len` values), accumulating onto `start`.
fn shim_sum_batch(
    shim: &shim::Shim,
    partials: &[f32],
    len: usize,
    start: Option<&[f32]>,
) -> Vec<f32> {
    let sum_batch = shim.launcher::<SumBatch>("nn_sum_batch");
    let p = guarded(partials);
    let mut out = match start {
        Some(start) => guarded(start),
        None => poisoned(len),
    };
    let (grid, block) = grid_for(len);
    let images = (partials.len() / len) as i64;
    // SAFETY: (test) the launcher's signature is nn_sum_batch's; partials holds images·len
    // values and out `len`, each between canaries.
    unsafe {
        sum_batch(
            grid,
            block,
            ptr(&p),
            images,
            len as i64,
            i32::from(start.is_some()),
            ptr_mut(&mut out),
        )
    };
    payload(&p, "partials");
    payload(&out, "out").to_vec()
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    let diff = crate::max_relative_difference(found, expected, FLOOR);
    assert!(diff <= tolerance, "{what}: max relative difference {diff}");
}

#[test]
fn conv2d_forward_through_the_shim_matches_the_cpu_layer() {
    let Some(shim) = shim::load("nn") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for (batch, g) in geometries() {
        let case = ConvCase::new(&mut rng, batch, g);
        let (want, ..) = case.cpu();
        let cols = case.shim_im2col(&shim);
        let (o, k, p) = (g.out_channels, case.k(), case.p());
        let mut y = Vec::with_capacity(batch * o * p);
        for image in cols.chunks(k * p) {
            y.extend(naive_gemm(case.weight(), false, image, false, o, p, k));
        }
        let y = shim_bias_add(&shim, &y, batch, case.bias(), p, false);
        assert_close(
            &y,
            want.as_slice().unwrap(),
            SHIM_TOLERANCE,
            &format!("forward {g:?}"),
        );
    }
}

#[test]
fn conv2d_backward_through_the_shim_matches_the_cpu_layer() {
    let Some(shim) = shim::load("nn") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for (batch, g) in geometries() {
        let case = ConvCase::new(&mut rng, batch, g);
        let (_, want_gw, want_gb, want_dx) = case.cpu();
        let (o, k, p) = (g.out_channels, case.k(), case.p());
        let delta = case.delta.as_slice().unwrap();
        // Input gradient: Wᵀδ_b per image, then the col2im gather.
        let mut dcols = Vec::with_capacity(batch * k * p);
        for d in delta.chunks(o * p) {
            dcols.extend(naive_gemm(case.weight(), true, d, false, k, p, o));
        }
        let dx = case.shim_col2im(&shim, &dcols, None);
        assert_close(
            &dx,
            want_dx.as_slice().unwrap(),
            SHIM_TOLERANCE,
            &format!("dx {g:?}"),
        );
        // Accumulating into an existing gradient adds the same terms after it.
        let start = random(&mut rng, dx.len());
        let accumulated = case.shim_col2im(&shim, &dcols, Some(&start));
        let want: Vec<f32> = start.iter().zip(&dx).map(|(a, b)| a + b).collect();
        assert_close(&accumulated, &want, 1e-6, &format!("accumulated dx {g:?}"));
        // Weight gradient: per-image δ_b cols(x_b)ᵀ over the shim's im2col, summed over the
        // images by nn_sum_batch (in two chunks when there are two or more images).
        let cols = case.shim_im2col(&shim);
        let mut partials = Vec::with_capacity(batch * o * k);
        for (d, c) in delta.chunks(o * p).zip(cols.chunks(k * p)) {
            partials.extend(naive_gemm(d, false, c, true, o, k, p));
        }
        let split = batch.div_ceil(2) * o * k;
        let mut gw = shim_sum_batch(&shim, &partials[..split], o * k, None);
        if split < partials.len() {
            gw = shim_sum_batch(&shim, &partials[split..], o * k, Some(&gw));
        }
        assert_close(
            &gw,
            &want_gw,
            SHIM_TOLERANCE,
            &format!("weight gradient {g:?}"),
        );
        let gb = shim_bias_grad(&shim, delta, batch, o, p);
        assert_close(&gb, &want_gb, 1e-6, &format!("bias gradient {g:?}"));
    }
}

#[test]
fn dense_bias_relu_and_bias_gradient_through_the_shim_match_the_cpu_layer() {
    let Some(shim) = shim::load("nn") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for &(rows, inputs, outputs) in &[(1, 1, 1), (3, 5, 2), (17, 9, 31), (300, 7, 3)] {
        let layer = Dense::new(inputs, outputs).unwrap();
        let params = random(&mut rng, Layer::<f32>::parameter_count(&layer));
        let x = Array2::from_shape_vec((rows, inputs), random(&mut rng, rows * inputs)).unwrap();
        let (want, cache) = layer
            .forward(&params, &mut [], x.view().into_dyn(), Context::eval())
            .unwrap();
        let (w, b) = params.split_at(inputs * outputs);
        let xw = naive_gemm(x.as_slice().unwrap(), false, w, true, rows, outputs, inputs);
        let y = shim_bias_add(&shim, &xw, rows, b, 1, false);
        assert_close(
            &y,
            want.as_slice().unwrap(),
            SHIM_TOLERANCE,
            "dense forward",
        );
        let relu = shim_bias_add(&shim, &xw, rows, b, 1, true);
        let want_relu: Vec<f32> = want.iter().map(|&v| v.max(0.0)).collect();
        assert_close(&relu, &want_relu, SHIM_TOLERANCE, "dense forward + relu");
        assert!(relu.iter().all(|&v| v >= 0.0));

        let delta =
            Array2::from_shape_vec((rows, outputs), random(&mut rng, rows * outputs)).unwrap();
        let rec = Recorded {
            params: &params,
            buffers: &[],
            input: x.view().into_dyn(),
            output: want.view(),
            cache: &cache,
        };
        let mut grads = vec![0.0f32; params.len()];
        layer
            .backward(&rec, delta.view().into_dyn(), Some(&mut grads), false)
            .unwrap();
        let gb = shim_bias_grad(&shim, delta.as_slice().unwrap(), rows, outputs, 1);
        assert_close(&gb, &grads[inputs * outputs..], 1e-6, "dense bias gradient");
        let column_sums = delta.sum_axis(Axis(0));
        assert_close(&gb, column_sums.as_slice().unwrap(), 1e-6, "column sums");
    }
}

#[test]
fn bad_layer_input_is_an_error_naming_it_without_a_device() {
    let x = Array2::<f32>::zeros((2, 3));
    let e = check_dense(x.view(), &[0.0; 5], 2, None).unwrap_err();
    assert!(e.to_string().contains("weight"), "{e}");
    let e = check_dense(x.view(), &[0.0; 6], 2, Some(&[0.0])).unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    let mut bad = x.clone();
    bad[[1, 2]] = f32::NAN;
    let e = check_dense(bad.view(), &[0.0; 6], 2, None).unwrap_err();
    assert!(e.to_string().contains("input"), "{e}");
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(check_dense(empty.view(), &[0.0; 6], 2, None).is_err());

    let g = ConvGeometry {
        channels: 2,
        height: 4,
        width: 4,
        out_channels: 3,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [0, 0],
    };
    assert_eq!(g.output_size().unwrap(), (2, 2));
    let zero_stride = ConvGeometry {
        stride: [0, 1],
        ..g
    };
    assert!(zero_stride
        .output_size()
        .unwrap_err()
        .to_string()
        .contains("stride"));
    let too_big = ConvGeometry {
        kernel: [5, 1],
        ..g
    };
    assert!(too_big
        .output_size()
        .unwrap_err()
        .to_string()
        .contains("kernel"));
    let x = Array4::<f32>::zeros((1, 2, 4, 4));
    let e = check_conv2d(&g, x.view(), &[0.0; 53], None).unwrap_err();
    assert!(e.to_string().contains("weight"), "{e}");
    let wrong_channels = Array4::<f32>::zeros((1, 3, 4, 4));
    let e = check_conv2d(&g, wrong_channels.view(), &[0.0; 54], None).unwrap_err();
    assert!(e.to_string().contains("input"), "{e}");
    assert!(check_conv2d(&g, x.view(), &[0.0; 54], Some(&[0.0; 3])).is_ok());
}

fn request(input: bool) -> BackwardRequest {
    BackwardRequest {
        params: true,
        bias: true,
        input,
    }
}

#[test]
fn dense_layer_on_the_device_matches_the_cpu_layer() {
    let Some(ctx) = crate::device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for &(rows, inputs, outputs) in &[(1, 1, 1), (33, 17, 5), (257, 130, 64)] {
        let layer = Dense::new(inputs, outputs).unwrap();
        let params = random(&mut rng, Layer::<f32>::parameter_count(&layer));
        let x = Array2::from_shape_vec((rows, inputs), random(&mut rng, rows * inputs)).unwrap();
        let (want, cache) = layer
            .forward(&params, &mut [], x.view().into_dyn(), Context::eval())
            .unwrap();
        let (w, b) = params.split_at(inputs * outputs);
        let y = dense_forward(&ctx, x.view(), w, outputs, Some(b), false).unwrap();
        assert_close(
            y.as_slice().unwrap(),
            want.as_slice().unwrap(),
            1e-5,
            "dense forward",
        );
        let delta =
            Array2::from_shape_vec((rows, outputs), random(&mut rng, rows * outputs)).unwrap();
        let rec = Recorded {
            params: &params,
            buffers: &[],
            input: x.view().into_dyn(),
            output: want.view(),
            cache: &cache,
        };
        let mut grads = vec![0.0f32; params.len()];
        let dx = layer
            .backward(&rec, delta.view().into_dyn(), Some(&mut grads), true)
            .unwrap()
            .unwrap();
        let got = dense_backward(&ctx, x.view(), w, delta.view(), request(true)).unwrap();
        let gw = got.weight.unwrap();
        assert_close(
            gw.as_slice().unwrap(),
            &grads[..inputs * outputs],
            1e-5,
            "dense weight gradient",
        );
        assert_close(
            got.bias.unwrap().as_slice().unwrap(),
            &grads[inputs * outputs..],
            1e-5,
            "dense bias gradient",
        );
        assert_close(
            got.input.unwrap().as_slice().unwrap(),
            dx.as_slice().unwrap(),
            1e-5,
            "dense input gradient",
        );
    }
}

#[test]
fn conv2d_layer_on_the_device_matches_the_cpu_layer() {
    let Some(ctx) = crate::device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for (batch, g) in geometries() {
        let case = ConvCase::new(&mut rng, batch, g);
        let (want_y, want_gw, want_gb, want_dx) = case.cpu();
        let y = conv2d_forward(&ctx, &g, case.x.view(), case.weight(), Some(case.bias())).unwrap();
        assert_close(
            y.as_slice().unwrap(),
            want_y.as_slice().unwrap(),
            1e-5,
            &format!("forward {g:?}"),
        );
        let got = conv2d_backward(
            &ctx,
            &g,
            case.x.view(),
            case.weight(),
            case.delta.view(),
            request(true),
        )
        .unwrap();
        assert_close(
            got.weight.unwrap().as_slice().unwrap(),
            &want_gw,
            1e-5,
            "conv weight gradient",
        );
        assert_close(
            got.bias.unwrap().as_slice().unwrap(),
            &want_gb,
            1e-5,
            "conv bias gradient",
        );
        assert_close(
            got.input.unwrap().as_slice().unwrap(),
            want_dx.as_slice().unwrap(),
            1e-5,
            "conv input gradient",
        );
        let params_only = conv2d_backward(
            &ctx,
            &g,
            case.x.view(),
            case.weight(),
            case.delta.view(),
            request(false),
        )
        .unwrap();
        assert!(params_only.input.is_none() && params_only.weight.is_some());
    }
}

#[test]
fn device_matmul_matches_a_naive_product_for_every_transpose() {
    let Some(ctx) = crate::device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    let (m, n, k) = (37, 19, 45);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if ta { (k, m) } else { (m, k) };
        let b_shape = if tb { (n, k) } else { (k, n) };
        let a = Array2::from_shape_vec(a_shape, random(&mut rng, m * k)).unwrap();
        let b = Array2::from_shape_vec(b_shape, random(&mut rng, k * n)).unwrap();
        let da = tessera_gpu::DeviceMatrix::upload(&ctx, "a", a.view()).unwrap();
        let db = tessera_gpu::DeviceMatrix::upload(&ctx, "b", b.view()).unwrap();
        let c = tessera_gpu::matmul(&ctx, &da, ta, &db, tb)
            .unwrap()
            .download(&ctx)
            .unwrap();
        assert_eq!(c.dim(), (m, n));
        let want = naive_gemm(
            a.as_slice().unwrap(),
            ta,
            b.as_slice().unwrap(),
            tb,
            m,
            n,
            k,
        );
        assert_close(
            c.as_slice().unwrap(),
            &want,
            1e-5,
            &format!("transposes {ta} {tb}"),
        );
        // Inner dimensions that do not chain are an error naming `b`.
        let e = tessera_gpu::matmul(&ctx, &da, !ta, &db, tb).unwrap_err();
        assert!(e.to_string().contains('b'), "{e}");
    }
}
