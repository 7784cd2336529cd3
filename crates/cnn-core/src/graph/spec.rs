//! `GraphSpec`: a model as data (input shape plus named nodes), with shape
//! inference; and `GraphBuilder`, the fluent way to write one.

use crate::backend::{Activation, Conv2dGeometry, Pool2dGeometry};
use crate::error::{CnnError, Result};
use crate::layers::LayerSpec;
use crate::shape::Shape;

/// The name that refers to the graph's input in `NodeSpec::input`.
pub const INPUT: &str = "input";

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub enum NodeOp {
    /// A layer applied to the node's input.
    Layer(LayerSpec),
    /// The residual add: the node's input plus the output of node `with`.
    Add { add: String },
}

/// One node: a unique name (the state_dict prefix of its parameters), its
/// input (the previous node when `None`; [`INPUT`] for the graph input) and
/// what it computes.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeSpec {
    pub name: String,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub input: Option<String>,
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub op: NodeOp,
}

/// A whole model: per-sample input shape (`[C, H, W]`) and nodes in
/// execution order. The last node is the output.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GraphSpec {
    pub input: Shape,
    pub nodes: Vec<NodeSpec>,
}

/// Shapes and wiring resolved from a [`GraphSpec`].
#[derive(Debug, Clone)]
pub struct ResolvedGraph {
    /// Per node: index of its primary input (`None` = graph input).
    pub inputs: Vec<Option<usize>>,
    /// Per node: index of the node added to it (residual adds only).
    pub adds: Vec<Option<Option<usize>>>,
    /// Per node: per-sample output shape.
    pub shapes: Vec<Shape>,
}

impl GraphSpec {
    /// Resolve names and infer every node's shape; the first problem is
    /// returned as an error naming the node and both shapes.
    pub fn resolve(&self) -> Result<ResolvedGraph> {
        if self.nodes.is_empty() {
            return Err(CnnError::Graph("a model needs at least one layer".into()));
        }
        if self.input.rank() == 0 || self.input.numel() == 0 {
            return Err(CnnError::Graph(format!(
                "input shape {} has no elements",
                self.input
            )));
        }
        let mut names: std::collections::HashMap<&str, usize> = Default::default();
        let mut inputs = Vec::with_capacity(self.nodes.len());
        let mut adds = Vec::with_capacity(self.nodes.len());
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.nodes.len());
        let lookup = |names: &std::collections::HashMap<&str, usize>,
                      node: &str,
                      r: &str|
         -> Result<Option<usize>> {
            if r == INPUT {
                return Ok(None);
            }
            names.get(r).map(|&i| Some(i)).ok_or_else(|| {
                CnnError::Graph(format!(
                    "node `{node}` refers to `{r}`, which is not an earlier node"
                ))
            })
        };
        for (i, node) in self.nodes.iter().enumerate() {
            if node.name.is_empty() || node.name == INPUT {
                return Err(CnnError::Graph(format!(
                    "node {i} has the reserved or empty name `{}`",
                    node.name
                )));
            }
            let input = match &node.input {
                Some(r) => lookup(&names, &node.name, r)?,
                None => i.checked_sub(1),
            };
            let in_shape = match input {
                Some(j) => shapes[j].clone(),
                None => self.input.clone(),
            };
            let (out, add) = match &node.op {
                NodeOp::Layer(spec) => (spec.output_shape(&node.name, &in_shape)?, None),
                NodeOp::Add { add } => {
                    let other = lookup(&names, &node.name, add)?;
                    let other_shape = other.map_or(&self.input, |j| &shapes[j]);
                    if *other_shape != in_shape {
                        return Err(CnnError::ShapeMismatch {
                            layer: node.name.clone(),
                            expected: in_shape,
                            actual: other_shape.clone(),
                        });
                    }
                    (in_shape, Some(other))
                }
            };
            if names.insert(&node.name, i).is_some() {
                return Err(CnnError::Graph(format!(
                    "two nodes are named `{}`",
                    node.name
                )));
            }
            inputs.push(input);
            adds.push(add);
            shapes.push(out);
        }
        Ok(ResolvedGraph {
            inputs,
            adds,
            shapes,
        })
    }

    /// The per-sample output shape.
    pub fn output_shape(&self) -> Result<Shape> {
        Ok(self.resolve()?.shapes.pop().unwrap_or_default())
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> Result<usize> {
        let r = self.resolve()?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match &node.op {
                NodeOp::Layer(spec) => {
                    let in_shape = r.inputs[i].map_or(&self.input, |j| &r.shapes[j]);
                    spec.num_params(in_shape)
                }
                NodeOp::Add { .. } => 0,
            })
            .sum())
    }

    /// f32 elements of activations per sample (outputs of every node),
    /// for memory estimates.
    pub fn activation_elements_per_sample(&self) -> Result<usize> {
        Ok(self
            .resolve()?
            .shapes
            .iter()
            .map(Shape::numel)
            .sum::<usize>()
            + self.input.numel())
    }
}

