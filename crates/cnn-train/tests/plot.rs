//! Plots: files appear, PNGs decode at the right size with real content,
//! SVGs carry the legend labels, degenerate input does not panic.

use std::path::Path;

use cnn_train::metrics::ConfusionMatrix;
use cnn_train::plot::{
    OverlaySeries, ScoreVsSize, draw_confusion, draw_curves, draw_curves_with_steps_per_epoch,
    draw_overlay, draw_score_vs_size,
};
use cnn_train::{EpochRecord, History, SplitMetrics, StepRecord};

fn split(loss: f64, acc: f64) -> SplitMetrics {
    SplitMetrics {
        loss,
        accuracy: acc,
        precision_macro: acc,
        recall_macro: acc,
        f1_macro: acc,
        n: 100,
        top5_accuracy: None,
    }
}

fn history(epochs: usize, steps_per_epoch: u64, with_val: bool) -> History {
    let mut h = History::default();
    let mut step = 0;
    for e in 1..=epochs {
        for k in 0..steps_per_epoch {
            step += 1;
            h.steps.push(StepRecord {
                step,
                epoch: e,
                loss: 2.0 / (step as f64).sqrt() + 0.05 * ((k * 7 % 5) as f64),
                lr: 0.1 * 0.5f64.powi(e as i32 - 1),
                scaling: None,
            });
        }
        h.epochs.push(EpochRecord {
            epoch: e,
            train: split(2.0 / (e as f64 + 1.0), 1.0 - 0.5 / e as f64),
            val: with_val.then(|| split(2.2 / (e as f64 + 1.0), 0.95 - 0.5 / e as f64)),
            lr: 0.1 * 0.5f64.powi(e as i32 - 1),
            seconds: 1.0,
            images_per_sec: 1000.0,
            val_per_class: vec![],
            ema_val: None,
            swa_val: None,
        });
    }
    h
}

/// Decodes the PNG, checks its size and that it is not blank.
fn check_png(path: &Path, size: (u32, u32)) {
    check_png_content(path, size, true);
}

fn check_png_content(path: &Path, size: (u32, u32), coloured: bool) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let first = *img.get_pixel(0, 0);
    let different = img.pixels().filter(|p| **p != first).count();
    assert!(
        different > 1000,
        "{}: only {different} non-background pixels",
        path.display()
    );
    // Some pixels are coloured (lines), not only grey text and axes.
    assert!(
        !coloured
            || img.pixels().any(|p| {
                let [r, g, b] = p.0;
                r.abs_diff(g) > 60 || g.abs_diff(b) > 60 || r.abs_diff(b) > 60
            }),
        "{}: no coloured pixels",
        path.display()
    );
}

/// With `CNN_PLOT_OUT=dir`, copy a picture there for looking at.
fn keep(path: &Path) {
    keep_as(path, path.file_name().unwrap().to_str().unwrap());
}

fn keep_as(path: &Path, name: &str) {
    if let Some(out) = std::env::var_os("CNN_PLOT_OUT") {
        let out = Path::new(&out);
        std::fs::create_dir_all(out).unwrap();
        std::fs::copy(path, out.join(name)).unwrap();
    }
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "left over: {name}");
    }
}

#[test]
fn curves_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("curves.png"), dir.path().join("curves.svg"));
    draw_curves(&history(12, 25, true), "LeNet-5 on MNIST", &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep(&png);
    keep(&svg);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..50.min(text.len())]);
    for label in [
        "LeNet-5 on MNIST",
        "train (per step)",
        "validation",
        "learning rate",
        "log scale",
        "epoch",
    ] {
        assert!(text.contains(label), "SVG lacks `{label}`");
    }
    no_temp_files(dir.path());
}

