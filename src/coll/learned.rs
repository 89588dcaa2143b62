//! Which way a 2-rank collective beyond the area's fixed limits goes, learned while the
//! job runs: through the node's area (whole, or in pieces beyond a slot) or as
//! messages (the selection's algorithm); see `select::learns` for which. Either way
//! the results are the same: an allreduce's rank 0 operand is the left one and every
//! float NaN is settled as it is computed (`coll/kernels.rs`), so identical calls
//! give the same bits whichever way each goes.
//!
//! Why: which is faster depends on the machine and its phase. On 2 ranks with a core
//! each, where a cache line crosses between the cores in 0.06 us, recursive
//! doubling's messages took 1.21-1.34x the time of an allreduce's pieces; where it
//! takes 0.13-0.15 us, 0.62-0.78x at 64-512 KiB (docs/collectives.md). A bcast in
//! pieces through the area took 0.50-0.93 of the messages' time in one phase of the
//! Intel Xeon VM and 1.45-3.3 times it in the other; on the AMD EPYC (Zen 5) and
//! (Zen 3) VMs the area beat messages in both phases for bcast, alltoall, allgather,
//! gather and scatter beyond the limits the Xeon set. Rank 0 times each such call
//! with an estimator per collective and size class (`engine/two_ways.rs`, the area
//! first) and says which way they go in a short meeting: every rank writes a word
//! (rank 0 its decision) and its call's bytes, and reads the others', so ranks that
//! disagree on the counts fail there together, as they would in the area.
//!
//! One meeting decides a run of calls of its collective and size class:
//! [`LEARNING_RUN`] while the class still learns, [`RUN`] once both ways are settled
//! (then the other way is explored only in rare bursts, which rank 0 places in the
//! run). Every rank
//! keeps the runs per communicator and takes its calls in turn, so the ranks stay in
//! step without meeting: a meeting before every call cost about 0.3-0.5 us (at 32
//! KiB the learned allreduce took 4.9 us where either way alone took 4.3-4.6). Ranks
//! that disagree on the counts fall out of step, and then one meets where the other
//! runs the collective: in the area both fail reading the other's slot (another
//! length or shape), and a rank on messages flags its number there
//! ([`Beside`](crate::coll::shared_memory)), so that ends the job with a report
//! naming the disagreement; neither waits (tests:
//! `disagreeing_counts_in_learned_allreduces_end_no_rank_waiting`,
//! `disagreeing_counts_of_zero_end_no_rank_waiting`). At 16-64 KiB, runs took
//! 0.93-0.95 of the time of a meeting before every call (8 interleaved rounds); from
//! 128 KiB `oxbench` makes too few calls for a class to settle.
//!
//! An alltoall of 3 ranks or more too long for the area keeps runs here too, of lent
//! copies and pieces through the area (`coll/alltoall/shared_memory.rs`), decided
//! in the loan of the call that finds none left.
//!
//! The decision is taken after the table has sent the call to messages
//! (`Comm::learned_on_node`, asked only then, so that short calls carry none of it),
//! and rank 0 records the call's time as it ends: a [`Learning`] guard where it meets
//! in the area (`Comm::run_plan`), `Comm::run_beside` where it goes as messages. The
//! [`Way`] waits in between with the communicator's runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::coll::select::Collective;
use crate::coll::shared_memory::{Meeting, Venue};
use crate::comm::Comm;
use crate::engine::{
    self,
    two_ways::{self, Choice, TwoWays},
};
use crate::error::{Error, Result};
use crate::transport::shm::huge_pages;

/// Set while a blocking call whose way was learned runs, until
/// [`Runs::take_way`] takes its way back: a flag of the process, not of the
/// communicator, so that a call that is not learned reads one word it finds in its
/// cache to know (only the engine's owner runs collectives).
static UNDER_WAY: AtomicBool = AtomicBool::new(false);

/// Whether a blocking call whose way was learned runs ([`Comm::learned_way`]).
#[inline(always)]
pub(crate) fn under_way() -> bool {
    UNDER_WAY.load(Ordering::Relaxed)
}

