//! Binomial-tree reduce: relative rank `v` combines the partial results of its
//! children `v + 1, v + 2, v + 4, …` (each covering the run of ranks just above its
//! own) into its own, then sends the result to its parent `v - lowbit(v)`.
//!
//! Cost: `ceil(log2(p))` steps of the whole vector: the choice for short vectors.
//! A commutative operation uses the tree rooted at the root; a non-commutative one
//! uses the tree rooted at rank 0, where every partial covers a contiguous run of
//! ranks combined in rank order, and rank 0 sends the result on to the root.

use crate::coll::gather::binomial::lowbit;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Reduces `bytes` of `input` from every rank into the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, input: Buf, bytes: usize, root: usize, commutative: bool) {
    let (rank, size) = (s.rank(), s.size());
    let top = if commutative { root } else { 0 };
    let v = (rank + size - top) % size;
    let span = if v == 0 {
        size.next_power_of_two()
    } else {
        lowbit(v)
    };
    let mine = Span::new(input, 0, bytes);
    let has_children = v + 1 < size && span > 1;
    let acc = if rank == root {
        Span::new(Buf::Recv, 0, bytes)
    } else if has_children || v == 0 {
        Span::new(s.temp(bytes), 0, bytes)
    } else {
        mine
    };
    let theirs = if has_children {
        Some(Span::new(s.temp(bytes), 0, bytes))
    } else {
        None
    };
    let mut cur = mine;
    let mut mask = 1;
    while mask < span && v + mask < size {
        let theirs = theirs.expect("a rank with children has room for theirs");
        s.recv((rank + mask) % size, theirs);
        s.fence();
        s.reduce(cur, theirs, acc);
        cur = acc;
        mask <<= 1;
    }
    if v != 0 {
        s.send((rank + size - span) % size, cur);
    } else if rank != root {
        s.send(root, cur);
    } else {
        s.copy(cur, acc);
    }
    if rank == root && top != root {
        s.fence();
        s.recv(top, acc);
    }
}
