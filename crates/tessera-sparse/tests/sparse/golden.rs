//! Golden values from `tests/data/make_fixtures.py`: scipy's Kendall τ-b and Spearman ρ, a
//! NumPy transcription of the RigL ERK loop, and safetensors files written by Python.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use tessera_sparse::{
    kendall_tau_b, layer_densities, masks_from_bytes, masks_to_bytes, read_layer_shapes,
    read_masks, spearman_rho, weights_only, Allocation, LayerShape, Mask, MaskDtype,
};

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rank_correlations_match_scipy() {
    for case in 0..4 {
        let x: Array1<f64> = read_npy(data(&format!("rank_{case}_x.npy"))).unwrap();
        let y: Array1<f64> = read_npy(data(&format!("rank_{case}_y.npy"))).unwrap();
        let expected: Array1<f64> = read_npy(data(&format!("rank_{case}_expected.npy"))).unwrap();
        let (x, y) = (x.to_vec(), y.to_vec());
        let tau = kendall_tau_b(&x, &y).unwrap();
        let rho = spearman_rho(&x, &y).unwrap();
        assert_abs_diff_eq!(tau, expected[0], epsilon = 1e-12);
        assert_abs_diff_eq!(rho, expected[1], epsilon = 1e-12);
        // f32 inputs that are exactly representable give the same statistics.
        if case == 3 {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            assert_abs_diff_eq!(
                kendall_tau_b(&xf, &yf).unwrap(),
                expected[0],
                epsilon = 1e-12
            );
        }
    }
}

#[test]
fn erk_matches_the_reference_loop() {
    for name in ["vgg_like", "mlp", "mixed"] {
        let dims: Array2<i64> = read_npy(data(&format!("erk_{name}_dims.npy"))).unwrap();
        let expected: Array1<f64> = read_npy(data(&format!("erk_{name}_expected.npy"))).unwrap();
        let layers: Vec<LayerShape> = dims
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let d: Vec<usize> = row
                    .iter()
                    .filter(|&&v| v > 0)
                    .map(|&v| v as usize)
                    .collect();
                LayerShape::new(format!("layer{i}"), &d).unwrap()
            })
            .collect();
        let result = layer_densities(&layers, expected[0], Allocation::ERK, &[]).unwrap();
        for (&ours, &theirs) in result.densities.iter().zip(expected.iter().skip(1)) {
            assert_abs_diff_eq!(ours, theirs, epsilon = 1e-12);
        }
    }
}

#[test]
fn checkpoint_written_by_python_gives_weight_shapes() {
    let shapes = read_layer_shapes(data("checkpoint.safetensors"), weights_only).unwrap();
    let mut named: Vec<(String, Vec<usize>)> = shapes
        .iter()
        .map(|l| (l.name().to_string(), l.dims().to_vec()))
        .collect();
    named.sort();
    assert_eq!(
        named,
        vec![
            ("classifier.weight".to_string(), vec![10, 64]),
            ("features.0.weight".to_string(), vec![8, 3, 3, 3]),
            ("features.3.weight".to_string(), vec![16, 8, 3, 3]),
        ]
    );
    // Without the filter every tensor is listed, biases and norm vectors included.
    let all = read_layer_shapes(data("checkpoint.safetensors"), |_, _| true).unwrap();
    assert_eq!(all.len(), 8);
    // A filter that admits a name pattern only.
    let convs = read_layer_shapes(data("checkpoint.safetensors"), |name, dims| {
        weights_only(name, dims) && name.starts_with("features")
    })
    .unwrap();
    assert_eq!(convs.len(), 2);
    let missing = read_layer_shapes(data("no_such_file.safetensors"), weights_only).unwrap_err();
    assert!(missing.to_string().contains("no_such_file"), "{missing}");
}

#[test]
fn masks_written_by_python_are_read_and_rewritten_identically() {
    let masks = read_masks(data("masks_py.safetensors")).unwrap();
    let by_name = |name: &str| masks.iter().find(|(l, _)| l.name() == name).unwrap();
    let (conv, conv_mask) = by_name("features.0.weight");
    assert_eq!(conv.dims(), &[8, 3, 3, 3]);
    let expected: Vec<bool> = (0..8 * 27).map(|i| i % 3 == 0).collect();
    assert_eq!(conv_mask, &Mask::from_bools(&expected));
    let (fc, fc_mask) = by_name("classifier.weight");
    assert_eq!(fc.dims(), &[10, 64]);
    assert_eq!(fc_mask.count_ones(), (0..640).filter(|i| i % 7 < 2).count());
    // Our writer produces a file that our reader (and Python's, same format) maps back.
    let (layers, mask_list): (Vec<LayerShape>, Vec<Mask>) = masks.into_iter().unzip();
    let bytes = masks_to_bytes(&layers, &mask_list, MaskDtype::Bool).unwrap();
    let again = masks_from_bytes(&bytes).unwrap();
    for (layer, mask) in layers.iter().zip(&mask_list) {
        let (l, m) = again
            .iter()
            .find(|(l, _)| l.name() == layer.name())
            .unwrap();
        assert_eq!((l, m), (layer, mask));
    }
}
