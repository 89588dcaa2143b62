//! Fan-in/fan-out allreduce: every rank sends its vector to rank 0, which combines
//! them in rank order and sends the result back to all.
//!
//! Cost: two message latencies on the critical path, but `p - 1` vectors into and out
//! of rank 0, and `(p - 1)` vectors of temporary space there: for short vectors only.
//! When ranks share cores, each rank is woken twice (against `log2(p)` times in
//! recursive doubling, each round waiting for another peer to be scheduled), which is
//! what makes it win there. Rank 0 combines in rank order and hands out copies, so
//! non-commutative operations work and every rank gets identical bits.

use crate::engine::schedule::{Buf, Schedule, Span};

/// Reduces `bytes` of `input` on every rank into the receive buffer.
pub(crate) fn build(s: &mut Schedule, input: Buf, bytes: usize) {
    let (rank, size) = (s.rank(), s.size());
    let (mine, out) = (Span::new(input, 0, bytes), Span::new(Buf::Recv, 0, bytes));
    if rank != 0 {
        s.send(0, mine);
        s.fence();
        s.recv(0, out);
        return;
    }
    let theirs = Span::new(
        s.temp(bytes * size.saturating_sub(1)),
        0,
        bytes * size.saturating_sub(1),
    );
    let from = |peer: usize| Span::new(theirs.buf, (peer - 1) * bytes, bytes);
    for peer in 1..size {
        s.recv(peer, from(peer));
    }
    let mut cur = mine;
    for peer in 1..size {
        s.reduce(cur, from(peer), out);
        cur = out;
    }
    s.copy(cur, out);
    for peer in 1..size {
        s.send(peer, out);
    }
}
