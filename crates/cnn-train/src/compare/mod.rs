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
//! - `wrapper_keys.rs`: the optimizer wrappers as keys of the variants
//!   (`--vary sam=off,0.05`, `sam.rho=...`, `lookahead=off,on`,
//!   `lookahead.k=...`).
//! - `sample.rs`: random search, `--sample KEY=DIST` ([`sample::SampleSpec`]):
//!   seeded draws of `--trials` sets of values, made into a [`RunsFile`]
//!   of one `[[run]]` per trial, so they are planned like any runs file.
//! - `manifest.rs`: `compare.json`, the [`Manifest`] (base configuration,
//!   variants, runs and their status).
//! - `outputs.rs`: what [`write_outputs`] derives from those files alone:
//!   `overlay.png`/`overlay.svg` (mean ± std over repeats per variant),
//!   `summary.csv`/`summary.md` (sorted by the chosen [`SortMetric`]) and
//!   `diagnosis.md` (the [`crate::diagnose`](mod@crate::diagnose) findings
//!   of every run), and `validation_curve.png`/`.svg` when the variants
//!   differ in one numeric setting.
//! - `validation_curve.rs`: [`validation_curve`], score against that
//!   setting's value (scikit-learn's `validation_curve`).
//!
//! A comparison directory holds each run's own directory besides those
//! files; their names are in [`crate::run_dir::comparison`], the
//! statistics in [`crate::stats`].

mod execute;
mod manifest;
mod outputs;
pub mod sample;
mod validation_curve;
mod variants;
mod wrapper_keys;

pub use execute::{preflight, run_all};
pub use manifest::{Manifest, Search, SortMetric, is_comparison};
pub use outputs::{
    RunResult, SUMMARY_HEADER, SummaryRow, diagnoses, diagnosis_md, finished, is_missing,
    load_results, overlay_series, sort_rows, summary_cells, summary_csv, summary_md, summary_rows,
    write_outputs,
};
pub use sample::search_lines;
pub use validation_curve::{numeric_key, validation_curve};
pub use variants::{
    CONFIRM_RUNS, MAX_RUNS, PlannedRun, RunsFile, Variant, VarySpec, apply_text, apply_value,
    check_plan_size, expand, plan, run_count, slug,
};
