//! Pure worker policies: given an event and the time, what should exist now?
//!
//! The live worker turns their answers into Docker or process actions; the
//! discrete-event simulator turns them into modelled delays. No I/O, no clock
//! reads (time is an argument), seeded randomness only.

pub mod keep_alive;
