//! Telling a deadlocked job: every rank blocked, and nothing on its way to any.
//!
//! An oxmpi rank whose blocking wait has been idle for 0.1 s asks oxrun about silent
//! peers, then again at doubling gaps of up to a second (`oxmpi_silent`); where
//! nothing it sent is still on its way (no frame queued, no byte a peer's kernel has
//! not acknowledged) it adds its idle spell (`idle=`), a number that changes with
//! every wait, every progress pass that moved anything and every answer that taught
//! it something. Two questions with the same spell mean the rank moved nothing in
//! between. A rank in the finalize fence, or one that ended after finalizing, sends
//! nothing new either: before the fence it sends what it had queued (for up to a
//! second, though not waiting for the peers' acknowledgements; what is left goes
//! from the fence once its receiver, moving, makes room).
//!
//! A question's spell tells the rank's state at its last progress pass before it,
//! which may lie long before oxrun reads the question (the rank lost its core in
//! between). The next question of the same spell is sent only after the answer, from
//! a pass that moved nothing: so a rank counts as blocked from the first question of
//! a spell until oxrun read the one before its latest, which is sure (the review
//! that led to this held a rank up for 1.5 s between its pass and its question, and
//! counting up to the latest question took a job that went on for deadlocked).
//!
//! If some moment `T` lies within a spell of every rank so counted (or after it
//! entered the fence or ended), and every spell went on until at least [`WINDOW`]
//! after `T`, the job is deadlocked: at `T` every rank waited, and everything sent
//! before had arrived by the end of the window (it was acknowledged, or in a
//! shared-memory ring, before the sender's spell began), yet no rank took anything
//! in; no rank sent anything during the window either: a rank sends from a pass that
//! moves, or from one that finds room for a frame that waited in a queue, and then
//! it was not quiet when it last asked. A wait ends only through what other ranks
//! send or publish (oxmpi calls come from the thread that called `init` alone), so
//! none ever will. The window covers what the acknowledgement does not: the bytes a
//! rank wrote just before the fence, its answers in the fence (it progresses every
//! millisecond there, and answers an offer to a buffered send), and the time a woken
//! rank takes to be scheduled. A rank held up for longer than the window at just that point (stopped
//! alone in a debugger while in the fence) could still be taken for a deadlock.

use std::time::{Duration, Instant};

/// How long every rank must have stayed blocked together.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What oxrun knows of one rank's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Running, or waiting with something on its way: it may yet send.
    Running,
    /// Blocked in `spell`, said first at `first` and last at `last`; surely blocked
    /// until `sure`, when oxrun read the question before the last (none: only one).
    Idle {
        spell: u64,
        first: Instant,
        sure: Option<Instant>,
        last: Instant,
    },
    /// In the finalize fence or ended (after finalizing) since then.
    Still(Instant),
}

/// Every rank's activity, as far as oxrun knows.
#[derive(Debug)]
pub struct Stillness {
    ranks: Vec<State>,
}

impl Stillness {
    /// `size` ranks, all running.
    pub fn new(size: usize) -> Stillness {
        Stillness {
            ranks: vec![State::Running; size],
        }
    }

    /// `rank` asked about silent peers at `now`, blocked in `spell` (`None`: not
    /// blocked, or told something that may end its wait).
    pub fn word(&mut self, rank: usize, spell: Option<u64>, now: Instant) {
        let state = &mut self.ranks[rank];
        if matches!(state, State::Still(_)) {
            return;
        }
        *state = match (spell, *state) {
            (None, _) => State::Running,
            (
                Some(spell),
                State::Idle {
                    spell: s,
                    first,
                    last,
                    ..
                },
            ) if s == spell => State::Idle {
                spell,
                first,
                sure: Some(last),
                last: now,
            },
            (Some(spell), _) => State::Idle {
                spell,
                first: now,
                sure: None,
                last: now,
            },
        };
    }

    /// `rank` entered the finalize fence, or ended after finalizing, at `now` (the
    /// first time counts).
    pub fn still(&mut self, rank: usize, now: Instant) {
        if !matches!(self.ranks[rank], State::Still(_)) {
            self.ranks[rank] = State::Still(now);
        }
    }

    /// Whether the job is deadlocked as of `now`: some rank is blocked (not all are
    /// finalizing, whose fence then ends), and every rank has been blocked or still
    /// through one moment and [`WINDOW`] after it.
    pub fn deadlocked(&self, now: Instant) -> bool {
        let mut latest_start = None;
        let mut earliest_end = now;
        let mut any_blocked = false;
        for state in &self.ranks {
            let (start, end) = match *state {
                State::Idle {
                    first,
                    sure: Some(sure),
                    ..
                } => {
                    any_blocked = true;
                    (first, sure)
                }
                State::Running | State::Idle { sure: None, .. } => return false,
                State::Still(since) => (since, now),
            };
            latest_start = latest_start.max(Some(start));
            earliest_end = earliest_end.min(end);
        }
        any_blocked && latest_start.is_some_and(|start| start + WINDOW <= earliest_end)
    }

