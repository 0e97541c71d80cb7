//! The integration tests of tessera-ssl, as one test binary (one link of the
//! dependencies instead of one per file).

mod errors;
mod golden;
mod properties;
mod reference;
mod robustness;

use ndarray::Array2;

/// Central finite differences (step 1e-6) of a scalar function of a matrix.
fn numerical_grad(z: &Array2<f64>, f: impl Fn(&Array2<f64>) -> f64) -> Array2<f64> {
    let shape = z.raw_dim();
    let values: Vec<f64> = z.iter().copied().collect();
    let as_matrix =
        |v: Vec<f64>| Array2::from_shape_vec(shape, v).expect("as many values as z has");
    let grad = tessera_testing::central_difference_gradient(
        |probe| f(&as_matrix(probe.to_vec())),
        &values,
        1e-6,
    );
    as_matrix(grad)
}
