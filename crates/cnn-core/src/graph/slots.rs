//! Which buffer holds each node's output, and each node's output
//! gradient. A training forward keeps every output that backward reads
//! until backward has read it, one buffer each; the outputs no backward
//! reads (batch norm's before a ReLU, a residual add's) share buffers as
//! an evaluation forward's do. An evaluation forward needs a value only until
//! its last reader has run, so its buffers are shared: a node takes the
//! buffer of an earlier value of the same shape that nothing reads any
//! more. ResNet-20's evaluation then holds a handful of activations per
//! sample instead of sixty. Backward shares its gradient buffers the same
//! way, in reverse: a node's output gradient lives from the backward of
//! its last reader (the first to write it) to its own backward, so a
//! training step holds a few gradient buffers instead of one per node. A
//! ReLU whose input nothing else reads may write over its input's buffer
//! (in place, as PyTorch's `inplace=True`).

use crate::shape::Shape;

/// Where the nodes' outputs live in one workspace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slots {
    /// Per node: the index of the buffer its output is written to.
    pub slot: Vec<usize>,
    /// Per node: whether its buffer still holds its output when the
    /// forward has finished (false once a later node reused it, and for a
    /// node whose output is never formed).
    pub holds: Vec<bool>,
    /// Per buffer: its per-sample shape.
    pub shapes: Vec<Shape>,
    /// Per node: whether it writes its output over its input's buffer (a
    /// ReLU in place; empty for gradients).
    pub in_place: Vec<bool>,
}

impl Slots {
    /// No buffers (an evaluation workspace's gradients).
    pub fn none() -> Self {
        Slots {
            slot: Vec::new(),
            holds: Vec::new(),
            shapes: Vec::new(),
            in_place: Vec::new(),
        }
    }

    /// Shared buffers for a forward. `reads[i]` lists the nodes whose
    /// outputs node `i` reads; `skipped[i]` marks a node the forward never
    /// runs (a ReLU folded into the pooling after it). A node marked in
    /// `keep` keeps its buffer to itself (an evaluation keeps the last
    /// node's output, the graph's; a training forward every output that
    /// backward reads); the others are free once their last reader has
    /// run. A node's buffer is never one it reads, except for a node
    /// marked in `in_place` (a ReLU written over its input): it takes its
    /// input's buffer where it is that value's only reader, of the same
    /// shape, and the value is not kept (see the field `in_place`).
    pub fn shared(
        shapes: &[Shape],
        reads: &[Vec<usize>],
        skipped: &[bool],
        keep: &[bool],
        in_place: &[bool],
    ) -> Self {
        let n = shapes.len();
        // The last node that reads each output (None: nothing reads it),
        // and how many read it.
        let mut last_reader: Vec<Option<usize>> = vec![None; n];
        let mut readers = vec![0usize; n];
        for (i, inputs) in reads.iter().enumerate() {
            if skipped[i] {
                continue;
            }
            for &j in inputs {
                last_reader[j] = Some(last_reader[j].map_or(i, |r| r.max(i)));
                readers[j] += 1;
            }
        }
        // The input node `i` writes over, if it may.
        let over = |i: usize| match reads[i].as_slice() {
            [j] if in_place[i] && readers[*j] == 1 && !keep[*j] && !skipped[*j] => Some(*j),
            _ => None,
        };
        let mut slot = vec![0; n];
        let mut written_over = vec![false; n];
        let mut owner: Vec<usize> = Vec::new();
        let mut slot_shapes: Vec<Shape> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        for i in 0..n {
            if skipped[i] {
                continue;
            }
            let s = match over(i) {
                Some(j) if shapes[j] == shapes[i] => {
                    written_over[i] = true;
                    slot[j]
                }
                _ => match free.iter().position(|&s| slot_shapes[s] == shapes[i]) {
                    Some(p) => free.swap_remove(p),
                    None => {
                        slot_shapes.push(shapes[i].clone());
                        owner.push(i);
                        slot_shapes.len() - 1
                    }
                },
            };
            slot[i] = s;
            owner[s] = i;
            // Values read for the last time by node i free their buffers
            // now, after i's own buffer was chosen (but not the one i
            // writes over: it is i's now); an output nothing reads (but
            // the graph's) frees its buffer at once.
            for j in 0..=i {
                let done = if j == i {
                    last_reader[i].is_none() && !keep[i]
                } else {
                    !skipped[j] && last_reader[j] == Some(i) && !keep[j] && slot[j] != s
                };
                if done {
                    free.push(slot[j]);
                }
            }
        }
        let holds = (0..n).map(|i| !skipped[i] && owner[slot[i]] == i).collect();
        Slots {
            slot,
            holds,
            shapes: slot_shapes,
            in_place: written_over,
        }
    }

