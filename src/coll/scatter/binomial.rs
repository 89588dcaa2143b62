//! Binomial-tree scatter, the gather tree run backwards: each rank receives the
//! blocks of its subtree ([`Tree`]) from its parent in one message and forwards each
//! child its part.
//!
//! Cost: `ceil(log2(p))` steps, each block forwarded about `log2(p) / 2` times: the
//! choice for short blocks. Equal blocks only.

use crate::coll::tree::Tree;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Scatters the root's `input` (blocks of `block` bytes in rank order) so that every
/// rank gets its block in `mine`.
pub(crate) fn build(s: &mut Schedule, input: Buf, block: usize, root: usize, mine: Span) {
    let size = s.size();
    let tree = Tree::new(s.rank(), size, root);
    // Relative order: the input itself when the root is 0.
    let work = match (tree.parent(), root) {
        (None, 0) => input,
        (Some(parent), _) if tree.ranks() == 1 => return s.recv(parent, mine),
        _ => s.temp(block * tree.ranks()),
    };
    let at = |first: usize, n: usize| Span::new(work, first * block, n * block);
    match tree.parent() {
        Some(parent) => {
            s.recv(parent, at(0, tree.ranks()));
            s.fence();
        }
        None => {
            s.copy(
                Span::new(input, root * block, (size - root) * block),
                at(0, size - root),
            );
            s.copy(Span::new(input, 0, root * block), at(size - root, root));
        }
    }
    s.copy(at(0, 1), mine);
    for child in tree.children().rev() {
        s.send(child.rank, at(child.offset, child.ranks));
    }
}
