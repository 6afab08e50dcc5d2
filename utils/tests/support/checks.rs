//! The promises every parser of outside input keeps (issue 13, part 5),
//! checked by the mutation test (`fuzz_mutations.rs`), the regression
//! inputs (`fuzz_regressions.rs`) and the libFuzzer targets (`fuzz/`,
//! which include this file): never a panic; a rejected scenario is one
//! error naming the file and one of its lines, the file once; an
//! unreadable log line is counted with a line number of the file; an
//! analysis that cannot be made is an error naming the log, and one that
//! can be made renders as text and JSON.

#![allow(dead_code)] // each user takes a part

use std::panic::{catch_unwind, AssertUnwindSafe};

use utils::analyze::{analyze, AnalyzeOptions};
use utils::logs::RunLog;

fn line_count(text: &str) -> usize {
    text.lines().count()
}

/// Checks one scenario text; `Err` describes a broken promise.
pub fn check_scenario(text: &str, name: &str) -> Result<(), String> {
    let parsed = catch_unwind(|| protocol::scenario::parse(text, name))
        .map_err(|_| "the scenario parser panicked".to_string())?;
    let lines = line_count(text);
    match parsed {
        Ok(events) if events.len() > lines => {
            Err(format!("{} events from {lines} lines", events.len()))
        }
        Ok(events) => {
            // What is read is written back as a file that reads the same.
            let csv = protocol::scenario::to_csv(&events);
            match protocol::scenario::parse(&csv, name) {
                Ok(again) if again == events => Ok(()),
                Ok(_) => Err(format!(
                    "written back as {:?}..., it reads differently",
                    csv.chars().take(120).collect::<String>()
                )),
                Err(e) => Err(format!("written back, it is refused: {e}")),
            }
        }
        Err(e) => {
            let shown = e.to_string();
            let prefix = format!("{name}:{}: ", e.line);
            if !(1..=lines.max(1)).contains(&e.line) {
                Err(format!("line {} of a {lines}-line file: {shown}", e.line))
            } else if !shown.starts_with(&prefix) {
                Err(format!("error does not start with {prefix:?}: {shown}"))
            } else if shown[prefix.len()..].contains(name) {
                Err(format!("file named twice: {shown}"))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks one log text through the reader, both analyses and the report.
pub fn check_log(text: &str, name: &str) -> Result<(), String> {
    let lines = line_count(text);
    let run = catch_unwind(|| RunLog::parse(text, name))
        .map_err(|_| "the log reader panicked".to_string())?;
    if let Some(bad) = run
        .unparseable
        .iter()
        .find(|u| u.line == 0 || u.line > lines)
    {
        return Err(format!("unreadable line {} of {lines}", bad.line));
    }
    if run.records.len() + run.error_lines + run.unparseable_count > lines {
        return Err(format!("more lines counted than the {lines} read"));
    }
    for per_slot in [false, true] {
        let options = AnalyzeOptions {
            nodes: None,
            label: None,
            per_slot,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            analyze(&run, &options).map(|a| {
                let text = utils::report::analysis_text(&a);
                let json = serde_json::to_string(&a).map_err(|e| e.to_string());
                (text.len(), json)
            })
        }))
        .map_err(|_| format!("the analyzer panicked (per_slot {per_slot})"))?;
        match outcome {
            Ok((_, Err(e))) => return Err(format!("the analysis is not JSON: {e}")),
            Ok(_) => {}
            Err(e) if e.to_string().contains(name) => {}
            Err(e) => return Err(format!("error does not name the log: {e}")),
        }
    }
    Ok(())
}

/// Checks one log line: a line that parses prints back as a line that
/// parses to the same; its JSON is read as analysis reads it.
pub fn check_log_line(line: &str) -> Result<(), String> {
    let parsed = catch_unwind(|| protocol::LogLine::parse(line))
        .map_err(|_| "the log line parser panicked".to_string())?;
    let Ok(parsed) = parsed else {
        return Ok(());
    };
    let printed = parsed.to_string();
    match protocol::LogLine::parse(&printed) {
        Ok(again) if again == parsed => {}
        Ok(again) => return Err(format!("printed as {printed:?}, it reads as {again:?}")),
        Err(e) => return Err(format!("printed as {printed:?}, it is refused: {e}")),
    }
    catch_unwind(|| {
        let _ = parsed.is_error();
        let _ = serde_json::from_str::<protocol::log::LoggedReply>(&parsed.json);
    })
    .map_err(|_| "reading the line's JSON panicked".to_string())
}
