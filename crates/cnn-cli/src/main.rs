//! The `cnn` command: train a CNN, evaluate it, and draw its learning curves.
//!
//! `main` parses the command line and hands the subcommand to its module,
//! which owns its flags and its handler. Every failure prints one line
//! `error: ...` on stderr and exits non-zero (see `error`).

#[macro_use]
mod output;

mod args;
mod averaging;
mod compare;
mod curve;
mod data_on_device_args;
mod error;
mod eval;
mod inspect;
mod interrupt;
mod job;
mod lr_find;
mod models;
mod precision_args;
mod predict;
mod report;
mod slurm;
mod study;
mod summary;
mod train;
mod wrapper_args;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use error::CliResult;

/// Train convolutional networks and study their learning curves.
#[derive(Debug, Parser)]
#[command(name = "cnn", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model and write its learning curves to a run directory.
    Train(Box<train::TrainCmd>),
    /// Evaluate saved weights on a data split.
    Eval(eval::EvalArgs),
    /// Class probabilities for image files.
    Predict(predict::PredictArgs),
    /// What saved weights see in images: filters, feature maps, Grad-CAM,
    /// saliency; PNGs and a self-contained inspect.html.
    Inspect(Box<inspect::InspectArgs>),
    /// List the built-in architectures with their parameter counts.
    Models(models::ModelsArgs),
    /// A model layer by layer: shapes, parameters, MACs, memory.
    Summary(Box<summary::SummaryArgs>),
    /// Train variants of one configuration and compare their learning curves.
    Compare(Box<compare::CompareArgs>),
    /// Score against training-set size (scikit-learn's learning_curve).
    Curve(Box<curve::CurveArgs>),
    /// The LR range test: loss against an exponentially growing learning
    /// rate, and the rates it suggests (fastai's lr_find).
    LrFind(Box<lr_find::LrFindArgs>),
    /// Write report.html for a run, comparison or learning-curve directory.
    Report(report::ReportArgs),
    /// A comparison's or learning curve's plan of runs: run one (`study run
    /// DIR INDEX`), list their states (`study status`), write the results
    /// of those done (`study collect`).
    Study(study::StudyCmd),
}

fn main() {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // One line, as for every other failure: clap's first paragraph
            // (the error and the arguments it names), without the usage.
            let message = e.render().to_string();
            let first: Vec<&str> = message
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{}", first.join(" "));
            std::process::exit(2);
        }
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let (Command::Train(train), Some(("train", sub))) = (&mut cli.command, matches.subcommand())
    {
        let command = Cli::command();
        let flags = command
            .find_subcommand("train")
            .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
            .unwrap_or_else(Vec::new);
        train.given = flags
            .into_iter()
            .filter(|id| sub.value_source(id) == Some(ValueSource::CommandLine))
            .collect();
    }
    let code = match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Hand the subcommand to its handler.
fn run(command: Command) -> CliResult {
    match command {
        Command::Train(a) => train::train(*a),
        Command::Eval(a) => eval::eval(a),
        Command::Predict(a) => predict::predict(a),
        Command::Inspect(a) => inspect::inspect(*a),
        Command::Models(a) => models::list_models(a),
        Command::Summary(a) => summary::summary(*a),
        Command::Compare(a) => compare::compare(*a),
        Command::Curve(a) => curve::curve(*a),
        Command::LrFind(a) => lr_find::lr_find(*a),
        Command::Report(a) => report::report(a),
        Command::Study(a) => study::study(a),
    }
}
