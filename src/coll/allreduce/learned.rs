//! Which way a 2-rank allreduce of 16 KiB or more goes, learned while the job runs:
//! through the node's area (whole, or in pieces beyond a slot) or as messages (the
//! selection's algorithm). Either way rank 0's operand is the left one and every
//! float NaN is settled as it is computed (`coll/kernels.rs`), so identical calls
//! give the same bits whichever way each goes.
//!
//! Why: which is faster depends on the machine's phase. Where a cache line crosses
//! between the cores in 0.06 us, recursive doubling's messages took 1.21-1.34x the
//! time of the pieces; where it takes 0.13-0.15 us, 0.62-0.78x at 64-512 KiB, and
//! 0.56-1.02x whole vectors of 16 KiB (docs/collectives.md). Rank 0 times each such
//! allreduce with an estimator per size class (`engine/two_ways.rs`, the area
//! first) and says which way they go in a short meeting: every rank writes one word
//! (rank 0 its decision) under the operation's shape and reads the others', so ranks
//! that disagree on the counts fail there together, as they would in the area.
//!
//! One meeting decides a run of calls of its size class: one call while the class
//! still learns, [`RUN`] once both ways are settled (then the other way is explored
//! only in rare bursts, which rank 0 places in the run). Every rank keeps the run
//! per communicator and takes its calls in turn, so the ranks stay in step without
//! meeting: a meeting before every call cost about 0.3-0.5 us (at 32 KiB the learned
//! way took 4.9 us where either way alone took 4.3-4.6). Ranks that disagree on the
//! counts fall out of step, and then one meets where the other runs the allreduce:
//! in the area both fail reading the other's slot (another length or shape), and a
//! rank on messages flags its number there ([`Beside`](crate::coll::shared_memory)),
//! so that ends the job with a report naming the disagreement; neither waits
//! (test: `disagreeing_counts_in_learned_allreduces_end_no_rank_waiting`). At 16-64
//! KiB, runs took 0.93-0.95 of the time of a meeting before every call (8 interleaved
//! rounds); from 128 KiB `oxbench` makes too few calls for a class to settle.

use std::time::Instant;

use crate::coll::select::Collective;
use crate::coll::shared_memory::{Meeting, Venue};
use crate::comm::Comm;
use crate::engine::{
    self,
    two_ways::{self, Choice, TwoWays},
};
use crate::error::{Error, Result};

/// Calls one meeting decides once both ways of the class are settled.
const RUN: u32 = 16;
/// Set in rank 0's word: the others write 0. Below it, the run's length (bits
/// 32-39) and ways (bit `i` set: call `i` goes through the area).
const DECIDED: u64 = 1 << 63;

/// The ways of a communicator's next learned allreduces, per size class.
#[derive(Default)]
pub(crate) struct Runs {
    runs: Vec<Run>,
}

/// A run of calls of one size class: call `next` goes through the area when bit
/// `next` of `area` is set, and rank 0 times it when that bit of `record` is.
struct Run {
    class: usize,
    len: u32,
    next: u32,
    area: u32,
    record: u32,
}

impl Runs {
    /// The next call of `class`'s run, if one is left: (through the area, timed).
    fn take(&mut self, class: usize) -> Option<(bool, bool)> {
        let run = self
            .runs
            .iter_mut()
            .find(|r| r.class == class && r.next < r.len)?;
        let i = run.next;
        run.next += 1;
        Some((run.area >> i & 1 == 1, run.record >> i & 1 == 1))
    }

    /// Starts `class`'s next run, decided in rank 0's `word`, and takes its first
    /// call (as [`Runs::take`]); `None` if the word decides no run.
    fn start(&mut self, class: usize, word: u64, record: u32) -> Option<(bool, bool)> {
        let len = (word >> 32 & 0xff) as u32;
        if word & DECIDED == 0 || !(1..=RUN).contains(&len) {
            return None;
        }
        let run = Run {
            class,
            len,
            next: 0,
            area: word as u32,
            record,
        };
        match self.runs.iter_mut().find(|r| r.class == class) {
            Some(r) => *r = run,
            None => self.runs.push(run),
        }
        self.take(class)
    }
}

/// Rank 0's decision of the next run of allreduces of `bytes`: its word, and which
/// calls it times.
fn decide(ways: &mut TwoWays, bytes: usize) -> (u64, u32) {
    let len = if ways.settled(bytes) { RUN } else { 1 };
    let (mut area, mut record) = (0u32, 0u32);
    for i in 0..len {
        let c = ways.choose(bytes);
        area |= u32::from(c.first) << i;
        record |= u32::from(c.record) << i;
    }
    (DECIDED | u64::from(len) << 32 | u64::from(area), record)
}

/// How one learned allreduce goes, and (on rank 0) what to time.
pub(crate) struct Way {
    /// Through the area (else as messages).
    pub area: bool,
    /// Rank 0's choice and when the allreduce started.
    timed: Option<(Choice, Instant)>,
    bytes: usize,
}

