//! Safetensors interop: read a checkpoint's weight shapes as [`LayerShape`]s and write masks
//! as a safetensors file that PyTorch (`safetensors.torch.load_file`) or NumPy can load.

use std::path::Path;
use tessera_core::RejectInput;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::allocation::LayerShape;
use crate::error::{Error, Result};
use crate::mask::Mask;

/// The default tensor filter: weights only, i.e. tensors of rank ≥ 2 (linear and
/// convolution kernels); biases and normalisation scales/shifts are rank 1 and are skipped.
pub fn weights_only(_name: &str, dims: &[usize]) -> bool {
    dims.len() >= 2
}

fn st_error(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Safetensors {
        context: context.into(),
        message: e.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Tensor names and shapes of a serialized safetensors buffer, in storage order (the order
/// of the data offsets, which `safetensors.torch.save_file` chooses; ties by name).
fn tensor_infos(bytes: &[u8]) -> Result<Vec<(String, Dtype, Vec<usize>)>> {
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| st_error("header", format!("{e:?}")))?;
    let mut infos: Vec<(String, Dtype, Vec<usize>, usize)> = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.dtype, info.shape.clone(), info.data_offsets.0))
        .collect();
    infos.sort_by(|a, b| a.3.cmp(&b.3).then_with(|| a.0.cmp(&b.0)));
    Ok(infos.into_iter().map(|(n, d, s, _)| (n, d, s)).collect())
}

/// [`LayerShape`]s of the tensors in a serialized safetensors checkpoint that `filter`
/// (called with name and shape) accepts, e.g. [`weights_only`].
pub fn layer_shapes_from_bytes<P>(bytes: &[u8], filter: P) -> Result<Vec<LayerShape>>
where
    P: Fn(&str, &[usize]) -> bool,
{
    tensor_infos(bytes)?
        .into_iter()
        .filter(|(name, _, dims)| filter(name, dims))
        .map(|(name, _, dims)| LayerShape::new(name, &dims))
        .collect()
}

/// [`layer_shapes_from_bytes`] on the file at `path` (read whole into memory).
pub fn read_layer_shapes<P>(path: impl AsRef<Path>, filter: P) -> Result<Vec<LayerShape>>
where
    P: Fn(&str, &[usize]) -> bool,
{
    layer_shapes_from_bytes(&read_file(path.as_ref())?, filter)
}

/// Element type of the mask tensors written to safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskDtype {
    /// `BOOL` (`torch.bool`): one byte per entry, 0 or 1.
    Bool,
    /// `U8` (`torch.uint8`): one byte per entry, 0 or 1.
    U8,
}

