//! The replay schedule: which events are sent, and when.
//!
//! Pure and precomputed before anything is sent. Events are sorted stably by
//! their scenario start time (rows need not be sorted in the CSV; equal times
//! keep file order). The send offset of an event is its start time divided by
//! the time scale (`2.0` replays twice as fast, `0.5` half as fast). A
//! duration cap keeps only the events that start before it, in *scenario*
//! time (before scaling), so `--duration 60s` replays the same first minute
//! of a scenario whatever the time scale.
//!
//! Bounds: the time scale is within [`MIN_TIME_SCALE`]..=[`MAX_TIME_SCALE`]
//! (a thousand times slower to a million times faster), and no call is
//! sent later than [`MAX_OFFSET`] after the start; beyond either, the
//! schedule is an error, not a panic in a `Duration` conversion.

use std::time::Duration;

use protocol::scenario::CallShape;
use protocol::ScenarioEvent;

/// Slowest replay: a thousand times slower than the scenario.
pub const MIN_TIME_SCALE: f64 = 1e-3;
/// Fastest replay: a million times faster (a day in 86 ms).
pub const MAX_TIME_SCALE: f64 = 1e6;
/// Latest send offset of a call: one year.
pub const MAX_OFFSET: Duration = Duration::from_secs(365 * 86_400);

/// One event of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledCall {
    /// Position in the sorted schedule (0-based).
    pub index: usize,
    pub function: String,
    /// Start time in the scenario, in ms.
    pub scenario_ms: u64,
    /// When to send it, after the replay's start (scaled).
    pub offset: Duration,
    /// The row's per-invocation columns (duration, memory), sent with
    /// the call as its own shape (`protocol::query::CallParams`).
    pub shape: Option<CallShape>,
}

/// A bad schedule parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("time scale must be a number in {MIN_TIME_SCALE}..={MAX_TIME_SCALE}, got {0:?}")]
    BadTimeScale(f64),
    #[error("the call of {function} at {start_ms} ms would be sent {offset_s:.0} s after the start, beyond the replay's limit of one year")]
    TooLate {
        function: String,
        start_ms: u64,
        offset_s: f64,
    },
}

/// The calls to make, in send order, plus how many events the duration cap
/// left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub calls: Vec<ScheduledCall>,
    /// Events of the scenario at or after the duration cap (not sent).
    pub beyond_cap: usize,
}

impl Schedule {
    /// Builds the schedule of `events` for a time scale and optional cap.
    pub fn build(
        events: &[ScenarioEvent],
        time_scale: f64,
        cap: Option<Duration>,
    ) -> Result<Self, ScheduleError> {
        if !(MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&time_scale) {
            return Err(ScheduleError::BadTimeScale(time_scale));
        }
        let mut sorted: Vec<&ScenarioEvent> = events.iter().collect();
        sorted.sort_by_key(|e| e.start_ms); // stable: equal times keep file order
        let cap_ms = cap.map(|c| c.as_millis());
        let mut calls = Vec::with_capacity(sorted.len());
        let mut beyond_cap = 0;
        for e in sorted {
            if cap_ms.is_some_and(|c| u128::from(e.start_ms) >= c) {
                beyond_cap += 1;
                continue;
            }
            let offset_s = e.start_ms as f64 / 1000.0 / time_scale;
            let offset = Duration::try_from_secs_f64(offset_s)
                .ok()
                .filter(|o| *o <= MAX_OFFSET)
                .ok_or_else(|| ScheduleError::TooLate {
                    function: e.function.clone(),
                    start_ms: e.start_ms,
                    offset_s,
                })?;
            calls.push(ScheduledCall {
                index: calls.len(),
                function: e.function.clone(),
                scenario_ms: e.start_ms,
                offset,
                shape: e.shape,
            });
        }
        Ok(Self { calls, beyond_cap })
    }

    /// Send offset of the last call (the dispatch phase's length).
    pub fn span(&self) -> Duration {
        self.calls.last().map_or(Duration::ZERO, |c| c.offset)
    }
}

/// Parses a duration such as `90`, `90s`, `1.5m`, `500ms`, `2h` (a bare
/// number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (examples: 90s, 1.5m, 500ms, 2h)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "bad duration unit {other:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {text:?}: {e}"))
}

/// A time-out flag's value: a duration as [`parse_duration`] reads it, and
/// more than zero (a zero time-out would fail every call or wait as one).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(format!(
            "a time-out of {text:?} ends every wait at once; give more than 0 (e.g. 30s)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(f: &str, ms: u64) -> ScenarioEvent {
        ScenarioEvent::new(f, ms)
    }

    #[test]
    fn sorts_stably_and_scales() {
        let events = [ev("B", 2000), ev("A", 1000), ev("C", 1000), ev("D", 0)];
        let s = Schedule::build(&events, 2.0, None).unwrap();
        let names: Vec<_> = s.calls.iter().map(|c| c.function.as_str()).collect();
        assert_eq!(names, ["D", "A", "C", "B"]);
        assert_eq!(s.calls[1].offset, Duration::from_millis(500));
        assert_eq!(s.calls[3].offset, Duration::from_millis(1000));
        assert_eq!(s.calls[3].index, 3);
        assert_eq!(s.span(), Duration::from_secs(1));
        assert_eq!(s.beyond_cap, 0);
    }

    #[test]
    fn cap_is_in_scenario_time() {
        let events = [ev("A", 0), ev("B", 999), ev("C", 1000), ev("D", 5000)];
        let s = Schedule::build(&events, 10.0, Some(Duration::from_secs(1))).unwrap();
        assert_eq!(s.calls.len(), 2);
        assert_eq!(s.beyond_cap, 2);
    }

    #[test]
    fn rejects_bad_scales() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e-4, 2e6] {
            assert!(
                matches!(
                    Schedule::build(&[], bad, None),
                    Err(ScheduleError::BadTimeScale(_))
                ),
                "{bad}"
            );
        }
        assert!(Schedule::build(&[ev("W1", 5)], MIN_TIME_SCALE, None).is_ok());
        assert!(Schedule::build(&[ev("W1", 5)], MAX_TIME_SCALE, None).is_ok());
        // The value as given, not 300 digits of it.
        let e = ScheduleError::BadTimeScale(1e-300).to_string();
        assert!(e.ends_with("got 1e-300"), "{e}");
    }

    #[test]
    fn a_call_beyond_a_year_is_an_error() {
        let late = [ev("W1", 0), ev("W2", u64::MAX)];
        let e = Schedule::build(&late, 1.0, None).unwrap_err();
        assert!(
            matches!(&e, ScheduleError::TooLate { function, .. } if function == "W2"),
            "{e}"
        );
        // A day at a thousandth of the speed: 1,000 days, beyond a year.
        let slow = [ev("W1", 86_400_000)];
        assert!(Schedule::build(&slow, MIN_TIME_SCALE, None).is_err());
        assert!(Schedule::build(&slow, 1.0, None).is_ok());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
    }

    #[test]
    fn a_timeout_is_more_than_zero() {
        assert_eq!(parse_timeout("1ms").unwrap(), Duration::from_millis(1));
        for zero in ["0", "0s", "0.0m"] {
            let e = parse_timeout(zero).unwrap_err();
            assert!(e.contains("more than 0"), "{zero}: {e}");
        }
        assert!(parse_timeout("soon").unwrap_err().contains("bad duration"));
    }
}
