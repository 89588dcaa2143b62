//! Which of two ways to do something is faster, learned per size class while the job
//! runs: a moving average of each way's time, the faster taken, the other tried in
//! short bursts now and then so that the estimates follow the machine (this VM
//! switches between two phases within minutes, and what is faster changes with
//! them). Used by the rendezvous receiver (single copy or streaming, `rendezvous`),
//! by rank 0 of an alltoall among ranks that lend their buffers (lent copies or
//! pieces through the area, `coll/alltoall/shared_memory.rs`) and by rank 0 of 2-rank
//! collectives beyond the area's fixed limits (the area or messages,
//! `coll/learned.rs`).

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
/// Where the other way is explored every [`EXPLORE_FAR`] uses, one use in this many of
/// the faster way is timed: its estimate needs no more, and a blocking receive that
/// is not timed reads no clock (two a message, 2-4% of a 16-64 KiB ping-pong here).
const SAMPLE_FAR: u32 = 8;
/// How many times as long one way of a class must take as the other for the classes
/// beside it to start from its estimates ([`TwoWays::seed`]).
const SEED_FAR: f64 = 2.0;
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
    /// Where the class started from a neighbour's estimates ([`TwoWays::seed`]) and has
    /// not timed the way it does not take yet: that way, and how many times the class
    /// has timed the other.
    seeded: Option<(usize, u32)>,
}

impl Class {
    /// Whether both ways have [`SETTLED`] timed uses.
    fn is_settled(&self) -> bool {
        self.samples.iter().all(|&n| n >= SETTLED)
    }

    /// Whether the class has never been used nor timed.
    fn is_fresh(&self) -> bool {
        self.uses == 0 && self.samples == [0; 2]
    }

    /// Whether one way's estimate is more than `ratio` times the other's.
    fn apart(&self, ratio: f64) -> bool {
        let [a, b] = self.ns;
        a.max(b) > ratio * a.min(b)
    }

    /// Whether use `uses` of the class, going the `first` way (or not), is timed: all
    /// but the faster way's uses where the other is explored every [`EXPLORE_FAR`],
    /// of which one in [`SAMPLE_FAR`] (and each until a seeded class has looked at its
    /// [`SETTLED`] times, see [`TwoWays::seed`]).
    fn sampled(&self, first: bool, uses: u32) -> bool {
        let far = self.is_settled() && self.apart(FAR);
        let checking = self.seeded.is_some_and(|(_, timed)| timed < SETTLED);
        let faster = self.ns[0] <= self.ns[1];
        !far || first != faster || uses.is_multiple_of(SAMPLE_FAR) || checking
    }

    /// Whether use `uses` of the class goes the first way (see [`TwoWays::choose`]).
    fn first(&self, uses: u32) -> bool {
        match self.ns {
            _ if self.samples[0] < FIRST_TIMED => true,
            _ if self.samples[1] < FIRST_TIMED => false,
            [a, b] => (a <= b) != self.explores(uses),
        }
    }

    /// Whether use `uses` of the class, both ways having their [`FIRST_TIMED`] times,
    /// is one of a burst that goes the way that is not the faster.
    fn explores(&self, uses: u32) -> bool {
        let loser = usize::from(self.ns[0] <= self.ns[1]);
        let every = if self.samples[loser] < SETTLED {
            EXPLORE_EARLY
        } else if self.apart(FAR) {
            EXPLORE_FAR
        } else {
            EXPLORE
        };
        uses % every < BURST
    }
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
    /// Whether a new class starts from a neighbour's estimates ([`TwoWays::seed`]).
    neighbourly: bool,
}

/// The estimator under `key` among `all`, new (not neighbourly) if there is none.
pub(crate) fn keyed<K: PartialEq>(all: &mut Vec<(K, TwoWays)>, key: K) -> &mut TwoWays {
    let i = match all.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            all.push((key, TwoWays::new(false)));
            all.len() - 1
        }
    };
    &mut all[i].1
}

/// The size class of `len` bytes (its length's highest bit).
pub(crate) fn class(len: usize) -> usize {
    len.checked_ilog2().unwrap_or(0) as usize
}

impl TwoWays {
    /// Nothing learned yet; `neighbourly`: see [`TwoWays::seed`].
    pub(crate) fn new(neighbourly: bool) -> TwoWays {
        TwoWays {
            classes: [Class::default(); usize::BITS as usize],
            neighbourly,
        }
    }

    /// How the next use of `len` bytes goes: the first way until it has
    /// [`FIRST_TIMED`] times, then the second until it has as many, then the faster
    /// but for [`BURST`] uses in every [`EXPLORE`] (or [`EXPLORE_FAR`]).
    pub(crate) fn choose(&mut self, len: usize) -> Choice {
        let k = class(len);
        if self.neighbourly && self.classes[k].is_fresh() {
            self.seed(k);
        }
        let c = &mut self.classes[k];
        c.uses = c.uses.wrapping_add(1);
        let first = c.first(c.uses);
        let record = c.last_first == Some(first) && c.sampled(first, c.uses);
        c.last_first = Some(first);
        Choice { first, record }
    }

