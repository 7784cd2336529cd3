//! Running a comparison: [`preflight`] checks every variant before the
//! comparison directory is touched, and [`run_all`] runs the planned runs
//! one after another or `jobs` at once (scoped threads pulling from a
//! shared queue); a run that diverges is a result like any other.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(doc)]
use crate::compare::variants::PlannedRun;
use crate::compare::variants::Variant;
use crate::error::{Result, TrainError};
use crate::plan::RunPlan;
use crate::setup::{self, DataSplits};

/// Check every variant as a run checks itself before it writes anything,
/// by making its [`RunPlan`]: its configuration, optimizer and schedule,
/// its data (each distinct dataset loaded once), its model on that data,
/// the memory it needs and that its `init_from` file reads. Call it before the comparison
/// directory is prepared, so that a comparison that cannot start fails
/// with its first error and leaves an existing directory as it was.
pub fn preflight(variants: &[Variant]) -> Result<()> {
    let mut loaded: Vec<(String, DataSplits)> = Vec::new();
    for variant in variants {
        let config = &variant.config;
        // The synthetic set is drawn from the seed; files are not.
        let key = format!(
            "{}|{:?}|{}|{}|{}",
            config.data,
            config.data_dir,
            config.val_fraction,
            config.limit_train,
            if config.data == "synthetic" {
                config.seed
            } else {
                0
            }
        );
        RunPlan::with_data(config, None, |config| {
            if let Some((_, data)) = loaded.iter().find(|(k, _)| *k == key) {
                return Ok(data.clone());
            }
            let data = setup::load_data(config)?;
            loaded.push((key, data.clone()));
            Ok(data)
        })?;
    }
    Ok(())
}

/// Run every planned run with `run`, `jobs` at a time (1 = one after
/// another), in plan order as far as a queue allows. `done` is called as
/// each finishes (from the worker thread). Results are in plan order.
/// The runs may be any items (a comparison's [`PlannedRun`]s, a study's
/// run indices) and the results any values.
pub fn run_all<T, R, F, D>(runs: &[T], jobs: usize, run: F, done: D) -> Vec<Result<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
    D: Fn(usize, &T, &Result<R>) + Sync,
{
    let jobs = jobs.clamp(1, runs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..runs.len()).map(|_| None).collect());
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(planned) = runs.get(i) else { break };
            let result = run(planned);
            done(i, planned, &result);
            let interrupted = matches!(result, Err(TrainError::Interrupted { .. }));
            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            if interrupted {
                // Skip the rest of the queue.
                next.store(runs.len(), Ordering::SeqCst);
            }
        }
    };
    if jobs == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(worker);
            }
        });
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(TrainError::Config(
                    "not run: the comparison was interrupted".into(),
                ))
            })
        })
        .collect()
}
