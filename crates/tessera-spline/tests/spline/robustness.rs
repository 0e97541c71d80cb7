//! Bad input is an error naming the parameter, never a panic.

use ndarray::{array, Array1, Array2};
use tessera_nn::{Activation, Mlp, MlpConfig, Parameterization, ResidualConfig};
use tessera_spline::{
    AffineLayer, Error, InputError, LocalComplexityConfig, LocalComplexityEstimator, Partition2d,
    PartitionConfig, PiecewiseLinear, PiecewiseLinearNet, PlActivation, Plane, Polygon,
    SegmentPartition,
};

use crate::common::random_net;

fn name_of(e: &Error) -> &'static str {
    match e {
        Error::Input(i) => i.name(),
        other => panic!("expected an input error, got {other}"),
    }
}

#[test]
fn degenerate_planes_are_rejected() {
    let o = array![0.0, 0.0, 0.0];
    let e1 = array![1.0, 2.0, 3.0];
    let zero = array![0.0, 0.0, 0.0];
    let e = Plane::new(o.view(), zero.view(), e1.view()).unwrap_err();
    assert_eq!(name_of(&e), "e1");
    let par = array![-2.0, -4.0, -6.0];
    let e = Plane::new(o.view(), e1.view(), par.view()).unwrap_err();
    assert_eq!(name_of(&e), "e2");
    assert!(e.to_string().contains("parallel"), "{e}");
    let e = Plane::new(o.view(), e1.view(), array![1.0, 2.0].view()).unwrap_err();
    assert_eq!(name_of(&e), "e2");
    let e = Plane::new(
        array![0.0, f64::NAN, 0.0].view(),
        e1.view(),
        array![0.0, 1.0, 0.0].view(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        Error::Input(InputError::NonFinite {
            name: "origin",
            index: 1,
            ..
        })
    ));
    let e = Plane::through_points(o.view(), e1.view(), par.view()).unwrap_err();
    assert_eq!(name_of(&e), "e2");
}

#[test]
fn empty_and_non_convex_domains_are_rejected() {
    for bad in [
        vec![],
        vec![[0.0, 0.0], [1.0, 0.0]],
        vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]],
        vec![[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        vec![[0.0, 0.0], [2.0, 0.0], [1.0, 0.2], [1.0, 2.0]],
        vec![[0.0, 0.0], [f64::INFINITY, 0.0], [0.0, 1.0]],
    ] {
        let e = Polygon::new(bad.clone()).unwrap_err();
        assert_eq!(name_of(&e), "domain", "{bad:?}");
    }
    assert!(Polygon::rectangle([0.0, 0.0], [0.0, 1.0]).is_err());
}

#[test]
fn non_finite_weights_are_rejected() {
    let w = array![[1.0, f64::NAN]];
    let e = AffineLayer::new(w, array![0.0], PlActivation::Relu).unwrap_err();
    assert!(matches!(
        e,
        Error::Input(InputError::NonFinite {
            name: "weight",
            index: 1,
            ..
        })
    ));
    let e = AffineLayer::new(
        array![[1.0, 2.0]],
        array![f64::INFINITY],
        PlActivation::Relu,
    )
    .unwrap_err();
    assert_eq!(name_of(&e), "bias");
    // Through safetensors: a NaN written into an MLP's file.
    let mut mlp = Mlp::<f32>::new(MlpConfig::new(3, vec![4], 2), 0).unwrap();
    let ok = mlp.to_safetensors().unwrap();
    mlp.params_mut()[2] = f32::NAN;
    let bad = mlp.to_safetensors().unwrap();
    assert!(PiecewiseLinearNet::<f64>::from_safetensors(&ok, PlActivation::Relu).is_ok());
    let e = PiecewiseLinearNet::<f64>::from_safetensors(&bad, PlActivation::Relu).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Input(InputError::NonFinite {
                name: "weight",
                index: 2,
                ..
            })
        ),
        "{e}"
    );
    assert!(matches!(
        PiecewiseLinearNet::<f64>::from_safetensors(b"not safetensors", PlActivation::Relu),
        Err(Error::Safetensors { .. })
    ));
    let e = PiecewiseLinearNet::<f64>::from_safetensors_file(
        "/nonexistent/net.safetensors",
        PlActivation::Relu,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    // An MLP whose parameters were made non-finite fails in its forward pass.
    let x = Array2::<f32>::zeros((2, 3));
    assert!(mlp.pre_activations(x.view()).is_err());
}

