//! The clock of the transport's timeouts: the time this rank ran, leaving out the
//! time it was stopped (Ctrl-Z, which oxrun passes on to every rank; a debugger;
//! `scontrol suspend`).
//!
//! A job stopped for longer than a timeout must carry on once continued: the frames a
//! rank waits for were sent before the stop, and may still be on their way when it
//! looks again. A stopped rank reads no clock, so it tells a stop by the gap between
//! two reads: the clock advances by that gap, but by at most [`MAX_STEP`]. While
//! anything is timed, the transport reads it at least every 16th progress call, and a
//! waiting rank makes those at least every 50 ms (its longest sleep): a wait counts in
//! full, and a stop of any length as at most `MAX_STEP`. A gap that is the program
//! computing between calls counts as at most `MAX_STEP` too; a timeout then runs
//! slower, never faster, and a peer that truly never sends still fails it once the
//! rank has waited for it. No signal handler learns of SIGCONT: a library must not
//! take a signal from the program it runs in, and this works whoever stops the rank.
//!
//! Invariant: the time never goes back, and advances at most `MAX_STEP` per read.

use std::time::{Duration, Instant};

/// The most one read advances the clock: longer than the gaps between reads in a wait
/// (16 sleeps of at most 50 ms), short against the timeouts it measures (30 s).
const MAX_STEP: Duration = Duration::from_secs(2);

/// Run time since the clock was made.
pub(super) struct RunClock {
    last: Instant,
    run: Duration,
}

impl RunClock {
    pub(super) fn new() -> RunClock {
        RunClock {
            last: Instant::now(),
            run: Duration::ZERO,
        }
    }

    /// The run time now.
    pub(super) fn now(&mut self) -> Duration {
        self.at(Instant::now())
    }

    /// The run time at `now`, a reading of the monotonic clock no earlier than the
    /// last.
    fn at(&mut self, now: Instant) -> Duration {
        self.run += now.saturating_duration_since(self.last).min(MAX_STEP);
        self.last = now;
        self.run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_in_full_up_to_the_step_and_a_stop_as_the_step() {
        let mut clock = RunClock::new();
        let t0 = clock.last;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(clock.at(at(50)), Duration::from_millis(50));
        assert_eq!(clock.at(at(850)), Duration::from_millis(850));
        // Stopped for a minute: counted as one step.
        assert_eq!(clock.at(at(60_850)), Duration::from_millis(2850));
        assert_eq!(clock.at(at(60_900)), Duration::from_millis(2900));
    }
}
