//! Fourier low-pass crop: the gather and real-part kernels through the host shim, with the
//! cuFFT steps replaced by realfft / rustfft on the host (same layouts: R2C `H × (W/2 + 1)`
//! per channel, unnormalised 2-D C2C inverse), against tessera-augment's
//! `FourierCrop::crop_batch`; bad input without a device; GPU parity when a device exists.

use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_augment::{kept_bins, FourierCrop, FourierCropConfig};
use tessera_fft::realfft::num_complex::Complex;
use tessera_gpu::launch::grid_for;
use tessera_gpu::FourierCropShape;

use crate::shim::{self, GUARD};

/// `(batch, channels, height, width, out_height, out_width)`: both parities of every size,
/// size 1, the identity crop, a single column.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (1, 1, 1, 1, 1, 1),
    (2, 3, 8, 8, 4, 4),
    (1, 2, 7, 9, 4, 5),
    (3, 1, 12, 10, 5, 10),
    (1, 1, 5, 6, 5, 6),
    (2, 1, 16, 1, 3, 1),
    (1, 1, 33, 20, 17, 7),
];

type Gather = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    i64,
    i32,
    i32,
    *const i32,
    i32,
    *const i32,
    i32,
    f32,
    *mut f32,
);
type RealPart = unsafe extern "C" fn(u32, u32, *const f32, i64, *mut f32);

fn images(rng: &mut ChaCha8Rng, shape: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::from_shape_simple_fn(shape, || rng.random_range(-1.0f32..1.0))
}

/// Applies `fft` to every column of the row-major `height × width` block `item`, in place.
fn fft_columns(
    item: &mut [Complex<f32>],
    height: usize,
    width: usize,
    fft: &dyn tessera_fft::rustfft::Fft<f32>,
) {
    for c in 0..width {
        let mut column: Vec<_> = (0..height).map(|r| item[r * width + c]).collect();
        fft.process(&mut column);
        for (r, v) in column.into_iter().enumerate() {
            item[r * width + c] = v;
        }
    }
}

/// cuFFT's batched 2-D R2C on the host: `items × height × (width/2 + 1)` interleaved complex.
fn real_fft_2d(values: &[f32], items: usize, height: usize, width: usize) -> Vec<f32> {
    let half = width / 2 + 1;
    let row_fft = tessera_fft::real_forward::<f32>(width).unwrap();
    let col_fft = tessera_fft::forward::<f32>(height).unwrap();
    let mut spectrum = vec![Complex::new(0.0f32, 0.0); items * height * half];
    for n in 0..items {
        for r in 0..height {
            let mut row = values[(n * height + r) * width..][..width].to_vec();
            let mut out = row_fft.make_output_vec();
            row_fft.process(&mut row, &mut out).unwrap();
            spectrum[(n * height + r) * half..][..half].copy_from_slice(&out);
        }
        let item = &mut spectrum[n * height * half..][..height * half];
        fft_columns(item, height, half, col_fft.as_ref());
    }
    spectrum.iter().flat_map(|c| [c.re, c.im]).collect()
}

/// cuFFT's batched, unnormalised 2-D C2C inverse on the host, in place.
fn inverse_fft_2d(values: &mut [f32], items: usize, height: usize, width: usize) {
    let (row_fft, col_fft) = (
        tessera_fft::inverse::<f32>(width).unwrap(),
        tessera_fft::inverse::<f32>(height).unwrap(),
    );
    let mut data: Vec<Complex<f32>> = values.chunks(2).map(|c| Complex::new(c[0], c[1])).collect();
    for n in 0..items {
        let item = &mut data[n * height * width..][..height * width];
        for row in item.chunks_mut(width) {
            row_fft.process(row);
        }
        fft_columns(item, height, width, col_fft.as_ref());
    }
    for (slot, c) in values.chunks_mut(2).zip(data) {
        slot[0] = c.re;
        slot[1] = c.im;
    }
}

fn guarded_bins(bins: &[usize]) -> Vec<i32> {
    let mut buffer = vec![i32::MIN; bins.len() + 2 * GUARD];
    for (slot, &b) in buffer[GUARD..].iter_mut().zip(bins) {
        *slot = b as i32;
    }
    buffer
}

