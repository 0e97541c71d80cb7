//! The Rust side of `scripts/spline_timing.py`: reads `net.safetensors` (ReLU hidden layers)
//! and `plane.npy` (three inputs, one per row) from the directory given as the first argument,
//! partitions the square `[lo, hi]²` (second and third arguments) of the plane through the three
//! inputs `repeats` times (fourth argument), and prints the region count and the best time.

use std::time::Instant;

use ndarray::Array2;
use ndarray_npy::read_npy;
use tessera_spline::{
    Partition2d, PartitionConfig, PiecewiseLinearNet, PlActivation, Plane, Polygon,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: partition_timing DIR LO HI REPEATS".into());
    }
    let dir = std::path::Path::new(&args[1]);
    let lo: f64 = args[2].parse()?;
    let hi: f64 = args[3].parse()?;
    let repeats: usize = args[4].parse()?;
    let net = PiecewiseLinearNet::<f64>::from_safetensors_file(
        dir.join("net.safetensors"),
        PlActivation::Relu,
    )?;
    let points: Array2<f64> = read_npy(dir.join("plane.npy"))?;
    let plane = Plane::through_points(points.row(0), points.row(1), points.row(2))?;
    let domain = Polygon::rectangle([lo, lo], [hi, hi])?;
    let mut best = f64::INFINITY;
    let mut regions = 0;
    let mut area = 0.0;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let part = Partition2d::compute(&net, &plane, &domain, PartitionConfig::default())?;
        best = best.min(start.elapsed().as_secs_f64());
        regions = part.num_regions();
        area = part.areas().iter().sum::<f64>();
    }
    println!(
        "regions={regions} best_s={best:.6} area={area:.12} threads={}",
        rayon::current_num_threads()
    );
    Ok(())
}
