//! From dataset to batches: the synthetic set, splits, shuffling,
//! augmentation and the background loader.

use std::sync::Arc;
use std::time::Instant;

use cnn_core::Shape;
use cnn_data::{
    Augment, Batch, Dataset, ImageSet, Loader, LoaderConfig, Normalization, Pixels, Subset,
    SyntheticConfig, epoch_order, split, synthetic,
};

fn small_synth(seed: u64) -> Dataset {
    synthetic(&SyntheticConfig {
        seed,
        train: 600,
        test: 200,
        ..SyntheticConfig::default()
    })
    .unwrap()
}

/// A dataset of `n` 2x3x4 float images whose pixels encode their index.
fn indexed(n: usize, n_test: usize) -> Dataset {
    let make = |n: usize, base: usize| {
        let px: Vec<f32> = (0..n * 24)
            .map(|v| ((base * 24 + v) % 97) as f32 / 97.0)
            .collect();
        let labels = (0..n).map(|i| ((i + base) % 3) as u32).collect();
        ImageSet::new(Shape::from([2, 3, 4]), Pixels::F32(px), labels).unwrap()
    };
    Dataset::new(
        "indexed",
        vec!["a".into(), "b".into(), "c".into()],
        make(n, 0),
        make(n_test, 1000),
        Normalization::new(vec![0.5, 0.25], vec![0.5, 2.0]).unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------- synthetic

#[test]
fn synthetic_is_deterministic_and_seeded() {
    let a = small_synth(7);
    let b = small_synth(7);
    let c = small_synth(8);
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!(a.normalization, b.normalization);
    assert_ne!(a.train.pixels(), c.train.pixels());
    assert_ne!(a.train.pixels(), a.test.pixels());
    assert_eq!(a.shape.dims(), &[3, 32, 32]);
    assert_eq!(a.num_classes(), 10);
}

#[test]
fn synthetic_labels_balanced_values_finite() {
    let ds = small_synth(1);
    let mut counts = [0usize; 10];
    for &l in ds.train.labels() {
        counts[l as usize] += 1;
    }
    // 60 per class before ~8% label noise.
    assert!(counts.iter().all(|&c| (40..=80).contains(&c)), "{counts:?}");
    let norm = &ds.normalization;
    assert!(norm.mean.iter().all(|m| (0.2..0.8).contains(m)), "{norm:?}");
    assert!(norm.std.iter().all(|s| (0.1..0.5).contains(s)), "{norm:?}");
    let mut img = vec![0.0; 3072];
    let mut sum = 0.0f64;
    for i in 0..ds.train.len() {
        ds.train.write_image(i, norm, &mut img);
        assert!(img.iter().all(|v| v.is_finite()));
        sum += img.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let mean = sum / (ds.train.len() * 3072) as f64;
    assert!(mean.abs() < 1e-3, "normalised mean {mean}");
}

/// Learnable but not trivial: a nearest-class-mean classifier fitted on the
/// training set beats chance on the test set by a wide margin, yet stays
/// far from perfect; the label noise is near its configured rate.
#[test]
fn synthetic_is_learnable_but_hard() {
    let ds = synthetic(&SyntheticConfig {
        seed: 3,
        train: 2000,
        test: 500,
        ..Default::default()
    })
    .unwrap();
    let norm = &ds.normalization;
    let mut means = vec![vec![0f32; 3072]; 10];
    let mut counts = [0f32; 10];
    let mut img = vec![0.0; 3072];
    for i in 0..ds.train.len() {
        ds.train.write_image(i, norm, &mut img);
        let l = ds.train.labels()[i] as usize;
        counts[l] += 1.0;
        for (m, v) in means[l].iter_mut().zip(&img) {
            *m += v;
        }
    }
    for (m, c) in means.iter_mut().zip(counts) {
        m.iter_mut().for_each(|v| *v /= c);
    }
    let mut correct = 0;
    for i in 0..ds.test.len() {
        ds.test.write_image(i, norm, &mut img);
        let dist = |m: &Vec<f32>| {
            m.iter()
                .zip(&img)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
        };
        let best = (0..10)
            .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
            .unwrap();
        correct += usize::from(best as u32 == ds.test.labels()[i]);
    }
    let acc = correct as f64 / ds.test.len() as f64;
    println!("synthetic nearest-class-mean test accuracy: {acc:.3}");
    assert!(acc > 0.3 && acc < 0.95, "accuracy {acc}");
}

#[test]
fn synthetic_default_is_fast() {
    let t = Instant::now();
    let ds = synthetic(&SyntheticConfig::default()).unwrap();
    let dt = t.elapsed();
    println!("synthetic 5000+1000 generated in {dt:?}");
    assert_eq!((ds.train.len(), ds.test.len()), (5000, 1000));
    // Generous: tests build at opt-level 1 on shared machines; release
    // builds take a few tens of milliseconds.
    assert!(dt.as_secs_f64() < 5.0, "{dt:?}");
}

// ---------------------------------------------------------------- splits

#[test]
fn validation_is_the_tail_of_train() {
    let ds = indexed(105, 7);
    let s = split(&ds, 0.1).unwrap();
    // floor(105 * 0.9) = 94.
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (94, 11, 7));
    assert_eq!(s.train.offset(), 0);
    assert_eq!(s.val.offset(), 94);
    assert_eq!(s.val.labels(), &ds.train.labels()[94..]);
    assert!(!s.val_is_test);

    let s = split(&ds, 0.0).unwrap();
    assert!(s.val_is_test);
    assert_eq!((s.train.len(), s.val.len()), (105, 7));
    assert_eq!(s.val.labels(), ds.test.labels());

    let s = split(&ds, 0.1).unwrap().limit_train(20);
    assert_eq!((s.train.len(), s.val.len()), (20, 11));
    assert_eq!(s.train.labels(), &ds.train.labels()[..20]);
    assert_eq!(s.val.offset(), 94, "limiting train keeps validation fixed");
    assert_eq!(split(&ds, 0.1).unwrap().limit_train(1000).train.len(), 94);

    assert!(split(&ds, 1.0).is_err());
    assert!(split(&ds, -0.1).is_err());
    // MNIST-sized: 60000 -> 54000 + 6000.
    let s = split(&indexed(60000, 1), 0.1).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (54000, 6000));
}

// ---------------------------------------------------------------- shuffling

#[test]
fn shuffle_is_a_deterministic_permutation_per_epoch() {
    let o0 = epoch_order(42, 0, 500);
    let mut sorted = o0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..500).collect::<Vec<_>>());
    assert_eq!(o0, epoch_order(42, 0, 500));
    assert_ne!(o0, epoch_order(42, 1, 500));
    assert_ne!(o0, epoch_order(43, 0, 500));
    // (seed, epoch) pairs with equal sums still differ.
    assert_ne!(epoch_order(1, 0, 500), epoch_order(0, 1, 500));
}

