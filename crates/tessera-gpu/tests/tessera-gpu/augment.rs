//! Mixup and the spectrogram rectangle fills: kernels through the host shim against
//! tessera-augment, the device path when there is one, and input errors.

use ndarray::{Array, Array2, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_augment::{mix_items, CutOutSpec, ItemMasks, SpecAugment, SpecAugmentConfig};
use tessera_gpu::augment::{check_mixup, check_rectangles, RectangleLaunch};
use tessera_gpu::launch::grid_for;
use tessera_gpu::{DeviceTensor, Rectangle};

use crate::shim::{self, guarded, payload, poisoned, ptr, ptr_mut};

type Mixup = unsafe extern "C" fn(
    u32,
    u32,
    *const f32,
    *const f32,
    *const i64,
    *const f32,
    i64,
    i64,
    *mut f32,
);
type Fill =
    unsafe extern "C" fn(u32, u32, *mut f32, i64, i64, i32, i32, *const i32, *const i32, f32);

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-3.0..3.0))
}

/// tessera-augment's mixup of `x` with its items reordered by `partners`.
fn cpu_mixup(x: &ArrayD<f32>, partners: &[usize], lambdas: &[f32]) -> ArrayD<f32> {
    let partner_items = x.select(ndarray::Axis(0), partners);
    let targets = Array2::<f32>::zeros((partners.len(), 1));
    mix_items(
        x.view(),
        targets.view(),
        partner_items.view(),
        targets.view(),
        ndarray::ArrayView1::from(lambdas),
    )
    .expect("mix")
    .0
}

#[test]
fn shim_mixup_equals_tessera_augment() {
    let Some(shim) = shim::load("augment") else {
        return;
    };
    let launch = shim.launcher::<Mixup>("mixup");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for shape in [vec![1, 5], vec![4, 3, 7], vec![9, 1, 64, 33]] {
        let x = random(&mut rng, &shape);
        let batch = shape[0];
        let mut partners: Vec<usize> = (0..batch).collect();
        partners.reverse();
        let lambdas: Vec<f32> = (0..batch).map(|_| rng.random_range(0.0..=1.0)).collect();
        let (_, per_item) = check_mixup(&shape, &shape, &partners, &lambdas).expect("valid");
        let input = guarded(x.as_slice().expect("standard"));
        let wide: Vec<i64> = partners.iter().map(|&p| p as i64).collect();
        let lambda_buffer = guarded(&lambdas);
        let mut out = poisoned(x.len());
        let (grid, block) = grid_for(x.len());
        // SAFETY: every buffer has the size the kernel indexes (batch × per_item values,
        // batch partners and lambdas).
        unsafe {
            launch(
                grid,
                block,
                ptr(&input),
                ptr(&input),
                wide.as_ptr(),
                ptr(&lambda_buffer),
                batch as i64,
                per_item as i64,
                ptr_mut(&mut out),
            )
        };
        let expected = cpu_mixup(&x, &partners, &lambdas);
        assert_eq!(
            payload(&out, "out"),
            expected.as_slice().expect("standard"),
            "{shape:?}"
        );
    }
}

fn shim_fill(
    shim: &shim::Shim,
    x: &ArrayD<f32>,
    rectangles: &[Vec<Rectangle>],
    fill: f32,
) -> Vec<f32> {
    let launch = shim.launcher::<Fill>("fill_rectangles");
    let RectangleLaunch {
        batch,
        planes,
        n_freq,
        n_time,
        rects,
        offsets,
    } = check_rectangles(x.shape(), rectangles, fill).expect("valid");
    let mut values = guarded(x.as_slice().expect("standard"));
    let (grid, block) = grid_for(x.len());
    // SAFETY: values holds batch × planes × n_freq × n_time values, offsets batch + 1
    // entries into rects (4 ints per rectangle).
    unsafe {
        launch(
            grid,
            block,
            ptr_mut(&mut values),
            batch as i64,
            planes as i64,
            n_freq as i32,
            n_time as i32,
            rects.as_ptr(),
            offsets.as_ptr(),
            fill,
        )
    };
    payload(&values, "values").to_vec()
}

#[test]
fn shim_spec_augment_equals_tessera_augment() {
    let Some(shim) = shim::load("augment") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let augment = SpecAugment::new(SpecAugmentConfig {
        n_time_masks: 2,
        max_time_width: 9,
        n_freq_masks: 2,
        max_freq_width: 5,
        fill_value: -80.0,
    })
    .expect("config");
    for (batch, n_freq, n_time) in [(1, 1, 1), (3, 16, 40), (5, 64, 257)] {
        let x = random(&mut rng, &[batch, n_freq, n_time]);
        let lengths: Vec<usize> = (0..batch)
            .map(|i| n_time - (i * 3).min(n_time - 1))
            .collect();
        let masks = augment
            .sample_masks(batch, n_freq, n_time, Some(&lengths), &mut rng)
            .expect("masks");
        let x3 = x
            .clone()
            .into_dimensionality::<ndarray::Ix3>()
            .expect("3-d");
        let expected = augment.apply_masks(x3.view(), &masks).expect("cpu");
        let rectangles: Vec<Vec<Rectangle>> = masks.iter().map(|m| m.rectangles(n_freq)).collect();
        let found = shim_fill(&shim, &x, &rectangles, -80.0);
        assert_eq!(
            found,
            expected.as_slice().expect("standard"),
            "{batch}×{n_freq}×{n_time}"
        );
    }
}

