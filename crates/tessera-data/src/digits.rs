//! The UCI optical handwritten digits (8×8, 1797 images), embedded in the crate.
//!
//! Data: E. Alpaydin and C. Kaynak, *Optical Recognition of Handwritten Digits*, UCI Machine
//! Learning Repository (1998), <https://doi.org/10.24432/C50P49>, licensed **CC BY 4.0**
//! (see `data/NOTICE.md`). This is the copy scikit-learn's `load_digits` returns, converted
//! by `data/make_digits.py` to a small binary file with a header and a CRC-32.

use ndarray::{Array2, Array4};

use crate::dataset::ImageDataset;
use crate::error::{Error, Result};
use crate::hash::crc32;

const DIGITS_BIN: &[u8] = include_bytes!("../data/digits.bin");
const MAGIC: &[u8; 8] = b"TSDIGIT1";
const HEADER_LEN: usize = 28;

/// Number of images in the embedded set.
pub const DIGITS_LEN: usize = 1797;

/// Raw digits: pixels as stored (0..=16) and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitsRaw {
    /// `(n_images, 64)`, one flattened 8×8 image per row (row-major), values `0..=max_value`.
    pub pixels: Array2<u8>,
    /// Digit of each image, `0..=9`.
    pub labels: Vec<usize>,
    /// Largest pixel value the encoding allows (16).
    pub max_value: u8,
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::CorruptDataset {
        name: "digits",
        reason: reason.into(),
    }
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Parses the binary layout written by `data/make_digits.py` (documented there), checking
/// the magic, the sizes, the CRC-32 and every pixel and label.
///
/// # Errors
/// [`Error::CorruptDataset`] naming what is wrong.
pub fn parse_digits(bytes: &[u8]) -> Result<DigitsRaw> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(corrupt(format!(
            "{} bytes is shorter than the header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt("bad magic (expected TSDIGIT1)"));
    }
    let body_len = bytes.len() - 4;
    let stored_crc = read_u32(bytes, body_len);
    let actual_crc = crc32(&bytes[..body_len]);
    if stored_crc != actual_crc {
        return Err(corrupt(format!(
            "CRC-32 mismatch: stored {stored_crc:08x}, computed {actual_crc:08x}"
        )));
    }
    let n = read_u32(bytes, 8) as usize;
    let height = read_u32(bytes, 12) as usize;
    let width = read_u32(bytes, 16) as usize;
    let n_classes = read_u32(bytes, 20) as usize;
    let max_value = read_u32(bytes, 24);
    if height != 8 || width != 8 || n_classes != 10 || max_value != 16 {
        return Err(corrupt(format!(
            "unexpected header: {height}x{width} images, {n_classes} classes, max {max_value}"
        )));
    }
    let pixel_len = n * height * width;
    if body_len != HEADER_LEN + pixel_len + n {
        return Err(corrupt(format!(
            "{} bytes of data for {n} images (expected {})",
            body_len - HEADER_LEN,
            pixel_len + n
        )));
    }
    let pixel_bytes = &bytes[HEADER_LEN..HEADER_LEN + pixel_len];
    if let Some(bad) = pixel_bytes.iter().find(|&&p| u32::from(p) > max_value) {
        return Err(corrupt(format!("pixel value {bad} > {max_value}")));
    }
    let labels: Vec<usize> = bytes[HEADER_LEN + pixel_len..body_len]
        .iter()
        .map(|&l| usize::from(l))
        .collect();
    if let Some(bad) = labels.iter().find(|&&l| l >= n_classes) {
        return Err(corrupt(format!("label {bad} >= {n_classes}")));
    }
    let pixels = Array2::from_shape_vec((n, height * width), pixel_bytes.to_vec())
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(DigitsRaw {
        pixels,
        labels,
        max_value: max_value as u8,
    })
}

/// The embedded digits as stored (pixel values 0..=16).
///
/// # Errors
/// Only if the embedded file were corrupt (a build problem; tested).
pub fn digits_raw() -> Result<DigitsRaw> {
    parse_digits(DIGITS_BIN)
}

/// The embedded digits as an [`ImageDataset`] of shape `(1797, 1, 8, 8)`, pixels scaled to
/// $[0, 1]$ by dividing by 16; class names `"0"`…`"9"`.
///
/// # Errors
/// Only if the embedded file were corrupt.
pub fn load_digits() -> Result<ImageDataset> {
    let raw = digits_raw()?;
    let n = raw.labels.len();
    let scale = 1.0 / f32::from(raw.max_value);
    let images = Array4::from_shape_vec(
        (n, 1, 8, 8),
        raw.pixels.iter().map(|&p| f32::from(p) * scale).collect(),
    )
    .map_err(|e| corrupt(e.to_string()))?;
    Ok(ImageDataset {
        images,
        labels: raw.labels,
        class_names: (0..10).map(|d| d.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_loads() {
        let digits = load_digits().unwrap();
        assert_eq!(digits.images.dim(), (DIGITS_LEN, 1, 8, 8));
        assert_eq!(digits.n_classes(), 10);
        // sklearn's load_digits: the first ten targets are 0..9.
        assert_eq!(digits.labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(digits.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }

    #[test]
    fn corruption_is_detected() {
        let mut bytes = DIGITS_BIN.to_vec();
        bytes[HEADER_LEN + 100] ^= 0x01;
        let err = parse_digits(&bytes).unwrap_err().to_string();
        assert!(err.contains("CRC-32"), "{err}");

        let err = parse_digits(&DIGITS_BIN[..20]).unwrap_err().to_string();
        assert!(err.contains("shorter"), "{err}");

        let mut bytes = DIGITS_BIN.to_vec();
        bytes[0] = b'X';
        assert!(parse_digits(&bytes)
            .unwrap_err()
            .to_string()
            .contains("magic"));

        // A truncated body with a recomputed checksum still fails on the size check.
        let mut bytes = DIGITS_BIN[..DIGITS_BIN.len() - 10].to_vec();
        let crc = crc32(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let err = parse_digits(&bytes).unwrap_err().to_string();
        assert!(err.contains("bytes of data"), "{err}");
    }
}
