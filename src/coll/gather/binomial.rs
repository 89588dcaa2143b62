//! Binomial-tree gather: each rank collects the blocks of its subtree of the tree
//! rooted at the root ([`Tree`]) from its children, then sends them to its parent in
//! one message.
//!
//! Cost: `ceil(log2(p))` steps, but a block is forwarded once per tree level it
//! climbs (about `log2(p) / 2` times on average): the choice for short blocks. Each
//! subtree is a contiguous run of relative ranks, so every message is one span.
//! Equal blocks only.

use crate::coll::tree::Tree;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Gathers the `block` bytes of `mine` from every rank into the receive buffer of
/// `root`, in rank order.
pub(crate) fn build(s: &mut Schedule, mine: Span, block: usize, root: usize) {
    let size = s.size();
    let tree = Tree::new(s.rank(), size, root);
    // Relative order: equal to rank order in the receive buffer when the root is 0.
    let work = match (tree.parent(), root) {
        (None, 0) => Buf::Recv,
        (Some(parent), _) if tree.ranks() == 1 => return s.send(parent, mine),
        _ => s.temp(block * tree.ranks()),
    };
    let at = |first: usize, n: usize| Span::new(work, first * block, n * block);
    s.copy(mine, at(0, 1));
    for child in tree.children() {
        s.recv(child.rank, at(child.offset, child.ranks));
    }
    s.fence();
    match tree.parent() {
        Some(parent) => s.send(parent, at(0, tree.ranks())),
        None => {
            // work[i] is the block of rank root + i.
            s.copy(
                at(0, size - root),
                Span::new(Buf::Recv, root * block, (size - root) * block),
            );
            s.copy(at(size - root, root), Span::new(Buf::Recv, 0, root * block));
        }
    }
}
