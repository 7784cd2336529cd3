//! The command's results on stdout: the `say!` macro and the line writer
//! behind it, which stops quietly once stdout is a closed pipe.

/// `println!` for the command's results. Once stdout is a closed pipe
/// (`cnn models | head -1`) the rest of the results are dropped and the
/// command finishes with its own exit status, where `println!` would
/// panic.
macro_rules! say {
    () => {
        $crate::output::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

/// Write one line of results to stdout (see `say!`).
pub(crate) fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