#[test]
fn curves_degenerate_inputs_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("c.png"), dir.path().join("c.svg"));

    // No epochs at all.
    draw_curves(&History::default(), "empty", &png, &svg).unwrap();
    check_png_content(&png, (1200, 900), false);
    keep_as(&png, "curves-empty.png");

    // One epoch, no validation, constant learning rate.
    draw_curves(&history(1, 1, false), "one", &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep_as(&png, "curves-one.png");

    // Steps only (the first epoch not finished yet).
    let mut h = history(1, 10, false);
    h.epochs.clear();
    draw_curves(&h, "steps only", &png, &svg).unwrap();

    // Epochs only, no steps recorded.
    let mut h = history(3, 5, true);
    h.steps.clear();
    draw_curves(&h, "epochs only", &png, &svg).unwrap();

    // NaN and infinite values, zero and negative learning rates.
    let mut h = history(4, 5, true);
    h.steps[3].loss = f64::NAN;
    h.steps[7].loss = f64::INFINITY;
    h.steps[0].lr = 0.0;
    h.steps[1].lr = -1.0;
    h.epochs[1].train.loss = f64::NAN;
    h.epochs[2].val.as_mut().unwrap().accuracy = f64::NAN;
    draw_curves(&h, "nan", &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep_as(&png, "curves-nan.png");

    // Everything NaN.
    let mut h = history(2, 2, true);
    for s in &mut h.steps {
        s.loss = f64::NAN;
        s.lr = f64::NAN;
    }
    for e in &mut h.epochs {
        e.train = split(f64::NAN, f64::NAN);
        e.val = Some(split(f64::NAN, f64::NAN));
    }
    draw_curves(&h, "all nan", &png, &svg).unwrap();

    // Huge values.
    let mut h = history(2, 2, true);
    h.steps[0].loss = 1e300;
    h.epochs[0].train.loss = -1e300;
    draw_curves(&h, "huge", &png, &svg).unwrap();
    no_temp_files(dir.path());
}

#[test]
fn curves_of_partial_and_diverged_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("c.png"), dir.path().join("c.svg"));

    // Stopped by a step budget within epoch 3 (2 of its 4 steps); the
    // steps' x positions are checked by plot.rs's unit tests.
    let mut h = history(3, 4, true);
    h.steps.truncate(10);
    draw_curves(&h, "partial", &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep_as(&png, "curves-partial.png");
    // Stopped within epoch 1: the caller knows the full count.
    let mut h = history(1, 4, true);
    h.steps.truncate(2);
    draw_curves_with_steps_per_epoch(&h, 4, "partial first epoch", &png, &svg).unwrap();
    check_png(&png, (1200, 900));

    // Diverged at step 2 with a learning rate of 1e6: steps only, a
    // constant rate far above 1, a loss of 1e20.
    let mut h = history(1, 2, false);
    h.epochs.clear();
    for s in &mut h.steps {
        s.lr = 1e6;
    }
    h.steps[1].loss = 5.8e20;
    draw_curves(&h, "diverged", &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep_as(&png, "curves-diverged.png");
    keep_as(&svg, "curves-diverged.svg");
    let text = std::fs::read_to_string(&svg).unwrap();
    // Short tick labels in scientific notation, not "1100000" (the SVG
    // backend puts each text on a line of its own).
    assert!(text.contains("\n1e6\n"), "no 1e6 tick label");
    assert!(text.contains("\n1.08e6\n"), "no 1.08e6 tick label");
    assert!(!text.contains("1100000"), "long tick label");
    // No legend entry for the per-epoch line that has no point yet.
    assert!(
        text.contains("\ntrain (per step)\n"),
        "no per-step legend entry"
    );
    assert!(!text.contains("\ntrain\n"), "legend entry without a line");
    no_temp_files(dir.path());
}

#[test]
fn epoch_summary_line_shows_short_epochs_in_ms() {
    let mut e = history(1, 1, true).epochs.remove(0);
    let line = |e: &EpochRecord| e.summary_line();
    e.seconds = 0.0313;
    e.images_per_sec = 18075.0;
    assert!(line(&e).ends_with("  (31 ms, 18075 img/s)"), "{}", line(&e));
    e.seconds = 0.0042;
    assert!(line(&e).contains("(4.2 ms, "), "{}", line(&e));
    e.seconds = 0.9996;
    assert!(line(&e).contains("(1.0s, "), "{}", line(&e));
    e.seconds = 12.34;
    let l = line(&e);
    assert!(
        l.starts_with("epoch   1: train loss 1.0000 acc 50.00%  val loss"),
        "{l}"
    );
    assert!(l.ends_with("  (12.3s, 18075 img/s)"), "{l}");
}

#[test]
fn curves_into_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("missing/c.png");
    let err = draw_curves(
        &history(2, 2, true),
        "x",
        &png,
        &dir.path().join("missing/c.svg"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn confusion_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("confusion.png");
    let mut m = ConfusionMatrix::new(10);
    for t in 0..10u32 {
        for p in 0..10u32 {
            let n = if t == p { 950 + t } else { (t * 3 + p) % 7 };
            for _ in 0..n {
                m.add(t, p);
            }
        }
    }
    let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    draw_confusion(&m, &names, "validation confusion", &png).unwrap();
    keep(&png);
    let img = image::open(&png).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    assert!(
        (400..=1400).contains(&w) && (400..=1400).contains(&h),
        "{w}x{h}"
    );
    check_png(&png, (w, h));

    // Long names, a class with no samples, many classes, wrong name count.
    let mut m = ConfusionMatrix::new(3);
    m.add_batch(&[0, 0, 1], &[0, 2, 1]);
    let names = vec![
        "airplane-with-a-very-long-name".to_string(),
        "b".into(),
        "c".into(),
    ];
    draw_confusion(&m, &names, "t", &png).unwrap();
    draw_confusion(&ConfusionMatrix::new(100), &[], "many", &png).unwrap();
    draw_confusion(
        &ConfusionMatrix::new(1),
        &["a".into(), "b".into()],
        "one",
        &png,
    )
    .unwrap();
    assert!(draw_confusion(&ConfusionMatrix::new(0), &[], "none", &png).is_err());
    no_temp_files(dir.path());
}

fn overlay(label: &str, shift: f64, epochs: usize) -> OverlaySeries {
    let e: Vec<f64> = (1..=epochs).map(|e| e as f64).collect();
    let f = |a: f64| e.iter().map(|x| a / x + shift).collect::<Vec<f64>>();
    OverlaySeries {
        label: label.into(),
        epochs: e.clone(),
        train_loss_mean: f(1.0),
        train_loss_std: vec![0.05; epochs],
        val_loss_mean: f(1.2),
        val_loss_std: vec![0.08; epochs],
        train_acc_mean: e.iter().map(|x| 1.0 - 0.3 / x - shift).collect(),
        train_acc_std: vec![0.01; epochs],
        val_acc_mean: e.iter().map(|x| 0.95 - 0.3 / x - shift).collect(),
        val_acc_std: vec![],
    }
}

#[test]
fn overlay_of_series() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("cmp.png"), dir.path().join("cmp.svg"));
    let series = vec![
        overlay("sgd lr=0.1", 0.0, 10),
        overlay("adam lr=1e-3", 0.02, 8),
    ];
    draw_overlay(&series, &png, &svg).unwrap();
    check_png(&png, (1200, 900));
    keep(&png);
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "sgd lr=0.1",
        "adam lr=1e-3",
        "Validation accuracy",
        "Training loss",
    ] {
        assert!(text.contains(label), "SVG lacks `{label}`");
    }
    // A shaded band is a filled polygon.
    assert!(text.contains("<polygon"), "no band");

    // Degenerate: nothing, one epoch, NaN, short vectors.
    draw_overlay(&[], &png, &svg).unwrap();
    draw_overlay(&[overlay("one", 0.0, 1)], &png, &svg).unwrap();
    let mut s = overlay("nan", 0.0, 5);
    s.val_loss_mean[2] = f64::NAN;
    s.train_loss_std[1] = f64::INFINITY;
    s.val_acc_mean.truncate(2);
    s.train_acc_std.clear();
    draw_overlay(&[s, OverlaySeries::default()], &png, &svg).unwrap();
    check_png(&png, (1200, 900));
}

