//! Metrics against hand-computed examples (scikit-learn conventions).

use cnn_train::metrics::{ConfusionMatrix, argmax_rows, softmax_rows, topk_correct};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// targets [0,0,0,1,1,2,2,2,2], predictions [0,0,1,1,0,2,2,0,1]:
/// rows (true) [2,1,0], [1,1,0], [1,1,2].
fn three_class() -> ConfusionMatrix {
    let mut m = ConfusionMatrix::new(3);
    m.add_batch(&[0, 0, 0, 1, 1, 2, 2, 2, 2], &[0, 0, 1, 1, 0, 2, 2, 0, 1]);
    m
}

#[test]
fn counts_and_accuracy() {
    let m = three_class();
    assert_eq!(m.counts(), &[2, 1, 0, 1, 1, 0, 1, 1, 2]);
    assert_eq!(m.count(2, 0), 1);
    assert_eq!(m.total(), 9);
    close(m.accuracy(), 5.0 / 9.0);
}

#[test]
fn per_class_and_macro() {
    let m = three_class();
    let pc = m.per_class();
    let expect = [
        (0.5, 2.0 / 3.0, 4.0 / 7.0, 3),
        (1.0 / 3.0, 0.5, 0.4, 2),
        (1.0, 0.5, 2.0 / 3.0, 4),
    ];
    for (c, (p, r, f, s)) in expect.into_iter().enumerate() {
        assert_eq!(pc[c].class, c);
        close(pc[c].precision, p);
        close(pc[c].recall, r);
        close(pc[c].f1, f);
        assert_eq!(pc[c].support, s);
    }
    close(m.precision_macro(), 11.0 / 18.0);
    close(m.recall_macro(), 5.0 / 9.0);
    close(m.f1_macro(), (4.0 / 7.0 + 0.4 + 2.0 / 3.0) / 3.0);
}

/// Class 2 occurs but is never predicted; class 3 neither occurs nor is
/// predicted. Both count as 0 in the macro means (zero_division=0), as
/// scikit-learn's `f1_score(..., labels=[0,1,2,3], average="macro",
/// zero_division=0)`.
#[test]
fn never_predicted_and_absent_classes() {
    let mut m = ConfusionMatrix::new(4);
    m.add_batch(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0]);
    let pc = m.per_class();
    close(pc[0].precision, 0.5);
    close(pc[0].recall, 0.5);
    close(pc[0].f1, 0.5);
    close(pc[1].precision, 2.0 / 3.0);
    close(pc[1].recall, 1.0);
    close(pc[1].f1, 0.8);
    for c in [2, 3] {
        assert_eq!((pc[c].precision, pc[c].recall, pc[c].f1), (0.0, 0.0, 0.0));
    }
    assert_eq!(pc[2].support, 1);
    assert_eq!(pc[3].support, 0);
    close(m.precision_macro(), 7.0 / 24.0);
    close(m.recall_macro(), 0.375);
    close(m.f1_macro(), 0.325);
    close(m.accuracy(), 0.6);
}

#[test]
fn macro_f1_is_mean_of_per_class_f1() {
    // A deterministic pseudo-random confusion.
    let mut m = ConfusionMatrix::new(7);
    let mut x: u32 = 12345;
    for _ in 0..1000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let t = (x >> 16) % 7;
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let p = if (x >> 16).is_multiple_of(3) {
            (x >> 20) % 7
        } else {
            t
        };
        m.add(t, p);
    }
    let pc = m.per_class();
    let mean_f1 = pc.iter().map(|c| c.f1).sum::<f64>() / 7.0;
    close(m.f1_macro(), mean_f1);
    let s = m.split_metrics(0.25);
    close(s.f1_macro, mean_f1);
    close(s.accuracy, m.accuracy());
    close(s.precision_macro, m.precision_macro());
    close(s.recall_macro, m.recall_macro());
    assert_eq!(s.loss, 0.25);
    assert_eq!(s.n, 1000);
}

#[test]
fn empty_matrix_is_all_zero() {
    let m = ConfusionMatrix::new(3);
    assert_eq!(m.accuracy(), 0.0);
    assert_eq!(m.f1_macro(), 0.0);
    let s = m.split_metrics(1.0);
    assert_eq!(s.n, 0);
    assert_eq!(ConfusionMatrix::new(0).f1_macro(), 0.0);
}

#[test]
fn merge_adds_counts() {
    let mut a = ConfusionMatrix::new(3);
    a.add_batch(&[0, 0, 0, 1], &[0, 0, 1, 1]);
    let mut b = ConfusionMatrix::new(3);
    b.add_batch(&[1, 2, 2, 2, 2], &[0, 2, 2, 0, 1]);
    a.merge(&b);
    assert_eq!(a, three_class());
}

#[test]
#[should_panic(expected = "class out of range")]
fn out_of_range_class_panics() {
    ConfusionMatrix::new(2).add(2, 0);
}

#[test]
fn argmax_takes_first_max_and_ignores_nan() {
    let logits = [
        1.0,
        3.0,
        3.0,
        0.0, // tie: first max
        -1.0,
        -2.0,
        -3.0,
        -0.5, //
        f32::NAN,
        0.0,
        2.0,
        2.0, // NaN never wins
        f32::NAN,
        f32::NAN,
        f32::NAN,
        f32::NAN,
    ];
    assert_eq!(argmax_rows(&logits, 4), vec![1, 3, 2, 0]);
    assert!(argmax_rows(&[], 4).is_empty());
}

#[test]
fn topk_counts() {
    let logits = [
        0.1, 0.5, 0.3, 0.2, // ranks: 1, 2, 3, 0
        0.9, 0.0, 0.0, 0.1, // ranks: 0, 2, 3, 1 (ties by index)
        0.2, 0.2, 0.2, 0.2, // all tied: 0, 1, 2, 3
    ];
    let targets = [2, 2, 3];
    assert_eq!(topk_correct(&logits, 4, &targets, 1), 0);
    assert_eq!(topk_correct(&logits, 4, &targets, 2), 1);
    assert_eq!(topk_correct(&logits, 4, &targets, 3), 1);
    assert_eq!(topk_correct(&logits, 4, &targets, 4), 3);
    assert_eq!(topk_correct(&logits, 4, &targets, 10), 3);
    assert_eq!(topk_correct(&logits, 4, &[1, 0, 0], 1), 3);
}

#[test]
fn top1_equals_accuracy() {
    let classes = 5;
    let n = 200;
    let mut x: u32 = 7;
    let mut next = || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        x
    };
    // Coarse values so that ties happen.
    let logits: Vec<f32> = (0..n * classes).map(|_| (next() >> 29) as f32).collect();
    let targets: Vec<u32> = (0..n).map(|_| next() % classes as u32).collect();
    let preds = argmax_rows(&logits, classes);
    let mut m = ConfusionMatrix::new(classes);
    m.add_batch(&targets, &preds);
    let top1 = topk_correct(&logits, classes, &targets, 1);
    close(top1 as f64 / n as f64, m.accuracy());
}

#[test]
fn softmax_sums_to_one_and_is_stable() {
    let logits = [1.0f32, 2.0, 3.0, 1000.0, 1000.0, -1000.0];
    let p = softmax_rows(&logits, 3);
    let e = [1.0f64.exp(), 2.0f64.exp(), 3.0f64.exp()];
    let s: f64 = e.iter().sum();
    for i in 0..3 {
        assert!((p[i] as f64 - e[i] / s).abs() < 1e-6);
    }
    assert_eq!(&p[3..], &[0.5, 0.5, 0.0]);
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
