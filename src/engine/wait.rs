//! How a rank waits for progress: spin briefly, then yield, then sleep in the kernel
//! until a transport has something.
//!
//! Spinning wins latency when every rank has a core; when the launcher says the node
//! is oversubscribed, a rank yields at once, so the rank it waits for gets the core,
//! unless no more ranks than it has CPUs are awake among those that compete for them
//! (bound to its core, or unbound like it; the others asleep in waits): then it spins
//! a little after all. Invariant: a rank idle for more than the spin and yield phases
//! sleeps in the kernel (woken by an arrival or a short timeout), so it uses almost no
//! CPU however long it waits.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::settings;

/// First sleep of a wait. Wakers skip the memory fence that would make a missed
/// wake-up impossible (it would cost every send a store-buffer drain). Where sleepers
/// fence for them (`membarrier`, see `transport/shm/membarrier.rs`) none is missed;
/// elsewhere that leaves a window of a few hundred nanoseconds before each sleep in
/// which a wake-up can be missed, and a miss costs at most that sleep: this short
/// for most waits, up to [`MAX_SLEEP`] for one that has slept long already.
const FIRST_SLEEP: Duration = Duration::from_micros(100);
/// Longest sleep before re-checking (arrivals normally wake the sleeper at once).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Spins between clock reads.
const SPINS_PER_CLOCK: u32 = 64;
/// How long a rank of an oversubscribed node spins while no more awake ranks than it
/// has CPUs compete for them (the others asleep in waits): long enough for a
/// ping-pong partner's answer, short against a wake-up.
const UNCROWDED_SPIN: Duration = Duration::from_micros(100);

/// The spin, yield and sleep budget of one wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitPolicy {
    spin: Duration,
    yields: u32,
    /// On an oversubscribed node, the CPUs this rank may run on (its affinity mask,
    /// one core's when bound, or a cgroup's CPU quota): a waiter that finds no more
    /// awake ranks than that among those with the same mask spins for
    /// [`UNCROWDED_SPIN`] after all.
    cores: Option<usize>,
}

impl WaitPolicy {
    /// From the launcher's oversubscription flag, overridable with `OXMPI_SPIN_US`
    /// (microseconds of spinning before yielding) and `OXMPI_YIELDS`.
    pub(crate) fn from_env(oversubscribed: bool) -> Result<WaitPolicy> {
        let mut p = if oversubscribed {
            // Sharing cores, a waiter hands its core over at once and keeps doing so
            // for a while before sleeping: collectives among 4-8 ranks on 2 cores ran
            // 1.5-3x faster than with 2 us of spinning and 16 yields (issue 4).
            WaitPolicy {
                spin: Duration::ZERO,
                yields: 256,
                cores: std::thread::available_parallelism().ok().map(usize::from),
            }
        } else {
            // A millisecond covers a multi-megabyte transfer by the peer; a sleep
            // would add a wake-up (50-90 us on these VMs) to it (2 MiB ping-pong
            // latency 284 us with 100 us of spin, 197 us with 1 ms).
            WaitPolicy {
                spin: Duration::from_micros(1000),
                yields: 16,
                cores: None,
            }
        };
        if let Some(us) = settings::number("OXMPI_SPIN_US")? {
            p.spin = Duration::from_micros(us);
            // An explicit budget is the budget.
            p.cores = None;
        }
        if let Some(n) = settings::number_up_to("OXMPI_YIELDS", u32::MAX.into())? {
            p.yields = n as u32;
        }
        Ok(p)
    }

    /// Whether this rank shares its CPUs with other ranks (the node is
    /// oversubscribed): then it asks which of them could use the CPU before it spins.
    pub(crate) fn shares_cores(&self) -> bool {
        self.cores.is_some()
    }

    /// Whether a waiter spins before it yields (it has a core of its own).
    pub(crate) fn spins(&self) -> bool {
        !self.spin.is_zero()
    }

    /// Whether a waiter may spin now: it has a core of its own, or, on an
    /// oversubscribed node, no more awake ranks than it has CPUs compete for them
    /// (`crowded` is asked only then, as in [`Idle::next`]).
    pub(crate) fn may_spin(&self, crowded: impl Fn(usize) -> bool) -> bool {
        match self.cores {
            Some(cores) => !crowded(cores),
            None => self.spins(),
        }
    }
}

/// What to do next in one wait.
pub(crate) enum Step {
    Spin,
    Yield,
    Sleep(Duration),
}

/// The state of one wait: when it went idle, how long it spins, how often it
/// yielded, and how long it sleeps next.
pub(crate) struct Idle {
    since: Option<Instant>,
    /// The spin budget, once decided (at the first idle step).
    spin: Option<Duration>,
    spins: u32,
    yields: u32,
    sleep: Duration,
}

impl Idle {
    pub(crate) fn new() -> Idle {
        Idle {
            since: None,
            spin: None,
            spins: 0,
            yields: 0,
            sleep: FIRST_SLEEP,
        }
    }

    /// Something happened: start the spin phase over.
    pub(crate) fn reset(&mut self) {
        *self = Idle::new();
    }

    /// Nothing happened in the last progress call: what now? `crowded` says whether
    /// more awake ranks than `cores` compete for this rank's CPUs (asked only on an
    /// oversubscribed node, at the first step and at each clock read while spinning).
    pub(crate) fn next(&mut self, policy: &WaitPolicy, crowded: impl Fn(usize) -> bool) -> Step {
        let spin = *self.spin.get_or_insert_with(|| match policy.cores {
            Some(cores) if !crowded(cores) => UNCROWDED_SPIN,
            _ => policy.spin,
        });
        if self.yields == 0 && !spin.is_zero() {
            // The clock starts after the first few spins: most waits end before.
            self.spins += 1;
            if !self.spins.is_multiple_of(SPINS_PER_CLOCK) {
                return Step::Spin;
            }
            let since = *self.since.get_or_insert_with(Instant::now);
            let woken = policy.cores.is_some_and(&crowded);
            if since.elapsed() < spin && !woken {
                return Step::Spin;
            }
        }
        if self.yields < policy.yields {
            self.yields += 1;
            return Step::Yield;
        }
        let sleep = self.sleep;
        self.sleep = (self.sleep * 2).min(MAX_SLEEP);
        Step::Sleep(sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_by(cores: usize) -> WaitPolicy {
        WaitPolicy {
            spin: Duration::ZERO,
            yields: 2,
            cores: Some(cores),
        }
    }

    #[test]
    fn an_oversubscribed_waiter_yields_at_once_when_crowded() {
        let mut idle = Idle::new();
        assert!(matches!(idle.next(&shared_by(2), |_| true), Step::Yield));
        assert!(matches!(idle.next(&shared_by(2), |_| true), Step::Yield));
        assert!(matches!(idle.next(&shared_by(2), |_| true), Step::Sleep(_)));
    }

    #[test]
    fn an_oversubscribed_waiter_spins_while_few_are_awake_and_stops_when_more_wake() {
        let awake = std::cell::Cell::new(2);
        let crowded = |cores: usize| awake.get() > cores;
        let mut idle = Idle::new();
        for _ in 0..SPINS_PER_CLOCK - 1 {
            assert!(matches!(idle.next(&shared_by(2), crowded), Step::Spin));
        }
        // At the clock read more ranks are awake: it stops spinning.
        awake.set(5);
        assert!(matches!(idle.next(&shared_by(2), crowded), Step::Yield));
    }
}