/// Calls one meeting decides once both ways of the class are settled.
const RUN: u32 = 16;
/// Calls one meeting decides while the class learns. A meeting holds every rank until
/// all have come, so calls that would overlap (a bcast's root goes on to fill the
/// next buffer while the other rank copies out the last) no longer do: 2-rank bcasts
/// of 256 KiB-1 MiB took 0.72-0.79 of the time with runs of 4 calls, as against one
/// (6 interleaved rounds of `oxbench bcast -i 1000`, whose 101 calls per size leave
/// the classes learning); 8 gave about the same.
const LEARNING_RUN: u32 = 4;
/// Set in rank 0's word: the others write 0. Below it, the run's length (bits
/// 32-39) and ways (bit `i` set: call `i` goes the estimator's first way, through
/// the area here, by lent copies in an alltoall's runs).
pub(crate) const DECIDED: u64 = 1 << 63;

/// The ways of a communicator's next learned collectives, per collective and size
/// class, and the call under way, if it is one of them. The alltoall keeps its runs
/// of lent copies and pieces through the area here too (`alltoall/shared_memory.rs`;
/// a communicator of 2 ranks never lends, one of more never learns here).
#[derive(Default)]
pub(crate) struct Runs {
    runs: Vec<Run>,
    /// The blocking call whose way was just decided ([`Comm::learned_way`]), until it
    /// ends ([`Runs::take_way`]).
    under_way: Option<Way>,
}

/// A run of calls of one collective and size class: call `next` goes the first way
/// when bit `next` of `first` is set, and rank 0 times it when that bit of `record`
/// is.
struct Run {
    coll: Collective,
    class: usize,
    len: u32,
    next: u32,
    first: u32,
    record: u32,
}

impl Runs {
    /// The next call of `coll`'s run of `class`, if one is left: (the first way,
    /// timed).
    pub(crate) fn take(&mut self, coll: Collective, class: usize) -> Option<(bool, bool)> {
        let run = self
            .runs
            .iter_mut()
            .find(|r| r.coll == coll && r.class == class && r.next < r.len)?;
        let i = run.next;
        run.next += 1;
        Some((run.first >> i & 1 == 1, run.record >> i & 1 == 1))
    }

    /// Starts the next run of `coll` of `class`, decided in rank 0's `word`, and takes
    /// its first call (as [`Runs::take`]); `None` if the word decides no run.
    pub(crate) fn start(
        &mut self,
        coll: Collective,
        class: usize,
        word: u64,
        record: u32,
    ) -> Option<(bool, bool)> {
        let len = (word >> 32 & 0xff) as u32;
        if word & DECIDED == 0 || !(1..=RUN).contains(&len) {
            return None;
        }
        let run = Run {
            coll,
            class,
            len,
            next: 0,
            first: word as u32,
            record,
        };
        match self
            .runs
            .iter_mut()
            .find(|r| r.coll == coll && r.class == class)
        {
            Some(r) => *r = run,
            None => self.runs.push(run),
        }
        self.take(coll, class)
    }

    /// The way of the blocking call that just ended, if it was decided here: `coll`'s.
    pub(crate) fn take_way(&mut self, coll: Collective) -> Option<Way> {
        UNDER_WAY.store(false, Ordering::Relaxed);
        self.under_way.take().filter(|w| w.coll == coll)
    }
}

/// Rank 0's decision of the next run of calls of `bytes`: its word, and which calls
/// it times.
pub(crate) fn decide(ways: &mut TwoWays, bytes: usize) -> (u64, u32) {
    let len = if ways.settled(bytes) {
        RUN
    } else {
        LEARNING_RUN
    };
    let (mut first, mut record) = (0u32, 0u32);
    for i in 0..len {
        let c = ways.choose(bytes);
        first |= u32::from(c.first) << i;
        record |= u32::from(c.record) << i;
    }
    (DECIDED | u64::from(len) << 32 | u64::from(first), record)
}

