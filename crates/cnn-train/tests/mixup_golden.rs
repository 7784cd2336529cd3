//! Mixup and CutMix against timm: `testdata/golden/mixup.json` (written
//! by `xtask/golden_mixup.py` with timm 1.0) holds a fixed batch of 5
//! images (2x6x8) mixed by timm's own `Mixup._mix_batch` (the lam it drew,
//! and for CutMix the box and corrected lam), the mixed targets of
//! `mixup_target` with label smoothing 0.1 and 0, `SoftTargetCrossEntropy`
//! of fixed logits against them and its gradient (float64, autograd), and
//! `cutmix_bbox_and_lam` on constructed boxes with the centre fixed.
//!
//! Tolerances: the mixed pixels are equal bit for bit (CutMix copies;
//! mixup is `x * f32(lam) + x_partner * f32(1 - lam)`, timm's two f32
//! multiplies and an add); the boxes and corrected lams exactly; the loss
//! within 1e-6 absolute + 1e-6 relative and its gradient within 1e-7 +
//! 1e-5 (cnn's f64 sums rounded to f32 against float64); the f64
//! reference kernel within 1e-8 absolute + 1e-8 relative (its label
//! smoothing is the op's f32 parameter: 0.1f32 is 0.1 + 1.5e-9).

use cnn_core::backend::{CrossEntropyParams, LossOps};
use cnn_cpu::CpuBackend;
use cnn_data::mix::cutmix_box;
use cnn_data::{CutBox, MixDraw};
use cnn_testing::assert::{assert_close, check_close_scalar};
use cnn_testing::golden::{golden_dir, golden_floats};
use serde_json::Value;

fn golden() -> Value {
    let path = golden_dir().join("mixup.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("mixup.json is JSON")
}

fn floats(v: &Value, what: &str) -> Vec<f64> {
    golden_floats(v, what).unwrap()
}

fn f32s(v: &Value, what: &str) -> Vec<f32> {
    floats(v, what).into_iter().map(|x| x as f32).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn cut_of(v: &Value) -> Option<CutBox> {
    if v.is_null() {
        return None;
    }
    let b = usizes(v);
    Some(CutBox {
        y0: b[0],
        y1: b[1],
        x0: b[2],
        x1: b[3],
    })
}

#[test]
fn mixed_batches_equal_timms_bit_for_bit() {
    let g = golden();
    let shape = usizes(&g["shape"]);
    let x = f32s(&g["x"], "x");
    for method in ["mixup", "cutmix"] {
        let case = &g[method];
        let draw = MixDraw {
            lam: case["lam"].as_f64().unwrap(),
            cut: cut_of(&case["box"]),
        };
        assert_eq!(draw.cut.is_some(), method == "cutmix");
        if let Some(cut) = draw.cut {
            // The box timm drew gives the lam it corrected to.
            let area = (cut.y1 - cut.y0) * (cut.x1 - cut.x0);
            assert_eq!(draw.lam, 1.0 - area as f64 / (shape[2] * shape[3]) as f64);
        }
        let mut mixed = x.clone();
        draw.apply(&mut mixed, shape[0], [shape[1], shape[2], shape[3]]);
        let want = f32s(&case["x"], "mixed x");
        let first_diff = mixed
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(
            first_diff, None,
            "{method}: mixed pixels differ from timm's"
        );
    }
}

#[test]
fn mixed_loss_and_gradient_equal_timms_soft_target_cross_entropy() {
    let g = golden();
    let be = CpuBackend::with_threads(1).unwrap();
    let n = usizes(&g["shape"])[0];
    let classes = g["classes"].as_u64().unwrap() as usize;
    let logits = f32s(&g["logits"], "logits");
    let labels: Vec<u32> = usizes(&g["labels"]).iter().map(|&v| v as u32).collect();
    let partners = cnn_train::mixing::partners(&labels);
    assert_eq!(partners, vec![2, 4, 1, 3, 0]);
    let mut checked = 0;
    for method in ["mixup", "cutmix"] {
        let lam = g[method]["lam"].as_f64().unwrap();
        for case in g[method]["losses"].as_array().unwrap() {
            let p = CrossEntropyParams {
                n,
                classes,
                label_smoothing: case["smoothing"].as_f64().unwrap() as f32,
            };
            let what = format!("{method}, smoothing {}", p.label_smoothing);
            let want_loss = case["loss"].as_f64().unwrap();
            let want_grad = floats(&case["grad"], "grad");
            let mut d = vec![f32::NAN; n * classes];
            let loss = be
                .softmax_cross_entropy_mixed(&p, lam, &logits, &labels, &partners, &mut d)
                .unwrap();
            check_close_scalar(f64::from(loss), want_loss, 1e-6, 1e-6, &what).unwrap();
            assert_close(&d, &want_grad, 1e-7, 1e-5, &what);
            // The f64 reference mixes the smoothed one-hot targets as timm
            // does: its gradient is softmax - target, so the targets agree.
            let (ref_loss, ref_grad) = cnn_testing::reference::softmax_cross_entropy_mixed(
                &p, lam, &logits, &labels, &partners,
            );
            check_close_scalar(ref_loss, want_loss, 1e-8, 1e-8, &what).unwrap();
            assert_close(&ref_grad, &want_grad, 1e-8, 1e-8, &what);
            let target = floats(&case["target"], "target");
            for (row, t) in target.chunks_exact(classes).enumerate() {
                assert!((t.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                let s = f64::from(p.label_smoothing);
                let q = |c: u32, k: usize| {
                    s / classes as f64 + if c as usize == k { 1.0 - s } else { 0.0 }
                };
                for (k, &tk) in t.iter().enumerate() {
                    let mine = lam * q(labels[row], k) + (1.0 - lam) * q(partners[row], k);
                    assert!((mine - tk).abs() < 1e-7, "{what}: target [{row}, {k}]");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}

#[test]
fn cutmix_boxes_and_lam_corrections_equal_timms() {
    let g = golden();
    let cases = g["boxes"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let get = |k: &str| c[k].as_u64().unwrap() as usize;
        let lam = c["lam"].as_f64().unwrap();
        let (cut, corrected) = cutmix_box(get("h"), get("w"), lam, get("cy"), get("cx"));
        assert_eq!(Some(cut), cut_of(&c["box"]), "{c}");
        assert_eq!(corrected, c["corrected"].as_f64().unwrap(), "{c}");
    }
}