    /// The ranks blocked in a wait (not finalizing).
    pub fn blocked(&self) -> Vec<usize> {
        (0..self.ranks.len())
            .filter(|&r| matches!(self.ranks[r], State::Idle { .. }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn every_rank_blocked_through_a_window_is_a_deadlock() {
        let t0 = Instant::now();
        let mut s = Stillness::new(3);
        for r in 0..3 {
            s.word(r, Some(7), at(t0, 100));
        }
        assert!(!s.deadlocked(at(t0, 100)));
        for r in 0..3 {
            s.word(r, Some(7), at(t0, 1100));
        }
        assert!(
            !s.deadlocked(at(t0, 1100)),
            "the latest questions may be out of date"
        );
        s.word(0, Some(7), at(t0, 1200));
        s.word(1, Some(7), at(t0, 1200));
        assert!(!s.deadlocked(at(t0, 1200)), "rank 2 said nothing since");
        s.word(2, Some(7), at(t0, 1300));
        assert!(s.deadlocked(at(t0, 1300)));
        assert_eq!(s.blocked(), vec![0, 1, 2]);
        // Sure only up to the question before the latest: one at 1099 is not enough.
        let mut s = Stillness::new(1);
        s.word(0, Some(1), at(t0, 100));
        s.word(0, Some(1), at(t0, 1099));
        s.word(0, Some(1), at(t0, 5000));
        assert!(!s.deadlocked(at(t0, 5000)));
        s.word(0, Some(1), at(t0, 6000));
        assert!(s.deadlocked(at(t0, 6000)));
    }

    #[test]
    fn a_rank_that_moved_or_runs_breaks_it() {
        let t0 = Instant::now();
        let mut s = Stillness::new(2);
        s.word(0, Some(1), at(t0, 0));
        s.word(1, Some(1), at(t0, 0));
        // Rank 1 moved: a new spell starts the window again.
        s.word(1, Some(2), at(t0, 600));
        s.word(0, Some(1), at(t0, 1600));
        s.word(0, Some(1), at(t0, 1700));
        s.word(1, Some(2), at(t0, 1500));
        s.word(1, Some(2), at(t0, 1700));
        assert!(!s.deadlocked(at(t0, 1700)));
        s.word(1, Some(2), at(t0, 1800));
        assert!(s.deadlocked(at(t0, 1800)));
        // A question with nothing blocked in it: running.
        s.word(0, None, at(t0, 1700));
        assert!(!s.deadlocked(at(t0, 5000)));
    }

    #[test]
    fn spells_must_overlap_by_the_window() {
        // Rank 1 was blocked long ago and has run since (its last word is old): the
        // spells of ranks 0 and 1 do not share a window.
        let t0 = Instant::now();
        let mut s = Stillness::new(2);
        s.word(1, Some(3), at(t0, 0));
        s.word(1, Some(3), at(t0, 1500));
        s.word(1, Some(3), at(t0, 1600));
        s.word(0, Some(9), at(t0, 1000));
        s.word(0, Some(9), at(t0, 8000));
        s.word(0, Some(9), at(t0, 9000));
        assert!(!s.deadlocked(at(t0, 9000)));
    }

    #[test]
    fn finalizing_ranks_are_still_but_not_a_deadlock_alone() {
        let t0 = Instant::now();
        let mut s = Stillness::new(3);
        s.still(1, at(t0, 0));
        s.still(2, at(t0, 50));
        assert!(
            !s.deadlocked(at(t0, 5000)),
            "nobody blocked: the fence ends"
        );
        s.word(0, Some(4), at(t0, 100));
        s.word(0, Some(4), at(t0, 1049));
        s.word(0, Some(4), at(t0, 1060));
        assert!(!s.deadlocked(at(t0, 1060)));
        s.word(0, Some(4), at(t0, 1100));
        s.word(0, Some(4), at(t0, 1110));
        assert!(s.deadlocked(at(t0, 1110)));
        // Still stays still: a word from the fence changes nothing.
        s.word(2, None, at(t0, 1200));
        assert!(s.deadlocked(at(t0, 1200)));
        assert_eq!(s.blocked(), vec![0]);
        // A rank that enters the fence late starts the window there.
        let mut s = Stillness::new(2);
        s.word(0, Some(4), at(t0, 100));
        s.still(1, at(t0, 900));
        s.word(0, Some(4), at(t0, 1800));
        s.word(0, Some(4), at(t0, 1850));
        assert!(!s.deadlocked(at(t0, 1850)));
        s.word(0, Some(4), at(t0, 1900));
        s.word(0, Some(4), at(t0, 1950));
        assert!(s.deadlocked(at(t0, 1950)));
    }
}