// ---------------------------------------------------------------- loader

/// The expected batches of an epoch, built by hand from the order, the
/// per-image normalisation and the augmentation draws.
fn reference_epoch(
    data: &Subset,
    norm: &Normalization,
    cfg: &LoaderConfig,
    epoch: u64,
) -> Vec<Batch> {
    let n = data.len();
    let order: Vec<usize> = if cfg.shuffle {
        epoch_order(cfg.seed, epoch, n)
    } else {
        (0..n).collect()
    };
    let numel = data.shape().numel();
    let d = data.shape().dims();
    let mut out = Vec::new();
    for (index, chunk) in order.chunks(cfg.batch_size).enumerate() {
        if cfg.drop_last && chunk.len() < cfg.batch_size {
            break;
        }
        let mut images = vec![0.0; chunk.len() * numel];
        let mut plain = vec![0.0; numel];
        for (k, &i) in chunk.iter().enumerate() {
            data.write_image(i, norm, &mut plain);
            cfg.augment.draw(cfg.seed, epoch, i as u64).apply(
                &plain,
                [d[0], d[1], d[2]],
                norm,
                &mut images[k * numel..(k + 1) * numel],
            );
        }
        out.push(Batch {
            images,
            labels: chunk.iter().map(|&i| data.label(i)).collect(),
            n: chunk.len(),
            shape: data.shape().with_batch(chunk.len()),
            epoch,
            index,
        });
    }
    out
}

