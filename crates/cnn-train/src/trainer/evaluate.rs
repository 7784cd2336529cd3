//! Evaluating a graph on a split in eval mode: mean loss, confusion
//! matrix and top-5 accuracy.

use std::collections::HashMap;

use cnn_core::{Backend, Graph, Mode, SoftmaxCrossEntropy};
use cnn_data::Subset;

use super::LossScratch;
use crate::error::Result;
use crate::history::SplitMetrics;
use crate::metrics::ConfusionMatrix;

/// Evaluate `graph` on `subset` in eval mode: mean loss and confusion matrix.
pub fn evaluate<B: Backend>(
    graph: &mut Graph<B>,
    subset: &Subset,
    normalization: &cnn_data::Normalization,
    batch_size: usize,
    loss: SoftmaxCrossEntropy,
) -> Result<(SplitMetrics, ConfusionMatrix)> {
    let b = graph.backend().clone();
    let classes = graph.output_shape().numel();
    let mut cm = ConfusionMatrix::new(classes);
    let mut loss_sum = 0.0;
    let loader = cnn_data::Loader::new(
        subset.clone(),
        normalization.clone(),
        cnn_data::LoaderConfig::eval(batch_size),
    )?;
    let mut scratch: HashMap<usize, LossScratch<B>> = HashMap::new();
    let mut top5 = 0usize;
    let mut host_logits = Vec::new();
    // The whole loop in one hand-over to the backend's workers (see
    // `Backend::run`), not one per batch or per op.
    b.run(|| -> Result<()> {
        for batch in loader.epoch(0) {
            let n = batch.labels.len();
            let LossScratch {
                targets,
                dlogits,
                preds,
                ..
            } = LossScratch::for_batch(&mut scratch, &b, n, classes)?;
            b.upload_indices_into(&batch.labels, targets)?;
            let logits = graph.forward_host(&batch.images, n, Mode::Eval)?;
            let batch_loss = loss.forward_backward(&b, logits, targets, dlogits)?;
            b.argmax_rows(n, classes, logits.buffer(), preds)?;
            host_logits.resize(n * classes, 0.0);
            b.download_into(logits.buffer(), &mut host_logits)?;
            let batch_preds = b.download_indices(preds)?;
            loss_sum += f64::from(batch_loss) * n as f64;
            top5 +=
                crate::metrics::topk_correct(&host_logits, classes, &batch.labels, 5.min(classes));
            cm.add_batch(&batch.labels, &batch_preds);
            loader.recycle(batch);
        }
        Ok(())
    })?;
    let n = cm.total().max(1) as f64;
    let mut metrics = cm.split_metrics(loss_sum / n);
    metrics.top5_accuracy = Some(top5 as f64 / n);
    Ok((metrics, cm))
}

impl<B: Backend> super::Trainer<B> {
    /// After `epoch`: the weight averages' update and their validation
    /// metrics (see [`crate::averaging`]); nothing without averaging.
    pub(super) fn end_epoch_averages(
        &mut self,
        epoch: usize,
    ) -> Result<crate::averaging::Averaged> {
        let Some(averages) = self.averages.as_mut() else {
            return Ok(crate::averaging::Averaged::default());
        };
        let val = self.data.val.clone();
        let norm = self.data.normalization.clone();
        let eval_batch = self.config.batch_size.max(256);
        let loss = self.loss;
        averages.end_epoch(
            &self.graph,
            epoch,
            (&self.data.train, &norm, self.config.batch_size),
            |g| {
                if val.is_empty() {
                    return Ok(None);
                }
                Ok(Some(evaluate(g, &val, &norm, eval_batch, loss)?.0))
            },
        )
    }
}