/// fourier_gather through the shim on guarded buffers: the cropped spectrum of `items`
/// channels (`items × bh × bw` interleaved complex) from their R2C spectra.
fn shim_gather(
    shim: &shim::Shim,
    spectrum: &[f32],
    (items, h, w): (usize, usize, usize),
    (kept_rows, kept_cols): (&[usize], &[usize]),
    scale: f32,
) -> Vec<f32> {
    let gather = shim.launcher::<Gather>("fourier_gather");
    let (bh, bw) = (kept_rows.len(), kept_cols.len());
    let spectrum = shim::guarded(spectrum);
    let (rows, cols) = (guarded_bins(kept_rows), guarded_bins(kept_cols));
    let mut cropped = shim::poisoned(2 * items * bh * bw);
    let (grid, block) = grid_for(items * bh * bw);
    // SAFETY: (test) the launcher's signature is fourier_gather's; spectrum holds items × h ×
    // (w/2 + 1) complex values, the bins bh and bw values, cropped items × bh × bw.
    unsafe {
        gather(
            grid,
            block,
            shim::ptr(&spectrum),
            items as i64,
            h as i32,
            w as i32,
            rows[GUARD..].as_ptr(),
            bh as i32,
            cols[GUARD..].as_ptr(),
            bw as i32,
            scale,
            shim::ptr_mut(&mut cropped),
        );
    }
    let values = shim::payload(&cropped, "cropped").to_vec();
    assert!(
        values.iter().all(|v| v.is_finite()),
        "gather left elements unwritten"
    );
    values
}

#[test]
fn shim_crop_equals_tessera_augment() {
    let Some(shim) = shim::load("fourier") else {
        return;
    };
    let real_part = shim.launcher::<RealPart>("fourier_real_part");
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for &(batch, channels, h, w, bh, bw) in SHAPES {
        let input = images(&mut rng, (batch, channels, h, w));
        let plan = FourierCrop::<f32>::new(FourierCropConfig {
            height: h,
            width: w,
            out_height: bh,
            out_width: bw,
        })
        .unwrap();
        let expected = plan.crop_batch(input.view()).unwrap();
        let shape =
            FourierCropShape::new(h, w, &kept_bins(h, bh).unwrap(), &kept_bins(w, bw).unwrap())
                .unwrap();
        let items = shape.check_images(&input.view()).unwrap();

        let spectrum = real_fft_2d(input.as_slice().unwrap(), items, h, w);
        let (kept_rows, kept_cols) = (kept_bins(h, bh).unwrap(), kept_bins(w, bw).unwrap());
        let mut spectrum_out = shim_gather(
            &shim,
            &spectrum,
            (items, h, w),
            (&kept_rows, &kept_cols),
            shape.scale(),
        );
        inverse_fft_2d(&mut spectrum_out, items, bh, bw);
        let complex = shim::guarded(&spectrum_out);
        let mut out = shim::poisoned(items * bh * bw);
        let (grid, block) = grid_for(items * bh * bw);
        // SAFETY: (test) fourier_real_part's signature; both buffers hold items × bh × bw values.
        unsafe {
            real_part(
                grid,
                block,
                shim::ptr(&complex),
                (items * bh * bw) as i64,
                shim::ptr_mut(&mut out),
            );
        }
        let found = shim::payload(&out, "out");
        let expected = expected.as_slice().unwrap();
        let largest = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let difference = crate::max_relative_difference(found, expected, largest.max(1e-6));
        assert!(
            difference < 1e-5,
            "{difference} for {:?}",
            (batch, channels, h, w, bh, bw)
        );
    }
}