#[test]
fn bad_local_complexity_settings_are_rejected() {
    let cfg = LocalComplexityConfig::default();
    for (p, r, name) in [
        (0usize, 0.1, "num_vertices"),
        (7, 0.1, "num_vertices"),
        (40, 0.0, "radius"),
        (40, -1.0, "radius"),
        (40, f64::NAN, "radius"),
        (60, 0.1, "num_vertices"), // P/2 = 30 > input_dim = 20
    ] {
        let e = LocalComplexityEstimator::<f64>::new(
            LocalComplexityConfig {
                num_vertices: p,
                radius: r,
                ..cfg.clone()
            },
            20,
        )
        .unwrap_err();
        assert_eq!(name_of(&e), name, "P = {p}, r = {r}");
    }
    let e = LocalComplexityEstimator::<f64>::new(
        LocalComplexityConfig {
            max_rows_per_chunk: 0,
            ..cfg.clone()
        },
        20,
    )
    .unwrap_err();
    assert_eq!(name_of(&e), "max_rows_per_chunk");
    let est = LocalComplexityEstimator::<f64>::new(
        LocalComplexityConfig {
            num_vertices: 4,
            ..cfg
        },
        3,
    )
    .unwrap();
    let net = random_net(&[3, 5, 2], PlActivation::Relu, 1);
    assert_eq!(
        name_of(&est.compute(&net, Array2::zeros((2, 4)).view()).unwrap_err()),
        "x"
    );
    assert_eq!(
        name_of(&est.compute(&net, Array2::zeros((0, 3)).view()).unwrap_err()),
        "x"
    );
    let mut x = Array2::zeros((2, 3));
    x[[1, 2]] = f64::NAN;
    assert_eq!(name_of(&est.compute(&net, x.view()).unwrap_err()), "x");
    let other = random_net(&[5, 5, 2], PlActivation::Relu, 1);
    assert_eq!(
        name_of(
            &est.compute(&other, Array2::zeros((1, 5)).view())
                .unwrap_err()
        ),
        "model"
    );
    let l = &net.layers()[0];
    assert_eq!(
        name_of(
            &est.first_layer_closed_form(
                l.weight(),
                Array1::zeros(4).view(),
                Array2::zeros((1, 3)).view()
            )
            .unwrap_err()
        ),
        "bias"
    );
    assert_eq!(
        name_of(&est.vertices(array![1.0, 2.0].view()).unwrap_err()),
        "x"
    );
}

