//! `Optimizer<B>`: parameter groups, per-parameter state in device memory,
//! the learning rate of each step, and export/import of the state.

use std::collections::{BTreeMap, HashMap};

use cnn_core::{Backend, Graph, Param};

use super::{GroupHyper, StepCtx};
use crate::config::OptimizerConfig;
use crate::error::{OptimError, Result, check};
use crate::group::ParamGroup;
use crate::schedule::Scheduler;
use crate::state::{OptimizerState, ParamState};
use crate::wrap::{Lookahead, LookaheadConfig, Sam, SamConfig};

/// The most dimensions a parameter may have.
const MAX_RANK: usize = 8;

/// One parameter's state in device memory.
struct SlotState<B: Backend> {
    step: u64,
    /// The slot names of `bufs`, in order.
    names: Vec<&'static str>,
    bufs: Vec<B::Buffer>,
    /// The element count of the parameter the buffers were checked
    /// against (`None` for imported state until its first step).
    checked_for: Option<usize>,
    scalars: Vec<f64>,
    /// The [`Optimizer::call`] that last stepped this parameter (0: none
    /// since the state was created or imported).
    call: u64,
}

/// A group with its resolved base rate, current rate and weight decay.
#[derive(Debug, Clone)]
struct GroupEntry {
    group: ParamGroup,
    base_lr: f64,
    lr: f64,
    weight_decay: f64,
}

/// An optimizer over backend `B`: the rule from an [`OptimizerConfig`],
/// parameter groups, and each parameter's state (step count and state
/// buffers, created in device memory on the parameter's first step and keyed
/// by its name).
///
/// Gradients accumulate until [`zero_grad`](Self::zero_grad) is called; a
/// step reads `param.grad` and never modifies it.
///
/// ```text
/// let mut opt = Optimizer::<CpuBackend>::new(OptimizerConfig::from_name("adamw")?.with_lr(1e-3))?;
/// opt.add_group(ParamGroup::no_decay(params.iter().map(|p| &**p)))?;
/// loop {
///     opt.zero_grad(&backend, &mut params)?;
///     // forward + backward accumulate into param.grad
///     opt.step(&backend, &mut params)?;
/// }
/// ```
pub struct Optimizer<B: Backend> {
    config: OptimizerConfig,
    /// Index 0 is the default group (every parameter no other group matches).
    groups: Vec<GroupEntry>,
    state: HashMap<String, SlotState<B>>,
    /// Counts the calls of [`step_params`](Self::step_params), from 1. A
    /// parameter whose state already carries the current call was stepped
    /// earlier in this call: that finds a name given twice without building
    /// a set of names every step (a steady-state step allocates nothing).
    call: u64,
    /// Lookahead around the rule, when configured.
    lookahead: Option<Lookahead<B>>,
    /// SAM around the rule, when configured.
    sam: Option<Sam<B>>,
    /// Whether the parameters hold the evaluation point (schedule-free's
    /// `x`) rather than the training point: see [`Optimizer::set_eval_point`].
    eval_point: bool,
}

impl<B: Backend> std::fmt::Debug for Optimizer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("config", &self.config)
            .field("groups", &self.groups)
            .field("params_with_state", &self.state.len())
            .finish()
    }
}

