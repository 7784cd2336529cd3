//! Studies: a comparison (`cnn compare`) or learning curve (`cnn curve`)
//! as a plan of independent runs that any executor can run, resume and
//! collect, one file per job:
//!
//! - `manifest.rs`: `study.json`, the [`StudyManifest`]: the study's kind
//!   and every run with its [`RunState`] (pending, running, done, failed,
//!   diverged, pruned), placement and worker, updated under a file lock
//!   by the processes that run them ([`StudyManifest::update`]).
//! - `plan.rs`: [`write_plan`] gives each run its own directory holding
//!   its full configuration (`config.toml`) and writes the manifest;
//!   [`compare_entries`] and [`curve_entries`] list the runs of the two
//!   commands.
//! - `worker.rs`: [`claim`] takes one run (locking its directory, which
//!   names the holder to a second worker) and [`Claim::finish`] records
//!   how it ended; the CLI's `cnn study run DIR INDEX`, its threads and
//!   its processes per GPU all go through them.
//! - `collect.rs`: [`collect()`] writes the command's files (overlays,
//!   summary, diagnosis, report) from whatever runs are over.
//!
//! Run indices count from 0, in plan order. The names of the files are in
//! [`crate::run_dir::study`].

pub mod collect;
pub mod manifest;
pub mod plan;
pub mod worker;

pub use collect::{Collected, collect, sync_compare, sync_curve};
pub use manifest::{
    RunState, StudyKind, StudyManifest, StudyRun, TrainSubset, is_study, missing_note,
};
pub use plan::{PlanEntry, compare_entries, curve_entries, ensure_plan, write_plan};
pub use worker::{Begin, Claim, claim, worker_name, worker_name_of};
