//! Which way a large message to a rank of this node goes, learned while the job runs:
//! read by the receiver straight from the sender's buffer (single copy,
//! `process_vm_readv`: a system call that pins every page it reads) or streamed
//! through the receiver's ring in chunks (two copies, no system call). Which is faster
//! depends on the machine more than on the size. On the 2-core VM this project is
//! measured on (docs/shared-memory.md), where a cache line crosses between the cores
//! in 0.06 us, streaming took 0.70-0.89 of the single copy's time from 16 KiB to
//! 1 MiB; where it takes 0.25 us, 1.6-1.9 times it (a reader of a buffer it has read
//! before finds it in its own cache; streamed lines always cross). The VM switches
//! between the two within minutes.
//!
//! A sender offers its buffer to be read wherever the kernel allows it, and the
//! receiver decides: it reads it, or answers clear-to-send and has the data streamed
//! (as where the read is refused). It times each such receive (a stream from its
//! match to its completion; reads done together in one system call by their mean
//! share of it, one sample per call) and hands the time to the two-way estimator
//! (`two_ways`): an estimate of each way per size
//! class, the faster taken and, in short bursts now and then, the other, so that the
//! estimates follow the machine. Timed at the sender, a streamed send would end when
//! its last chunk is in the ring, before the receiver has copied it out. Ranks need
//! not agree on anything, and the received bytes are the same either way.
//!
//! Mid-size messages (above `shm::READ_FROM`, up to the eager limit) are learned the
//! same way between going eagerly (two copies through the ring) and being offered for
//! reading (a single copy after an RTS). Where a cache line crosses between the cores
//! in 0.14 us, 8 KiB took 1.58-1.64 us one way by reading and 1.69-1.83 eagerly;
//! where it crosses in 0.06 us, 0.67-0.70 eagerly and 1.93-2.04 by reading. Here the
//! sender decides, so the receiver asks: it keeps a word of size classes to be
//! offered for reading, which the ranks of its node read before each mid-size send,
//! and asks for a few messages the other way when it explores (`shm::read_asks`). It
//! times the copy-out of each mid-size eager message and each such read, and after
//! every mid-size arrival asks for what the estimator says the next messages of the
//! class should do. A message that arrives before its receive is
//! posted is copied out or read all the same, into the unexpected queue (an offered
//! one at once, `Engine::run_takes`), and is timed and counted as one whose receive
//! was waiting: were such reads left out, a class whose messages all came early
//! would have no arrivals once offered, never explore the eager way again, and stay
//! offered for good, however slow the reads. It sees neither way whole: of an 8 KiB
//! message one way (0.14 us phase) it times the copy-out, 0.9 of 1.75 us, or the
//! read, 0.9 of 1.58. What it misses of an eager message is mostly the sender's
//! writing of the frame (0.4-0.7 times the copy-out in a C model,
//! `benches/copy_floor.c`), which a read does not have; so an eager message is
//! charged [`EAGER_CHARGE`] times its copy-out, which ranks the two ways as their
//! one-way times do in both phases.

use std::time::{Duration, Instant};

use super::requests::ReqId;
use super::two_ways::{Choice, TwoWays, class};
use crate::transport::shm::{READ_FROM, ReadRequests};

/// What an eager mid-size message's copy-out is charged, per unit of its time (see the
/// module documentation). Charged as much as it takes (1.0), 8 KiB copied out in 0.9
/// us and read in 0.9 tie, where reading is 10% faster one way.
const EAGER_CHARGE: f64 = 1.75;

/// Where both ways of a size class of mid-size messages are settled and eager is the
/// faster, one eager arrival in this many is timed and told to the estimator (every
/// one while the class learns, and every one while reading is the faster: those are
/// the estimator's own bursts). Timing each cost 8 KiB `bw` a quarter of its bandwidth on
/// the AMD EPYC (Zen 5) VM, where a clock read takes 23 ns and a message 0.25 us:
/// without the clock reads and the estimator's bookkeeping a window of 8 KiB messages
/// ran at 1.36 times the bandwidth (33.4 GB/s against 24.6, 8 interleaved rounds).
const EAGER_SAMPLE: u32 = 16;

/// How mid-size messages from the ranks of this node should come, as learned.
struct Mid {
    /// The first way is eager, the second offered for reading.
    ways: TwoWays,
    /// Largest message sent eagerly.
    eager_limit: usize,
    /// Which world ranks are on this node (messages from others are not learned from).
    on_node: Vec<bool>,
    /// Size classes (bit per class) a message of which has arrived, and those whose
    /// last message arrived eagerly.
    seen: u64,
    last_eager: u64,
    /// The classes asked to be offered for reading, and where they are asked (`None`
    /// in unit tests).
    asked: u64,
    requests: Option<ReadRequests>,
    /// Without `requests` (unit tests): the classes asked to explore and not yet
    /// claimed by a sender.
    unclaimed: u64,
    /// Per class, the eager arrivals not timed since the last timed one
    /// ([`EAGER_SAMPLE`]).
    untimed: [u32; usize::BITS as usize],
}

