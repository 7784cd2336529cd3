//! `cnn models`: the built-in architectures with their parameter counts.

use clap::Args;
use cnn::core::Shape;
use cnn::core::models::{self, ModelOptions};

use crate::error::{CliResult, fail};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Input shape C,H,W for the parameter counts.
    #[arg(long, default_value = "3,32,32")]
    pub input: String,
    /// Number of classes of the output layer.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
}

pub fn list_models(args: ModelsArgs) -> CliResult {
    if args.classes == 0 {
        return Err(fail("--classes must be at least 1"));
    }
    let dims: Vec<usize> = args
        .input
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            fail(format!(
                "--input expects C,H,W like 3,32,32, got `{}`",
                args.input
            ))
        })?;
    let input = Shape::new(dims);
    say!(
        "{:<10} {:>12}  description (input {input}, {} classes)",
        "model",
        "parameters",
        args.classes
    );
    for (name, description) in models::BUILTIN {
        let opts = ModelOptions::new(input.clone(), args.classes);
        let count = match models::builtin(name, &opts).and_then(|s| s.num_params()) {
            Ok(n) => n.to_string(),
            Err(e) => format!("n/a ({e})"),
        };
        say!("{name:<10} {count:>12}  {description}");
    }
    Ok(())
}
