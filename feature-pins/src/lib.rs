//! No code. This crate exists for its `Cargo.toml`: it pins the features
//! of dependencies that the workspace's normal and dev builds share, so
//! that `cargo build --workspace` and `cargo test --workspace` resolve the
//! same feature set (see the manifest's comment and
//! `scripts/check-features.sh`).
