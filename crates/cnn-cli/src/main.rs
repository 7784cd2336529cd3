//! The `cnn` command: train a CNN, evaluate it, and draw its learning curves.
//!
//! Every failure prints one line `error: ...` on stderr and exits non-zero.

mod args;
mod commands;
mod compare;
mod curve;
mod report;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let code = match commands::run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
