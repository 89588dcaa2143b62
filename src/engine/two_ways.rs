//! Which of two ways to do something is faster, learned per size class while the job
//! runs: a moving average of each way's time, the faster taken, the other tried in
//! short bursts now and then so that the estimates follow the machine (this VM
//! switches between two phases within minutes, and what is faster changes with
//! them). Used by the rendezvous receiver (single copy or streaming, `rendezvous`),
//! by rank 0 of an alltoall among ranks that lend their buffers (lent copies or
//! pieces through the area, `coll/alltoall/shared_memory.rs`) and by rank 0 of a
//! 2-rank allreduce of 16 KiB or more (the area or messages,
//! `coll/allreduce/learned.rs`).

/// Every this many uses of a size class, [`BURST`] go the way that is not the
/// faster.
pub(super) const EXPLORE: u32 = 256;
/// The same, while the other way takes more than [`FAR`] times as long: exploring
/// costs the most then (and a burst leaves the caches as the slower way does, which
/// the next messages pay for too), and nothing short of a change of machine would
/// close the gap (2 ranks in the slow phase, 16 KiB-1 MiB: with every 256th, 1.02-1.07
/// of the time of single copies alone).
pub(super) const EXPLORE_FAR: u32 = 1024;
/// See [`EXPLORE_FAR`].
const FAR: f64 = 1.5;
/// Until the slower way has this many timed messages, it is explored every
/// [`EXPLORE_EARLY`] messages: its first times may have been taken while the buffers
/// were still being touched for the first time, and with the rare exploring of a far
/// slower way such an estimate could outlast a benchmark's run.
const SETTLED: u32 = 16;
/// See [`SETTLED`].
pub(super) const EXPLORE_EARLY: u32 = 32;
/// Timed uses each way gets, one way after the other, before the two are compared;
/// each replaces the estimate before it. The first uses of a class are slower than
/// the rest (buffers touched, pages pinned for the first time): a first 4-rank
/// alltoall of 128 KiB per rank by lent copies, timed once, looked slower than the
/// pieces after it, and 28 pieces went before exploring corrected it.
const FIRST_TIMED: u32 = 2;
/// Uses in a row that go the other way when a class explores: only those after the
/// first are timed (see [`TwoWays::choose`]).
pub(super) const BURST: u32 = 3;

/// A size class's estimates, in nanoseconds per use (0: no sample yet), the first
/// way first; the number of its uses so far, and how the last one went.
#[derive(Clone, Copy, Default)]
pub(super) struct Class {
    pub(super) ns: [f64; 2],
    /// Timed uses of each way so far.
    pub(super) samples: [u32; 2],
    uses: u32,
    last_first: Option<bool>,
}

/// How one use goes, and whether its time counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    /// The first way (else the second).
    pub first: bool,
    /// The use before it in its class went the same way. A way's cost depends on
    /// what the last uses left in the caches (a receiver reading a buffer it read
    /// before finds it in its own cache; streamed lines always cross between cores),
    /// so only such uses are timed.
    pub record: bool,
}

/// What has been learned of the two ways, per size class.
pub(crate) struct TwoWays {
    pub(super) classes: [Class; usize::BITS as usize],
}

/// The size class of `len` bytes (its length's highest bit).
pub(crate) fn class(len: usize) -> usize {
    len.checked_ilog2().unwrap_or(0) as usize
}

impl TwoWays {
    pub(crate) fn new() -> TwoWays {
        TwoWays {
            classes: [Class::default(); usize::BITS as usize],
        }
    }

    /// How the next use of `len` bytes goes: the first way until it has
    /// [`FIRST_TIMED`] times, then the second until it has as many, then the faster
    /// but for [`BURST`] uses in every [`EXPLORE`] (or [`EXPLORE_FAR`]).
    pub(crate) fn choose(&mut self, len: usize) -> Choice {
        let c = &mut self.classes[class(len)];
        c.uses = c.uses.wrapping_add(1);
        let first = match c.ns {
            _ if c.samples[0] < FIRST_TIMED => true,
            _ if c.samples[1] < FIRST_TIMED => false,
            [a, b] => {
                let loser = usize::from(a <= b);
                let every = if c.samples[loser] < SETTLED {
                    EXPLORE_EARLY
                } else if a.max(b) > FAR * a.min(b) {
                    EXPLORE_FAR
                } else {
                    EXPLORE
                };
                (a <= b) != (c.uses % every < BURST)
            }
        };
        let record = c.last_first == Some(first);
        c.last_first = Some(first);
        Choice { first, record }
    }

    /// Whether both ways of `len` bytes' class have [`SETTLED`] timed uses: then it
    /// explores only in rare bursts.
    pub(crate) fn settled(&self, len: usize) -> bool {
        self.classes[class(len)]
            .samples
            .iter()
            .all(|&n| n >= SETTLED)
    }

    /// A use of `len` bytes went the `first` way (or not) in `ns` nanoseconds: into
    /// that way's estimate, after the first [`FIRST_TIMED`] a moving average in which
    /// a sample counts at most four times the estimate (so that one use held up by
    /// something else does not decide alone).
    pub(crate) fn record(&mut self, len: usize, first: bool, ns: f64) {
        let c = &mut self.classes[class(len)];
        let way = usize::from(!first);
        c.samples[way] = c.samples[way].saturating_add(1);
        let e = &mut c.ns[way];
        *e = if c.samples[way] <= FIRST_TIMED {
            ns.max(1.0)
        } else {
            0.75 * *e + 0.25 * ns.min(4.0 * *e)
        };
    }
}