impl Comm {
    /// How an allreduce of `bytes` in elements of `esz` bytes goes: the next call of
    /// its class's run, or, when none is left, as rank 0 decides the next run in a
    /// meeting at `venue`.
    pub(crate) fn allreduce_way(&self, venue: Venue<'_>, bytes: usize, esz: usize) -> Result<Way> {
        // A call refused (from another thread, or from inside a call) must leave the
        // run's next call for this rank's next allreduce, or the ranks would go
        // different ways from here on.
        engine::ensure_callable()?;
        let start = Instant::now();
        let class = two_ways::class(bytes);
        let rank0 = self.rank() == 0;
        let next = self.allreduce_runs().take(class);
        let (area, record) = match next {
            Some(next) => next,
            None => {
                let (note, record) = if rank0 {
                    engine::with(|e| Ok(decide(&mut e.allreduce_ways, bytes)))?
                } else {
                    (0, 0)
                };
                let word = self.meet(Collective::Allreduce, venue.small(), |m| {
                    agree(m, bytes, esz, note)
                })?;
                self.allreduce_runs()
                    .start(class, word, record)
                    .ok_or_else(|| Error::Protocol {
                        rank: self.group()[self.rank() as usize] as i32,
                        peer: self.group()[0] as i32,
                        detail: format!("allreduce: rank 0 decided no run of calls ({word:#x})"),
                    })?
            }
        };
        Ok(Way {
            area,
            timed: rank0.then_some((
                Choice {
                    first: area,
                    record,
                },
                start,
            )),
            bytes,
        })
    }
}

impl Way {
    /// The allreduce went this way with `outcome`: rank 0 learns from its time.
    pub(crate) fn done(self, outcome: &Result<()>) {
        if let Some((c, start)) = self.timed.filter(|(c, _)| c.record && outcome.is_ok()) {
            let ns = start.elapsed().as_nanos() as f64;
            // Only rank 0 learns, and the engine is there while the job runs.
            let _ = engine::with(|e| {
                e.allreduce_ways.record(self.bytes, c.first, ns);
                Ok(())
            });
        }
    }
}

/// Every rank writes `note` (rank 0's decision, or 0) as an operation of `bytes` in
/// elements of `esz` bytes, and reads every other rank's: rank 0's word.
fn agree(m: &mut Meeting<'_>, bytes: usize, esz: usize, note: u64) -> Result<u64> {
    const WORD: usize = size_of::<u64>();
    // The operation's own shape: a rank that meets in the area with its vector (or a
    // piece of it) instead writes another length under it, or another shape, and
    // both fail reading each other.
    m.set_shape(bytes, esz);
    m.write(WORD, |slot| slot.copy_from_slice(&note.to_le_bytes()))?;
    m.publish(false);
    m.wait_all()?;
    let (rank, size) = m.rank_size();
    let mut word = note;
    for r in (0..size).filter(|&r| r != rank) {
        let theirs = m.read(r, WORD)?;
        if r == 0 {
            word = u64::from_le_bytes(theirs.try_into().expect("one word"));
        }
    }
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_one_call_while_learning_then_sixteen() {
        let mut ways = TwoWays::new(false);
        let bytes = 1 << 16;
        let (word, _) = decide(&mut ways, bytes);
        assert_eq!(word, DECIDED | 1 << 32 | 1, "the area first, one call");
        // Messages twice as fast once both ways have their samples.
        for _ in 0..20 {
            ways.record(bytes, true, 2_000.0);
            ways.record(bytes, false, 1_000.0);
        }
        let (word, record) = decide(&mut ways, bytes);
        assert_eq!(word >> 32 & 0xff, u64::from(RUN));
        let area = (word as u32).count_ones();
        assert!(area <= 3, "messages, but for a burst: {word:#x}");
        assert_ne!(record, 0);
        // Another class still learns.
        assert_eq!(decide(&mut ways, 1 << 20).0 >> 32 & 0xff, 1);
    }

    #[test]
    fn runs_hand_out_their_calls_in_turn_per_class() {
        let mut runs = Runs::default();
        assert_eq!(runs.take(16), None);
        // Three calls: area, messages, area; the second timed.
        let word = DECIDED | 3 << 32 | 0b101;
        assert_eq!(runs.start(16, word, 0b010), Some((true, false)));
        assert_eq!(runs.start(17, DECIDED | 1 << 32, 0), Some((false, false)));
        assert_eq!(runs.take(16), Some((false, true)));
        assert_eq!(runs.take(16), Some((true, false)));
        assert_eq!(runs.take(16), None);
        assert_eq!(runs.take(17), None);
        // A word rank 0 never writes starts nothing.
        assert_eq!(runs.start(16, 0b101, 0), None);
        assert_eq!(runs.start(16, DECIDED | 17 << 32, 0), None);
        assert_eq!(runs.start(16, DECIDED, 0), None);
        assert_eq!(runs.take(16), None);
    }
}
