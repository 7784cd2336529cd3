//! `cnn report DIR`: (re)write the self-contained `report.html` of a run,
//! comparison or learning-curve directory.

use std::path::PathBuf;

use clap::Args;

use crate::error::CliResult;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (from `cnn train`), a comparison (`cnn compare`) or
    /// a learning curve (`cnn curve`).
    pub dir: PathBuf,
}

pub fn report(args: ReportArgs) -> CliResult {
    let path = cnn::train::report::write_report(&args.dir)?;
    say!("report: {}", path.display());
    Ok(())
}
