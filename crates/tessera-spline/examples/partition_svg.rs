//! Writes the SVG picture of the exact partition of a seeded 784→[64]×3 tessera-nn MLP on the
//! plane through three seeded inputs in [-1, 1]^784: `cargo run --example partition_svg -- out.svg`.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_nn::{Mlp, MlpConfig};
use tessera_spline::{Partition2d, PartitionConfig, Plane, Polygon, SvgOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "partition.svg".to_string());
    let mlp = Mlp::<f64>::new(MlpConfig::new(784, vec![64; 3], 10), 2)?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = Array2::from_shape_fn((3, 784), |_| 2.0 * rng.random::<f64>() - 1.0);
    let plane = Plane::through_points(x.row(0), x.row(1), x.row(2))?;
    let domain = Polygon::rectangle([-0.5, -0.5], [1.5, 1.5])?;
    let part = Partition2d::compute(&mlp, &plane, &domain, PartitionConfig::default())?;
    let svg = part.to_svg(&SvgOptions {
        markers: vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
        title: Some(format!(
            "784→[64]×3 ReLU MLP, plane through 3 inputs: {} regions",
            part.num_regions()
        )),
        ..SvgOptions::default()
    })?;
    std::fs::write(&path, svg)?;
    let classes: std::collections::BTreeSet<usize> =
        part.class_cells().iter().map(|c| c.class).collect();
    println!(
        "{} regions, predicted classes {classes:?}, {} decision-boundary segments → {path}",
        part.num_regions(),
        part.decision_boundary().len()
    );
    Ok(())
}
