//! One replay log line (`protocol::LogLine::parse`) and the lenient view
//! of its JSON that analysis reads: never a panic, and a line that parses
//! prints back as the same line.
#![no_main]

#[path = "../../utils/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = checks::check_log_line(&text) {
        panic!("{e}");
    }
});