    /// Whether the next use of `len` bytes will go the first way ([`TwoWays::choose`]
    /// says so, and counts the use); `None` where that depends on a neighbour.
    #[inline]
    pub(crate) fn next_first(&self, len: usize) -> Option<bool> {
        let c = &self.classes[class(len)];
        (!(c.is_fresh() && self.neighbourly)).then(|| c.first(c.uses.wrapping_add(1)))
    }

    /// Where the estimator is neighbourly (the rendezvous receiver's of large messages,
    /// whose ways' costs are the machine's: a read's system call and page pinning
    /// against lines crossing between the cores for every chunk), a class used for the
    /// first time starts from what a neighbouring one (the class below, else the one
    /// above) has learned, where that one is settled and one of its ways takes more than
    /// [`SEED_FAR`] times as long as the other: its estimates, scaled by the sizes,
    /// count as settled, and the class explores first about [`EXPLORE_FAR`] uses later.
    /// Learning every class anew, a sweep of `oxbench` sent a tenth of the 112 messages
    /// it times at 128 KiB and more the slower way (streaming, 2-4 times as slow on the
    /// Xeon VM).
    ///
    /// The estimate of the way taken follows its own times; should it come within
    /// [`FAR`] of the other way's before that has been timed here, the neighbour's
    /// figures no longer say which is faster, and the other way is tried at once, as in
    /// a new class. That is looked at from the [`SETTLED`]th time on: a class's first
    /// uses are slower (pages pinned and buffers touched for the first time; a 32 KiB
    /// class's first reads took twice the later ones). The way taken may well slow down
    /// more than the sizes say (1 MiB took 3 times as long as 512 KiB, past the
    /// caches), so its own figures are not compared with the neighbour's.
    ///
    /// The collectives' estimators are not neighbourly: their ways' times include
    /// waiting for the other ranks, and one class's figures said little of the next (a
    /// 2-rank allreduce of 1 MiB started from 512 KiB's took 1.06-1.09 of the time,
    /// three sets of 8-10 interleaved rounds).
    fn seed(&mut self, k: usize) {
        let near = [k.checked_sub(1), k.checked_add(1)];
        let Some((j, n)) = near
            .into_iter()
            .flatten()
            .filter_map(|j| Some((j, *self.classes.get(j)?)))
            .find(|(_, n)| n.is_settled() && n.apart(SEED_FAR))
        else {
            return;
        };
        let ns = n.ns.map(|ns| ns * if j < k { 2.0 } else { 0.5 });
        let loser = usize::from(ns[0] <= ns[1]);
        self.classes[k] = Class {
            ns,
            samples: [SETTLED; 2],
            uses: BURST - 1,
            last_first: None,
            seeded: Some((loser, 0)),
        };
    }

    /// Whether the last use of `len` bytes' class that [`TwoWays::choose`] chose goes
    /// the way the class would not take but to learn: the second way before it has its
    /// [`FIRST_TIMED`] times, or the way that is not the faster in an exploring burst.
    pub(crate) fn explored(&self, len: usize) -> bool {
        let c = &self.classes[class(len)];
        match c.samples {
            [first, _] if first < FIRST_TIMED => false,
            [_, second] if second < FIRST_TIMED => true,
            _ => c.explores(c.uses),
        }
    }

    /// Whether both ways of `len` bytes' class have [`SETTLED`] timed uses: then it
    /// explores only in rare bursts.
    pub(crate) fn settled(&self, len: usize) -> bool {
        self.classes[class(len)].is_settled()
    }

    /// Whether both ways of `len` bytes' class are settled and the first is the faster.
    pub(crate) fn settled_on_first(&self, len: usize) -> bool {
        let c = &self.classes[class(len)];
        c.is_settled() && c.ns[0] <= c.ns[1]
    }

