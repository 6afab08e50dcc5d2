//! Criterion benchmark of `select` + `finished` per scheduler (filled in below).
fn main() {}
