//! The scenario parser (`protocol::scenario::parse`): never a panic; a
//! rejected file is one error naming it and one of its lines; what is read
//! writes back as a file that reads the same.
#![no_main]

#[path = "../../utils/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = checks::check_scenario(&text, "fuzz/x.csv") {
        panic!("{e}");
    }
});
