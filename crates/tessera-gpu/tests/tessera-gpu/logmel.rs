//! Batched log-mel: the kernels through the host shim (with the FFT done on the host), the
//! device path against tessera-spectro, and input errors.

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_gpu::launch::grid_for;
use tessera_gpu::logmel::{exponent_kind, sparse_rows, MAX_CHUNK};
use tessera_gpu::{DbReference, LogMelPlanConfig, Padding};
use tessera_spectro::{DbConfig, LogMelConfig, LogMelSpectrogram, MelConfig, PadMode, Reference};

use crate::shim::{self, guarded, payload, poisoned, ptr, ptr_mut};

type Frames = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    i64,
    i64,
    *const f32,
    i32,
    i32,
    i32,
    i32,
    i32,
    *mut f32,
);
type PowerMel = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    i64,
    i32,
    i32,
    *const f32,
    *const i32,
    *const i32,
    i32,
    i32,
    f32,
    *mut f32,
);
type PartialMax = unsafe extern "C" fn(u32, u32, *const f32, i64, i64, i64, i64, *mut f32);
type ItemMax = unsafe extern "C" fn(u32, u32, *const f32, i64, i64, *mut f32);
type ToDb = unsafe extern "C" fn(u32, u32, *mut f32, i64, i64, *const f32, f32, i32, f32, i32, f32);

fn plans() -> Vec<LogMelSpectrogram<f32>> {
    let mut configs = vec![
        LogMelConfig::librosa(22_050.0),
        LogMelConfig::sslh(16_000.0),
    ];
    let mut odd = LogMelConfig::librosa(8_000.0);
    odd.mel = MelConfig {
        n_fft: 250,
        hop_length: 77,
        n_mels: 20,
        power: 1.5,
        pad_mode: PadMode::Reflect,
        ..odd.mel
    };
    odd.db = DbConfig {
        reference: Reference::Max,
        amin: 1e-6,
        top_db: Some(50.0),
    };
    configs.push(odd);
    let mut uncentred = LogMelConfig::librosa(16_000.0);
    uncentred.mel.center = false;
    uncentred.mel.power = 1.0;
    uncentred.db.top_db = None;
    configs.push(uncentred);
    configs
        .into_iter()
        .map(|c| LogMelSpectrogram::new(c).expect("valid config"))
        .collect()
}

fn signals(rng: &mut ChaCha8Rng, batch: usize, samples: usize) -> Array2<f32> {
    Array2::from_shape_fn((batch, samples), |(b, i)| {
        let tone = (i as f32 * 0.01 * (b + 1) as f32).sin();
        (b as f32 + 1.0) * 0.3 * tone + rng.random_range(-0.1..0.1)
    })
}

