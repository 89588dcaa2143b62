//! Binomial-tree scatter, the gather tree run backwards: relative rank `v` receives
//! the blocks of its subtree `[v, v + lowbit(v))` from its parent in one message and
//! forwards each child its part.
//!
//! Cost: `ceil(log2(p))` steps, each block forwarded about `log2(p) / 2` times: the
//! choice for short blocks. Equal blocks only.

use crate::coll::gather::binomial::lowbit;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Scatters the root's `input` (blocks of `block` bytes in rank order) so that every
/// rank gets its block in `mine`.
pub(crate) fn build(s: &mut Schedule, input: Buf, block: usize, root: usize, mine: Span) {
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
            0 => s.copy(Span::new(input, 0, block), mine),
            _ => s.recv((rank + size - lowbit(v)) % size, mine),
        }
        return;
    }
    // Relative order: the input itself when the root is 0.
    let work = if v == 0 && root == 0 {
        input
    } else {
        s.temp(block * subtree)
    };
    let at = |first: usize, n: usize| Span::new(work, first * block, n * block);
    if v != 0 {
        s.recv((rank + size - lowbit(v)) % size, at(0, subtree));
        s.fence();
    } else if root != 0 {
        s.copy(
            Span::new(input, root * block, (size - root) * block),
            at(0, size - root),
        );
        s.copy(Span::new(input, 0, root * block), at(size - root, root));
    }
    s.copy(at(0, 1), mine);
    let mut mask = span / 2;
    while mask > 0 {
        if v + mask < size {
            s.send((rank + mask) % size, at(mask, mask.min(size - v - mask)));
        }
        mask /= 2;
    }
}
