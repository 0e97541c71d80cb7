//! 2-D convolution (cross-correlation, as PyTorch's `nn.Conv2d`) by im2col and GEMM.
//!
//! Each image's receptive fields are unrolled into a `(C·kh·kw) × (oh·ow)` matrix, so the
//! output of one image is one product `W · cols` with `W` of shape `(out, C·kh·kw)`: the
//! classic im2col lowering (Chellapilla et al. 2006; Caffe). Images run in parallel on the
//! rayon pool; the weight gradient is summed over fixed chunks of images in a fixed order, so
//! results do not depend on the number of threads.

use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::layer::{Cache, Context, Init, Layer, ParamSpec, Recorded, Tangent};
use crate::layers::util::{channel_sums, check_grad_outputs, plane_sum};
use crate::layers::util::{
    check_backward_slices, check_batch, check_like, check_slices, check_tangent_slices, standard,
};
use crate::storage;
use crate::Float;

/// Images per chunk of the weight-gradient sum (fixed, so the summation order is too).
const GRAD_CHUNK: usize = 8;

/// A 2-D convolution over NCHW tensors: weight `[out, in, kh, kw]`, bias `[out]`, both
/// initialised `U(±1/√(in·kh·kw))` like PyTorch; zero padding; stride ≥ 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    bias: bool,
}