/// The whole pipeline with the kernels run by the shim and the FFT by realfft.
fn shim_log_mel(shim: &shim::Shim, config: &LogMelPlanConfig, x: &Array2<f32>) -> Array3<f32> {
    let (batch, n_samples) = x.dim();
    let frames = config.frame_count(n_samples).expect("long enough");
    let (n_fft, bins) = (config.n_fft, config.n_fft / 2 + 1);
    let n_mels = config.filterbank.nrows();
    let rows = batch * frames;
    let input = guarded(x.as_slice().expect("standard"));
    let window = guarded(&config.window);
    let mut frame_buffer = poisoned(rows * n_fft);
    let pad = if config.center { n_fft / 2 } else { 0 };
    let (grid, block) = grid_for(rows * n_fft);
    let launch = shim.launcher::<Frames>("logmel_frames");
    // SAFETY: the buffers have the sizes the kernel indexes (guarded on both sides).
    unsafe {
        launch(
            grid,
            block,
            ptr(&input),
            batch as i64,
            n_samples as i64,
            ptr(&window),
            n_fft as i32,
            config.hop_length as i32,
            frames as i32,
            pad as i32,
            i32::from(config.padding == Padding::Reflect),
            ptr_mut(&mut frame_buffer),
        )
    };
    let framed = payload(&frame_buffer, "frames").to_vec();

    let fft = tessera_fft::real_forward::<f32>(n_fft).unwrap();
    let mut spectrum = Vec::with_capacity(rows * bins * 2);
    for row in framed.chunks(n_fft) {
        let mut input = row.to_vec();
        let mut output = fft.make_output_vec();
        fft.process(&mut input, &mut output).expect("fft");
        spectrum.extend(output.iter().flat_map(|c| [c.re, c.im]));
    }
    let spectrum = guarded(&spectrum);
    let (weights, offsets, starts) = sparse_rows(&config.filterbank);
    let weights = guarded(&weights);
    let per_item = n_mels * frames;
    let mut mel = poisoned(batch * per_item);
    let (grid, block) = grid_for(batch * per_item);
    let launch = shim.launcher::<PowerMel>("logmel_power_mel");
    // SAFETY: as above; offsets/starts index within bins.
    unsafe {
        launch(
            grid,
            block,
            ptr(&spectrum),
            batch as i64,
            frames as i32,
            bins as i32,
            ptr(&weights),
            offsets.as_ptr(),
            starts.as_ptr(),
            n_mels as i32,
            exponent_kind(config.power),
            config.power / 2.0,
            ptr_mut(&mut mel),
        )
    };
    payload(&mel, "mel");

    let chunks = per_item.div_ceil(MAX_CHUNK);
    let mut partial = poisoned(batch * chunks);
    let (grid, block) = grid_for(batch * chunks);
    let launch = shim.launcher::<PartialMax>("logmel_partial_max");
    // SAFETY: as above.
    unsafe {
        launch(
            grid,
            block,
            ptr(&mel),
            batch as i64,
            per_item as i64,
            MAX_CHUNK as i64,
            chunks as i64,
            ptr_mut(&mut partial),
        )
    };
    let mut item_max = poisoned(batch);
    let (grid, block) = grid_for(batch);
    let launch = shim.launcher::<ItemMax>("logmel_item_max");
    // SAFETY: as above.
    unsafe {
        launch(
            grid,
            block,
            ptr(&partial),
            batch as i64,
            chunks as i64,
            ptr_mut(&mut item_max),
        )
    };
    let maxima = payload(&item_max, "item_max").to_vec();
    for (b, m) in maxima.iter().enumerate() {
        let item = &payload(&mel, "mel")[b * per_item..(b + 1) * per_item];
        assert_eq!(
            *m,
            item.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            "item {b}"
        );
    }

    if let Some(db) = &config.db {
        let (is_max, reference) = match db.reference {
            DbReference::Max => (1, 1.0),
            DbReference::Value(r) => (0, r),
        };
        let (grid, block) = grid_for(batch * per_item);
        let launch = shim.launcher::<ToDb>("logmel_to_db");
        // SAFETY: as above.
        unsafe {
            launch(
                grid,
                block,
                ptr_mut(&mut mel),
                batch as i64,
                per_item as i64,
                ptr(&item_max),
                db.amin,
                is_max,
                reference,
                i32::from(db.top_db.is_some()),
                db.top_db.unwrap_or(0.0),
            )
        };
    }
    Array3::from_shape_vec((batch, n_mels, frames), payload(&mel, "mel").to_vec()).expect("shape")
}

#[test]
fn shim_kernels_equal_tessera_spectro() {
    let Some(shim) = shim::load("logmel") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for plan in plans() {
        let config = plan.gpu_plan_config();
        for (batch, samples) in [(1, 4096), (3, 5000), (2, 2049)] {
            let x = signals(&mut rng, batch, samples);
            let expected = cpu_only(&plan, &x);
            let found = shim_log_mel(&shim, &config, &x);
            assert_eq!(found.dim(), expected.dim());
            // Same frames, same FFT, same summation order and the same libm: equal up to a
            // rounding or two.
            let diff = crate::max_relative_difference(
                found.as_slice().expect("standard"),
                expected.as_slice().expect("standard"),
                1e-3,
            );
            assert!(
                diff <= 1e-6,
                "n_fft {} batch {batch} samples {samples}: {diff}",
                config.n_fft
            );
        }
    }
}

