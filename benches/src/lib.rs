//! Criterion benches for the cnn workspace live in `benches/`.
