//! Shared by the tests that run the `utils` binary as a user does.

#![allow(dead_code)] // each test binary uses a part

pub mod checks;
pub mod mutate;

use std::process::{Command, Output};

/// Runs `utils` with `args`.
pub fn utils(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_utils"))
        .args(args)
        .output()
        .expect("run utils")
}

/// Runs `utils` with `args`, which must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = utils(args);
    assert!(
        out.status.success(),
        "utils {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
