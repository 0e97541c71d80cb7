//! Saving and loading parameters as safetensors (`layers.{j}.weight` `[out, in]` and
//! `layers.{j}.bias` `[out]`, in the network's own precision).

use std::collections::HashMap;
use std::path::Path;
use tessera_core::{check, RejectInput};

use ndarray::{Axis, Slice};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::Mlp;
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
                let bytes: Vec<u8> = match dtype {
                    Dtype::F32 => values
                        .iter()
                        .flat_map(|v| (v.to_f64_exact() as f32).to_le_bytes())
                        .collect(),
                    _ => values
                        .iter()
                        .flat_map(|v| v.to_f64_exact().to_le_bytes())
                        .collect(),
                };
                buffers.push((format!("layers.{j}.{name}"), shape, bytes));
            }
        }
        let views = buffers
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(st_err)?;
        let metadata = HashMap::from([
            ("format".to_string(), "tessera-nn".to_string()),
            ("layers".to_string(), self.num_layers().to_string()),
        ]);
        safetensors::serialize(views, &Some(metadata)).map_err(st_err)
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
                let values: Vec<F> = match view.dtype() {
                    Dtype::F32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|c| {
                            F::from_f64_rounded(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                        })
                        .collect(),
                    Dtype::F64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            F::from_f64_rounded(f64::from_le_bytes(b))
                        })
                        .collect(),
                    other => {
                        return Err(st_err(format!(
                            "tensor `{key}` has dtype {other:?}; expected F32 or F64"
                        )))
                    }
                };
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
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads parameters from a safetensors file (see [`Mlp::load_safetensors`]).
    pub fn load_safetensors_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load_safetensors(&bytes)
    }
}
