//! The counts of `GraphSpec::counts` for every built-in model equal
//! PyTorch's: parameters as `sum(p.numel() for p in model.parameters())`,
//! MACs as `torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2, convs
//! and linears only). The expected figures are worked out by hand from the
//! layers in `models.rs`, the arithmetic in the comments; ResNet-20's and
//! VGG's equal the figures measured with PyTorch in the benchmark workloads
//! (W5: 272,474 parameters and 40,813,184 MACs; W6: 814,122 and
//! 39,160,320), and airbench94's those of `xtask/torch_bench.py counts`
//! (W8: 1,972,792 and 118,147,360).

use cnn_core::graph::ModelCounts;
use cnn_core::models::{self, ModelOptions};

fn counts(name: &str, input: [usize; 3]) -> ModelCounts {
    models::builtin(name, &ModelOptions::new(input, 10))
        .unwrap()
        .counts()
        .unwrap()
}

/// The (name, params, buffers, MACs) of the layers that have any.
fn weighted(c: &ModelCounts) -> Vec<(&str, usize, usize, u64)> {
    c.layers
        .iter()
        .filter(|l| l.params + l.buffers > 0 || l.macs > 0)
        .map(|l| (l.name.as_str(), l.params, l.buffers, l.macs))
        .collect()
}

#[test]
fn lenet5_on_mnist() {
    let c = counts("lenet5", [1, 28, 28]);
    assert_eq!(
        weighted(&c),
        [
            // conv1 1->6 5x5 pad 2: 6x28x28 = 4,704 outputs x 1x5x5.
            ("conv1", 6 * 25 + 6, 0, 4_704 * 25),
            // conv2 6->16 5x5 on 6x14x14: 16x10x10 = 1,600 outputs x 6x5x5.
            ("conv2", 16 * 150 + 16, 0, 1_600 * 150),
            // fc1 400->120, fc2 120->84, fc3 84->10.
            ("fc1", 400 * 120 + 120, 0, 48_000),
            ("fc2", 120 * 84 + 84, 0, 10_080),
            ("fc3", 84 * 10 + 10, 0, 840),
        ]
    );
    // 156 + 2,416 + 48,120 + 10,164 + 850.
    assert_eq!(c.params, 61_706);
    assert_eq!(c.buffers, 0);
    // 117,600 + 240,000 + 48,000 + 10,080 + 840 (W1's "about 0.83 MFLOP
    // forward": 2 x 416,520 = 833,040).
    assert_eq!(c.macs, 416_520);
    // 2 x (3 x 416,520 - conv1's 117,600): conv1 needs no input gradient.
    assert_eq!(c.training_flops, 2 * (3 * 416_520 - 117_600));
    assert_eq!(c.forward_flops(), 833_040);
    // Outputs: conv1 + relu 4,704 each, pool 1,176, conv2 + relu 1,600
    // each, pool 400, flatten 400, fc1 + relu 120 each, fc2 + relu 84
    // each, fc3 10.
    assert_eq!(
        c.activation_elements,
        2 * 4_704 + 1_176 + 2 * 1_600 + 400 + 400 + 2 * 120 + 2 * 84 + 10
    );
    assert_eq!(c.layers.last().unwrap().output.dims(), &[10]);
}

#[test]
fn article_on_cifar_shapes() {
    let c = counts("article", [3, 32, 32]);
    assert_eq!(
        weighted(&c),
        [
            // conv1 3->6 3x3 pad 1: 6x32x32 = 6,144 outputs x 3x3x3.
            ("conv1", 6 * 27 + 6, 0, 6_144 * 27),
            // conv2 6->12 3x3 pad 1 on 6x16x16: 12x16x16 = 3,072 x 6x3x3.
            ("conv2", 12 * 54 + 12, 0, 3_072 * 54),
            // fc1 768 (12x8x8) -> 256, fc2 256 -> 10.
            ("fc1", 768 * 256 + 256, 0, 196_608),
            ("fc2", 256 * 10 + 10, 0, 2_560),
        ]
    );
    // 168 + 660 + 196,864 + 2,570.
    assert_eq!(c.params, 200_262);
    // 165,888 + 165,888 + 196,608 + 2,560.
    assert_eq!(c.macs, 530_944);
    assert_eq!(c.training_flops, 2 * (3 * 530_944 - 165_888));
}

