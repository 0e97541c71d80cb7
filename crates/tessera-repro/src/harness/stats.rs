//! Small statistics used by the verdicts: mean ± sample std, least-squares line, formatting.

/// Mean and sample standard deviation (divisor n − 1; 0 for one value; `(NaN, NaN)` for none).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (n - 1) as f64).sqrt())
}

/// Least-squares line `y ≈ slope·x + intercept` and its coefficient of determination `r²`
/// (1 when every `y` is equal and fitted exactly; NaN slope for fewer than two distinct `x`).
pub fn linear_fit(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len().min(y.len());
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let (x, y) = (&x[..n], &y[..n]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let syy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
    if sxx == 0.0 {
        return (f64::NAN, my, f64::NAN);
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    (slope, intercept, r2)
}

/// `"mean ± std"` with `digits` decimals (`"mean"` alone when std is 0 or NaN).
pub fn fmt_mean_std(mean: f64, std: f64, digits: usize) -> String {
    if std == 0.0 || std.is_nan() {
        format!("{mean:.digits$}")
    } else {
        format!("{mean:.digits$} ± {std:.digits$}")
    }
}

/// Median (mean of the two middle values for an even count; NaN for none). NaNs sort last.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Standard error of the difference of two means, `sqrt(s_a²/n_a + s_b²/n_b)` (Welch).
pub fn diff_std_error(a: &[f64], b: &[f64]) -> f64 {
    let (_, sa) = mean_std(a);
    let (_, sb) = mean_std(b);
    (sa * sa / a.len() as f64 + sb * sb / b.len() as f64).sqrt()
}

/// Paired comparison on the same units (seeds, examples): the mean of `other − base` and its
/// standard error `sd/√n` (sample standard deviation); NaN for no pairs, error 0 for one.
pub fn paired_difference(base: &[f64], other: &[f64]) -> (f64, f64) {
    let diffs: Vec<f64> = base.iter().zip(other).map(|(b, o)| o - b).collect();
    let (mean, std) = mean_std(&diffs);
    (mean, std / (diffs.len().max(1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, sample var 32/7.
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.5]), (3.5, 0.0));
        assert!(mean_std(&[]).0.is_nan());
    }

    #[test]
    fn linear_fit_by_hand() {
        // Exact line y = 2x + 1.
        let (s, i, r2) = linear_fit(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.0, 5.0, 7.0]);
        assert!((s - 2.0).abs() < 1e-12 && (i - 1.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
        // x = 1,2,3, y = 1,3,2: mx 2, my 2, sxx 2, sxy 1, syy 2 → slope 0.5, intercept 1,
        // r² = 1/(2·2) = 0.25.
        let (s, i, r2) = linear_fit(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]);
        assert!((s - 0.5).abs() < 1e-12);
        assert!((i - 1.0).abs() < 1e-12);
        assert!((r2 - 0.25).abs() < 1e-12);
        assert!(linear_fit(&[1.0, 1.0], &[1.0, 2.0]).0.is_nan());
    }

    #[test]
    fn formatting_and_median() {
        assert_eq!(fmt_mean_std(1.23456, 0.0456, 2), "1.23 ± 0.05");
        assert_eq!(fmt_mean_std(1.0, 0.0, 1), "1.0");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        // a: sample var 1 (n 3), b: sample var 4 (n 3) → sqrt(1/3 + 4/3).
        let se = diff_std_error(&[1.0, 2.0, 3.0], &[1.0, 3.0, 5.0]);
        assert!((se - (1.0f64 / 3.0 + 4.0 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn paired_difference_by_hand() {
        // other − base = [1, 0, −1, 1]: mean 0.25, sample variance (0.5625·2 + 0.0625 + 1.5625)/3.
        let (m, se) = paired_difference(&[0.0, 1.0, 1.0, 0.0], &[1.0, 1.0, 0.0, 1.0]);
        assert!((m - 0.25).abs() < 1e-12);
        let var = (0.75f64.powi(2) * 2.0 + 0.25f64.powi(2) + 1.25f64.powi(2)) / 3.0;
        assert!((se - (var / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!(paired_difference(&[1.0], &[3.0]), (2.0, 0.0));
        assert!(paired_difference(&[], &[]).0.is_nan());
    }
}