/// Sizes of one convolution on one input shape.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// Rows of the unrolled matrix: `C·kh·kw`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn image_in(&self) -> usize {
        self.c * self.h * self.w
    }
    fn image_out(&self) -> usize {
        self.o * self.p()
    }

    /// The same geometry as tessera-gpu describes it.
    #[cfg(feature = "cuda")]
    fn device(&self) -> tessera_gpu::ConvGeometry {
        tessera_gpu::ConvGeometry {
            channels: self.c,
            height: self.h,
            width: self.w,
            out_channels: self.o,
            kernel: [self.kh, self.kw],
            stride: [self.sh, self.sw],
            padding: [self.ph, self.pw],
        }
    }

    /// The output columns `ox` whose input column `ox·sw + kx − pw` lies inside the image.
    fn valid_columns(&self, kx: usize) -> std::ops::Range<usize> {
        let lo = self.pw.saturating_sub(kx).div_ceil(self.sw);
        // Largest ox with ox·sw + kx − pw ≤ w − 1.
        let hi = if self.w + self.pw > kx {
            ((self.w - 1 + self.pw - kx) / self.sw + 1).min(self.ow)
        } else {
            0
        };
        lo.min(hi)..hi
    }

    /// The receptive fields of one image (`C×H×W`) as a `(C·kh·kw) × (oh·ow)` matrix.
    fn im2col<F: Float>(&self, x: &[F], cols: &mut [F]) {
        let p = self.p();
        for c in 0..self.c {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    let dst = &mut cols[row * p..(row + 1) * p];
                    let valid = self.valid_columns(kx);
                    for oy in 0..self.oh {
                        let iy = (oy * self.sh + ky) as isize - self.ph as isize;
                        let line = &mut dst[oy * self.ow..(oy + 1) * self.ow];
                        if iy < 0 || iy >= self.h as isize || valid.is_empty() {
                            line.fill(F::zero());
                            continue;
                        }
                        let src = &x[(c * self.h + iy as usize) * self.w..][..self.w];
                        line[..valid.start].fill(F::zero());
                        line[valid.end..].fill(F::zero());
                        // Input column of output column ox: ox·sw + kx − pw (in range here).
                        let first = valid.start * self.sw + kx - self.pw;
                        if self.sw == 1 {
                            line[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
                        } else {
                            for (v, &s) in line[valid.clone()]
                                .iter_mut()
                                .zip(src[first..].iter().step_by(self.sw))
                            {
                                *v = s;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds an unrolled gradient `(C·kh·kw) × (oh·ow)` back onto one image (the adjoint of
    /// [`Geometry::im2col`]).
    fn col2im_add<F: Float>(&self, cols: &[F], dx: &mut [F]) {
        let p = self.p();
        for c in 0..self.c {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    let src = &cols[row * p..(row + 1) * p];
                    let valid = self.valid_columns(kx);
                    if valid.is_empty() {
                        continue;
                    }
                    let first = valid.start * self.sw + kx - self.pw;
                    for oy in 0..self.oh {
                        let iy = (oy * self.sh + ky) as isize - self.ph as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let line = &mut dx[(c * self.h + iy as usize) * self.w..][..self.w];
                        let g = &src[oy * self.ow..(oy + 1) * self.ow][valid.clone()];
                        if self.sw == 1 {
                            // Contiguous: a loop the compiler vectorises (`step_by` is not).
                            for (t, &v) in line[first..first + g.len()].iter_mut().zip(g) {
                                *t += v;
                            }
                        } else {
                            for (t, &v) in line[first..].iter_mut().step_by(self.sw).zip(g) {
                                *t += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `out_b (+)= W·cols(x_b) (+ bias)` for every image `b`.
    fn forward<F: Float>(
        &self,
        x: &[F],
        weight: &[F],
        bias: Option<&[F]>,
        out: &mut [F],
        accumulate: bool,
    ) {
        let (k, p) = (self.k(), self.p());
        let w = ArrayView2::from_shape((self.o, k), weight).expect("weight slice");
        let beta = if accumulate { F::one() } else { F::zero() };
        out.par_chunks_mut(self.image_out())
            .zip(x.par_chunks(self.image_in()))
            .for_each_init(
                || vec![F::zero(); k * p],
                |cols, (y, xb)| {
                    self.im2col(xb, cols);
                    let c = ArrayView2::from_shape((k, p), &cols[..]).expect("cols");
                    let mut y2 = ArrayViewMut2::from_shape((self.o, p), y).expect("out");
                    product(F::one(), w, c, beta, y2.view_mut());
                    if let Some(b) = bias {
                        for (row, &bo) in y2.rows_mut().into_iter().zip(b) {
                            for v in row {
                                *v += bo;
                            }
                        }
                    }
                },
            );
    }

    /// `gw += Σ_b δ_b cols(x_b)ᵀ` and, when given, `gb += Σ_b Σ_p δ_b`.
    fn weight_grad<F: Float>(&self, delta: &[F], x: &[F], gw: &mut [F], gb: Option<&mut [F]>) {
        let (k, p) = (self.k(), self.p());
        let chunk_out = GRAD_CHUNK * self.image_out();
        let chunk_in = GRAD_CHUNK * self.image_in();
        let partials: Vec<Vec<F>> = delta
            .par_chunks(chunk_out)
            .zip(x.par_chunks(chunk_in))
            .map(|(dc, xc)| {
                let mut acc = vec![F::zero(); self.o * k];
                let mut cols = vec![F::zero(); k * p];
                for (db, xb) in dc.chunks(self.image_out()).zip(xc.chunks(self.image_in())) {
                    self.im2col(xb, &mut cols);
                    let c = ArrayView2::from_shape((k, p), &cols[..]).expect("cols");
                    let d = ArrayView2::from_shape((self.o, p), db).expect("delta");
                    let a = ArrayViewMut2::from_shape((self.o, k), &mut acc[..]).expect("acc");
                    product(F::one(), d, c.t(), F::one(), a);
                }
                acc
            })
            .collect();
        for part in partials {
            for (g, v) in gw.iter_mut().zip(part) {
                *g += v;
            }
        }
        if let Some(gb) = gb {
            let planes = delta.par_chunks(p).map(plane_sum).collect();
            for (g, v) in gb.iter_mut().zip(channel_sums(planes, self.o)) {
                *g += v;
            }
        }
    }

    /// `dx_b += col2im(Wᵀ δ_b)` for every image.
    fn input_grad<F: Float>(&self, delta: &[F], weight: &[F], dx: &mut [F]) {
        let (k, p) = (self.k(), self.p());
        let w = ArrayView2::from_shape((self.o, k), weight).expect("weight slice");
        dx.par_chunks_mut(self.image_in())
            .zip(delta.par_chunks(self.image_out()))
            .for_each_init(
                || vec![F::zero(); k * p],
                |cols, (dxb, db)| {
                    let d = ArrayView2::from_shape((self.o, p), db).expect("delta");
                    let c = ArrayViewMut2::from_shape((k, p), &mut cols[..]).expect("cols");
                    product(F::one(), w.t(), d, F::zero(), c);
                    self.col2im_add(cols, dxb);
                },
            );
    }
}

impl Conv2d {
    /// A convolution with kernel `[kh, kw]`, stride `[sh, sw]` (≥ 1) and zero padding
    /// `[ph, pw]`, with a bias.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self> {
        if in_channels == 0 {
            return Err(Error::invalid("in_channels", 0, "must be at least 1"));
        }
        if out_channels == 0 {
            return Err(Error::invalid("out_channels", 0, "must be at least 1"));
        }
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
        Ok(Self {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias: true,
        })
    }

    /// A square kernel `k×k` with equal strides and paddings.
    pub fn square(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Self::new(
            in_channels,
            out_channels,
            [kernel; 2],
            [stride; 2],
            [padding; 2],
        )
    }

    /// Without a bias term.
    pub fn without_bias(mut self) -> Self {
        self.bias = false;
        self
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    fn fan_in(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        if input.len() != 3 {
            return Err(Error::shape(
                "input",
                format!("({}, height, width) per example", self.in_channels),
                format!("{input:?}"),
            ));
        }
        if input[0] != self.in_channels {
            return Err(Error::shape(
                "input",
                format!("{} channels", self.in_channels),
                format!("{} channels (shape {input:?})", input[0]),
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
        let [sh, sw] = self.stride;
        Ok(Geometry {
            c: self.in_channels,
            h,
            w,
            o: self.out_channels,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oh: (h + 2 * ph - kh) / sh + 1,
            ow: (w + 2 * pw - kw) / sw + 1,
        })
    }

    fn batch_geometry<F>(&self, x: &ArrayViewD<'_, F>) -> Result<(usize, Geometry)> {
        let shape = x.shape();
        if shape.len() != 4 {
            return Err(Error::shape(
                "input",
                format!("(batch, {}, height, width)", self.in_channels),
                format!("{shape:?}"),
            ));
        }
        let g = self.geometry(&shape[1..])?;
        let batch = check_batch("input", x, &shape[1..])?;
        Ok((batch, g))
    }

    fn split<'a, F>(&self, p: &'a [F]) -> (&'a [F], Option<&'a [F]>) {
        let (w, b) = p.split_at(self.out_channels * self.fan_in());
        (w, self.bias.then_some(b))
    }
}

impl<F: Float> Layer<F> for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input)?;
        Ok(vec![g.o, g.oh, g.ow])
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        let init = Init::pytorch_default(self.fan_in());
        let [kh, kw] = self.kernel;
        let mut specs = vec![ParamSpec::new(
            "weight",
            vec![self.out_channels, self.in_channels, kh, kw],
            init,
        )];
        if self.bias {
            specs.push(ParamSpec::new("bias", vec![self.out_channels], init));
        }
        specs
    }

    fn forward(
        &self,
        params: &[F],
        _buffers: &mut [F],
        input: ArrayViewD<'_, F>,
        _ctx: Context,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_slices(
            Layer::<F>::parameter_count(self),
            &[("params", params.len())],
        )?;
        let (batch, g) = self.batch_geometry(&input)?;
        let x = standard(input);
        let (w, b) = self.split(params);
        #[cfg(feature = "cuda")]
        if let Some(out) = super::gpu::conv2d_forward(&g.device(), x.view(), w, b)? {
            return Ok((out, Cache::empty()));
        }
        let mut out = storage::array_overwritten(&[batch, g.o, g.oh, g.ow], F::nan());
        let xs = x.as_slice().expect("standard layout");
        let os = out.as_slice_mut().expect("fresh array");
        g.forward(xs, w, b, os, false);
        Ok((out, Cache::empty()))
    }

    fn backward(
        &self,
        rec: &Recorded<'_, F>,
        grad_output: ArrayViewD<'_, F>,
        grad_params: Option<&mut [F]>,
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        check_backward_slices(
            Layer::<F>::parameter_count(self),
            rec,
            grad_params.as_ref().map(|g| g.len()),
        )?;
        let (_, g) = self.batch_geometry(&rec.input)?;
        check_like("grad_output", &grad_output, rec.output.shape())?;
        let delta = standard(grad_output);
        #[cfg(feature = "cuda")]
        {
            let request = tessera_gpu::BackwardRequest {
                params: grad_params.is_some(),
                bias: self.bias,
                input: want_input,
            };
            let (w, _) = self.split(rec.params);
            let (x, d) = (rec.input.view(), delta.view());
            if let Some(grads) = super::gpu::conv2d_backward(&g.device(), x, w, d, request)? {
                if let Some(gp) = grad_params {
                    grads.add_into(gp);
                }
                return Ok(grads.input);
            }
        }
        let ds = delta.as_slice().expect("standard layout");
        if let Some(gp) = grad_params {
            let x = standard(rec.input.view());
            let (gw, gb) = gp.split_at_mut(self.out_channels * self.fan_in());
            g.weight_grad(
                ds,
                x.as_slice().expect("standard layout"),
                gw,
                self.bias.then_some(gb),
            );
        }
        if !want_input {
            return Ok(None);
        }
        let (w, _) = self.split(rec.params);
        let mut dx = storage::array_filled(rec.input.shape(), F::zero());
        g.input_grad(ds, w, dx.as_slice_mut().expect("fresh array"));
        Ok(Some(dx))
    }

    fn forward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
    ) -> Result<(ArrayD<F>, Cache<F>)> {
        check_tangent_slices(Layer::<F>::parameter_count(self), rec, tangent, None)?;
        let (_, g) = self.batch_geometry(&rec.input)?;
        let x = standard(rec.input.view());
        let (v, vb) = self.split(tangent.params);
        let mut out = ArrayD::zeros(rec.output.raw_dim());
        let os = out.as_slice_mut().expect("fresh array");
        // The convolution is bilinear in (x, θ): R{y} = conv(x; v) + conv(R{x}; W).
        g.forward(x.as_slice().expect("standard layout"), v, vb, os, false);
        if let Some(rx) = &tangent.input {
            check_like("input tangent", rx, rec.input.shape())?;
            let rx = standard(rx.view());
            let (w, _) = self.split(rec.params);
            g.forward(rx.as_slice().expect("standard layout"), w, None, os, true);
        }
        Ok((out, Cache::empty()))
    }

    fn backward_tangent(
        &self,
        rec: &Recorded<'_, F>,
        tangent: &Tangent<'_, F>,
        _tangent_cache: &Cache<F>,
        grad_output: ArrayViewD<'_, F>,
        grad_output_tangent: ArrayViewD<'_, F>,
        hvp_params: &mut [F],
        want_input: bool,
    ) -> Result<Option<ArrayD<F>>> {
        crate::layers::util::check_r_backward_slices(self, rec, tangent, hvp_params)?;
        let (_, g) = self.batch_geometry(&rec.input)?;
        check_grad_outputs(&grad_output, &grad_output_tangent, rec.output.shape())?;
        let delta = standard(grad_output);
        let r_delta = standard(grad_output_tangent);
        let (ds, rds) = (
            delta.as_slice().expect("standard layout"),
            r_delta.as_slice().expect("standard layout"),
        );
        let x = standard(rec.input.view());
        let rx = match &tangent.input {
            Some(rx) => {
                check_like("input tangent", rx, rec.input.shape())?;
                Some(standard(rx.view()))
            }
            None => None,
        };
        let (hw, hb) = hvp_params.split_at_mut(self.out_channels * self.fan_in());
        // R{∂L/∂W} = Σ R{δ} cols(x)ᵀ + δ cols(R{x})ᵀ;  R{∂L/∂b} = Σ R{δ}.
        g.weight_grad(
            rds,
            x.as_slice().expect("standard layout"),
            hw,
            self.bias.then_some(hb),
        );
        if let Some(rx) = &rx {
            g.weight_grad(ds, rx.as_slice().expect("standard layout"), hw, None);
        }
        if !want_input {
            return Ok(None);
        }
        // R{∂L/∂x} = convᵀ(R{δ}; W) + convᵀ(δ; V).
        let (w, _) = self.split(rec.params);
        let (v, _) = self.split(tangent.params);
        let mut dx = ArrayD::zeros(rec.input.raw_dim());
        let dxs = dx.as_slice_mut().expect("fresh array");
        g.input_grad(rds, w, dxs);
        g.input_grad(ds, v, dxs);
        Ok(Some(dx))
    }
}
