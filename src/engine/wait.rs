//! How a rank waits for progress: spin briefly, then yield, then sleep in the kernel
//! until a transport has something.
//!
//! Spinning wins latency when every rank has a core; when the launcher says the node
//! is oversubscribed, a rank spins only a moment and yields early, so the rank it waits
//! for gets the core. Invariant: a rank idle for more than the spin and yield phases
//! sleeps in the kernel (woken by an arrival or a short timeout), so it uses almost no
//! CPU however long it waits.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// First sleep of a wait. Wakers skip the memory fence that would make a missed
/// wake-up impossible (it would cost every send a store-buffer drain); the price is a
/// window of a few hundred nanoseconds in which a wake-up can be missed, and a first
/// sleep this short bounds what that costs.
const FIRST_SLEEP: Duration = Duration::from_micros(100);
/// Longest sleep before re-checking (arrivals normally wake the sleeper at once).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Spins between clock reads.
const SPINS_PER_CLOCK: u32 = 64;

/// The spin, yield and sleep budget of one wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitPolicy {
    spin: Duration,
    yields: u32,
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
            }
        } else {
            // A millisecond covers a multi-megabyte transfer by the peer; a sleep
            // would add a wake-up (50-90 us on these VMs) to it (2 MiB ping-pong
            // latency 284 us with 100 us of spin, 197 us with 1 ms).
            WaitPolicy {
                spin: Duration::from_micros(1000),
                yields: 16,
            }
        };
        if let Some(us) = env_number("OXMPI_SPIN_US")? {
            p.spin = Duration::from_micros(us);
        }
        if let Some(n) = env_number("OXMPI_YIELDS")? {
            p.yields = n as u32;
        }
        Ok(p)
    }

    /// Whether a waiter spins before it yields (it has a core of its own).
    pub(crate) fn spins(&self) -> bool {
        !self.spin.is_zero()
    }
}

/// Reads a numeric `OXMPI_*` variable; unset is `None`, garbage is an error.
pub(crate) fn env_number(var: &str) -> Result<Option<u64>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::config(var, v, "a non-negative integer")),
    }
}

/// What to do next in one wait.
pub(crate) enum Step {
    Spin,
    Yield,
    Sleep(Duration),
}

/// The state of one wait: when it went idle, how often it yielded, and how long it
/// sleeps next.
pub(crate) struct Idle {
    since: Option<Instant>,
    spins: u32,
    yields: u32,
    sleep: Duration,
}

impl Idle {
    pub(crate) fn new() -> Idle {
        Idle {
            since: None,
            spins: 0,
            yields: 0,
            sleep: FIRST_SLEEP,
        }
    }

    /// Something happened: start the spin phase over.
    pub(crate) fn reset(&mut self) {
        *self = Idle::new();
    }

    /// Nothing happened in the last progress call: what now?
    pub(crate) fn next(&mut self, policy: &WaitPolicy) -> Step {
        if self.yields == 0 && !policy.spin.is_zero() {
            // The clock starts after the first few spins: most waits end before.
            self.spins += 1;
            if self.spins % SPINS_PER_CLOCK != 0 {
                return Step::Spin;
            }
            let since = *self.since.get_or_insert_with(Instant::now);
            if since.elapsed() < policy.spin {
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
