//! Binomial-tree broadcast: relative rank `v` (numbered from the root) receives the
//! whole buffer from `v - lowbit(v)`, then sends it to `v + 2^j` for each `2^j` below
//! `lowbit(v)`, the largest subtree first.
//!
//! Cost: `ceil(log2(p))` steps of the whole buffer; `p - 1` copies of it in total, the
//! least work of any broadcast: the choice for short buffers, and for long ones when
//! ranks share few cores.

use crate::coll::gather::binomial::lowbit;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Broadcasts the `bytes` of the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, bytes: usize, root: usize) {
    let (rank, size) = (s.rank(), s.size());
    let all = Span::new(Buf::Recv, 0, bytes);
    let v = (rank + size - root) % size;
    let span = if v == 0 {
        size.next_power_of_two()
    } else {
        lowbit(v)
    };
    if v != 0 {
        s.recv((rank + size - span) % size, all);
        s.fence();
    }
    let mut mask = span / 2;
    while mask > 0 {
        if v + mask < size {
            s.send((rank + mask) % size, all);
        }
        mask /= 2;
    }
}