/// How one learned call goes, and (on rank 0) what to time.
pub(crate) struct Way {
    coll: Collective,
    /// Rank 0's choice, when the call started, and how many collapses this process
    /// had tried by then (`huge_pages::tries`).
    timed: Option<(Choice, Instant, u64)>,
    bytes: usize,
}

impl Comm {
    /// Whether a blocking `coll` of `bytes` (as the selection counts them) goes
    /// through the area at `venue`: the next call of its class's run, or, when none is
    /// left, as rank 0 decides the next run in a meeting at `venue`. The call's way
    /// waits with the runs until it ends ([`Runs::take_way`]).
    pub(crate) fn learned_way(
        &self,
        coll: Collective,
        venue: Venue<'_>,
        bytes: usize,
    ) -> Result<bool> {
        // A call refused (from another thread, or from inside a call) must leave the
        // run's next call for this rank's next collective, or the ranks would go
        // different ways from here on.
        engine::ensure_callable()?;
        let start = Instant::now();
        let class = two_ways::class(bytes);
        let rank0 = self.rank() == 0;
        let next = self.learned_runs().take(coll, class);
        let (area, record) = match next {
            Some(next) => next,
            None => {
                let (note, record) = if rank0 {
                    engine::with(|e| Ok(decide(e.learned_ways(coll as u8), bytes)))?
                } else {
                    (0, 0)
                };
                let word = self.meet(coll, venue.small(), |m| agree(m, coll, note, bytes))?;
                self.learned_runs()
                    .start(coll, class, word, record)
                    .ok_or_else(|| Error::Protocol {
                        rank: self.group()[self.rank() as usize] as i32,
                        peer: self.group()[0] as i32,
                        detail: format!(
                            "{}: rank 0 decided no run of calls ({word:#x})",
                            coll.name()
                        ),
                    })?
            }
        };
        self.learned_runs().under_way = Some(Way {
            coll,
            timed: rank0.then_some((
                Choice {
                    first: area,
                    record,
                },
                start,
                huge_pages::tries(),
            )),
            bytes,
        });
        UNDER_WAY.store(true, Ordering::Relaxed);
        Ok(area)
    }
}

impl Way {
    /// The call went this way, and succeeded if `ok`: rank 0 learns from its time,
    /// unless this process tried to put lent memory on huge pages meanwhile (a
    /// rendezvous of the messages' way, up to a millisecond or more; a collapse in
    /// another rank's process still counts).
    pub(crate) fn done(self, ok: bool) {
        let counts = |(c, _, tries): &(Choice, Instant, u64)| {
            c.record && ok && *tries == huge_pages::tries()
        };
        if let Some((c, start, _)) = self.timed.filter(counts) {
            let ns = start.elapsed().as_nanos() as f64;
            // Only rank 0 learns, and the engine is there while the job runs.
            let _ = engine::with(|e| {
                e.learned_ways(self.coll as u8)
                    .record(self.bytes, c.first, ns);
                Ok(())
            });
        }
    }
}

/// A call that meets in the area as rank 0 learned it should: rank 0 learns from its
/// time when it ends, whatever its outcome (a failed one ends the job or leaves it
/// out of step; a moving average counts one sample at most four times the
/// estimate), but not while a panic unwinds through it.
pub(crate) struct Learning<'c> {
    comm: &'c Comm,
    coll: Collective,
}

impl<'c> Learning<'c> {
    /// The learned call of `coll` on `comm` begins.
    pub(crate) fn new(comm: &'c Comm, coll: Collective) -> Learning<'c> {
        Learning { comm, coll }
    }
}

impl Drop for Learning<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.comm.learned_call_done(self.coll, true);
        }
    }
}

