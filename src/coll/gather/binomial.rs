//! Binomial-tree gather: ranks are numbered relative to the root; relative rank `v`
//! collects the blocks of its subtree `[v, v + lowbit(v))` from its children, then
//! sends them to its parent `v - lowbit(v)` in one message.
//!
//! Cost: `ceil(log2(p))` steps, but a block is forwarded once per tree level it
//! climbs (about `log2(p) / 2` times on average): the choice for short blocks. Each
//! subtree is a contiguous run of relative ranks, so every message is one span.
//! Equal blocks only.

use crate::engine::schedule::{Buf, Schedule, Span};

/// Gathers the `block` bytes of `mine` from every rank into the receive buffer of
/// `root`, in rank order.
pub(crate) fn build(s: &mut Schedule, mine: Span, block: usize, root: usize) {
    let (rank, size) = (s.rank(), s.size());
    let v = (rank + size - root) % size;
    let span = if v == 0 {
        size.next_power_of_two()
    } else {
        lowbit(v)
    };
    let subtree = span.min(size - v);
    if subtree == 1 {
        match v {
            0 => s.copy(mine, Span::new(Buf::Recv, 0, block)),
            _ => s.send((rank + size - lowbit(v)) % size, mine),
        }
        return;
    }
    // Relative order: equal to rank order in the receive buffer when the root is 0.
    let work = if v == 0 && root == 0 {
        Buf::Recv
    } else {
        s.temp(block * subtree)
    };
    let at = |first: usize, n: usize| Span::new(work, first * block, n * block);
    s.copy(mine, at(0, 1));
    let mut mask = 1;
    while mask < span && v + mask < size {
        let child = (rank + mask) % size;
        s.recv(child, at(mask, mask.min(size - v - mask)));
        mask <<= 1;
    }
    s.fence();
    if v != 0 {
        s.send((rank + size - lowbit(v)) % size, at(0, subtree));
    } else if root != 0 {
        // work[i] is the block of rank root + i.
        s.copy(
            at(0, size - root),
            Span::new(Buf::Recv, root * block, (size - root) * block),
        );
        s.copy(at(size - root, root), Span::new(Buf::Recv, 0, root * block));
    }
}

/// The lowest set bit of `v` (which is not 0).
pub(crate) fn lowbit(v: usize) -> usize {
    v & v.wrapping_neg()
}
