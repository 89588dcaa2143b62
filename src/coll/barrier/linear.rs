//! Fan-in/fan-out barrier: every rank signals rank 0 and waits; rank 0, once it has
//! heard from all, releases them all.
//!
//! Cost: two message latencies on the critical path but `p - 1` messages through
//! rank 0 each way, so it scales worse than dissemination when every rank has a
//! core. When ranks share cores, what counts is how often each rank must be woken:
//! twice here, against `ceil(log2(p))` times in dissemination, whose rounds each wait
//! for a different peer to be scheduled.

use crate::engine::schedule::Schedule;

/// Synchronises every rank of the schedule's communicator.
pub(crate) fn build(s: &mut Schedule) {
    let (rank, size) = (s.rank(), s.size());
    if rank == 0 {
        for peer in 1..size {
            s.await_signal(peer);
        }
        s.fence();
        for peer in 1..size {
            s.signal(peer);
        }
    } else {
        s.signal(0);
        s.await_signal(0);
    }
}