/// Every rank of a `coll` writes `note` (rank 0's decision, or 0) and the call's
/// `bytes`, and reads every other rank's: rank 0's word, or an error on every rank
/// where their bytes differ.
fn agree(m: &mut Meeting<'_>, coll: Collective, note: u64, bytes: usize) -> Result<u64> {
    const WORD: usize = size_of::<u64>();
    // A shape of its own (no operation has elements of 0 bytes): a rank that meets
    // in the area with its data instead (out of step: the ranks disagree on the
    // counts) fails reading it, as this rank fails reading that rank's data. A bcast
    // that takes the root's length from its shape finds 16 bytes, not its own. Ranks
    // that disagree on the counts but both decide here compare their bytes: one
    // decision for both would start a run of one size class on each rank.
    m.set_shape(2 * WORD, 0);
    m.write(2 * WORD, |slot| {
        slot[..WORD].copy_from_slice(&note.to_le_bytes());
        slot[WORD..].copy_from_slice(&(bytes as u64).to_le_bytes());
    })?;
    m.publish(false);
    m.wait_all()?;
    let (rank, size) = m.rank_size();
    let mut word = note;
    for r in (0..size).filter(|&r| r != rank) {
        let theirs = m.read(r, 2 * WORD)?;
        let (note, len) = theirs.split_at(WORD);
        let len = u64::from_le_bytes(len.try_into().expect("one word"));
        if len != bytes as u64 {
            return Err(Error::InvalidArgument(format!(
                "{}: rank {r} calls it with {len} bytes where rank {rank} calls it with {bytes} (the ranks disagree on the counts)",
                coll.name()
            )));
        }
        if r == 0 {
            word = u64::from_le_bytes(note.try_into().expect("one word"));
        }
    }
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_short_while_learning_then_sixteen() {
        let mut ways = TwoWays::new(false);
        let bytes = 1 << 16;
        let (word, _) = decide(&mut ways, bytes);
        let first = DECIDED | u64::from(LEARNING_RUN) << 32 | ((1 << LEARNING_RUN) - 1);
        assert_eq!(word, first, "the area first, a short run");
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
        let word = decide(&mut ways, 1 << 20).0;
        assert_eq!(word >> 32 & 0xff, u64::from(LEARNING_RUN));
    }

    #[test]
    fn runs_hand_out_their_calls_in_turn_per_collective_and_class() {
        use Collective::{Allreduce, Bcast};
        let mut runs = Runs::default();
        assert_eq!(runs.take(Allreduce, 16), None);
        // Three calls: area, messages, area; the second timed.
        let word = DECIDED | 3 << 32 | 0b101;
        assert_eq!(runs.start(Allreduce, 16, word, 0b010), Some((true, false)));
        assert_eq!(
            runs.start(Allreduce, 17, DECIDED | 1 << 32, 0),
            Some((false, false))
        );
        // Another collective's run of the same class is its own.
        assert_eq!(
            runs.start(Bcast, 16, DECIDED | 2 << 32, 0),
            Some((false, false))
        );
        assert_eq!(runs.take(Allreduce, 16), Some((false, true)));
        assert_eq!(runs.take(Allreduce, 16), Some((true, false)));
        assert_eq!(runs.take(Allreduce, 16), None);
        assert_eq!(runs.take(Allreduce, 17), None);
        assert_eq!(runs.take(Bcast, 16), Some((false, false)));
        assert_eq!(runs.take(Bcast, 16), None);
        // A word rank 0 never writes starts nothing.
        assert_eq!(runs.start(Allreduce, 16, 0b101, 0), None);
        assert_eq!(runs.start(Allreduce, 16, DECIDED | 17 << 32, 0), None);
        assert_eq!(runs.start(Allreduce, 16, DECIDED, 0), None);
        assert_eq!(runs.take(Allreduce, 16), None);
    }

    #[test]
    fn a_way_is_taken_back_only_by_the_collective_it_was_decided_for() {
        let gather = || {
            Some(Way {
                coll: Collective::Gather,
                timed: None,
                bytes: 1 << 16,
            })
        };
        let mut runs = Runs {
            under_way: gather(),
            ..Runs::default()
        };
        assert!(runs.take_way(Collective::Bcast).is_none());
        assert!(runs.under_way.is_none(), "a stale way is dropped");
        runs.under_way = gather();
        assert!(runs.take_way(Collective::Gather).is_some());
    }
}
