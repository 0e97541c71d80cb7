use ndarray::Array1;
use realfft::RealFftPlanner;
use std::time::Instant;
use tessera_spectro::*;
fn main() {
    let x = Array1::from_shape_fn(220500, |i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5);
    let mel = MelSpectrogram::<f32>::new(MelConfig::librosa(22050.0)).unwrap();
    let log = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(22050.0)).unwrap();
    let stft = Stft::<f32>::new(StftConfig {
        hop_length: Some(512),
        ..StftConfig::new(2048)
    })
    .unwrap();
    let reps = 40;
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(log.compute(x.view()).unwrap());
    }
    println!(
        "logmel {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(mel.compute(x.view()).unwrap());
    }
    println!(
        "mel {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(stft.compute(x.view()).unwrap());
    }
    println!(
        "stft {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(2048);
    let mut i = fft.make_input_vec();
    let mut o = fft.make_output_vec();
    let mut s = fft.make_scratch_vec();
    let t = Instant::now();
    for _ in 0..reps * 431 {
        fft.process_with_scratch(&mut i, &mut o, &mut s).unwrap();
        std::hint::black_box(&o);
    }
    println!(
        "431 ffts {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}
