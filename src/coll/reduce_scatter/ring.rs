//! Ring reduce-scatter: in step `k` every rank passes its partial result for one block
//! to its right neighbour, which combines it with its own contribution; after
//! `size - 1` steps rank `r` holds block `r` reduced over all ranks.
//!
//! Cost: `size - 1` steps of one block each; `(size - 1) / size` of the vector sent
//! and reduced per rank: bandwidth-optimal, latency linear in the size. The partial
//! of block `b` travels `b + 1, b + 2, …, b`, wrapping around, so operands are not
//! combined in rank order: commutative operations only (select.rs enforces that).
//! On two ranks alone rank order holds (rank 0 puts its own operand on the left).
//! Each block's result is computed once, by one chain, so it is the same on every run.

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Where partial results wait between steps.
enum Partials {
    /// In their own block of a buffer (allreduce: the receive buffer), where the
    /// neighbour's partial also lands unless that buffer is the input (in place):
    /// then it lands in `incoming`.
    Blocks { buf: Buf, incoming: Option<Buf> },
    /// In two temporaries used in turn (reduce-scatter: no room for the vector).
    Rotating([Buf; 2]),
}

/// Reduces the vector laid out as `blocks` of `input` so that this rank ends with
/// block `rank` reduced into `dst`. Partial results stay in their blocks of
/// `partials_in` if given, else in temporaries.
pub(crate) fn build(
    s: &mut Schedule,
    input: Buf,
    blocks: &Blocks,
    dst: Span,
    partials_in: Option<Buf>,
) {
    let (rank, size) = (s.rank(), s.size());
    if size == 1 {
        s.copy(blocks.span(input, 0), dst);
        return;
    }
    let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    let most = (0..size).map(|b| blocks.bytes(b)).max().unwrap_or(0);
    let partials = match partials_in {
        Some(buf) => Partials::Blocks {
            buf,
            incoming: (buf == input).then(|| s.temp(most)),
        },
        None => Partials::Rotating([s.temp(most), s.temp(most)]),
    };
    let mut sending = blocks.span(input, (rank + size - 1) % size);
    for k in 0..size - 1 {
        let b = (rank + 2 * size - 2 - k) % size;
        let len = blocks.bytes(b);
        let (got, partial) = match partials {
            Partials::Blocks { buf, incoming } => {
                let partial = blocks.span(buf, b);
                // Combined where it lands: no temporary, a smaller working set
                // (2-rank allreduce of 1 MiB, see docs/collectives.md).
                (incoming.map_or(partial, |t| Span::new(t, 0, len)), partial)
            }
            Partials::Rotating(t) => (Span::new(t[k % 2], 0, len), Span::new(t[k % 2], 0, len)),
        };
        s.send(right, sending);
        s.recv(left, got);
        s.fence();
        let out = if k == size - 2 { dst } else { partial };
        let own = blocks.span(input, b);
        if size == 2 && rank == 0 {
            // Two ranks: the lower one's operand on the left, as every other way of
            // an allreduce puts it, so that a 2-rank allreduce whose way rank 0
            // learns (coll/learned.rs) gives the same values either way.
            s.reduce(own, got, out);
        } else {
            s.reduce(got, own, out);
        }
        sending = out;
    }
}