impl Mid {
    /// Nothing learned yet: every class goes eagerly until its messages say otherwise.
    fn new(eager_limit: usize, on_node: Vec<bool>, requests: Option<ReadRequests>) -> Mid {
        Mid {
            // Not neighbourly: an eager copy against a read, unlike a read against a
            // stream, was measured at the one size class a sweep uses (8 KiB).
            ways: TwoWays::new(false),
            eager_limit,
            on_node,
            seen: 0,
            last_eager: 0,
            asked: 0,
            requests,
            unclaimed: 0,
            untimed: [0; usize::BITS as usize],
        }
    }

    /// Whether the copy-out of an eager mid-size message of `len` bytes is timed (see
    /// [`EAGER_SAMPLE`]).
    fn times_eager(&mut self, len: usize) -> bool {
        if !self.ways.settled_on_first(len) {
            return true;
        }
        let untimed = &mut self.untimed[class(len)];
        *untimed += 1;
        if *untimed < EAGER_SAMPLE {
            return false;
        }
        *untimed = 0;
        true
    }

    /// Whether a message of `len` bytes is mid-size.
    fn covers(&self, len: usize) -> bool {
        len > READ_FROM && len <= self.eager_limit
    }

    /// A mid-size message of `len` bytes arrived, `eager` or by RTS: whether its time
    /// counts (the message before it in its class came the same way, as for large
    /// ones). Asks for the way the next messages of the class should come: the one
    /// the estimator takes; where it learns the other (its first times, or an exploring
    /// burst), for a few to come that way (`shm::read_asks`: a sender sends those in a
    /// row, however many it sends before this rank takes the first), asked again at
    /// each arrival that came the usual way until they come.
    fn arrived(&mut self, len: usize, eager: bool) -> bool {
        let bit = 1u64 << class(len);
        let record = self.seen & bit != 0 && (self.last_eager & bit != 0) == eager;
        self.seen |= bit;
        if eager {
            self.last_eager |= bit;
        } else {
            self.last_eager &= !bit;
        }
        let next_eager = self.ways.choose(len).first;
        let explores = self.ways.explored(len);
        if explores && eager != next_eager {
            match self.requests {
                Some(r) => r.explore(len),
                None => self.unclaimed |= bit,
            }
        }
        // Read is asked for where the estimator takes it: the way not chosen, where it
        // explores.
        let asked = if next_eager == explores {
            self.asked | bit
        } else {
            self.asked & !bit
        };
        if asked != self.asked {
            self.asked = asked;
            if let Some(r) = self.requests {
                r.ask(asked);
            }
        }
        record
    }
}

/// The time in nanoseconds of a receive matched at `start` and complete at `now`, the
/// last rendezvous receive before it having completed at `last_done`. Receives in
/// flight together complete one after the other (streams share the ring): a receive
/// is timed from the later of its match and the previous completion. (A stream is
/// never charged a read: a read completes where its call ends.)
fn took(start: Instant, last_done: Instant, now: Instant) -> f64 {
    now.saturating_duration_since(start.max(last_done))
        .as_nanos() as f64
}

/// A receive being timed: when it was matched, and its way.
struct Timed {
    id: ReqId,
    start: Instant,
    single_copy: bool,
}

/// What a receiver has learned of the two ways, and the receives it is timing.
pub(crate) struct Learner {
    ways: TwoWays,
    /// Mid-size messages, where this rank learns how they should come.
    mid: Option<Mid>,
    timed: Vec<Timed>,
    /// When the last rendezvous receive completed.
    last_done: Instant,
    /// Within a pass over the arrived frames ([`Learner::pass`]), the time the first
    /// receive matched in it started.
    pass: Option<Option<Instant>>,
}

impl Learner {
    /// A learner of large messages, and of mid-size ones where `mid` gives where to
    /// ask for them and which world ranks are on this node.
    pub(crate) fn new(mid: Option<(ReadRequests, Vec<bool>)>) -> Learner {
        Learner {
            ways: TwoWays::new(true),
            mid: mid.map(|(requests, on_node)| {
                Mid::new(requests.eager_limit(), on_node, Some(requests))
            }),
            timed: Vec::new(),
            last_done: Instant::now(),
            pass: None,
        }
    }

    /// How the next message of `len` bytes, offered for reading, goes (`first`:
    /// single copy, else streamed; see [`TwoWays::choose`]). A mid-size one is always
    /// read (it was offered because this rank asked, or since the sender had no
    /// credit left to send it eagerly), timed if the one before it in its class was
    /// offered too.
    pub(crate) fn choose(&mut self, len: usize) -> Choice {
        match self.mid.as_mut() {
            Some(m) if m.covers(len) => Choice {
                first: true,
                record: m.arrived(len, false),
            },
            _ => self.ways.choose(len),
        }
    }

