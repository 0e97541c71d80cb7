//! The batch path splits clips over the rayon pool: the result must not depend on the pool size
//! (issue 12: bit-identical results for 1, 2 and 4 threads).

use ndarray::Array2;
use tessera_spectro::{LogMelConfig, LogMelSpectrogram};
use tessera_testing::in_rayon_pool;

#[test]
fn batch_log_mel_is_bit_identical_for_1_2_and_4_threads() {
    let sr = 16000.0;
    // Five clips (not a multiple of the thread counts), each with its own loudness, so the
    // per-clip dB reference and top_db matter.
    let clips = Array2::from_shape_fn((5, 4000), |(c, i)| {
        let t = i as f32 / sr as f32;
        (c as f32 + 1.0) * 0.1 * (2.0 * std::f32::consts::PI * (220.0 * (c + 1) as f32) * t).sin()
            + 0.01 * ((i * 7919 + c * 104729) % 1000) as f32 / 1000.0
    });
    let log_mel = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(sr)).unwrap();
    let one = in_rayon_pool(1, || log_mel.compute_batch(clips.view()).unwrap());
    for threads in [2, 4] {
        let many = in_rayon_pool(threads, || log_mel.compute_batch(clips.view()).unwrap());
        assert_eq!(one.shape(), many.shape());
        assert!(
            one.iter()
                .zip(many.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads changed the bits"
        );
    }
}
