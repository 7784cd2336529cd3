//! Ctrl-C, SIGTERM and SIGHUP during training (the `ctrlc` crate's
//! `termination` feature; Slurm sends SIGTERM at a time limit, a closed
//! terminal SIGHUP): the first asks the runs to stop at a checkpoint, the
//! second ends the process at once. Ending at once is safe: every file is
//! written atomically and a checkpoint only counts once `LATEST` names it,
//! so what the second signal cuts short is a temporary file or directory,
//! which the next `--resume` removes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// SIGINT, SIGTERM or SIGHUP set the returned flag: runs finish their
/// step, checkpoint and stop (exit code 130). A second one while the
/// checkpoint is written ends the process with code 130.
pub(crate) fn install_interrupt() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        cnn::train::io::log_line(format_args!(
            "\n{}",
            interrupt_message(cnn::train::io::training_in_progress())
        ));
    });
    interrupt
}

/// What the first interrupt does: stop training at a checkpoint or, once
/// training is over, nothing more than letting the final evaluation and
/// files finish (the run is complete; no checkpoint is written for it).
fn interrupt_message(training: bool) -> &'static str {
    if training {
        "interrupt: stopping after the current step with a checkpoint (a second interrupt stops at once)..."
    } else {
        "interrupt: training is over; finishing the evaluation and files (a second interrupt stops at once, \
         keeping the trained model)..."
    }
}

#[cfg(test)]
mod tests {
    use super::interrupt_message;

    #[test]
    fn an_interrupt_after_training_does_not_promise_a_checkpoint() {
        assert!(interrupt_message(true).contains("with a checkpoint"));
        let after = interrupt_message(false);
        assert!(after.contains("training is over"), "{after}");
        assert!(!after.contains("checkpoint"), "{after}");
    }
}
