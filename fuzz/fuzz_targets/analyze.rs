//! A whole log through the reader, the analyzer (with and without the
//! per-slot detail), the text report and its JSON: never a panic, and
//! every error names the log.
#![no_main]

#[path = "../../utils/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = checks::check_log(&text, "fuzz/x.log") {
        panic!("{e}");
    }
});