/// The gather alone against a direct gather from the full 2-D spectrum (numpy's `fft2`
/// computed with complex FFTs): the Hermitian read of columns beyond `W/2` picks the right
/// bin and conjugate for both parities.
#[test]
fn shim_gather_reads_the_full_spectrum_bins() {
    let Some(shim) = shim::load("fourier") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for &(h, w, bh, bw) in &[(6usize, 8usize, 3usize, 6usize), (7, 9, 6, 8), (5, 4, 2, 3)] {
        let input = images(&mut rng, (1, 1, h, w));
        let mut full: Vec<Complex<f32>> = input.iter().map(|&v| Complex::new(v, 0.0)).collect();
        let (row_fft, col_fft) = (
            tessera_fft::forward::<f32>(w).unwrap(),
            tessera_fft::forward::<f32>(h).unwrap(),
        );
        for row in full.chunks_mut(w) {
            row_fft.process(row);
        }
        fft_columns(&mut full, h, w, col_fft.as_ref());
        let (kept_rows, kept_cols) = (kept_bins(h, bh).unwrap(), kept_bins(w, bw).unwrap());
        let spectrum = real_fft_2d(input.as_slice().unwrap(), 1, h, w);
        let found = shim_gather(&shim, &spectrum, (1, h, w), (&kept_rows, &kept_cols), 1.0);
        let expected: Vec<f32> = kept_rows
            .iter()
            .flat_map(|&r| kept_cols.iter().map(move |&c| (r, c)))
            .flat_map(|(r, c)| [full[r * w + c].re, full[r * w + c].im])
            .collect();
        let largest = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let difference = crate::max_relative_difference(&found, &expected, largest);
        assert!(difference < 1e-5, "{difference} for {:?}", (h, w, bh, bw));
    }
}

#[test]
fn bad_shapes_and_images_are_errors_without_a_device() {
    let err = FourierCropShape::new(0, 4, &[0], &[0]).unwrap_err();
    assert!(err.to_string().contains("height"), "{err}");
    let err = FourierCropShape::new(4, 4, &[0, 4], &[0]).unwrap_err();
    assert!(err.to_string().contains("kept_rows"), "{err}");
    let err = FourierCropShape::new(4, 4, &[0], &[]).unwrap_err();
    assert!(err.to_string().contains("kept_cols"), "{err}");
    let err = FourierCropShape::new(2, 4, &[0, 1, 1], &[0]).unwrap_err();
    assert!(err.to_string().contains("kept_rows"), "{err}");
    let shape =
        FourierCropShape::new(4, 6, &kept_bins(4, 2).unwrap(), &kept_bins(6, 3).unwrap()).unwrap();
    assert_eq!(shape.output_size(), (2, 3));
    assert_eq!(shape.scale(), 1.0 / 24.0);
    let err = shape
        .check_images(&Array4::<f32>::zeros((1, 1, 4, 5)).view())
        .unwrap_err();
    assert!(err.to_string().contains("images"), "{err}");
    assert!(shape
        .check_images(&Array4::<f32>::zeros((0, 1, 4, 6)).view())
        .is_err());
    let mut bad = Array4::<f32>::zeros((2, 1, 4, 6));
    bad[[1, 0, 2, 2]] = f32::NAN;
    assert!(shape.check_images(&bad.view()).is_err());
    assert_eq!(
        shape
            .check_images(&Array4::<f32>::zeros((2, 3, 4, 6)).view())
            .unwrap(),
        6
    );
}

#[test]
fn gpu_crop_equals_tessera_augment() {
    let Some(ctx) = crate::device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for &(batch, channels, h, w, bh, bw) in SHAPES {
        let input = images(&mut rng, (batch, channels, h, w));
        let crop = FourierCrop::<f32>::new(FourierCropConfig {
            height: h,
            width: w,
            out_height: bh,
            out_width: bw,
        })
        .unwrap();
        // Image by image: `crop_batch` itself would route to the device under test (this
        // crate's tests enable tessera-augment's `cuda` feature).
        let cropped: Vec<_> = input
            .outer_iter()
            .map(|image| crop.crop(image).unwrap())
            .collect();
        let views: Vec<_> = cropped.iter().map(|c| c.view()).collect();
        let cpu = ndarray::stack(ndarray::Axis(0), &views).unwrap();
        let shape =
            FourierCropShape::new(h, w, &kept_bins(h, bh).unwrap(), &kept_bins(w, bw).unwrap())
                .unwrap();
        let plan = tessera_gpu::FourierCropPlan::new(&ctx, shape).unwrap();
        let gpu = plan.crop_batch(&ctx, input.view()).unwrap();
        assert_eq!(gpu.dim(), cpu.dim());
        let expected = cpu.as_slice().unwrap();
        let largest = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let difference =
            crate::max_relative_difference(gpu.as_slice().unwrap(), expected, largest.max(1e-6));
        assert!(
            difference < 1e-5,
            "{difference} for {:?}",
            (batch, channels, h, w, bh, bw)
        );
    }
}
