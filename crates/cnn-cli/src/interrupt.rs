//! Ctrl-C during training: the first asks the runs to stop at a checkpoint,
//! the second ends the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ctrl-C sets the returned flag: runs finish their step, checkpoint and
/// stop. A second Ctrl-C while the checkpoint is written kills the process.
pub(crate) fn install_interrupt() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint...");
    });
    interrupt
}
