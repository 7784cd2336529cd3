//! Comparing variants of one configuration by their learning curves
//! (`cnn compare`), one file per job:
//!
//! - `variants.rs`: [`VarySpec`] (`optimizer=sgd,adam`) and [`RunsFile`] (a
//!   TOML list of runs) describe the variants; [`expand`] turns a base
//!   [`TrainConfig`](crate::TrainConfig) plus those into [`Variant`]s (the
//!   grid of every `--vary`), and [`plan`] into [`PlannedRun`]s, `repeats`
//!   per variant with seeds `seed`, `seed + 1`, ...; [`run_count`] and
//!   [`check_plan_size`] size a plan before it is made (more than
//!   [`CONFIRM_RUNS`] runs need `--yes`, more than [`MAX_RUNS`] are refused).
//! - `execute.rs`: [`preflight`] makes each variant's
//!   [`RunPlan`](crate::plan::RunPlan) before anything is written, and
//!   [`run_all`] runs the planned runs one after another or `jobs` at once
//!   (scoped threads pulling from a shared queue); a run that diverges is a
//!   result like any other.
//! - `manifest.rs`: `compare.json`, the [`Manifest`] (base configuration,
//!   variants, runs and their status).
//! - `outputs.rs`: what [`write_outputs`] derives from those files alone:
//!   `overlay.png`/`overlay.svg` (mean ± std over repeats per variant),
//!   `summary.csv`/`summary.md` (sorted by the chosen [`SortMetric`]) and
//!   `diagnosis.md` (the [`crate::diagnose`](mod@crate::diagnose) findings
//!   of every run).
//!
//! A comparison directory holds each run's own directory besides those
//! files; their names are in [`crate::run_dir::comparison`], the
//! statistics in [`crate::stats`].

mod execute;
mod manifest;
mod outputs;
mod variants;

pub use execute::{preflight, run_all};
pub use manifest::{Manifest, SortMetric, is_comparison};
pub use outputs::{
    RunResult, SUMMARY_HEADER, SummaryRow, diagnoses, diagnosis_md, is_missing, load_results,
    overlay_series, sort_rows, summary_cells, summary_csv, summary_md, summary_rows, write_outputs,
};
pub use variants::{
    CONFIRM_RUNS, MAX_RUNS, PlannedRun, RunsFile, Variant, VarySpec, apply_text, apply_value,
    check_plan_size, expand, plan, run_count, slug,
};