#[test]
fn score_vs_size_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("lc.png"), dir.path().join("lc.svg"));
    let sizes = vec![600.0, 1200.0, 3000.0, 6000.0, 12000.0];
    let pts = ScoreVsSize {
        title: "Learning curve (LeNet-5)".into(),
        score_label: "accuracy".into(),
        train_mean: sizes.iter().map(|_| 0.99).collect(),
        train_std: vec![0.002; 5],
        val_mean: sizes.iter().map(|n: &f64| 1.0 - 20.0 / n.sqrt()).collect(),
        val_std: vec![0.01, 0.008, 0.005, 0.003, 0.002],
        train_sizes: sizes,
    };
    draw_score_vs_size(&pts, &png, &svg).unwrap();
    check_png(&png, (900, 600));
    keep(&png);
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "training score",
        "validation score",
        "training examples",
        "Learning curve (LeNet-5)",
    ] {
        assert!(text.contains(label), "SVG lacks `{label}`");
    }
    draw_score_vs_size(&ScoreVsSize::default(), &png, &svg).unwrap();
    let one = ScoreVsSize {
        train_sizes: vec![100.0],
        train_mean: vec![0.5],
        val_mean: vec![0.4],
        ..Default::default()
    };
    draw_score_vs_size(&one, &png, &svg).unwrap();
}