#[test]
fn loader_matches_sequential_iteration() {
    let ds = indexed(103, 5);
    let train = split(&ds, 0.1).unwrap().train; // 92 images
    let norm = ds.normalization.clone();
    for (shuffle, drop_last, augment, prefetch) in [
        (true, false, Augment::none(), 2),
        (true, true, Augment::standard(), 2),
        (
            false,
            false,
            Augment {
                pad: 1,
                flip: false,
                cutout: 0,
            },
            0,
        ),
        (true, false, Augment::standard(), 1),
    ] {
        let cfg = LoaderConfig {
            batch_size: 10,
            shuffle,
            drop_last,
            seed: 9,
            augment,
            prefetch,
        };
        let loader = Loader::new(train.clone(), norm.clone(), cfg.clone()).unwrap();
        assert_eq!(loader.batches_per_epoch(), if drop_last { 9 } else { 10 });
        for epoch in 0..3 {
            let expected = reference_epoch(&train, &norm, &cfg, epoch);
            assert_eq!(expected.len(), loader.batches_per_epoch());
            let iter = loader.epoch(epoch);
            assert_eq!(iter.len(), expected.len());
            let mut got = 0;
            for (b, e) in iter.zip(&expected) {
                assert_eq!(&b, e, "epoch {epoch} batch {}", e.index);
                assert_eq!(loader.batch(epoch, b.index), b);
                got += 1;
                loader.recycle(b);
            }
            assert_eq!(got, expected.len());
        }
    }
}

#[test]
fn loader_starts_mid_epoch_and_differs_across_epochs() {
    let ds = indexed(50, 5);
    let data = Subset::full(ds.train.clone());
    let cfg = LoaderConfig {
        seed: 5,
        ..LoaderConfig::train(8)
    };
    let loader = Loader::new(data, ds.normalization.clone(), cfg).unwrap();
    let full: Vec<Batch> = loader.epoch(4).collect();
    assert_eq!(full.len(), 7);
    assert_eq!(full[6].n, 2, "last partial batch kept");
    let resumed: Vec<Batch> = loader.epoch_from(4, 3).collect();
    assert_eq!(resumed, full[3..]);
    assert_eq!(loader.epoch_from(4, 7).count(), 0);
    assert_eq!(loader.epoch_from(4, 100).count(), 0);
    let other: Vec<Batch> = loader.epoch(5).collect();
    assert_ne!(other[0].labels.len(), 0);
    assert_ne!(full[0].images, other[0].images);
    // Every sample once per epoch.
    let mut seen: Vec<u32> = full.iter().flat_map(|b| b.labels.clone()).collect();
    let mut want = ds.train.labels().to_vec();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want);
}

#[test]
fn loader_reuses_buffers_and_stops_early() {
    let ds = small_synth(2);
    let data = Subset::full(Arc::clone(&ds.train));
    let loader = Loader::new(data, ds.normalization.clone(), LoaderConfig::train(64)).unwrap();
    let mut ptrs = Vec::new();
    for b in loader.epoch(0) {
        ptrs.push(b.images.as_ptr() as usize);
        assert_eq!(b.shape.dims()[1..], [3, 32, 32]);
        assert_eq!(b.images.len(), b.n * 3072);
        loader.recycle(b);
    }
    ptrs.sort_unstable();
    ptrs.dedup();
    assert!(
        ptrs.len() <= 5,
        "{} distinct buffers for 10 batches",
        ptrs.len()
    );
    // Dropping an iterator early must not hang.
    let mut it = loader.epoch(1);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn loader_rejects_bad_config() {
    let ds = indexed(10, 1);
    let data = Subset::full(ds.train.clone());
    assert!(
        Loader::new(
            data.clone(),
            ds.normalization.clone(),
            LoaderConfig::train(0)
        )
        .is_err()
    );
    assert!(Loader::new(data, Normalization::mnist(), LoaderConfig::train(4)).is_err());
}

// ---------------------------------------------------------------- augmentation

#[test]
fn augmentation_preserves_shape_and_is_deterministic() {
    let ds = small_synth(4);
    let data = Subset::full(ds.train.clone());
    let cfg = LoaderConfig {
        augment: Augment::standard(),
        seed: 1,
        ..LoaderConfig::train(32)
    };
    let aug = Loader::new(data.clone(), ds.normalization.clone(), cfg.clone()).unwrap();
    let plain = Loader::new(
        data,
        ds.normalization.clone(),
        LoaderConfig {
            augment: Augment::none(),
            ..cfg
        },
    )
    .unwrap();
    let a1 = aug.batch(2, 3);
    let a2 = aug.batch(2, 3);
    let p = plain.batch(2, 3);
    assert_eq!(a1, a2);
    assert_eq!(a1.shape, p.shape);
    assert_eq!(a1.labels, p.labels);
    assert_ne!(a1.images, p.images);
    assert_ne!(aug.batch(3, 3).images, a1.images);
    // Padding shows up as the normalised value of a black pixel.
    let fill = ds.normalization.zero_value(0);
    assert!(a1.images.contains(&fill));
}