/// Serializes one mask per layer: tensor name = layer name, shape = layer dims, one byte per
/// entry. Errors when the counts differ, two layers share a name, or a mask's length is not
/// the layer's size.
pub fn masks_to_bytes(layers: &[LayerShape], masks: &[Mask], dtype: MaskDtype) -> Result<Vec<u8>> {
    if layers.len() != masks.len() {
        return Err(Error::shape(
            "masks",
            format!("{} masks (one per layer)", layers.len()),
            format!("{} masks", masks.len()),
        ));
    }
    // safetensors keys are unique: a second layer of the same name is an error here, not an
    // index panic inside the serializer.
    let mut names = std::collections::HashSet::with_capacity(layers.len());
    if let Some(duplicate) = layers.iter().find(|l| !names.insert(l.name())) {
        return Err(Error::invalid(
            "layers",
            format!("two layers named `{}`", duplicate.name()),
            "layer names must be unique (they are the tensor names)",
        ));
    }
    let mut buffers = Vec::with_capacity(layers.len());
    for (layer, mask) in layers.iter().zip(masks) {
        if mask.len() != layer.numel() {
            return Err(Error::shape(
                "masks",
                format!(
                    "{} entries for `{}` {:?}",
                    layer.numel(),
                    layer.name(),
                    layer.dims()
                ),
                format!("{} entries", mask.len()),
            ));
        }
        buffers.push(
            mask.to_bools()
                .into_iter()
                .map(u8::from)
                .collect::<Vec<u8>>(),
        );
    }
    let st_dtype = match dtype {
        MaskDtype::Bool => Dtype::BOOL,
        MaskDtype::U8 => Dtype::U8,
    };
    let views = layers
        .iter()
        .zip(&buffers)
        .map(|(layer, bytes)| {
            TensorView::new(st_dtype, layer.dims().to_vec(), bytes)
                .map(|view| (layer.name().to_string(), view))
                .map_err(|e| st_error(format!("tensor `{}`", layer.name()), format!("{e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, &None)
        .map_err(|e| st_error("serialize", format!("{e:?}")))
}

/// Writes [`masks_to_bytes`] to `path`.
pub fn write_masks(
    path: impl AsRef<Path>,
    layers: &[LayerShape],
    masks: &[Mask],
    dtype: MaskDtype,
) -> Result<()> {
    let bytes = masks_to_bytes(layers, masks, dtype)?;
    let path = path.as_ref();
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads every tensor of a serialized safetensors buffer as a mask: `BOOL` and `U8` entries
/// must be 0 or 1, `F32` entries 0.0 or 1.0 (as Random_Pruning stores its masks). Returns
/// layers (name and shape) and masks in storage order.
pub fn masks_from_bytes(bytes: &[u8]) -> Result<Vec<(LayerShape, Mask)>> {
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| st_error("file", format!("{e:?}")))?;
    tensor_infos(bytes)?
        .into_iter()
        .map(|(name, dtype, dims)| {
            let view = tensors
                .tensor(&name)
                .map_err(|e| st_error(format!("tensor `{name}`"), format!("{e:?}")))?;
            let data = view.data();
            let keep: Vec<bool> = match dtype {
                Dtype::BOOL | Dtype::U8 => data
                    .iter()
                    .map(|&b| match b {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(other.to_string()),
                    })
                    .collect::<std::result::Result<_, _>>(),
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| {
                        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        if v == 0.0 {
                            Ok(false)
                        } else if v == 1.0 {
                            Ok(true)
                        } else {
                            Err(v.to_string())
                        }
                    })
                    .collect(),
                other => {
                    return Err(Error::invalid(
                        "dtype",
                        format!("{other:?} (tensor `{name}`)"),
                        "masks must be BOOL, U8 or F32",
                    ))
                }
            }
            .map_err(|value| {
                Error::invalid(
                    "mask",
                    format!("{value} (tensor `{name}`)"),
                    "mask entries must be 0 or 1",
                )
            })?;
            Ok((LayerShape::new(name, &dims)?, Mask::from_bools(&keep)))
        })
        .collect()
}

/// [`masks_from_bytes`] on the file at `path`.
pub fn read_masks(path: impl AsRef<Path>) -> Result<Vec<(LayerShape, Mask)>> {
    masks_from_bytes(&read_file(path.as_ref())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bool_and_u8() {
        let layers = vec![
            LayerShape::new("conv.weight", &[2, 1, 3, 3]).unwrap(),
            LayerShape::new("fc.weight", &[3, 4]).unwrap(),
        ];
        let masks = vec![
            Mask::from_bools(&(0..18).map(|i| i % 4 == 1).collect::<Vec<_>>()),
            Mask::from_bools(&(0..12).map(|i| i % 3 != 0).collect::<Vec<_>>()),
        ];
        for dtype in [MaskDtype::Bool, MaskDtype::U8] {
            let bytes = masks_to_bytes(&layers, &masks, dtype).unwrap();
            let back = masks_from_bytes(&bytes).unwrap();
            let mut back_sorted = back.clone();
            back_sorted.sort_by(|a, b| a.0.name().cmp(b.0.name()));
            assert_eq!(back_sorted[0].0, layers[0]);
            assert_eq!(back_sorted[0].1, masks[0]);
            assert_eq!(back_sorted[1].0, layers[1]);
            assert_eq!(back_sorted[1].1, masks[1]);
            let shapes = layer_shapes_from_bytes(&bytes, weights_only).unwrap();
            assert_eq!(shapes.len(), 2);
        }
        assert!(masks_to_bytes(&layers, &masks[..1], MaskDtype::Bool).is_err());
        assert!(masks_to_bytes(
            &layers,
            &[masks[1].clone(), masks[0].clone()],
            MaskDtype::U8
        )
        .is_err());
        assert!(masks_from_bytes(b"not a safetensors file").is_err());
    }
}