#[test]
fn shim_cutout_equals_tessera_augment_across_channels() {
    let Some(shim) = shim::load("augment") else {
        return;
    };
    let cutout = CutOutSpec::sslh_strong();
    for (seed, shape) in [(1u64, [2usize, 3, 16, 20]), (2, [7, 1, 64, 33])] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random(&mut rng, &shape);
        let mut draw = ChaCha8Rng::seed_from_u64(seed + 100);
        let expected = cutout.apply_batch(x.view(), &mut draw).expect("cpu");
        let mut draw = ChaCha8Rng::seed_from_u64(seed + 100);
        let rectangles: Vec<Vec<Rectangle>> = (0..shape[0])
            .map(|_| vec![(&cutout.sample_box(shape[2], shape[3], &mut draw)).into()])
            .collect();
        let found = shim_fill(&shim, &x, &rectangles, cutout.fill_value() as f32);
        assert_eq!(found, expected.as_slice().expect("standard"), "{shape:?}");
    }
}

#[test]
fn bad_mixup_and_rectangles_are_errors_naming_the_parameter() {
    let shape = [3usize, 4];
    let cases = [
        (
            check_mixup(&shape, &[3, 5], &[0, 1, 2], &[0.5; 3]).err(),
            "other",
        ),
        (
            check_mixup(&shape, &shape, &[0, 1], &[0.5; 3]).err(),
            "partners",
        ),
        (
            check_mixup(&shape, &shape, &[0, 1, 3], &[0.5; 3]).err(),
            "partners",
        ),
        (
            check_mixup(&shape, &shape, &[0, 1, 2], &[0.5, 1.5, 0.0]).err(),
            "lambdas",
        ),
        (
            check_mixup(&shape, &shape, &[0, 1, 2], &[0.5, f32::NAN, 0.0]).err(),
            "lambdas",
        ),
        (check_mixup(&[0, 4], &[0, 4], &[], &[]).err(), "inputs"),
    ];
    for (err, name) in cases {
        let text = err.expect(name).to_string();
        assert!(text.contains(name), "{name}: {text}");
    }
    let ok = vec![vec![Rectangle {
        freq: 0..2,
        time: 0..2,
    }]];
    let outside = vec![vec![Rectangle {
        freq: 0..5,
        time: 0..2,
    }]];
    let reversed = vec![vec![Rectangle {
        freq: 0..2,
        time: std::ops::Range { start: 3, end: 1 },
    }]];
    for (shape, rects, fill, name) in [
        (vec![1, 4, 4], &outside, 0.0, "rectangles"),
        (vec![1, 4, 4], &reversed, 0.0, "rectangles"),
        (vec![2, 4, 4], &ok, 0.0, "rectangles"),
        (vec![1, 4, 4], &ok, f32::INFINITY, "fill"),
        (vec![4, 4], &ok, 0.0, "spectrograms"),
    ] {
        let text = check_rectangles(&shape, rects, fill)
            .expect_err(name)
            .to_string();
        assert!(text.contains(name), "{name}: {text}");
    }
}

#[test]
fn device_augmentations_equal_tessera_augment() {
    let Some(context) = crate::device() else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(crate::fresh_seed());
    let x = random(&mut rng, &[6, 2, 64, 101]);
    let device_x = DeviceTensor::from_host(&context, x.view()).expect("upload");
    let mixup = tessera_augment::Mixup::new(
        0.4,
        tessera_augment::LambdaRule::MixMatch,
        tessera_augment::LambdaScope::PerItem,
    )
    .expect("mixup");
    let targets = Array2::from_shape_fn((6, 3), |(i, j)| f32::from(i % 3 == j));
    let seed = rng.random::<u64>();
    let on_device = mixup
        .mix_batch_device(
            &context,
            &device_x,
            targets.view(),
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
        .expect("gpu");
    let on_cpu = mixup
        .mix_batch(
            x.view(),
            targets.view(),
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
        .expect("cpu");
    assert_eq!(on_device.permutation, on_cpu.permutation);
    let found = on_device.inputs.to_host(&context).expect("download");
    let diff = crate::max_relative_difference(
        found.as_slice().expect("std"),
        on_cpu.inputs.as_slice().expect("std"),
        1.0,
    );
    assert!(diff <= 1e-6, "mixup: {diff}");
    assert_eq!(on_device.targets, on_cpu.targets);

    let cutout = CutOutSpec::sslh_strong();
    let mut on_device = DeviceTensor::from_host(&context, x.view()).expect("upload");
    cutout
        .apply_batch_device(
            &context,
            &mut on_device,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
        .expect("gpu");
    let expected = cutout
        .apply_batch(x.view(), &mut ChaCha8Rng::seed_from_u64(seed))
        .expect("cpu");
    assert_eq!(on_device.to_host(&context).expect("download"), expected);

    let masks: Vec<ItemMasks> = SpecAugment::new(SpecAugmentConfig::default())
        .expect("config")
        .sample_masks(6, 64, 101, None, &mut rng)
        .expect("masks");
    let augment = SpecAugment::new(SpecAugmentConfig::default()).expect("config");
    let x3 = random(&mut rng, &[6, 64, 101]);
    let mut on_device = DeviceTensor::from_host(&context, x3.view()).expect("upload");
    augment
        .apply_masks_device(&context, &mut on_device, &masks)
        .expect("gpu");
    let expected = augment
        .apply_masks(x3.view().into_dimensionality().expect("3-d"), &masks)
        .expect("cpu");
    assert_eq!(
        on_device.to_host(&context).expect("download"),
        expected.into_dyn()
    );
}
