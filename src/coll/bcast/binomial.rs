//! Binomial-tree broadcast: each rank receives the whole buffer from its parent in
//! the tree rooted at the root ([`Tree`]), then sends it to its children, the
//! largest subtree first.
//!
//! Cost: `ceil(log2(p))` steps of the whole buffer; `p - 1` copies of it in total, the
//! least work of any broadcast: the choice for short buffers, and for long ones when
//! ranks share few cores.

use crate::coll::tree::Tree;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Broadcasts the `bytes` of the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, bytes: usize, root: usize) {
    let tree = Tree::new(s.rank(), s.size(), root);
    let all = Span::new(Buf::Recv, 0, bytes);
    if let Some(parent) = tree.parent() {
        s.recv(parent, all);
        s.fence();
    }
    for child in tree.children().rev() {
        s.send(child.rank, all);
    }
}
