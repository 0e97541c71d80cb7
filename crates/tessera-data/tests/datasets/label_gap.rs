//! The synthetic keyword task is hard enough that 10% of the labels is clearly worse than
//! all of them: simple log band-energy statistics (computed here with realfft) and a
//! multinomial logistic regression (written here), fixed seeds.

use ndarray::{Array1, Array2, ArrayView1, Axis};
use tessera_data::{stratified_split, KeywordConfig, SyntheticKeywords};

const N_FFT: usize = 512;
const HOP: usize = 256;
const N_BANDS: usize = 24;

/// Log energies in `N_BANDS` bands equally spaced on the mel scale, one row per frame.
fn log_band_energies(signal: ArrayView1<f32>, sample_rate: f64) -> Array2<f64> {
    let fft = tessera_fft::real_forward::<f64>(N_FFT).unwrap();
    let n_frames = 1 + (signal.len() - N_FFT) / HOP;
    let mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let (lo, hi) = (mel(80.0), mel(0.45 * sample_rate));
    let band_of_bin: Vec<Option<usize>> = (0..=N_FFT / 2)
        .map(|k| {
            let position = (mel(k as f64 * sample_rate / N_FFT as f64) - lo) / (hi - lo);
            (0.0..1.0)
                .contains(&position)
                .then_some((position * N_BANDS as f64) as usize)
        })
        .collect();
    let window: Vec<f64> = (0..N_FFT)
        .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
        .collect();
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut out = Array2::<f64>::zeros((n_frames, N_BANDS));
    for frame in 0..n_frames {
        for (n, x) in input.iter_mut().enumerate() {
            *x = f64::from(signal[frame * HOP + n]) * window[n];
        }
        fft.process(&mut input, &mut spectrum).unwrap();
        for (k, bin) in spectrum.iter().enumerate() {
            if let Some(band) = band_of_bin[k] {
                out[[frame, band]] += bin.norm_sqr();
            }
        }
    }
    out.mapv_inplace(|e| (e + 1e-9).ln());
    out
}

/// Per band: mean, standard deviation and maximum over time of the log energy, and the
/// band's energy-weighted time centroid relative to the clip's (which tells an up-chirp
/// from a down-chirp whatever the onset).
fn clip_features(signal: ArrayView1<f32>, sample_rate: f64) -> Array1<f64> {
    let bands = log_band_energies(signal, sample_rate);
    let n_frames = bands.nrows() as f64;
    let linear = bands.mapv(f64::exp);
    let frame_energy = linear.sum_axis(Axis(1));
    let centroid = |weights: ArrayView1<f64>| {
        weights
            .iter()
            .enumerate()
            .map(|(t, w)| t as f64 * w)
            .sum::<f64>()
            / weights.sum().max(1e-12)
            / n_frames
    };
    let global_centroid = centroid(frame_energy.view());
    let mut features = Vec::with_capacity(4 * N_BANDS);
    for band in 0..N_BANDS {
        let column = bands.column(band);
        let mean = column.mean().unwrap();
        features.push(mean);
        features.push(column.std(0.0));
        features.push(column.fold(f64::MIN, |a, &b| a.max(b)));
        features.push(centroid(linear.column(band)) - global_centroid);
    }
    Array1::from(features)
}

fn features_of(generator: &SyntheticKeywords) -> (Array2<f64>, Vec<usize>) {
    let data = generator.generate();
    let rows: Vec<Array1<f64>> = data
        .clips
        .outer_iter()
        .map(|clip| clip_features(clip, f64::from(data.sample_rate)))
        .collect();
    let mut x = Array2::zeros((rows.len(), rows[0].len()));
    for (mut row, features) in x.outer_iter_mut().zip(rows) {
        row.assign(&features);
    }
    (x, data.labels)
}

/// Multinomial logistic regression, full-batch gradient descent with L2, on standardised
/// features; returns the test accuracy.
fn logistic_regression_accuracy(
    train_x: &Array2<f64>,
    train_y: &[usize],
    test_x: &Array2<f64>,
    test_y: &[usize],
    n_classes: usize,
) -> f64 {
    let mean = train_x.mean_axis(Axis(0)).unwrap();
    let std = train_x.std_axis(Axis(0), 0.0).mapv(|s| s.max(1e-6));
    let standardise = |x: &Array2<f64>| (x - &mean) / &std;
    let (xtr, xte) = (standardise(train_x), standardise(test_x));
    let (n, d) = xtr.dim();
    let mut onehot = Array2::<f64>::zeros((n, n_classes));
    for (i, &y) in train_y.iter().enumerate() {
        onehot[[i, y]] = 1.0;
    }
    let mut weights = Array2::<f64>::zeros((d, n_classes));
    let mut bias = Array1::<f64>::zeros(n_classes);
    let softmax = |logits: &mut Array2<f64>| {
        for mut row in logits.outer_iter_mut() {
            let max = row.fold(f64::MIN, |a, &b| a.max(b));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
        }
    };
    let (learning_rate, l2) = (0.5, 1e-3);
    for _ in 0..400 {
        let mut probabilities = xtr.dot(&weights) + &bias;
        softmax(&mut probabilities);
        let residual = (probabilities - &onehot) / n as f64;
        let gradient = xtr.t().dot(&residual) + &weights * l2;
        weights -= &(gradient * learning_rate);
        bias -= &(residual.sum_axis(Axis(0)) * learning_rate);
    }
    let logits = xte.dot(&weights) + &bias;
    let correct = logits
        .outer_iter()
        .zip(test_y)
        .filter(|(row, &y)| {
            let predicted = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(c, _)| c)
                .unwrap();
            predicted == y
        })
        .count();
    correct as f64 / test_y.len() as f64
}

#[test]
fn ten_percent_of_the_labels_is_clearly_worse_than_all_of_them() {
    let n_classes = 10;
    let train = SyntheticKeywords::new(KeywordConfig {
        n_classes,
        clips_per_class: 40,
        seed: 11,
        ..KeywordConfig::default()
    })
    .unwrap();
    let test = SyntheticKeywords::new(KeywordConfig {
        n_classes,
        clips_per_class: 20,
        seed: 12_345,
        ..KeywordConfig::default()
    })
    .unwrap();
    let (train_x, train_y) = features_of(&train);
    let (test_x, test_y) = features_of(&test);

    let full = logistic_regression_accuracy(&train_x, &train_y, &test_x, &test_y, n_classes);
    let mut few_label_accuracies = Vec::new();
    for seed in 0..3 {
        let split = stratified_split(&train_y, n_classes, 0.1, seed).unwrap();
        let x = train_x.select(Axis(0), &split.labelled);
        let y: Vec<usize> = split.labelled.iter().map(|&i| train_y[i]).collect();
        few_label_accuracies.push(logistic_regression_accuracy(
            &x, &y, &test_x, &test_y, n_classes,
        ));
    }
    let few = few_label_accuracies.iter().sum::<f64>() / few_label_accuracies.len() as f64;
    println!(
        "accuracy with 100% labels: {full:.3}; with 10% labels: {few:.3} ({few_label_accuracies:?})"
    );
    // Learnable: far above chance (0.1) with every label...
    assert!(full > 0.75, "100%-label accuracy {full}");
    // ...and clearly harder with a tenth of them.
    assert!(full - few > 0.1, "gap {full} vs {few}");
    // Sanity: the first rows really are the features of distinct clips.
    assert!(train_x.row(0) != train_x.row(1));
}
