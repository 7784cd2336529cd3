//! Build-time validation (invalid geometry is a typed error naming the
//! layer) and the inline parameter list a layer returns.

use crate::backend::{Conv2dGeometry, Pool2dGeometry};
use crate::error::CnnError;
use crate::graph::GraphBuilder;
use crate::layers::{LayerParams, LayerSpec};

fn err_of(b: GraphBuilder) -> CnnError {
    b.spec().unwrap_err()
}

#[test]
fn zero_stride_is_rejected() {
    let e = err_of(GraphBuilder::new([1, 8, 8]).conv2d("c", Conv2dGeometry::new(2, 3).stride(0)));
    assert_eq!(
        e.to_string(),
        "invalid geometry in layer `c`: stride height must be at least 1"
    );
}

#[test]
fn kernel_larger_than_padded_input_is_rejected() {
    let e =
        err_of(GraphBuilder::new([1, 4, 4]).conv2d("big", Conv2dGeometry::new(2, 7).padding(1)));
    let msg = e.to_string();
    assert!(
        msg.contains("`big`")
            && msg.contains("kernel height 7")
            && msg.contains("padded input height 6"),
        "{msg}"
    );
    let e = err_of(GraphBuilder::new([1, 3, 3]).max_pool2d(Pool2dGeometry::new(4)));
    assert!(
        e.to_string().contains("larger than the padded input"),
        "{e}"
    );
}

#[test]
fn groups_must_divide_channels() {
    let e = err_of(GraphBuilder::new([6, 8, 8]).conv2d("g", Conv2dGeometry::new(4, 3).groups(4)));
    assert_eq!(
        e.to_string(),
        "invalid geometry in layer `g`: groups 4 must divide both the input channels 6 and the output channels 4"
    );
    let e = err_of(GraphBuilder::new([6, 8, 8]).conv2d("g0", Conv2dGeometry::new(6, 3).groups(0)));
    assert!(e.to_string().contains("groups must be at least 1"));
}

#[test]
fn dropout_probability_outside_unit_interval_is_rejected() {
    for p in [1.0, -0.1, f32::NAN] {
        let e = err_of(GraphBuilder::new([4]).layer("drop", LayerSpec::Dropout { p }));
        assert!(
            e.to_string().contains("drop.p") && e.to_string().contains("outside [0, 1)"),
            "{e}"
        );
    }
}

#[test]
fn linear_needs_a_flat_input() {
    let e = err_of(GraphBuilder::new([3, 4, 4]).linear("fc", 10));
    assert!(e.to_string().contains("insert a flatten"), "{e}");
}

#[test]
fn residual_add_of_different_shapes_names_both() {
    let e = err_of(
        GraphBuilder::new([3, 8, 8])
            .conv2d("a", Conv2dGeometry::new(4, 3).padding(1))
            .add("sum", "input"),
    );
    assert_eq!(
        e.to_string(),
        "layer `sum`: expected input shape [4, 8, 8], got [3, 8, 8]"
    );
}

#[test]
fn unknown_and_duplicate_node_names_are_errors() {
    let e = err_of(GraphBuilder::new([4]).linear("fc", 2).add("sum", "nowhere"));
    assert!(e.to_string().contains("`nowhere`"));
    let e = err_of(GraphBuilder::new([4]).linear("fc", 4).linear("fc", 2));
    assert!(e.to_string().contains("two nodes are named `fc`"));
}

#[test]
fn pool_padding_over_half_the_kernel_is_rejected() {
    let e = err_of(GraphBuilder::new([1, 8, 8]).max_pool2d(Pool2dGeometry::new(2).padding(2)));
    assert!(e.to_string().contains("at most half the kernel"), "{e}");
}

#[test]
fn layer_params_skip_absent_slots_in_order() {
    let (weight, bias) = ("weight", "bias");
    let both: Vec<_> = LayerParams::new([Some(weight), Some(bias)]).collect();
    assert_eq!(both, ["weight", "bias"]);
    let no_bias: Vec<_> = LayerParams::new([Some(weight), None]).collect();
    assert_eq!(no_bias, ["weight"]);
    assert_eq!(LayerParams::<&str>::none().count(), 0);
}