    /// Shared buffers for the output gradients of a backward pass, which
    /// runs the nodes from last to first. `reads` and `skipped` are as for
    /// [`Slots::shared`]; a node marked in `keep` holds its gradient when
    /// backward has finished (its buffer is never reused). Node `i`'s
    /// gradient is written from the backward of its highest-numbered reader
    /// on and read by node `i`'s own backward; a node never writes the
    /// buffer it reads. The last node's gradient (the loss gradient) is
    /// live from the start. A node that nothing reads and that is not the
    /// last gets no buffer of its own (it never receives a gradient): its
    /// slot is any buffer of its shape, and it holds nothing.
    pub fn backward(
        shapes: &[Shape],
        reads: &[Vec<usize>],
        skipped: &[bool],
        keep: &[bool],
    ) -> Self {
        let n = shapes.len();
        // The first writer of each gradient in backward order: its
        // highest-numbered reader.
        let mut first_writer: Vec<Option<usize>> = vec![None; n];
        for (i, inputs) in reads.iter().enumerate() {
            if skipped[i] {
                continue;
            }
            for &j in inputs {
                first_writer[j] = Some(first_writer[j].map_or(i, |r| r.max(i)));
            }
        }
        let mut slot: Vec<Option<usize>> = vec![None; n];
        let mut owner: Vec<usize> = Vec::new();
        let mut slot_shapes: Vec<Shape> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        // Node k's gradient takes a free buffer of its shape, or a new one.
        let mut take = |k: usize, free: &mut Vec<usize>| {
            let s = match free.iter().position(|&s| slot_shapes[s] == shapes[k]) {
                Some(p) => free.swap_remove(p),
                None => {
                    slot_shapes.push(shapes[k].clone());
                    owner.push(k);
                    slot_shapes.len() - 1
                }
            };
            owner[s] = k;
            s
        };
        if n > 0 {
            slot[n - 1] = Some(take(n - 1, &mut free));
        }
        for i in (0..n).rev() {
            if skipped[i] {
                continue;
            }
            for &j in &reads[i] {
                if first_writer[j] == Some(i) && slot[j].is_none() {
                    slot[j] = Some(take(j, &mut free));
                }
            }
            // Node i has read its gradient for the last time.
            if let Some(s) = slot[i].filter(|_| !keep[i]) {
                free.push(s);
            }
        }
        // Nodes that never receive a gradient: any buffer of their shape
        // (a new one where there is none), never written, holding nothing.
        let mut holds: Vec<bool> = (0..n)
            .map(|k| slot[k].is_some_and(|s| owner[s] == k))
            .collect();
        let mut resolved = Vec::with_capacity(n);
        for k in 0..n {
            resolved.push(match slot[k] {
                Some(s) => s,
                None => match slot_shapes.iter().position(|t| *t == shapes[k]) {
                    Some(s) => s,
                    None => {
                        slot_shapes.push(shapes[k].clone());
                        owner.push(k);
                        slot_shapes.len() - 1
                    }
                },
            });
            if slot[k].is_none() {
                holds[k] = false;
            }
        }
        Slots {
            slot: resolved,
            holds,
            shapes: slot_shapes,
            in_place: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: usize) -> Shape {
        Shape::new([c, 4, 4])
    }

    /// Keep only the last node's output (an evaluation forward).
    fn last_only(n: usize) -> Vec<bool> {
        (0..n).map(|i| i + 1 == n).collect()
    }

    #[test]
    fn a_training_forward_shares_only_outputs_backward_never_reads() {
        // 0 conv -> 1 bn -> 2 relu -> 3 conv -> 4 bn -> 5 add(4, 2) -> 6 relu:
        // backward reads neither batch norm's output nor the add's.
        let shapes = vec![s(2); 7];
        let reads = vec![
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![4, 2],
            vec![5],
        ];
        let keep = [true, false, true, true, false, false, true];
        let slots = Slots::shared(&shapes, &reads, &[false; 7], &keep, &[false; 7]);
        // The kept outputs each have a buffer of their own, holding them.
        let kept: Vec<usize> = (0..7).filter(|&i| keep[i]).map(|i| slots.slot[i]).collect();
        for (a, &sa) in kept.iter().enumerate() {
            assert!(
                kept[a + 1..].iter().all(|&sb| sb != sa),
                "kept outputs share {sa}"
            );
        }
        for i in (0..7).filter(|&i| keep[i]) {
            assert!(slots.holds[i], "node {i}");
        }
        // The three others take turns in fewer buffers.
        assert!(slots.shapes.len() < 7, "{} buffers", slots.shapes.len());
        assert_ne!(
            slots.slot[5], slots.slot[4],
            "the add overwrote what it reads"
        );
    }

    #[test]
    fn a_relu_in_place_takes_its_inputs_buffer_only_where_allowed() {
        // 0 conv -> 1 relu -> 2 conv -> 3 relu -> 4 conv: both ReLUs may
        // write over their inputs; a training forward keeps the ReLUs'
        // outputs (their backward reads them) but not the convolutions'.
        let shapes = vec![s(2); 5];
        let reads = vec![vec![], vec![0], vec![1], vec![2], vec![3]];
        let in_place = [false, true, false, true, false];
        let keep = [false, true, false, true, true];
        let slots = Slots::shared(&shapes, &reads, &[false; 5], &keep, &in_place);
        assert_eq!(slots.in_place, in_place);
        assert_eq!(slots.slot[1], slots.slot[0]);
        assert_eq!(slots.slot[3], slots.slot[2]);
        assert_ne!(slots.slot[1], slots.slot[3], "kept outputs share");
        assert!(slots.holds[1] && slots.holds[3] && !slots.holds[0] && !slots.holds[2]);
        assert_eq!(slots.shapes.len(), 3);
        // A kept input, a second reader or another shape: a buffer of its own.
        let keep_all = [true; 5];
        let slots = Slots::shared(&shapes, &reads, &[false; 5], &keep_all, &in_place);
        assert_eq!(slots.in_place, [false; 5]);
        assert_eq!(slots.shapes.len(), 5);
        let reads2 = vec![vec![], vec![0], vec![0], vec![2], vec![3]];
        let slots = Slots::shared(&shapes, &reads2, &[false; 5], &keep, &in_place);
        assert!(!slots.in_place[1], "node 0 has two readers");
        assert!(slots.in_place[3]);
        let shapes3 = vec![s(2), s(4), s(2), s(2), s(2)];
        let slots = Slots::shared(&shapes3, &reads, &[false; 5], &keep, &in_place);
        assert!(!slots.in_place[1], "shapes differ");
    }

    #[test]
    fn a_chain_needs_two_buffers_per_shape() {
        // 0 -> 1 -> 2 -> 3, all one shape: a node never writes what it reads.
        let shapes = vec![s(2); 4];
        let reads = vec![vec![], vec![0], vec![1], vec![2]];
        let slots = Slots::shared(&shapes, &reads, &[false; 4], &last_only(4), &[false; 4]);
        assert_eq!(slots.slot, vec![0, 1, 0, 1]);
        assert_eq!(slots.shapes.len(), 2);
        assert_eq!(slots.holds, vec![false, false, true, true]);
    }

    #[test]
    fn a_residual_input_lives_until_the_add() {
        // 0 (block input) -> 1 -> 2 -> 3 = add(2, 0) -> 4.
        let shapes = vec![s(2); 5];
        let reads = vec![vec![], vec![0], vec![1], vec![2, 0], vec![3]];
        let slots = Slots::shared(&shapes, &reads, &[false; 5], &last_only(5), &[false; 5]);
        // Node 0's buffer is not reused before node 3 has read it.
        for i in 1..=3 {
            assert_ne!(slots.slot[i], slots.slot[0], "node {i} overwrote node 0");
        }
        assert_ne!(slots.slot[3], slots.slot[2]);
        assert_eq!(slots.shapes.len(), 3);
        assert!(slots.holds[4]);
    }

    #[test]
    fn shapes_are_never_mixed_and_skipped_nodes_hold_nothing() {
        let shapes = vec![s(2), s(2), s(4), s(4), s(4)];
        let reads = vec![vec![], vec![0], vec![0], vec![2], vec![3]];
        let skipped = [false, false, false, true, false];
        let slots = Slots::shared(&shapes, &reads, &skipped, &last_only(5), &[false; 5]);
        for i in [0, 1, 2, 4] {
            assert_eq!(slots.shapes[slots.slot[i]], shapes[i], "node {i}");
        }
        assert!(!slots.holds[3]);
        assert!(slots.holds[4]);
    }

    #[test]
    fn backward_shares_gradients_of_a_chain() {
        // 0 -> 1 -> 2 -> 3, all one shape: node i writes i-1's gradient
        // while reading its own, so two buffers alternate.
        let shapes = vec![s(2); 4];
        let reads = vec![vec![], vec![0], vec![1], vec![2]];
        let slots = Slots::backward(&shapes, &reads, &[false; 4], &[false; 4]);
        assert_eq!(slots.shapes.len(), 2);
        for i in 1..4 {
            assert_ne!(
                slots.slot[i],
                slots.slot[i - 1],
                "node {i} writes what it reads"
            );
        }
        // After backward only the first two still hold theirs.
        assert_eq!(slots.holds, vec![true, true, false, false]);
    }

    #[test]
    fn backward_keeps_a_residual_gradient_until_its_node_ran() {
        // 0 (block input) -> 1 -> 2 -> 3 = add(2, 0) -> 4.
        let shapes = vec![s(2); 5];
        let reads = vec![vec![], vec![0], vec![1], vec![2, 0], vec![3]];
        let slots = Slots::backward(&shapes, &reads, &[false; 5], &[false; 5]);
        // Node 0's gradient is written by the add (node 3) and read by
        // node 0: nodes 1 and 2 must not take its buffer in between.
        for i in 1..=3 {
            assert_ne!(
                slots.slot[i], slots.slot[0],
                "node {i} took node 0's gradient"
            );
        }
        assert_ne!(slots.slot[2], slots.slot[3]);
        assert_eq!(slots.shapes.len(), 3);
        assert!(slots.holds[0]);
    }

    #[test]
    fn backward_keeps_marked_gradients_and_mixes_no_shapes() {
        let shapes = vec![s(2), s(2), s(4), s(4), s(4), s(1)];
        let reads = vec![vec![], vec![0], vec![1], vec![2], vec![3], vec![4]];
        let keep = [false, false, false, false, true, false];
        let slots = Slots::backward(&shapes, &reads, &[false; 6], &keep);
        for (i, shape) in shapes.iter().enumerate() {
            assert_eq!(&slots.shapes[slots.slot[i]], shape, "node {i}");
        }
        assert!(slots.holds[4], "a kept gradient survives backward");
        assert_ne!(slots.slot[2], slots.slot[4]);
        // A dead end (nothing reads node 1 in this graph) holds nothing.
        let reads = vec![vec![], vec![0], vec![0], vec![2]];
        let shapes = vec![s(2); 4];
        let slots = Slots::backward(&shapes, &reads, &[false; 4], &[false; 4]);
        assert!(!slots.holds[1]);
    }
}
