//! Max, average and global-average pooling over NCHW tensors.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::layer::{Cache, Context, Layer, Recorded, Tangent};
use crate::layers::util::{check_batch, check_like, standard};
use crate::layers::util::{check_grad_output_tangent, plane_sum};
use crate::storage;
use crate::Float;

/// Window geometry shared by max and average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

#[derive(Debug, Clone, Copy)]
struct PoolGeometry {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Window {
    /// 2×2 windows, stride 2, no padding: the pooling of most small CNNs.
    const HALVING: Window = Window {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };

    fn new(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self> {
        if kernel.contains(&0) {
            return Err(Error::invalid(
                "kernel_size",
                format!("{kernel:?}"),
                "every side must be at least 1",
            ));
        }
        if stride.contains(&0) {
            return Err(Error::invalid(
                "stride",
                format!("{stride:?}"),
                "every stride must be at least 1",
            ));
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return Err(Error::invalid(
                "padding",
                format!("{padding:?}"),
                format!("must be at most half the kernel {kernel:?} (PyTorch's rule)"),
            ));
        }
        Ok(Self {
            kernel,
            stride,
            padding,
        })
    }

    /// Output `(oh, ow)` for a `(C, H, W)` example.
    fn output(&self, input: &[usize], kind: &str) -> Result<(usize, usize)> {
        if input.len() != 3 {
            return Err(Error::shape(
                "input",
                "(channels, height, width) per example",
                format!("{input:?} for {kind}"),
            ));
        }
        let (h, w) = (input[1], input[2]);
        let [kh, kw] = self.kernel;
        let [ph, pw] = self.padding;
        if kh > h + 2 * ph || kw > w + 2 * pw {
            return Err(Error::invalid(
                "kernel_size",
                format!("{:?}", self.kernel),
                format!("must fit in the padded input {}×{}", h + 2 * ph, w + 2 * pw),
            ));
        }
        Ok((
            (h + 2 * ph - kh) / self.stride[0] + 1,
            (w + 2 * pw - kw) / self.stride[1] + 1,
        ))
    }

    fn geometry<F>(&self, x: &ArrayViewD<'_, F>, kind: &str) -> Result<PoolGeometry> {
        let shape = x.shape();
        if shape.len() != 4 {
            return Err(Error::shape(
                "input",
                "(batch, channels, height, width)",
                format!("{shape:?} for {kind}"),
            ));
        }
        let (oh, ow) = self.output(&shape[1..], kind)?;
        let batch = check_batch("input", x, &shape[1..])?;
        Ok(PoolGeometry {
            planes: batch * shape[1],
            h: shape[2],
            w: shape[3],
            oh,
            ow,
        })
    }

    /// The input rows and columns of output `(oy, ox)`'s window, clipped to the input.
    fn span(&self, g: &PoolGeometry, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let y0 = (oy * self.stride[0]) as isize - self.padding[0] as isize;
        let x0 = (ox * self.stride[1]) as isize - self.padding[1] as isize;
        let y1 = (y0 + self.kernel[0] as isize).min(g.h as isize);
        let x1 = (x0 + self.kernel[1] as isize).min(g.w as isize);
        (
            y0.max(0) as usize,
            y1 as usize,
            x0.max(0) as usize,
            x1 as usize,
        )
    }
}

/// Max-pooling of one plane with the common 2×2 window, stride 2, no padding: the same
/// comparisons in the same order as the general loop (row-major within the window, strict `>`
/// from −∞, so the first maximum wins and a NaN is never chosen), on row pairs instead of
/// per-output window arithmetic; the general loop spent most of a small CNN's pooling time on
/// index computations and bounds checks.
fn max_pool_2x2_plane<F: Float>(
    plane: &[F],
    base: usize,
    width: usize,
    out_width: usize,
    out: &mut [F],
    argmax: &mut [usize],
) {
    for (oy, (out_row, arg_row)) in out
        .chunks_exact_mut(out_width)
        .zip(argmax.chunks_exact_mut(out_width))
        .enumerate()
    {
        let top_start = 2 * oy * width;
        let top = &plane[top_start..top_start + 2 * out_width];
        let bottom = &plane[top_start + width..top_start + width + 2 * out_width];
        for (ox, ((o, a), (pair_top, pair_bottom))) in out_row
            .iter_mut()
            .zip(arg_row.iter_mut())
            .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
            .enumerate()
        {
            let first = base + top_start + 2 * ox;
            let candidates = [
                (pair_top[0], first),
                (pair_top[1], first + 1),
                (pair_bottom[0], first + width),
                (pair_bottom[1], first + width + 1),
            ];
            let (mut best, mut best_i) = (F::neg_infinity(), first);
            for (value, index) in candidates {
                if value > best {
                    best = value;
                    best_i = index;
                }
            }
            *o = best;
            *a = best_i;
        }
    }
}

/// Max pooling with kernel, stride and implicit `−∞` padding (at most half the kernel), as
/// PyTorch's `nn.MaxPool2d` (floor mode). The first maximum of a window wins ties; the
/// backward and R-operator passes route through that fixed arg-max.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool2d {
    window: Window,
}

impl MaxPool2d {
    /// Max pooling with the given kernel, stride and padding.
    pub fn new(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self> {
        Ok(Self {
            window: Window::new(kernel, stride, padding)?,
        })
    }

    /// A `k×k` window with stride `k` and no padding (`nn.MaxPool2d(k)`).
    pub fn square(kernel: usize) -> Result<Self> {
        Self::new([kernel; 2], [kernel; 2], [0; 2])
    }

    fn argmax_of(cache: &Cache<impl Sized>, outputs: usize) -> Result<&[usize]> {
        if cache.indices.len() != outputs {
            return Err(Error::invalid(
                "cache",
                "MaxPool2d",
                "the cache does not come from this layer's forward pass",
            ));
        }
        Ok(&cache.indices)
    }

    /// Gathers `src` (input-shaped) at the arg-maxes into an output-shaped tensor.
    fn gather<F: Float>(src: &ArrayViewD<'_, F>, argmax: &[usize], shape: &[usize]) -> ArrayD<F> {
        let s = standard(src.view());
        let s = s.as_slice().expect("standard layout");
        let values: Vec<F> = argmax.iter().map(|&i| s[i]).collect();
        ArrayD::from_shape_vec(IxDyn(shape), values).expect("one value per output")
    }

    /// Adds output-shaped `grad` onto an input-shaped zero tensor at the arg-maxes. A window
    /// lies in one `(example, channel)` plane, so planes are filled independently (in
    /// parallel, each zeroed while it is in cache).
    fn scatter<F: Float>(
        grad: &ArrayViewD<'_, F>,
        argmax: &[usize],
        shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let plane_in: usize = shape[2..].iter().product();
        let plane_out = grad.shape()[2..].iter().product::<usize>().max(1);
        let mut dx = storage::array_overwritten(shape, F::nan());
        let g = standard(grad.view());
        let g = g.as_slice().expect("standard layout");
        dx.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(plane_in)
            .zip(g.par_chunks(plane_out).zip(argmax.par_chunks(plane_out)))
            .enumerate()
            .try_for_each(|(plane, (d, (g, a)))| {
                d.fill(F::zero());
                let base = plane * plane_in;
                for (&i, &v) in a.iter().zip(g) {
                    *d.get_mut(i.wrapping_sub(base)).ok_or_else(|| {
                        Error::invalid(
                            "cache",
                            "MaxPool2d",
                            "an arg-max lies outside its window's plane: the cache does not \
                             come from this layer's forward pass",
                        )
                    })? += v;
                }
                Ok::<(), Error>(())
            })?;
        Ok(dx)
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (oh, ow) = self.window.output(input, "MaxPool2d")?;
        Ok(vec![input[0], oh, ow])
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let g = self.window.geometry(&input, "MaxPool2d")?;
        let x = standard(input.view());
        let xs = x.as_slice().expect("standard layout");
        let plane_out = g.oh * g.ow;
        let mut out = storage::overwritten(g.planes * plane_out, F::nan());
        let mut argmax = storage::overwritten(g.planes * plane_out, usize::MAX);
        out.par_chunks_mut(plane_out)
            .zip(argmax.par_chunks_mut(plane_out))
            .enumerate()
            .for_each(|(plane, (o, a))| {
                let base = plane * g.h * g.w;
                if self.window == Window::HALVING {
                    max_pool_2x2_plane(&xs[base..base + g.h * g.w], base, g.w, g.ow, o, a);
                    return;
                }
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (y0, y1, x0, x1) = self.window.span(&g, oy, ox);
                        let mut best = F::neg_infinity();
                        let mut best_i = base + y0 * g.w + x0;
                        for y in y0..y1 {
                            for xx in x0..x1 {
                                let i = base + y * g.w + xx;
                                if xs[i] > best {
                                    best = xs[i];
                                    best_i = i;
                                }
                            }
                        }
                        o[oy * g.ow + ox] = best;
                        a[oy * g.ow + ox] = best_i;
                    }
                }
            });
        let shape = [input.shape()[0], input.shape()[1], g.oh, g.ow];
        let out = ArrayD::from_shape_vec(IxDyn(&shape), out).expect("one value per output");
        Ok((
            out,
            Cache {
                tensors: Vec::new(),
                indices: argmax,
                children: Vec::new(),
            },
        ))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_like("grad_output", &grad_output, rec.output.shape())?;
        let argmax = Self::argmax_of(rec.cache, rec.output.len())?;
        want_input
            .then(|| Self::scatter(&grad_output, argmax, rec.input.shape()))
            .transpose()
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let argmax = Self::argmax_of(rec.cache, rec.output.len())?;
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Self::gather(rx, argmax, rec.output.shape())
            }
            None => ArrayD::zeros(rec.output.raw_dim()),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        _tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        _grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        _hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_grad_output_tangent(&grad_output_tangent, rec.output.shape())?;
        let argmax = Self::argmax_of(rec.cache, rec.output.len())?;
        want_input
            .then(|| Self::scatter(&grad_output_tangent, argmax, rec.input.shape()))
            .transpose()
    }
}