/// Builds a [`GraphSpec`] layer by layer. Errors surface at
/// [`GraphBuilder::spec`] / `build` time, naming the layer.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    spec: GraphSpec,
    counter: usize,
}

impl GraphBuilder {
    /// A builder for per-sample input shape `input` (e.g. `[1, 28, 28]`).
    pub fn new(input: impl Into<Shape>) -> Self {
        GraphBuilder {
            spec: GraphSpec {
                input: input.into(),
                nodes: Vec::new(),
            },
            counter: 0,
        }
    }

    fn auto_name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}{}", self.counter)
    }

    /// Append a node named `name` fed by the previous node.
    pub fn layer(mut self, name: impl Into<String>, spec: LayerSpec) -> Self {
        self.spec.nodes.push(NodeSpec {
            name: name.into(),
            input: None,
            op: NodeOp::Layer(spec),
        });
        self
    }

    /// Append a node fed by the named earlier node (or [`INPUT`]).
    pub fn layer_from(
        mut self,
        name: impl Into<String>,
        from: impl Into<String>,
        spec: LayerSpec,
    ) -> Self {
        self.spec.nodes.push(NodeSpec {
            name: name.into(),
            input: Some(from.into()),
            op: NodeOp::Layer(spec),
        });
        self
    }

    /// Append an unnamed parameterless layer (named automatically).
    fn auto(mut self, spec: LayerSpec) -> Self {
        let name = self.auto_name(spec.kind());
        self.layer(name, spec)
    }

    /// Residual add: the previous node's output plus node `other`'s.
    pub fn add(mut self, name: impl Into<String>, other: impl Into<String>) -> Self {
        self.spec.nodes.push(NodeSpec {
            name: name.into(),
            input: None,
            op: NodeOp::Add { add: other.into() },
        });
        self
    }

    /// Residual add of two named nodes.
    pub fn add_nodes(
        mut self,
        name: impl Into<String>,
        a: impl Into<String>,
        b: impl Into<String>,
    ) -> Self {
        self.spec.nodes.push(NodeSpec {
            name: name.into(),
            input: Some(a.into()),
            op: NodeOp::Add { add: b.into() },
        });
        self
    }

    /// A convolution with bias.
    pub fn conv2d(self, name: impl Into<String>, geometry: Conv2dGeometry) -> Self {
        self.layer(
            name,
            LayerSpec::Conv2d {
                geometry,
                bias: true,
            },
        )
    }

    /// A linear layer with bias whose input size is inferred.
    pub fn linear(self, name: impl Into<String>, out_features: usize) -> Self {
        self.layer(
            name,
            LayerSpec::Linear {
                in_features: None,
                out_features,
                bias: true,
            },
        )
    }

    /// A linear layer with bias declaring its input size, checked at build.
    pub fn linear_in_out(
        self,
        name: impl Into<String>,
        in_features: usize,
        out_features: usize,
    ) -> Self {
        self.layer(
            name,
            LayerSpec::Linear {
                in_features: Some(in_features),
                out_features,
                bias: true,
            },
        )
    }

    pub fn activation(self, act: Activation) -> Self {
        self.auto(LayerSpec::Activation(act))
    }
    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }
    pub fn max_pool2d(self, geometry: Pool2dGeometry) -> Self {
        self.auto(LayerSpec::MaxPool2d(geometry))
    }
    pub fn avg_pool2d(self, geometry: Pool2dGeometry) -> Self {
        self.auto(LayerSpec::AvgPool2d(geometry))
    }
    pub fn global_avg_pool(self) -> Self {
        self.auto(LayerSpec::GlobalAvgPool)
    }
    pub fn flatten(self) -> Self {
        self.auto(LayerSpec::Flatten)
    }
    pub fn dropout(self, p: f32) -> Self {
        self.auto(LayerSpec::Dropout { p })
    }
    /// A named `BatchNorm2d` with PyTorch's defaults.
    pub fn batch_norm2d(self, name: impl Into<String>) -> Self {
        self.layer(name, LayerSpec::batch_norm2d())
    }

    /// The name of the most recently added node ([`INPUT`] when none).
    pub fn last(&self) -> String {
        self.spec
            .nodes
            .last()
            .map_or_else(|| INPUT.to_string(), |n| n.name.clone())
    }

    /// The finished spec, validated.
    pub fn spec(self) -> Result<GraphSpec> {
        self.spec.resolve()?;
        Ok(self.spec)
    }

    /// Validate and instantiate on `backend`, initialising from `seed`.
    pub fn build<B: crate::Backend>(self, backend: &B, seed: u64) -> Result<super::Graph<B>> {
        super::Graph::new(backend, self.spec()?, seed)
    }
}