#[test]
fn vgg_on_cifar_shapes() {
    let c = counts("vgg", [3, 32, 32]);
    assert_eq!(
        weighted(&c),
        [
            // Block 1 at 32x32 (32x1,024 = 32,768 outputs): 3->32, 32->32.
            ("features.1.1", 32 * 27 + 32, 0, 32_768 * 27),
            ("features.1.2", 32 * 288 + 32, 0, 32_768 * 288),
            // Block 2 at 16x16 (64x256 = 16,384 outputs): 32->64, 64->64.
            ("features.2.1", 64 * 288 + 64, 0, 16_384 * 288),
            ("features.2.2", 64 * 576 + 64, 0, 16_384 * 576),
            // Block 3 at 8x8 (128x64 = 8,192 outputs): 64->128, 128->128.
            ("features.3.1", 128 * 576 + 128, 0, 8_192 * 576),
            ("features.3.2", 128 * 1_152 + 128, 0, 8_192 * 1_152),
            // fc1 2,048 (128x4x4) -> 256, fc2 256 -> 10.
            ("fc1", 2_048 * 256 + 256, 0, 524_288),
            ("fc2", 256 * 10 + 10, 0, 2_560),
        ]
    );
    // 896 + 9,248 + 18,496 + 36,928 + 73,856 + 147,584 + 524,544 + 2,570.
    assert_eq!(c.params, 814_122);
    // 884,736 + 3 x 9,437,184 + 2 x 4,718,592 + 524,288 + 2,560.
    assert_eq!(c.macs, 39_160_320);
    // W6's "~233 MFLOP per training image": the stem needs no input gradient.
    assert_eq!(c.training_flops, 2 * (3 * 39_160_320 - 884_736));
    assert_eq!(c.training_flops, 233_192_448);
}

#[test]
fn vgg_with_batch_norm_counts_running_statistics_as_buffers() {
    let opts = ModelOptions {
        batch_norm: true,
        ..ModelOptions::new([3, 32, 32], 10)
    };
    let c = models::vgg_small(&opts).unwrap().counts().unwrap();
    // Convolutions lose their biases (32 + 32 + 64 + 64 + 128 + 128 = 448)
    // and each gains a batch norm with weight and bias (2 x 448 = 896):
    // 814,122 - 448 + 896 parameters; running mean and variance 2 x 448.
    assert_eq!(c.params, 814_570);
    assert_eq!(c.buffers, 896);
    assert_eq!(c.macs, 39_160_320);
    let bn = c
        .layers
        .iter()
        .find(|l| l.name == "features.1.1_bn")
        .unwrap();
    assert_eq!(
        (bn.kind, bn.params, bn.buffers, bn.macs),
        ("batch_norm2d", 64, 64, 0)
    );
}

#[test]
fn resnet20_on_cifar_shapes_equals_pytorch() {
    let c = counts("resnet20", [3, 32, 32]);
    // Parameters: stem conv 16x3x3x3 = 432 + bn 32; stage 1: six 16->16
    // 3x3 convs (2,304 each) + six bns (32 each); stage 2: 16->32 3x3
    // (4,608) + five 32->32 (9,216 each) + the 1x1 shortcut 16->32 (512) +
    // seven bns (64 each); stage 3: 32->64 3x3 (18,432) + five 64->64
    // (36,864 each) + 1x1 32->64 (2,048) + seven bns (128 each); fc 64x10 +
    // 10:
    // 464 + 14,016 + 51,648 + 205,696 + 650.
    assert_eq!(
        c.params,
        464 + (6 * 2_304 + 6 * 32) + 51_648 + 205_696 + 650
    );
    assert_eq!(c.params, 272_474);
    // Running statistics: 2 x (16 + 6 x 16 + 7 x 32 + 7 x 64) channels.
    assert_eq!(c.buffers, 2 * 784);
    // MACs: stem 16x32x32 outputs x 27 = 442,368; stage 1: six 16x32x32 x
    // 144 = 6 x 2,359,296; stage 2 (32x16x16 = 8,192 outputs): 8,192 x 144
    // + 8,192 x 16 (shortcut) + 5 x 8,192 x 288; stage 3 (64x8x8 = 4,096):
    // 4,096 x 288 + 4,096 x 32 + 5 x 4,096 x 576; fc 640.
    let stage2 = 8_192 * 144 + 8_192 * 16 + 5 * 8_192 * 288;
    let stage3 = 4_096 * 288 + 4_096 * 32 + 5 * 4_096 * 576;
    assert_eq!(stage2, 13_107_200);
    assert_eq!(stage3, 13_107_200);
    assert_eq!(c.macs, 442_368 + 6 * 2_359_296 + stage2 + stage3 + 640);
    assert_eq!(c.macs, 40_813_184);
    // W5's "~245 MFLOP per training image": 2 x (3 x 40,813,184 - 442,368).
    assert_eq!(c.training_flops, 243_994_368);
    let convs = c.layers.iter().filter(|l| l.kind == "conv2d").count();
    assert_eq!(convs, 21);
    let adds: Vec<_> = c.layers.iter().filter(|l| l.kind == "add").collect();
    assert_eq!(adds.len(), 9);
    assert!(
        adds.iter()
            .all(|a| a.params == 0 && a.macs == 0 && a.input_grad)
    );
    let stem = &c.layers[0];
    assert_eq!((stem.name.as_str(), stem.input_grad), ("conv1", false));
    // The first shortcut reads the stage's input, after the stem.
    let shortcut = c
        .layers
        .iter()
        .find(|l| l.name == "layer2.0.downsample.0")
        .unwrap();
    assert_eq!(shortcut.output.dims(), &[32, 16, 16]);
    assert!(shortcut.input_grad);
}

