//! Linear broadcast: the root sends the whole buffer to every other rank, each of
//! which receives it once.
//!
//! Cost: one step, `p - 1` messages all leaving the root, as many copies as a
//! binomial tree but no rank forwards: each non-root rank waits for one message and
//! nothing else. The choice where every hop is costly and ranks share cores (TCP
//! among oversubscribed ranks, see `select::tcp_table`).

use crate::engine::schedule::{Buf, Schedule, Span};

/// Broadcasts the `bytes` of the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, bytes: usize, root: usize) {
    let (rank, size) = (s.rank(), s.size());
    let all = Span::new(Buf::Recv, 0, bytes);
    if rank != root {
        s.recv(root, all);
        return;
    }
    for k in 1..size {
        s.send((root + k) % size, all);
    }
}