    /// Whether a message of `len` bytes offered for reading will be read
    /// ([`Learner::choose`]); false where that is not known without choosing.
    #[inline]
    pub(crate) fn would_read(&self, len: usize) -> bool {
        match self.mid.as_ref() {
            Some(m) if m.covers(len) => true,
            _ => self.ways.next_first(len) == Some(true),
        }
    }

    /// A message of `len` bytes that [`Learner::would_read`] is about to be read
    /// without a request (a blocking receive's short way, `blocking_recv`): counted as
    /// a receive matched now would be; when to time it from, if its time counts.
    pub(crate) fn read_alone(&mut self, len: usize) -> Option<Instant> {
        self.choose(len).record.then(Instant::now)
    }

    /// The message of `len` bytes timed from `start` ([`Learner::read_alone`]) has
    /// been read.
    pub(crate) fn read_alone_done(&mut self, len: usize, start: Instant) {
        let now = Instant::now();
        let last_done = std::mem::replace(&mut self.last_done, now);
        self.record_read(len, took(start, last_done, now));
    }

    /// When to time the copy-out of an eager message of `len` bytes from world rank
    /// `peer` from: now, if it is a mid-size one from this node whose time is taken
    /// ([`EAGER_SAMPLE`]).
    #[inline]
    pub(crate) fn eager_clock(&mut self, peer: usize, len: usize) -> Option<Instant> {
        let m = self.mid.as_mut()?;
        (m.covers(len) && m.on_node[peer] && m.times_eager(len)).then(Instant::now)
    }

    /// The eager message of `len` bytes timed from `start` ([`Learner::eager_clock`])
    /// has been copied out.
    pub(crate) fn eager_copied(&mut self, len: usize, start: Instant) {
        self.eager_took(len, start.elapsed().as_nanos() as f64);
    }

    /// [`Learner::eager_copied`], the copy-out having taken `ns`.
    fn eager_took(&mut self, len: usize, ns: f64) {
        if let Some(m) = self.mid.as_mut()
            && m.arrived(len, true)
        {
            m.ways.record(len, true, EAGER_CHARGE * ns);
        }
    }

    /// When to time the read of a message of `len` bytes offered `BUFFERED` that found
    /// no receive posted, read at once into the unexpected queue (`Engine::run_takes`)
    /// from: now, if it is mid-size. (Only ranks of this node offer messages for
    /// reading.)
    #[inline]
    pub(crate) fn take_clock(&self, len: usize) -> Option<Instant> {
        let m = self.mid.as_ref()?;
        m.covers(len).then(Instant::now)
    }

    /// The message of `len` bytes timed from `start` ([`Learner::take_clock`]) has
    /// been read into the unexpected queue.
    pub(crate) fn taken(&mut self, len: usize, start: Instant) {
        self.take_took(len, start.elapsed().as_nanos() as f64);
    }

    /// [`Learner::taken`], the read having taken `ns`: an arrival by reading, as a
    /// receive matched to the offer would have been ([`Learner::choose`]), and timed
    /// as its read would have been if the message before it in its class was offered
    /// too. Without it, a class whose messages all arrive before their receives are
    /// posted would never be asked to come eagerly again once asked to be offered.
    fn take_took(&mut self, len: usize, ns: f64) {
        if let Some(m) = self.mid.as_mut()
            && m.covers(len)
            && m.arrived(len, false)
        {
            m.ways.record(len, false, ns);
        }
    }

    /// A single copy of `len` bytes took `ns`: into the estimate of its way.
    fn record_read(&mut self, len: usize, ns: f64) {
        match self.mid.as_mut() {
            Some(m) if m.covers(len) => m.ways.record(len, false, ns),
            _ => self.ways.record(len, true, ns),
        }
    }

    /// Starts receive `id` as `choice` says, timing it if its time counts. The clock
    /// is read only then, and once per pass over the arrived frames: a bandwidth
    /// test's receiver spent 9% of its time reading clocks, 64 reads matched in one
    /// pass and read together, timed by their system call.
    pub(crate) fn start(&mut self, id: ReqId, choice: Choice) {
        self.start_at(id, choice, Instant::now);
    }

    /// Receives matched from now until [`Learner::pass_over`], while the frames that
    /// have arrived are handed out, start at the time the first of them does.
    #[inline]
    pub(crate) fn pass(&mut self) {
        self.pass = Some(None);
    }

    /// The pass [`Learner::pass`] began is over.
    #[inline]
    pub(crate) fn pass_over(&mut self) {
        self.pass = None;
    }

    /// [`Learner::start`], the clock read by `clock`.
    fn start_at(&mut self, id: ReqId, choice: Choice, clock: impl FnOnce() -> Instant) {
        self.timed.retain(|t| t.id != id);
        if choice.record {
            let start = match &mut self.pass {
                Some(first) => *first.get_or_insert_with(clock),
                None => clock(),
            };
            self.timed.push(Timed {
                id,
                start,
                single_copy: choice.first,
            });
        }
    }

