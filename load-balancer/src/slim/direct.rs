//! Calls outside the SlimFaas routes (`GET /execute?name=F` and a user
//! function's `/invoke/:name`) counted for the scale-to-zero rule
//! ([`policy::scale_to_zero`]): each is an arrival when it comes (a
//! function is tracked from its first call, whichever route), holds the
//! function busy while it runs, and an end when it is over (also when the
//! caller hangs up: a drop guard reports it). Only known functions are
//! counted (a sample function, one in the settings file, or one in the
//! balancer's function store), so that a caller cannot grow the tracked
//! set with made-up names.
//!
//! Cost on `/execute`'s hot path: two short uncontended locks (the rule's
//! state and the in-flight map) at the start and at the end of a call; no
//! allocation once a function has been seen.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{lock, Queue};
use crate::state::RunClock;

/// Calls in flight through `/execute` and `/invoke`, by function.
#[derive(Debug, Default)]
pub(crate) struct DirectCalls {
    in_flight: Mutex<HashMap<String, u64>>,
}

impl DirectCalls {
    /// Calls of `function` in flight.
    pub(crate) fn in_flight(&self, function: &str) -> u64 {
        lock(&self.in_flight).get(function).copied().unwrap_or(0)
    }
}

/// One counted call; its end is reported when dropped.
#[derive(Debug)]
pub(crate) struct DirectCall<'a> {
    queue: &'a Queue,
    function: &'a str,
    clock: RunClock,
}

impl Queue {
    /// Counts a call of `function` through `/execute` or `/invoke` until
    /// the returned guard is dropped (module doc). `user`: whether the
    /// function store knows it (asked only when [`Queue::known`] does
    /// not); an unknown function is not counted (None).
    pub(crate) fn direct_call<'a>(
        &'a self,
        function: &'a str,
        user: impl FnOnce() -> bool,
        clock: RunClock,
    ) -> Option<DirectCall<'a>> {
        if !self.known(function) && !user() {
            return None;
        }
        {
            let mut map = lock(&self.direct.in_flight);
            match map.get_mut(function) {
                Some(n) => *n += 1,
                None => {
                    map.insert(function.to_string(), 1);
                }
            }
        }
        self.call_arrived(function, clock.now());
        Some(DirectCall {
            queue: self,
            function,
            clock,
        })
    }
}

impl Drop for DirectCall<'_> {
    fn drop(&mut self) {
        {
            let mut map = lock(&self.queue.direct.in_flight);
            if let Some(n) = map.get_mut(self.function) {
                *n -= 1;
                if *n == 0 {
                    map.remove(self.function);
                }
            }
        }
        self.queue
            .activity()
            .call_ended(self.function, self.clock.now());
    }
}
