//! Shared pieces of the fuzz targets (`fuzz_targets/`, one per parser of
//! outside data).
//!
//! Every target installs [`Limited`] as its global allocator and calls
//! [`input`] first: any single allocation larger than
//! `max(floor, 1000 x input length)` aborts the process with a message,
//! which libFuzzer reports as a crash. A parser may return a value or a
//! typed error; panicking or allocating what the input does not justify
//! (a header claiming 10^12 images) is a finding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default floor of the per-allocation limit (64 MiB).
pub const DEFAULT_FLOOR: usize = 64 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Start of one fuzz input of `len` bytes: allocations above
/// `max(floor, 1000 * len)` abort from now on.
pub fn input(len: usize, floor: usize) {
    LIMIT.store(floor.max(len.saturating_mul(1000)), Ordering::Relaxed);
}

/// The system allocator with a per-allocation size limit (see the crate docs).
#[derive(Debug)]
pub struct Limited;

impl Limited {
    fn check(size: usize) {
        let limit = LIMIT.load(Ordering::Relaxed);
        if size > limit {
            // No allocation here: fixed text plus digits on the stack.
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut n = size;
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"fuzz: allocation of ");
            let _ = err.write_all(&digits[at..]);
            let _ = err.write_all(b" bytes exceeds what the input justifies\n");
            std::process::abort();
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// size check only reads an atomic.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Declare [`Limited`] as the global allocator of a target.
#[macro_export]
macro_rules! limited_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::Limited = $crate::Limited;
    };
}
