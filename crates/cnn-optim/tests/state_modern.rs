//! Exported then imported state continues bit for bit for the optimizers
//! beyond torch.optim's classic nine (properties.rs covers those), on a
//! matrix and on a vector: Adafactor's two state layouts (factored for a
//! matrix, a full variance for a vector), Muon's matrix rule and its AdamW
//! fallback, and the host scalars of ASGD. Mutation testing found the
//! import of Adafactor's state reached by no test (its layouts could be
//! emptied and every test still passed).

use cnn_core::{Param, ParamKind, Tensor};
use cnn_cpu::CpuBackend;
use cnn_optim::{Optimizer, OptimizerConfig, OptimizerState};

fn param(backend: &CpuBackend, shape: &[usize], w: &[f32]) -> Param<CpuBackend> {
    let value = Tensor::from_slice(backend, shape.to_vec(), w).unwrap();
    Param::new(backend, "w", ParamKind::Weight, value).unwrap()
}

/// One step with gradient `w - 0.5 + noise(k)`.
fn step(
    backend: &CpuBackend,
    opt: &mut Optimizer<CpuBackend>,
    p: &mut Param<CpuBackend>,
    k: usize,
) {
    let w = p.value.to_vec(backend).unwrap();
    let g: Vec<f32> = w
        .iter()
        .enumerate()
        .map(|(i, w)| w - 0.5 + (((i * 7 + k * 3) % 11) as f32 - 5.0) * 0.05)
        .collect();
    p.grad.copy_from_slice(backend, &g).unwrap();
    opt.step(backend, &mut [p]).unwrap();
}

fn bits(backend: &CpuBackend, p: &Param<CpuBackend>) -> Vec<u32> {
    p.value
        .to_vec(backend)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn modern_optimizer_state_continues_bit_for_bit() {
    let backend = CpuBackend::with_threads(1).unwrap();
    let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3).collect();
    for name in ["adafactor", "muon", "lion", "lamb", "lars", "asgd", "rprop"] {
        for shape in [vec![3, 4], vec![12]] {
            let config = OptimizerConfig::from_name(name).unwrap();
            let mut opt = Optimizer::<CpuBackend>::new(config.clone()).unwrap();
            let mut p = param(&backend, &shape, &w);
            for k in 0..3 {
                step(&backend, &mut opt, &mut p, k);
            }
            // Through JSON, as a checkpoint stores it.
            let text = serde_json::to_string(&opt.export_state(&backend).unwrap()).unwrap();
            let state: OptimizerState = serde_json::from_str(&text).unwrap();
            let mut resumed = Optimizer::<CpuBackend>::new(config).unwrap();
            resumed
                .import_state(&backend, &state)
                .unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
            let mut q = param(&backend, &shape, &p.value.to_vec(&backend).unwrap());
            for k in 3..6 {
                step(&backend, &mut opt, &mut p, k);
                step(&backend, &mut resumed, &mut q, k);
            }
            assert_eq!(bits(&backend, &p), bits(&backend, &q), "{name} {shape:?}");
            assert_ne!(
                bits(&backend, &p),
                w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{name} {shape:?} moved"
            );
            assert_eq!(
                opt.export_state(&backend).unwrap(),
                resumed.export_state(&backend).unwrap(),
                "{name} {shape:?}"
            );
        }
    }
}