#[test]
fn airbench94_on_cifar_shapes_equals_pytorch() {
    let c = counts("airbench94", [3, 32, 32]);
    assert_eq!(
        weighted(&c),
        [
            // whiten 3->24 2x2, no padding, bias: 24x31x31 = 23,064 outputs x 3x2x2.
            ("whiten", 24 * 12 + 24, 0, 23_064 * 12),
            // block1: conv1 24->64 at 31x31 (61,504 outputs x 24x3x3), pool
            // to 15x15, bn, conv2 64->64 at 15x15 (14,400 outputs x 576), bn.
            ("block1.conv1", 64 * 216, 0, 61_504 * 216),
            ("block1.norm1", 128, 128, 0),
            ("block1.conv2", 64 * 576, 0, 14_400 * 576),
            ("block1.norm2", 128, 128, 0),
            // block2: conv1 64->256 at 15x15 (57,600 x 576), pool to 7x7,
            // conv2 256->256 at 7x7 (12,544 outputs x 2,304).
            ("block2.conv1", 256 * 576, 0, 57_600 * 576),
            ("block2.norm1", 512, 512, 0),
            ("block2.conv2", 256 * 2_304, 0, 12_544 * 2_304),
            ("block2.norm2", 512, 512, 0),
            // block3: conv1 256->256 at 7x7, pool to 3x3, conv2 at 3x3
            // (2,304 outputs x 2,304).
            ("block3.conv1", 256 * 2_304, 0, 12_544 * 2_304),
            ("block3.norm1", 512, 512, 0),
            ("block3.conv2", 256 * 2_304, 0, 2_304 * 2_304),
            ("block3.norm2", 512, 512, 0),
            // max pool 3 at 3x3 -> 256 features; head 256 -> 10, no bias.
            ("head", 2_560, 0, 2_560),
        ]
    );
    // 312 + (13,824 + 36,864 + 256) + (147,456 + 589,824 + 1,024)
    // + (2 x 589,824 + 1,024) + 2,560.
    assert_eq!(c.params, 312 + 50_944 + 738_304 + 1_180_672 + 2_560);
    assert_eq!(c.params, 1_972_792);
    // Running statistics: 2 x (2 x 64 + 4 x 256) channels.
    assert_eq!(c.buffers, 2_304);
    // 276,768 + 13,284,864 + 8,294,400 + 33,177,600 + 2 x 28,901,376
    // + 5,308,416 + 2,560 (the same as torch.utils.flop_counter / 2).
    assert_eq!(c.macs, 118_147_360);
    // The whitening conv needs no input gradient.
    assert_eq!(c.training_flops, 2 * (3 * 118_147_360 - 276_768));
    assert_eq!(c.layers[0].output.dims(), &[24, 31, 31]);
    assert_eq!(c.layers.last().unwrap().output.dims(), &[10]);
}