    /// Receive `id` of `len` bytes completed, in the time since it was matched (or
    /// since the last rendezvous receive completed, if that was later): that time goes
    /// into its way's estimate ([`TwoWays::record`]). With no receive being timed the
    /// clock is not read: the completion's time matters only to receives matched
    /// before it, and any matched later start after it.
    pub(crate) fn finished(&mut self, id: ReqId, len: usize) {
        self.finished_at(id, len, Instant::now);
    }

    /// [`Learner::finished`], the clock read by `now`.
    fn finished_at(&mut self, id: ReqId, len: usize, now: impl FnOnce() -> Instant) {
        if self.timed.is_empty() {
            return;
        }
        let now = now();
        let last_done = std::mem::replace(&mut self.last_done, now);
        let Some(i) = self.timed.iter().position(|t| t.id == id) else {
            return;
        };
        let t = self.timed.swap_remove(i);
        let ns = took(t.start, last_done, now);
        if t.single_copy {
            self.record_read(len, ns);
        } else {
            self.ways.record(len, false, ns);
        }
    }

    /// The single-copy receives `reads` (request, bytes) were read together in one
    /// system call that took `took`; they complete now ([`Learner::finished`] then
    /// records nothing for them). Each size class among the timed ones gets one
    /// sample: their mean share of the call, by bytes; a mid-size class one such
    /// sample per timed read (the messages of an exploring burst).
    ///
    /// Timed like streams, the first read of a call took the call's time and the
    /// others none (a bandwidth test kept single copies where streaming gave 1.2-1.4x
    /// the bandwidth), and a read explored among streams was charged their chunks
    /// copied out before it. One sample per read, the first call of a bandwidth test
    /// (63 reads, every page pinned for the first time, 15 times the later calls' time
    /// per read) settled the single copy's estimate at once, and 16 KiB messages
    /// were streamed for hundreds of windows (0.75-0.85 of the bandwidth of single
    /// copies alone): one call is one measurement.
    pub(crate) fn finished_together(&mut self, reads: &[(ReqId, usize)], took: Duration) {
        self.finished_together_at(reads, took, Instant::now());
    }

    /// [`Learner::finished_together`], at `now`.
    fn finished_together_at(&mut self, reads: &[(ReqId, usize)], took: Duration, now: Instant) {
        self.last_done = now;
        let bytes = reads.iter().map(|r| r.1).sum::<usize>().max(1);
        let per_byte = took.as_nanos() as f64 / bytes as f64;
        // A class may hold mid-size and large lengths (8 KiB and 8-16 KiB with the
        // default eager limit), each learned apart.
        let mid = &self.mid;
        let kind = |len: usize| (class(len), mid.as_ref().is_some_and(|m| m.covers(len)));
        // Per size class: a length in it, the reads' summed shares, their number.
        let mut classes: Vec<(usize, f64, u32)> = Vec::new();
        for &(id, len) in reads {
            let Some(i) = self.timed.iter().position(|t| t.id == id) else {
                continue;
            };
            self.timed.swap_remove(i);
            let ns = per_byte * len as f64;
            match classes.iter_mut().find(|c| kind(c.0) == kind(len)) {
                Some(c) => {
                    c.1 += ns;
                    c.2 += 1;
                }
                None => classes.push((len, ns, 1)),
            }
        }
        for (len, ns, n) in classes {
            // A mid-size class's timed reads in one call are the consecutive messages
            // of one exploring burst (`shm::read_asks`), each its own message: each
            // counts, or a class whose bursts are read together (a window of `bw`)
            // settles after twice as many bursts, each of which stalls a window.
            let mid = self.mid.as_ref().is_some_and(|m| m.covers(len));
            for _ in 0..if mid { n } else { 1 } {
                self.record_read(len, ns / f64::from(n));
            }
        }
    }

