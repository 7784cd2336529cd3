//! The one error type of the framework's core.

use crate::shape::Shape;

/// Result alias used throughout the framework.
pub type Result<T, E = CnnError> = std::result::Result<T, E>;

/// Everything that can go wrong in cnn-core and in a backend.
///
/// Library code returns these instead of panicking on user input; each
/// message names the thing that was wrong and the values involved.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CnnError {
    /// A layer received (or would produce) a shape it cannot work with.
    #[error("layer `{layer}`: expected input shape {expected}, got {actual}")]
    ShapeMismatch {
        layer: String,
        expected: Shape,
        actual: Shape,
    },
    /// A linear layer's declared input features differ from what reaches it.
    #[error(
        "layer `{layer}`: the input gives {actual} features (shape {input_shape}) where the linear layer expects {expected}"
    )]
    FeatureMismatch {
        layer: String,
        expected: usize,
        actual: usize,
        input_shape: Shape,
    },
    /// Convolution, pooling or other geometry that cannot be computed.
    #[error("invalid geometry{}: {message}", layer_suffix(.layer))]
    InvalidGeometry {
        layer: Option<String>,
        message: String,
    },
    /// A hyper-parameter or configuration value out of its domain.
    #[error("invalid value for `{name}`: {message}")]
    InvalidValue { name: String, message: String },
    /// A buffer handed to a backend op has the wrong number of elements.
    #[error("op `{op}`: buffer `{buffer}` has {actual} elements, expected {expected}")]
    BufferLength {
        op: &'static str,
        buffer: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A class index outside `0..classes`.
    #[error("op `{op}`: target {target} at row {row} is out of range for {classes} classes")]
    TargetOutOfRange {
        op: &'static str,
        row: usize,
        target: u32,
        classes: usize,
    },
    /// A size computed from shapes or a model spec (elements, parameters, a
    /// window's span) that does not fit in `usize`: an error, never a
    /// wrapped-around value.
    #[error("{}too large: {what} overflows {}-bit sizes", layer_prefix(.layer), usize::BITS)]
    SizeOverflow {
        layer: Option<String>,
        /// The quantity and the operands that overflow it.
        what: String,
    },
    /// A state_dict entry that is missing, unexpected or of the wrong shape.
    #[error("state_dict: {0}")]
    StateDict(String),
    /// The model graph is malformed (unknown node, empty graph, ...).
    #[error("graph: {0}")]
    Graph(String),
    /// A backend-specific failure (device, driver, compiler).
    #[error("backend `{backend}`: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    /// A precision mode the backend does not compute in.
    #[error("--precision {precision}: the {backend} backend {reason}")]
    UnsupportedPrecision {
        backend: &'static str,
        precision: crate::Precision,
        /// Why, as a phrase after the backend's name ("computes in f32
        /// only ...", "needs compute capability 8.0 ...").
        reason: String,
    },
}

fn layer_prefix(layer: &Option<String>) -> String {
    match layer {
        Some(name) => format!("layer `{name}`: "),
        None => String::new(),
    }
}

fn layer_suffix(layer: &Option<String>) -> String {
    match layer {
        Some(name) => format!(" in layer `{name}`"),
        None => String::new(),
    }
}

impl CnnError {
    /// Shorthand for [`CnnError::InvalidGeometry`] without a layer name.
    pub fn geometry(message: impl Into<String>) -> Self {
        CnnError::InvalidGeometry {
            layer: None,
            message: message.into(),
        }
    }

    /// Shorthand for [`CnnError::InvalidValue`].
    pub fn value(name: impl Into<String>, message: impl Into<String>) -> Self {
        CnnError::InvalidValue {
            name: name.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`CnnError::SizeOverflow`] in `layer`.
    pub fn overflow(layer: Option<&str>, what: impl Into<String>) -> Self {
        CnnError::SizeOverflow {
            layer: layer.map(str::to_string),
            what: what.into(),
        }
    }

    /// Attach a layer name to a geometry or size error that has none.
    pub fn in_layer(self, name: &str) -> Self {
        match self {
            CnnError::InvalidGeometry {
                layer: None,
                message,
            } => CnnError::InvalidGeometry {
                layer: Some(name.to_string()),
                message,
            },
            CnnError::SizeOverflow { layer: None, what } => CnnError::SizeOverflow {
                layer: Some(name.to_string()),
                what,
            },
            other => other,
        }
    }
}

/// Check that a buffer has exactly `expected` elements.
pub fn check_len(
    op: &'static str,
    buffer: &'static str,
    actual: usize,
    expected: usize,
) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(CnnError::BufferLength {
            op,
            buffer,
            expected,
            actual,
        })
    }
}