/// Average pooling with zero padding counted in the divisor (PyTorch's `nn.AvgPool2d`
/// defaults: `count_include_pad = True`, floor mode): a linear map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvgPool2d {
    window: Window,
}

impl AvgPool2d {
    /// Average pooling with the given kernel, stride and padding.
    pub fn new(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self> {
        Ok(Self {
            window: Window::new(kernel, stride, padding)?,
        })
    }

    /// A `k×k` window with stride `k` and no padding (`nn.AvgPool2d(k)`).
    pub fn square(kernel: usize) -> Result<Self> {
        Self::new([kernel; 2], [kernel; 2], [0; 2])
    }

    fn apply<F: Float>(
        &self,
        g: &PoolGeometry,
        x: &ArrayViewD<'_, F>,
        shape: &[usize],
    ) -> ArrayD<F> {
        let x = standard(x.view());
        let xs = x.as_slice().expect("standard layout");
        let plane_out = g.oh * g.ow;
        let scale = F::one() / F::from_count(self.window.kernel[0] * self.window.kernel[1]);
        let mut out = vec![F::zero(); g.planes * plane_out];
        out.par_chunks_mut(plane_out)
            .enumerate()
            .for_each(|(plane, o)| {
                let base = plane * g.h * g.w;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (y0, y1, x0, x1) = self.window.span(g, oy, ox);
                        let mut s = F::zero();
                        for y in y0..y1 {
                            for v in &xs[base + y * g.w + x0..base + y * g.w + x1] {
                                s += *v;
                            }
                        }
                        o[oy * g.ow + ox] = s * scale;
                    }
                }
            });
        ArrayD::from_shape_vec(IxDyn(shape), out).expect("one value per output")
    }

    fn adjoint<F: Float>(
        &self,
        g: &PoolGeometry,
        d: &ArrayViewD<'_, F>,
        shape: &[usize],
    ) -> ArrayD<F> {
        let d = standard(d.view());
        let ds = d.as_slice().expect("standard layout");
        let plane_out = g.oh * g.ow;
        let scale = F::one() / F::from_count(self.window.kernel[0] * self.window.kernel[1]);
        let mut dx = vec![F::zero(); g.planes * g.h * g.w];
        dx.par_chunks_mut(g.h * g.w)
            .enumerate()
            .for_each(|(plane, dxp)| {
                let dp = &ds[plane * plane_out..(plane + 1) * plane_out];
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let (y0, y1, x0, x1) = self.window.span(g, oy, ox);
                        let v = dp[oy * g.ow + ox] * scale;
                        for y in y0..y1 {
                            for t in &mut dxp[y * g.w + x0..y * g.w + x1] {
                                *t += v;
                            }
                        }
                    }
                }
            });
        ArrayD::from_shape_vec(IxDyn(shape), dx).expect("one value per input")
    }
}