    /// A use of `len` bytes went the `first` way (or not) in `ns` nanoseconds: into
    /// that way's estimate, after the first [`FIRST_TIMED`] a moving average in which
    /// a sample counts at most four times the estimate (so that one use held up by
    /// something else does not decide alone). See [`TwoWays::seed`] for a class that
    /// started from a neighbour's estimates.
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
        match &mut c.seeded {
            Some((untimed, _)) if *untimed == way => c.seeded = None,
            Some((untimed, timed)) => {
                *timed += 1;
                let untimed = *untimed;
                if *timed >= SETTLED && c.ns[untimed] <= FAR * c.ns[way] {
                    c.seeded = None;
                    (c.ns[untimed], c.samples[untimed]) = (0.0, 0);
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One use of `len` bytes the way `w` chooses, taking 1 us the `fast_first` way
    /// and `slow` us the other; returns whether it went the first way.
    fn use_once(w: &mut TwoWays, len: usize, fast_first: bool, slow: f64) -> bool {
        let c = w.choose(len);
        if c.record {
            let us = if c.first == fast_first { 1.0 } else { slow };
            w.record(len, c.first, us * 1e3);
        }
        c.first
    }

    /// The ways `n` uses of `len` bytes go.
    fn uses(w: &mut TwoWays, len: usize, n: usize, fast_first: bool, slow: f64) -> Vec<bool> {
        (0..n).map(|_| use_once(w, len, fast_first, slow)).collect()
    }

    #[test]
    fn a_new_class_starts_from_a_settled_neighbour_whose_ways_are_far_apart() {
        let mut w = TwoWays::new(true);
        // The second way three times as fast, settled in the class of 64 KiB.
        let learning = uses(&mut w, 1 << 16, 300, false, 3.0);
        assert!(
            learning[..3].iter().all(|&f| f),
            "first tries: {learning:?}"
        );
        assert!(w.settled(1 << 16));
        // The classes on either side take it from the first use on, and explore
        // first as their count of uses (started past the burst at 0) reaches
        // EXPLORE_FAR.
        let burst = (EXPLORE_FAR - (BURST - 1)) as usize;
        for len in [1 << 17, 1 << 15] {
            let seeded = uses(&mut w, len, burst + BURST as usize, false, 3.0);
            let firsts: Vec<usize> = (1..=seeded.len()).filter(|&n| seeded[n - 1]).collect();
            assert_eq!(firsts, [burst, burst + 1, burst + 2], "{len}");
            assert!(w.settled(len));
        }
        // Next to a class whose ways are close, a class learns on its own.
        uses(&mut w, 1 << 20, 300, false, 1.2);
        assert!(w.settled(1 << 20));
        let own = uses(&mut w, 1 << 21, 6, false, 3.0);
        assert_eq!(own, [true, true, true, false, false, false]);
        assert!(!w.settled(1 << 21));
        // An estimator that is not neighbourly learns every class on its own.
        let mut alone = TwoWays::new(false);
        uses(&mut alone, 1 << 16, 300, false, 3.0);
        let own = uses(&mut alone, 1 << 17, 6, false, 3.0);
        assert_eq!(own, [true, true, true, false, false, false]);
    }

    #[test]
    fn where_the_ways_are_far_apart_the_faster_is_timed_one_use_in_eight() {
        let mut w = TwoWays::new(false);
        uses(&mut w, 1 << 16, 300, true, 3.0);
        let (mut timed, mut other) = (0, 0);
        for _ in 0..EXPLORE_FAR {
            let c = w.choose(1 << 16);
            if c.first {
                timed += u32::from(c.record);
            } else {
                other += 1;
            }
        }
        assert_eq!(other, BURST, "one burst of the other way");
        let firsts = EXPLORE_FAR - BURST;
        assert!(
            timed.abs_diff(firsts / SAMPLE_FAR) <= 2,
            "{timed} of {firsts} timed"
        );
        // Where the ways are close, every use is timed.
        let mut close = TwoWays::new(false);
        uses(&mut close, 1 << 16, 300, true, 1.2);
        let recorded = (0..100).filter(|_| close.choose(1 << 16).record).count();
        assert!(recorded >= 90, "{recorded}");
    }

    #[test]
    fn a_seeded_class_rides_out_its_slow_first_uses() {
        let mut w = TwoWays::new(true);
        uses(&mut w, 1 << 16, 300, true, 3.0);
        // The next class's first two timed uses take 5 us (pages pinned for the first
        // time), the rest 2 (the scaled estimate), the other way 6: it stays.
        let mut ways = Vec::new();
        for n in 0..200 {
            let c = w.choose(1 << 17);
            if c.record {
                w.record(1 << 17, c.first, if n < 3 { 5e3 } else { 2e3 });
            }
            ways.push(c.first);
        }
        assert!(ways.iter().all(|&f| f), "{ways:?}");
    }

    #[test]
    fn a_seeded_class_whose_way_proves_slow_tries_the_other_at_once() {
        let mut w = TwoWays::new(true);
        uses(&mut w, 1 << 16, 300, true, 3.0);
        // In the next class the first way takes 5 us and the second 1: once the first
        // way's estimate comes within FAR of the second's scaled 6 us (looked at from
        // its SETTLED-th time on), the second is tried, and kept.
        let ways = uses(&mut w, 1 << 17, 200, false, 5.0);
        let switched = ways.iter().position(|&f| !f).unwrap();
        assert!(switched <= SETTLED as usize + 2, "{ways:?}");
        assert!(ways[switched..].iter().filter(|&&f| f).count() <= 3 * BURST as usize);
        assert!(!ways[switched..switched + 3].contains(&true), "{ways:?}");
    }
}
