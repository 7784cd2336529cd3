//! `GraphSpec`: a model as data (input shape plus named nodes), with shape
//! inference; and `GraphBuilder`, the fluent way to write one.
//!
//! Every size is checked: an element or parameter count that overflows
//! `usize` is a [`CnnError::SizeOverflow`] naming the node, never a
//! wrapped-around value. A node read from a file (`serde`) is a layer
//! (`type`) or a residual add (`add`), never both, and any key its kind
//! does not take is an error naming the node and the key.

use crate::backend::{Activation, Conv2dGeometry, Pool2dGeometry};
use crate::error::{CnnError, Result};
use crate::layers::LayerSpec;
use crate::shape::Shape;

/// The name that refers to the graph's input in `NodeSpec::input`.
pub const INPUT: &str = "input";

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NodeSpec {
    pub name: String,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
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
    /// returned as an error naming the node and both shapes. Every node's
    /// output and parameter count fit in `usize` once this succeeds.
    pub fn resolve(&self) -> Result<ResolvedGraph> {
        if self.nodes.is_empty() {
            return Err(CnnError::Graph("a model needs at least one layer".into()));
        }
        let input_numel = self.input.checked_numel().ok_or_else(|| {
            CnnError::overflow(
                None,
                format!("the element count of the input shape {}", self.input),
            )
        })?;
        if self.input.rank() == 0 || input_numel == 0 {
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
                NodeOp::Layer(spec) => {
                    let out = spec.output_shape(&node.name, &in_shape)?;
                    // Checked here so that a resolved graph's count fits.
                    spec.num_params(&node.name, &in_shape)?;
                    (out, None)
                }
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
            if out.checked_numel().is_none() {
                return Err(CnnError::overflow(
                    Some(&node.name),
                    format!("the element count of its output shape {out}"),
                ));
            }
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

    /// Number of trainable parameters (a [`CnnError::SizeOverflow`] when
    /// the model's total does not fit in `usize`).
    pub fn num_params(&self) -> Result<usize> {
        let r = self.resolve()?;
        let mut total = 0usize;
        for (i, node) in self.nodes.iter().enumerate() {
            let count = match &node.op {
                NodeOp::Layer(spec) => {
                    let in_shape = r.inputs[i].map_or(&self.input, |j| &r.shapes[j]);
                    spec.num_params(&node.name, in_shape)?
                }
                NodeOp::Add { .. } => 0,
            };
            total = total.checked_add(count).ok_or_else(|| {
                CnnError::overflow(
                    None,
                    format!(
                        "the model's parameter count (its layers up to `{}` alone have {total} + {count})",
                        node.name
                    ),
                )
            })?;
        }
        Ok(total)
    }

    /// f32 elements of activations per sample (outputs of every node),
    /// for memory estimates (a [`CnnError::SizeOverflow`] when the total
    /// does not fit in `usize`).
    pub fn activation_elements_per_sample(&self) -> Result<usize> {
        let r = self.resolve()?;
        // `resolve` checked every shape's count; only the sum may overflow.
        std::iter::once(&self.input)
            .chain(&r.shapes)
            .try_fold(0usize, |acc, s| acc.checked_add(s.numel()))
            .ok_or_else(|| {
                CnnError::overflow(None, "the activation element count per sample (all nodes)")
            })
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

/// Reading [`NodeSpec`] and [`NodeOp`] from any self-describing format
/// (TOML model specs): the node's keys are read once into [`Raw`] values,
/// then its kind decides which of them it takes. A node with both `type`
/// and `add`, or with a key its kind does not take, is an error naming the
/// node (and the key), not a layer or an add silently dropped.
#[cfg(feature = "serde")]
mod de {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::value::{MapDeserializer, SeqDeserializer};
    use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess};

    use super::{LayerSpec, NodeOp, NodeSpec};

    /// A value of any self-describing format, kept to be read again.
    #[derive(Debug, Clone)]
    enum Raw {
        Unit,
        Bool(bool),
        I64(i64),
        U64(u64),
        F64(f64),
        Str(String),
        Seq(Vec<Raw>),
        Map(Vec<(String, Raw)>),
    }

    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(RawVisitor)
        }
    }

    struct RawVisitor;

    impl<'de> de::Visitor<'de> for RawVisitor {
        type Value = Raw;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
            Ok(Raw::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
            Ok(Raw::I64(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
            Ok(Raw::U64(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
            Ok(Raw::F64(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
            Ok(Raw::Str(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Raw, E> {
            Ok(Raw::Str(v))
        }
        fn visit_unit<E>(self) -> Result<Raw, E> {
            Ok(Raw::Unit)
        }
        fn visit_none<E>(self) -> Result<Raw, E> {
            Ok(Raw::Unit)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
            Raw::deserialize(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Raw::Seq(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(Raw::Map(entries))
        }
    }

    /// A [`Raw`] value read again, as the format it came from would give it.
    struct RawDeserializer<E> {
        value: Raw,
        error: PhantomData<E>,
    }

    impl<'de, E: de::Error> IntoDeserializer<'de, E> for Raw {
        type Deserializer = RawDeserializer<E>;
        fn into_deserializer(self) -> RawDeserializer<E> {
            RawDeserializer {
                value: self,
                error: PhantomData,
            }
        }
    }

    impl<'de, E: de::Error> Deserializer<'de> for RawDeserializer<E> {
        type Error = E;

        fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            match self.value {
                Raw::Unit => visitor.visit_unit(),
                Raw::Bool(v) => visitor.visit_bool(v),
                Raw::I64(v) => visitor.visit_i64(v),
                Raw::U64(v) => visitor.visit_u64(v),
                Raw::F64(v) => visitor.visit_f64(v),
                Raw::Str(v) => visitor.visit_string(v),
                Raw::Seq(items) => {
                    let mut seq = SeqDeserializer::new(items.into_iter());
                    let out = visitor.visit_seq(&mut seq)?;
                    seq.end()?;
                    Ok(out)
                }
                Raw::Map(entries) => {
                    let mut map = MapDeserializer::new(entries.into_iter());
                    let out = visitor.visit_map(&mut map)?;
                    map.end()?;
                    Ok(out)
                }
            }
        }

        fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            match self.value {
                Raw::Unit => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_newtype_struct<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, E> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, E> {
            match self.value {
                Raw::Str(variant) => visitor.visit_enum(variant.into_deserializer()),
                value => RawDeserializer {
                    value,
                    error: PhantomData,
                }
                .deserialize_any(visitor),
            }
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    /// A node's keys and values; a key given twice is an error.
    fn fields<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Raw>, D::Error> {
        let Raw::Map(entries) = Raw::deserialize(d)? else {
            return Err(de::Error::custom("a node must be a table of keys"));
        };
        let mut out = BTreeMap::new();
        for (key, value) in entries {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "key `{key}` is given twice"
                )));
            }
            out.insert(key, value);
        }
        Ok(out)
    }

    /// What a node with these keys (its `name` and `input` removed) computes.
    fn op_from_fields<E: de::Error>(mut fields: BTreeMap<String, Raw>) -> Result<NodeOp, E> {
        let Some(add) = fields.remove("add") else {
            return LayerSpec::deserialize(MapDeserializer::<_, E>::new(fields.into_iter()))
                .map(NodeOp::Layer);
        };
        if fields.contains_key("type") {
            return Err(E::custom(
                "both `type` and `add` given; a node is a layer (`type`) or a residual add (`add`), not both",
            ));
        }
        if let Some(key) = fields.keys().next() {
            return Err(E::custom(format_args!(
                "unknown key `{key}`; a residual add takes only `name`, `input` and `add`"
            )));
        }
        match add {
            Raw::Str(add) => Ok(NodeOp::Add { add }),
            _ => Err(E::custom("`add` must be the name of a node")),
        }
    }

    impl<'de> Deserialize<'de> for NodeOp {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            op_from_fields(fields(d)?)
        }
    }

    impl<'de> Deserialize<'de> for NodeSpec {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut fields = fields(d)?;
            let name = match fields.remove("name") {
                Some(Raw::Str(name)) => name,
                Some(_) => return Err(de::Error::custom("a node's `name` must be a string")),
                None => return Err(de::Error::missing_field("name")),
            };
            let in_node = |e: D::Error| de::Error::custom(format_args!("node `{name}`: {e}"));
            let input = match fields.remove("input") {
                None | Some(Raw::Unit) => None,
                Some(Raw::Str(input)) => Some(input),
                Some(_) => {
                    return Err(in_node(de::Error::custom(
                        "`input` must be the name of a node",
                    )));
                }
            };
            let op = op_from_fields(fields).map_err(in_node)?;
            Ok(NodeSpec { name, input, op })
        }
    }
}
