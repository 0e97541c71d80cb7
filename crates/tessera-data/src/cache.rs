//! A disk cache of per-clip features (e.g. log-mel spectrograms) as `.npy` files.
//!
//! The cache is generic over the feature function — any
//! `Fn(ArrayView1<f32>) -> Result<Array2<f32>, E>` — so this crate does not depend on the
//! spectrogram code; e.g. with tessera-spectro:
//! `cache.get_or_compute(id, clip, |x| mel.compute(x))`.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_core::RejectInput;

use ndarray::{Array2, Array3, ArrayView1};
use ndarray_npy::{read_npy, write_npy};

use crate::dataset::AudioDataset;
use crate::error::{Error, Result};
use crate::hash::fnv1a64;

/// A folder of cached feature matrices, one `.npy` file per item key.
///
/// The folder is `root/<namespace>`: give each feature configuration its own namespace
/// (e.g. `"logmel-sslh-64"`), since the cache cannot see inside the feature function and
/// would otherwise return features computed with other settings.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
}

/// Keeps letters, digits, `-`, `_` and `.`; everything else becomes `_`.
fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl FeatureCache {
    /// Opens (creating if needed) the cache folder `root/<namespace>`.
    ///
    /// # Errors
    /// An empty namespace, or a folder that cannot be created.
    pub fn new(root: impl AsRef<Path>, namespace: &str) -> Result<Self> {
        if namespace.trim().is_empty() {
            return Err(Error::invalid(
                "namespace",
                format!("{namespace:?}"),
                "must name the feature configuration",
            ));
        }
        let dir = root.as_ref().join(sanitise(namespace));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self { dir })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`'s features: the key with unsafe characters replaced,
    /// followed by a hash of the exact key (so `a/b` and `a_b` do not collide).
    ///
    /// # Errors
    /// An empty key.
    pub fn path_for(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty() {
            return Err(Error::invalid("key", "\"\"", "must not be empty"));
        }
        let readable: String = sanitise(key).chars().take(120).collect();
        Ok(self
            .dir
            .join(format!("{readable}-{:016x}.npy", fnv1a64(key.as_bytes()))))
    }

    /// Whether `key` has cached features.
    pub fn contains(&self, key: &str) -> bool {
        self.path_for(key).is_ok_and(|path| path.is_file())
    }

    /// The cached features of `key`, or `None` if there are none.
    ///
    /// # Errors
    /// An empty key, or a cached file that cannot be read as a 2-D `f32` array: a bad
    /// header, a shape whose data does not match the file's size (checked before anything
    /// is allocated), or a non-finite value.
    pub fn get(&self, key: &str) -> Result<Option<Array2<f32>>> {
        let path = self.path_for(key)?;
        if !path.is_file() {
            return Ok(None);
        }
        let corrupt = |reason: String| Error::Cache {
            path: path.clone(),
            reason,
        };
        check_npy_size(&path).map_err(corrupt)?;
        let features: Array2<f32> =
            read_npy(&path).map_err(|e| corrupt(format!("cannot read a 2-D f32 array: {e}")))?;
        if let Some((index, value)) = features
            .iter()
            .enumerate()
            .find(|(_, value)| !value.is_finite())
        {
            return Err(corrupt(format!(
                "cached value {index} = {value} is not finite"
            )));
        }
        Ok(Some(features))
    }

    /// Stores `features` under `key`, atomically (written to a temporary file, then
    /// renamed), so a concurrent reader never sees a partial file.
    ///
    /// # Errors
    /// An empty key or a write failure.
    pub fn put(&self, key: &str, features: &Array2<f32>) -> Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path_for(key)?;
        let temporary = path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        write_npy(&temporary, features).map_err(|e| Error::Cache {
            path: temporary.clone(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&temporary, &path).map_err(|e| Error::io(&path, e))
    }

    /// The cached features of `key`; on a miss, computes them with `feature(signal)`,
    /// stores them and returns them.
    ///
    /// # Errors
    /// [`Error::Feature`] if `feature` fails or returns an empty or non-finite matrix (which
    /// is not cached), and the errors of [`get`](Self::get) and [`put`](Self::put).
    pub fn get_or_compute<F, E>(
        &self,
        key: &str,
        signal: ArrayView1<f32>,
        feature: F,
    ) -> Result<Array2<f32>>
    where
        F: Fn(ArrayView1<f32>) -> std::result::Result<Array2<f32>, E>,
        E: Display,
    {
        if let Some(hit) = self.get(key)? {
            return Ok(hit);
        }
        let failed = |reason: String| Error::Feature {
            key: key.to_string(),
            reason,
        };
        let features = feature(signal).map_err(|e| failed(e.to_string()))?;
        if features.is_empty() {
            return Err(failed(format!("empty feature matrix {:?}", features.dim())));
        }
        if features.iter().any(|x| !x.is_finite()) {
            return Err(failed("non-finite feature value".into()));
        }
        self.put(key, &features)?;
        Ok(features)
    }

    /// Features of every clip of `dataset` (keyed by `dataset.ids`, computed in parallel on
    /// a miss), stacked to `(n_items, rows, cols)`.
    ///
    /// # Errors
    /// As [`get_or_compute`](Self::get_or_compute), an empty or inconsistent dataset
    /// ([`AudioDataset::validate`]), duplicate ids, or items whose feature matrices differ in
    /// shape.
    pub fn compute_dataset<F, E>(&self, dataset: &AudioDataset, feature: F) -> Result<Array3<f32>>
    where
        F: Fn(ArrayView1<f32>) -> std::result::Result<Array2<f32>, E> + Sync,
        E: Display,
    {
        use rayon::prelude::*;
        if dataset.is_empty() {
            return Err(Error::invalid("dataset", "0 items", "must not be empty"));
        }
        // Checked here, not inside the rayon threads: inconsistent public fields and two
        // items sharing one cache entry are errors before any work starts.
        dataset.validate()?;
        let mut seen = std::collections::HashMap::with_capacity(dataset.ids.len());
        for (i, id) in dataset.ids.iter().enumerate() {
            let file = self.path_for(id)?;
            if let Some(first) = seen.insert(file, i) {
                return Err(Error::invalid(
                    "ids",
                    format!(
                        "ids[{first}] = {:?} and ids[{i}] = {id:?}",
                        dataset.ids[first]
                    ),
                    "must be unique (each item needs its own cache entry)",
                ));
            }
        }
        let matrices: Vec<Array2<f32>> = (0..dataset.len())
            .into_par_iter()
            .map(|i| self.get_or_compute(&dataset.ids[i], dataset.clip(i), &feature))
            .collect::<Result<_>>()?;
        let shape = matrices[0].dim();
        if let Some(i) = matrices.iter().position(|m| m.dim() != shape) {
            return Err(Error::Feature {
                key: dataset.ids[i].clone(),
                reason: format!(
                    "feature shape {:?} differs from the first item's {shape:?}",
                    matrices[i].dim()
                ),
            });
        }
        let mut stacked = Array3::zeros((matrices.len(), shape.0, shape.1));
        for (mut slot, matrix) in stacked.outer_iter_mut().zip(matrices) {
            slot.assign(&matrix);
        }
        Ok(stacked)
    }
}

/// The largest `.npy` header accepted, in bytes (NumPy writes 64–128; format 2 allows 4 GiB).
const MAX_NPY_HEADER: u64 = 1 << 16;

/// Reads the header of the `.npy` file at `path` and checks that it describes a C-order
/// little-endian `f32` array whose data is exactly the rest of the file, so that a header
/// claiming a huge shape is rejected before anything is allocated.
fn check_npy_size(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut prefix = [0u8; 12];
    file.read_exact(&mut prefix[..10])
        .map_err(|_| format!("{file_len} bytes is too short for a .npy header"))?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, header_start) = match prefix[6] {
        1 => (u64::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10u64),
        2 | 3 => {
            file.read_exact(&mut prefix[10..12])
                .map_err(|_| "truncated .npy header".to_string())?;
            let len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (u64::from(len), 12u64)
        }
        major => return Err(format!(".npy format version {major} is not supported")),
    };
    if header_len > MAX_NPY_HEADER || header_start + header_len > file_len {
        return Err(format!(
            "the header length {header_len} exceeds the file ({file_len} bytes) or the limit \
             {MAX_NPY_HEADER}"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|_| "truncated .npy header".to_string())?;
    let header = String::from_utf8_lossy(&header);
    let descr = npy_field(&header, "descr").ok_or("the header has no descr")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        return Err(format!("dtype {descr:?} is not little-endian f32 ('<f4')"));
    }
    let shape = npy_field(&header, "shape").ok_or("the header has no shape")?;
    let dims = shape
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format!("shape {shape:?} is not a tuple"))?;
    let dims: Vec<u64> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<u64>().map_err(|_| format!("shape entry {d:?}")))
        .collect::<std::result::Result<_, _>>()?;
    if dims.len() != 2 {
        return Err(format!("shape {dims:?} is not 2-D"));
    }
    let data_bytes = dims
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {dims:?} overflows"))?;
    let available = file_len - header_start - header_len;
    if data_bytes != available {
        return Err(format!(
            "the header's shape {dims:?} needs {data_bytes} data bytes, the file holds {available}"
        ));
    }
    Ok(())
}

/// The text after `'key':` in a `.npy` header dict, up to the next key (a tuple value is
/// kept whole).
fn npy_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?
        + key.len()
        + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start();
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        Some(&rest[..=end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(&rest[..end])
    }
}
