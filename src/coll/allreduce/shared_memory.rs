//! Allreduce over the node's collective area: every rank writes its vector, waits for
//! all, and combines all vectors itself, in rank order (see `coll/shared_memory.rs`).
//!
//! Cost: one arrival per rank, then `p` vectors read and `p - 1` combines on every
//! rank: for short vectors. Every rank computes `x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` from the
//! same operands, so all get the same bits and non-commutative operations work.

use crate::coll::shared_memory::Meeting;
use crate::engine::schedule::Combine;
use crate::error::Result;

/// Reduces `input` (or, if `None`, `recv` in place) of every rank into `recv`.
pub(crate) fn run(
    m: &mut Meeting<'_>,
    input: Option<&[u8]>,
    recv: &mut [u8],
    op: &dyn Combine,
) -> Result<()> {
    let len = recv.len();
    m.write(len, |slot| slot.copy_from_slice(input.unwrap_or(recv)))?;
    m.publish(false);
    m.wait_all()?;
    combine_all(m, recv, op)
}

/// `out = x0 ⊕ (x1 ⊕ (… ⊕ x(p-1)))` over the slots of every rank (all published).
pub(crate) fn combine_all(m: &Meeting<'_>, out: &mut [u8], op: &dyn Combine) -> Result<()> {
    let (len, (_, size)) = (out.len(), m.rank_size());
    if size == 1 {
        out.copy_from_slice(m.read(0, len)?);
        return Ok(());
    }
    op.combine_to(m.read(size - 2, len)?, m.read(size - 1, len)?, out);
    for r in (0..size - 2).rev() {
        op.combine(m.read(r, len)?, out, true);
    }
    Ok(())
}
