//! Bad input gives an `Err` naming the parameter, never a panic or garbage.

use ndarray::{Array1, Array2, Array3, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_augment::InputError;
use tessera_augment::{
    AugmentPool, ClassWiseConvolution, CutMix, CutOutSpec, EfficientTrainSchedule, Error,
    FourierCrop, Gain, LambdaRule, LambdaScope, Mixup, Occlusion, PoisonedDataset, SpecAugment,
    SpeedPerturbation,
};

fn names(err: Error, name: &str) {
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{name}`")),
        "error does not name `{name}`: {text}"
    );
}

#[test]
fn alpha_must_be_positive_and_finite() {
    for alpha in [0.0, -0.5, f64::NAN, f64::INFINITY] {
        names(
            Mixup::new(alpha, LambdaRule::MixMatch, LambdaScope::PerItem).unwrap_err(),
            "alpha",
        );
        names(
            CutMix::new(alpha, LambdaScope::PerBatch).unwrap_err(),
            "alpha",
        );
    }
}

#[test]
fn crop_larger_than_image_is_rejected() {
    names(
        FourierCrop::<f64>::new(crate::crop_config(32, 32, 33, 16)).unwrap_err(),
        "out_height",
    );
    names(
        FourierCrop::<f64>::new(crate::crop_config(32, 32, 16, 40)).unwrap_err(),
        "out_width",
    );
    names(
        FourierCrop::<f64>::new(crate::crop_config(0, 32, 0, 16)).unwrap_err(),
        "height",
    );
    let plan = FourierCrop::<f64>::new(crate::crop_config(8, 8, 4, 4)).unwrap();
    names(
        plan.crop_batch(Array4::zeros((2, 3, 8, 9)).view())
            .unwrap_err(),
        "images",
    );
}

#[test]
fn mismatched_batches_are_rejected() {
    let mixup = Mixup::new(0.75, LambdaRule::Plain, LambdaScope::PerItem).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x4 = Array2::<f32>::zeros((4, 3));
    let x5 = Array2::<f32>::zeros((5, 3));
    let y4 = Array2::<f32>::zeros((4, 2));
    let y5 = Array2::<f32>::zeros((5, 2));
    names(
        mixup
            .mix_with(x4.view(), y4.view(), x5.view(), y5.view(), &mut rng)
            .unwrap_err(),
        "inputs_b",
    );
    names(
        mixup.mix_batch(x4.view(), y5.view(), &mut rng).unwrap_err(),
        "targets_a",
    );
    let y4b = Array2::<f32>::zeros((4, 3));
    names(
        mixup
            .mix_with(x4.view(), y4.view(), x4.view(), y4b.view(), &mut rng)
            .unwrap_err(),
        "targets_b",
    );
    let conv = ClassWiseConvolution::paper(1);
    names(
        conv.apply_batch(Array4::<f32>::zeros((3, 1, 4, 4)).view(), &[0, 1])
            .unwrap_err(),
        "labels",
    );
    let spec = SpecAugment::new(tessera_augment::SpecAugmentConfig {
        n_time_masks: 1,
        max_time_width: 4,
        n_freq_masks: 1,
        max_freq_width: 4,
        fill_value: 0.0,
    })
    .unwrap();
    names(
        spec.apply_batch(Array3::<f32>::zeros((2, 4, 8)).view(), Some(&[8]), &mut rng)
            .unwrap_err(),
        "valid_lengths",
    );
}

#[test]
fn non_finite_values_are_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut x = Array2::<f64>::zeros((3, 4));
    x[[2, 1]] = f64::NAN;
    let y = Array2::<f64>::zeros((3, 2));
    let mixup = Mixup::new(0.75, LambdaRule::Plain, LambdaScope::PerItem).unwrap();
    let err = mixup.mix_batch(x.view(), y.view(), &mut rng).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Input(InputError::NonFinite {
                name: "inputs_a",
                index: 9,
                ..
            })
        ),
        "{err}"
    );
    let mut spec = Array3::<f64>::zeros((2, 4, 5));
    spec[[1, 0, 0]] = f64::NEG_INFINITY;
    names(
        CutOutSpec::sslh_weak()
            .apply_batch(spec.view(), &mut rng)
            .unwrap_err(),
        "spectrograms",
    );
    let mut wave = Array1::<f64>::zeros(10);
    wave[3] = f64::INFINITY;
    names(
        Occlusion::sslh_weak()
            .apply(wave.view(), &mut rng)
            .unwrap_err(),
        "waveform",
    );
    names(
        SpeedPerturbation::sslh_weak()
            .apply(wave.view(), &mut rng)
            .unwrap_err(),
        "waveform",
    );
    let mut image = Array3::<f32>::zeros((1, 4, 4));
    image[[0, 1, 1]] = f32::NAN;
    names(
        ClassWiseConvolution::paper(3)
            .apply(image.view(), 0)
            .unwrap_err(),
        "image",
    );
    names(
        FourierCrop::<f32>::new(crate::crop_config(4, 4, 2, 2))
            .unwrap()
            .crop(image.view())
            .unwrap_err(),
        "image",
    );
    names(
        CutOutSpec::new((0.1, 0.5), (0.1, 0.5), f64::NAN).unwrap_err(),
        "fill_value",
    );
    names(Gain::new((f64::NAN, 1.0)).unwrap_err(), "gain_db");
}

#[test]
fn probabilities_and_fractions_outside_unit_interval_are_rejected() {
    let pool = AugmentPool::sslh_weak();
    for p in [-0.1, 1.01, f64::NAN] {
        names(
            AugmentPool::new(pool.augments().to_vec(), p).unwrap_err(),
            "p",
        );
        names(
            PoisonedDataset::new(ClassWiseConvolution::paper(0), p, 10).unwrap_err(),
            "mix",
        );
        names(
            ClassWiseConvolution::new(tessera_augment::ClassWiseConvolutionConfig {
                key: 0,
                kernel_size: 3,
                blur_parameter: p,
                quantize: true,
            })
            .unwrap_err(),
            "blur_parameter",
        );
    }
    names(
        CutOutSpec::new((0.1, 1.5), (0.1, 0.5), -80.0).unwrap_err(),
        "freq_scales",
    );
    names(
        CutOutSpec::new((0.1, 0.5), (-0.1, 0.5), -80.0).unwrap_err(),
        "time_scales",
    );
    names(Occlusion::new((0.5, 0.2), 0.0).unwrap_err(), "scales");
    names(
        SpeedPerturbation::new((-1.0, 1.0), tessera_augment::Align::Random, 0.0).unwrap_err(),
        "rates",
    );
    names(
        EfficientTrainSchedule::new(3, 224).unwrap_err(),
        "total_epochs",
    );
}
