//! Test support (the `testing` feature): reference kernels, assert_close, the conformance suite and the golden harness.