impl<F: Float> Layer<F> for AvgPool2d {
    fn kind(&self) -> &'static str {
        "AvgPool2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (oh, ow) = self.window.output(input, "AvgPool2d")?;
        Ok(vec![input[0], oh, ow])
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let g = self.window.geometry(&input, "AvgPool2d")?;
        let shape = [input.shape()[0], input.shape()[1], g.oh, g.ow];
        Ok((self.apply(&g, &input, &shape), Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        let g = self.window.geometry(&rec.input, "AvgPool2d")?;
        check_like("grad_output", &grad_output, rec.output.shape())?;
        Ok(want_input.then(|| self.adjoint(&g, &grad_output, rec.input.shape())))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let g = self.window.geometry(&rec.input, "AvgPool2d")?;
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                self.apply(&g, rx, rec.output.shape())
            }
            None => ArrayD::zeros(rec.output.raw_dim()),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        _tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        _grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        _hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        let g = self.window.geometry(&rec.input, "AvgPool2d")?;
        check_grad_output_tangent(&grad_output_tangent, rec.output.shape())?;
        Ok(want_input.then(|| self.adjoint(&g, &grad_output_tangent, rec.input.shape())))
    }
}

/// Mean over every axis after the channel axis: `(batch, C, …) → (batch, C)` (PyTorch's
/// `AdaptiveAvgPool2d(1)` followed by a flatten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    fn check<F>(x: &ArrayViewD<'_, F>) -> Result<()> {
        let shape = x.shape();
        if shape.len() < 3 || shape[2..].contains(&0) {
            return Err(Error::shape(
                "input",
                "(batch, channels, d1, …) with non-empty spatial dimensions",
                format!("{shape:?}"),
            ));
        }
        check_batch("input", x, &shape[1..]).map(|_| ())
    }

    fn mean<F: Float>(x: &ArrayViewD<'_, F>) -> ArrayD<F> {
        let (b, c) = (x.shape()[0], x.shape()[1]);
        let s = standard(x.view());
        let per: usize = x.shape()[2..].iter().product();
        let scale = F::one() / F::from_count(per);
        let values: Vec<F> = s
            .as_slice()
            .expect("standard layout")
            .chunks(per)
            .map(|plane| plane_sum(plane) * scale)
            .collect();
        ArrayD::from_shape_vec(IxDyn(&[b, c]), values).expect("one value per plane")
    }

    fn spread<F: Float>(d: &ArrayViewD<'_, F>, shape: &[usize]) -> ArrayD<F> {
        let per: usize = shape[2..].iter().product();
        let scale = F::one() / F::from_count(per);
        let mut dx = storage::array_overwritten(shape, F::nan());
        let ds = standard(d.view());
        for (plane, &g) in dx
            .as_slice_mut()
            .expect("fresh array")
            .chunks_mut(per)
            .zip(ds.iter())
        {
            plane.fill(g * scale);
        }
        dx
    }
}

impl<F: Float> Layer<F> for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "GlobalAvgPool"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() < 2 || input[1..].contains(&0) {
            return Err(Error::shape(
                "input",
                "(channels, d1, …) per example with non-empty spatial dimensions",
                format!("{input:?}"),
            ));
        }
        Ok(vec![input[0]])
    }

    fn forward(
        &self,
        _params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        Self::check(&input)?;
        Ok((Self::mean(&input), Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        _grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_like("grad_output", &grad_output, rec.output.shape())?;
        Ok(want_input.then(|| Self::spread(&grad_output, rec.input.shape())))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        let out = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Self::mean(rx)
            }
            None => ArrayD::zeros(rec.output.raw_dim()),
        };
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        _tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        _grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        _hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_grad_output_tangent(&grad_output_tangent, rec.output.shape())?;
        Ok(want_input.then(|| Self::spread(&grad_output_tangent, rec.input.shape())))
    }
}
