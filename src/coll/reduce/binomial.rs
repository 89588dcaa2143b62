//! Binomial-tree reduce: each rank combines the partial results of its children in
//! the tree ([`Tree`]), nearest first (each covers the run of ranks just above what
//! it holds), into its own, then sends the result to its parent.
//!
//! Cost: `ceil(log2(p))` steps of the whole vector: the choice for short vectors.
//! A commutative operation uses the tree rooted at the root; a non-commutative one
//! uses the tree rooted at rank 0, where every partial covers a contiguous run of
//! ranks combined in rank order, and rank 0 sends the result on to the root.

use crate::coll::tree::Tree;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Reduces `bytes` of `input` from every rank into the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, input: Buf, bytes: usize, root: usize, commutative: bool) {
    let rank = s.rank();
    let top = if commutative { root } else { 0 };
    let tree = Tree::new(rank, s.size(), top);
    let mine = Span::new(input, 0, bytes);
    let leaf = tree.ranks() == 1;
    let acc = match (rank == root, leaf && tree.parent().is_some()) {
        (true, _) => Span::new(Buf::Recv, 0, bytes),
        (false, true) => mine,
        (false, false) => Span::new(s.temp(bytes), 0, bytes),
    };
    let mut temp = None;
    let mut cur = mine;
    for child in tree.children() {
        // The first child's partial lands in the accumulator (unless that is the
        // input, in place): no temporary for a rank with one child.
        let theirs = s.landing(cur, acc, &mut temp);
        s.recv(child.rank, theirs);
        s.reduce(cur, theirs, acc);
        cur = acc;
    }
    match tree.parent() {
        Some(parent) => s.send(parent, cur),
        None if rank != root => s.send(root, cur),
        None => s.copy(cur, acc),
    }
    if rank == root && top != root {
        s.fence();
        s.recv(top, acc);
    }
}
