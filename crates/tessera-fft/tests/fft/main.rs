//! The plans against a direct O(n²) DFT, for both scalar types and lengths with every kind of
//! factor (powers of two, odd primes, mixed), and the zero-length error.

use approx::assert_relative_eq;
use tessera_fft::rustfft::num_complex::Complex;

fn signal(len: usize) -> Vec<f64> {
    (0..len)
        .map(|t| ((t * 7 + 3) % 11) as f64 - 4.5 + (t as f64 * 0.37).sin())
        .collect()
}

fn direct_dft(x: &[Complex<f64>], sign: f64) -> Vec<Complex<f64>> {
    let n = x.len();
    (0..n)
        .map(|k| {
            x.iter()
                .enumerate()
                .fold(Complex::new(0.0, 0.0), |acc, (t, &value)| {
                    let angle = sign * 2.0 * std::f64::consts::PI * ((t * k) % n) as f64 / n as f64;
                    acc + value * Complex::new(angle.cos(), angle.sin())
                })
        })
        .collect()
}

const LENGTHS: [usize; 9] = [1, 2, 3, 8, 13, 30, 64, 97, 400];

#[test]
fn real_forward_matches_the_direct_dft_in_f64_and_f32() {
    for len in LENGTHS {
        let x = signal(len);
        let complex_x: Vec<_> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
        let expected = direct_dft(&complex_x, -1.0);
        let scale = x.iter().map(|v| v.abs()).sum::<f64>();

        let plan = tessera_fft::real_forward::<f64>(len).unwrap();
        let mut input = x.clone();
        let mut output = vec![Complex::new(0.0, 0.0); len / 2 + 1];
        plan.process(&mut input, &mut output).unwrap();
        for (got, want) in output.iter().zip(&expected) {
            assert_relative_eq!(got.re, want.re, epsilon = 1e-12 * scale);
            assert_relative_eq!(got.im, want.im, epsilon = 1e-12 * scale);
        }

        let plan = tessera_fft::real_forward::<f32>(len).unwrap();
        let mut input: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut output = vec![Complex::new(0.0f32, 0.0); len / 2 + 1];
        plan.process(&mut input, &mut output).unwrap();
        for (got, want) in output.iter().zip(&expected) {
            assert_relative_eq!(f64::from(got.re), want.re, epsilon = 1e-5 * scale);
            assert_relative_eq!(f64::from(got.im), want.im, epsilon = 1e-5 * scale);
        }
    }
}

#[test]
fn real_inverse_undoes_real_forward_times_the_length() {
    for len in LENGTHS {
        let x = signal(len);
        let forward = tessera_fft::real_forward::<f64>(len).unwrap();
        let inverse = tessera_fft::real_inverse::<f64>(len).unwrap();
        let mut input = x.clone();
        let mut spectrum = vec![Complex::new(0.0, 0.0); len / 2 + 1];
        forward.process(&mut input, &mut spectrum).unwrap();
        let mut back = vec![0.0; len];
        inverse.process(&mut spectrum, &mut back).unwrap();
        for (got, want) in back.iter().zip(&x) {
            assert_relative_eq!(got / len as f64, *want, epsilon = 1e-12 * len as f64);
        }
    }
}

#[test]
fn complex_plans_match_the_direct_dft_in_both_directions() {
    for len in LENGTHS {
        let x: Vec<Complex<f64>> = signal(len)
            .iter()
            .zip(signal(len + 1).iter().skip(1))
            .map(|(&re, &im)| Complex::new(re, im))
            .collect();
        for (sign, plan) in [
            (-1.0, tessera_fft::forward::<f64>(len).unwrap()),
            (1.0, tessera_fft::inverse::<f64>(len).unwrap()),
        ] {
            let expected = direct_dft(&x, sign);
            let mut buffer = x.clone();
            plan.process(&mut buffer);
            for (got, want) in buffer.iter().zip(&expected) {
                assert_relative_eq!(got.re, want.re, epsilon = 1e-11 * len as f64);
                assert_relative_eq!(got.im, want.im, epsilon = 1e-11 * len as f64);
            }
        }
        let plan = tessera_fft::forward::<f32>(len).unwrap();
        let mut buffer: Vec<Complex<f32>> = x
            .iter()
            .map(|c| Complex::new(c.re as f32, c.im as f32))
            .collect();
        plan.process(&mut buffer);
        for (got, want) in buffer.iter().zip(&direct_dft(&x, -1.0)) {
            assert_relative_eq!(f64::from(got.re), want.re, epsilon = 1e-4 * len as f64);
        }
        assert_eq!(tessera_fft::inverse::<f32>(len).unwrap().len(), len);
    }
}

#[test]
fn plans_of_one_length_on_one_thread_share_their_tables() {
    let first = tessera_fft::real_forward::<f32>(256).unwrap();
    let second = tessera_fft::real_forward::<f32>(256).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &second));
}

#[test]
fn a_zero_length_is_an_error_naming_the_length() {
    let message = tessera_fft::real_forward::<f32>(0)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("len"), "{message}");
    assert!(tessera_fft::real_inverse::<f64>(0).is_err());
    assert!(tessera_fft::forward::<f64>(0).is_err());
    assert!(tessera_fft::inverse::<f32>(0).is_err());
}

#[test]
fn a_huge_length_is_an_error_before_anything_is_allocated() {
    for len in [tessera_fft::MAX_LEN + 1, usize::MAX] {
        let message = tessera_fft::real_forward::<f64>(len)
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("len"), "{message}");
        assert!(tessera_fft::real_inverse::<f32>(len).is_err());
        assert!(tessera_fft::forward::<f64>(len).is_err());
        assert!(tessera_fft::inverse::<f32>(len).is_err());
    }
}