    /// Receive `id` goes the other way after all (the read was refused).
    pub(crate) fn forget(&mut self, id: ReqId) {
        self.timed.retain(|t| t.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::two_ways::{BURST, EXPLORE, EXPLORE_EARLY, EXPLORE_FAR};
    use crate::transport::shm::offered;

    const TIMED: Choice = Choice {
        first: true,
        record: true,
    };

    /// Receives `len` bytes as receive `id`, taking 1 us the faster way (single copy
    /// if `fast_single`) and `slow` us the other, on a clock of its own that starts
    /// after the last receive; returns whether it went by single copy.
    fn receive_slow(l: &mut Learner, len: usize, id: u64, fast_single: bool, slow: f64) -> bool {
        let choice = l.choose(len);
        let start = l.last_done + Duration::from_micros(5);
        l.start_at(ReqId(id), choice, || start);
        let took = if choice.first == fast_single {
            1.0
        } else {
            slow
        };
        l.finished_at(ReqId(id), len, || {
            start + Duration::from_secs_f64(took * 1e-6)
        });
        choice.first
    }

    /// [`receive_slow`] with the other way three times as slow.
    fn receive(l: &mut Learner, len: usize, id: u64, fast_single: bool) -> bool {
        receive_slow(l, len, id, fast_single, 3.0)
    }

    /// The indices of the messages among `ways` that went by single copy.
    fn singles(ways: &[bool]) -> Vec<usize> {
        (0..ways.len()).filter(|&i| ways[i]).collect()
    }

    #[test]
    fn receives_in_flight_together_are_timed_from_the_previous_completion() {
        let mut l = Learner::new(None);
        let t = l.last_done;
        let us = Duration::from_micros;
        for id in 1..4 {
            l.start_at(ReqId(id), TIMED, || t);
        }
        l.finished_at(ReqId(1), 50_000, || t + us(10));
        l.finished_at(ReqId(2), 50_000, || t + us(12));
        l.finished_at(ReqId(3), 50_000, || t + us(16));
        // 10 us, then 2 us (not 12), which replaces it, then 4: 0.75 * 2 + 0.25 * 4.
        assert_eq!(l.ways.classes[class(50_000)].ns[0], 2_500.0);
    }

    #[test]
    fn receives_matched_in_one_pass_start_when_the_first_did_and_untimed_ones_read_no_clock() {
        let mut l = Learner::new(None);
        let t = l.last_done;
        let us = Duration::from_micros;
        let untimed = Choice {
            first: true,
            record: false,
        };
        l.start_at(ReqId(9), untimed, || {
            panic!("an untimed receive reads the clock")
        });
        l.finished_at(ReqId(9), 50_000, || {
            panic!("nothing timed, yet the clock was read")
        });
        l.pass();
        l.start_at(ReqId(1), TIMED, || t + us(1));
        l.start_at(ReqId(2), TIMED, || {
            panic!("the pass's clock was read twice")
        });
        l.pass_over();
        l.start_at(ReqId(3), TIMED, || t + us(7));
        let starts: Vec<_> = l.timed.iter().map(|x| x.start - t).collect();
        assert_eq!(starts, [us(1), us(1), us(7)]);
        // Each finishes from the later of its start and the one before: 9, 1, 2 us.
        l.finished_at(ReqId(1), 50_000, || t + us(10));
        l.finished_at(ReqId(2), 50_000, || t + us(11));
        l.finished_at(ReqId(3), 50_000, || t + us(13));
        assert_eq!(l.ways.classes[class(50_000)].samples[0], 3);
    }

    #[test]
    fn reads_done_together_are_one_sample_per_class() {
        let mut l = Learner::new(None);
        let t = l.last_done;
        let us = Duration::from_micros;
        for id in 1..9 {
            l.start_at(ReqId(id), TIMED, || t);
        }
        // A first call of 64 us: four reads of 100 000 bytes and two of 200 000 (by
        // bytes, 8 and 16 us each), and one untimed.
        let reads = [1, 2, 3, 4, 5, 6, 100].map(|id| {
            let len = if id == 5 || id == 6 { 200_000 } else { 100_000 };
            (ReqId(id), len)
        });
        l.finished_together_at(&reads[..6], us(64), t + us(70));
        l.finished_together_at(&reads[6..], us(1), t + us(71));
        let (small, large) = (
            l.ways.classes[class(100_000)],
            l.ways.classes[class(200_000)],
        );
        assert_eq!((small.samples[0], small.ns[0]), (1, 8_000.0));
        assert_eq!((large.samples[0], large.ns[0]), (1, 16_000.0));
        // A second call, 1 us a read, replaces the first's estimate (the first uses of
        // a class are slower); the reads it completed are timed no more.
        l.finished_together_at(
            &[(ReqId(7), 100_000), (ReqId(8), 100_000)],
            us(2),
            t + us(80),
        );
        l.finished_at(ReqId(7), 100_000, || t + us(90));
        let small = l.ways.classes[class(100_000)];
        assert_eq!((small.samples[0], small.ns[0]), (2, 1_000.0));
        assert!(l.timed.is_empty());
    }

    #[test]
    fn reads_done_together_of_mid_and_large_lengths_of_one_class_are_learned_apart() {
        let mut l = mid_learner();
        let t = l.last_done;
        let us = Duration::from_micros;
        for id in 1..3 {
            l.start_at(ReqId(id), TIMED, || t);
        }
        // 8192 bytes (mid-size) and 8193 (large) in one call of 2 us: 1 us each.
        l.finished_together_at(&[(ReqId(1), 8192), (ReqId(2), 8193)], us(2), t + us(5));
        let mid = l.mid.as_ref().unwrap().ways.classes[class(8192)];
        let large = l.ways.classes[class(8193)];
        assert_eq!((mid.samples[1], large.samples[0]), (1, 1));
        assert!((mid.ns[1] - 1_000.0).abs() < 1.0 && (large.ns[0] - 1_000.0).abs() < 1.0);
    }

    #[test]
    fn mid_size_reads_done_together_count_each_and_large_ones_once() {
        let mut l = mid_learner();
        let t = l.last_done;
        let us = Duration::from_micros;
        for id in 1..7 {
            l.start_at(ReqId(id), TIMED, || t);
        }
        // Three reads of 8 KiB (a burst) in one call of 3 us, then three of 100 000
        // bytes in one of 30 us: the burst's messages count as three samples of 1 us,
        // the large ones as one of 10 us.
        let burst = [1, 2, 3].map(|id| (ReqId(id), 8192));
        l.finished_together_at(&burst, us(3), t + us(5));
        let large = [4, 5, 6].map(|id| (ReqId(id), 100_000));
        l.finished_together_at(&large, us(30), t + us(40));
        let mid = l.mid.as_ref().unwrap().ways.classes[class(8192)];
        assert_eq!(mid.samples[1], 3);
        assert!((mid.ns[1] - 1_000.0).abs() < 1.0, "{:?}", mid.ns);
        let large = l.ways.classes[class(100_000)];
        assert_eq!((large.samples[0], large.ns[0]), (1, 10_000.0));
    }

    #[test]
    fn tries_both_ways_then_keeps_the_faster_and_explores_in_bursts() {
        // Message `n` of a class (from 1) explores where `n % every < BURST`; the
        // slower way is settled after 7 early bursts (2 timed messages each, and two
        // from the first tries).
        let settled = 7 * EXPLORE_EARLY as usize + BURST as usize;
        let count = |ways: &[bool], from: usize, to: usize| singles(&ways[from - 1..to]).len();
        let mut l = Learner::new(None);
        let ways: Vec<bool> = (0..2 * EXPLORE as u64 + 8)
            .map(|i| receive_slow(&mut l, 20_000, i, false, 1.2))
            .collect();
        // Each way three times first: the first message of a way in a row is not
        // timed.
        let first = [true, true, true, false, false, false];
        assert_eq!(&ways[..6], &first, "{ways:?}");
        assert_eq!(count(&ways, 7, settled), 7 * BURST as usize, "{ways:?}");
        // Then a burst every EXPLORE messages.
        for k in [1, 2] {
            let n = k * EXPLORE as usize;
            let from = (n - EXPLORE as usize).max(settled) + BURST as usize;
            assert_eq!(count(&ways, from, n - 1), 0, "{ways:?}");
            assert_eq!(
                singles(&ways[n - 1..n + 2]).len(),
                BURST as usize,
                "{ways:?}"
            );
        }
        // Where the other way is far slower, it is tried a quarter as often.
        let far: Vec<bool> = (0..EXPLORE_FAR as u64 + 8)
            .map(|i| receive(&mut l, 1 << 16, 1000 + i, false))
            .collect();
        let n = EXPLORE_FAR as usize;
        assert_eq!(count(&far, settled + 1, n - 1), 0, "{far:?}");
        assert_eq!(count(&far, n, n + 2), BURST as usize, "{far:?}");
        // Another size class learns on its own.
        assert!(l.choose(1 << 20).first);
        assert!(l.timed.is_empty());
    }

    #[test]
    fn follows_the_machine_when_the_faster_way_changes() {
        let mut l = Learner::new(None);
        for i in 0..100 {
            receive(&mut l, 40_000, i, true);
        }
        assert!(l.choose(40_000).first);
        for i in 100..300 {
            receive(&mut l, 40_000, i, false);
        }
        let later: Vec<bool> = (0..8).map(|_| l.choose(40_000).first).collect();
        assert!(later.iter().filter(|&&s| !s).count() >= 5, "{later:?}");
    }

    /// A learner of mid-size messages up to 8 KiB from world ranks 0 and 1 (rank 2
    /// is on another node).
    fn mid_learner() -> Learner {
        let mut l = Learner::new(None);
        l.mid = Some(Mid::new(8192, vec![true, true, false], None));
        l
    }

    /// A sender of mid-size messages to [`mid_learner`]'s learner: the messages of
    /// each class still to go the way it explores (`shm::read_asks`).
    struct Sender {
        left: [u8; usize::BITS as usize],
    }

    impl Sender {
        fn new() -> Sender {
            Sender {
                left: [0; usize::BITS as usize],
            }
        }

        /// Whether the next message of `len` bytes goes offered for reading, as the
        /// receiver `l` asks.
        fn offers(&mut self, l: &mut Learner, len: usize) -> bool {
            let m = l.mid.as_mut().unwrap();
            let bit = 1 << class(len);
            offered(&mut self.left[class(len)], m.asked & bit != 0, || {
                let claimed = m.unclaimed & bit != 0;
                m.unclaimed &= !bit;
                claimed
            })
        }
    }

    /// Receives a mid-size message of `len` bytes that came `offered`, taking `read_us`
    /// to read, else `eager_us` to copy out.
    fn mid_message(
        l: &mut Learner,
        len: usize,
        id: u64,
        offered: bool,
        eager_us: f64,
        read_us: f64,
    ) {
        if offered {
            let choice = l.choose(len);
            assert!(choice.first, "a mid-size message offered is read");
            let start = l.last_done + Duration::from_micros(5);
            l.start_at(ReqId(id), choice, || start);
            l.finished_at(ReqId(id), len, || {
                start + Duration::from_secs_f64(read_us * 1e-6)
            });
        } else {
            l.eager_took(len, eager_us * 1e3);
        }
    }

    /// Sends `n` messages of `len` bytes the way the receiver asks, each taking
    /// `eager_us` to copy out when eager and `read_us` to read when offered; returns
    /// the ways they went (true: offered for reading).
    fn mid_messages(l: &mut Learner, len: usize, n: u64, eager_us: f64, read_us: f64) -> Vec<bool> {
        let mut sender = Sender::new();
        (0..n)
            .map(|id| {
                let offered = sender.offers(l, len);
                mid_message(l, len, id, offered, eager_us, read_us);
                offered
            })
            .collect()
    }

    #[test]
    fn a_window_sent_before_the_receiver_takes_any_of_it_is_explored_only_in_bursts() {
        // `oxbench bw`: 64 messages sent, then all 64 received. Eager 1.5 times as
        // fast: the explored reads stay rare in every window, wherever the windows
        // end.
        let mut l = mid_learner();
        let mut sender = Sender::new();
        let mut ways = Vec::new();
        for window in 0..200u64 {
            let offered: Vec<bool> = (0..64).map(|_| sender.offers(&mut l, 8192)).collect();
            for (i, &o) in offered.iter().enumerate() {
                mid_message(&mut l, 8192, window * 64 + i as u64, o, 0.4, 1.05);
            }
            ways.extend(offered);
        }
        assert_rare(&ways[2000..], true);
        let c = l.mid.as_ref().unwrap().ways.classes[class(8192)];
        assert!(
            c.samples[1] >= 16 && c.ns[0] < c.ns[1],
            "{:?} {:?}",
            c.samples,
            c.ns
        );
    }

    #[test]
    fn mid_size_messages_come_the_way_that_is_faster_counting_the_senders_copy() {
        // Reading 8 KiB in 1.0 us against copying out an eager one in 0.9 (1.6 with
        // the sender's copy): offered for reading but for rare bursts.
        let mut l = mid_learner();
        let ways = mid_messages(&mut l, 8192, 2000, 0.9, 1.0);
        assert_eq!(&ways[..3], &[false; 3], "eager until it has two timed");
        let late = &ways[1000..];
        assert_rare(late, false);
        // Copying out in 0.3 us: eager again once the explored eager times come in.
        let ways = mid_messages(&mut l, 8192, 3000, 0.3, 1.0);
        let late = &ways[2000..];
        assert_rare(late, true);
        // Another mid class learns on its own: its first messages go eagerly.
        assert_eq!(mid_messages(&mut l, 5000, 3, 0.9, 0.1), [false; 3]);
    }

    /// Asserts that of `ways` (true: offered for reading) some, but fewer than one in
    /// 50, went `way`: the rare bursts of exploring.
    fn assert_rare(ways: &[bool], way: bool) {
        let n = ways.iter().filter(|&&w| w == way).count();
        assert!(n > 0 && n < ways.len() / 50, "{n} of {}", ways.len());
    }

    /// [`mid_messages`] where every message arrives before its receive is posted: an
    /// eager one is copied into the unexpected queue in `eager_us`, one offered is
    /// read into it in `read_us` (`Engine::run_takes`).
    fn early_mid_messages(
        l: &mut Learner,
        len: usize,
        n: u64,
        eager_us: f64,
        read_us: f64,
    ) -> Vec<bool> {
        let mut sender = Sender::new();
        (0..n)
            .map(|_| {
                let offered = sender.offers(l, len);
                if offered {
                    l.take_took(len, read_us * 1e3);
                } else {
                    l.eager_took(len, eager_us * 1e3);
                }
                offered
            })
            .collect()
    }

    #[test]
    fn a_class_whose_messages_arrive_before_their_receives_comes_eagerly_where_faster() {
        // Copying out in 0.3 us (0.5 charged) against reading in 3: three offered to
        // time the reads, then eager but for rare bursts.
        let mut l = mid_learner();
        let ways = early_mid_messages(&mut l, 6000, 2000, 0.3, 3.0);
        // The way of each message is asked for at the arrival before it: the eager
        // ones are timed from the second on, and the two timed by the fourth.
        let first = [false, false, false, false, true, true, true, false, false];
        assert_eq!(&ways[..9], &first);
        let late = &ways[1000..];
        assert_rare(late, true);
        let c = l.mid.as_ref().unwrap().ways.classes[class(6000)];
        assert!(
            c.samples[1] >= 2 && (c.ns[1] - 3_000.0).abs() < 1.0,
            "{:?}",
            c.ns
        );
    }

    #[test]
    fn a_class_read_while_its_messages_arrive_early_still_explores_and_follows_the_machine() {
        // Reading in 0.5 us against copying out in 0.9 (1.6 charged): offered, with
        // rare eager bursts, as for messages whose receives are posted.
        let mut l = mid_learner();
        let ways = early_mid_messages(&mut l, 8192, 2000, 0.9, 0.5);
        let late = &ways[1000..];
        assert_rare(late, false);
        // Reading turns slow (4 us): the bursts' eager times bring the class back.
        let ways = early_mid_messages(&mut l, 8192, 3000, 0.9, 4.0);
        let late = &ways[2000..];
        assert_rare(late, true);
    }

    #[test]
    fn an_early_read_after_an_eager_message_counts_but_is_not_timed() {
        let mut l = mid_learner();
        early_mid_messages(&mut l, 5000, 4, 0.3, 3.0);
        let m = l.mid.as_ref().unwrap();
        assert_eq!(
            (m.asked >> class(5000) & 1, m.unclaimed >> class(5000) & 1),
            (0, 1),
            "asked for a few offers after eager times"
        );
        // The first read after eager messages is not timed (what the eager ones left
        // in the caches), the next is; large lengths are not learned here.
        l.take_took(5000, 7_000.0);
        assert_eq!(
            l.mid.as_ref().unwrap().ways.classes[class(5000)].samples[1],
            0
        );
        l.take_took(5000, 2_000.0);
        l.take_took(8193, 2_000.0);
        let c = l.mid.as_ref().unwrap().ways.classes[class(5000)];
        assert_eq!((c.samples[1], c.ns[1]), (1, 2_000.0));
        assert_eq!(l.ways.classes[class(8193)].samples, [0, 0]);
        assert!(l.take_clock(5000).is_some());
        assert!(l.take_clock(4096).is_none() && l.take_clock(8193).is_none());
        assert!(Learner::new(None).take_clock(5000).is_none());
    }

    #[test]
    fn only_mid_size_eager_messages_from_this_node_are_timed() {
        let mut l = mid_learner();
        assert!(l.eager_clock(1, 8192).is_some());
        assert!(l.eager_clock(0, 4097).is_some());
        assert!(l.eager_clock(1, 4096).is_none(), "always eager");
        assert!(l.eager_clock(1, 8193).is_none(), "above the eager limit");
        assert!(l.eager_clock(2, 8192).is_none(), "from another node");
        assert!(Learner::new(None).eager_clock(1, 8192).is_none());
    }

    #[test]
    fn eager_copies_are_timed_one_in_a_few_only_where_eager_is_settled_as_the_faster() {
        let timed =
            |l: &mut Learner, n| (0..n).filter(|_| l.eager_clock(1, 8192).is_some()).count();
        let mut l = mid_learner();
        // Learning: every one.
        assert_eq!(timed(&mut l, 20), 20);
        // Copying out in 0.3 us (0.5 charged) against reading in 1.0: eager, settled.
        mid_messages(&mut l, 8192, 2000, 0.3, 1.0);
        let n = 10 * EAGER_SAMPLE as usize;
        assert_eq!(timed(&mut l, n), 10);
        // Another class learns on its own.
        assert!(l.eager_clock(1, 5000).is_some() && l.eager_clock(1, 5000).is_some());
        // Reading turns faster (0.5 us against 0.9 copying out): the eager messages are
        // the estimator's bursts, and every one is timed.
        mid_messages(&mut l, 8192, 3000, 0.9, 0.5);
        assert_eq!(timed(&mut l, n), n);
    }

    #[test]
    fn a_mid_size_message_offered_is_read_and_large_ones_are_still_learned() {
        let mut l = mid_learner();
        // Reading is far slower, yet an offered mid-size message (the sender had no
        // credit left) is read.
        assert!(
            mid_messages(&mut l, 6000, 200, 0.1, 50.0)
                .iter()
                .any(|&w| w)
        );
        assert!(l.choose(6000).first);
        // Messages above the eager limit learn single copy against streaming as before.
        assert_eq!(l.ways.classes[class(6000)].samples, [0, 0]);
        let choice = l.choose(100_000);
        assert!(choice.first && !choice.record);
    }

    #[test]
    fn a_forgotten_receive_leaves_no_estimate() {
        let mut l = Learner::new(None);
        let choice = l.choose(100_000);
        assert!(choice.first && !choice.record);
        l.start(ReqId(7), TIMED);
        l.forget(ReqId(7));
        l.finished(ReqId(7), 100_000);
        assert_eq!(l.ways.classes[class(100_000)].ns, [0.0, 0.0]);
    }
}
