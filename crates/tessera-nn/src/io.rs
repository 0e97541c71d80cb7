//! Saving and loading parameters as safetensors: an [`Mlp`]'s as `layers.{j}.weight`
//! `[out, in]` and `layers.{j}.bias` `[out]`, a [`Sequential`]'s parameters and buffers under
//! their names (`conv1.weight`, `bn1.running_var`); in the network's own precision.

use std::collections::HashMap;
use std::path::Path;
use tessera_core::{check, RejectInput};

use ndarray::{Axis, Slice};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::Mlp;
use crate::sequential::Sequential;
use crate::Float;

fn st_err(reason: impl ToString) -> Error {
    Error::Safetensors {
        reason: reason.to_string(),
    }
}

fn dtype_of<F: Float>() -> Dtype {
    if std::mem::size_of::<F>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

impl<F: Float> Mlp<F> {
    /// The parameters as a safetensors buffer (F32 for `f32` networks, F64 for `f64`).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let dtype = dtype_of::<F>();
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (j, layer) in self.layers().iter().enumerate() {
            for (name, range, shape) in [
                (
                    "weight",
                    layer.weight_range(),
                    vec![layer.fan_out, layer.fan_in],
                ),
                ("bias", layer.bias_range(), vec![layer.fan_out]),
            ] {
                let values = self.params().slice_axis_move(Axis(0), Slice::from(range));
                let bytes = encode(values.as_slice().expect("a range of a flat vector"), dtype);
                buffers.push((format!("layers.{j}.{name}"), shape, bytes));
            }
        }
        serialize(dtype, &buffers, "tessera-nn", self.num_layers().to_string())
    }

    /// Loads parameters from a safetensors buffer written for a network of the same
    /// architecture (F32 or F64 tensors; converted to this network's precision).
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let tensors = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let mut params = self.params().to_owned();
        for (j, layer) in self.layers().iter().enumerate() {
            for (name, range, shape) in [
                (
                    "weight",
                    layer.weight_range(),
                    vec![layer.fan_out, layer.fan_in],
                ),
                ("bias", layer.bias_range(), vec![layer.fan_out]),
            ] {
                let key = format!("layers.{j}.{name}");
                let view = tensors
                    .tensor(&key)
                    .map_err(|e| st_err(format!("tensor `{key}`: {e}")))?;
                if view.shape() != shape.as_slice() {
                    return Err(Error::shape(
                        "safetensors",
                        format!("`{key}` of shape {shape:?}"),
                        format!("{:?}", view.shape()),
                    ));
                }
                let values: Vec<F> = tensor_values(&view, &key)?;
                check::finite_values("safetensors", values.iter().copied())?;
                params
                    .slice_axis_mut(Axis(0), Slice::from(range))
                    .iter_mut()
                    .zip(values)
                    .for_each(|(p, v)| *p = v);
            }
        }
        self.set_params(params.view())
    }

    /// Writes [`Mlp::to_safetensors`] to `path`.
    pub fn save_safetensors_file(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), self.to_safetensors()?)
    }

    /// Reads parameters from a safetensors file (see [`Mlp::load_safetensors`]).
    pub fn load_safetensors_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_safetensors(&read_file(path.as_ref())?)
    }
}

fn write_file(path: &Path, bytes: Vec<u8>) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The safetensors buffer of `tensors` (name, shape, little-endian bytes of `dtype`), with the
/// metadata entries `format` and `layers`.
fn serialize(
    dtype: Dtype,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    format: &str,
    layers: String,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(st_err)?;
    let metadata = HashMap::from([
        ("format".to_string(), format.to_string()),
        ("layers".to_string(), layers),
    ]);
    safetensors::serialize(views, &Some(metadata)).map_err(st_err)
}

/// Little-endian bytes of `values` in `dtype` (F32 or F64).
fn encode<F: Float>(values: &[F], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values
            .iter()
            .flat_map(|v| (v.to_f64_exact() as f32).to_le_bytes())
            .collect(),
        _ => values
            .iter()
            .flat_map(|v| v.to_f64_exact().to_le_bytes())
            .collect(),
    }
}

/// The values of an F32 or F64 safetensors tensor (named `key` in errors), converted to `F`;
/// other dtypes are a [`Error::Safetensors`]. The one decoder of the workspace's checkpoints
/// (tessera-nn's models, tessera-spline's networks read from them).
pub fn tensor_values<F: Float>(view: &TensorView<'_>, key: &str) -> Result<Vec<F>> {
    match view.dtype() {
        Dtype::F32 => Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| F::from_f64_rounded(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect()),
        Dtype::F64 => Ok(view
            .data()
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                F::from_f64_rounded(f64::from_le_bytes(b))
            })
            .collect()),
        other => Err(st_err(format!(
            "tensor `{key}` has dtype {other:?}; expected F32 or F64"
        ))),
    }
}

impl<F: Float> Sequential<F> {
    /// The parameters and buffers as a safetensors buffer keyed by their names
    /// (`"conv1.weight"`, `"bn1.running_mean"`, PyTorch's `state_dict` keys), in the model's
    /// precision (F32 or F64).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let dtype = dtype_of::<F>();
        let params = self.params();
        let buffers = self.buffers();
        let params = params.as_slice().expect("owned vector");
        let buffers = buffers.as_slice().expect("owned vector");
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for e in self.parameter_layout() {
            tensors.push((e.name, e.shape, encode(&params[e.range], dtype)));
        }
        for e in self.buffer_layout() {
            tensors.push((e.name, e.shape, encode(&buffers[e.range], dtype)));
        }
        serialize(
            dtype,
            &tensors,
            "tessera-nn-sequential",
            self.names().join(","),
        )
    }

    /// Loads every parameter and buffer of this model from a safetensors buffer keyed by
    /// name (F32 or F64; extra tensors are ignored, a missing or misshapen one is an error and
    /// leaves the model unchanged).
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let tensors = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let read = |entries: Vec<crate::sequential::NamedRange>, len: usize| -> Result<Vec<F>> {
            let mut out = vec![F::zero(); len];
            for e in entries {
                let view = tensors
                    .tensor(&e.name)
                    .map_err(|err| st_err(format!("tensor `{}`: {err}", e.name)))?;
                if view.shape() != e.shape.as_slice() {
                    return Err(Error::shape(
                        "safetensors",
                        format!("`{}` of shape {:?}", e.name, e.shape),
                        format!("{:?}", view.shape()),
                    ));
                }
                let values = tensor_values::<F>(&view, &e.name)?;
                check::finite_values("safetensors", values.iter().copied())?;
                out[e.range].copy_from_slice(&values);
            }
            Ok(out)
        };
        let params = read(self.parameter_layout(), self.num_params())?;
        let buffers = read(self.buffer_layout(), self.num_buffers())?;
        self.set_params(ndarray::ArrayView1::from(&params))?;
        self.set_buffers(ndarray::ArrayView1::from(&buffers))
    }

    /// Writes [`Sequential::to_safetensors`] to `path`.
    pub fn save_safetensors_file(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), self.to_safetensors()?)
    }

    /// Reads parameters and buffers from a safetensors file (see
    /// [`Sequential::load_safetensors`]).
    pub fn load_safetensors_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_safetensors(&read_file(path.as_ref())?)
    }
}