impl<B: Backend> Optimizer<B> {
    /// Validate `config` and build an optimizer with one (default) group.
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        let default = GroupEntry {
            group: ParamGroup::new("default"),
            base_lr: config.lr(),
            lr: config.lr(),
            weight_decay: config.weight_decay(),
        };
        Ok(Optimizer {
            config,
            groups: vec![default],
            state: HashMap::new(),
            call: 0,
            lookahead: None,
            sam: None,
            eval_point: false,
        })
    }

    /// Wrap the rule in Lookahead (see [`crate::wrap`]). Schedule-free
    /// rules cannot be wrapped: they recompute the weights from their own
    /// state every step.
    pub fn with_lookahead(mut self, config: LookaheadConfig) -> Result<Self> {
        if self.config.has_eval_point() {
            return Err(OptimError::InvalidCombination(format!(
                "lookahead cannot wrap {}: it recomputes the weights from its own averages every step",
                self.config.name()
            )));
        }
        self.lookahead = Some(Lookahead::new(config)?);
        Ok(self)
    }

    /// Wrap the rule in SAM (see [`crate::wrap`]): call
    /// [`sam_perturb`](Self::sam_perturb) after the first backward, take
    /// the second gradient, then [`step`](Self::step).
    pub fn with_sam(mut self, config: SamConfig) -> Result<Self> {
        self.sam = Some(Sam::new(config)?);
        Ok(self)
    }

    /// Lookahead's configuration, when the rule is wrapped in it.
    pub fn lookahead(&self) -> Option<&LookaheadConfig> {
        self.lookahead.as_ref().map(Lookahead::config)
    }

    /// SAM's configuration, when the rule is wrapped in it.
    pub fn sam(&self) -> Option<&SamConfig> {
        self.sam.as_ref().map(Sam::config)
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Add a parameter group (checked before the ones added later, after
    /// none: the first match wins). Returns its index.
    pub fn add_group(&mut self, group: ParamGroup) -> Result<usize> {
        let base_lr = group.lr.unwrap_or(self.config.lr());
        let weight_decay = group.weight_decay.unwrap_or(self.config.weight_decay());
        check::lr("lr", base_lr)?;
        check::non_negative("weight_decay", weight_decay)?;
        // A group added mid-run starts at the rate the schedule gives now.
        let lr = if self.groups[0].base_lr > 0.0 {
            base_lr * self.groups[0].lr / self.groups[0].base_lr
        } else {
            base_lr
        };
        self.groups.push(GroupEntry {
            group,
            base_lr,
            lr,
            weight_decay,
        });
        Ok(self.groups.len() - 1)
    }

    /// Number of groups, the default one included.
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// The group definition at `index` (0: the default group).
    pub fn group(&self, index: usize) -> Option<&ParamGroup> {
        self.groups.get(index).map(|g| &g.group)
    }

    /// The index of the group the parameter named `name` belongs to.
    pub fn group_of(&self, name: &str) -> usize {
        self.groups
            .iter()
            .skip(1)
            .position(|g| g.group.matches(name))
            .map_or(0, |i| i + 1)
    }

    /// The current rate of the default group.
    pub fn lr(&self) -> f64 {
        self.groups[0].lr
    }

    /// The current rate of group `index`.
    pub fn group_lr(&self, index: usize) -> Option<f64> {
        self.groups.get(index).map(|g| g.lr)
    }

    /// The weight decay of group `index`.
    pub fn group_weight_decay(&self, index: usize) -> Option<f64> {
        self.groups.get(index).map(|g| g.weight_decay)
    }

    /// Set the default group's rate to `lr` and scale every other group's
    /// base rate by the same factor (`lr / base lr`); when the optimizer's
    /// base rate is 0 every group gets `lr`.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check::lr("lr", lr)?;
        let base = self.groups[0].base_lr;
        for g in &mut self.groups {
            g.lr = if base > 0.0 {
                g.base_lr * (lr / base)
            } else {
                lr
            };
        }
        self.groups[0].lr = lr;
        Ok(())
    }

    /// Set group `index`'s current rate directly.
    pub fn set_group_lr(&mut self, index: usize, lr: f64) -> Result<()> {
        check::lr("lr", lr)?;
        let n = self.groups.len();
        let g = self
            .groups
            .get_mut(index)
            .ok_or_else(|| OptimError::hyper("group", index, format!("there are {n} groups")))?;
        g.lr = lr;
        Ok(())
    }

    /// Set every group's rate to what `scheduler` gives for its base rate at
    /// the scheduler's current step (PyTorch: each group scheduled from its
    /// own `initial_lr`). Call before each [`step`](Self::step).
    pub fn apply_schedule(&mut self, scheduler: &Scheduler) -> Result<()> {
        for g in &mut self.groups {
            let lr = scheduler.lr(g.base_lr);
            check::lr("scheduled lr", lr)?;
            g.lr = lr;
        }
        Ok(())
    }

    /// Zero every parameter's gradient.
    pub fn zero_grad(&self, backend: &B, params: &mut [&mut Param<B>]) -> Result<()> {
        for p in params.iter_mut() {
            p.zero_grad(backend)?;
        }
        Ok(())
    }

    /// One update of every parameter from its accumulated gradient.
    pub fn step(&mut self, backend: &B, params: &mut [&mut Param<B>]) -> Result<()> {
        self.step_params(backend, params.iter_mut().map(|p| &mut **p))
    }

    /// [`step`](Self::step) over every parameter of `graph`. Once each
    /// parameter has its state (after the first step) this allocates
    /// nothing, unlike `step(backend, &mut graph.params_mut())`, which
    /// collects the parameters into a `Vec` first.
    pub fn step_graph(&mut self, backend: &B, graph: &mut Graph<B>) -> Result<()> {
        self.step_params(backend, graph.params_iter_mut())
    }

    /// [`step`](Self::step) over any iterator of parameters. A name given
    /// twice is an error (the parameters before it are already updated).
    pub fn step_params<'a>(
        &mut self,
        backend: &B,
        params: impl IntoIterator<Item = &'a mut Param<B>>,
    ) -> Result<()>
    where
        B: 'a,
    {
        if self.eval_point {
            return Err(OptimError::InvalidCombination(
                "step while the parameters hold the evaluation point (call set_eval_point(false) first)"
                    .into(),
            ));
        }
        self.call += 1;
        let sync = self.lookahead.as_ref().is_some_and(Lookahead::syncs_now);
        for p in params {
            self.step_one(backend, p, sync)?;
        }
        if let Some(l) = self.lookahead.as_mut() {
            l.end_step(sync);
        }
        if let Some(s) = self.sam.as_mut() {
            s.end_step();
        }
        Ok(())
    }

    /// SAM's first step over every parameter of `graph`: save the weights
    /// and move them by `rho g / ||g||` (an error when the optimizer has
    /// no SAM). The next [`step`](Self::step) puts them back before the
    /// inner update.
    pub fn sam_perturb_graph(&mut self, backend: &B, graph: &mut Graph<B>) -> Result<()> {
        let sam = self.sam.as_mut().ok_or_else(no_sam)?;
        let scale = sam.scale(backend, graph.params_iter())?;
        sam.perturb(backend, scale, graph.params_iter_mut())
    }

    /// [`sam_perturb_graph`](Self::sam_perturb_graph) over `params`.
    pub fn sam_perturb(&mut self, backend: &B, params: &mut [&mut Param<B>]) -> Result<()> {
        let sam = self.sam.as_mut().ok_or_else(no_sam)?;
        let scale = sam.scale(backend, params.iter().map(|p| &**p))?;
        sam.perturb(backend, scale, params.iter_mut().map(|p| &mut **p))
    }

    /// Put the evaluation point (schedule-free's average `x`) into the
    /// parameters (`on`) or the training point back (`!on`), as the
    /// reference's `eval()` and `train()` do; an exact swap of buffers, no
    /// arithmetic. A no-op for rules without an evaluation point, for
    /// parameters not stepped yet (both points are the initial weights)
    /// and when the parameters are already there.
    pub fn set_eval_point<'a>(
        &mut self,
        params: impl IntoIterator<Item = &'a mut Param<B>>,
        on: bool,
    ) -> Result<()>
    where
        B: 'a,
    {
        let Some(slot) = self.config.eval_slot() else {
            return Ok(());
        };
        if on == self.eval_point {
            return Ok(());
        }
        for p in params {
            if let Some(st) = self.state.get_mut(&p.name) {
                let x = st.bufs.get_mut(slot).ok_or_else(|| {
                    OptimError::State(format!("parameter `{}` lacks its average", p.name))
                })?;
                std::mem::swap(p.value.buffer_mut(), x);
            }
        }
        self.eval_point = on;
        Ok(())
    }

    /// Whether the parameters hold the evaluation point now.
    pub fn at_eval_point(&self) -> bool {
        self.eval_point
    }

    /// After [`import_state`](Self::import_state) and loading the weights:
    /// recompute each stepped parameter's training point from the state
    /// (schedule-free's `y` from `x` and `z`, the same ops as its step, so
    /// a resumed run continues bit for bit). A no-op for other rules.
    pub fn restore_train_point<'a>(
        &mut self,
        backend: &B,
        params: impl IntoIterator<Item = &'a mut Param<B>>,
    ) -> Result<()>
    where
        B: 'a,
    {
        if self.config.eval_slot().is_none() {
            return Ok(());
        }
        for p in params {
            if let Some(st) = self.state.get(&p.name) {
                self.config
                    .restore_train_point(backend, &st.bufs, p.value.buffer_mut())?;
            }
        }
        self.eval_point = false;
        Ok(())
    }

    fn step_one(&mut self, backend: &B, p: &mut Param<B>, sync: bool) -> Result<()> {
        let gi = self.group_of(&p.name);
        let hp = GroupHyper {
            lr: self.groups[gi].lr,
            weight_decay: self.groups[gi].weight_decay,
        };
        let n = p.numel();
        if !self.state.contains_key(&p.name) {
            let st = self.fresh_state(backend, p.value.shape().dims())?;
            self.state.insert(p.name.clone(), st);
        }
        let st = self.state.get_mut(&p.name).expect("inserted above");
        if st.call == self.call {
            return Err(OptimError::InvalidCombination(format!(
                "parameter `{}` appears twice in one step",
                p.name
            )));
        }
        st.call = self.call;
        if st.checked_for != Some(n) {
            check_layout(&self.config, backend, &p.name, p.value.shape().dims(), st)?;
            st.checked_for = Some(n);
        }
        // The shape on the stack: a steady-state step allocates nothing.
        let shape = p.value.shape().dims();
        let rank = shape.len();
        if rank > MAX_RANK {
            return Err(OptimError::InvalidCombination(format!(
                "parameter `{}` has {rank} dimensions, at most {MAX_RANK} are supported",
                p.name
            )));
        }
        let mut dims = [0usize; MAX_RANK];
        dims[..rank].copy_from_slice(shape);
        let t = st.step + 1;
        if let Some(sam) = &self.sam {
            sam.restore(backend, &p.name, p.value.buffer_mut())?;
        }
        if let Some(l) = self.lookahead.as_mut() {
            l.before(backend, &p.name, p.value.buffer())?;
        }
        let Param { value, grad, .. } = p;
        let ctx = StepCtx {
            t,
            bufs: &mut st.bufs,
            scalars: &mut st.scalars,
            w: value.buffer_mut(),
            g: grad.buffer(),
            shape: &dims[..rank],
        };
        self.config.update(backend, hp, ctx)?;
        st.step = t;
        if sync && let Some(l) = self.lookahead.as_mut() {
            l.sync(backend, &p.name, p.value.buffer_mut())?;
        }
        Ok(())
    }

    fn fresh_state(&self, backend: &B, shape: &[usize]) -> Result<SlotState<B>> {
        let n = shape.iter().product();
        let mut bufs = Vec::new();
        let slots = self.config.slots(shape);
        for slot in &slots {
            let mut b = backend.alloc_zeros(slot.len.unwrap_or(n))?;
            if slot.init != 0.0 {
                backend.fill(&mut b, slot.init)?;
            }
            bufs.push(b);
        }
        Ok(SlotState {
            step: 0,
            names: slots.iter().map(|s| s.name).collect(),
            checked_for: Some(n),
            bufs,
            scalars: self.config.scalars().into_iter().map(|(_, v)| v).collect(),
            call: 0,
        })
    }

    /// Steps taken by the parameter named `name` (`None` before its first).
    pub fn steps_taken(&self, name: &str) -> Option<u64> {
        self.state.get(name).map(|s| s.step)
    }

    /// Forget all per-parameter state (the next step is a first step again).
    pub fn reset_state(&mut self) {
        self.state.clear();
    }

    /// A host copy of the state (downloads every state buffer).
    pub fn export_state(&self, backend: &B) -> Result<OptimizerState> {
        if self.eval_point {
            return Err(OptimError::State(
                "cannot export while the parameters hold the evaluation point".into(),
            ));
        }
        let scalars = self.config.scalars();
        let mut params = BTreeMap::new();
        for (name, st) in &self.state {
            let mut ps = ParamState {
                step: st.step,
                ..Default::default()
            };
            for (name, buf) in st.names.iter().zip(&st.bufs) {
                ps.slots.insert(name.to_string(), backend.download(buf)?);
            }
            for ((key, _), v) in scalars.iter().zip(&st.scalars) {
                ps.scalars.insert(key.to_string(), *v);
            }
            params.insert(name.clone(), ps);
        }
        Ok(OptimizerState {
            kind: self.config.name().to_string(),
            group_lrs: self.groups.iter().map(|g| g.lr).collect(),
            params,
            lookahead: self
                .lookahead
                .as_ref()
                .map(|l| l.export(backend))
                .transpose()?,
        })
    }

    /// Replace the state with `state` (uploads every buffer). The kind,
    /// the number of groups and every parameter's slots must match this
    /// optimizer's configuration; element counts are checked at the next step.
    pub fn import_state(&mut self, backend: &B, state: &OptimizerState) -> Result<()> {
        if state.kind != self.config.name() {
            return Err(OptimError::State(format!(
                "state of a `{}` optimizer given to a `{}` optimizer",
                state.kind,
                self.config.name()
            )));
        }
        if state.group_lrs.len() != self.groups.len() {
            return Err(OptimError::State(format!(
                "state has {} parameter groups, the optimizer {}",
                state.group_lrs.len(),
                self.groups.len()
            )));
        }
        for &lr in &state.group_lrs {
            check::lr("lr", lr)?;
        }
        let layouts = self.config.layouts();
        let scalars = self.config.scalars();
        let mut new_state = HashMap::new();
        for (name, ps) in &state.params {
            let found: Vec<&str> = ps.slots.keys().map(String::as_str).collect();
            let layout = layouts.iter().find(|names| {
                let mut sorted = (*names).clone();
                sorted.sort_unstable();
                sorted == found
            });
            let Some(layout) = layout else {
                let expected = match layouts.as_slice() {
                    [one] => format!("{one:?}"),
                    many => format!("one of {many:?}"),
                };
                return Err(OptimError::State(format!(
                    "parameter `{name}` has state slots {found:?}, expected {expected}"
                )));
            };
            let mut bufs = Vec::with_capacity(layout.len());
            for slot in layout {
                bufs.push(backend.upload(&ps.slots[*slot])?);
            }
            let mut vals = Vec::with_capacity(scalars.len());
            for (key, _) in &scalars {
                let v = ps.scalars.get(*key).ok_or_else(|| {
                    OptimError::State(format!("parameter `{name}` lacks the scalar `{key}`"))
                })?;
                vals.push(*v);
            }
            if ps.scalars.len() != scalars.len() {
                return Err(OptimError::State(format!(
                    "parameter `{name}` has unexpected scalars {:?}",
                    ps.scalars.keys().collect::<Vec<_>>()
                )));
            }
            new_state.insert(
                name.clone(),
                SlotState {
                    step: ps.step,
                    names: layout.clone(),
                    checked_for: None,
                    bufs,
                    scalars: vals,
                    call: 0,
                },
            );
        }
        match (self.lookahead.as_mut(), &state.lookahead) {
            (Some(l), Some(ls)) => l.import(backend, ls)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(OptimError::State(
                    "the state has no lookahead slow weights, the optimizer uses lookahead".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(OptimError::State(
                    "the state has lookahead slow weights, the optimizer no lookahead".into(),
                ));
            }
        }
        for (g, &lr) in self.groups.iter_mut().zip(&state.group_lrs) {
            g.lr = lr;
        }
        self.state = new_state;
        self.eval_point = false;
        Ok(())
    }
}