#[test]
fn bad_partition_inputs_are_rejected() {
    let net = random_net(&[3, 5, 2], PlActivation::Relu, 1);
    let plane = Plane::new(
        array![0.0, 0.0].view(),
        array![1.0, 0.0].view(),
        array![0.0, 1.0].view(),
    )
    .unwrap();
    let domain = Polygon::rectangle([0.0, 0.0], [1.0, 1.0]).unwrap();
    let e = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap_err();
    assert_eq!(name_of(&e), "plane");
    let plane3 = Plane::new(
        array![0.0, 0.0, 0.0].view(),
        array![1.0, 0.0, 0.0].view(),
        array![0.0, 1.0, 0.0].view(),
    )
    .unwrap();
    let e = Partition2d::compute(
        &net,
        &plane3,
        &domain,
        PartitionConfig {
            eps: -1.0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(name_of(&e), "eps");
    let big = random_net(&[3, 30, 30, 2], PlActivation::Relu, 2);
    let wide = Polygon::rectangle([-50.0, -50.0], [50.0, 50.0]).unwrap();
    let e = Partition2d::compute(
        &big,
        &plane3,
        &wide,
        PartitionConfig {
            max_regions: 10,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Input(InputError::TooLarge {
                name: "regions",
                ..
            })
        ),
        "{e}"
    );
    let a = array![0.0, 0.0, 0.0];
    let e = SegmentPartition::compute(&net, a.view(), a.view(), PartitionConfig::default())
        .unwrap_err();
    assert_eq!(name_of(&e), "b");
    let e = SegmentPartition::compute(
        &net,
        a.view(),
        array![1.0].view(),
        PartitionConfig::default(),
    )
    .unwrap_err();
    assert_eq!(name_of(&e), "b");
}

#[test]
fn unsupported_models_are_rejected_clearly() {
    let gelu = Mlp::<f64>::new(
        MlpConfig::new(3, vec![4], 2).with_activation(Activation::Gelu),
        0,
    )
    .unwrap();
    let x = Array2::zeros((1, 3));
    assert!(matches!(
        gelu.pre_activations(x.view()),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(gelu.to_affine(), Err(Error::Unsupported { .. })));
    let residual = Mlp::<f64>::new(
        MlpConfig::new(3, vec![4], 2).with_residual(ResidualConfig {
            blocks_per_stage: 1,
            branch_scale: 0.1,
            branch_depth: 1,
        }),
        0,
    )
    .unwrap();
    let e = residual.to_affine().unwrap_err();
    assert!(e.to_string().contains("residual"), "{e}");
    let ntk = Mlp::<f64>::new(
        MlpConfig::new(3, vec![4], 2).with_parameterization(Parameterization::Ntk),
        0,
    )
    .unwrap();
    let e = ntk.to_affine().unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    // A network must end with a linear layer and fit together.
    let l0 = AffineLayer::<f64>::new(Array2::ones((4, 3)), Array1::zeros(4), PlActivation::Relu)
        .unwrap();
    assert!(PiecewiseLinearNet::new(vec![l0.clone()]).is_err());
    let l1 = AffineLayer::new(
        Array2::ones((2, 5)),
        Array1::zeros(2),
        PlActivation::Identity,
    )
    .unwrap();
    assert_eq!(
        name_of(&PiecewiseLinearNet::new(vec![l0.clone(), l1]).unwrap_err()),
        "layers"
    );
    let skip = AffineLayer::new(
        Array2::ones((2, 4)),
        Array1::zeros(2),
        PlActivation::Identity,
    )
    .unwrap()
    .with_skip_from(0);
    assert_eq!(
        name_of(&PiecewiseLinearNet::new(vec![l0, skip]).unwrap_err()),
        "skip_from"
    );
    let e = AffineLayer::<f64>::new(
        Array2::ones((2, 2)),
        Array1::zeros(2),
        PlActivation::LeakyRelu { slope: f64::NAN },
    )
    .unwrap_err();
    assert_eq!(name_of(&e), "slope");
}

/// A model whose pre-activations disagree with its own layer description.
struct Inconsistent;

impl PiecewiseLinear<f64> for Inconsistent {
    fn input_dim(&self) -> usize {
        2
    }
    fn layer_info(&self) -> Vec<tessera_spline::LayerInfo> {
        vec![
            tessera_spline::LayerInfo {
                width: 3,
                activation: PlActivation::Relu,
            },
            tessera_spline::LayerInfo {
                width: 1,
                activation: PlActivation::Identity,
            },
        ]
    }
    fn pre_activations(
        &self,
        x: ndarray::ArrayView2<'_, f64>,
    ) -> tessera_spline::Result<Vec<Array2<f64>>> {
        Ok(vec![
            Array2::zeros((x.nrows(), 2)),
            Array2::zeros((x.nrows(), 1)),
        ])
    }
    fn to_affine(&self) -> tessera_spline::Result<PiecewiseLinearNet<f64>> {
        Err(Error::Unsupported {
            reason: "test model".into(),
        })
    }
}

#[test]
fn inconsistent_custom_models_are_errors_not_panics() {
    let x = Array2::zeros((3, 2));
    let e = tessera_spline::ActivationPatterns::of(&Inconsistent, x.view()).unwrap_err();
    assert_eq!(name_of(&e), "pre_activations");
    let est = LocalComplexityEstimator::<f64>::new(
        LocalComplexityConfig {
            num_vertices: 2,
            ..LocalComplexityConfig::default()
        },
        2,
    )
    .unwrap();
    assert_eq!(
        name_of(&est.compute(&Inconsistent, x.view()).unwrap_err()),
        "pre_activations"
    );
    let plane = Plane::new(
        array![0.0, 0.0].view(),
        array![1.0, 0.0].view(),
        array![0.0, 1.0].view(),
    )
    .unwrap();
    let domain = Polygon::rectangle([0.0, 0.0], [1.0, 1.0]).unwrap();
    assert!(matches!(
        Partition2d::compute(&Inconsistent, &plane, &domain, PartitionConfig::default()),
        Err(Error::Unsupported { .. })
    ));
    // SVG options are checked too.
    let net = random_net(&[2, 3, 2], PlActivation::Relu, 0);
    let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default()).unwrap();
    let bad = tessera_spline::SvgOptions {
        width: 0,
        ..Default::default()
    };
    assert_eq!(name_of(&part.to_svg(&bad).unwrap_err()), "width");
    let bad = tessera_spline::SvgOptions {
        boundary_width: f64::NAN,
        ..Default::default()
    };
    assert_eq!(name_of(&part.to_svg(&bad).unwrap_err()), "boundary_width");
}
