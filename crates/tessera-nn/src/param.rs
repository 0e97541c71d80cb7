//! Parameterisations (SP, NTK, μP): per-layer initialisation scale, forward multiplier and
//! learning-rate multipliers.

/// How weights are initialised, multiplied in the forward pass and scaled in the optimiser.
///
/// Raw trainable weights `w` enter the forward pass as `z = m·(h wᵀ) + b`, with the forward
/// multiplier `m`; `n_in`/`n_out` are the layer's fan-in/fan-out and `g` the init gain.
/// The crate README has the full table with the derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parameterization {
    /// Standard (PyTorch/He): `w ~ N(0, g²/n_in)`, `m = 1`, every learning-rate multiplier 1.
    Standard,
    /// Neural-tangent: `w ~ N(0, g²)`, `m = 1/√n_in` on every layer; SGD multipliers 1; Adam
    /// multipliers `1/√n_in` on hidden and output weights (1 on the input layer and biases).
    Ntk,
    /// Maximal update (Yang & Hu 2021; Noci et al. 2024, multiplier form): `w ~ N(0, g²)`,
    /// `m = 1/√n_in` on input and hidden layers and `m = 1/n_in` on the output layer.
    /// SGD multipliers: width (`n_out` on the input layer, `n_in` on hidden/output weights,
    /// `n_out` on non-output biases, 1 on the output bias). Adam multipliers: `1/√n_in` on
    /// hidden weights, 1 elsewhere.
    MuP,
}

/// The optimiser family a learning-rate multiplier is meant for (μP and NTK differ between
/// SGD and Adam); owned by tessera-lanczos, whose learning-rate rules take it too.
pub use tessera_lanczos::OptimizerFamily;

/// Where a dense layer sits: it decides the μP scalings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerRole {
    /// Reads the network input (fan-in fixed as width grows).
    Input,
    /// Width-to-width (hidden layers and residual-branch layers).
    Hidden,
    /// Produces the logits (fan-out fixed as width grows). A network without hidden layers has
    /// only this layer.
    Output,
}

/// The per-layer scalings a parameterisation prescribes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerScaling {
    /// Standard deviation of the raw weights at initialisation.
    pub init_std: f64,
    /// Forward multiplier `m` in `z = m·(h wᵀ) + b`.
    pub forward_multiplier: f64,
    /// Learning-rate multiplier of the weights.
    pub weight_lr: f64,
    /// Learning-rate multiplier of the biases.
    pub bias_lr: f64,
}

impl Parameterization {
    /// The scalings of one dense layer.
    pub fn scaling(
        self,
        role: LayerRole,
        fan_in: usize,
        fan_out: usize,
        gain: f64,
        family: OptimizerFamily,
    ) -> LayerScaling {
        let n_in = fan_in as f64;
        let n_out = fan_out as f64;
        let inv_sqrt_in = 1.0 / n_in.sqrt();
        match self {
            Parameterization::Standard => LayerScaling {
                init_std: gain * inv_sqrt_in,
                forward_multiplier: 1.0,
                weight_lr: 1.0,
                bias_lr: 1.0,
            },
            Parameterization::Ntk => {
                let weight_lr = match (family, role) {
                    (OptimizerFamily::Sgd, _) | (OptimizerFamily::Adam, LayerRole::Input) => 1.0,
                    (OptimizerFamily::Adam, _) => inv_sqrt_in,
                };
                LayerScaling {
                    init_std: gain,
                    forward_multiplier: inv_sqrt_in,
                    weight_lr,
                    bias_lr: 1.0,
                }
            }
            Parameterization::MuP => {
                let forward_multiplier = match role {
                    LayerRole::Output => 1.0 / n_in,
                    _ => inv_sqrt_in,
                };
                let (weight_lr, bias_lr) = match (family, role) {
                    (OptimizerFamily::Sgd, LayerRole::Input) => (n_out, n_out),
                    (OptimizerFamily::Sgd, LayerRole::Hidden) => (n_in, n_out),
                    (OptimizerFamily::Sgd, LayerRole::Output) => (n_in, 1.0),
                    (OptimizerFamily::Adam, LayerRole::Hidden) => (inv_sqrt_in, 1.0),
                    (OptimizerFamily::Adam, _) => (1.0, 1.0),
                };
                LayerScaling {
                    init_std: gain,
                    forward_multiplier,
                    weight_lr,
                    bias_lr,
                }
            }
        }
    }
}