/// Check that `st` has the slots and lengths the rule gives a parameter of
/// `shape` (imported state, at its first step).
fn check_layout<B: Backend>(
    config: &OptimizerConfig,
    backend: &B,
    name: &str,
    shape: &[usize],
    st: &SlotState<B>,
) -> Result<()> {
    let n: usize = shape.iter().product();
    let slots = config.slots(shape);
    let expected: Vec<&str> = slots.iter().map(|s| s.name).collect();
    if expected != st.names {
        return Err(OptimError::State(format!(
            "parameter `{name}` of shape {shape:?} has state slots {:?}, expected {expected:?}",
            st.names
        )));
    }
    for (slot, b) in slots.iter().zip(&st.bufs) {
        let len = backend.buffer_len(b);
        let want = slot.len.unwrap_or(n);
        if len != want {
            return Err(OptimError::State(match slot.len {
                None => {
                    format!("parameter `{name}` has {n} elements but its optimizer state has {len}")
                }
                Some(_) => format!(
                    "parameter `{name}` of shape {shape:?} needs {want} elements of `{}`, \
                     its optimizer state has {len}",
                    slot.name
                ),
            }));
        }
    }
    Ok(())
}

fn no_sam() -> OptimError {
    OptimError::InvalidCombination("sam_perturb on an optimizer without SAM".into())
}
