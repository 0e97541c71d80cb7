//! Unit tests of `ssl-audio` (tiny sizes: each well under 2 s in the dev profile).

use super::*;
use crate::harness::{Context, Mode};

fn tiny() -> Params {
    Params {
        features: FeatureSpec {
            n_classes: 3,
            train_per_class: 10,
            test_per_class: 4,
            n_mels: 16,
            labelled_fraction: 0.3,
        },
        train: TrainConfig {
            width: 2,
            steps: 2,
            labelled_batch: 4,
            unlabelled_batch: 4,
            lr: 1e-3,
            ramp_fraction: 0.5,
            eval_chunk: 8,
        },
        methods: Method::ALL.to_vec(),
        seeds: 1,
    }
}

fn temp_ctx(tag: &str) -> Context {
    let out = std::env::temp_dir().join(format!("tessera-ssl-audio-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    Context::new(&out, "ssl-audio", 5, Mode::Quick).unwrap()
}

#[test]
fn every_recipe_runs_and_the_report_has_every_row() {
    let ctx = temp_ctx("all");
    let outcome = run(&ctx, &tiny()).unwrap();
    for m in Method::ALL {
        assert!(outcome.section.contains(m.label()), "{}", m.label());
    }
    assert_eq!(outcome.claims.len(), 5);
    let csv = std::fs::read_to_string(ctx.path("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + Method::ALL.len());
    assert!(ctx.path("error_by_method.svg").exists());
    let _ = std::fs::remove_dir_all(&ctx.out);
}