#[test]
fn shim_max_propagates_an_overflowed_power() {
    let Some(shim) = shim::load("logmel") else {
        return;
    };
    let mut values = vec![1.0f32; 600];
    values[300] = f32::INFINITY;
    let values = guarded(&values);
    let (batch, per_item, chunks) = (2usize, 300usize, 300usize.div_ceil(MAX_CHUNK));
    let mut partial = poisoned(batch * chunks);
    let (grid, block) = grid_for(batch * chunks);
    let launch = shim.launcher::<PartialMax>("logmel_partial_max");
    // SAFETY: buffers sized as the kernel indexes them.
    unsafe {
        launch(
            grid,
            block,
            ptr(&values),
            batch as i64,
            per_item as i64,
            MAX_CHUNK as i64,
            chunks as i64,
            ptr_mut(&mut partial),
        )
    };
    let mut item_max = poisoned(batch);
    let launch = shim.launcher::<ItemMax>("logmel_item_max");
    // SAFETY: as above.
    unsafe {
        launch(
            1,
            256,
            ptr(&partial),
            batch as i64,
            chunks as i64,
            ptr_mut(&mut item_max),
        )
    };
    let maxima = payload(&item_max, "item_max");
    assert_eq!(maxima[0], 1.0);
    assert!(maxima[1].is_infinite());
}

#[test]
fn bad_configs_and_signals_are_errors_naming_the_parameter() {
    let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(22_050.0)).expect("plan");
    let good = plan.gpu_plan_config();
    good.check().expect("valid");
    let mut cases: Vec<(LogMelPlanConfig, &str)> = vec![
        (
            LogMelPlanConfig {
                hop_length: 0,
                ..good.clone()
            },
            "hop_length",
        ),
        (
            LogMelPlanConfig {
                window: vec![1.0; 3],
                ..good.clone()
            },
            "window",
        ),
        (
            LogMelPlanConfig {
                filterbank: Array2::zeros((4, 7)),
                ..good.clone()
            },
            "filterbank",
        ),
        (
            LogMelPlanConfig {
                power: -1.0,
                ..good.clone()
            },
            "power",
        ),
    ];
    let mut nan_window = good.clone();
    nan_window.window[5] = f32::NAN;
    cases.push((nan_window, "window"));
    let mut bad_db = good.clone();
    if let Some(db) = bad_db.db.as_mut() {
        db.amin = 0.0;
    }
    cases.push((bad_db, "amin"));
    for (config, name) in cases {
        let err = config.check().expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    let err = good.frame_count(0).expect_err("empty").to_string();
    assert!(err.contains("signals"), "{err}");
    let uncentred = LogMelPlanConfig {
        center: false,
        ..good.clone()
    };
    let err = uncentred.frame_count(100).expect_err("short").to_string();
    assert!(err.contains("signals") && err.contains("n_fft"), "{err}");
}

#[test]
fn device_log_mel_equals_tessera_spectro() {
    let Some(context) = crate::device() else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    for plan in plans() {
        let device_plan =
            tessera_gpu::LogMelPlan::new(&context, plan.gpu_plan_config()).expect("plan");
        for (batch, samples) in [(1, 4096), (5, 22_050), (2, 2049)] {
            let x = signals(&mut rng, batch, samples);
            let found = device_plan.compute_batch(&context, x.view()).expect("gpu");
            let expected = cpu_only(&plan, &x);
            let diff = crate::max_relative_difference(
                found.as_slice().expect("standard"),
                expected.as_slice().expect("standard"),
                1.0,
            );
            // cuFFT and realfft round differently; in decibels the difference stays tiny.
            assert!(diff <= 1e-5, "batch {batch} samples {samples}: {diff}");
        }
        let mut overflow = signals(&mut rng, 2, 4096);
        overflow[[1, 100]] = 3e38;
        let err = device_plan
            .compute_batch(&context, overflow.view())
            .expect_err("overflow");
        assert!(err.to_string().contains("signals"), "{err}");
    }
}

/// tessera-spectro's result computed on the CPU (its own `cuda` routing would otherwise send
/// the batch to the device under test).
fn cpu_only(plan: &LogMelSpectrogram<f32>, x: &Array2<f32>) -> Array3<f32> {
    let items: Vec<_> = x
        .outer_iter()
        .map(|row| plan.compute(row).expect("cpu"))
        .collect();
    let views: Vec<_> = items.iter().map(|a| a.view()).collect();
    ndarray::stack(ndarray::Axis(0), &views).expect("stack")
}
